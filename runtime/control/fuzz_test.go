package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// fuzzRoutes are the request shapes FuzzRequest sends: a method and a path
// in which %s is the fuzzed name.
var fuzzRoutes = []struct{ method, path string }{
	{"PUT", "/v1/datacenters/%s"},
	{"PUT", "/v1/shards/%s"},
	{"PUT", "/v1/tiers/%s"},
	{"PUT", "/v1/mirrors/%s"},
	{"PUT", "/v1/cdc/%s"},
	{"PUT", "/v1/cdc/trading-db/tables/%s"},
	{"PUT", "/v1/settings/metrics"},
	{"POST", "/v1/batch"},
	{"DELETE", "/v1/mirrors/%s"},
	{"GET", "/v1/objects?kind=%s"},
	{"GET", "/v1/mirrors/%s"},
}

// FuzzRequest sends the control API arbitrary request bodies, names and
// owners (seeds: testdata/fuzz/FuzzRequest), one home cluster for the whole
// run. No request may panic or answer 500; every error answer is JSON with
// a one-line message; a body that is not the request's JSON shape is a 400
// (on a path of the API; any other path is a 404);
// and whatever was accepted, the stored definitions still compile (GET
// /v1/definitions and /v1/plan answer 200).
func FuzzRequest(f *testing.F) {
	home := devtest.Kafka(f, "home")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := NewService(ctx, []kgo.Opt{kgo.SeedBrokers(home.Addr())}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(svc.Close)
	h := svc.Handler()
	f.Fuzz(func(t *testing.T, route uint8, name, owner string, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		target := rt.path
		if strings.Contains(target, "%s") {
			target = strings.Replace(target, "%s", url.PathEscape(name), 1)
		}
		req, err := http.NewRequest(rt.method, "http://ferry"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		if owner != "" {
			req.Header.Set(api.OwnerHeader, owner)
		}
		status, answer := serve(t, h, req)
		routed := !strings.Contains(string(answer), "is not a method and path of the control API")
		if rt.method != "GET" && routed && !fitsShape(rt.method, body) && status != http.StatusBadRequest {
			t.Fatalf("%s %s with a body that is not its JSON shape answered %d, want 400: %s", rt.method, target, status, answer)
		}
		for _, path := range []string{"/v1/definitions", "/v1/plan"} {
			req, _ := http.NewRequest("GET", "http://ferry"+path, nil)
			if status, answer := serve(t, h, req); status != http.StatusOK {
				t.Fatalf("after %s %s (body %q): GET %s answered %d: %s", rt.method, target, body, path, status, answer)
			}
		}
	})
}

// serve runs one request and checks the answer's form: never a 500, and
// an error answer has a one-line message.
func serve(t *testing.T, h http.Handler, req *http.Request) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	answer := rec.Body.Bytes()
	if rec.Code >= 500 {
		t.Fatalf("%s %s answered %d: %s", req.Method, req.URL, rec.Code, answer)
	}
	if rec.Code >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(answer, &e); err != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
			t.Fatalf("%s %s answered %d without a one-line message: %q", req.Method, req.URL, rec.Code, answer)
		}
	}
	return rec.Code, answer
}

// fitsShape reports whether body decodes as the request's JSON shape, as
// the API reads it: one value, no unknown fields.
func fitsShape(method string, body []byte) bool {
	var v any = &api.PutBody{}
	switch method {
	case "POST":
		v = &api.Batch{}
	case "DELETE":
		return true // the body is not read
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}

package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-pipelines/ferry/runtime/devenv"
)

// TestTokenScope runs `ferry run --home` with --token-file: /healthz,
// /metrics and /v1/jobs answer anyone, every definitions path refuses a
// request without the token or with a wrong one, whatever the method, and
// the token never shows in the process's output.
func TestTokenScope(t *testing.T) {
	home, err := devenv.StartKafka("dc1", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(home.Close)
	dir := t.TempDir()
	token := secretString(t, "token")
	writeFile(t, dir, "token", "  "+token+"\n")
	p := startFerry(t, dir, nil, "run", "--home", "dc1="+home.Addr(), "--token-file", "token")

	for _, tc := range []struct {
		method, path string
		open         bool
	}{
		{"GET", "/healthz", true},
		{"GET", "/metrics", true},
		{"GET", "/v1/jobs", true},
		{"GET", "/v1/objects", false},
		{"GET", "/v1/mirrors", false},
		{"GET", "/v1/mirrors/orders.events", false},
		{"GET", "/v1/definitions", false},
		{"GET", "/v1/plan", false},
		{"PUT", "/v1/mirrors/orders.events", false},
		{"DELETE", "/v1/datacenters/dc1", false},
		{"POST", "/v1/batch", false},
		{"POST", "/v1/jobs", false},
		{"GET", "/v1/jobs/", false},
	} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token} {
			req, err := http.NewRequest(tc.method, "http://"+p.addr+tc.path, strings.NewReader(`{"spec": {"partitions": 1, "tier": 1}}`))
			if err != nil {
				t.Fatal(err)
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			refused := resp.StatusCode == http.StatusUnauthorized
			if want := !tc.open && auth != "Bearer "+token; refused != want {
				t.Errorf("%s %s with authorization %q: status %d, want refused %v", tc.method, tc.path, strings.Replace(auth, token, "TOKEN", 1), resp.StatusCode, want)
			}
		}
	}
	p.stop()
	if strings.Contains(p.logs.String(), token) {
		t.Fatalf("ferry run printed the token:\n%s", p.logs)
	}
}

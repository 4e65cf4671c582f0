package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// TestPatiently: a write refused by the compiler (400) or by busy
// executors (503), or whose answer was lost (none, or a proxy's 502), is
// tried again until it succeeds or applyPatience has passed; any other
// outcome is returned at once.
func TestPatiently(t *testing.T) {
	defer func(d time.Duration) { applyPatience = d }(applyPatience)
	applyPatience = 1500 * time.Millisecond
	refused := api.Errorf(http.StatusBadRequest, "a mirror needs two datacenters, but only dc1 is declared")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	nowhere, err := api.NewClient(closed.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, noAnswer := nowhere.Get(context.Background(), api.Mirror, "m")
	if !api.AnswerLost(noAnswer) {
		t.Fatalf("a closed endpoint's error %v is not a lost answer", noAnswer)
	}
	for _, c := range []struct {
		name    string
		results []error // what each try returns; past the end, the last
		tries   int
		err     error
	}{
		{"lifted by the run's other changes", []error{refused, refused, nil}, 3, nil},
		{"executors busy", []error{api.Errorf(http.StatusServiceUnavailable, "busy"), nil}, 2, nil},
		{"no answer", []error{noAnswer, nil}, 2, nil},
		{"a proxy's 502", []error{api.Errorf(http.StatusBadGateway, "bad gateway"), nil}, 2, nil},
		{"a version conflict is final", []error{api.Errorf(http.StatusConflict, "changed elsewhere")}, 1, api.Errorf(http.StatusConflict, "")},
		{"refused past the patience", []error{refused}, 0, refused},
	} {
		t.Run(c.name, func(t *testing.T) {
			tries := 0
			start := time.Now()
			err := patiently(context.Background(), applyPatience, func() error {
				tries++
				return c.results[min(tries, len(c.results))-1]
			})
			if api.StatusOf(err) != api.StatusOf(c.err) || c.tries > 0 && tries != c.tries {
				t.Fatalf("%d tries, %v; want %d tries, status %d", tries, err, c.tries, api.StatusOf(c.err))
			}
			if c.tries == 0 && (tries < 3 || time.Since(start) > 2*applyPatience) {
				t.Fatalf("%d tries in %v: want several within %v", tries, time.Since(start), applyPatience)
			}
		})
	}
}

package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/schema"
)

// world is a home cluster with control services on it, each behind its
// own HTTP server: the executors of one group.
type world struct {
	t    *testing.T
	home *devenv.Kafka
}

func newWorld(t *testing.T) *world {
	t.Helper()
	home := devtest.Kafka(t, "home")
	return &world{t: t, home: home}
}

// executor is one control service and its API's address.
type executor struct {
	svc *Service
	url string
}

func (w *world) start(opts ...Option) *executor {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := NewService(ctx, []kgo.Opt{kgo.SeedBrokers(w.home.Addr())}, append([]Option{WithLogger(quiet)}, opts...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	w.t.Cleanup(func() {
		srv.Close()
		svc.Close()
	})
	return &executor{svc: svc, url: srv.URL}
}

// client talks to the executor as owner.
func (e *executor) client(t *testing.T, owner string, opts ...api.ClientOption) *api.Client {
	t.Helper()
	c, err := api.NewClient(e.url, append([]api.ClientOption{api.WithOwner(owner)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func version(v int64) *int64 { return &v }

func dc(broker string) schema.Datacenter {
	return schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{broker}}}
}

// twoDCs writes dc1 and dc2, the least a mirror needs.
func twoDCs(t *testing.T, c *api.Client) {
	t.Helper()
	for name, broker := range map[string]string{"dc1": "127.0.0.1:19092", "dc2": "127.0.0.1:29092"} {
		if _, err := c.Put(ctxT(t), api.Datacenter, name, dc(broker), version(0)); err != nil {
			t.Fatal(err)
		}
	}
}

// specOf decodes an object's spec.
func specOf[T any](t *testing.T, o *api.Object) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(o.Spec, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// wantStatus fails unless err is an API error with the status and
// message.
func wantStatus(t *testing.T, err error, status int, msg string) {
	t.Helper()
	if api.StatusOf(err) != status {
		t.Fatalf("got error %v (status %d), want status %d", err, api.StatusOf(err), status)
	}
	if msg != "" && err.Error() != msg {
		t.Fatalf("got message\n%s\nwant\n%s", err, msg)
	}
}

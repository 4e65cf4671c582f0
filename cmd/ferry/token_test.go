package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestTokenScope runs `ferry run --home` with --token-file: /healthz,
// /metrics and /v1/jobs answer anyone, every definitions path refuses a
// request without the token or with a wrong one, whatever the method, and
// the token never shows in the process's output.
func TestTokenScope(t *testing.T) {
	home := devtest.Kafka(t, "dc1")
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

// TestSecureHome runs `ferry run --home dc1=@FILE` against a home cluster
// that requires TLS with a client certificate and SCRAM-SHA-512: the
// control API stores a definition there and reads it back.
func TestSecureHome(t *testing.T) {
	dir := t.TempDir()
	certs, err := devenv.NewCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	server, err := certs.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	password := secretString(t, "home")
	home := devtest.Kafka(t, "dc1", kfake.TLS(server), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "ferry", password))
	settings, _ := json.Marshal(schema.Kafka{
		Brokers: []string{home.Addr()},
		TLS:     &schema.TLS{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey},
		SASL:    &schema.SASL{Mechanism: "SCRAM-SHA-512", User: "ferry", Password: schema.Secret{Env: "HOME_PASSWORD"}},
	})
	writeFile(t, dir, "home.json", string(settings))
	p := startFerry(t, dir, []string{"HOME_PASSWORD=" + password}, "run", "--home", "dc1=@home.json")

	putShard(t, p.addr)
	p.stop()
	if strings.Contains(p.logs.String(), password) {
		t.Fatalf("ferry run printed the home's password:\n%s", p.logs)
	}
}

// TestAPITLS runs `ferry run --home` with --tls-cert/--tls-key: the
// control API and `ferry status` work over https with the CA trusted
// (SSL_CERT_FILE), `ferry status` says so when it is not, a plain HTTP
// request is answered with a refusal, and the two flags go together.
func TestAPITLS(t *testing.T) {
	home := devtest.Kafka(t, "dc1")
	dir := t.TempDir()
	certs, err := devenv.NewCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, dir, nil, "run", "--home", "dc1="+home.Addr(), "--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey)
	url := "https://" + p.addr

	if out := ferry(t, dir, "status", "--http", url); out.code != 1 || !strings.Contains(out.stderr, url+": the executor's certificate is not trusted: ") ||
		!strings.Contains(out.stderr, "set SSL_CERT_FILE to its certificate") {
		t.Errorf("ferry status without the CA: exit %d\n%s", out.code, out.stderr)
	}
	t.Setenv("SSL_CERT_FILE", certs.CA)
	if out := ferry(t, dir, "status", "--http", url); out.code != 0 || !strings.Contains(out.stdout, "JOB") {
		t.Errorf("ferry status with the CA: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
	// In this process the CA is given to the client: Go reads
	// SSL_CERT_FILE once per process.
	tlsConf, err := kafkaconn.TLSConfig(&schema.TLS{CA: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	putShard(t, url, api.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}))
	resp, err := http.Get("http://" + p.addr + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS API: status %d, want 400", resp.StatusCode)
	}

	for _, args := range [][]string{
		{"--tls-cert", certs.ServerCert},
		{"--tls-key", certs.ServerKey},
	} {
		out := ferry(t, dir, append([]string{"run", "--http", "127.0.0.1:0"}, args...)...)
		if want := "--tls-cert and --tls-key go together: pass both, or neither to serve --http without TLS"; out.code != 1 || !strings.Contains(out.stderr, want) {
			t.Errorf("ferry run %v: exit %d, stderr %q; want 1 and %q", args, out.code, out.stderr, want)
		}
	}
}

// putShard stores a shard through the control API at addr and reads it
// back.
func putShard(t *testing.T, addr string, opts ...api.ClientOption) {
	t.Helper()
	c, err := api.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Put(ctx, api.Shard, "realtime", schema.Shard{Tiers: []int{1}}, nil); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Get(ctx, api.Shard, "realtime"); err != nil || o.Version != 1 {
		t.Fatalf("read back %+v, %v", o, err)
	}
}

package control

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/schema"
)

func TestToken(t *testing.T) {
	e := newWorld(t).start(WithTokens(Tokens{"s3cret-token": {"*"}}))
	for _, tc := range []struct {
		name   string
		opts   []api.ClientOption
		status int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", []api.ClientOption{api.WithToken("guess")}, http.StatusUnauthorized},
		{"right token", []api.ClientOption{api.WithToken("s3cret-token")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client(t, api.OwnerTerraform, tc.opts...).Objects(ctxT(t))
			if api.StatusOf(err) != tc.status {
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
			if tc.status == http.StatusUnauthorized && err.Error() != `missing or wrong bearer token: send the token of the executors' --token-file as "Authorization: Bearer TOKEN"` {
				t.Fatalf("message %q", err)
			}
		})
	}
}

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		token bool
		ok    bool
	}{
		{"127.0.0.1:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"10.1.2.3:8080", false, false},
		{"0.0.0.0:8080", true, true},
	} {
		err := CheckExposure(tc.addr, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckExposure(%q, token %v) = %v, want ok %v", tc.addr, tc.token, err, tc.ok)
		}
	}
	want := "--http 0.0.0.0:8080 is not a loopback address and no --token-file is given: anyone who reaches it could change what runs; pass --token-file FILE, or listen on 127.0.0.1"
	if err := CheckExposure("0.0.0.0:8080", false); err.Error() != want {
		t.Fatalf("message %q", err)
	}
}

// TestReadTokens: a token file binds each token to owners; a token alone
// is an admin's; a client sends the file's first token.
func TestReadTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(text), 0o600)
		return f
	}
	good := write("tokens", "# token   owners\n  abc123\n\ntf-pay terraform:payments\ncue-all cue:* api\n")
	ts, err := ReadTokens(good)
	if err != nil {
		t.Fatal(err)
	}
	want := Tokens{"abc123": {"*"}, "tf-pay": {"terraform:payments"}, "cue-all": {"cue:*", "api"}}
	if diff := cmp.Diff(want, ts); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
	if tok, err := ReadTokenFile(good); err != nil || tok != "abc123" {
		t.Errorf("ReadTokenFile = %q, %v; want the first token", tok, err)
	}
	for name, tc := range map[string]struct{ text, err string }{
		"empty":     {"\n# none\n", "token file " + filepath.Join(dir, "empty") + " is empty: write a long random token into it"},
		"duplicate": {"a x\nb y\na z\n", filepath.Join(dir, "duplicate") + ":3: the token is on an earlier line too"},
	} {
		if _, err := ReadTokens(write(name, tc.text)); err == nil || err.Error() != tc.err {
			t.Errorf("%s: %v, want %s", name, err, tc.err)
		}
	}
}

// TestOwnersBoundToTokens: a write's owner must be one its token may write
// as, so a CUE directory's token cannot write (or dry-run deletes) as
// Terraform, and one workspace's token cannot change another's objects.
// Only an admin transfers an object (its jobs run on: the spec stays), and
// an object released by a transfer to "" is adopted by whoever writes it
// next.
func TestOwnersBoundToTokens(t *testing.T) {
	e := newWorld(t).start(WithTokens(Tokens{
		"adm": {"*"}, "tf-pay": {"terraform:payments"}, "tf-search": {"terraform:search"}, "cue": {"cue:*"},
	}))
	as := func(token, owner string) *api.Client { return e.client(t, owner, api.WithToken(token)) }
	pay, search := as("tf-pay", "terraform:payments"), as("tf-search", "terraform:search")
	if _, err := pay.Put(ctxT(t), api.Datacenter, "dc1", dc("127.0.0.1:19092"), version(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := as("cue", "cue:pipelines/orders").Put(ctxT(t), api.Datacenter, "dc2", dc("127.0.0.1:29092"), version(0)); err != nil {
		t.Fatal(err)
	}

	_, err := as("tf-pay", "terraform:search").Put(ctxT(t), api.Datacenter, "dc3", dc("127.0.0.1:39092"), version(0))
	wantStatus(t, err, http.StatusForbidden, "this token may write as terraform:payments, not as terraform:search (Ferry-Owner header; the token file binds each token to its owners)")
	_, err = as("cue", "terraform:payments").Batch(ctxT(t), api.Batch{DryRun: true, Ops: []api.Op{{Op: api.OpDelete, Kind: api.Datacenter, Name: "dc1"}}})
	wantStatus(t, err, http.StatusForbidden, "this token may write as cue:*, not as terraform:payments (Ferry-Owner header; the token file binds each token to its owners)")
	_, err = search.Put(ctxT(t), api.Datacenter, "dc1", dc("127.0.0.1:19093"), nil)
	wantStatus(t, err, http.StatusForbidden, `datacenter "dc1" is owned by terraform:payments; change it there or delete it there first, or have an admin transfer it (POST /v1/transfer)`)

	_, err = pay.Transfer(ctxT(t), api.Transfer{Kind: api.Datacenter, Name: "dc1", To: "terraform:search"})
	wantStatus(t, err, http.StatusForbidden, "a transfer needs an admin token (one whose line in the token file has no owners, or *)")
	o, err := as("adm", "api").Transfer(ctxT(t), api.Transfer{Kind: api.Datacenter, Name: "dc1", To: "terraform:search", Version: version(1)})
	if err != nil {
		t.Fatal(err)
	}
	if o.Owner != "terraform:search" || o.Version != 2 || specOf[schema.Datacenter](t, o).Kafka.Brokers[0] != "127.0.0.1:19092" {
		t.Errorf("after the transfer: owner %s, version %d, spec %s; want terraform:search, 2, the same spec", o.Owner, o.Version, o.Spec)
	}
	if _, err := search.Put(ctxT(t), api.Datacenter, "dc1", dc("127.0.0.1:19093"), version(2)); err != nil {
		t.Fatalf("the new owner cannot write it: %v", err)
	}

	// Released, dc2 is adopted by the next writer, with its spec as it is.
	if _, err := as("adm", "api").Transfer(ctxT(t), api.Transfer{Kind: api.Datacenter, Name: "dc2", To: ""}); err != nil {
		t.Fatal(err)
	}
	o, err = pay.Put(ctxT(t), api.Datacenter, "dc2", dc("127.0.0.1:29092"), version(2))
	if err != nil {
		t.Fatal(err)
	}
	if o.Owner != "terraform:payments" || o.Version != 3 {
		t.Errorf("adopted dc2: owner %s, version %d; want terraform:payments, 3", o.Owner, o.Version)
	}
	_, err = as("adm", "api").Transfer(ctxT(t), api.Transfer{Kind: api.Datacenter, Name: "dc9", To: "api"})
	wantStatus(t, err, http.StatusNotFound, `datacenter "dc9" does not exist`)
}

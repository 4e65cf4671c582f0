package control

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

func TestToken(t *testing.T) {
	e := newWorld(t).start(WithToken("s3cret-token"))
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

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(good, []byte("  abc123\n"), 0o600)
	os.WriteFile(empty, []byte("\n"), 0o600)
	if tok, err := ReadTokenFile(good); err != nil || tok != "abc123" {
		t.Fatalf("ReadTokenFile = %q, %v", tok, err)
	}
	if _, err := ReadTokenFile(empty); err == nil || err.Error() != "token file "+empty+" is empty: write a long random token into it" {
		t.Fatalf("empty file: %v", err)
	}
}

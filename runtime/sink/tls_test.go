package sink

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestPostgresTLS: the sink reaches a PostgreSQL that admits its role only
// over TLS with a client certificate signed by the server's CA, with the
// TLS settings in the DSN (sslmode=verify-full, sslrootcert, sslcert,
// sslkey), and is refused without them.
func TestPostgresTLS(t *testing.T) {
	if _, _, err := devenv.PostgresBinaries(); err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "ferry-pg-tls") // not t.TempDir: its parent is private to root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	certs, err := devenv.NewCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	hba := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(`local all all trust
hostnossl all `+devenv.PostgresUser+` 127.0.0.1/32 trust
hostssl all sinker 127.0.0.1/32 trust clientcert=verify-ca
`), 0o600); err != nil {
		t.Fatal(err)
	}
	serverOwns(t, certs.ServerCert, certs.ServerKey, certs.CA, hba)
	pg := devtest.Postgres(t, devenv.PostgresOptions{Args: []string{
		"-c", "ssl=on", "-c", "ssl_cert_file=" + certs.ServerCert, "-c", "ssl_key_file=" + certs.ServerKey,
		"-c", "ssl_ca_file=" + certs.CA, "-c", "hba_file=" + hba,
	}})
	ctx := context.Background()
	admin, err := pg.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE sinker LOGIN"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)

	base := fmt.Sprintf("postgres://sinker@%s/%s?", pg.Addr(), pg.Database)
	for _, tc := range []struct {
		name, query string
		ok          bool
	}{
		{"verified TLS with a client certificate", "sslmode=verify-full&sslrootcert=" + certs.CA + "&sslcert=" + certs.ClientCert + "&sslkey=" + certs.ClientKey, true},
		{"no TLS", "sslmode=disable", false},
		{"TLS without a client certificate", "sslmode=verify-full&sslrootcert=" + certs.CA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FERRY_TEST_PG_DSN", base+tc.query)
			s := &plan.SinkJob{Postgres: schema.PostgresSink{DSN: schema.Secret{Env: "FERRY_TEST_PG_DSN"}}}
			c, err := ConnectTarget(ctx, "sink:test", s)
			if err == nil {
				defer c.Close(ctx)
				var ssl bool
				if err := c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
					t.Fatalf("connected, but TLS is %v (%v)", ssl, err)
				}
			}
			if (err == nil) != tc.ok {
				t.Fatalf("ConnectTarget: %v, want ok %v", err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "sink:test: PostgreSQL at 127.0.0.1:"+strconv.Itoa(pg.Port)+": ") {
				t.Fatalf("error %q does not name the job and the server", err)
			}
		})
	}
}

// serverOwns hands files to the user PostgreSQL runs as (root runs it as
// postgres), which must own its private key.
func serverOwns(t *testing.T, files ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, f := range append(files, filepath.Dir(files[0])) {
		if err := os.Chown(f, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

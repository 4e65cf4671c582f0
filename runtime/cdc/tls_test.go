package cdc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestMySQLTLS captures from a MariaDB that lets the ferry account in only
// over TLS with a client certificate signed by its CA (mysql.tls: ca, cert,
// key): the initial load and the binlog stream both arrive. The same
// account without TLS is refused, so the test proves TLS was used.
func TestMySQLTLS(t *testing.T) {
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	certs, err := devenv.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db := devtest.MariaDB(t, devenv.MariaDBOptions{Args: []string{
		"--ssl-ca=" + certs.CA, "--ssl-cert=" + certs.ServerCert, "--ssl-key=" + certs.ServerKey, "--require-secure-transport=ON",
	}})
	if err := db.Exec("ALTER USER '"+devenv.FerryUser+"'@'%' REQUIRE X509", "CREATE DATABASE trading",
		"CREATE TABLE trading.orders (id INT PRIMARY KEY, note VARCHAR(20))", "INSERT INTO trading.orders VALUES (1, 'loaded')"); err != nil {
		t.Fatal(err)
	}
	k := devtest.Kafka(t, "dc1")
	t.Setenv(passEnv, devenv.FerryPassword)
	w := &world{t: t, db: db, kafka: k, reg: metrics.NewRegistry("test"), plan: &plan.Plan{
		Version:     plan.Version,
		Datacenters: map[string]schema.Datacenter{"dc1": {Kafka: schema.Kafka{Brokers: []string{k.Addr()}}}},
	}}

	pj := w.job(table("trading.orders", "initial", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	plain, err := binlogConfig(pj, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := binlog.Connect(ctx, plain); err == nil {
		c.Close()
		t.Fatal("the server let the ferry account in without TLS: the test proves nothing")
	}
	pj.CDC.MySQL.TLS = &schema.TLS{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}
	withTLS, err := binlogConfig(pj, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := binlog.Connect(ctx, withTLS)
	if err != nil {
		t.Fatalf("connect with mysql.tls: %v", err)
	}
	c.Close()

	r := w.start(pj)
	defer r.stop(t)
	if err := db.Exec("INSERT INTO trading.orders VALUES (2, 'streamed')"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("trading.trading.orders", "the loaded and the streamed row", func(rs []rec) bool {
		notes := map[string]any{}
		for _, r := range rs {
			if !r.tomb {
				notes[r.key] = decode(t, r).After["note"]
			}
		}
		return len(notes) == 2 && notes[`{"id":1}`] == "loaded" && notes[`{"id":2}`] == "streamed"
	})
}

// TestMySQLWrongPassword: a password the server refuses stops the job with
// one line naming the source, the server, the user and where the password
// comes from (never the password), rather than waiting for the server.
func TestMySQLWrongPassword(t *testing.T) {
	w := newWorld(t)
	const wrong = "wrong-4c1e9a-password"
	t.Setenv(passEnv, wrong)
	pj := w.job(table("trading.orders", "initial", 1))
	env := &executor.Env{Plan: w.plan, Shard: "default", Process: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: w.reg.Job(pj)}
	j, err := New(env, pj)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = j.Run(ctx)
	want := fmt.Sprintf("cdc:trading-db: MySQL at %s refused user ferry (Access denied for user 'ferry'@'127.0.0.1' (using password: YES)): check mysql.user and the password in env %s", w.db.Addr(), passEnv)
	if err == nil || err.Error() != want {
		t.Fatalf("Run = %v, want %q", err, want)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatal("the error shows the password")
	}
}

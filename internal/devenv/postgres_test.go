package devenv

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestPostgresLifecycle(t *testing.T) {
	if _, _, err := PostgresBinaries(); err != nil {
		t.Skip(err)
	}
	p, err := StartPostgres(PostgresOptions{Database: "sinktest"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Port == 5432 {
		t.Fatal("started on the machine's default port 5432")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := p.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var db, addr string
	if err := c.QueryRow(ctx, "SELECT current_database(), host(inet_server_addr())").Scan(&db, &addr); err != nil {
		t.Fatal(err)
	}
	if db != "sinktest" || addr != "127.0.0.1" {
		t.Fatalf("connected to %s at %s, want sinktest at 127.0.0.1", db, addr)
	}
	var listen string
	if err := c.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil {
		t.Fatal(err)
	}
	if listen != "127.0.0.1" {
		t.Fatalf("listen_addresses = %q, want 127.0.0.1 only", listen)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE x (id int PRIMARY KEY); INSERT INTO x VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)

	// Killed, the server is gone; restarted on the same port, the data is
	// still there.
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if c, err := p.Connect(ctx); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a killed server")
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	c, err = p.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM x").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after restart: %d rows, %v; want 1", n, err)
	}
	c.Close(ctx)

	dir := p.Dir
	p.Close()
	if p.Running() {
		t.Fatal("running after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Close left %s behind", dir)
	}
}

package devenv

import (
	"context"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

func TestMariaDBLifecycle(t *testing.T) {
	m := startMariaDB(t, MariaDBOptions{})

	rows, err := m.Query("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata")
	if err != nil {
		t.Fatal(err)
	}
	if got := rows[0]; got[0] != "1" || got[1] != "ROW" || got[2] != "FULL" || got[3] != "FULL" {
		t.Fatalf("binlog settings = %v, want 1 ROW FULL FULL", got)
	}

	// The ferry account connects over TCP and holds the CDC grants.
	c, err := client.Connect(m.Addr(), FerryUser, FerryPassword, "")
	if err != nil {
		t.Fatalf("ferry user: %v", err)
	}
	r, err := c.Execute("SHOW GRANTS")
	if err != nil {
		t.Fatal(err)
	}
	grants := ResultStrings(r)
	c.Close()
	if len(grants) == 0 {
		t.Fatal("no grants for ferry")
	}
	if err := m.Exec("CREATE DATABASE t", "CREATE TABLE t.x (id INT PRIMARY KEY)", "INSERT INTO t.x VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	// Killed, the server is gone; restarted on the same port, the data is
	// still there.
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if m.Running() {
		t.Fatal("running after Kill")
	}
	if _, err := client.Connect(m.Addr(), FerryUser, FerryPassword, ""); err == nil {
		t.Fatal("connected to a killed server")
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = WaitSQL(ctx, func() error {
		rows, err = m.Query("SELECT COUNT(*) FROM t.x")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "1" {
		t.Fatalf("rows after restart = %v", rows)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if m.Running() {
		t.Fatal("running after Stop")
	}
}

func TestMariaDBExtraArgs(t *testing.T) {
	m := startMariaDB(t, MariaDBOptions{Args: []string{"--binlog-format=STATEMENT"}})
	rows, err := m.Query("SELECT @@binlog_format")
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "STATEMENT" {
		t.Fatalf("binlog_format = %s", rows[0][0])
	}
}

func TestTradingSchemaAndWriter(t *testing.T) {
	m := startMariaDB(t, MariaDBOptions{})
	if err := m.CreateTrading(1000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	n, err := m.TradingWriter(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d transactions", n)
	}
	rows, err := m.Query("SELECT (SELECT COUNT(*) FROM trading.orders), (SELECT COUNT(*) FROM trading.fills)")
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] == "1000" || rows[0][1] == "0" {
		t.Fatalf("orders %s, fills %s after %d transactions", rows[0][0], rows[0][1], n)
	}
}

// startMariaDB starts a server for the test, skipping it without the
// binaries, and stops it when the test ends. (devtest does the same for
// other packages; it imports this one.)
func startMariaDB(t *testing.T, opts MariaDBOptions) *MariaDB {
	t.Helper()
	if _, _, err := MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	m, err := StartMariaDB(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

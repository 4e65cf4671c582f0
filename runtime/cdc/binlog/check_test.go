package binlog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
)

func startMariaDB(t *testing.T, args ...string) *devenv.MariaDB {
	t.Helper()
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	m := devtest.MariaDB(t, devenv.MariaDBOptions{Args: args})
	return m
}

func cfgFor(m *devenv.MariaDB, user, pass string) Config {
	return Config{Addr: m.Addr(), User: user, Password: pass, ServerID: 777}
}

// Each server setting that rules out capture is refused with its own line:
// the setting as it is and its fix.
func TestCheckRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	m := startMariaDB(t)
	srv, err := Check(ctx, cfgFor(m, devenv.FerryUser, devenv.FerryPassword), "cdc:trading-db", []string{"trading"})
	if err != nil {
		t.Fatalf("a good server was refused: %v", err)
	}
	if srv.Flavor != "mariadb" {
		t.Errorf("flavor = %s, want mariadb", srv.Flavor)
	}

	// Settings that can change at run time, on the same server.
	for _, c := range []struct {
		set, reset, want string
	}{
		{"SET GLOBAL binlog_format=STATEMENT", "SET GLOBAL binlog_format=ROW",
			"cdc:trading-db: binlog_format is STATEMENT; set binlog_format=ROW (SET GLOBAL binlog_format=ROW and in my.cnf)"},
		{"SET GLOBAL binlog_format=MIXED", "SET GLOBAL binlog_format=ROW",
			"cdc:trading-db: binlog_format is MIXED; set binlog_format=ROW (SET GLOBAL binlog_format=ROW and in my.cnf)"},
		{"SET GLOBAL binlog_row_image=MINIMAL", "SET GLOBAL binlog_row_image=FULL",
			"cdc:trading-db: binlog_row_image is MINIMAL; set binlog_row_image=FULL (SET GLOBAL binlog_row_image=FULL and in my.cnf)"},
		{"SET GLOBAL binlog_row_image=NOBLOB", "SET GLOBAL binlog_row_image=FULL",
			"cdc:trading-db: binlog_row_image is NOBLOB; set binlog_row_image=FULL (SET GLOBAL binlog_row_image=FULL and in my.cnf)"},
		{"SET GLOBAL binlog_row_metadata=MINIMAL", "SET GLOBAL binlog_row_metadata=FULL",
			"cdc:trading-db: binlog_row_metadata is MINIMAL; set binlog_row_metadata=FULL (SET GLOBAL binlog_row_metadata=FULL and in my.cnf)"},
		{"SET GLOBAL binlog_row_metadata=NO_LOG", "SET GLOBAL binlog_row_metadata=FULL",
			"cdc:trading-db: binlog_row_metadata is NO_LOG; set binlog_row_metadata=FULL (SET GLOBAL binlog_row_metadata=FULL and in my.cnf)"},
		{"REVOKE REPLICATION SLAVE ON *.* FROM 'ferry'@'%'", "GRANT REPLICATION SLAVE ON *.* TO 'ferry'@'%'",
			"cdc:trading-db: user ferry lacks REPLICATION SLAVE; GRANT REPLICATION SLAVE ON *.* TO 'ferry'"},
		{"REVOKE BINLOG MONITOR ON *.* FROM 'ferry'@'%'", "GRANT BINLOG MONITOR ON *.* TO 'ferry'@'%'",
			"cdc:trading-db: user ferry lacks REPLICATION CLIENT; GRANT REPLICATION CLIENT ON *.* TO 'ferry'"},
		{"REVOKE SELECT ON *.* FROM 'ferry'@'%'", "GRANT SELECT ON *.* TO 'ferry'@'%'",
			"cdc:trading-db: user ferry lacks SELECT on trading; GRANT SELECT ON trading.* TO 'ferry'"},
	} {
		t.Run(c.want[16:40], func(t *testing.T) {
			if err := m.Exec(c.set); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := m.Exec(c.reset); err != nil {
					t.Fatal(err)
				}
			}()
			_, err := Check(ctx, cfgFor(m, devenv.FerryUser, devenv.FerryPassword), "cdc:trading-db", []string{"trading"})
			assertRefused(t, err, c.want)
		})
	}

	// SELECT on the captured database alone is enough.
	if err := m.Exec("REVOKE SELECT ON *.* FROM 'ferry'@'%'", "GRANT SELECT ON trading.* TO 'ferry'@'%'"); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(ctx, cfgFor(m, devenv.FerryUser, devenv.FerryPassword), "cdc:trading-db", []string{"trading"}); err != nil {
		t.Fatalf("SELECT on trading.* refused: %v", err)
	}
}

// The binlog off needs a restart: its own server.
func TestCheckBinlogOff(t *testing.T) {
	m := startMariaDB(t, "--skip-log-bin")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Check(ctx, cfgFor(m, devenv.FerryUser, devenv.FerryPassword), "cdc:trading-db", []string{"trading"})
	assertRefused(t, err, "cdc:trading-db: log_bin is OFF; enable the binlog (log_bin and server_id in my.cnf, then restart the server)")
}

func assertRefused(t *testing.T, err error, want string) {
	t.Helper()
	var ref *Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("want a refusal %q, got %v", want, err)
	}
	for _, l := range ref.Lines {
		if l == want {
			if strings.Contains(l, "\n") {
				t.Fatalf("line has a newline: %q", l)
			}
			return
		}
	}
	t.Fatalf("refusal lines %q lack %q", ref.Lines, want)
}

// Package devtest starts devenv's servers for a test: each fails the test
// when it cannot start, and stops when the test ends.
package devtest

import (
	"os"
	"os/exec"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-pipelines/ferry/internal/devenv"
)

// Pair starts dc1 and dc2 on free ports.
func Pair(t testing.TB, opts ...kfake.Opt) *devenv.Pair {
	t.Helper()
	s, err := devenv.StartPair(0, 0, opts...)
	return started(t, s, err)
}

// Kafka starts one cluster on a free port.
func Kafka(t testing.TB, name string, opts ...kfake.Opt) *devenv.Kafka {
	t.Helper()
	s, err := devenv.StartKafka(name, 0, opts...)
	return started(t, s, err)
}

// MariaDB starts a MariaDB server in a temporary directory.
func MariaDB(t testing.TB, opts devenv.MariaDBOptions) *devenv.MariaDB {
	t.Helper()
	s, err := devenv.StartMariaDB(opts)
	return started(t, s, err)
}

// MariaDBReplica starts a MariaDB server that replicates primary by GTID.
func MariaDBReplica(t testing.TB, primary *devenv.MariaDB, opts devenv.MariaDBOptions) *devenv.MariaDB {
	t.Helper()
	s, err := devenv.StartMariaDBReplica(primary, opts)
	return started(t, s, err)
}

// Postgres starts a PostgreSQL server in a temporary directory.
func Postgres(t testing.TB, opts devenv.PostgresOptions) *devenv.Postgres {
	t.Helper()
	s, err := devenv.StartPostgres(opts)
	return started(t, s, err)
}

// started takes a server's start results: it fails the test on an error
// and closes the server when the test ends.
func started[S interface{ Close() }](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Tool is the path of the command name (kcat, promtool, prometheus). A
// test without it is skipped, unless FERRY_REQUIRE_TOOLS is set, as
// `make test` sets it after installing them: then the test fails, so that
// a missing package never passes as a skipped test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("FERRY_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is not installed (make test installs it with .ci/deps)", name)
	}
	t.Skipf("%s is not installed (make test installs it with .ci/deps)", name)
	return ""
}

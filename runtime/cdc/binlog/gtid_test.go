package binlog

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/internal/devenv"
)

// TestPositionOrigin: a position records its server next to file and
// offset; one read from a checkpoint written before it did has none and is
// taken as any server's own (resumed by file and offset, as then).
func TestPositionOrigin(t *testing.T) {
	p := Position{File: "binlog.000003", Pos: 42, GTID: "0-1-7", Origin: Origin{ServerID: 1}}
	b, _ := json.Marshal(p)
	if got, want := string(b), `{"file":"binlog.000003","pos":42,"gtid":"0-1-7","server_id":1}`; got != want {
		t.Fatalf("JSON %s, want %s", got, want)
	}
	var old Position
	if err := json.Unmarshal([]byte(`{"file":"binlog.000003","pos":42,"gtid":"0-1-7"}`), &old); err != nil {
		t.Fatal(err)
	}
	mysql := Origin{ServerID: 1, ServerUUID: "3e11fa47-71ca-11e1-9e33-c80aa9429562"}
	for _, c := range []struct {
		a, b Origin
		same bool
	}{
		{old.Origin, Origin{ServerID: 2}, true},
		{p.Origin, Origin{ServerID: 1}, true},
		{p.Origin, Origin{ServerID: 2}, false},
		{mysql, Origin{ServerID: 1, ServerUUID: "5c2d4a1e-71ca-11e1-9e33-c80aa9429562"}, false},
	} {
		if got := c.a.Same(c.b); got != c.same {
			t.Errorf("%s same as %s: %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// TestFirstPosition: the oldest binlog file's start comes with the GTID
// position that file starts after, the server's position when it was
// opened, not the empty set: purged history is not asked for again on
// another server.
func TestFirstPosition(t *testing.T) {
	m := startMariaDB(t)
	if err := m.Exec("CREATE DATABASE trading", "CREATE TABLE trading.t (id INT PRIMARY KEY)", "INSERT INTO trading.t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	before, err := m.Query("SELECT @@gtid_binlog_pos")
	if err != nil {
		t.Fatal(err)
	}
	newest, err := m.PurgeBinlogs(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Exec("INSERT INTO trading.t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := FirstPosition(ctx, cfgFor(m, devenv.FerryUser, devenv.FerryPassword), "mariadb")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Position{File: newest, Pos: 4, GTID: before[0][0]}); p != want || p.GTID == "" {
		t.Fatalf("FirstPosition = %+v, want %+v", p, want)
	}
}

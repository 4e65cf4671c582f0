package bulk_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/sink"
	"github.com/ferry-pipelines/ferry/runtime/sink/bulk"
)

// TestChunksCoverEveryRow cuts tables of several key shapes into chunks
// and reads every chunk in a snapshot: each row comes exactly once,
// whatever the key (integers with gaps, a composite key of text
// and an integer, a declared key on a table without a primary key) and
// the chunk size.
func TestChunksCoverEveryRow(t *testing.T) {
	db := devtest.MariaDB(t, devenv.MariaDBOptions{})
	if err := db.Exec(
		"CREATE DATABASE shop",
		"CREATE TABLE shop.gaps (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO shop.gaps SELECT seq * 7, CONCAT('r', seq) FROM shop.seq_1_to_100",
		"CREATE TABLE shop.pairs (region VARCHAR(8), n INT, v INT, PRIMARY KEY (region, n))",
		"INSERT INTO shop.pairs SELECT ELT(1 + seq % 3, 'eu', 'us', 'apac'), seq, seq FROM shop.seq_1_to_90",
		"CREATE TABLE shop.keyless (code VARCHAR(8) NOT NULL, v INT)",
		"INSERT INTO shop.keyless SELECT CONCAT('c', LPAD(seq, 3, '0')), seq FROM shop.seq_1_to_50",
	); err != nil {
		t.Fatal(err)
	}
	cfg := binlog.Config{Addr: db.Addr(), User: devenv.FerryUser, Password: devenv.FerryPassword, ServerID: 77}
	ctx := context.Background()
	c, err := binlog.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		table string
		key   []string
		rows  int
	}{
		{"shop.gaps", nil, 100},
		{"shop.pairs", nil, 90},
		{"shop.keyless", []string{"code"}, 50},
	} {
		for _, size := range []int{1, 7, 64, 1000} {
			t.Run(fmt.Sprintf("%s/%d", tc.table, size), func(t *testing.T) {
				tbl, err := sink.LoadTable(c, &plan.SinkJob{Table: tc.table, Target: "public.t", Key: tc.key})
				if err != nil {
					t.Fatal(err)
				}
				chunks, err := bulk.Chunks(c, tbl, size)
				if err != nil {
					t.Fatal(err)
				}
				if want := (tc.rows + size - 1) / size; len(chunks) < want {
					t.Errorf("%d chunks of %d rows for %d rows", len(chunks), size, tc.rows)
				}
				snaps, err := bulk.OpenSnapshots(ctx, cfg, 1)
				if err != nil {
					t.Fatal(err)
				}
				defer snaps[0].Close()
				seen := map[string]bool{}
				var last string
				for _, ch := range chunks {
					rows, err := snaps[0].Rows(tbl, ch)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range rows {
						k := keyOf(tbl, r)
						if seen[k] {
							t.Fatalf("row %s read twice", k)
						}
						seen[k] = true
						last = k
					}
				}
				if len(seen) != tc.rows {
					t.Fatalf("%d rows read of %d (last %s)", len(seen), tc.rows, last)
				}
			})
		}
	}
}

func keyOf(t *sink.Table, r sink.Row) string {
	k := ""
	for _, i := range t.Key {
		k += "/" + *r.Values[i]
	}
	return k
}

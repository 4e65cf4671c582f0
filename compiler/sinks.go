package compiler

import (
	"maps"
	"slices"
	"strings"
)

// PostgreSQL truncates names past 63 bytes; ferry's versions table is
// named <table>_ferry_versions, so a target table name leaves room for it.
const (
	pgNameMax      = 63
	versionsSuffix = "_ferry_versions"
)

// sinks checks the sinks of CDC tables: their shard, target names, column
// renames, and two sinks writing one table of one database (the same DSN
// reference).
func (c *checker) sinks() {
	var targets []decl[string]
	names := map[string]string{} // decl key -> target table
	for _, name := range slices.Sorted(maps.Keys(c.d.defs.CDC)) {
		src := c.d.defs.CDC[name]
		for _, t := range src.TableNames() {
			s := src.Tables[t].Sink
			if s == nil {
				continue
			}
			at := func(keys ...string) string {
				return path("cdc", append([]string{name, "tables", t, "sink"}, keys...)...)
			}
			c.shardRef(at("shard"), s.Shard)
			target := sinkTarget(t, s)
			tablePath := at()
			if s.Table != "" {
				tablePath = at("table")
			}
			schemaName, table := splitTable(target)
			switch {
			case len(schemaName) > pgNameMax:
				c.errorf(tablePath, "schema name %q is longer than PostgreSQL's %d bytes", schemaName, pgNameMax)
			case len(table) > pgNameMax-len(versionsSuffix):
				c.errorf(tablePath, "table name %q is longer than %d bytes (PostgreSQL allows %d and ferry adds %s for its versions table): set sink.table to a shorter name", table, pgNameMax-len(versionsSuffix), pgNameMax, versionsSuffix)
			}
			c.sinkColumns(at("columns"), s.Columns)
			dsn := s.Postgres.DSN
			key := dsn.Env + "\x00" + dsn.File + "\x00" + target
			names[key] = target
			targets = append(targets, decl[string]{key, "cdc", []string{name, "tables", t, "sink", "table"}})
		}
	}
	duplicates(c, targets, func(d, first decl[string]) {
		c.errorf(d.path(), "table %s of this database is also written by the sink at %s: give each sink its own target table", names[d.key], c.at(first.path()))
	})
}

// sinkColumns reports renames onto ferry's own column names, names too
// long for PostgreSQL and two columns renamed to one.
func (c *checker) sinkColumns(p string, cols map[string]string) {
	seen := map[string]string{}
	for _, from := range slices.Sorted(maps.Keys(cols)) {
		to := cols[from]
		switch {
		case strings.HasPrefix(to, "_ferry_"):
			c.errorf(path(p, from), "column name %q is reserved: ferry's own columns start with _ferry_", to)
		case len(to) > pgNameMax:
			c.errorf(path(p, from), "column name %q is longer than PostgreSQL's %d bytes", to, pgNameMax)
		case seen[to] != "":
			c.errorf(path(p, from), "columns %q and %q are both renamed to %q: give each its own name", seen[to], from, to)
		}
		seen[to] = from
	}
}

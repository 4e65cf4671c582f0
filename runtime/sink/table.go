package sink

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// Names of ferry's own columns and tables in the target database.
const (
	VersionColumn  = "_ferry_version"
	DeletedColumn  = "_ferry_deleted"
	VersionsSuffix = "_ferry_versions"
	OffsetsTable   = "ferry_offsets"
)

// Table is a sink's target: the source table's columns mapped to a
// PostgreSQL table, with its versions table (every key's newest version,
// deleted keys included) and the SQL that applies a batch of rows.
type Table struct {
	Source  string // "db.table"
	Schema  string
	Name    string
	Columns []Column
	Key     []int // indexes of the primary key columns, in key order
	// RawYears: the source writes DATE and DATETIME years as stored (its
	// time adjuster off), so reading MySQL directly must too.
	RawYears bool

	index  map[string]int // source column name -> index
	apply  string
	delete string
}

// Row is one row to write: every column's PostgreSQL text (nil is NULL; a
// delete needs only the key), the version of the change and whether it
// deletes the key.
type Row struct {
	Values  []*string
	Version Version
	Deleted bool
}

// LoadTable reads the source table's columns and key over a MySQL
// connection and maps them to the sink's target.
func LoadTable(my *client.Conn, s *plan.SinkJob) (*Table, error) {
	db, name, _ := strings.Cut(s.Table, ".")
	cols, err := Columns(my, db, name, s.Columns)
	if err != nil {
		return nil, err
	}
	for from := range s.Columns {
		if !slices.ContainsFunc(cols, func(c Column) bool { return c.Source == from }) {
			return nil, fmt.Errorf("sink.columns renames %s, which table %s does not have: fix the name or drop the rename", from, s.Table)
		}
	}
	key, err := keyColumns(my, db, name, cols, s.Key)
	if err != nil {
		return nil, err
	}
	schema, target, _ := strings.Cut(s.Target, ".")
	t := &Table{Source: s.Table, Schema: schema, Name: target, Columns: cols, Key: key, RawYears: s.MySQL.RawYears(), index: map[string]int{}}
	for i, c := range cols {
		t.index[c.Source] = i
	}
	t.apply, t.delete = t.applySQL(), t.deleteSQL()
	return t, nil
}

// Ident is the target table's quoted name.
func (t *Table) Ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// VersionsIdent is the versions table's quoted name.
func (t *Table) VersionsIdent() string {
	return pgx.Identifier{t.Schema, t.Name + VersionsSuffix}.Sanitize()
}

// OffsetsIdent is the offsets table's quoted name, in the target's schema.
func (t *Table) OffsetsIdent() string { return pgx.Identifier{t.Schema, OffsetsTable}.Sanitize() }

func q(name string) string { return pgx.Identifier{name}.Sanitize() }

// keyList is the key's target columns, quoted, with a prefix each.
func (t *Table) keyList(prefix string) string {
	parts := make([]string, len(t.Key))
	for i, k := range t.Key {
		parts[i] = prefix + q(t.Columns[k].Target)
	}
	return strings.Join(parts, ", ")
}

// Ensure creates the target schema and tables where they are missing, and
// columns the target lacks (a column added at the source). It holds an
// advisory lock on the target schema, not the table: the schema and its
// offsets table are shared by every sink into it, and PostgreSQL's IF NOT
// EXISTS does not keep two creators from colliding (23505 on
// pg_namespace), so sinks starting together into one schema take turns.
func (t *Table) Ensure(ctx context.Context, pg querier) error {
	tx, err := pg.Begin(ctx)
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit a no-op
	var defs, keyDefs []string
	for _, k := range t.Key {
		keyDefs = append(keyDefs, q(t.Columns[k].Target)+" "+t.Columns[k].PG+" NOT NULL")
	}
	for _, c := range t.Columns {
		d := q(c.Target) + " " + c.PG
		if c.Key {
			d += " NOT NULL"
		}
		defs = append(defs, d)
	}
	pk := "PRIMARY KEY (" + t.keyList("") + ")"
	stmts := []string{
		"SELECT pg_advisory_xact_lock(hashtext('ferry sink schema ' || " + quoteLiteral(t.Schema) + "))",
		"CREATE SCHEMA IF NOT EXISTS " + q(t.Schema),
		"CREATE TABLE IF NOT EXISTS " + t.Ident() + " (" + strings.Join(defs, ", ") + ", " + q(VersionColumn) + " numeric(38,0), " + pk + ")",
		"CREATE TABLE IF NOT EXISTS " + t.VersionsIdent() + " (" + strings.Join(keyDefs, ", ") + ", " +
			q(VersionColumn) + " numeric(38,0) NOT NULL, " + q(DeletedColumn) + " boolean NOT NULL, " + pk + ")",
		"CREATE TABLE IF NOT EXISTS " + t.OffsetsIdent() + " (job text NOT NULL, topic text NOT NULL, partition integer NOT NULL, " +
			"next_offset bigint NOT NULL, version numeric(38,0), applied_at timestamptz, PRIMARY KEY (job, topic, partition))",
		"ALTER TABLE " + t.Ident() + " ADD COLUMN IF NOT EXISTS " + q(VersionColumn) + " numeric(38,0)",
	}
	for _, c := range t.Columns {
		stmts = append(stmts, "ALTER TABLE "+t.Ident()+" ADD COLUMN IF NOT EXISTS "+q(c.Target)+" "+c.PG)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("PostgreSQL: prepare table %s: %w", t.Schema+"."+t.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("PostgreSQL: prepare table %s: %w", t.Schema+"."+t.Name, err)
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// applySQL is the statement that applies a batch of rows given as arrays
// (one text array per column, the versions as text, the delete flags):
//
//  1. the batch's versions go into the versions table where they are newer
//     than the key's stored version (the row lock on the key serializes
//     writers of one key: the stream, ferry load, other processes; keys
//     are locked in key order, so two writers never deadlock);
//  2. the upserts that won are written into the target.
//
// The deletes that won are done by deleteSQL, a statement of its own: a
// statement sees the rows committed when it started, and a row that
// another writer inserted while this one waited for the key's lock must be
// seen to be deleted.
//
// An older change thus never overwrites a newer row, and a delete's version
// stays behind, so an older insert (a bulk load's row, say) cannot bring
// the key back.
func (t *Table) applySQL() string {
	n := len(t.Columns)
	var sel, args, cols, sets, uCols, bCols []string
	for i, c := range t.Columns {
		sel = append(sel, fmt.Sprintf("u.c%d::%s AS c%d", i, c.PG, i))
		args = append(args, fmt.Sprintf("$%d::text[]", i+1))
		cols = append(cols, q(c.Target))
		uCols = append(uCols, fmt.Sprintf("c%d", i))
		bCols = append(bCols, fmt.Sprintf("b.c%d", i))
		if !c.Key {
			sets = append(sets, q(c.Target)+" = EXCLUDED."+q(c.Target))
		}
	}
	sets = append(sets, q(VersionColumn)+" = EXCLUDED."+q(VersionColumn))
	var bKeys, join []string
	for _, k := range t.Key {
		bKeys = append(bKeys, fmt.Sprintf("b.c%d", k))
		join = append(join, fmt.Sprintf("w.%s = b.c%d", q(t.Columns[k].Target), k))
	}
	v := q(VersionColumn)
	return "WITH b AS (SELECT " + strings.Join(sel, ", ") + ", u.fv::numeric(38,0) AS fv, u.fd AS fd FROM unnest(" +
		strings.Join(args, ", ") + fmt.Sprintf(", $%d::text[], $%d::boolean[]) AS u(", n+1, n+2) + strings.Join(uCols, ", ") + ", fv, fd)),\n" +
		"w AS (INSERT INTO " + t.VersionsIdent() + " AS vt (" + t.keyList("") + ", " + v + ", " + q(DeletedColumn) + ")" +
		" SELECT " + strings.Join(bKeys, ", ") + ", b.fv, b.fd FROM b ORDER BY " + strings.Join(bKeys, ", ") +
		" ON CONFLICT (" + t.keyList("") + ") DO UPDATE SET " + v + " = EXCLUDED." + v + ", " + q(DeletedColumn) + " = EXCLUDED." + q(DeletedColumn) +
		" WHERE vt." + v + " < EXCLUDED." + v + " RETURNING " + t.keyList("") + "),\n" +
		"up AS (INSERT INTO " + t.Ident() + " (" + strings.Join(cols, ", ") + ", " + v + ")" +
		" SELECT " + strings.Join(bCols, ", ") + ", b.fv FROM b JOIN w ON " + strings.Join(join, " AND ") + " WHERE NOT b.fd" +
		" ON CONFLICT (" + t.keyList("") + ") DO UPDATE SET " + strings.Join(sets, ", ") + " RETURNING 1)\n" +
		"SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM up)"
}

// deleteSQL deletes the target rows of the given keys (one text array per
// key column) whose stored version is a delete: the deletes that won.
func (t *Table) deleteSQL() string {
	var args, names, conds []string
	for i, k := range t.Key {
		c := t.Columns[k]
		args = append(args, fmt.Sprintf("$%d::text[]", i+1))
		names = append(names, fmt.Sprintf("k%d", i))
		conds = append(conds, fmt.Sprintf("vt.%s = d.k%d::%s AND t.%s = vt.%s", q(c.Target), i, c.PG, q(c.Target), q(c.Target)))
	}
	return "DELETE FROM " + t.Ident() + " AS t USING unnest(" + strings.Join(args, ", ") + ") AS d(" + strings.Join(names, ", ") + "), " +
		t.VersionsIdent() + " AS vt WHERE vt." + q(DeletedColumn) + " AND " + strings.Join(conds, " AND ")
}

// Apply writes rows (at most one per key) in the transaction and returns
// how many won against the stored versions.
func (t *Table) Apply(ctx context.Context, tx pgx.Tx, rows []Row) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	n := len(t.Columns)
	args := make([]any, n+2)
	for i := 0; i < n; i++ {
		col := make([]*string, len(rows))
		for r := range rows {
			col[r] = rows[r].Values[i]
		}
		args[i] = col
	}
	versions := make([]string, len(rows))
	deleted := make([]bool, len(rows))
	delKeys := make([][]*string, len(t.Key))
	for r := range rows {
		versions[r] = rows[r].Version.String()
		deleted[r] = rows[r].Deleted
		if rows[r].Deleted {
			for i, k := range t.Key {
				delKeys[i] = append(delKeys[i], rows[r].Values[k])
			}
		}
	}
	args[n], args[n+1] = versions, deleted
	var won, up int64
	if err := tx.QueryRow(ctx, t.apply, args...).Scan(&won, &up); err != nil {
		return 0, fmt.Errorf("PostgreSQL: apply to %s: %w", t.Schema+"."+t.Name, err)
	}
	if len(delKeys[0]) > 0 {
		dargs := make([]any, len(delKeys))
		for i := range delKeys {
			dargs[i] = delKeys[i]
		}
		if _, err := tx.Exec(ctx, t.delete, dargs...); err != nil {
			return 0, fmt.Errorf("PostgreSQL: delete from %s: %w", t.Schema+"."+t.Name, err)
		}
	}
	return int(won), nil
}

// KeyNames is the key's target column names, joined by ", ".
func (t *Table) KeyNames() string {
	names := make([]string, len(t.Key))
	for i, k := range t.Key {
		names[i] = t.Columns[k].Target
	}
	return strings.Join(names, ", ")
}

package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
)

// TestValidateSources: ferry validate --sources refuses, on the line of
// each table's sink, what the sink would refuse when it starts: a table
// without a key (unless key: names one), a missing table, a rename of a
// column the table lacks. Tables keyed by a primary key, by a unique index
// of NOT NULL columns or by key: pass; without --sources the directory is
// valid, as the definitions alone cannot tell. A table without a sink is
// not looked at.
func TestValidateSources(t *testing.T) {
	db := devtest.MariaDB(t, devenv.MariaDBOptions{})
	if err := db.Exec(
		"CREATE DATABASE trading",
		"CREATE TABLE trading.orders (id INT PRIMARY KEY, note VARCHAR(40))",
		"CREATE TABLE trading.coded (code VARCHAR(10) NOT NULL, UNIQUE KEY (code))",
		"CREATE TABLE trading.nokey (note VARCHAR(40))",
		"CREATE TABLE trading.declared (note VARCHAR(40))",
		"CREATE TABLE trading.lines (id INT PRIMARY KEY, qty INT)",
	); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "pipelines.cue", fmt.Sprintf(`package pipelines

datacenters: dc1: kafka: brokers: ["127.0.0.1:19092"]

let pg = {postgres: dsn: env: "ORDERS_PG_DSN"}
cdc: "trading-db": {
	mysql: {address: %q, user: %q, password: env: "TRADING_DB_PASSWORD", serverID: 5401}
	datacenter:  "dc1"
	topicPrefix: "trading"
	tables: {
		"trading.orders": {tier: 1, sink: pg}
		"trading.coded": {tier: 2, sink: pg}
		"trading.nokey": {tier: 2, sink: pg}
		"trading.declared": {tier: 2, key: ["note"], sink: pg}
		"trading.gone": {tier: 2, sink: pg}
		"trading.lines": {tier: 2, sink: pg & {columns: {quantity: "qty_total"}}}
		"trading.later": {tier: 2, snapshot: "no_data"} // no sink: not checked

	}
}
`, db.Addr(), devenv.FerryUser))
	t.Setenv("TRADING_DB_PASSWORD", devenv.FerryPassword)
	ferry(t, dir, "validate", ".").want(t, 0, ptr(".: valid, 7 jobs\n"), ptr(""))
	file := filepath.Join(".", "pipelines.cue")
	ferry(t, dir, "validate", ".", "--sources").want(t, 1, ptr(""), ptr(fmt.Sprintf(
		`%[1]s:13:30: cdc."trading-db".tables."trading.nokey".sink: table trading.nokey has no primary key nor unique index of NOT NULL columns: a sink applies changes by key; name the columns that identify a row with key: [...] on the table, or add a primary key
%[1]s:15:29: cdc."trading-db".tables."trading.gone".sink: table trading.gone not found on the source (or the user may not read it)
%[1]s:16:30: cdc."trading-db".tables."trading.lines".sink: sink.columns renames quantity, which table trading.lines does not have: fix the name or drop the rename
`, file)))
}

package binlog

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Server is what the start checks learned about the server.
type Server struct {
	Flavor  string // "mysql" or "mariadb"
	Version string
	// GTIDMode reports MySQL's gtid_mode=ON (MariaDB always has GTIDs).
	GTIDMode bool
	// Origin names the server: a new checkpoint's positions are of it.
	Origin Origin
}

// Refusal lists the reasons a server cannot be captured, one line each:
// the setting as it is and how to fix it.
type Refusal struct {
	Lines []string
}

func (r *Refusal) Error() string { return strings.Join(r.Lines, "\n") }

// Connect opens an ordinary SQL connection with the source's account, its
// session in utf8mb4 whatever the server's defaults: every text value a
// SELECT returns is converted by the server from its column's character
// set, losslessly. (go-mysql's handshake asks for collation 255, MySQL 8's
// utf8mb4_0900_ai_ci, which MariaDB does not know and answers with its
// character_set_server, latin1 by default; its SetCharset then believes
// the session is utf8mb4 already. So the names are set explicitly.)
func Connect(ctx context.Context, cfg Config) (*client.Conn, error) {
	opts := []client.Option{func(c *client.Conn) error { return c.SetCollation(sessionCollation) }}
	if cfg.TLS != nil {
		opts = append(opts, func(c *client.Conn) error { c.SetTLSConfig(cfg.TLS); return nil })
	}
	c, err := client.ConnectWithContext(ctx, cfg.Addr, cfg.User, cfg.Password, "", 0, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := c.Execute("SET NAMES utf8mb4 COLLATE " + sessionCollation); err != nil {
		c.Close()
		return nil, fmt.Errorf("setting the session's character set: %w", err)
	}
	return c, nil
}

// sessionCollation is utf8mb4's collation that MySQL 5.5+ and every
// MariaDB know by the same id (45).
const sessionCollation = "utf8mb4_general_ci"

// Check runs the start checks: the binlog is on, in ROW format with FULL
// row images and (where the server has the variable) FULL row metadata,
// and the account holds REPLICATION SLAVE, REPLICATION CLIENT and SELECT
// on the captured databases. name prefixes each line ("cdc:trading-db").
// A connection failure is returned as it is (the caller retries); failed
// checks come back as a *Refusal.
func Check(ctx context.Context, cfg Config, name string, databases []string) (Server, error) {
	var srv Server
	c, err := Connect(ctx, cfg)
	if err != nil {
		return srv, err
	}
	defer c.Close()
	srv.Version = c.GetServerVersion()
	srv.Flavor = cfg.Flavor
	if srv.Flavor == "" {
		srv.Flavor = mysql.MySQLFlavor
		if strings.Contains(strings.ToLower(srv.Version), "mariadb") {
			srv.Flavor = mysql.MariaDBFlavor
		}
	}
	vars, err := globals(c, "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "gtid_mode")
	if err != nil {
		return srv, err
	}
	for k, v := range vars {
		vars[k] = strings.ToUpper(v)
	}
	if srv.Origin, err = identify(c); err != nil {
		return srv, err
	}
	srv.GTIDMode = vars["gtid_mode"] == "ON" || srv.Flavor == mysql.MariaDBFlavor
	var lines []string
	refuse := func(format string, args ...any) {
		lines = append(lines, name+": "+fmt.Sprintf(format, args...))
	}
	if v := vars["log_bin"]; v != "ON" && v != "1" {
		refuse("log_bin is %s; enable the binlog (log_bin and server_id in my.cnf, then restart the server)", orUnset(v))
	} else {
		if v := vars["binlog_format"]; v != "ROW" {
			refuse("binlog_format is %s; set binlog_format=ROW (SET GLOBAL binlog_format=ROW and in my.cnf)", orUnset(v))
		}
		if v := vars["binlog_row_image"]; v != "FULL" {
			refuse("binlog_row_image is %s; set binlog_row_image=FULL (SET GLOBAL binlog_row_image=FULL and in my.cnf)", orUnset(v))
		}
		if v, ok := vars["binlog_row_metadata"]; !ok {
			refuse("server %s has no binlog_row_metadata; ferry reads column names from the binlog and needs MySQL 8.0.1+ or MariaDB 10.5+ with binlog_row_metadata=FULL", srv.Version)
		} else if v != "FULL" {
			refuse("binlog_row_metadata is %s; set binlog_row_metadata=FULL (SET GLOBAL binlog_row_metadata=FULL and in my.cnf)", orUnset(v))
		}
	}
	grants, err := showGrants(c)
	if err != nil {
		return srv, err
	}
	user := cfg.User
	if !grants.has("REPLICATION SLAVE", "") {
		refuse("user %s lacks REPLICATION SLAVE; GRANT REPLICATION SLAVE ON *.* TO '%s'", user, user)
	}
	// MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR.
	if !grants.has("REPLICATION CLIENT", "") && !grants.has("BINLOG MONITOR", "") {
		refuse("user %s lacks REPLICATION CLIENT; GRANT REPLICATION CLIENT ON *.* TO '%s'", user, user)
	}
	for _, db := range databases {
		if !grants.has("SELECT", db) {
			refuse("user %s lacks SELECT on %s; GRANT SELECT ON %s.* TO '%s'", user, db, db, user)
		}
	}
	if len(lines) > 0 {
		return srv, &Refusal{Lines: lines}
	}
	return srv, nil
}

func orUnset(v string) string {
	if v == "" {
		return "OFF"
	}
	return v
}

type grantSet []grant

type grant struct {
	privs []string // upper case, "ALL PRIVILEGES" as one
	on    string   // "*" for *.*, else the database name
}

var grantRE = regexp.MustCompile("(?i)^GRANT (.+?) ON (\\S+) TO ")

func showGrants(c *client.Conn) (grantSet, error) {
	r, err := c.Execute("SHOW GRANTS FOR CURRENT_USER()")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var gs grantSet
	for i := range r.Values {
		s := getString(r, i, 0)
		m := grantRE.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		on := strings.ReplaceAll(m[2], "`", "")
		db, _, _ := strings.Cut(on, ".")
		g := grant{on: db}
		for _, p := range strings.Split(m[1], ",") {
			g.privs = append(g.privs, strings.ToUpper(strings.TrimSpace(p)))
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// has reports a privilege held globally or, when db is not "", on db.
func (gs grantSet) has(priv, db string) bool {
	for _, g := range gs {
		if g.on != "*" && (db == "" || !strings.EqualFold(g.on, db)) {
			continue
		}
		for _, p := range g.privs {
			if p == priv || p == "ALL PRIVILEGES" || p == "ALL" {
				return true
			}
		}
	}
	return false
}

// MasterStatus returns the server's current binlog position.
func MasterStatus(ctx context.Context, cfg Config, flavor string) (Position, error) {
	c, err := Connect(ctx, cfg)
	if err != nil {
		return Position{}, err
	}
	defer c.Close()
	return masterStatus(c, flavor)
}

// MasterStatusConn is MasterStatus on an open connection.
func MasterStatusConn(c *client.Conn, flavor string) (Position, error) {
	return masterStatus(c, flavor)
}

func masterStatus(c *client.Conn, flavor string) (Position, error) {
	// On MariaDB the GTID position is a separate variable: read it before
	// and after the file position and retry until no transaction slipped
	// in between, so the pair is consistent.
	for attempt := 0; ; attempt++ {
		var before string
		if flavor == mysql.MariaDBFlavor {
			g, err := c.Execute("SELECT @@gtid_binlog_pos")
			if err != nil {
				return Position{}, err
			}
			before = getString(g, 0, 0)
			g.Close()
		}
		p, err := fileStatus(c)
		if err != nil {
			return p, err
		}
		if flavor != mysql.MariaDBFlavor {
			return p, nil
		}
		g, err := c.Execute("SELECT @@gtid_binlog_pos")
		if err != nil {
			return Position{}, err
		}
		after := getString(g, 0, 0)
		g.Close()
		if before == after || attempt >= 50 {
			p.GTID = after
			return p, nil
		}
	}
}

func fileStatus(c *client.Conn) (Position, error) {
	r, err := c.Execute("SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 renamed it.
		var err2 error
		if r, err2 = c.Execute("SHOW BINARY LOG STATUS"); err2 != nil {
			return Position{}, err
		}
	}
	defer r.Close()
	if len(r.Values) == 0 {
		return Position{}, fmt.Errorf("SHOW MASTER STATUS returned nothing: is the binlog on?")
	}
	file := getString(r, 0, 0)
	pos, _ := r.GetUint(0, 1)
	p := Position{File: file, Pos: pos}
	if len(r.Fields) >= 5 {
		p.GTID = getString(r, 0, 4) // MySQL's Executed_Gtid_Set
	}
	return p, nil
}

// FirstPosition returns the start of the oldest binlog file the server
// still has, with the GTID set that file starts after, so a checkpoint
// taken before the first transaction can resume on another server too.
func FirstPosition(ctx context.Context, cfg Config, flavor string) (Position, error) {
	c, err := Connect(ctx, cfg)
	if err != nil {
		return Position{}, err
	}
	defer c.Close()
	file, err := oldestFile(c)
	if err != nil {
		return Position{}, err
	}
	p := Position{File: file, Pos: 4}
	if flavor == mysql.MariaDBFlavor {
		p.GTID, err = gtidPosAt(c, file)
	} else {
		// What is not in any binlog file: what precedes the oldest.
		var vars map[string]string
		vars, err = globals(c, "gtid_purged")
		p.GTID = strings.ReplaceAll(vars["gtid_purged"], "\n", "")
	}
	return p, err
}

func oldestFile(c *client.Conn) (string, error) {
	r, err := c.Execute("SHOW BINARY LOGS")
	if err != nil {
		return "", err
	}
	defer r.Close()
	if len(r.Values) == 0 {
		return "", fmt.Errorf("SHOW BINARY LOGS returned nothing: is the binlog on?")
	}
	return getString(r, 0, 0), nil
}

// HasFile reports whether the server still has a binlog file.
func HasFile(ctx context.Context, cfg Config, file string) (bool, error) {
	c, err := Connect(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	r, err := c.Execute("SHOW BINARY LOGS")
	if err != nil {
		return false, err
	}
	defer r.Close()
	for i := range r.Values {
		f := getString(r, i, 0)
		if f == file {
			return true, nil
		}
	}
	return false, nil
}

// getString returns a copy of a result's value: go-mysql's strings point
// into pooled buffers that later queries reuse.
func getString(r *mysql.Result, row, col int) string {
	s, _ := r.GetString(row, col)
	return strings.Clone(s)
}

// GetString is getString for other packages.
func GetString(r *mysql.Result, row, col int) string { return getString(r, row, col) }

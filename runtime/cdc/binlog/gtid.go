package binlog

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Origin names the server a binlog file and offset are of: its server_id
// and, on MySQL, its server_uuid (MariaDB has none). Another server, a
// replica after a failover say, has the same transactions at other file
// names and offsets; only their GTIDs name them on every server.
type Origin struct {
	ServerID   uint32 `json:"server_id,omitempty"`
	ServerUUID string `json:"server_uuid,omitempty"`
}

func (o Origin) String() string {
	s := "server_id " + strconv.FormatUint(uint64(o.ServerID), 10)
	if o.ServerUUID != "" {
		s += " (server_uuid " + o.ServerUUID + ")"
	}
	return s
}

// Same reports whether o and p are one server. An unknown Origin (in a
// checkpoint written before ferry recorded it) is taken as the server's
// own, as it was then.
func (o Origin) Same(p Origin) bool { return o == Origin{} || p == Origin{} || o == p }

// identify reads the server's Origin.
func identify(c *client.Conn) (Origin, error) {
	vars, err := globals(c, "server_id", "server_uuid")
	if err != nil {
		return Origin{}, err
	}
	id, err := strconv.ParseUint(vars["server_id"], 10, 32)
	if err != nil {
		return Origin{}, fmt.Errorf("server_id %q: %v", vars["server_id"], err)
	}
	return Origin{ServerID: uint32(id), ServerUUID: vars["server_uuid"]}, nil
}

// globals reads global variables by name (lower case); a variable the
// server does not have is missing from the map.
func globals(c *client.Conn, names ...string) (map[string]string, error) {
	r, err := c.Execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('" + strings.Join(names, "','") + "')")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	vars := map[string]string{}
	for i := range r.Values {
		vars[strings.ToLower(getString(r, i, 0))] = getString(r, i, 1)
	}
	return vars, nil
}

// CheckGTID refuses, with a *Refusal that says the fix, to resume from
// pos's GTID set on server o, which cfg reaches, when o cannot go on from
// it without a gap or a duplicate (see checkGTID).
func CheckGTID(ctx context.Context, cfg Config, flavor string, pos Position, o Origin) error {
	c, err := Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return checkGTID(c, cfg.Addr, flavor, pos, o)
}

// resumeOn says how reading goes on from pos on the server c is connected
// to: by file and offset when pos is of that server, else (a failover)
// from pos's GTID set, which checkGTID must admit. It also returns the
// server's Origin.
func resumeOn(c *client.Conn, addr, flavor string, pos Position) (Origin, bool, error) {
	o, err := identify(c)
	if err != nil {
		return o, false, err
	}
	if pos.Origin.Same(o) {
		return o, false, nil
	}
	return o, true, checkGTID(c, addr, flavor, pos, o)
}

// checkGTID refuses to resume from pos's GTID set on server o unless o
// has every transaction of the set in its binlog (MySQL: and logs what it
// replicates) and has purged none that come after it.
func checkGTID(c *client.Conn, addr, flavor string, pos Position, o Origin) error {
	lead := fmt.Sprintf("the checkpoint is at %s of %s, but %s is %s", pos, pos.Origin, addr, o)
	refuse := func(format string, args ...any) error {
		return &Refusal{Lines: []string{lead + fmt.Sprintf(format, args...)}}
	}
	if pos.GTID == "" {
		return refuse(" and the checkpoint has no GTID set to resume from on another server; that needs GTIDs: gtid_mode=ON on MySQL 8 (MariaDB always has them) and log_slave_updates=ON on the replica; or point mysql.address back at %s", pos.Origin)
	}
	want, err := mysql.ParseGTIDSet(flavor, pos.GTID)
	if err != nil {
		return fmt.Errorf("checkpoint's GTID set %q: %v", pos.GTID, err)
	}
	vars, err := globals(c, "log_slave_updates", "log_replica_updates", "gtid_binlog_pos", "gtid_executed", "gtid_purged")
	if err != nil {
		return err
	}
	executed, purged := vars["gtid_executed"], vars["gtid_purged"]
	if flavor == mysql.MariaDBFlavor {
		// Only what is in its binlog (MariaDB's strict GTID mode, which
		// go-mysql asks for, then refuses a hole in it).
		executed = vars["gtid_binlog_pos"]
		if purged, err = oldestGTIDPos(c); err != nil {
			return err
		}
	} else if !strings.EqualFold(vars["log_replica_updates"], "ON") && !strings.EqualFold(vars["log_slave_updates"], "ON") {
		// gtid_executed would count what it replicated without logging.
		return refuse(", which has log_replica_updates=OFF: what it replicated is not in its binlog, so resuming there by GTID could miss changes; set log_replica_updates=ON (in my.cnf, then restart)")
	}
	has, err := mysql.ParseGTIDSet(flavor, strings.ReplaceAll(executed, "\n", ""))
	if err != nil {
		return fmt.Errorf("%s's GTID set %q: %v", o, executed, err)
	}
	if !has.Contain(want) {
		return refuse(", whose binlog lacks transactions already in Kafka (the checkpoint's GTID set %s is not within its %s): a replica behind its primary, or not a replica of it; let it catch up, or point mysql.address at a server that has them", pos.GTID, executed)
	}
	gone, err := mysql.ParseGTIDSet(flavor, strings.ReplaceAll(purged, "\n", ""))
	if err != nil {
		return fmt.Errorf("%s's purged GTID set %q: %v", o, purged, err)
	}
	if !want.Contain(gone) {
		return refuse(", which has purged binlogs with transactions after the checkpoint's GTID set %s (its binlogs start after %s), so changes were lost; keep binlogs longer (binlog_expire_logs_seconds) and load the tables again", pos.GTID, purged)
	}
	return nil
}

// oldestGTIDPos is the MariaDB GTID position the oldest binlog file starts
// after: transactions up to it may have been purged.
func oldestGTIDPos(c *client.Conn) (string, error) {
	oldest, err := oldestFile(c)
	if err != nil {
		return "", err
	}
	return gtidPosAt(c, oldest)
}

// gtidPosAt is the MariaDB GTID position a binlog file starts after.
func gtidPosAt(c *client.Conn, file string) (string, error) {
	g, err := c.Execute("SELECT BINLOG_GTID_POS(?, 4)", file)
	if err != nil {
		return "", err
	}
	defer g.Close()
	return getString(g, 0, 0), nil
}

package devenv

import (
	"fmt"
	"strconv"
	"time"
)

// StartMariaDBReplica starts a MariaDB that replicates primary by GTID
// (MASTER_USE_GTID=slave_pos) from the start of its binlog, with server_id
// 2 and log_slave_updates, so its own binlog holds the primary's
// transactions under their GTIDs: a server to fail over to. The ferry
// account and database come from the primary by replication.
func StartMariaDBReplica(primary *MariaDB, opts MariaDBOptions) (*MariaDB, error) {
	opts.NoFerryUser = true
	// After devenv's --server-id=1, so they win.
	opts.Args = append([]string{"--server-id=2", "--log-slave-updates"}, opts.Args...)
	m, err := StartMariaDB(opts)
	if err != nil {
		return nil, err
	}
	if err := m.Exec(
		"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT="+strconv.Itoa(primary.Port)+
			", MASTER_USER='"+FerryUser+"', MASTER_PASSWORD='"+FerryPassword+"', MASTER_USE_GTID=slave_pos",
		"START SLAVE",
	); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// CatchUp waits until the replica has applied every transaction in the
// primary's binlog as it is now.
func (m *MariaDB) CatchUp(primary *MariaDB, timeout time.Duration) error {
	rows, err := primary.Query("SELECT @@gtid_binlog_pos")
	if err != nil {
		return err
	}
	pos := rows[0][0]
	// MASTER_GTID_WAIT returns 0 once applied, -1 on timeout.
	rows, err = m.Query("SELECT MASTER_GTID_WAIT(?, ?)", pos, timeout.Seconds())
	if err != nil {
		return err
	}
	if rows[0][0] != "0" {
		st, _ := m.Query("SELECT @@gtid_slave_pos")
		return fmt.Errorf("replica did not reach the primary's GTID position %s within %v (at %v):\n%s", pos, timeout, st, m.ErrorLog(10))
	}
	return nil
}

package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// The account MariaDB hands ferry: what a CDC source needs and no more
// (REPLICATION SLAVE and CLIENT for the binlog, SELECT for the initial
// load, and writes to ferry's own heartbeat and watermark database).
const (
	FerryUser     = "ferry"
	FerryPassword = "ferry"
	// FerryDatabase holds ferry's heartbeat and watermark tables.
	FerryDatabase = "ferry"
)

// MariaDBOptions tune a development MariaDB.
type MariaDBOptions struct {
	// Port to listen on, on 127.0.0.1; 0 picks a free one.
	Port int
	// Dir holds the data directory, socket and log; "" makes a temporary
	// directory that Close removes.
	Dir string
	// Args are extra server options ("--binlog-format=STATEMENT" to test a
	// refused setting, say). They come after ferry's defaults and win.
	Args []string
	// NoFerryUser skips creating the ferry account.
	NoFerryUser bool
}

// MariaDB is a MariaDB server started from the Debian package in a
// directory of its own, with the binlog set up for CDC (ROW format, FULL row
// image and row metadata).
type MariaDB struct {
	Dir     string
	DataDir string
	Socket  string
	Port    int
	opts    MariaDBOptions
	ownDir  bool
	proc    process
}

// Addr is the server's TCP address, host:port.
func (m *MariaDB) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port)) }

// MariaDBBinaries finds mariadbd and mariadb-install-db, or says how to
// install them.
func MariaDBBinaries() (server, install string, err error) {
	server, err = exec.LookPath("mariadbd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mariadbd", "/usr/libexec/mariadbd"} {
			if _, e := os.Stat(p); e == nil {
				server, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("mariadbd not found: install the mariadb-server package (apt-get install mariadb-server)")
	}
	install, err = exec.LookPath("mariadb-install-db")
	if err != nil {
		return "", "", fmt.Errorf("mariadb-install-db not found: install the mariadb-server package (apt-get install mariadb-server)")
	}
	return server, install, nil
}

// StartMariaDB initialises a data directory, starts the server, waits for
// it and creates the ferry account.
func StartMariaDB(opts MariaDBOptions) (*MariaDB, error) {
	_, install, err := MariaDBBinaries()
	if err != nil {
		return nil, err
	}
	m := &MariaDB{opts: opts, proc: process{name: "mariadbd"}}
	if opts.Dir == "" {
		// Unix socket paths are limited to ~100 bytes: keep it short.
		dir, err := os.MkdirTemp("", "ferry-mariadb-")
		if err != nil {
			return nil, err
		}
		m.Dir, m.ownDir = dir, true
	} else {
		m.Dir = opts.Dir
		if err := os.MkdirAll(m.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	m.DataDir = filepath.Join(m.Dir, "data")
	m.Socket = filepath.Join(m.Dir, "mysqld.sock")
	// Its own tmpdir: information_schema queries write temporary tables
	// there, which a shared /tmp lets other processes disturb.
	if err := os.MkdirAll(filepath.Join(m.Dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	m.Port = opts.Port
	fail := func(err error) (*MariaDB, error) {
		m.Close()
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(m.DataDir, "mysql")); err != nil {
		args := []string{"--no-defaults", "--datadir=" + m.DataDir, "--auth-root-authentication-method=normal", "--skip-test-db"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		out, err := exec.Command(install, args...).CombinedOutput()
		if err != nil {
			// Seen once on a machine under heavy load: try again from an
			// empty data directory before giving up.
			_ = os.RemoveAll(m.DataDir)
			out, err = exec.Command(install, args...).CombinedOutput()
		}
		if err != nil {
			return fail(fmt.Errorf("mariadb-install-db: %v\n%s%s", err, errorLines(string(out)), lastLines(string(out), 20)))
		}
	}
	if m.Port == 0 {
		if m.Port, err = freePort(); err != nil {
			return fail(err)
		}
	}
	if err := m.start(); err != nil {
		return fail(err)
	}
	if !opts.NoFerryUser {
		if err := m.createFerryUser(); err != nil {
			return fail(err)
		}
	}
	return m, nil
}

func (m *MariaDB) args() []string {
	args := []string{
		"--no-defaults",
		"--datadir=" + m.DataDir,
		"--socket=" + m.Socket,
		"--tmpdir=" + filepath.Join(m.Dir, "tmp"),
		"--port=" + strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1",
		"--pid-file=" + filepath.Join(m.Dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(m.Dir, "error.log"),
		"--log-bin=" + filepath.Join(m.DataDir, "binlog"),
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL",
		"--server-id=1",
		"--innodb-buffer-pool-size=256M",
		"--innodb-log-file-size=256M",
		"--innodb-flush-log-at-trx-commit=2",
		// Many servers at once (parallel test packages) exhaust the
		// kernel's AIO contexts; synchronous I/O is plenty here.
		"--innodb-use-native-aio=0",
		"--sync-binlog=0",
		"--max-connections=500",
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--default-time-zone=+00:00",
		"--max-allowed-packet=64M",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return append(args, m.opts.Args...)
}

func (m *MariaDB) start() error {
	server, _, err := MariaDBBinaries()
	if err != nil {
		return err
	}
	_ = os.Remove(m.Socket)
	cmd := exec.Command(server, m.args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	done := m.proc.started(cmd, nil)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("mariadbd exited during start:\n%s", m.ErrorLog(20))
		default:
		}
		if c, err := client.Connect(m.Socket, "root", "", ""); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			_ = m.Kill()
			return fmt.Errorf("mariadbd did not accept connections within 60s:\n%s", m.ErrorLog(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *MariaDB) createFerryUser() error {
	stmts := []string{
		"CREATE USER IF NOT EXISTS '" + FerryUser + "'@'%' IDENTIFIED BY '" + FerryPassword + "'",
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '" + FerryUser + "'@'%'",
		// MariaDB 10.5+ splits these out of REPLICATION CLIENT/SLAVE; grant
		// them where the server knows them.
		"CREATE DATABASE IF NOT EXISTS " + FerryDatabase,
		"GRANT ALL ON " + FerryDatabase + ".* TO '" + FerryUser + "'@'%'",
	}
	if err := m.Exec(stmts...); err != nil {
		return err
	}
	_ = m.Exec("GRANT BINLOG MONITOR, REPLICATION SLAVE ADMIN, SLAVE MONITOR ON *.* TO '" + FerryUser + "'@'%'")
	return nil
}

// Root connects as root through the socket, the session in utf8mb4 (as
// an application would set it) whatever the server's default.
func (m *MariaDB) Root() (*client.Conn, error) {
	c, err := client.Connect(m.Socket, "root", "", "")
	if err != nil {
		return nil, fmt.Errorf("connect to MariaDB as root: %w", err)
	}
	if _, err := c.Execute("SET NAMES utf8mb4"); err != nil {
		c.Close()
		return nil, fmt.Errorf("MariaDB: SET NAMES utf8mb4: %w", err)
	}
	return c, nil
}

// Exec runs statements as root, stopping at the first error.
func (m *MariaDB) Exec(stmts ...string) error {
	c, err := m.Root()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range stmts {
		if _, err := c.Execute(s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

// Query runs one statement as root and returns its rows as strings (NULL
// as "NULL").
func (m *MariaDB) Query(stmt string, args ...any) ([][]string, error) {
	c, err := m.Root()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r, err := c.Execute(stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", firstLine(stmt), err)
	}
	defer r.Close()
	return ResultStrings(r), nil
}

// ResultStrings renders a result set's rows as strings, NULL as "NULL".
func ResultStrings(r *mysql.Result) [][]string {
	if r == nil || r.Resultset == nil {
		return nil
	}
	out := make([][]string, 0, len(r.Values))
	for i := range r.Values {
		row := make([]string, len(r.Values[i]))
		for j := range r.Values[i] {
			v := getString(r, i, j)
			if r.Values[i][j].Type == mysql.FieldValueTypeNull {
				v = "NULL"
			}
			row[j] = v
		}
		out = append(out, row)
	}
	return out
}

// PurgeBinlogs flushes the binary log into a new file and purges every
// older one. MariaDB keeps a file whose transactions InnoDB has not yet
// flushed, so the purge is retried until the older files are gone. It
// returns the file that is left.
func (m *MariaDB) PurgeBinlogs(timeout time.Duration) (string, error) {
	if err := m.Exec("FLUSH BINARY LOGS"); err != nil {
		return "", err
	}
	st, err := m.Query("SHOW MASTER STATUS")
	if err != nil {
		return "", err
	}
	newest := st[0][0]
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		if err := m.Exec("PURGE BINARY LOGS TO '" + newest + "'"); err != nil {
			return "", err
		}
		logs, err := m.Query("SHOW BINARY LOGS")
		if err != nil {
			return "", err
		}
		if len(logs) > 0 && logs[0][0] == newest {
			return newest, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("binlog files before %s not purged after %s", newest, timeout)
		}
	}
}

// Running reports whether the server process is alive.
func (m *MariaDB) Running() bool { return m.proc.running() }

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (m *MariaDB) Kill() error { return m.proc.signal(syscall.SIGKILL, 10*time.Second) }

// Stop shuts the server down cleanly (SIGTERM) and waits for it.
func (m *MariaDB) Stop() error { return m.proc.signal(syscall.SIGTERM, 60*time.Second) }

// Restart starts the server again on the same port and data directory
// (after Kill or Stop; a running server is stopped first).
func (m *MariaDB) Restart() error {
	if m.Running() {
		if err := m.Stop(); err != nil {
			return err
		}
	}
	return m.start()
}

// Close stops the server and removes the directory StartMariaDB made.
func (m *MariaDB) Close() {
	if m.Running() {
		if err := m.Stop(); err != nil {
			_ = m.Kill()
		}
	}
	if m.ownDir && m.Dir != "" {
		_ = os.RemoveAll(m.Dir)
	}
}

// ErrorLog returns the last n lines of the server's error log.
func (m *MariaDB) ErrorLog(n int) string {
	b, _ := os.ReadFile(filepath.Join(m.Dir, "error.log"))
	return lastLines(string(b), n)
}

// WaitSQL retries fn until it succeeds or ctx ends (useful right after a
// restart).
func WaitSQL(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errorLines keeps the lines of a server's output that report errors.
func errorLines(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "ERROR") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if len(s) > 120 {
		s = s[:120] + " ..."
	}
	return s
}

// getString returns a copy of a result's value: go-mysql's strings point
// into pooled buffers that later queries reuse.
func getString(r *mysql.Result, row, col int) string {
	s, _ := r.GetString(row, col)
	return strings.Clone(s)
}

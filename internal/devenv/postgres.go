package devenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions tune a development PostgreSQL.
type PostgresOptions struct {
	// Port to listen on, on 127.0.0.1; 0 picks a free one.
	Port int
	// Dir holds the data directory, socket and log; "" makes a temporary
	// directory that Close removes.
	Dir string
	// Database is created at start. Default: "ferry".
	Database string
	// Args are extra server settings ("-c", "max_connections=50"), after
	// ferry's defaults.
	Args []string
}

// PostgresUser is the superuser of a development PostgreSQL; it
// authenticates by trust on 127.0.0.1 only, so it has no password.
const PostgresUser = "ferry"

// Postgres is a PostgreSQL server started from the Debian package in a
// directory of its own, listening on 127.0.0.1 only.
//
// initdb and the server refuse to run as root. When the test or `ferry
// dev` runs as root, both are run as the unprivileged "postgres" system
// user (the Debian package creates it; it is what `runuser -u postgres`
// would do), and the directory is handed to that user.
type Postgres struct {
	Dir      string
	DataDir  string
	Port     int
	Database string
	opts     PostgresOptions
	ownDir   bool
	cred     *syscall.Credential // the user the server runs as; nil: this process's
	proc     process
}

// PostgresBinaries finds initdb and postgres, or says how to install them.
// The newest major version under /usr/lib/postgresql wins; initdb on PATH
// (a link to one of them) is the fallback.
func PostgresBinaries() (initdb, server string, err error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(a, b int) bool { return pgMajor(dirs[a]) > pgMajor(dirs[b]) })
	for _, d := range dirs {
		i, s := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExec(i) && isExec(s) {
			return i, s, nil
		}
	}
	if i, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(i); err == nil {
			s := filepath.Join(filepath.Dir(real), "postgres")
			if isExec(s) {
				return real, s, nil
			}
		}
	}
	return "", "", fmt.Errorf("PostgreSQL's initdb and postgres not found: install the postgresql package (apt-get install postgresql)")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// StartPostgres initialises a data directory with trust authentication,
// starts the server on 127.0.0.1, waits for it and creates the database.
func StartPostgres(opts PostgresOptions) (*Postgres, error) {
	initdb, _, err := PostgresBinaries()
	if err != nil {
		return nil, err
	}
	p := &Postgres{opts: opts, Database: opts.Database, Port: opts.Port, proc: process{name: "postgres"}}
	if p.Database == "" {
		p.Database = "ferry"
	}
	if os.Geteuid() == 0 {
		if p.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "ferry-pg-")
		if err != nil {
			return nil, err
		}
		p.Dir, p.ownDir = dir, true
	} else {
		p.Dir = opts.Dir
		if err := os.MkdirAll(p.Dir, 0o700); err != nil {
			return nil, err
		}
	}
	p.DataDir = filepath.Join(p.Dir, "data")
	fail := func(err error) (*Postgres, error) {
		p.Close()
		return nil, err
	}
	if err := p.own(p.Dir); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(filepath.Join(p.DataDir, "PG_VERSION")); err != nil {
		cmd := exec.Command(initdb, "-D", p.DataDir, "-U", PostgresUser, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
		p.asServerUser(cmd)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("initdb: %v\n%s", err, lastLines(string(out), 20)))
		}
	}
	if p.Port == 0 {
		if p.Port, err = freePort(); err != nil {
			return fail(err)
		}
	}
	if err := p.start(); err != nil {
		return fail(err)
	}
	if err := p.createDatabase(); err != nil {
		return fail(err)
	}
	return p, nil
}

// postgresCredential is the "postgres" system user's, for running initdb
// and the server when this process is root.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user to run as, and user postgres does not exist: install the postgresql package, or run as another user")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// own hands the directory to the server's user (root only) and makes it
// private, as PostgreSQL requires of its data directory.
func (p *Postgres) own(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if p.cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(p.cred.Uid), int(p.cred.Gid))
	})
}

func (p *Postgres) asServerUser(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		cmd.Env = append(cmd.Env, "HOME="+p.Dir)
	}
}

// args are the server's settings: 127.0.0.1 only, the socket in Dir, and
// durability traded for speed (fsync off), as befits a throwaway server.
func (p *Postgres) args() []string {
	args := []string{
		"-D", p.DataDir,
		"-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + p.Dir,
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
		"-c", "logging_collector=off",
		"-c", "TimeZone=UTC",
	}
	return append(args, p.opts.Args...)
}

func (p *Postgres) start() error {
	_, server, err := PostgresBinaries()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(server, p.args()...)
	p.asServerUser(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	done := p.proc.started(cmd, func() { logf.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("postgres exited during start:\n%s", p.Log(20))
		default:
		}
		if c, err := p.connect(context.Background(), "postgres"); err == nil {
			c.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			_ = p.Kill()
			return fmt.Errorf("postgres did not accept connections within 60s:\n%s", p.Log(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Postgres) logPath() string { return filepath.Join(p.Dir, "postgres.log") }

// Log returns the last n lines of the server's log.
func (p *Postgres) Log(n int) string {
	b, _ := os.ReadFile(p.logPath())
	return lastLines(string(b), n)
}

func (p *Postgres) createDatabase() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", p.Database).Scan(&n); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if n == 0 {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{p.Database}.Sanitize()); err != nil {
			return fmt.Errorf("PostgreSQL: create database %s: %w", p.Database, err)
		}
	}
	return nil
}

// Addr is the server's TCP address, host:port.
func (p *Postgres) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// DSN is the connection URL of the database, as the superuser over TCP.
func (p *Postgres) DSN() string { return p.dsn(p.Database) }

func (p *Postgres) dsn(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(PostgresUser), Host: p.Addr(), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

func (p *Postgres) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, p.dsn(db))
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", p.Addr(), err)
	}
	return c, nil
}

// Connect opens a connection to the database.
func (p *Postgres) Connect(ctx context.Context) (*pgx.Conn, error) { return p.connect(ctx, p.Database) }

// Running reports whether the server process is alive.
func (p *Postgres) Running() bool { return p.proc.running() }

// Kill ends the server and its backends with SIGKILL, as a crash would,
// and waits for it.
func (p *Postgres) Kill() error { return p.proc.signal(syscall.SIGKILL, 10*time.Second) }

// Stop shuts the server down (SIGINT: PostgreSQL's fast shutdown, which
// rolls back open transactions) and waits for it.
func (p *Postgres) Stop() error { return p.proc.signal(syscall.SIGINT, 60*time.Second) }

// Restart starts the server again on the same port and data directory
// (after Kill or Stop; a running server is stopped first).
func (p *Postgres) Restart() error {
	if p.Running() {
		if err := p.Stop(); err != nil {
			return err
		}
	}
	// A killed postmaster leaves its pid file; the server removes a stale
	// one itself when no process holds the shared memory any more. Its
	// backends notice their postmaster's death only within a moment, and
	// until they are gone a new server refuses to start: try again.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := p.start()
		if err == nil || !strings.Contains(err.Error(), "pre-existing shared memory block") || time.Now().After(deadline) {
			return err
		}
	}
}

// Close stops the server and removes the directory StartPostgres made.
func (p *Postgres) Close() {
	if p.Running() {
		if err := p.Stop(); err != nil {
			_ = p.Kill()
		}
	}
	if p.ownDir && p.Dir != "" {
		_ = os.RemoveAll(p.Dir)
	}
}

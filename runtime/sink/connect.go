package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/secret"
)

// ConnectSource opens a connection to the sink's source MySQL server,
// with the password and TLS settings of the CDC source.
func ConnectSource(ctx context.Context, id string, s *plan.SinkJob) (*client.Conn, error) {
	cfg, err := SourceConfig(id, s)
	if err != nil {
		return nil, err
	}
	c, err := binlog.Connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: MySQL at %s: %w", id, s.MySQL.Address, err)
	}
	return c, nil
}

// CheckSource checks, against the source server, what a sink needs of its
// table before it starts: the table, the columns it renames and a key.
// The error is the line the sink would fail with.
func CheckSource(ctx context.Context, id string, s *plan.SinkJob) error {
	my, err := ConnectSource(ctx, id, s)
	if err != nil {
		return err
	}
	defer my.Close()
	_, err = LoadTable(my, s)
	return err
}

// SourceConfig is the source's connection settings, secrets resolved.
func SourceConfig(id string, s *plan.SinkJob) (binlog.Config, error) {
	pass, err := secret.Resolve(s.MySQL.Password)
	if err != nil {
		return binlog.Config{}, fmt.Errorf("%s: mysql.password: %w", id, err)
	}
	cfg := binlog.Config{Addr: s.MySQL.Address, User: s.MySQL.User, Password: pass, ServerID: s.MySQL.ServerID, Flavor: s.MySQL.Flavor, RawYears: s.MySQL.RawYears()}
	if s.MySQL.TLS != nil {
		if cfg.TLS, err = kafkaconn.TLSConfigFor(s.MySQL.TLS, s.MySQL.Address); err != nil {
			return cfg, fmt.Errorf("%s: mysql.tls: %w", id, err)
		}
	}
	return cfg, nil
}

// ConnectTarget opens a connection to the sink's PostgreSQL database (for
// ferry load and ferry verify; the sink jobs share pools, see targets).
func ConnectTarget(ctx context.Context, id string, s *plan.SinkJob) (*pgx.Conn, error) {
	cfg, err := targetConfig(id, s)
	if err != nil {
		return nil, err
	}
	c, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: PostgreSQL at %s:%d: %w", id, cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return c, nil
}

// targetConfig is the sink's PostgreSQL connection settings, as a pool's.
// The DSN is a secret: errors name its reference, never its value.
func targetConfig(id string, s *plan.SinkJob) (*pgxpool.Config, error) {
	dsn, err := secret.Resolve(s.Postgres.DSN)
	if err != nil {
		return nil, fmt.Errorf("%s: postgres.dsn: %w", id, err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: postgres.dsn (%s) is not a PostgreSQL connection string; want postgres://user@host:5432/db or host=... dbname=...", id, secret.Describe(s.Postgres.DSN))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	// Timestamps read as text (ferry verify) are in UTC.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	return cfg, nil
}

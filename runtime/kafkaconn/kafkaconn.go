// Package kafkaconn turns a datacenter's definition into franz-go client
// options: brokers, TLS and SASL with secrets resolved. Every client ferry
// makes for a datacenter starts from these options.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ferry-pipelines/ferry/runtime/secret"
	"github.com/ferry-pipelines/ferry/schema"
)

// Options returns the connection options of a datacenter.
func Options(dc schema.Datacenter) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(dc.Kafka.Brokers...),
		kgo.DialTimeout(5 * time.Second),
	}
	if t := dc.Kafka.TLS; t != nil {
		cfg, err := TLSConfig(t)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.Dialer((&tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}).DialContext))
	}
	if s := dc.Kafka.SASL; s != nil {
		pass, err := secret.Resolve(s.Password)
		if err != nil {
			return nil, fmt.Errorf("SASL password: %w", err)
		}
		switch s.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.User, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("unknown SASL mechanism %q", s.Mechanism)
		}
	}
	return opts, nil
}

// TLSConfig builds a TLS configuration from file paths: a CA to trust, and a
// client certificate and key when the server asks for one.
func TLSConfig(t *schema.TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificate found", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// GroupConsumer returns the options of a consumer that shares the
// partitions of topics among the processes of a shard through group, and
// keeps its progress elsewhere than in the group (nothing is committed):
// read_committed with transaction markers delivered (so a position can
// move past them), from the start of a partition without stored progress,
// cooperative-sticky assignment.
func GroupConsumer(group string, topics ...string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
}

// TLSConfigFor is TLSConfig for a connection to addr (host:port) made
// without a TLS dialer, such as a MySQL client's: unless serverName is set,
// the server's certificate must name addr's host, as a Kafka dial checks.
func TLSConfigFor(t *schema.TLS, addr string) (*tls.Config, error) {
	cfg, err := TLSConfig(t)
	if err == nil && cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return cfg, err
}

// Diagnose probes datacenter name after a request to it failed, to tell a
// datacenter that is away (nil: wait and retry) from one that refuses
// ferry's credentials or TLS settings, which no wait fixes. Such a refusal
// is returned as one line naming the datacenter, the mechanism and where
// the password comes from, never the password.
func Diagnose(ctx context.Context, name string, dc schema.Datacenter) error {
	opts, err := Options(dc)
	if err != nil {
		return fmt.Errorf("datacenter %s: %w", name, err)
	}
	watch := &saslWatch{}
	cl, err := kgo.NewClient(append(opts, kgo.WithHooks(watch), kgo.RequestRetries(1))...)
	if err != nil {
		return fmt.Errorf("datacenter %s: %w", name, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = cl.Ping(ctx)
	if err == nil {
		return nil
	}
	if s := dc.Kafka.SASL; s != nil && (watch.failed.Load() || errors.Is(err, kerr.SaslAuthenticationFailed)) {
		return fmt.Errorf("datacenter %s: SASL %s authentication of user %s failed: check the user and the password in %s", name, s.Mechanism, s.User, secret.Describe(s.Password))
	}
	if tlsRefused(err) {
		return fmt.Errorf("datacenter %s: TLS handshake failed: %v: check kafka.tls (ca, cert, key, serverName)", name, err)
	}
	return nil
}

// saslWatch notes a connection that failed during SASL authentication:
// some servers answer wrong credentials by closing the connection, which
// the client sees as EOF.
type saslWatch struct{ failed atomic.Bool }

func (w *saslWatch) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil && (key == int16(kmsg.SASLAuthenticate) || key == int16(kmsg.SASLHandshake)) {
		w.failed.Store(true)
	}
}

// tlsRefused reports TLS errors: a certificate not trusted, a name that
// does not match, a server that does not speak TLS, or one that refuses
// ours (an alert, whose type crypto/tls does not export).
func tlsRefused(err error) bool {
	var (
		verify  *tls.CertificateVerificationError
		header  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
	)
	return errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &unknown) || errors.As(err, &host) ||
		strings.Contains(err.Error(), "remote error: tls: ")
}

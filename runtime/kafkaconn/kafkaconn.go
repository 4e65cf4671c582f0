// Package kafkaconn turns a datacenter's definition into franz-go client
// options: brokers, TLS and SASL with secrets resolved. Every client ferry
// makes for a datacenter starts from these options.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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

// Package devenv starts the local servers of ferry's development world:
// two Kafka clusters (franz-go's kfake, which speaks the real protocol on
// real ports), a MariaDB and a PostgreSQL in temporary directories. `ferry
// dev`, `make demo` and the tests use it; nothing here depends on a server
// that happens to run on the machine.
package devenv

import (
	"crypto/rand"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Default ports of the two development clusters, as in docs/design/design.md.
const (
	DC1Port = 19092
	DC2Port = 29092
)

// Kafka is one embedded Kafka cluster.
type Kafka struct {
	Name    string
	Cluster *kfake.Cluster
}

// Addr is the cluster's bootstrap address.
func (k *Kafka) Addr() string { return k.Cluster.ListenAddrs()[0] }

// Close stops the cluster.
func (k *Kafka) Close() { k.Cluster.Close() }

// StartKafka starts a one-broker cluster on 127.0.0.1:port (0 picks a free
// port). Extra kfake options, such as SASL users or a data directory, are
// passed through.
func StartKafka(name string, port int, opts ...kfake.Opt) (*Kafka, error) {
	all := append([]kfake.Opt{
		kfake.Ports(port),
		kfake.ClusterID("ferry-" + name),
		// Small groups rebalance fast in tests and in `ferry dev`.
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		// kfake keeps each log segment in one buffer that it grows by
		// doubling: 4 MiB segments (Kafka's default is 1 GiB) keep that
		// copying small, so the broker's storage does not weigh on what
		// the benchmarks measure of ferry.
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(4 << 20)}),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		return nil, fmt.Errorf("start Kafka %s on 127.0.0.1:%d: %w", name, port, err)
	}
	unsubscribed(c)
	return &Kafka{Name: name, Cluster: c}, nil
}

// unsubscribed has c answer clients' requests for telemetry subscriptions
// (KIP-714) as a broker without any: metrics requested of none, asked again
// in Kafka's default five minutes. kfake subscribes every client to all its
// metrics every 30 s, which a real broker does only when an operator
// configures it: an executor's many clients pushed megabytes a second that
// no broker of ours reads, and the benchmarks counted them.
func unsubscribed(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.GetTelemetrySubscriptions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.GetTelemetrySubscriptionsRequest)
		resp := req.ResponseKind().(*kmsg.GetTelemetrySubscriptionsResponse)
		resp.ClientInstanceID = req.ClientInstanceID
		if resp.ClientInstanceID == [16]byte{} {
			_, _ = rand.Read(resp.ClientInstanceID[:])
		}
		resp.PushIntervalMillis = 5 * 60 * 1000
		return resp, nil, true
	})
}

// Pair is the two-datacenter world: dc1 and dc2.
type Pair struct {
	DC1, DC2 *Kafka
}

// StartPair starts dc1 and dc2 on the given ports (0 picks free ones).
func StartPair(port1, port2 int, opts ...kfake.Opt) (*Pair, error) {
	dc1, err := StartKafka("dc1", port1, opts...)
	if err != nil {
		return nil, err
	}
	dc2, err := StartKafka("dc2", port2, opts...)
	if err != nil {
		dc1.Close()
		return nil, err
	}
	return &Pair{DC1: dc1, DC2: dc2}, nil
}

// Close stops both clusters.
func (p *Pair) Close() {
	p.DC1.Close()
	p.DC2.Close()
}

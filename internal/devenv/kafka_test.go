package devenv

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaSubscribesNoTelemetry asks a development cluster for a client's
// telemetry subscription twice, as kgo does, and expects the answer of a
// broker without subscriptions: no metrics, asked again in five minutes,
// under one client instance ID.
func TestKafkaSubscribesNoTelemetry(t *testing.T) {
	k, err := StartKafka("dc1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.DisableClientMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var id [16]byte
	for i := range 2 {
		req := kmsg.NewPtrGetTelemetrySubscriptionsRequest()
		req.ClientInstanceID = id
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.RequestedMetrics) != 0 || resp.PushIntervalMillis != 300000 || resp.ClientInstanceID == [16]byte{} {
			t.Fatalf("answer %d: metrics %q every %d ms, client %x; want none every 300000 ms, an ID", i, resp.RequestedMetrics, resp.PushIntervalMillis, resp.ClientInstanceID)
		}
		if i == 1 && resp.ClientInstanceID != id {
			t.Fatalf("client ID %x, then %x", id, resp.ClientInstanceID)
		}
		id = resp.ClientInstanceID
	}
}

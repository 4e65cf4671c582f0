package kafkaconn_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/mirror"
	"github.com/ferry-pipelines/ferry/schema"
)

const passwordEnv = "FERRY_TEST_KAFKA_PASSWORD"

// secureWorld is two clusters that require TLS or SASL, and the
// datacenters' definitions that reach them.
type secureWorld struct {
	t    *testing.T
	pair *devenv.Pair
	dcs  map[string]schema.Datacenter
}

// newSecureWorld starts dc1 and dc2 with the cluster options and defines
// them with kafka settings (brokers are filled in).
func newSecureWorld(t *testing.T, kafka schema.Kafka, opts ...kfake.Opt) *secureWorld {
	t.Helper()
	pair := devtest.Pair(t, opts...)
	dcs := map[string]schema.Datacenter{}
	for name, k := range map[string]*devenv.Kafka{"dc1": pair.DC1, "dc2": pair.DC2} {
		kk := kafka
		kk.Brokers = []string{k.Addr()}
		dcs[name] = schema.Datacenter{Kafka: kk}
	}
	return &secureWorld{t: t, pair: pair, dcs: dcs}
}

// run compiles a mirror of topic between the datacenters and runs it in
// an executor until the test ends.
func (w *secureWorld) run(topic string) *executor.Executor {
	w.t.Helper()
	p, err := compiler.CompileDefinitions(&schema.Definitions{Datacenters: w.dcs, Mirrors: map[string]schema.Mirror{topic: {Partitions: 2, Tier: 1}}})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ex := executor.New(executor.WithKind(plan.KindMirror, mirror.NewKind()), executor.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ex.Apply(ctx, p)
	w.t.Cleanup(func() { cancel(); ex.Stop() })
	return ex
}

// client connects to a datacenter with ferry's own options.
func (w *secureWorld) client(dc string, opts ...kgo.Opt) *kgo.Client {
	w.t.Helper()
	base, err := kafkaconn.Options(w.dcs[dc])
	if err != nil {
		w.t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cl.Close)
	return cl
}

// mirrors writes n records to topic in dc1 once the job has created it, and
// waits for all n in dc2.
func (w *secureWorld) mirrors(topic string, n int) {
	w.t.Helper()
	w.run(topic)
	prod := w.client("dc1", kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("secret ledger entry")}).FirstErr(); err != nil {
			w.t.Fatal(err)
		}
	}
	cons := w.client("dc2", kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			w.t.Fatalf("dc2 holds %d of the %d records written to dc1 (%v)", got, n, fs.Errors())
		}
		got += len(fs.Records())
	}
}

// TestSASLMirror mirrors through clusters that require SASL, once per
// mechanism, the password coming from an environment variable.
func TestSASLMirror(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Setenv(passwordEnv, "pw-"+mech)
			w := newSecureWorld(t, schema.Kafka{SASL: &schema.SASL{Mechanism: mech, User: "ferry", Password: schema.Secret{Env: passwordEnv}}},
				kfake.EnableSASL(), kfake.Superuser(mech, "ferry", "pw-"+mech))
			w.mirrors("sasl.events", 50)
		})
	}
}

// TestMutualTLSMirror mirrors through clusters that require TLS with a
// client certificate signed by their CA, and checks that a client without
// one, or one that does not trust the CA, is refused with a line naming
// the datacenter and the TLS problem.
func TestMutualTLSMirror(t *testing.T) {
	certs, err := devenv.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	server, err := certs.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	w := newSecureWorld(t, schema.Kafka{TLS: &schema.TLS{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}}, kfake.TLS(server))
	w.mirrors("tls.events", 50)

	for _, tc := range []struct {
		name string
		tls  schema.TLS
		want string
	}{
		{"no client certificate", schema.TLS{CA: certs.CA}, "remote error: tls: certificate required"},
		{"CA not trusted", schema.TLS{Cert: certs.ClientCert, Key: certs.ClientKey}, "certificate signed by unknown authority"},
	} {
		dc := schema.Datacenter{Kafka: schema.Kafka{Brokers: w.dcs["dc1"].Kafka.Brokers, TLS: &tc.tls}}
		err := kafkaconn.Diagnose(context.Background(), "dc1", dc)
		if err == nil || !strings.HasPrefix(err.Error(), "datacenter dc1: TLS handshake failed: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Diagnose = %v, want a TLS handshake failure naming dc1 and %q", tc.name, err, tc.want)
		}
	}
}

// TestWrongPasswordError: a wrong SASL password stops the job with one
// line naming the datacenter, the mechanism, the user and where the
// password comes from, and never the password.
func TestWrongPasswordError(t *testing.T) {
	const wrong = "wrong-9f3b1c-password"
	t.Setenv(passwordEnv, wrong)
	w := newSecureWorld(t, schema.Kafka{SASL: &schema.SASL{Mechanism: "SCRAM-SHA-256", User: "ferry", Password: schema.Secret{Env: passwordEnv}}},
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "ferry", "right-password"))
	ex := w.run("denied.events")
	var st metrics.Status
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st = ex.Registry().Lookup("mirror:denied.events:dc1-dc2").Status(); st.Error != "" {
			break
		}
	}
	want := "datacenter dc1: SASL SCRAM-SHA-256 authentication of user ferry failed: check the user and the password in env " + passwordEnv
	if st.State != metrics.StateError || !strings.HasPrefix(st.Error, want) || strings.Contains(st.Error, "\n") {
		t.Fatalf("state %s, error %q; want state error with a line starting %q", st.State, st.Error, want)
	}
	if strings.Contains(st.Error, wrong) || strings.Contains(st.Error, "right-password") {
		t.Fatalf("the error shows a password: %q", st.Error)
	}
}

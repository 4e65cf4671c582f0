package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

// secretString is a password no output could hold by chance.
func secretString(t *testing.T, what string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return what + "-" + hex.EncodeToString(b)
}

// TestSecretsNeverPrinted runs a realistic setup with known passwords and
// looks for them in everything ferry shows: a mirror between clusters that
// require SCRAM-SHA-512 (password by env), a CDC source whose MySQL
// password is in a file, and failures: a datacenter given a wrong Kafka
// password and a CDC source given a wrong MySQL password. The outputs
// searched: validate, compile (the plan) and plan, `ferry run` at debug
// level (stdout and stderr, as a process), /metrics, /v1/jobs with the
// jobs' error messages, `ferry status` and its JSON, `ferry dlq list`, and
// every record of ferry.metrics, ferry.dlq and ferry.checkpoints in both
// datacenters.
func TestSecretsNeverPrinted(t *testing.T) {
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	kafkaPass, mysqlPass := secretString(t, "kafka"), secretString(t, "mysql")
	wrongKafka, wrongMySQL := secretString(t, "wrongkafka"), secretString(t, "wrongmysql")
	secrets := []string{kafkaPass, mysqlPass, wrongKafka, wrongMySQL}

	pair := devtest.Pair(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "ferry", kafkaPass))
	db := devtest.MariaDB(t, devenv.MariaDBOptions{})
	if err := db.Exec(
		"CREATE USER 'capture'@'%' IDENTIFIED BY '"+mysqlPass+"'",
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, BINLOG MONITOR ON *.* TO 'capture'@'%'",
		"GRANT ALL ON "+devenv.FerryDatabase+".* TO 'capture'@'%'",
		"CREATE DATABASE trading",
		"CREATE TABLE trading.orders (id INT PRIMARY KEY, note VARCHAR(40))",
		"CREATE TABLE trading.fills (id INT PRIMARY KEY)",
		"INSERT INTO trading.orders VALUES (1, 'before start')",
	); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "mysql-password", mysqlPass+"\n")
	writeFile(t, dir, "pipelines.cue", fmt.Sprintf(`package pipelines

let scram = {mechanism: "SCRAM-SHA-512", user: "ferry"}
datacenters: {
	dc1: kafka: {brokers: [%[1]q], sasl: scram & {password: env: "KAFKA_PASSWORD"}}
	dc2: kafka: {brokers: [%[2]q], sasl: scram & {password: env: "KAFKA_PASSWORD"}}
	// dc2's cluster again, with a wrong password
	dc3: kafka: {brokers: [%[2]q], sasl: scram & {password: env: "WRONG_KAFKA_PASSWORD"}}
}
metrics: interval: "1s"
mirrors: {
	"orders.events": {partitions: 2, tier: 1, datacenters: ["dc1", "dc2"]}
	"denied.events": {partitions: 1, tier: 2, datacenters: ["dc1", "dc3"]}
}
cdc: "trading-db": {
	mysql: {address: %[3]q, user: "capture", password: file: %[4]q, serverID: 5401}
	datacenter: "dc1"
	topicPrefix: "trading"
	tables: "trading.orders": tier: 2
}
cdc: "wrong-db": {
	mysql: {address: %[3]q, user: "capture", password: env: "WRONG_MYSQL_PASSWORD", serverID: 5402}
	datacenter: "dc1"
	topicPrefix: "wrong"
	tables: "trading.fills": tier: 2
}
`, pair.DC1.Addr(), pair.DC2.Addr(), db.Addr(), filepath.Join(dir, "mysql-password")))
	env := []string{"KAFKA_PASSWORD=" + kafkaPass, "WRONG_KAFKA_PASSWORD=" + wrongKafka, "WRONG_MYSQL_PASSWORD=" + wrongMySQL}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}

	outputs := map[string]string{} // what -> everything it showed
	show := func(what string, r result) { outputs[what] = r.stdout + r.stderr }
	show("ferry validate", ferry(t, dir, "validate", "."))
	compiled := ferry(t, dir, "compile", ".", "-o", "plan.json")
	plan, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if compiled.code != 0 || err != nil {
		t.Fatalf("ferry compile: exit %d, %v\n%s", compiled.code, err, compiled.stderr)
	}
	outputs["the plan"] = string(plan)
	show("ferry plan", ferry(t, dir, "plan", ".", "--from", "plan.json"))

	p := startFerry(t, dir, env, "run", ".", "--log-level", "debug")
	jobs := p.waitFor(t, 90*time.Second, "the good jobs running and the bad ones failing", func(sts map[string]metrics.Status) bool {
		return sts["mirror:orders.events:dc1-dc2"].State == metrics.StateRunning && sts["cdc:trading-db"].State == metrics.StateRunning &&
			sts["mirror:denied.events:dc1-dc3"].Error != "" && sts["mirror:denied.events:dc3-dc1"].Error != "" && sts["cdc:wrong-db"].Error != ""
	})
	for _, id := range []string{"mirror:denied.events:dc1-dc3", "cdc:wrong-db"} {
		outputs["error of "+id] = jobs[id].Error
	}

	// Traffic: mirrored records, a dead letter, captured rows.
	dc1, err := kgo.NewClient(append(secureOptions(t, pair.DC1.Addr()), kgo.DefaultProduceTopic("orders.events"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer dc1.Close()
	recs := []*kgo.Record{{Value: []byte("order 1")}, {Value: []byte("order 2")},
		{Value: []byte("forged"), Headers: []kgo.RecordHeader{{Key: "ferry.origin", Value: []byte("nowhere")}}}}
	if err := dc1.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("INSERT INTO trading.orders VALUES (2, 'after start')"); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, 60*time.Second, "the records mirrored, dead-lettered and captured", func(sts map[string]metrics.Status) bool {
		return sts["mirror:orders.events:dc1-dc2"].Counters[metrics.Records] == 2 && sts["mirror:orders.events:dc1-dc2"].Counters[metrics.DeadLetters] == 1 &&
			sts["cdc:trading-db"].Counters["create"] == 1
	})
	for _, dc := range []struct{ name, addr, job string }{{"dc1", pair.DC1.Addr(), "cdc:trading-db"}, {"dc2", pair.DC2.Addr(), "mirror:orders.events:dc1-dc2"}} {
		outputs["ferry.metrics in "+dc.name] = waitTopic(t, dc.addr, "ferry.metrics", `"job":"`+dc.job+`"`)
		outputs["ferry.checkpoints in "+dc.name] = readTopic(t, dc.addr, "ferry.checkpoints")
	}
	outputs["ferry.dlq in dc2"] = readTopic(t, pair.DC2.Addr(), "ferry.dlq")
	outputs["/metrics"] = p.get(t, "/metrics")
	outputs["/v1/jobs"] = p.get(t, "/v1/jobs")
	show("ferry status", ferry(t, dir, "status", "--http", p.addr))
	show("ferry status --json", ferry(t, dir, "status", "--http", p.addr, "--json"))
	show("ferry dlq list", ferry(t, dir, "dlq", "list", "mirror:orders.events:dc1-dc2", "."))
	p.stop()
	outputs["ferry run (stdout and stderr)"] = p.logs.String()

	// The outputs are real: each holds what it is for.
	for what, want := range map[string]string{
		"the plan":                              `"env": "KAFKA_PASSWORD"`,
		"ferry run (stdout and stderr)":         "level=DEBUG msg=\"kafka client: ",
		"/metrics":                              "ferry_records_total",
		"ferry status":                          "cdc:wrong-db",
		"ferry.metrics in dc1":                  `"job":"cdc:trading-db"`,
		"ferry.metrics in dc2":                  `"job":"mirror:orders.events:dc1-dc2"`,
		"ferry.dlq in dc2":                      "MALFORMED_ORIGIN_HEADER",
		"ferry dlq list":                        "MALFORMED_ORIGIN_HEADER",
		"error of cdc:wrong-db":                 "refused user capture (Access denied",
		"error of mirror:denied.events:dc1-dc3": "datacenter dc3: SASL SCRAM-SHA-512 authentication of user ferry failed",
	} {
		if !strings.Contains(outputs[what], want) {
			t.Errorf("%s does not hold %q, so searching it proves little:\n%s", what, want, outputs[what])
		}
	}
	for what, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows the secret %s:\n%s", what, s, out)
			}
		}
	}
}

// secureOptions are ferry's options for a cluster of
// TestSecretsNeverPrinted, the password from KAFKA_PASSWORD.
func secureOptions(t *testing.T, addr string) []kgo.Opt {
	t.Helper()
	opts, err := kafkaconn.Options(schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{addr},
		SASL: &schema.SASL{Mechanism: "SCRAM-SHA-512", User: "ferry", Password: schema.Secret{Env: "KAFKA_PASSWORD"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// readTopic returns every record of topic, keys, values and headers, as
// text.
func readTopic(t *testing.T, addr, topic string) string {
	t.Helper()
	s, err := topicText(secureOptions(t, addr), topic)
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	return s
}

// waitTopic reads topic until it holds want.
func waitTopic(t *testing.T, addr, topic, want string) string {
	t.Helper()
	var s string
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if s, err = topicText(secureOptions(t, addr), topic); err == nil && strings.Contains(s, want) {
			return s
		}
	}
	t.Fatalf("%s in %s never held %q (%v):\n%s", topic, addr, want, err, s)
	return ""
}

func topicText(opts []kgo.Opt, topic string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	err := kafkaconn.ReadToEnd(ctx, opts, topic, nil, func(r *kgo.Record) {
		fmt.Fprintf(&b, "%s=%s", r.Key, r.Value)
		for _, h := range r.Headers {
			fmt.Fprintf(&b, " %s=%s", h.Key, h.Value)
		}
		b.WriteByte('\n')
	})
	return b.String(), err
}

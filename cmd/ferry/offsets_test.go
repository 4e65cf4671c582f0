package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/headers"
)

// TestOffsetsTranslate runs `ferry offsets translate` against two real
// clusters: the table, --apply, and the refusal of a group active in the
// target.
func TestOffsetsTranslate(t *testing.T) {
	pair := devtest.Pair(t)
	dir := filepath.Join(t.TempDir(), "defs")
	writeDefs(t, dir, pair, `"orders.events": {partitions: 2, tier: 1}`)
	planFile := filepath.Join(t.TempDir(), "plan.json")
	ferry(t, dir, "compile", "-o", planFile).want(t, 0, nil, ptr(""))

	ctx := context.Background()
	client := func(k *devenv.Kafka, opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Addr()), kgo.DefaultProduceTopic("orders.events"),
			kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	dc1, dc2 := client(pair.DC1), client(pair.DC2)
	for _, cl := range []*kgo.Client{dc1, dc2} {
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "orders.events"); err != nil {
			t.Fatal(err)
		}
	}
	// dc1[0]: its own records 0-4, then dc2's 0-1 mirrored (5-6). dc2[0]:
	// dc1's 0-4 mirrored (0-4), then its own 5-6... written here as the
	// mirror would, headers and all.
	produce := func(cl *kgo.Client, n int, origin string, from int) {
		for i := range n {
			r := &kgo.Record{Partition: 0, Value: []byte("v")}
			if origin != "" {
				r.Headers = []kgo.RecordHeader{
					{Key: headers.Origin, Value: []byte(origin)},
					{Key: headers.OriginOffset, Value: []byte(strconv.Itoa(from + i))},
				}
			}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(dc1, 5, "", 0)
	produce(dc2, 5, "dc1", 0)
	produce(dc2, 2, "", 0)
	produce(dc1, 2, "dc2", 5)
	// The group read dc1[0] up to offset 6: dc1's 0-4 and dc2's 5.
	if err := kadm.NewClient(dc1).CommitAllOffsets(ctx, "billing", kadm.OffsetsFromRecords(kgo.Record{Topic: "orders.events", Partition: 0, Offset: 5})); err != nil {
		t.Fatal(err)
	}

	r := ferry(t, dir, "offsets", "translate", "--group", "billing", "--from", "dc1", "--to", "dc2")
	r.want(t, 0, nil, ptr(""))
	wantTable := [][]string{
		{"TOPIC", "PARTITION", "DC1", "OFFSET", "DC2", "OFFSET", "RE-READS", "NOTE"},
		{"orders.events", "0", "6", "6", "0"},
		{"orders.events", "1", "-", "-", "-", "no", "committed", "offset", "in", "dc1:", "not", "translated"},
		strings.Fields("group billing: 1 of 2 partitions translated from dc1 to dc2; 0 records will be read again; --apply commits them"),
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(wantTable) {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(wantTable[i], " ") {
			t.Errorf("line %d: %q, want %q", i, l, strings.Join(wantTable[i], " "))
		}
	}

	r = ferry(t, t.TempDir(), "offsets", "translate", "--group", "billing", "--from", "dc1", "--to", "dc2", "--plan", planFile, "--apply")
	r.want(t, 0, nil, ptr(""))
	if !strings.HasSuffix(r.stdout, "; committed to group billing in dc2\n") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	os, err := kadm.NewClient(dc2).FetchOffsets(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := os.Lookup("orders.events", 0); o.At != 6 || o.Metadata != "ferry: translated from dc1 offset 6" {
		t.Errorf("committed in dc2: %+v", o.Offset)
	}

	member := client(pair.DC2, kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders.events"))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		member.PollFetches(pctx)
		ds, err := kadm.NewClient(dc2).DescribeGroups(pctx, "billing")
		if err != nil {
			t.Fatal(err)
		}
		if ds["billing"].State == "Stable" {
			break
		}
	}
	ferry(t, dir, "offsets", "translate", "--group", "billing", "--from", "dc1", "--to", "dc2", "--apply").
		want(t, 1, ptr(""), ptr("group billing is active in dc2 (1 member): stop its consumers there, then translate and apply again\n"))
}

func TestOffsetsTranslateRefusals(t *testing.T) {
	dir := copyPipelines(t, nil)
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--from", "dc1", "--to", "dc3"}, "datacenter dc3 is not in the definitions (datacenters: dc1, dc2)"},
		{[]string{"--from", "dc1", "--to", "dc1"}, "--from and --to both name dc1: name the datacenter the group moves to"},
		{[]string{"--from", "dc1", "--to", "dc2", "--topic", "trading.trading.orders"}, "topic trading.trading.orders is not mirrored from dc1 to dc2 in the definitions (mirrored: audit.log, orders.events)"},
		{[]string{"--from", "dc1"}, `required flag(s) "to" not set`},
	} {
		args := append([]string{"offsets", "translate", "--group", "billing"}, tc.args...)
		ferry(t, dir, args...).want(t, 1, ptr(""), ptr(tc.stderr+"\n"))
	}
}

// TestOffsetsTranslateUnreachable: datacenters that take connections but
// never answer give one line after --timeout.
func TestOffsetsTranslateUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() { // accept, then say nothing
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	addr := ln.Addr().String()
	dir := t.TempDir()
	src := fmt.Sprintf("package pipelines\n\ndatacenters: {\n\tdc1: kafka: brokers: [%q]\n\tdc2: kafka: brokers: [%q]\n}\n\nmirrors: \"orders.events\": {partitions: 1, tier: 1}\n", addr, addr)
	if err := os.WriteFile(filepath.Join(dir, "pipelines.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ferry(t, dir, "offsets", "translate", "--group", "billing", "--from", "dc1", "--to", "dc2", "--timeout", "2s").
		want(t, 1, ptr(""), ptr("gave up after 2s: dc1 or dc2 did not answer in time; check their brokers or raise --timeout\n"))
}

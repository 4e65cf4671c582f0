package offsets_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/offsets"
)

// world is embedded clusters, dc1 and dc2 (and more if asked), whose
// topic the test mirrors itself, exactly as the mirroring contract says:
// each client record of a partition is copied to the same partition of
// every other datacenter, in order, in transactions, with ferry.origin and
// ferry.origin.offset added. The test decides when, so it can interleave
// client writes and mirroring at will and let any direction lag.
type world struct {
	t     testing.TB
	ctx   context.Context
	dcs   []string
	kafka map[string]*devenv.Kafka
	topic string
	ids   map[string]kadm.TopicID // the topic's ID, per datacenter
	parts int32

	clients map[string]*kgo.Client // plain producers, per datacenter
	mirrors map[string]*kgo.Client // transactional producers writing into a datacenter
	// logs holds each partition's committed records, as written.
	logs map[string]map[int32][]*kgo.Record
	// copied is, per direction ("dc1>dc2") and partition, how many records
	// of the source's log the mirror has gone past.
	copied map[string]map[int32]int
	// catchUp brings mirroring up to date: the test's own mirror by
	// default, waiting for the real one when the executor mirrors.
	catchUp func()
}

// newWorld starts dc1 and dc2 (pair, when nil) and creates the topic with
// parts partitions in both.
func newWorld(t testing.TB, pair *devenv.Pair, topic string, parts int32) *world {
	t.Helper()
	if pair == nil {
		pair = startPair(t)
	}
	return build(t, topic, parts, pair.DC1, pair.DC2)
}

func startPair(t testing.TB) *devenv.Pair {
	t.Helper()
	pair := devtest.Pair(t)
	return pair
}

// build makes a world of the clusters, named by their Name.
func build(t testing.TB, topic string, parts int32, clusters ...*devenv.Kafka) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), kafka: map[string]*devenv.Kafka{}, topic: topic, ids: map[string]kadm.TopicID{}, parts: parts,
		clients: map[string]*kgo.Client{}, mirrors: map[string]*kgo.Client{},
		logs: map[string]map[int32][]*kgo.Record{}, copied: map[string]map[int32]int{}}
	w.catchUp = w.mirrorAll
	for _, k := range clusters {
		w.dcs = append(w.dcs, k.Name)
		w.kafka[k.Name] = k
	}
	for _, dc := range w.dcs {
		w.clients[dc] = w.client(dc, produce...)
		w.mirrors[dc] = w.mirrorInto(dc)
		created, err := kadm.NewClient(w.clients[dc]).CreateTopic(w.ctx, parts, 1, nil, topic)
		if err != nil {
			t.Fatal(err)
		}
		w.ids[dc] = created.ID
		w.logs[dc] = map[int32][]*kgo.Record{}
		for _, to := range w.dcs {
			w.copied[dc+">"+to] = map[int32]int{}
		}
	}
	return w
}

// produce are the producers' options. One produce request in flight: kfake
// may handle two concurrent ones to a never-written partition out of order
// and refuse the second sequence (KAFKA-15591), failing the producer.
var produce = []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxProduceRequestsInflightPerBroker(1)}

// mirrorInto starts a producer of the mirror into dc. Its transactional ID
// is the mirror's: starting one fences the one before.
func (w *world) mirrorInto(dc string) *kgo.Client {
	return w.client(dc, append(produce, kgo.TransactionalID("test-mirror-into-"+dc+"-"+w.topic))...)
}

func (w *world) opts(dc string) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(w.kafka[dc].Addr())}
}

func (w *world) client(dc string, opts ...kgo.Opt) *kgo.Client {
	w.t.Helper()
	cl, err := kgo.NewClient(append(w.opts(dc), opts...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cl.Close)
	return cl
}

// write produces n client records to partition p of dc.
func (w *world) write(dc string, p int32, n int) {
	w.t.Helper()
	var recs []*kgo.Record
	for range n {
		k := len(w.logs[dc][p])
		recs = append(recs, &kgo.Record{Topic: w.topic, Partition: p,
			Key:     []byte(fmt.Sprintf("%s-%d-%d", dc, p, k)),
			Value:   []byte("client record"),
			Headers: []kgo.RecordHeader{{Key: "app", Value: []byte("test")}}})
	}
	if err := w.clients[dc].ProduceSync(w.ctx, recs...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
	w.logs[dc][p] = append(w.logs[dc][p], recs...)
}

// mirror copies up to n (all when n < 0) of the client records of
// partition p of from that the mirror has not copied yet into to, in one
// transaction; with abort, the transaction is aborted and nothing counts.
func (w *world) mirror(from, to string, p int32, n int, abort bool) {
	w.t.Helper()
	copies, at := w.copies(from, to, p, n)
	if len(copies) == 0 {
		return
	}
	for attempt := 1; ; attempt++ {
		err := w.transact(to, copies, abort)
		if err == nil {
			break
		}
		if attempt == 3 {
			w.t.Fatalf("mirror %s into %s[%d] (abort %v): %v", from, to, p, abort, err)
		}
		// Nothing of the transaction is committed: the mirror restarts,
		// as ferry's does, its successor fencing it and aborting what it
		// wrote, and copies again.
		w.t.Logf("mirror %s into %s[%d]: %v; restarting the mirror", from, to, p, err)
		w.mirrors[to] = w.mirrorInto(to) // the old one is closed at the test's end
	}
	if !abort {
		w.logs[to][p] = append(w.logs[to][p], copies...)
		w.copied[from+">"+to][p] = at
	}
}

// errLost is a transaction kgo reported committed that the broker aborted.
var errLost = errors.New("the committed transaction's first copy is not there: kgo aborted it")

// transact writes copies into to in one transaction of the mirror's and
// commits it, or aborts it with abort. A commit is checked: under load,
// kgo (v1.22.2) now and then ends a transaction whose produce it had
// acknowledged with an abort ("no produce succeeded in this transaction"),
// returns no error, and refuses the next produce with an out of order
// sequence.
func (w *world) transact(to string, copies []*kgo.Record, abort bool) error {
	cl := w.mirrors[to]
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	if err := cl.ProduceSync(w.ctx, copies...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if err := cl.EndTransaction(w.ctx, kgo.TransactionEndTry(!abort)); err != nil {
		w.t.Fatalf("mirror into %s[%d]: end the transaction (abort %v): %v", to, copies[0].Partition, abort, err)
	}
	if !abort && !w.committedAt(to, copies[0].Partition, copies[0].Offset) {
		return errLost
	}
	return nil
}

// committedAt reports whether a read_committed reader of partition p of dc
// finds a record at offset.
func (w *world) committedAt(dc string, p int32, offset int64) bool {
	w.t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes, req.IsolationLevel, req.SessionEpoch = -1, 1<<20, 1, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = w.topic, w.ids[dc]
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, offset, 1<<20
	fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = -1, -1, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp, err := req.RequestWith(w.ctx, w.clients[dc])
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		w.t.Fatalf("read %s[%d] in %s at %d: %v", w.topic, p, dc, offset, err)
	}
	got, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset: offset, IsolationLevel: kgo.ReadCommitted(), Topic: w.topic, Partition: p,
	}, &resp.Topics[0].Partitions[0], kgo.DefaultDecompressor(), nil)
	if got.Err != nil {
		w.t.Fatalf("read %s[%d] in %s at %d: %v", w.topic, p, dc, offset, got.Err)
	}
	return len(got.Records) > 0 && got.Records[0].Offset == offset
}

// copies returns the copies of up to n (all when n < 0) of the client
// records of partition p of from that the mirror into to has not copied
// yet, and how far in from's log they go.
func (w *world) copies(from, to string, p int32, n int) ([]*kgo.Record, int) {
	src, at := w.logs[from][p], w.copied[from+">"+to][p]
	var copies []*kgo.Record
	for ; at < len(src) && n != 0; at++ {
		r := src[at]
		if _, mirrored := origin(r); mirrored {
			continue
		}
		headers := append(append([]kgo.RecordHeader(nil), r.Headers...),
			kgo.RecordHeader{Key: headers.Origin, Value: []byte(from)},
			kgo.RecordHeader{Key: headers.OriginOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))})
		copies = append(copies, &kgo.Record{Topic: w.topic, Partition: p, Key: r.Key, Value: r.Value, Headers: headers, Timestamp: r.Timestamp})
		n--
	}
	return copies, at
}

// crashMirror is the mirror into to killed mid-transaction: it has written
// the copies of everything from has not had copied yet, in every
// partition, and never ends the transaction, which holds to's last stable
// offset back. Its successor starts; its first transaction fences the dead
// one, aborting the open transaction, and copies everything again.
func (w *world) crashMirror(from, to string) {
	w.t.Helper()
	dead := w.mirrorInto(to)
	if err := dead.BeginTransaction(); err != nil {
		w.t.Fatal(err)
	}
	for p := range w.parts {
		copies, _ := w.copies(from, to, p, -1)
		if err := dead.ProduceSync(w.ctx, copies...).FirstErr(); err != nil {
			w.t.Fatal(err)
		}
	}
	w.mirrors[to] = w.mirrorInto(to)
}

// mirrorAll brings every direction of every partition up to date.
func (w *world) mirrorAll() {
	for p := range w.parts {
		for _, from := range w.dcs {
			for _, to := range w.dcs {
				if from != to {
					w.mirror(from, to, p, -1, false)
				}
			}
		}
	}
}

// commit commits offsets of group in dc from outside the group.
func (w *world) commit(dc, group string, at map[int32]int64) {
	w.t.Helper()
	os := kadm.Offsets{}
	for p, o := range at {
		os.Add(kadm.Offset{Topic: w.topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	if err := kadm.NewClient(w.clients[dc]).CommitAllOffsets(w.ctx, group, os); err != nil {
		w.t.Fatal(err)
	}
}

// translator translates from dc1 to dc2.
func (w *world) translator(opts ...offsets.Option) *offsets.Translator {
	w.t.Helper()
	tr, err := offsets.New("dc1", w.opts("dc1"), "dc2", w.opts("dc2"), opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(tr.Close)
	return tr
}

func (w *world) topics() []offsets.Topic {
	return []offsets.Topic{{Name: w.topic, Datacenters: w.dcs}}
}

// id names an original record: its partition, the datacenter a client
// wrote it to and its offset there.
type id struct {
	part   int32
	origin string
	seq    int64
}

// origin reads the origin headers of a record, as the contract writes them.
func origin(r *kgo.Record) (id, bool) {
	var o id
	var ok bool
	for _, h := range r.Headers {
		switch h.Key {
		case headers.Origin:
			o.origin, ok = string(h.Value), true
		case headers.OriginOffset:
			o.seq, _ = strconv.ParseInt(string(h.Value), 10, 64)
		}
	}
	return o, ok
}

func idOf(r *kgo.Record, dc string) id {
	if o, ok := origin(r); ok {
		o.part = r.Partition
		return o
	}
	return id{r.Partition, dc, r.Offset}
}

// read returns the committed records of every partition of dc, as a
// read_committed consumer sees them, read back from the cluster.
func (w *world) read(dc string) map[int32][]*kgo.Record {
	w.t.Helper()
	out := map[int32][]*kgo.Record{}
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	if err := kafkaconn.ReadToEnd(ctx, w.opts(dc), w.topic, nil, func(r *kgo.Record) {
		out[r.Partition] = append(out[r.Partition], r)
	}); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// ends returns the last stable offset of every partition of dc.
func (w *world) ends(dc string) map[int32]int64 {
	w.t.Helper()
	ls, err := kadm.NewClient(w.clients[dc]).ListCommittedOffsets(w.ctx, w.topic)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[int32]int64{}
	ls.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

package compiler

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// pending is a job before placement, with the paths its placement errors
// point at.
// origin is the path of the definition a job comes from: its mirror,
// its CDC source, or for a sink job its table's sink.
func (p *pending) origin() string {
	if p.sink {
		return path("cdc", p.name, "tables", p.job.Sink.Table, "sink")
	}
	return path(p.section, p.name)
}

type pending struct {
	job       plan.Job
	pinned    string // the shard the definition pins, or ""
	section   string // "mirrors" or "cdc"
	name      string // the topic or source
	tierTable string // for a CDC or sink job, the table that gave it its tier
	sink      bool   // a sink job: its shard is the table's sink.shard
}

// shardPath is the definition's shard field. Paths are built only for
// messages: building 10,000 of them up front is measurable.
func (p *pending) shardPath() string {
	if p.sink {
		return path(p.section, p.name, "tables", p.tierTable, "sink", "shard")
	}
	return path(p.section, p.name, "shard")
}

// tierPath is the field that gave the job its tier.
func (p *pending) tierPath() string {
	switch {
	case p.section == "mirrors":
		return path(p.section, p.name, "tier")
	case p.tierTable == "": // no tables: reported by the checks
		return path(p.section, p.name, "tables")
	}
	return path(p.section, p.name, "tables", p.tierTable, "tier")
}

// tierNote says where a CDC job's tier comes from, for messages.
func (p *pending) tierNote() string {
	if p.tierTable == "" {
		return ""
	}
	return fmt.Sprintf(", the tier of its table %q", p.tierTable)
}

// jobs is the fifth stage: one job per mirror direction and one per CDC
// source, each with its tier, budget, weight and client settings.
func jobs(defs *schema.Definitions) []*pending {
	var out []*pending
	allDCs := slices.Sorted(maps.Keys(defs.Datacenters))
	for _, topic := range slices.Sorted(maps.Keys(defs.Mirrors)) {
		m := defs.Mirrors[topic]
		dcs := m.Datacenters
		if len(dcs) == 0 {
			dcs = allDCs
		}
		dcs = append([]string(nil), dcs...)
		sort.Strings(dcs)
		for _, from := range dcs {
			for _, to := range dcs {
				if from == to {
					continue
				}
				out = append(out, &pending{
					job: plan.Job{
						ID:     plan.MirrorJobID(topic, from, to),
						Kind:   plan.KindMirror,
						Tier:   m.Tier,
						Weight: m.Partitions,
						Mirror: &plan.MirrorJob{
							Topic:             topic,
							Partitions:        m.Partitions,
							From:              from,
							To:                to,
							ReplicationFactor: m.ReplicationFactor,
							Config:            m.Config,
						},
					},
					pinned:  m.Shard,
					section: "mirrors",
					name:    topic,
				})
			}
		}
	}
	out = append(out, offsetsJobs(defs, out)...)
	for _, name := range slices.Sorted(maps.Keys(defs.CDC)) {
		out = append(out, cdcJob(defs, name))
		out = append(out, sinkJobs(defs, name)...)
	}
	for _, p := range out {
		p.job.Budget = plan.Duration(budget(defs, p.job.Tier))
		p.job.Client = ClientSettings(p.job.Tier, p.job.Budget.D())
	}
	return out
}

// offsetsJobs builds, when groups are listed, one job per direction that
// mirrors take: it keeps the groups' offsets translated that way for every
// topic mirrored so, at the strictest tier of those topics (a group's
// offsets are as fresh as its most urgent topic needs). mirrors are the
// mirror jobs, in topic order.
func offsetsJobs(defs *schema.Definitions, mirrors []*pending) []*pending {
	if len(defs.Groups) == 0 {
		return nil
	}
	dcs := map[string][]string{} // topic -> its datacenters, sorted
	for _, m := range mirrors {
		if j := m.job.Mirror; !slices.Contains(dcs[j.Topic], j.From) {
			dcs[j.Topic] = append(dcs[j.Topic], j.From) // From runs in sorted order
		}
	}
	byDir := map[string]*pending{}
	var out []*pending
	for _, m := range mirrors {
		j := m.job.Mirror
		id := plan.OffsetsJobID(j.From, j.To)
		p := byDir[id]
		if p == nil {
			p = &pending{job: plan.Job{ID: id, Kind: plan.KindOffsets, Tier: m.job.Tier, Weight: 1,
				Offsets: &plan.OffsetsJob{From: j.From, To: j.To, Groups: slices.Clone(defs.Groups)}},
				section: "mirrors", name: j.Topic}
			byDir[id] = p
			out = append(out, p)
		}
		if m.job.Tier < p.job.Tier {
			p.job.Tier, p.name = m.job.Tier, j.Topic
		}
		p.job.Offsets.Topics = append(p.job.Offsets.Topics, plan.OffsetsTopic{Topic: j.Topic, Datacenters: dcs[j.Topic]})
	}
	return out
}

// cdcJob builds a source's job. The job runs at the tier of its strictest
// table, so its clients meet every table's budget; each table keeps its own
// tier for measurement.
func cdcJob(defs *schema.Definitions, name string) *pending {
	src := defs.CDC[name]
	job := &plan.CDCJob{
		Source:      name,
		MySQL:       src.MySQL,
		Datacenter:  src.Datacenter,
		TopicPrefix: src.TopicPrefix,
	}
	if src.Snapshot != nil {
		job.Snapshot = *src.Snapshot
	}
	tier, tierTable, rate := 5, "", 0
	for _, t := range src.TableNames() {
		tbl := src.Tables[t]
		db, table := splitTable(t)
		snapshot := tbl.Snapshot
		if snapshot == "" {
			snapshot = schema.SnapshotInitial
		}
		job.Tables = append(job.Tables, plan.CDCTable{
			Name:     t,
			Database: db,
			Table:    table,
			Topic:    src.TopicPrefix + "." + t,
			Tier:     tbl.Tier,
			Budget:   plan.Duration(budget(defs, tbl.Tier)),
			Snapshot: snapshot,
			Rate:     tbl.Rate,
			Key:      tbl.Key,
		})
		if tbl.Tier < tier {
			tier, tierTable = tbl.Tier, t
		}
		rate += tbl.Rate
	}
	if tierTable == "" { // no tables: reported by the checks
		tier = 1
	}
	return &pending{
		job: plan.Job{
			ID:     plan.CDCJobID(name),
			Kind:   plan.KindCDC,
			Tier:   tier,
			Weight: len(job.Tables) + (rate+999)/1000,
			CDC:    job,
		},
		pinned:    src.Shard,
		section:   "cdc",
		name:      name,
		tierTable: tierTable,
	}
}

// sinkJobs builds a job per table of the source that has a sink, at the
// table's tier. It weighs 1 plus the table's rate / 1000, rounded up.
func sinkJobs(defs *schema.Definitions, name string) []*pending {
	src := defs.CDC[name]
	var out []*pending
	for _, t := range src.TableNames() {
		tbl := src.Tables[t]
		if tbl.Sink == nil {
			continue
		}
		snapshot := tbl.Snapshot
		if snapshot == "" {
			snapshot = schema.SnapshotInitial
		}
		out = append(out, &pending{
			job: plan.Job{
				ID:     plan.SinkJobID(name, t),
				Kind:   plan.KindSink,
				Tier:   tbl.Tier,
				Weight: 1 + (tbl.Rate+999)/1000,
				Sink: &plan.SinkJob{
					Source:     name,
					Table:      t,
					Topic:      src.TopicPrefix + "." + t,
					Datacenter: src.Datacenter,
					MySQL:      src.MySQL,
					Postgres:   tbl.Sink.Postgres,
					Target:     sinkTarget(t, tbl.Sink),
					Columns:    tbl.Sink.Columns,
					Snapshot:   snapshot,
					Key:        tbl.Key,
				},
			},
			pinned:    tbl.Sink.Shard,
			section:   "cdc",
			name:      name,
			tierTable: t,
			sink:      true,
		})
	}
	return out
}

// sinkTarget is the sink's target table: the one it names, or the source
// table's name in schema public.
func sinkTarget(table string, s *schema.Sink) string {
	if s.Table != "" {
		return s.Table
	}
	_, name := splitTable(table)
	return "public." + name
}

// budget is a tier's latency budget, overridden or default.
func budget(defs *schema.Definitions, tier int) time.Duration {
	if t, ok := defs.Tiers[string(rune('0'+tier))]; ok {
		if d, err := time.ParseDuration(t.Budget); err == nil && d > 0 {
			return d
		}
	}
	return DefaultBudgets[tier]
}

func splitTable(name string) (db, table string) {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return name[:i], name[i+1:]
		}
	}
	return "", name
}

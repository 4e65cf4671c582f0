package compiler

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"
)

// reservedPrefix starts the names of ferry's own topics (ferry.dlq,
// ferry.metrics, ...); pipelines may not declare topics there.
const reservedPrefix = "ferry."

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// checker is the fourth stage: the cross-reference checks CUE cannot
// express. It reports every problem and never stops at the first.
type checker struct {
	src  *source
	d    *decoded
	errs Errors
}

func (c *checker) errorf(p string, format string, args ...any) {
	c.errs = append(c.errs, &Error{Pos: c.src.pos(cue.ParsePath(p)), Path: p, Msg: fmt.Sprintf(format, args...)})
}

// at prints where a field was declared, for messages naming a second place.
func (c *checker) at(p string) string {
	pos := c.src.pos(cue.ParsePath(p))
	if !pos.IsValid() {
		return p
	}
	return fmt.Sprintf("%s (%s:%d:%d)", p, relative(pos.Filename()), pos.Line(), pos.Column())
}

func (c *checker) check() {
	c.datacenters()
	c.tiers()
	c.mirrors()
	c.cdc()
	c.topics()
	c.serverIDs()
}

func (c *checker) datacenters() {
	if len(c.d.declared["datacenters"]) == 0 && c.src.value.LookupPath(cue.ParsePath("datacenters")).Exists() {
		c.errorf("datacenters", "declare at least one datacenter")
	}
}

func (c *checker) tiers() {
	for _, name := range sortedKeys(c.d.defs.Tiers) {
		if d, err := time.ParseDuration(c.d.defs.Tiers[name].Budget); err != nil || d <= 0 {
			c.errorf(path("tiers", name, "budget"), "budget must be a positive duration, not %q", c.d.defs.Tiers[name].Budget)
		}
	}
	if m := c.d.defs.Metrics; m != nil && m.Interval != "" {
		if d, err := time.ParseDuration(m.Interval); err != nil || d < time.Second {
			c.errorf("metrics.interval", "interval must be a duration of at least 1s, not %q", m.Interval)
		}
	}
}

func (c *checker) mirrors() {
	for _, name := range sortedKeys(c.d.defs.Mirrors) {
		m := c.d.defs.Mirrors[name]
		c.shardRef(path("mirrors", name, "shard"), m.Shard)
		if m.Datacenters == nil { // not given: every declared datacenter
			if n := len(c.d.declared["datacenters"]); n == 1 {
				c.errorf(path("mirrors", name), "a mirror needs two datacenters, but only %s is declared: declare another one", strings.Join(sortedSet(c.d.declared["datacenters"]), ""))
			}
			continue
		}
		p := path("mirrors", name, "datacenters")
		seen := map[string]bool{}
		var twice []string
		for _, dc := range m.Datacenters {
			c.datacenterRef(p, dc)
			if seen[dc] {
				twice = append(twice, dc)
			}
			seen[dc] = true
		}
		switch {
		case len(seen) == 0:
			c.errorf(p, "a mirror needs two different datacenters, and the list is empty: list two, or leave the field out to mirror between all")
		case len(seen) == 1:
			c.errorf(p, "a mirror needs two different datacenters, and the list names only %s", m.Datacenters[0])
		default:
			for _, dc := range twice {
				c.errorf(p, "datacenter %q is listed twice", dc)
			}
		}
	}
}

func (c *checker) cdc() {
	for _, name := range sortedKeys(c.d.defs.CDC) {
		src := c.d.defs.CDC[name]
		c.shardRef(path("cdc", name, "shard"), src.Shard)
		c.datacenterRef(path("cdc", name, "datacenter"), src.Datacenter)
		if len(src.Tables) == 0 {
			c.errorf(path("cdc", name, "tables"), "a CDC source needs at least one table")
		}
		if hb := src.MySQL.Heartbeat; hb != nil && hb.Interval != "" {
			if d, err := time.ParseDuration(hb.Interval); err != nil || d < time.Millisecond {
				c.errorf(path("cdc", name, "mysql", "heartbeat", "interval"), "interval must be a duration of at least 1ms, not %q", hb.Interval)
			}
		}
	}
}

// topics reports topics declared twice, by two mirrors' CDC tables or a
// mirror and a CDC table, and names that Kafka or ferry do not allow.
func (c *checker) topics() {
	type decl struct {
		topic, path string
		pos         token.Pos
	}
	var decls []decl
	add := func(topic, p string) {
		decls = append(decls, decl{topic, p, c.src.pos(cue.ParsePath(p))})
	}
	for _, name := range sortedKeys(c.d.defs.Mirrors) {
		add(name, path("mirrors", name))
	}
	for _, name := range sortedKeys(c.d.defs.CDC) {
		src := c.d.defs.CDC[name]
		if reserved(src.TopicPrefix + ".") {
			// One report at the prefix, rather than one per table.
			c.errorf(path("cdc", name, "topicPrefix"), "topic prefix %q puts the tables' topics in ferry's reserved namespace %q: choose another prefix", src.TopicPrefix, reservedPrefix+"*")
			continue
		}
		for _, t := range src.TableNames() {
			add(src.TopicPrefix+"."+t, path("cdc", name, "tables", t))
		}
	}
	sort.SliceStable(decls, func(i, j int) bool { return before(decls[i].pos, decls[j].pos) })
	first := map[string]string{}
	for _, d := range decls {
		switch {
		case reserved(d.topic):
			c.errorf(d.path, "topic %q is in ferry's reserved namespace %q: choose another name", d.topic, reservedPrefix+"*")
		case !topicName.MatchString(d.topic):
			c.errorf(d.path, "topic %q is not a valid Kafka topic name (letters, digits, \".\", \"_\", \"-\", at most 249)", d.topic)
		case first[d.topic] != "":
			c.errorf(d.path, "topic %q is also declared by %s", d.topic, c.at(first[d.topic]))
		default:
			first[d.topic] = d.path
		}
	}
}

// reserved reports whether a topic is in ferry's own namespace.
func reserved(topic string) bool { return strings.HasPrefix(topic, reservedPrefix) }

// serverIDs reports CDC sources sharing a MySQL server_id: a server drops
// the older of two replica connections with the same id, so two sources
// would keep disconnecting each other.
func (c *checker) serverIDs() {
	type decl struct {
		id   uint32
		path string
		pos  token.Pos
	}
	var decls []decl
	for _, name := range sortedKeys(c.d.defs.CDC) {
		p := path("cdc", name, "mysql", "serverID")
		decls = append(decls, decl{c.d.defs.CDC[name].MySQL.ServerID, p, c.src.pos(cue.ParsePath(p))})
	}
	sort.SliceStable(decls, func(i, j int) bool { return before(decls[i].pos, decls[j].pos) })
	first := map[uint32]string{}
	for _, d := range decls {
		if f, ok := first[d.id]; ok {
			c.errorf(d.path, "serverID %d is also used by %s; each CDC source needs its own", d.id, c.at(f))
			continue
		}
		first[d.id] = d.path
	}
}

func (c *checker) shardRef(p, shard string) {
	if shard != "" && !c.d.declared["shards"][shard] {
		c.errorf(p, "unknown shard %q (declared: %s)", shard, list(sortedSet(c.d.declared["shards"])))
	}
}

func (c *checker) datacenterRef(p, dc string) {
	if !c.d.declared["datacenters"][dc] {
		c.errorf(p, "unknown datacenter %q (declared: %s)", dc, list(sortedSet(c.d.declared["datacenters"])))
	}
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func before(a, b token.Pos) bool {
	if a.Filename() != b.Filename() {
		return a.Filename() < b.Filename()
	}
	if a.Line() != b.Line() {
		return a.Line() < b.Line()
	}
	return a.Column() < b.Column()
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedSet(m map[string]bool) []string { return sortedKeys(m) }

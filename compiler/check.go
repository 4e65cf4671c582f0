package compiler

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// reservedPrefix starts the names of ferry's own topics (ferry.dlq,
// ferry.metrics, ...); pipelines may not declare topics there.
const reservedPrefix = "ferry."

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// checker is the fourth stage: the cross-reference checks CUE cannot
// express. It reports every problem and never stops at the first.
type checker struct {
	src     *source
	d       *decoded
	errs    Errors
	running map[string]bool // declarations the previous plan runs, by path (see runningDecls)
}

// runningDecls are the paths of the declarations a previous plan runs
// (mirrors, CDC sources' server IDs, CDC tables): when a new declaration
// takes a value one of them holds, the problem is the new one's.
func runningDecls(prev *plan.Plan) map[string]bool {
	out := map[string]bool{}
	if prev == nil {
		return out
	}
	for _, j := range prev.Jobs {
		switch {
		case j.Mirror != nil:
			out[path("mirrors", j.Mirror.Topic)] = true
		case j.CDC != nil:
			out[path("cdc", j.CDC.Source, "mysql", "serverID")] = true
			for _, t := range j.CDC.Tables {
				out[path("cdc", j.CDC.Source, "tables", t.Name)] = true
			}
		}
	}
	return out
}

func (c *checker) errorf(p string, format string, args ...any) {
	c.errs = append(c.errs, &Error{Pos: c.src.pos(parsePath(p)), Path: p, Msg: fmt.Sprintf(format, args...)})
}

// at prints where a field was declared, for messages naming a second place.
func (c *checker) at(p string) string {
	pos := c.src.pos(parsePath(p))
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
	c.sinks()
	c.topics()
	c.serverIDs()
	c.groups()
}

// groups reports group patterns that do not compile. Their paths are
// written as CUE writes list elements in its own messages: groups.1.
func (c *checker) groups() {
	for i, p := range c.d.defs.Groups {
		if _, err := schema.GroupPattern(p); err != nil {
			c.errs = append(c.errs, &Error{
				Pos:  c.src.pos(cue.MakePath(cue.Str("groups"), cue.Index(i))),
				Path: fmt.Sprintf("groups.%d", i),
				Msg:  fmt.Sprintf("group pattern %v: write a glob (billing-*) or fix the expression", err),
			})
		}
	}
}

func (c *checker) datacenters() {
	if len(c.d.declared["datacenters"]) == 0 && c.src.value.LookupPath(cue.ParsePath("datacenters")).Exists() {
		c.errorf("datacenters", "declare at least one datacenter")
	}
}

func (c *checker) tiers() {
	for _, name := range slices.Sorted(maps.Keys(c.d.defs.Tiers)) {
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
	for _, name := range slices.Sorted(maps.Keys(c.d.defs.Mirrors)) {
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
	for _, name := range slices.Sorted(maps.Keys(c.d.defs.CDC)) {
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

// topics reports topics declared twice, by two mirrors, two CDC tables or
// a mirror and a CDC table, and names that Kafka or ferry do not allow.
func (c *checker) topics() {
	var decls []decl[string]
	for _, name := range slices.Sorted(maps.Keys(c.d.defs.Mirrors)) {
		decls = append(decls, decl[string]{name, "mirrors", []string{name}})
	}
	for _, name := range slices.Sorted(maps.Keys(c.d.defs.CDC)) {
		src := c.d.defs.CDC[name]
		if reserved(src.TopicPrefix + ".") {
			// One report at the prefix, rather than one per table.
			c.errorf(path("cdc", name, "topicPrefix"), "topic prefix %q puts the tables' topics in ferry's reserved namespace %q: choose another prefix", src.TopicPrefix, reservedPrefix+"*")
			continue
		}
		for _, t := range src.TableNames() {
			decls = append(decls, decl[string]{src.TopicPrefix + "." + t, "cdc", []string{name, "tables", t}})
		}
	}
	valid := decls[:0]
	for _, d := range decls {
		switch {
		case reserved(d.key):
			c.errorf(d.path(), "topic %q is in ferry's reserved namespace %q: choose another name", d.key, reservedPrefix+"*")
		case !topicName.MatchString(d.key):
			c.errorf(d.path(), "topic %q is not a valid Kafka topic name (letters, digits, \".\", \"_\", \"-\", at most 249)", d.key)
		default:
			valid = append(valid, d)
		}
	}
	duplicates(c, valid, func(d, first decl[string]) {
		c.errorf(d.path(), "topic %q is also declared by %s", d.key, c.at(first.path()))
	})
}

// serverIDs reports CDC sources sharing a MySQL server_id: a server drops
// the older of two replica connections with the same id, so two sources
// would keep disconnecting each other.
func (c *checker) serverIDs() {
	var decls []decl[uint32]
	for _, name := range slices.Sorted(maps.Keys(c.d.defs.CDC)) {
		decls = append(decls, decl[uint32]{c.d.defs.CDC[name].MySQL.ServerID, "cdc", []string{name, "mysql", "serverID"}})
	}
	duplicates(c, decls, func(d, first decl[uint32]) {
		c.errorf(d.path(), "serverID %d is also used by %s; each CDC source needs its own", d.key, c.at(first.path()))
	})
}

// reserved reports whether a topic is in ferry's own namespace.
func reserved(topic string) bool { return strings.HasPrefix(topic, reservedPrefix) }

// decl is one declaration of a value that must be unique, such as a topic:
// the value and the field that declares it.
type decl[K comparable] struct {
	key     K
	section string
	keys    []string
}

func (d decl[K]) path() string { return path(d.section, d.keys...) }

// duplicates calls report for each declaration of a key that an earlier
// one, in file order, declares too, naming the earliest; a declaration the
// previous plan runs counts as the earliest, so that the new one is blamed
// (definitions from the control API have no file order). Positions are
// looked up only for keys declared more than once: a lookup costs a walk
// of the CUE value, and most keys are unique.
func duplicates[K comparable](c *checker, decls []decl[K], report func(d, first decl[K])) {
	count := make(map[K]int, len(decls))
	for _, d := range decls {
		count[d.key]++
	}
	groups := map[K][]decl[K]{}
	var order []K
	for _, d := range decls {
		if count[d.key] < 2 {
			continue
		}
		if groups[d.key] == nil {
			order = append(order, d.key)
		}
		groups[d.key] = append(groups[d.key], d)
	}
	for _, k := range order {
		g := groups[k]
		pos := make([]token.Pos, len(g))
		for i, d := range g {
			pos[i] = c.src.pos(parsePath(d.path()))
		}
		idx := make([]int, len(g))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool {
			if ra, rb := c.running[g[idx[a]].path()], c.running[g[idx[b]].path()]; ra != rb {
				return ra
			}
			return before(pos[idx[a]], pos[idx[b]])
		})
		for _, i := range idx[1:] {
			report(g[i], g[idx[0]])
		}
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

func sortedSet(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

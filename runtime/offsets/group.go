package offsets

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ActiveError refuses to commit offsets for a group that has members in
// the datacenter: they would overwrite the commit, or be moved under their
// feet.
type ActiveError struct {
	Group, Datacenter string
	Members           int
}

func (e *ActiveError) Error() string {
	members := ""
	switch {
	case e.Members == 1:
		members = " (1 member)"
	case e.Members > 1:
		members = fmt.Sprintf(" (%d members)", e.Members)
	}
	return fmt.Sprintf("group %s is active in %s%s: stop its consumers there, then translate and apply again", e.Group, e.Datacenter, members)
}

// TranslateGroup translates the group's committed offsets of the topics
// from the source datacenter to the target.
func (t *Translator) TranslateGroup(ctx context.Context, group string, topics []Topic) ([]Partition, error) {
	names := make([]string, len(topics))
	for i, tp := range topics {
		names[i] = tp.Name
	}
	c, err := t.from.committed(ctx, group, names)
	if err != nil {
		return nil, err
	}
	return t.Translate(ctx, topics, c)
}

// Inactive returns an *ActiveError when the group has members in the
// target datacenter, or is rebalancing there.
func (t *Translator) Inactive(ctx context.Context, group string) error {
	return t.to.inactive(ctx, group)
}

// Commit commits the translated partitions to the group in the target
// datacenter, refusing with an *ActiveError when the group has members
// there. The commit's metadata names the source datacenter and offset.
func (t *Translator) Commit(ctx context.Context, group string, parts []Partition) error {
	if err := t.to.inactive(ctx, group); err != nil {
		return err
	}
	os := kadm.Offsets{}
	for _, p := range parts {
		if p.Translated() {
			os.Add(kadm.Offset{Topic: p.Topic, Partition: p.Partition, At: p.Target, LeaderEpoch: -1,
				Metadata: fmt.Sprintf("ferry: translated from %s offset %d", t.from.name, p.Source)})
		}
	}
	return t.to.commit(ctx, group, os)
}

// committed returns the group's committed offsets of topics.
func (d *datacenter) committed(ctx context.Context, group string, topics []string) (map[string]map[int32]int64, error) {
	rs, err := d.adm.FetchOffsetsForTopics(ctx, group, topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil // a group never seen here has committed nothing
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s in %s: %w", group, d.name, err)
	}
	out := map[string]map[int32]int64{}
	for topic, ps := range rs {
		for p, o := range ps {
			switch {
			case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			case o.Err != nil:
				return nil, fmt.Errorf("committed offset of group %s for %s[%d] in %s: %w", group, topic, p, d.name, o.Err)
			case o.At >= 0:
				if out[topic] == nil {
					out[topic] = map[int32]int64{}
				}
				out[topic][p] = o.At
			}
		}
	}
	return out, nil
}

// inactive returns an *ActiveError when the group has members in d or is
// rebalancing there.
func (d *datacenter) inactive(ctx context.Context, group string) error {
	ds, err := d.adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s in %s: %w", group, d.name, err)
	}
	g := ds[group]
	switch {
	case errors.Is(g.Err, kerr.GroupIDNotFound):
		return nil
	case g.Err != nil:
		return fmt.Errorf("describe group %s in %s: %w", group, d.name, g.Err)
	case len(g.Members) > 0 || (g.State != "Empty" && g.State != "Dead" && g.State != ""):
		return &ActiveError{Group: group, Datacenter: d.name, Members: len(g.Members)}
	}
	return nil
}

// commit commits offsets to an inactive group. The broker itself refuses
// a commit from outside a group that has members, which closes the race
// with a consumer joining after inactive looked.
func (d *datacenter) commit(ctx context.Context, group string, os kadm.Offsets) error {
	if len(os) == 0 {
		return nil
	}
	rs, err := d.adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = rs.Error()
	}
	switch {
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.RebalanceInProgress):
		return &ActiveError{Group: group, Datacenter: d.name}
	case err != nil:
		return fmt.Errorf("commit offsets of group %s in %s: %w", group, d.name, err)
	}
	return nil
}

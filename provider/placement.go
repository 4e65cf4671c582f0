package provider

// The jobs an object runs and the shard each is placed on, from the plan
// the stored definitions compile to: a computed attribute of mirrors, CDC
// sources and CDC tables.

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// placedModel is the model of an object that runs jobs.
type placedModel interface {
	jobs() *types.Map
}

// placementAge is how long a plan read for one object serves the next
// ones: a refresh of 500 mirrors reads it once or twice, not 500 times.
const placementAge = 2 * time.Second

// placements caches the compiled plan's placement: job ID -> shard.
type placements struct {
	mu   sync.Mutex
	at   time.Time
	jobs map[string]string
}

// get returns the placement, read anew when fresh or older than
// placementAge.
func (ps *placements) get(ctx context.Context, c *api.Client, fresh bool) (map[string]string, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !fresh && ps.jobs != nil && time.Since(ps.at) < placementAge {
		return ps.jobs, nil
	}
	p, err := c.Plan(ctx)
	if err != nil {
		return nil, err
	}
	ps.jobs = make(map[string]string, len(p.Jobs))
	for _, j := range p.Jobs {
		ps.jobs[j.ID] = j.Shard
	}
	ps.at = time.Now()
	return ps.jobs, nil
}

// jobsOf picks an object's jobs out of a placement: a mirror's two
// directions, a source's capture, a table's capture and sink.
func jobsOf(kind api.Kind, name string, placed map[string]string) map[string]string {
	out := map[string]string{}
	keep := func(id string) {
		if shard, ok := placed[id]; ok {
			out[id] = shard
		}
	}
	switch kind {
	case api.Mirror:
		for id, shard := range placed {
			if strings.HasPrefix(id, "mirror:"+name+":") {
				out[id] = shard
			}
		}
	case api.CDCSource:
		keep(plan.CDCJobID(name))
	case api.CDCTable:
		src, table, _ := api.SplitTableName(name)
		keep(plan.CDCJobID(src))
		keep(plan.SinkJobID(src, table))
	}
	return out
}

// jobsAttribute is the computed attribute of an object's jobs.
func jobsAttribute() schema.MapAttribute {
	return schema.MapAttribute{
		Computed:    true,
		ElementType: types.StringType,
		MarkdownDescription: "The jobs ferry runs for the object and the shard each is placed on (job ID to shard), as the " +
			"stored definitions compile: read after each apply and refresh.",
	}
}

// setJobs fills in a model's jobs, if it has any, from the placement;
// read anew (fresh) after a write. A placement that cannot be read is a
// warning, and the jobs are null.
func setJobs(ctx context.Context, c *client, kind api.Kind, name string, m any, fresh bool) diag.Diagnostics {
	pm, ok := m.(placedModel)
	if !ok {
		return nil
	}
	var diags diag.Diagnostics
	placed, err := c.placed.get(ctx, c.Client, fresh)
	if err != nil {
		*pm.jobs() = types.MapNull(types.StringType)
		diags.AddWarning("Placement not read", "The jobs of "+api.Describe(kind, name)+" are left out: "+err.Error())
		return diags
	}
	v, d := types.MapValueFrom(ctx, types.StringType, jobsOf(kind, name, placed))
	diags.Append(d...)
	*pm.jobs() = v
	return diags
}

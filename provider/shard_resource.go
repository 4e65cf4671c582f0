package provider

import (
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/datasource"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

type shardModel struct {
	common
	Name      types.String `tfsdk:"name"`
	Tiers     []int64      `tfsdk:"tiers"`
	MaxJobs   types.Int64  `tfsdk:"max_jobs"`
	MaxWeight types.Int64  `tfsdk:"max_weight"`
}

func newShardResource() resource.Resource { return shardResource() }

// newShardDataSource reads a stored object by its name.
func newShardDataSource() datasource.DataSource {
	return newObjectDataSource(shardResource(), "name")
}

func shardResource() *objectResource[shardModel, *shardModel] {
	return newObjectResource[shardModel](api.Shard, "shard",
		"A shard: a named group of executor processes (`ferry run --shard NAME`) that jobs are placed on "+
			"(CUE: `shards: NAME: {...}`). Every attribute but the name changes in place: ferry places the jobs again, "+
			"keeping each on its shard where it still fits.",
		map[string]schema.Attribute{
			"name": nameAttribute("The shard's name (`[a-z][a-z0-9_]*`).", matching(namePattern, "a shard name ([a-z][a-z0-9_]*)")),
			"tiers": schema.ListAttribute{
				Required:            true,
				ElementType:         types.Int64Type,
				MarkdownDescription: "The latency tiers (1 to 4) whose jobs may run here, for example `[1]` or `[2, 3, 4]`.",
				Validators:          []validator.List{atLeast(1), bounds("#Tier")},
			},
			"max_jobs": schema.Int64Attribute{
				Optional:            true,
				MarkdownDescription: "At most this many jobs on the shard. Default: no limit.",
				Validators:          []validator.Int64{bounds("#Shard.maxJobs")},
			},
			"max_weight": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "At most this much weight on the shard: a mirror job weighs its partitions, a CDC job its " +
					"tables plus its declared rate / 1000. Default: no limit.",
				Validators: []validator.Int64{bounds("#Shard.maxWeight")},
			},
		})
}

func (m *shardModel) objectName() (string, bool) {
	return m.Name.ValueString(), !m.Name.IsUnknown()
}

func (m *shardModel) spec() any {
	s := fschema.Shard{MaxJobs: int(m.MaxJobs.ValueInt64()), MaxWeight: int(m.MaxWeight.ValueInt64())}
	for _, t := range m.Tiers {
		s.Tiers = append(s.Tiers, int(t))
	}
	return s
}

func (m *shardModel) load(o *api.Object) error {
	var s fschema.Shard
	if err := json.Unmarshal(o.Spec, &s); err != nil {
		return err
	}
	m.Name, m.MaxJobs, m.MaxWeight, m.Tiers = types.StringValue(o.Name), optInt(s.MaxJobs), optInt(s.MaxWeight), nil
	for _, t := range s.Tiers {
		m.Tiers = append(m.Tiers, int64(t))
	}
	return nil
}

package provider

import (
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/datasource"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

type mirrorModel struct {
	common
	Name              types.String      `tfsdk:"name"`
	Partitions        types.Int64       `tfsdk:"partitions"`
	Tier              types.Int64       `tfsdk:"tier"`
	Shard             types.String      `tfsdk:"shard"`
	Datacenters       []string          `tfsdk:"datacenters"`
	ReplicationFactor types.Int64       `tfsdk:"replication_factor"`
	Config            map[string]string `tfsdk:"config"`
	Jobs              types.Map         `tfsdk:"jobs"`
}

func newMirrorResource() resource.Resource { return mirrorResource() }

// newMirrorDataSource reads a stored object by its name.
func newMirrorDataSource() datasource.DataSource {
	return newObjectDataSource(mirrorResource(), "name")
}

func mirrorResource() *objectResource[mirrorModel, *mirrorModel] {
	return newObjectResource[mirrorModel](api.Mirror, "mirror",
		"A topic mirrored under the same name between datacenters, both ways, exactly once (CUE: `mirrors: \"TOPIC\": {...}`). "+
			"It runs as one job per direction, `mirror:TOPIC:FROM-TO`. Tier, shard and datacenters change in place "+
			"(jobs restart, move, start or stop); a new name or partition count replaces the mirror.",
		map[string]schema.Attribute{
			"name": nameAttribute("The topic's name, the same in every datacenter. Names starting with `ferry.` are reserved.",
				matching(topicPattern, "a Kafka topic name ([a-zA-Z0-9._-], at most 249 characters)")),
			"partitions": schema.Int64Attribute{
				Required: true,
				MarkdownDescription: "The topic's partition count, the same in every datacenter (1 to 100000). ferry creates a " +
					"missing topic with it and never changes the count of an existing topic (that would move keys between " +
					"partitions): changing it replaces the mirror, and its jobs refuse to start, naming both counts, until the " +
					"topic is recreated with the new count in every datacenter.",
				Validators:    []validator.Int64{bounds("#Mirror.partitions")},
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"tier": schema.Int64Attribute{
				Required:            true,
				MarkdownDescription: "The latency tier, 1 (300 ms) to 4 (1 h): sets the jobs' client settings and budget. Changes in place.",
				Validators:          []validator.Int64{bounds("#Tier")},
			},
			"shard": shardAttribute("both directions' jobs"),
			"datacenters": schema.ListAttribute{
				Optional:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "The datacenters to mirror between, at least two. Default: every declared datacenter. Changes in place.",
				Validators:          []validator.List{atLeast(2), matching(namePattern, "a datacenter name ([a-z][a-z0-9_]*)")},
			},
			"replication_factor": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "The replication factor ferry creates a missing topic with (1 to 32767). Default: the broker's. " +
					"Changes in place; existing topics keep theirs.",
				Validators: []validator.Int64{bounds("#Mirror.replicationFactor")},
			},
			"config": schema.MapAttribute{
				Optional:    true,
				ElementType: types.StringType,
				MarkdownDescription: "Topic configs ferry creates a missing topic with, such as `{ \"retention.ms\" = \"86400000\" }`. " +
					"Changes in place; existing topics keep theirs. `{}` is the same as leaving it out.",
			},
		})
}

func (m *mirrorModel) objectName() (string, bool) {
	return m.Name.ValueString(), !m.Name.IsUnknown()
}

func (m *mirrorModel) jobs() *types.Map { return &m.Jobs }

func (m *mirrorModel) spec() any {
	return fschema.Mirror{
		Partitions:        int(m.Partitions.ValueInt64()),
		Tier:              int(m.Tier.ValueInt64()),
		Shard:             m.Shard.ValueString(),
		Datacenters:       m.Datacenters,
		ReplicationFactor: int(m.ReplicationFactor.ValueInt64()),
		Config:            m.Config,
	}
}

func (m *mirrorModel) load(o *api.Object) error {
	var s fschema.Mirror
	if err := json.Unmarshal(o.Spec, &s); err != nil {
		return err
	}
	m.Name = types.StringValue(o.Name)
	m.Partitions, m.Tier = types.Int64Value(int64(s.Partitions)), types.Int64Value(int64(s.Tier))
	m.Shard, m.Datacenters = optString(s.Shard), s.Datacenters
	m.ReplicationFactor = optInt(s.ReplicationFactor)
	if len(s.Config) > 0 || len(m.Config) > 0 || m.Config == nil {
		m.Config = s.Config // else `config = {}`, which is stored as no configs
	}
	return nil
}

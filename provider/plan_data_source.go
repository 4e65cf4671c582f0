package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// planDataSource exposes the plan the stored definitions compile to.
type planDataSource struct {
	client *client
}

type planModel struct {
	JSON types.String `tfsdk:"json"`
	Jobs []planJob    `tfsdk:"jobs"`
}

type planJob struct {
	ID     types.String `tfsdk:"id"`
	Kind   types.String `tfsdk:"kind"`
	Shard  types.String `tfsdk:"shard"`
	Tier   types.Int64  `tfsdk:"tier"`
	Budget types.String `tfsdk:"budget"`
	Weight types.Int64  `tfsdk:"weight"`
}

func newPlanDataSource() datasource.DataSource { return &planDataSource{} }

func (d *planDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_plan"
}

func (d *planDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(description string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: description}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The plan the executor group's stored definitions compile to, as `ferry compile` writes it: " +
			"every job with its shard, tier and budget. Terraform reads it while planning, before this run's changes; " +
			"with `depends_on` on the ferry resources it is read after they are applied, so it shows their result.",
		Attributes: map[string]schema.Attribute{
			"json": computed("The whole plan as JSON (`ferry compile`'s format): datacenters, shards, tier budgets, metrics settings and jobs."),
			"jobs": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The jobs, sorted by ID.",
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"id":     computed("The job's ID: `mirror:TOPIC:FROM-TO` or `cdc:SOURCE`."),
						"kind":   computed("`mirror` or `cdc`."),
						"shard":  computed("The shard the job is placed on."),
						"tier":   schema.Int64Attribute{Computed: true, MarkdownDescription: "The job's latency tier."},
						"budget": computed("The tier's latency budget, a duration such as `300ms`."),
						"weight": schema.Int64Attribute{Computed: true, MarkdownDescription: "The job's weight in placement."},
					},
				},
			},
		},
	}
}

func (d *planDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, _ *datasource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*client); ok {
		d.client = c
	}
}

func (d *planDataSource) Read(ctx context.Context, _ datasource.ReadRequest, resp *datasource.ReadResponse) {
	p, err := d.client.Plan(ctx)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read ferry's plan", err.Error())
		return
	}
	b, err := p.Encode()
	if err != nil {
		resp.Diagnostics.AddError("Cannot encode ferry's plan", err.Error())
		return
	}
	m := planModel{JSON: types.StringValue(string(b)), Jobs: []planJob{}}
	for _, j := range p.Jobs {
		m.Jobs = append(m.Jobs, planJob{
			ID: types.StringValue(j.ID), Kind: types.StringValue(j.Kind), Shard: types.StringValue(j.Shard),
			Tier: types.Int64Value(int64(j.Tier)), Budget: types.StringValue(j.Budget.String()), Weight: types.Int64Value(int64(j.Weight)),
		})
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

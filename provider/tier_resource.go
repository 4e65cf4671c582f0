package provider

import (
	"encoding/json"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

type tierModel struct {
	common
	Tier   types.Int64  `tfsdk:"tier"`
	Budget types.String `tfsdk:"budget"`
}

func newTierResource() resource.Resource {
	return newObjectResource[tierModel](api.Tier, "tier",
		"A latency tier's budget override (CUE: `tiers: \"1\": budget: \"200ms\"`): every job of the tier is measured "+
			"against it, alerts take it as their threshold, and a budget below the tier's default pulls its client "+
			"settings (commit interval, fetch wait, linger) down with it. Without it a tier has its default budget "+
			"(300ms, 10s, 10m, 1h).",
		map[string]schema.Attribute{
			"tier": schema.Int64Attribute{
				Required:            true,
				MarkdownDescription: "The tier, 1 to 4; `terraform import` takes it as the id. Changing it replaces the object.",
				Validators:          []validator.Int64{bounds("#Tier")},
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"budget": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The tier's latency budget, a duration such as `200ms`. Changing it applies in place.",
				Validators:          []validator.String{matching(durationPattern, "a duration such as 200ms")},
			},
		})
}

func (m *tierModel) objectName() (string, bool) {
	return strconv.FormatInt(m.Tier.ValueInt64(), 10), !m.Tier.IsUnknown()
}

func (m *tierModel) spec() any { return fschema.TierSettings{Budget: m.Budget.ValueString()} }

func (m *tierModel) load(o *api.Object) error {
	var s fschema.TierSettings
	if err := json.Unmarshal(o.Spec, &s); err != nil {
		return err
	}
	n, err := strconv.ParseInt(o.Name, 10, 64)
	if err != nil {
		return err
	}
	m.Tier, m.Budget = types.Int64Value(n), types.StringValue(s.Budget)
	return nil
}

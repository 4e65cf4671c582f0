package provider

import (
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

type alertsModel struct {
	common
	Labels map[string]string         `tfsdk:"labels"`
	Tiers  map[string]tierAlertModel `tfsdk:"tiers"`
}

type tierAlertModel struct {
	Severity     types.String `tfsdk:"severity"`
	AtRiskFor    types.String `tfsdk:"at_risk_for"`
	BreachingFor types.String `tfsdk:"breaching_for"`
}

func newAlertsResource() resource.Resource {
	duration := matching(durationPattern, "a duration such as 5m")
	return newObjectResource[alertsModel](api.Alerts, "alerts",
		"The executor group's alert settings (CUE: `alerts: {...}`), one object named `"+api.AlertsName+"` "+
			"(`terraform import ferry_alerts.x "+api.AlertsName+"`): labels on every alert of the rules "+
			"`ferry compile --alerts` writes, and per tier the severity and how long a job must be at risk or breaching "+
			"before its alert fires. Changes apply in place.",
		map[string]schema.Attribute{
			"labels": schema.MapAttribute{
				Optional:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "Labels added to every alert, such as `{ team = \"payments\" }`.",
			},
			"tiers": schema.MapNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Per tier (`\"1\"` to `\"4\"`), its alerts' settings; a tier left out keeps the defaults.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"severity": schema.StringAttribute{Optional: true, MarkdownDescription: "The alerts' severity label.",
						Validators: []validator.String{matching(regexpNotEmpty, "a severity such as page")}},
					"at_risk_for": schema.StringAttribute{Optional: true, MarkdownDescription: "How long a job's p99 must be over the budget before `FerryTier<N>AtRisk` fires.",
						Validators: []validator.String{duration}},
					"breaching_for": schema.StringAttribute{Optional: true, MarkdownDescription: "How long a job must have under 99% of its records within the budget before `FerryTier<N>Breaching` fires.",
						Validators: []validator.String{duration}},
				}},
			},
		})
}

func (m *alertsModel) objectName() (string, bool) { return api.AlertsName, true }

func (m *alertsModel) spec() any {
	a := fschema.Alerts{Labels: m.Labels}
	for tier, t := range m.Tiers {
		if a.Tiers == nil {
			a.Tiers = map[string]fschema.TierAlerts{}
		}
		a.Tiers[tier] = fschema.TierAlerts{Severity: t.Severity.ValueString(), AtRiskFor: t.AtRiskFor.ValueString(), BreachingFor: t.BreachingFor.ValueString()}
	}
	return a
}

func (m *alertsModel) load(o *api.Object) error {
	var a fschema.Alerts
	if err := json.Unmarshal(o.Spec, &a); err != nil {
		return err
	}
	m.Labels, m.Tiers = nil, nil
	if len(a.Labels) > 0 {
		m.Labels = a.Labels
	}
	for tier, t := range a.Tiers {
		if m.Tiers == nil {
			m.Tiers = map[string]tierAlertModel{}
		}
		m.Tiers[tier] = tierAlertModel{Severity: optString(t.Severity), AtRiskFor: optString(t.AtRiskFor), BreachingFor: optString(t.BreachingFor)}
	}
	return nil
}

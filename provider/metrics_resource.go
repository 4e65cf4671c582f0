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

type metricsModel struct {
	common
	Interval types.String `tfsdk:"interval"`
}

func newMetricsResource() resource.Resource {
	return newObjectResource[metricsModel](api.Metrics, "metrics",
		"The executor group's metrics settings (CUE: `metrics: {...}`), one object named `"+api.MetricsName+"` "+
			"(`terraform import ferry_metrics.x "+api.MetricsName+"`). Without it, executors write `ferry.metrics` "+
			"every 10s.",
		map[string]schema.Attribute{
			"interval": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "How often every executor writes its jobs' figures to the `ferry.metrics` topic, a " +
					"duration such as `10s`. Default: 10s. Changing it applies in place.",
				Validators: []validator.String{matching(durationPattern, "a duration such as 10s")},
			},
		})
}

func (m *metricsModel) objectName() (string, bool) { return api.MetricsName, true }

func (m *metricsModel) spec() any { return fschema.Metrics{Interval: m.Interval.ValueString()} }

func (m *metricsModel) load(o *api.Object) error {
	var s fschema.Metrics
	if err := json.Unmarshal(o.Spec, &s); err != nil {
		return err
	}
	m.Interval = optString(s.Interval)
	return nil
}

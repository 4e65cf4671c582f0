package provider

import (
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

type groupModel struct {
	common
	Name types.String `tfsdk:"name"`
}

func newGroupResource() resource.Resource {
	return newObjectResource[groupModel](api.Group, "group",
		"A consumer group whose committed offsets ferry translates between the datacenters, so its consumers can fail "+
			"over (CUE: an entry of `groups: [...]`). The name may be a glob: `billing-*` (`*` is any run of characters) "+
			"covers every group it matches. Groups turn on the offsets jobs between every pair of datacenters.",
		map[string]schema.Attribute{
			"name": nameAttribute("The consumer group, or a glob of groups such as `billing-*`.", matching(regexpNotEmpty, "a consumer group or glob")),
		})
}

func (m *groupModel) objectName() (string, bool) { return m.Name.ValueString(), !m.Name.IsUnknown() }

func (m *groupModel) spec() any { return struct{}{} }

func (m *groupModel) load(o *api.Object) error {
	m.Name = types.StringValue(o.Name)
	return nil
}

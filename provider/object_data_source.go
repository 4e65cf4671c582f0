package provider

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// objectDataSource reads one stored object of a kind, whoever owns it (a
// CUE directory's datacenters, another workspace's shards), so that a
// configuration can refer to what it does not manage. Its attributes are
// the resource's, computed, but for those that name the object.
type objectDataSource[M any, P interface {
	*M
	model
}] struct {
	kind     api.Kind
	typeName string
	keys     []string // the attributes that name the object
	schema   dschema.Schema
	client   *client
}

// newObjectDataSource builds the data source of a resource: keys are the
// attributes that name the object (name; source and table for a table).
func newObjectDataSource[M any, P interface {
	*M
	model
}](r *objectResource[M, P], keys ...string) *objectDataSource[M, P] {
	required := map[string]bool{}
	for _, k := range keys {
		required[k] = true
	}
	return &objectDataSource[M, P]{
		kind:     r.kind,
		typeName: r.typeName,
		keys:     keys,
		schema: dschema.Schema{
			MarkdownDescription: fmt.Sprintf("Reads a stored %s, whoever owns it (a CUE directory, another workspace), by `%s`, "+
				"so that a configuration can refer to objects it does not manage; the attributes are those of the `ferry_%s` resource.",
				r.kind, strings.Join(keys, "` and `"), r.typeName),
			Attributes: dataAttributes(r.schema.Attributes, required),
		},
	}
}

// dataAttributes turns resource attributes into a data source's: the
// required ones as given, the others computed.
func dataAttributes(attrs map[string]rschema.Attribute, required map[string]bool) map[string]dschema.Attribute {
	out := make(map[string]dschema.Attribute, len(attrs))
	for name, a := range attrs {
		req := required[name]
		desc := cmp.Or(a.GetMarkdownDescription(), a.GetDescription())
		if name == "timeouts" {
			// The resource's write timeouts, in the shape the models share.
			a := a.(rschema.SingleNestedAttribute)
			out[name] = dschema.SingleNestedAttribute{Computed: true, CustomType: a.CustomType, Attributes: dataAttributes(a.Attributes, nil),
				MarkdownDescription: "The resource's write timeouts: always null here."}
			continue
		}
		switch a := a.(type) {
		case rschema.StringAttribute:
			out[name] = dschema.StringAttribute{Required: req, Computed: !req, Sensitive: a.Sensitive, MarkdownDescription: desc}
		case rschema.Int64Attribute:
			out[name] = dschema.Int64Attribute{Computed: true, Sensitive: a.Sensitive, MarkdownDescription: desc}
		case rschema.BoolAttribute:
			out[name] = dschema.BoolAttribute{Computed: true, MarkdownDescription: desc}
		case rschema.ListAttribute:
			out[name] = dschema.ListAttribute{Computed: true, ElementType: a.ElementType, MarkdownDescription: desc}
		case rschema.MapAttribute:
			out[name] = dschema.MapAttribute{Computed: true, ElementType: a.ElementType, MarkdownDescription: desc}
		case rschema.SingleNestedAttribute:
			out[name] = dschema.SingleNestedAttribute{Computed: true, Sensitive: a.Sensitive, MarkdownDescription: desc,
				Attributes: dataAttributes(a.Attributes, nil)}
		default:
			panic(fmt.Sprintf("provider: no data source form for attribute %s (%T)", name, a))
		}
	}
	return out
}

func (d *objectDataSource[M, P]) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_" + d.typeName
}

func (d *objectDataSource[M, P]) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = d.schema
}

func (d *objectDataSource[M, P]) Configure(_ context.Context, req datasource.ConfigureRequest, _ *datasource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*client); ok {
		d.client = c
	}
}

func (d *objectDataSource[M, P]) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	// Only the keys are read from the configuration: the other attributes
	// are null there, which a model's nested structs cannot hold.
	parts := make([]string, len(d.keys))
	for i, k := range d.keys {
		var v types.String
		if resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root(k), &v)...); resp.Diagnostics.HasError() {
			return
		}
		parts[i] = v.ValueString()
	}
	name := strings.Join(parts, "/") // SOURCE/DB.TABLE for a table
	o, err := d.client.Get(ctx, d.kind, name)
	if err != nil {
		resp.Diagnostics.Append(refused(d.kind, name, err))
		return
	}
	var out M
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("timeouts"), P(&out).limits())...) // null, typed
	if err := P(&out).load(o); err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Unreadable %s", api.Describe(d.kind, name)), err.Error())
		return
	}
	id, version := P(&out).meta()
	*id, *version = types.StringValue(name), types.Int64Value(o.Version)
	resp.Diagnostics.Append(setJobs(ctx, d.client, d.kind, name, P(&out), false)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}

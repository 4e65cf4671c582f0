// Package provider is ferry's Terraform provider (terraform-plugin-framework):
// the datacenters, shards, mirrors, CDC sources and CDC tables of an
// executor group as resources, and its compiled plan as a data source. It
// talks to the group's control API (package control) as owner "terraform",
// so CUE applies and Terraform never overwrite each other's objects, and it
// checks every planned change with the API's compiler (a dry run) so that
// `terraform plan` fails with the compiler's own messages.
package provider

//go:generate env FERRY_UPDATE_GOLDEN=1 go test -run TestDocs .

import (
	"context"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// DefaultEndpoint is the control API address used when neither the
// provider's endpoint nor FERRY_ENDPOINT is set: `ferry run --http`'s usual
// loopback address.
const DefaultEndpoint = "http://127.0.0.1:8080"

// New returns a constructor of the provider, as providerserver wants it.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &ferryProvider{version: version} }
}

type ferryProvider struct {
	version string
}

type providerModel struct {
	Endpoint types.String `tfsdk:"endpoint"`
	Token    types.String `tfsdk:"token"`
}

func (p *ferryProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "ferry"
	resp.Version = p.version
}

func (p *ferryProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Manages the definitions of a [ferry](https://github.com/ferry-pipelines/ferry) executor group " +
			"(datacenters, shards, mirror topics, CDC sources and tables) through its control API, the `--http` address of any " +
			"`ferry run --home` executor. Every change is checked by ferry's compiler, during `terraform plan` already. " +
			"Objects written by `ferry apply` (owned by a CUE directory) cannot be changed here, and the other way round.",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				Optional:   true,
				Validators: []validator.String{matching(endpointPattern, "host:port or an http(s):// URL")},
				MarkdownDescription: "The control API: an executor's `--http` address, `host:port` or an `http(s)://` URL. " +
					"Default: the `FERRY_ENDPOINT` environment variable, else `" + DefaultEndpoint + "`.",
			},
			"token": schema.StringAttribute{
				Optional:  true,
				Sensitive: true,
				MarkdownDescription: "The bearer token of the executors' `--token-file`. " +
					"Default: the `FERRY_TOKEN` environment variable, else none (executors without a token listen on loopback only).",
			},
		},
	}
}

func (p *ferryProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	endpoint := firstSet(m.Endpoint.ValueString(), os.Getenv("FERRY_ENDPOINT"), DefaultEndpoint)
	token := firstSet(m.Token.ValueString(), os.Getenv("FERRY_TOKEN"))
	c, err := api.NewClient(endpoint, api.WithToken(token), api.WithOwner(api.OwnerTerraform))
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Invalid ferry endpoint", err.Error())
		return
	}
	cl := newClient(c)
	resp.ResourceData = cl
	resp.DataSourceData = cl
}

func (p *ferryProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		newDatacenterResource,
		newShardResource,
		newMirrorResource,
		newCDCSourceResource,
		newCDCTableResource,
	}
}

func (p *ferryProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		newPlanDataSource,
		newDatacenterDataSource,
		newShardDataSource,
		newMirrorDataSource,
		newCDCSourceDataSource,
		newCDCTableDataSource,
	}
}

func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// Package provider is ferry's Terraform provider (terraform-plugin-framework):
// the datacenters, shards, mirrors, CDC sources and CDC tables of an
// executor group as resources, and its compiled plan as a data source. It
// talks to the group's control API (package control) as owner
// "terraform:WORKSPACE", so CUE applies, Terraform workspaces and other
// writers never overwrite each other's objects, and it
// checks every planned change with the API's compiler (a dry run) so that
// `terraform plan` fails with the compiler's own messages.
package provider

//go:generate env FERRY_UPDATE_GOLDEN=1 go test -run TestDocs .

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

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
	CAFile   types.String `tfsdk:"ca_file"`
	Owner    types.String `tfsdk:"owner"`
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
			"ca_file": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "A PEM file of the CA that signs the executors' HTTPS certificate (`ferry run --tls-cert`), " +
					"for a private CA. Default: the `FERRY_CA_FILE` environment variable, else the system's roots.",
			},
			"owner": schema.StringAttribute{
				Optional:   true,
				Validators: []validator.String{matching(ownerPattern, "printable characters without spaces")},
				MarkdownDescription: "The owner this configuration writes as: only its owner changes an object, and the API binds each " +
					"token to the owners it may write as. Give each workspace its own, for example `\"terraform:${terraform.workspace}\"`. " +
					"Default: the `FERRY_OWNER` environment variable, else `terraform:` and the `TF_WORKSPACE` environment variable, else `" +
					api.OwnerTerraform + "`.",
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
	owner := firstSet(m.Owner.ValueString(), os.Getenv("FERRY_OWNER"), api.TerraformOwner(firstSet(os.Getenv("TF_WORKSPACE"), "default")))
	opts := []api.ClientOption{api.WithToken(token), api.WithOwner(owner)}
	if caFile := firstSet(m.CAFile.ValueString(), os.Getenv("FERRY_CA_FILE")); caFile != "" {
		hc, err := httpClientTrusting(caFile)
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("ca_file"), "Invalid ferry CA file", err.Error())
			return
		}
		opts = append(opts, api.WithHTTPClient(hc))
	}
	c, err := api.NewClient(endpoint, opts...)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Invalid ferry endpoint", err.Error())
		return
	}
	cl := newClient(c, owner)
	resp.ResourceData = cl
	resp.DataSourceData = cl
}

func (p *ferryProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		newDatacenterResource,
		newShardResource,
		newTierResource,
		newMetricsResource,
		newGroupResource,
		newAlertsResource,
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

// httpClientTrusting is an HTTP client that trusts the CAs of a PEM file
// (and no other), with the API client's usual timeout.
func httpClientTrusting(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

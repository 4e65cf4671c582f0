package provider

import (
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	fschema "github.com/ferry-pipelines/ferry/schema"
)

// Attributes and models several resources share, and the conversions
// between Terraform values and the schema's Go values. An optional
// attribute left out is null in Terraform and the zero value (omitted) in
// the schema's JSON, so reading an object back gives what was configured.

// nameAttribute is the attribute that names an object. A new name is a new
// object: changing it replaces the resource.
func nameAttribute(description string, v validator.String) schema.StringAttribute {
	return schema.StringAttribute{
		Required:            true,
		MarkdownDescription: description + " Changing it replaces the object.",
		Validators:          []validator.String{v},
		PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
	}
}

// shardAttribute pins an object's jobs to a shard.
func shardAttribute(what string) schema.StringAttribute {
	return schema.StringAttribute{
		Optional: true,
		MarkdownDescription: "Pin " + what + " to this shard, which must accept its tier. Default: placed by ferry. " +
			"Changing it moves the jobs in place.",
		Validators: []validator.String{matching(namePattern, "a shard name ([a-z][a-z0-9_]*)")},
	}
}

func optString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func optInt(n int) types.Int64 {
	if n == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(int64(n))
}

func jsonOf(v any) (json.RawMessage, error) { return json.Marshal(v) }

// tlsModel is a TLS block: tls = { ca = "...", ... }.
type tlsModel struct {
	CA                 types.String `tfsdk:"ca"`
	Cert               types.String `tfsdk:"cert"`
	Key                types.String `tfsdk:"key"`
	ServerName         types.String `tfsdk:"server_name"`
	InsecureSkipVerify types.Bool   `tfsdk:"insecure_skip_verify"`
}

func tlsAttribute(server string) schema.SingleNestedAttribute {
	path := matching(regexpNotEmpty, "a file path")
	return schema.SingleNestedAttribute{
		Optional: true,
		MarkdownDescription: "Connect to " + server + " with TLS. The files are read by the executors when a job starts, " +
			"so they must exist on the executors' machines. Changing it restarts the jobs in place.",
		Attributes: map[string]schema.Attribute{
			"ca":          schema.StringAttribute{Optional: true, MarkdownDescription: "PEM file of the certificate authority to trust. Default: the system's.", Validators: []validator.String{path}},
			"cert":        schema.StringAttribute{Optional: true, MarkdownDescription: "PEM file of the client certificate, when the server asks for one.", Validators: []validator.String{path}},
			"key":         schema.StringAttribute{Optional: true, MarkdownDescription: "PEM file of the client certificate's key.", Validators: []validator.String{path}},
			"server_name": schema.StringAttribute{Optional: true, MarkdownDescription: "The name to verify the server's certificate against. Default: the host of the address.", Validators: []validator.String{matching(regexpNotEmpty, "a host name")}},
			"insecure_skip_verify": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Do not verify the server's certificate (testing only). Default: `false`.",
			},
		},
	}
}

func (t *tlsModel) spec() *fschema.TLS {
	if t == nil {
		return nil
	}
	return &fschema.TLS{
		CA: t.CA.ValueString(), Cert: t.Cert.ValueString(), Key: t.Key.ValueString(),
		ServerName: t.ServerName.ValueString(), InsecureSkipVerify: t.InsecureSkipVerify.ValueBool(),
	}
}

func tlsOf(t *fschema.TLS) *tlsModel {
	if t == nil {
		return nil
	}
	return &tlsModel{
		CA: optString(t.CA), Cert: optString(t.Cert), Key: optString(t.Key),
		ServerName: optString(t.ServerName), InsecureSkipVerify: types.BoolValue(t.InsecureSkipVerify),
	}
}

// secretModel references a secret: secret = { env = "NAME" } or
// { file = "/path" }.
type secretModel struct {
	Env  types.String `tfsdk:"env"`
	File types.String `tfsdk:"file"`
}

func secretAttribute(what string) schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Required:  true,
		Sensitive: true,
		MarkdownDescription: what + ", as a reference the executors resolve when a job starts: `{ env = \"NAME\" }` " +
			"(an environment variable of the executors) or `{ file = \"/path\" }` (a file on their machines). " +
			"The secret itself never reaches Terraform, the control API or the plan.",
		Attributes: map[string]schema.Attribute{
			"env":  schema.StringAttribute{Optional: true, MarkdownDescription: "The environment variable holding the secret.", Validators: []validator.String{matching(envPattern, "an environment variable name")}},
			"file": schema.StringAttribute{Optional: true, MarkdownDescription: "The file holding the secret.", Validators: []validator.String{matching(regexpNotEmpty, "a file path")}},
		},
		Validators: []validator.Object{exactlyOne{"env", "file"}},
	}
}

func (s secretModel) spec() fschema.Secret {
	return fschema.Secret{Env: s.Env.ValueString(), File: s.File.ValueString()}
}

func secretOf(s fschema.Secret) secretModel {
	return secretModel{Env: optString(s.Env), File: optString(s.File)}
}

package provider

import (
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/datasource"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

type datacenterModel struct {
	common
	Name    types.String `tfsdk:"name"`
	Brokers []string     `tfsdk:"brokers"`
	TLS     *tlsModel    `tfsdk:"tls"`
	SASL    *saslModel   `tfsdk:"sasl"`
}

type saslModel struct {
	Mechanism types.String `tfsdk:"mechanism"`
	User      types.String `tfsdk:"user"`
	Password  secretModel  `tfsdk:"password"`
}

func newDatacenterResource() resource.Resource { return datacenterResource() }

// newDatacenterDataSource reads a stored object by its name.
func newDatacenterDataSource() datasource.DataSource {
	return newObjectDataSource(datacenterResource(), "name")
}

func datacenterResource() *objectResource[datacenterModel, *datacenterModel] {
	return newObjectResource[datacenterModel](api.Datacenter, "datacenter",
		"A Kafka cluster ferry reads from and writes to (CUE: `datacenters: NAME: kafka: {...}`). "+
			"Every attribute but the name changes in place: the jobs using the datacenter restart with the new connection.",
		map[string]schema.Attribute{
			"name": nameAttribute("The datacenter's name (`[a-z][a-z0-9_]*`), as mirrors, CDC sources and job IDs refer to it.",
				matching(namePattern, "a datacenter name ([a-z][a-z0-9_]*)")),
			"brokers": schema.ListAttribute{
				Required:            true,
				ElementType:         types.StringType,
				MarkdownDescription: "Bootstrap brokers, `host:port`, at least one.",
				Validators:          []validator.List{atLeast(1), matching(addressPattern, "host:port")},
			},
			"tls": tlsAttribute("the brokers"),
			"sasl": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Authenticate to the brokers with SASL.",
				Attributes: map[string]schema.Attribute{
					"mechanism": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "The SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.",
						Validators:          []validator.String{oneOf{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}},
					},
					"user": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "The SASL user.",
						Validators:          []validator.String{matching(regexpNotEmpty, "a user name")},
					},
					"password": secretAttribute("The SASL password"),
				},
			},
		})
}

func (m *datacenterModel) objectName() (string, bool) {
	return m.Name.ValueString(), !m.Name.IsUnknown()
}

func (m *datacenterModel) spec() any {
	dc := fschema.Datacenter{Kafka: fschema.Kafka{Brokers: m.Brokers, TLS: m.TLS.spec()}}
	if s := m.SASL; s != nil {
		dc.Kafka.SASL = &fschema.SASL{Mechanism: s.Mechanism.ValueString(), User: s.User.ValueString(), Password: s.Password.spec()}
	}
	return dc
}

func (m *datacenterModel) load(o *api.Object) error {
	var dc fschema.Datacenter
	if err := json.Unmarshal(o.Spec, &dc); err != nil {
		return err
	}
	m.Name, m.Brokers, m.TLS, m.SASL = types.StringValue(o.Name), dc.Kafka.Brokers, tlsOf(dc.Kafka.TLS), nil
	if s := dc.Kafka.SASL; s != nil {
		m.SASL = &saslModel{Mechanism: types.StringValue(s.Mechanism), User: types.StringValue(s.User), Password: secretOf(s.Password)}
	}
	return nil
}

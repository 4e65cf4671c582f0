package provider

import (
	"encoding/json"

	"github.com/hashicorp/terraform-plugin-framework/datasource"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

type cdcSourceModel struct {
	common
	Name        types.String   `tfsdk:"name"`
	MySQL       mysqlModel     `tfsdk:"mysql"`
	Datacenter  types.String   `tfsdk:"datacenter"`
	TopicPrefix types.String   `tfsdk:"topic_prefix"`
	Shard       types.String   `tfsdk:"shard"`
	Snapshot    *snapshotModel `tfsdk:"snapshot"`
	Jobs        types.Map      `tfsdk:"jobs"`
}

type mysqlModel struct {
	Address   types.String    `tfsdk:"address"`
	User      types.String    `tfsdk:"user"`
	Password  secretModel     `tfsdk:"password"`
	ServerID  types.Int64     `tfsdk:"server_id"`
	Flavor    types.String    `tfsdk:"flavor"`
	TLS       *tlsModel       `tfsdk:"tls"`
	Heartbeat *heartbeatModel `tfsdk:"heartbeat"`
}

type heartbeatModel struct {
	Interval types.String `tfsdk:"interval"`
	Database types.String `tfsdk:"database"`
}

type snapshotModel struct {
	ChunkSize   types.Int64 `tfsdk:"chunk_size"`
	Parallelism types.Int64 `tfsdk:"parallelism"`
}

func newCDCSourceResource() resource.Resource { return cdcsourceResource() }

// newCDCSourceDataSource reads a stored object by its name.
func newCDCSourceDataSource() datasource.DataSource {
	return newObjectDataSource(cdcsourceResource(), "name")
}

func cdcsourceResource() *objectResource[cdcSourceModel, *cdcSourceModel] {
	return newObjectResource[cdcSourceModel](api.CDCSource, "cdc_source",
		"A MySQL or MariaDB server captured from its binlog into Kafka as Debezium-compatible change events "+
			"(CUE: `cdc: SOURCE: {...}` without its `tables`, which are `ferry_cdc_table` resources). It runs as one job, "+
			"`cdc:SOURCE`, and joins the plan once it has a table. Everything but the name and the datacenter changes in "+
			"place (the job restarts from its stored binlog position).",
		map[string]schema.Attribute{
			"name": nameAttribute("The source's name (`[a-zA-Z0-9_-]+`).", matching(sourcePattern, "a CDC source name ([a-zA-Z0-9_-]+)")),
			"mysql": schema.SingleNestedAttribute{
				Required:            true,
				MarkdownDescription: "The captured server.",
				Attributes: map[string]schema.Attribute{
					"address": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "`host:port` of the server.",
						Validators:          []validator.String{matching(addressPattern, "host:port")},
					},
					"user": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "A user with REPLICATION SLAVE, REPLICATION CLIENT and SELECT.",
						Validators:          []validator.String{matching(regexpNotEmpty, "a user name")},
					},
					"password": secretAttribute("The user's password"),
					"server_id": schema.Int64Attribute{
						Required:            true,
						MarkdownDescription: "The replica `server_id` ferry connects with (1 to 4294967295); unique across sources and the server's replicas.",
						Validators:          []validator.Int64{bounds("#CDCSource.mysql.serverID")},
					},
					"flavor": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "`mysql` or `mariadb`. Default: detected.",
						Validators:          []validator.String{oneOf{"mysql", "mariadb"}},
					},
					"tls": tlsAttribute("the server"),
					"heartbeat": schema.SingleNestedAttribute{
						Optional: true,
						MarkdownDescription: "The heartbeat table ferry writes `NOW(6)` into, so latency is known to the millisecond " +
							"on servers whose binlog carries whole seconds only.",
						Attributes: map[string]schema.Attribute{
							"interval": schema.StringAttribute{
								Optional:            true,
								MarkdownDescription: "How often to write it, a Go duration such as `100ms`.",
								Validators:          []validator.String{matching(durationPattern, "a duration such as 100ms")},
							},
							"database": schema.StringAttribute{
								Optional:            true,
								MarkdownDescription: "The database that holds the heartbeat table.",
								Validators:          []validator.String{matching(regexpNotEmpty, "a database name")},
							},
						},
					},
				},
			},
			"datacenter": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The datacenter whose Kafka cluster receives the change events. The binlog position is " +
					"stored there with the events, so a new datacenter starts the capture afresh: changing it replaces the source.",
				Validators:    []validator.String{matching(namePattern, "a datacenter name ([a-z][a-z0-9_]*)")},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"topic_prefix": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "Topics are `PREFIX.DB.TABLE`; also the `source.name` of the events. Changes in place.",
				Validators:          []validator.String{matching(topicPattern, "a Kafka topic name")},
			},
			"shard": shardAttribute("the source's job"),
			"snapshot": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Tunes the initial load of the tables (chunked by primary key, chunks in parallel).",
				Attributes: map[string]schema.Attribute{
					"chunk_size": schema.Int64Attribute{
						Optional:            true,
						MarkdownDescription: "Rows per chunk. Default: 8192.",
						Validators:          []validator.Int64{bounds("#CDCSource.snapshot.chunkSize")},
					},
					"parallelism": schema.Int64Attribute{
						Optional:            true,
						MarkdownDescription: "Chunks loaded at once (1 to 64). Default: 4.",
						Validators:          []validator.Int64{bounds("#CDCSource.snapshot.parallelism")},
					},
				},
			},
		})
}

func (m *cdcSourceModel) objectName() (string, bool) {
	return m.Name.ValueString(), !m.Name.IsUnknown()
}

func (m *cdcSourceModel) jobs() *types.Map { return &m.Jobs }

func (m *cdcSourceModel) spec() any {
	my := m.MySQL
	s := fschema.CDCSource{
		MySQL: fschema.MySQL{
			Address: my.Address.ValueString(), User: my.User.ValueString(), Password: my.Password.spec(),
			ServerID: uint32(my.ServerID.ValueInt64()), Flavor: my.Flavor.ValueString(), TLS: my.TLS.spec(),
		},
		Datacenter:  m.Datacenter.ValueString(),
		TopicPrefix: m.TopicPrefix.ValueString(),
		Shard:       m.Shard.ValueString(),
	}
	if h := my.Heartbeat; h != nil {
		s.MySQL.Heartbeat = &fschema.Heartbeat{Interval: h.Interval.ValueString(), Database: h.Database.ValueString()}
	}
	if sn := m.Snapshot; sn != nil {
		s.Snapshot = &fschema.SnapshotSettings{ChunkSize: int(sn.ChunkSize.ValueInt64()), Parallelism: int(sn.Parallelism.ValueInt64())}
	}
	return s
}

func (m *cdcSourceModel) load(o *api.Object) error {
	var s fschema.CDCSource
	if err := json.Unmarshal(o.Spec, &s); err != nil {
		return err
	}
	my := s.MySQL
	m.Name = types.StringValue(o.Name)
	m.MySQL = mysqlModel{
		Address: types.StringValue(my.Address), User: types.StringValue(my.User), Password: secretOf(my.Password),
		ServerID: types.Int64Value(int64(my.ServerID)), Flavor: optString(my.Flavor), TLS: tlsOf(my.TLS),
	}
	if h := my.Heartbeat; h != nil {
		m.MySQL.Heartbeat = &heartbeatModel{Interval: optString(h.Interval), Database: optString(h.Database)}
	}
	m.Datacenter, m.TopicPrefix, m.Shard = types.StringValue(s.Datacenter), types.StringValue(s.TopicPrefix), optString(s.Shard)
	m.Snapshot = nil
	if sn := s.Snapshot; sn != nil {
		m.Snapshot = &snapshotModel{ChunkSize: optInt(sn.ChunkSize), Parallelism: optInt(sn.Parallelism)}
	}
	return nil
}

package provider

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

type cdcTableModel struct {
	common
	Source   types.String `tfsdk:"source"`
	Table    types.String `tfsdk:"table"`
	Tier     types.Int64  `tfsdk:"tier"`
	Snapshot types.String `tfsdk:"snapshot"`
	Rate     types.Int64  `tfsdk:"rate"`
	Key      []string     `tfsdk:"key"`
	Sink     *sinkModel   `tfsdk:"sink"`
	Jobs     types.Map    `tfsdk:"jobs"`
}

// sinkModel is a table's sink = { postgres = { dsn = ... }, ... }.
type sinkModel struct {
	Postgres struct {
		DSN secretModel `tfsdk:"dsn"`
	} `tfsdk:"postgres"`
	Table   types.String      `tfsdk:"table"`
	Columns map[string]string `tfsdk:"columns"`
	Shard   types.String      `tfsdk:"shard"`
}

func newCDCTableResource() resource.Resource { return cdctableResource() }

// newCDCTableDataSource reads a stored object by its source, table.
func newCDCTableDataSource() datasource.DataSource {
	return newObjectDataSource(cdctableResource(), "source", "table")
}

func cdctableResource() *objectResource[cdcTableModel, *cdcTableModel] {
	return newObjectResource[cdcTableModel](api.CDCTable, "cdc_table",
		"A table captured by a CDC source into its own topic, `PREFIX.DB.TABLE` (CUE: `cdc: SOURCE: tables: \"DB.TABLE\": {...}`). "+
			"A table added to a running source is captured on the same binlog connection, without restarting the others, "+
			"with its own snapshot mode. Tier, snapshot and rate change in place. Its ID, for import, is `SOURCE/DB.TABLE`.",
		map[string]schema.Attribute{
			"source": nameAttribute("The name of the `ferry_cdc_source` that captures the table.",
				matching(sourcePattern, "a CDC source name ([a-zA-Z0-9_-]+)")),
			"table": nameAttribute("The table, `DB.TABLE`.", matching(tablePattern, "DB.TABLE")),
			"tier": schema.Int64Attribute{
				Required: true,
				MarkdownDescription: "The table's latency tier, 1 (300 ms) to 4 (1 h), measured per table; the source's job " +
					"runs at the tier of its strictest table.",
				Validators: []validator.Int64{bounds("#Tier")},
			},
			"snapshot": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "How the existing rows are loaded: `initial` (existing rows, then changes), `no_data` " +
					"(changes from now on), `when_needed` or `never`. Default: `initial`. A new mode applies to the next snapshot.",
				Validators: []validator.String{oneOf{fschema.SnapshotInitial, fschema.SnapshotNoData, fschema.SnapshotWhenNeeded, fschema.SnapshotNever}},
			},
			"rate": schema.Int64Attribute{
				Optional:            true,
				MarkdownDescription: "Expected row events per second, used to balance shards. Default: none.",
				Validators:          []validator.Int64{bounds("#CDCTable.rate")},
			},
			"key": schema.ListAttribute{
				Optional:    true,
				ElementType: types.StringType,
				MarkdownDescription: "The columns that identify a row, for a table without a primary key (or to key its " +
					"events otherwise, as Debezium's `message.key.columns`): the events' key, the initial load's chunks and " +
					"the sink's upserts. Default: the primary key, else the first unique index of NOT NULL columns.",
				Validators: []validator.List{atLeast(1)},
			},
			"sink": schema.SingleNestedAttribute{
				Optional: true,
				MarkdownDescription: "Apply the table's events to a PostgreSQL table, kept exactly in step with the topic " +
					"(`ferry verify` compares the two). Changing it restarts the sink in place.",
				Attributes: map[string]schema.Attribute{
					"postgres": schema.SingleNestedAttribute{
						Required:            true,
						MarkdownDescription: "The target database.",
						Attributes:          map[string]schema.Attribute{"dsn": secretAttribute("The PostgreSQL connection string (`postgres://...`)")},
					},
					"table": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "The target table, `schema.table`. Default: `public.` and the source table's name.",
						Validators:          []validator.String{matching(tablePattern, "schema.table")},
					},
					"columns": schema.MapAttribute{
						Optional:            true,
						ElementType:         types.StringType,
						MarkdownDescription: "Target names of source columns, `{ source = \"target\" }`; the others keep their names.",
					},
					"shard": shardAttribute("the sink's job"),
				},
			},
		})
}

func (m *cdcTableModel) objectName() (string, bool) {
	return api.TableName(m.Source.ValueString(), m.Table.ValueString()), !m.Source.IsUnknown() && !m.Table.IsUnknown()
}

func (m *cdcTableModel) jobs() *types.Map { return &m.Jobs }

func (m *cdcTableModel) spec() any {
	t := fschema.CDCTable{Tier: int(m.Tier.ValueInt64()), Snapshot: m.Snapshot.ValueString(), Rate: int(m.Rate.ValueInt64()), Key: m.Key}
	if k := m.Sink; k != nil {
		t.Sink = &fschema.Sink{
			Postgres: fschema.PostgresSink{DSN: k.Postgres.DSN.spec()},
			Table:    k.Table.ValueString(), Columns: k.Columns, Shard: k.Shard.ValueString(),
		}
	}
	return t
}

func (m *cdcTableModel) load(o *api.Object) error {
	source, table, ok := api.SplitTableName(o.Name)
	if !ok {
		return fmt.Errorf("a CDC table's ID is SOURCE/DB.TABLE, not %q", o.Name)
	}
	var t fschema.CDCTable
	if err := json.Unmarshal(o.Spec, &t); err != nil {
		return err
	}
	m.Source, m.Table = types.StringValue(source), types.StringValue(table)
	m.Tier, m.Snapshot, m.Rate, m.Key, m.Sink = types.Int64Value(int64(t.Tier)), optString(t.Snapshot), optInt(t.Rate), t.Key, nil
	if k := t.Sink; k != nil {
		m.Sink = &sinkModel{Table: optString(k.Table), Shard: optString(k.Shard)}
		m.Sink.Postgres.DSN = secretOf(k.Postgres.DSN)
		if len(k.Columns) > 0 {
			m.Sink.Columns = k.Columns
		}
	}
	return nil
}

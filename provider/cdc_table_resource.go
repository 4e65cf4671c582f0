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
	ID       types.String `tfsdk:"id"`
	Version  types.Int64  `tfsdk:"version"`
	Source   types.String `tfsdk:"source"`
	Table    types.String `tfsdk:"table"`
	Tier     types.Int64  `tfsdk:"tier"`
	Snapshot types.String `tfsdk:"snapshot"`
	Rate     types.Int64  `tfsdk:"rate"`
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
		})
}

func (m *cdcTableModel) objectName() (string, bool) {
	return api.TableName(m.Source.ValueString(), m.Table.ValueString()), !m.Source.IsUnknown() && !m.Table.IsUnknown()
}

func (m *cdcTableModel) meta() (*types.String, *types.Int64) { return &m.ID, &m.Version }

func (m *cdcTableModel) spec() any {
	return fschema.CDCTable{Tier: int(m.Tier.ValueInt64()), Snapshot: m.Snapshot.ValueString(), Rate: int(m.Rate.ValueInt64())}
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
	m.Tier, m.Snapshot, m.Rate = types.Int64Value(int64(t.Tier)), optString(t.Snapshot), optInt(t.Rate)
	return nil
}

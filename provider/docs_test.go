package provider

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/ferry-pipelines/ferry/internal/golden"
)

// The provider's documentation (provider/docs, in the Terraform registry's
// layout) is generated from the schemas' descriptions and the examples of
// examples/terraform/main.tf, the way tfplugindocs lays it out. TestDocs
// fails when the checked-in files are not what the code generates;
// FERRY_UPDATE_GOLDEN=1 rewrites them, as it rewrites every golden.
var update = golden.Update()

// importIDs are the import examples: a resource of examples/terraform and
// its ID.
var importIDs = map[string][2]string{
	"ferry_datacenter": {"dc1", "dc1"},
	"ferry_shard":      {"realtime", "realtime"},
	"ferry_mirror":     {"orders_events", "orders.events"},
	"ferry_cdc_source": {"trading_db", "trading-db"},
	"ferry_cdc_table":  {"trading_orders", "trading-db/trading.orders"},
	"ferry_tier":       {"fast", "1"},
	"ferry_metrics":    {"group", "metrics"},
	"ferry_group":      {"billing", "billing-*"},
	"ferry_alerts":     {"group", "alerts"},
}

// ownExamples are the examples of resources examples/terraform does not
// use: the design's pipelines override no budget and keep the metrics
// defaults.
var ownExamples = map[string]string{
	"ferry_tier": `resource "ferry_tier" "fast" {
  tier   = 1
  budget = "200ms"
}
`,
	"ferry_metrics": `resource "ferry_metrics" "group" {
  interval = "30s"
}
`,
	"ferry_group": `resource "ferry_group" "billing" {
  name = "billing-*"
}
`,
	"ferry_alerts": `resource "ferry_alerts" "group" {
  labels = { team = "platform" }
  tiers = {
    "1" = { severity = "page", at_risk_for = "2m" }
  }
}
`,
}

func TestDocs(t *testing.T) {
	docs, err := generateDocs(readExample(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := "docs"
	if update {
		os.RemoveAll(dir)
	}
	for name, content := range docs {
		file := filepath.Join(dir, name)
		if update {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil || string(got) != content {
			t.Errorf("%s is not current: run FERRY_UPDATE_GOLDEN=1 go test ./provider -run TestDocs", file)
		}
	}
	var checkedIn []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			checkedIn = append(checkedIn, filepath.ToSlash(rel))
		}
		return nil
	})
	for _, name := range checkedIn {
		if _, ok := docs[name]; !ok {
			t.Errorf("docs/%s documents nothing the provider has: run FERRY_UPDATE_GOLDEN=1 go test ./provider -run TestDocs", name)
		}
	}
}

// generateDocs renders every page by its path under docs/.
func generateDocs(example string) (map[string]string, error) {
	srv, err := providerserver.NewProtocol6WithError(New("docs")())()
	if err != nil {
		return nil, err
	}
	resp, err := srv.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		return nil, err
	}
	for _, d := range resp.Diagnostics {
		return nil, fmt.Errorf("%s: %s", d.Summary, d.Detail)
	}
	docs := map[string]string{}
	docs["index.md"] = page("ferry Provider", "ferry Provider", resp.Provider,
		block(example, "terraform {")+"\n"+block(example, `provider "ferry"`), "")
	for name, s := range resp.ResourceSchemas {
		imp, ok := importIDs[name]
		if !ok {
			return nil, fmt.Errorf("no import example for %s: add it to importIDs", name)
		}
		ex, own := ownExamples[name]
		if !own {
			ex = block(example, fmt.Sprintf("resource %q %q", name, imp[0]))
		}
		docs["resources/"+strings.TrimPrefix(name, "ferry_")+".md"] = page(name+" Resource - terraform-provider-ferry", name+" (Resource)", s,
			ex,
			fmt.Sprintf("terraform import %s.%s %s", name, imp[0], imp[1]))
	}
	for name, s := range resp.DataSourceSchemas {
		docs["data-sources/"+strings.TrimPrefix(name, "ferry_")+".md"] = page(name+" Data Source - terraform-provider-ferry", name+" (Data Source)", s,
			block(example, fmt.Sprintf("data %q", name)), "")
	}
	return docs, nil
}

// block returns the block of the example that starts with head, up to
// the brace that closes it.
func block(example, head string) string {
	i := strings.Index(example, head)
	if i < 0 {
		return ""
	}
	depth := 0
	for j, c := range example[i:] {
		switch c {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return example[i:i+j+1] + "\n"
			}
		}
	}
	return ""
}

func page(title, heading string, s *tfprotov6.Schema, example, importCmd string) string {
	var b bytes.Buffer
	desc := s.Block.Description
	fmt.Fprintf(&b, "---\npage_title: %q\ndescription: |-\n  %s\n---\n\n# %s\n\n%s\n", title, strings.ReplaceAll(desc, "\n", "\n  "), heading, desc)
	if example != "" {
		fmt.Fprintf(&b, "\n## Example Usage\n\n```terraform\n%s```\n", example)
	}
	b.WriteString("\n<!-- generated from the provider's schema by provider/docs_test.go; do not edit -->\n## Schema\n")
	attributes(&b, s.Block.Attributes, "", "###")
	if importCmd != "" {
		fmt.Fprintf(&b, "\n## Import\n\nImport takes the object's name. Objects another owner holds (a `ferry apply` directory, another workspace) are refused; one its owner released (`POST /v1/transfer` to nobody) is adopted as it is.\n\n```shell\n%s\n```\n", importCmd)
	}
	return b.String()
}

// attributes lists attributes by kind (required, optional, read-only),
// then the nested schemas they refer to.
func attributes(b *bytes.Buffer, attrs []*tfprotov6.SchemaAttribute, parent, heading string) {
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Name < attrs[j].Name })
	groups := []struct {
		title string
		in    func(*tfprotov6.SchemaAttribute) bool
	}{
		{"Required", func(a *tfprotov6.SchemaAttribute) bool { return a.Required }},
		{"Optional", func(a *tfprotov6.SchemaAttribute) bool { return a.Optional }},
		{"Read-Only", func(a *tfprotov6.SchemaAttribute) bool { return a.Computed && !a.Optional }},
	}
	var nested []*tfprotov6.SchemaAttribute
	for _, g := range groups {
		first := true
		for _, a := range attrs {
			if !g.in(a) {
				continue
			}
			if first {
				if heading == "###" {
					fmt.Fprintf(b, "\n### %s\n\n", g.title)
				} else {
					fmt.Fprintf(b, "\n%s:\n\n", g.title)
				}
				first = false
			}
			fmt.Fprintf(b, "- `%s` (%s) %s", a.Name, typeName(a), a.Description)
			if a.NestedType != nil {
				fmt.Fprintf(b, " (see [below for nested schema](#nestedatt--%s))", anchor(parent, a.Name))
				nested = append(nested, a)
			}
			b.WriteString("\n")
		}
	}
	for _, a := range nested {
		fmt.Fprintf(b, "\n<a id=\"nestedatt--%s\"></a>\n### Nested Schema for `%s`\n", anchor(parent, a.Name), strings.TrimPrefix(parent+"."+a.Name, "."))
		attributes(b, a.NestedType.Attributes, strings.TrimPrefix(parent+"."+a.Name, "."), "")
	}
}

func anchor(parent, name string) string {
	return strings.ReplaceAll(strings.TrimPrefix(parent+"--"+name, "--"), ".", "--")
}

func typeName(a *tfprotov6.SchemaAttribute) string {
	var t string
	if a.NestedType != nil {
		t = map[tfprotov6.SchemaObjectNestingMode]string{
			tfprotov6.SchemaObjectNestingModeSingle: "Attributes",
			tfprotov6.SchemaObjectNestingModeList:   "Attributes List",
			tfprotov6.SchemaObjectNestingModeSet:    "Attributes Set",
			tfprotov6.SchemaObjectNestingModeMap:    "Attributes Map",
		}[a.NestedType.Nesting]
	} else {
		t = tfTypeName(a.Type)
	}
	if a.Sensitive {
		t += ", Sensitive"
	}
	return t
}

func tfTypeName(t tftypes.Type) string {
	switch {
	case t.Is(tftypes.String):
		return "String"
	case t.Is(tftypes.Number):
		return "Number"
	case t.Is(tftypes.Bool):
		return "Boolean"
	case t.Is(tftypes.List{}):
		return "List of " + tfTypeName(t.(tftypes.List).ElementType)
	case t.Is(tftypes.Set{}):
		return "Set of " + tfTypeName(t.(tftypes.Set).ElementType)
	case t.Is(tftypes.Map{}):
		return "Map of " + tfTypeName(t.(tftypes.Map).ElementType)
	}
	return "Object"
}

// TestEveryAttributeDocumented: every attribute of every schema, nested
// ones included, has a description.
func TestEveryAttributeDocumented(t *testing.T) {
	srv, err := providerserver.NewProtocol6WithError(New("docs")())()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var check func(where string, attrs []*tfprotov6.SchemaAttribute)
	check = func(where string, attrs []*tfprotov6.SchemaAttribute) {
		for _, a := range attrs {
			if strings.TrimSpace(a.Description) == "" {
				t.Errorf("%s.%s has no description", where, a.Name)
			}
			if a.NestedType != nil {
				check(where+"."+a.Name, a.NestedType.Attributes)
			}
		}
	}
	check("provider", resp.Provider.Block.Attributes)
	for name, s := range resp.ResourceSchemas {
		check(name, s.Block.Attributes)
	}
	for name, s := range resp.DataSourceSchemas {
		check(name, s.Block.Attributes)
	}
}

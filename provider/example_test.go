package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/ferry-pipelines/ferry/compiler"
)

// exampleDir holds the Terraform version of design.md's example.
var exampleDir = filepath.Join("..", "examples", "terraform")

func readExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleDir, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExample plans and applies examples/terraform against an empty
// executor group: the plan creates exactly the example's objects, the
// stored definitions are then those of pipelines/ (the same example in
// CUE), and the next plan is empty. A change then plans exactly an update,
// a replacement and a deletion.
func TestExample(t *testing.T) {
	s := startServer(t)
	t.Setenv("FERRY_ENDPOINT", s.url) // the example's provider block names no endpoint
	example := readExample(t)
	changed := strings.NewReplacer(
		"partitions = 3\n  tier       = 4", "partitions = 3\n  tier       = 3", // audit.log: tier 4 -> 3, in place
		"partitions = 6", "partitions = 12", // orders.events: replaced
	).Replace(example)
	fills := example[strings.Index(example, `resource "ferry_cdc_table" "trading_fills"`):strings.Index(example, "# The plan the definitions")]
	changed = strings.Replace(changed, fills, "", 1)
	changed = strings.Replace(changed, "ferry_cdc_table.trading_orders, ferry_cdc_table.trading_fills,", "ferry_cdc_table.trading_orders,", 1)
	if changed == example || !strings.Contains(changed, "tier       = 3") || !strings.Contains(changed, "partitions = 12") {
		t.Fatal("the example's text changed: update the replacements of this test")
	}
	empty := []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{
				Config: example,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{expectActions{
						"ferry_datacenter.dc1":           "create",
						"ferry_datacenter.dc2":           "create",
						"ferry_shard.realtime":           "create",
						"ferry_shard.standard":           "create",
						"ferry_mirror.orders_events":     "create",
						"ferry_mirror.audit_log":         "create",
						"ferry_cdc_source.trading_db":    "create",
						"ferry_cdc_table.trading_orders": "create",
						"ferry_cdc_table.trading_fills":  "create",
					}},
					PostApplyPostRefresh: empty,
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					s.sameDefinitions(filepath.Join("..", "pipelines")),
					resource.TestCheckResourceAttr("data.ferry_plan.current", "jobs.#", "5"),
					resource.TestCheckResourceAttr("data.ferry_plan.current", "jobs.0.id", "cdc:trading-db"),
					resource.TestCheckResourceAttr("data.ferry_plan.current", "jobs.0.shard", "realtime"),
				),
			},
			{
				Config: changed,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{expectActions{
						"ferry_mirror.audit_log":        "update",
						"ferry_mirror.orders_events":    "delete,create",
						"ferry_cdc_table.trading_fills": "delete",
					}},
					PostApplyPostRefresh: empty,
				},
			},
		},
	})
}

// sameDefinitions checks the stored definitions equal those of a CUE
// directory.
func (s *server) sameDefinitions(dir string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		_, defs, err := compiler.CompileDir(dir)
		if err != nil {
			return err
		}
		want, _ := json.Marshal(defs)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.url+"/v1/definitions", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var stored json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&stored); err != nil {
			return err
		}
		if got := strings.TrimSpace(string(stored)); got != string(want) {
			return fmt.Errorf("stored definitions\n%s\nwant those of %s\n%s", got, dir, want)
		}
		return nil
	}
}

// TestExampleFormatted: the example is as `terraform fmt` writes it.
func TestExampleFormatted(t *testing.T) {
	out, err := exec.Command(os.Getenv("TF_ACC_TERRAFORM_PATH"), "fmt", "-check", "-diff", exampleDir).CombinedOutput()
	if err != nil {
		t.Fatalf("terraform fmt -check %s: %v\n%s", exampleDir, err, out)
	}
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/ferry-pipelines/ferry/runtime/control"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/schema"
)

// lifecycle is the step table of one resource type: it is created,
// imported, updated in place, replaced and deleted, and after every step
// a fresh plan is empty.
type lifecycle struct {
	kind    api.Kind
	address string // resource address, such as ferry_mirror.orders
	deps    string // HCL of the objects it needs, kept throughout
	// The resource's HCL when created, after an in-place update, and after
	// a change that replaces it (none: nothing updates or replaces it); the
	// object names before and after.
	create, update, replace string
	name, replacedName      string
	// An attribute and its value after each of the three steps.
	attr                       string
	created, updated, replaced string
}

const twoDatacenters = `
resource "ferry_datacenter" "dc1" {
  name    = "dc1"
  brokers = ["127.0.0.1:19092"]
}

resource "ferry_datacenter" "dc2" {
  name    = "dc2"
  brokers = ["127.0.0.1:29092"]
}
`

const tradingSource = twoDatacenters + `
resource "ferry_cdc_source" "trading" {
  name         = "trading-db"
  datacenter   = ferry_datacenter.dc1.name
  topic_prefix = "trading"
  mysql = {
    address   = "127.0.0.1:13306"
    user      = "ferry"
    password  = { env = "TRADING_DB_PASSWORD" }
    server_id = 5401
  }
}
`

var lifecycles = []lifecycle{
	{
		kind: api.Datacenter, address: "ferry_datacenter.dc",
		create: `resource "ferry_datacenter" "dc" {
  name    = "dc3"
  brokers = ["127.0.0.1:39092"]
}`,
		update: `resource "ferry_datacenter" "dc" {
  name    = "dc3"
  brokers = ["127.0.0.1:39092", "127.0.0.1:39093"]
  tls     = { ca = "/etc/ferry/ca.pem" }
  sasl = {
    mechanism = "SCRAM-SHA-512"
    user      = "ferry"
    password  = { file = "/etc/ferry/kafka-password" }
  }
}`,
		replace: `resource "ferry_datacenter" "dc" {
  name    = "dc4"
  brokers = ["127.0.0.1:39092"]
}`,
		name: "dc3", replacedName: "dc4",
		attr: "brokers.#", created: "1", updated: "2", replaced: "1",
	},
	{
		kind: api.Shard, address: "ferry_shard.realtime",
		create: `resource "ferry_shard" "realtime" {
  name  = "realtime"
  tiers = [1]
}`,
		update: `resource "ferry_shard" "realtime" {
  name     = "realtime"
  tiers    = [1, 2]
  max_jobs = 100
}`,
		replace: `resource "ferry_shard" "realtime" {
  name     = "fast"
  tiers    = [1, 2]
  max_jobs = 100
}`,
		name: "realtime", replacedName: "fast",
		attr: "tiers.#", created: "1", updated: "2", replaced: "2",
	},
	{
		kind: api.Mirror, address: "ferry_mirror.orders", deps: twoDatacenters,
		create: `resource "ferry_mirror" "orders" {
  name       = "orders.events"
  partitions = 6
  tier       = 1
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]
}`,
		update: `resource "ferry_mirror" "orders" {
  name        = "orders.events"
  partitions  = 6
  tier        = 2
  datacenters = [ferry_datacenter.dc1.name, ferry_datacenter.dc2.name]
  config      = { "retention.ms" = "86400000" }
}`,
		replace: `resource "ferry_mirror" "orders" {
  name        = "orders.events"
  partitions  = 12
  tier        = 2
  datacenters = [ferry_datacenter.dc1.name, ferry_datacenter.dc2.name]
  config      = { "retention.ms" = "86400000" }
}`,
		name: "orders.events", replacedName: "orders.events",
		attr: "partitions", created: "6", updated: "6", replaced: "12",
	},
	{
		kind: api.CDCSource, address: "ferry_cdc_source.trading", deps: twoDatacenters,
		create: `resource "ferry_cdc_source" "trading" {
  name         = "trading-db"
  datacenter   = ferry_datacenter.dc1.name
  topic_prefix = "trading"
  mysql = {
    address   = "127.0.0.1:13306"
    user      = "ferry"
    password  = { env = "TRADING_DB_PASSWORD" }
    server_id = 5401
  }
}`,
		update: `resource "ferry_cdc_source" "trading" {
  name         = "trading-db"
  datacenter   = ferry_datacenter.dc1.name
  topic_prefix = "trading"
  mysql = {
    address   = "127.0.0.1:13306"
    user      = "ferry"
    password  = { file = "/etc/ferry/trading-db-password" }
    server_id = 5402
    flavor    = "mariadb"
    heartbeat = { interval = "100ms", database = "ferry" }
  }
  snapshot = { chunk_size = 1000 }
}`,
		replace: `resource "ferry_cdc_source" "trading" {
  name         = "trading-db"
  datacenter   = ferry_datacenter.dc2.name
  topic_prefix = "trading"
  mysql = {
    address   = "127.0.0.1:13306"
    user      = "ferry"
    password  = { file = "/etc/ferry/trading-db-password" }
    server_id = 5402
  }
}`,
		name: "trading-db", replacedName: "trading-db",
		attr: "mysql.server_id", created: "5401", updated: "5402", replaced: "5402",
	},
	{
		kind: api.CDCTable, address: "ferry_cdc_table.orders", deps: tradingSource,
		create: `resource "ferry_cdc_table" "orders" {
  source = ferry_cdc_source.trading.name
  table  = "trading.orders"
  tier   = 1
}`,
		update: `resource "ferry_cdc_table" "orders" {
  source   = ferry_cdc_source.trading.name
  table    = "trading.orders"
  tier     = 2
  snapshot = "no_data"
  rate     = 500
  key      = ["id"]
  sink = {
    postgres = { dsn = { env = "ORDERS_PG_DSN" } }
    table    = "sales.orders"
    columns  = { id = "order_id" }
  }
}`,
		replace: `resource "ferry_cdc_table" "orders" {
  source   = ferry_cdc_source.trading.name
  table    = "trading.order_lines"
  tier     = 2
  snapshot = "no_data"
}`,
		name: "trading-db/trading.orders", replacedName: "trading-db/trading.order_lines",
		attr: "tier", created: "1", updated: "2", replaced: "2",
	},
	{
		kind: api.Tier, address: "ferry_tier.fast",
		create:  "resource \"ferry_tier\" \"fast\" {\n  tier   = 1\n  budget = \"200ms\"\n}",
		update:  "resource \"ferry_tier\" \"fast\" {\n  tier   = 1\n  budget = \"250ms\"\n}",
		replace: "resource \"ferry_tier\" \"fast\" {\n  tier   = 2\n  budget = \"5s\"\n}",
		name:    "1", replacedName: "2",
		attr: "budget", created: "200ms", updated: "250ms", replaced: "5s",
	},
	{
		// A group has nothing but its name: no update in place.
		kind: api.Group, address: "ferry_group.billing", deps: twoDatacenters,
		create:  "resource \"ferry_group\" \"billing\" {\n  name = \"billing-*\"\n}",
		replace: "resource \"ferry_group\" \"billing\" {\n  name = \"payments\"\n}",
		name:    "billing-*", replacedName: "payments",
		attr: "name", created: "billing-*", replaced: "payments",
	},
	{
		// One object, named alerts: nothing replaces it.
		kind: api.Alerts, address: "ferry_alerts.group",
		create: "resource \"ferry_alerts\" \"group\" {\n  labels = { team = \"platform\" }\n}",
		update: "resource \"ferry_alerts\" \"group\" {\n  labels = { team = \"payments\" }\n  tiers = {\n    \"1\" = { severity = \"page\", at_risk_for = \"2m\" }\n  }\n}",
		name:   "alerts", replacedName: "alerts",
		attr: "labels.team", created: "platform", updated: "payments",
	},
	{
		// One object, named metrics: nothing replaces it.
		kind: api.Metrics, address: "ferry_metrics.group",
		create: "resource \"ferry_metrics\" \"group\" {\n  interval = \"5s\"\n}",
		update: "resource \"ferry_metrics\" \"group\" {\n  interval = \"30s\"\n}",
		name:   "metrics", replacedName: "metrics",
		attr: "interval", created: "5s", updated: "30s",
	},
}

func TestResourceLifecycles(t *testing.T) {
	for _, lc := range lifecycles {
		t.Run(string(lc.kind), func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			empty := resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}
			step := func(hcl, action string) resource.TestStep {
				st := resource.TestStep{Config: s.config(lc.deps + hcl), ConfigPlanChecks: empty}
				st.ConfigPlanChecks.PreApply = []plancheck.PlanCheck{plancheck.ExpectResourceAction(lc.address, plancheck.ResourceActionType(action))}
				return st
			}
			create := step(lc.create, string(plancheck.ResourceActionCreate))
			create.Check = resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr(lc.address, lc.attr, lc.created),
				resource.TestCheckResourceAttr(lc.address, "version", "1"),
				resource.TestCheckResourceAttr(lc.address, "id", lc.name),
				s.stored(lc.kind, lc.name, 1),
			)
			imported := resource.TestStep{
				Config:            s.config(lc.deps + lc.create),
				ResourceName:      lc.address,
				ImportState:       true,
				ImportStateVerify: true,
			}
			steps := []resource.TestStep{create, imported}
			if lc.update != "" {
				update := step(lc.update, string(plancheck.ResourceActionUpdate))
				update.Check = resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(lc.address, lc.attr, lc.updated),
					resource.TestCheckResourceAttr(lc.address, "version", "2"),
					s.stored(lc.kind, lc.name, 2),
				)
				steps = append(steps, update)
			}
			if lc.replace != "" {
				replace := step(lc.replace, string(plancheck.ResourceActionDestroyBeforeCreate))
				replace.Check = resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(lc.address, lc.attr, lc.replaced),
					resource.TestCheckResourceAttr(lc.address, "version", "1"),
					s.stored(lc.kind, lc.replacedName, 1),
				)
				steps = append(steps, replace)
			}
			deleted := step("", string(plancheck.ResourceActionDestroy))
			deleted.ConfigPlanChecks.PreApply = []plancheck.PlanCheck{plancheck.ExpectResourceAction(lc.address, plancheck.ResourceActionDestroy)}
			deleted.Check = s.gone(lc.kind, lc.replacedName)
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: factories,
				Steps:                    append(steps, deleted),
			})
		})
	}
}

// stored checks the control API holds the object at the version, owned by
// Terraform.
func (s *server) stored(kind api.Kind, name string, version int64) resource.TestCheckFunc {
	return func(*terraform.State) error {
		o, err := s.client.Get(context.Background(), kind, name)
		if err != nil {
			return err
		}
		if o.Version != version || o.Owner != api.OwnerTerraform {
			return fmt.Errorf("%s is at version %d owned by %s, want version %d owned by terraform:default", api.Describe(kind, name), o.Version, o.Owner, version)
		}
		return nil
	}
}

// gone checks the control API no longer holds the object.
func (s *server) gone(kind api.Kind, name string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if _, err := s.client.Get(context.Background(), kind, name); !api.IsNotFound(err) {
			return fmt.Errorf("%s: got %v, want it deleted", api.Describe(kind, name), err)
		}
		return nil
	}
}

// TestPlanFailsWithCompilerMessage: a configuration the compiler refuses
// fails `terraform plan` with the compiler's own message, on the attribute
// it names, before anything is written.
func TestPlanFailsWithCompilerMessage(t *testing.T) {
	s := startServer(t)
	s.planRefused(t, twoDatacenters+`
resource "ferry_shard" "realtime" {
  name  = "realtime"
  tiers = [1]
}

resource "ferry_mirror" "audit" {
  name       = "audit.log"
  partitions = 3
  tier       = 4
  shard      = ferry_shard.realtime.name
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]
}
`,
		// On the attribute: Terraform quotes its line before the message.
		regexp.MustCompile(`(?s)shard\s+= ferry_shard\.realtime\.name.*`+message(`mirrors."audit.log".shard: shard "realtime" does not accept tier 4 (it accepts tiers 1)`).String()))
}

// planRefused runs `terraform plan` of hcl, which must fail with want and
// write nothing.
func (s *server) planRefused(t *testing.T, hcl string, want *regexp.Regexp) {
	t.Helper()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps:                    []resource.TestStep{{Config: s.config(hcl), PlanOnly: true, ExpectError: want}},
	})
	if objs, _ := s.client.Objects(context.Background()); len(objs) != 0 {
		t.Fatalf("a refused plan wrote %d objects", len(objs))
	}
}

// TestPlanKnowsIDs: an object's id is its name, known at plan time, so a
// reference by id (shard = ferry_shard.s9.id) leaves the plan checks on:
// a mirror planned after it on a shard that does not exist fails the plan,
// before anything is written.
func TestPlanKnowsIDs(t *testing.T) {
	s := startServer(t)
	s.planRefused(t, twoDatacenters+`
resource "ferry_shard" "s9" {
  name  = "s9"
  tiers = [1]
}

resource "ferry_mirror" "a" {
  name       = "a.events"
  partitions = 1
  tier       = 1
  shard      = ferry_shard.s9.id
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]
}

resource "ferry_mirror" "b" {
  name       = "b.events"
  partitions = 1
  tier       = 1
  shard      = "nosuch"
  depends_on = [ferry_mirror.a]
}
`, message(`mirrors."b.events".shard: unknown shard "nosuch" (declared: s9)`))
}

// TestPlanChecksAroundUnknowns: a value known only after apply (here
// terraform_data's output) leaves out only the checks that need it. A
// mirror planned after one whose shard is unknown is still checked, and
// fails the plan on a shard that does not exist; the unknown mirror's own
// other attributes are checked too; and a configuration whose only
// unknown is valid plans and applies.
func TestPlanChecksAroundUnknowns(t *testing.T) {
	s := startServer(t)
	unknownShard := twoDatacenters + `
resource "ferry_shard" "standard" {
  name  = "standard"
  tiers = [1, 2]
}

resource "terraform_data" "shard" {
  input = ferry_shard.standard.name
}

resource "ferry_mirror" "a" {
  name       = "a.events"
  partitions = 1
  tier       = 1
  shard      = terraform_data.shard.output
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]
}
`
	s.planRefused(t, unknownShard+`
resource "ferry_mirror" "b" {
  name       = "b.events"
  partitions = 1
  tier       = 1
  shard      = "nosuch"
  depends_on = [ferry_mirror.a]
}
`, message(`mirrors."b.events".shard: unknown shard "nosuch" (declared: standard)`))
	s.planRefused(t, strings.Replace(unknownShard, `depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]`,
		`datacenters = [ferry_datacenter.dc1.name, "dc9"]`, 1),
		message(`mirrors."a.events".datacenters: unknown datacenter "dc9" (declared: dc1, dc2)`))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{{
			Config: s.config(unknownShard),
			Check:  resource.TestCheckResourceAttr("ferry_mirror.a", "shard", "standard"),
		}},
	})
}

// TestPlacedJobs: mirrors, CDC sources and tables show the jobs ferry
// runs for them and the shard each is placed on, after apply and in their
// data sources.
func TestPlacedJobs(t *testing.T) {
	s := startServer(t)
	hcl := tradingSource + `
resource "ferry_shard" "standard" {
  name  = "standard"
  tiers = [1, 2]
}

resource "ferry_mirror" "orders" {
  name        = "orders.events"
  partitions  = 2
  tier        = 2
  datacenters = [ferry_datacenter.dc1.name, ferry_datacenter.dc2.name]
  depends_on  = [ferry_shard.standard]
}

resource "ferry_cdc_table" "orders" {
  source = ferry_cdc_source.trading.name
  table  = "trading.orders"
  tier   = 1
  sink   = { postgres = { dsn = { env = "ORDERS_PG_DSN" } } }
  depends_on = [ferry_shard.standard]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{
				Config: s.config(hcl),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("ferry_mirror.orders", "jobs.%", "2"),
					resource.TestCheckResourceAttr("ferry_mirror.orders", "jobs.mirror:orders.events:dc1-dc2", "standard"),
					resource.TestCheckResourceAttr("ferry_mirror.orders", "jobs.mirror:orders.events:dc2-dc1", "standard"),
					resource.TestCheckResourceAttr("ferry_cdc_table.orders", "jobs.%", "2"),
					resource.TestCheckResourceAttr("ferry_cdc_table.orders", "jobs.cdc:trading-db", "standard"),
					resource.TestCheckResourceAttr("ferry_cdc_table.orders", "jobs.sink:trading-db:trading.orders", "standard"),
				),
			},
			{
				Config: s.config(hcl + `
data "ferry_cdc_source" "trading" {
  name = ferry_cdc_source.trading.name
}
`),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("data.ferry_cdc_source.trading", "jobs.%", "1"),
					resource.TestCheckResourceAttr("data.ferry_cdc_source.trading", "jobs.cdc:trading-db", "standard"),
				),
			},
		},
	})
}

// TestPlanBlamesWhatDoesNotFit: of two new mirrors that do not both fit
// on the only shard, the one planned second (a.events, after z.events)
// fails the plan, and the message says it is the one that does not fit,
// though the compiler names the job it placed last (z.events's).
func TestPlanBlamesWhatDoesNotFit(t *testing.T) {
	s := startServer(t)
	s.planRefused(t, twoDatacenters+`
resource "ferry_shard" "small" {
  name     = "small"
  tiers    = [1]
  max_jobs = 3
}

resource "ferry_mirror" "z" {
  name       = "z.events"
  partitions = 1
  tier       = 1
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2, ferry_shard.small]
}

resource "ferry_mirror" "a" {
  name       = "a.events"
  partitions = 1
  tier       = 1
  depends_on = [ferry_mirror.z]
}
`, regexp.MustCompile(`(?s)with ferry_mirror\.a.*`+message(`mirror "a.events" does not fit with the 4 other changes planned before it in this run, which fit without it; the definitions would not compile:`).String()+`.*no shard has room for job`))
}

// TestTimeouts: a resource's timeouts block sets how long apply tries a
// refused or busy write again (30 s by default); it is kept in the state,
// plans nothing once applied, and a value that is not a duration fails
// the plan on its attribute.
func TestTimeouts(t *testing.T) {
	s := startServer(t)
	mirror := func(create string) string {
		return s.config(twoDatacenters + fmt.Sprintf(`
resource "ferry_mirror" "orders" {
  name        = "orders.events"
  partitions  = 2
  tier        = 2
  datacenters = [ferry_datacenter.dc1.name, ferry_datacenter.dc2.name]
  timeouts    = { create = %q, delete = "5s" }
}
`, create))
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{Config: mirror("soon"), PlanOnly: true, ExpectError: message(`"soon" must be a string containing a sequence of decimal numbers`)},
			{
				Config:           mirror("45s"),
				Check:            resource.TestCheckResourceAttr("ferry_mirror.orders", "timeouts.create", "45s"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// TestLostAnswers: a proxy in front of the control API forwards every
// other write of a mirror and then loses its answer (502), as a load
// balancer cut off mid-request would. Create and update still apply: the
// provider tries again, meets the version its lost write made (409),
// finds the stored object is what it wrote, and takes it. Each change is
// one write, and the plan after is empty.
func TestLostAnswers(t *testing.T) {
	s := startServer(t)
	var puts atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(mustURL(t, s.url))
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodPut && strings.Contains(r.Request.URL.Path, "/mirrors/") && puts.Add(1)%2 == 1 {
			return errors.New("answer lost") // the proxy answers 502
		}
		return nil
	}
	lossy := httptest.NewServer(proxy)
	t.Cleanup(lossy.Close)
	via := &server{url: lossy.URL, client: s.client}
	mirror := func(tier int) string {
		return via.config(twoDatacenters + fmt.Sprintf(`
resource "ferry_mirror" "orders" {
  name        = "orders.events"
  partitions  = 2
  tier        = %d
  datacenters = [ferry_datacenter.dc1.name, ferry_datacenter.dc2.name]
}
`, tier))
	}
	stored := func(version string) resource.TestCheckFunc {
		return func(*terraform.State) error {
			o, err := s.client.Get(context.Background(), api.Mirror, "orders.events")
			if err != nil {
				return err
			}
			if fmt.Sprint(o.Version) != version {
				return fmt.Errorf("stored at version %d, want %s: one write per change", o.Version, version)
			}
			return nil
		}
	}
	empty := resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: factories, Steps: []resource.TestStep{
		{Config: mirror(2), ConfigPlanChecks: empty, Check: resource.ComposeTestCheckFunc(stored("1"), resource.TestCheckResourceAttr("ferry_mirror.orders", "version", "1"))},
		{Config: mirror(3), ConfigPlanChecks: empty, Check: resource.ComposeTestCheckFunc(stored("2"), resource.TestCheckResourceAttr("ferry_mirror.orders", "version", "2"))},
	}})
	if n := puts.Load(); n != 4 {
		t.Fatalf("%d writes of the mirror reached the service, want 4 (two lost answers, two tries again)", n)
	}
}

// TestEmptyConfig: `config = {}` is accepted, stored as no configs, and
// plans nothing more after apply, nor when it is then left out.
func TestEmptyConfig(t *testing.T) {
	s := startServer(t)
	mirror := func(config string) string {
		return s.config(twoDatacenters + `
resource "ferry_mirror" "m" {
  name       = "m.events"
  partitions = 1
  tier       = 2
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]
` + config + `}
`)
	}
	empty := resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: factories, Steps: []resource.TestStep{
		{Config: mirror("  config = {}\n"), ConfigPlanChecks: empty, Check: resource.TestCheckResourceAttr("ferry_mirror.m", "config.%", "0")},
		{Config: mirror(""), ConfigPlanChecks: empty, Check: resource.TestCheckNoResourceAttr("ferry_mirror.m", "config.%")},
	}})
}

// TestPlanRefusesWhatApplyWould: two resources creating one name, and a
// resource creating an object Terraform stored already (another state's,
// or one never imported), fail the plan on the attribute, not the apply.
func TestPlanRefusesWhatApplyWould(t *testing.T) {
	s := startServer(t)
	tf, err := api.NewClient(s.url, api.WithOwner(api.OwnerTerraform))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Put(context.Background(), api.Shard, "batch", map[string]any{"tiers": []int{4}}, nil); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{
				Config: s.config(`
resource "ferry_shard" "a" {
  name  = "fast"
  tiers = [1]
}

resource "ferry_shard" "b" {
  name  = "fast"
  tiers = [1, 2]
}
`),
				PlanOnly:    true,
				ExpectError: message(`Duplicate shard "fast"`),
			},
			{
				Config: s.config(`
resource "ferry_shard" "batch" {
  name  = "batch"
  tiers = [4]
}
`),
				PlanOnly:    true,
				ExpectError: message(`shard "batch" is stored already (owner terraform:default, version 1): import it (terraform import ferry_shard.NAME batch)`),
			},
		},
	})
}

// TestDataSources: a workspace reads the objects a CUE directory owns
// (datacenters, a shard) and places its own mirror on them by reference;
// every data source reads back what is stored.
func TestDataSources(t *testing.T) {
	s := startServer(t)
	cue := s.cueDatacenters(t, "platform")
	ctx := context.Background()
	if _, err := cue.Put(ctx, api.Shard, "shared", map[string]any{"tiers": []int{2, 3}}, nil); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{{
			Config: s.config(`
data "ferry_datacenter" "dc1" {
  name = "dc1"
}

data "ferry_datacenter" "dc2" {
  name = "dc2"
}

data "ferry_shard" "shared" {
  name = "shared"
}

resource "ferry_mirror" "orders" {
  name        = "orders.events"
  partitions  = 2
  tier        = 2
  shard       = data.ferry_shard.shared.name
  datacenters = [data.ferry_datacenter.dc1.name, data.ferry_datacenter.dc2.name]
}

data "ferry_mirror" "orders" {
  name       = ferry_mirror.orders.name
  depends_on = [ferry_mirror.orders]
}
`),
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("data.ferry_datacenter.dc1", "brokers.0", "127.0.0.1:19092"),
				resource.TestCheckResourceAttr("data.ferry_datacenter.dc1", "version", "1"),
				resource.TestCheckResourceAttr("data.ferry_shard.shared", "tiers.#", "2"),
				resource.TestCheckResourceAttr("data.ferry_mirror.orders", "partitions", "2"),
				resource.TestCheckResourceAttr("data.ferry_mirror.orders", "shard", "shared"),
				s.stored(api.Mirror, "orders.events", 1),
			),
		}},
	})
}

// cueDatacenters stores dc1 and dc2 as the CUE directory dir does, and
// returns its client.
func (s *server) cueDatacenters(t *testing.T, dir string) *api.Client {
	t.Helper()
	cue, err := api.NewClient(s.url, api.WithOwner(api.CUEOwner(dir)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dc1", "dc2"} {
		if _, err := cue.Put(context.Background(), api.Datacenter, name, map[string]any{"kafka": map[string]any{"brokers": []string{"127.0.0.1:19092"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return cue
}

// TestCAFile: over HTTPS with a private CA, the provider's ca_file makes
// the executors' certificate trusted; without it, the plan fails naming the
// certificate.
func TestCAFile(t *testing.T) {
	s, ca := startTLSServer(t)
	dc := `
resource "ferry_datacenter" "dc1" {
  name    = "dc1"
  brokers = ["127.0.0.1:19092"]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{
				Config:      s.config(dc),
				ExpectError: regexp.MustCompile(`certificate signed by unknown authority`),
			},
			{
				Config: strings.Replace(s.config(dc), "provider \"ferry\" {", fmt.Sprintf("provider \"ferry\" {\n  ca_file = %q", ca), 1),
				Check:  s.stored(api.Datacenter, "dc1", 1),
			},
		},
	})
}

// TestOwnedByCUE: Terraform neither creates over nor imports an object a
// CUE directory owns; the error names the owner.
func TestOwnedByCUE(t *testing.T) {
	s := startServer(t)
	s.cueDatacenters(t, "pipelines")
	owned := message(`datacenter "dc1" is owned by cue:pipelines; change it there or delete it there first, or have an admin transfer it (POST /v1/transfer)`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{Config: s.config(twoDatacenters), PlanOnly: true, ExpectError: owned},
			{
				Config:        s.config(twoDatacenters),
				ResourceName:  "ferry_datacenter.dc1",
				ImportState:   true,
				ImportStateId: "dc1",
				ExpectError:   owned,
			},
		},
	})
}

// TestWorkspaceOwners: each workspace writes as its own owner, which the
// API binds to its token. Another workspace's objects can be neither
// created over nor imported; once an admin releases them (POST
// /v1/transfer to ""), `terraform import` adopts them unchanged and the
// plan after is empty. A token cannot write as an owner it is not bound to.
func TestWorkspaceOwners(t *testing.T) {
	s := startServer(t, control.WithTokens(control.Tokens{"admin": {"*"}, "pay": {"terraform:payments"}, "search": {"terraform:search"}}))
	pay, err := api.NewClient(s.url, api.WithOwner("terraform:payments"), api.WithToken("pay"))
	if err != nil {
		t.Fatal(err)
	}
	for name, broker := range map[string]string{"dc1": "127.0.0.1:19092", "dc2": "127.0.0.1:29092"} {
		if _, err := pay.Put(context.Background(), api.Datacenter, name, schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{broker}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	as := func(token, owner string) string {
		return strings.Replace(s.config(twoDatacenters), "provider \"ferry\" {", fmt.Sprintf("provider \"ferry\" {\n  token = %q\n  owner = %q", token, owner), 1)
	}
	search := as("search", "terraform:search")
	owned := message(`datacenter "dc1" is owned by terraform:payments; change it there or delete it there first, or have an admin transfer it`)
	release := func() {
		for _, name := range []string{"dc1", "dc2"} {
			if _, err := s.client.Transfer(context.Background(), api.Transfer{Kind: api.Datacenter, Name: name, To: ""}); err != nil {
				t.Fatal(err)
			}
		}
	}
	importStep := func(name string, pre func()) resource.TestStep {
		return resource.TestStep{
			PreConfig: pre, Config: search, ResourceName: "ferry_datacenter." + name,
			ImportState: true, ImportStateId: name, ImportStatePersist: true,
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factories,
		Steps: []resource.TestStep{
			{Config: as("pay", "terraform:search"), PlanOnly: true, ExpectError: message(`this token may write as terraform:payments, not as terraform:search`)},
			{Config: search, PlanOnly: true, ExpectError: owned},
			{Config: search, ResourceName: "ferry_datacenter.dc1", ImportState: true, ImportStateId: "dc1", ExpectError: owned},
			importStep("dc1", release),
			importStep("dc2", nil),
			{
				Config:           search,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            s.ownedBy("terraform:search", "dc1", "dc2"),
			},
		},
	})
}

// ownedBy checks the owner and spec of stored datacenters.
func (s *server) ownedBy(owner string, names ...string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		for _, name := range names {
			o, err := s.client.Get(context.Background(), api.Datacenter, name)
			if err != nil {
				return err
			}
			if o.Owner != owner {
				return fmt.Errorf("%s is owned by %q, want %q", api.Describe(api.Datacenter, name), o.Owner, owner)
			}
		}
		return nil
	}
}

// TestValidation: attribute values the schema refuses fail `terraform
// plan` with the attribute and what a valid value looks like, before the
// control API is asked.
func TestValidation(t *testing.T) {
	s := startServer(t)
	var steps []resource.TestStep
	for _, tc := range []struct{ hcl, msg string }{
		{`resource "ferry_datacenter" "x" {
  name    = "DC-1"
  brokers = ["127.0.0.1:19092"]
}`, `"DC-1" is not a datacenter name ([a-z][a-z0-9_]*)`},
		{`resource "ferry_datacenter" "x" {
  name    = "dc1"
  brokers = ["no-port"]
}`, `"no-port" is not host:port`},
		{`resource "ferry_shard" "x" {
  name  = "s"
  tiers = [1, 5]
}`, `5 is not from 1 to 4`},
		{`resource "ferry_mirror" "x" {
  name        = "orders.events"
  partitions  = 0
  tier        = 1
}`, `0 is not from 1 to 100000`},
		{`resource "ferry_mirror" "x" {
  name        = "orders events"
  partitions  = 1
  tier        = 1
  datacenters = ["dc1"]
}`, `1 element(s); want at least 2 element(s) when set`},
		{`resource "ferry_cdc_source" "x" {
  name         = "db"
  datacenter   = "dc1"
  topic_prefix = "db"
  mysql = {
    address   = "db:3306"
    user      = "ferry"
    password  = { env = "P", file = "/p" }
    server_id = 1
  }
}`, `set exactly one of env, file`},
		{`resource "ferry_cdc_table" "x" {
  source   = "db"
  table    = "orders"
  tier     = 1
  snapshot = "sometimes"
}`, `"orders" is not DB.TABLE`},
	} {
		steps = append(steps, resource.TestStep{Config: s.config(tc.hcl), PlanOnly: true, ExpectError: message(tc.msg)})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: factories, Steps: steps})
}

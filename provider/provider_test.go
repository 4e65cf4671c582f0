package provider

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/runtime/control"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// The acceptance tests run the real terraform binary against the provider
// served in-process (reattached, so nothing is downloaded) and a control
// service on an embedded Kafka cluster.
func TestMain(m *testing.M) {
	setDefault("TF_ACC", "1")
	setDefault("TF_ACC_TERRAFORM_PATH", "/usr/local/bin/terraform")
	// The provider's address in required_providers blocks.
	setDefault("TF_ACC_PROVIDER_NAMESPACE", "ferry-pipelines")
	setDefault("CHECKPOINT_DISABLE", "1")
	// An empty CLI configuration, whatever the machine's: the provider is
	// reattached, and nothing is downloaded.
	cli, err := os.CreateTemp("", "ferry-terraformrc")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cli.Close()
	os.Setenv("TF_CLI_CONFIG_FILE", cli.Name())
	code := m.Run()
	os.Remove(cli.Name())
	os.Exit(code)
}

// message matches an error message as Terraform prints it, wrapped at any
// space.
func message(msg string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(msg), " ", `\s+`))
}

func setDefault(name, value string) {
	if os.Getenv(name) == "" {
		os.Setenv(name, value)
	}
}

// factories serve the provider in-process, as Terraform's plugin.
var factories = map[string]func() (tfprotov6.ProviderServer, error){
	"ferry": providerserver.NewProtocol6WithError(New("test")()),
}

// server is a control API on an embedded Kafka cluster.
type server struct {
	url    string
	client *api.Client // owner terraform:default
	svc    *control.Service
}

func startServer(t testing.TB, opts ...control.Option) *server {
	t.Helper()
	home, err := devenv.StartKafka("home", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := control.NewService(ctx, []kgo.Opt{kgo.SeedBrokers(home.Addr())}, append(opts, control.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))...)
	if err != nil {
		home.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
		home.Close()
	})
	c, err := api.NewClient(srv.URL, api.WithOwner(api.OwnerTerraform), api.WithToken("admin"))
	if err != nil {
		t.Fatal(err)
	}
	return &server{url: srv.URL, client: c, svc: svc}
}

// startTLSServer is startServer over HTTPS, with a certificate of
// httptest's own CA, written to the PEM file it returns.
func startTLSServer(t testing.TB) (*server, string) {
	t.Helper()
	s := startServer(t)
	backend := s.url
	srv := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(mustURL(t, backend)))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &server{url: srv.URL, client: s.client}, ca
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// config prepends the blocks that name the provider and point it at the
// server.
func (s *server) config(hcl string) string {
	return fmt.Sprintf(`terraform {
  required_providers {
    ferry = { source = "ferry-pipelines/ferry" }
  }
}

provider "ferry" {
  endpoint = %q
}
%s`, s.url, hcl)
}

// expectActions is a plan check: the plan holds exactly these resource
// changes (address -> action, as `terraform show -json` spells actions:
// "create", "update", "delete", "delete,create", ...), nothing else.
type expectActions map[string]string

func (want expectActions) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	got := map[string]string{}
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Change.Actions.NoOp() || rc.Change.Actions.Read() {
			continue
		}
		got[rc.Address] = actionsString(rc.Change.Actions)
	}
	if a, b := describeActions(got), describeActions(want); a != b {
		resp.Error = fmt.Errorf("plan:\n%s\nwant:\n%s", a, b)
	}
}

func actionsString(as tfjson.Actions) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ",")
}

func describeActions(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for addr, action := range m {
		lines = append(lines, addr+": "+action)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

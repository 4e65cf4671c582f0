package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/k8s"
	"github.com/ferry-pipelines/ferry/compiler/observe"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

func compileCmd() *cobra.Command {
	var out, from string
	var asK8s, alerts, dashboard bool
	var with string
	var k8sOpts k8s.Options
	cmd := &cobra.Command{
		Use:   "compile [DIR]",
		Short: "Write the plan of DIR as JSON; the same input gives the same bytes",
		Long: `Compile writes the plan of DIR as JSON; the same input gives the same bytes.
With --k8s it writes Kubernetes manifests instead: the plan in a ConfigMap and,
per shard, a StatefulSet of executors (ferry run --plan --shard) with a
headless Service; with --alerts as well, a PrometheusRule of the alert rules
and a ServiceMonitor of the executors.

--alerts writes the Prometheus rule file of the plan instead (recording rules,
and alerts per tier with thresholds from its budgets), --dashboard a Grafana
dashboard (JSON) of it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := compileWith(dirArg(args), from, with)
			if err != nil {
				return err
			}
			var b []byte
			switch {
			case asK8s:
				if alerts {
					k8sOpts.Rules, err = observe.Rules(p)
				}
				if err == nil {
					b, err = k8s.Render(p, k8sOpts)
				}
			case alerts && dashboard:
				err = errors.New("--alerts and --dashboard write one file each: run ferry compile once for each")
			case alerts:
				b, err = observe.Rules(p)
			case dashboard:
				b, err = observe.Dashboard(p)
			default:
				b, err = p.Encode()
			}
			if err != nil {
				return exit(1, err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return exit(1, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the plan to `FILE` instead of stdout")
	cmd.Flags().StringVar(&from, "from", "", "keep the job placement of the previous plan `FILE`")
	cmd.Flags().StringVar(&with, "with", "", withUsage)
	cmd.Flags().BoolVar(&asK8s, "k8s", false, "write Kubernetes manifests (ConfigMap, StatefulSet and Service per shard) instead of the plan")
	cmd.Flags().BoolVar(&alerts, "alerts", false, "write the plan's Prometheus rule file (with --k8s: a PrometheusRule and a ServiceMonitor too)")
	cmd.Flags().BoolVar(&dashboard, "dashboard", false, "write the plan's Grafana dashboard (JSON)")
	cmd.Flags().IntVar(&k8sOpts.Replicas, "replicas", 2, "with --k8s: executor processes per shard")
	cmd.Flags().StringVar(&k8sOpts.Image, "image", "ghcr.io/ferry-pipelines/ferry:latest", "with --k8s: the ferry container `IMAGE`")
	cmd.Flags().StringVar(&k8sOpts.Namespace, "namespace", "ferry", "with --k8s: the Kubernetes `NAMESPACE`")
	cmd.Flags().StringVar(&k8sOpts.SecretName, "secret", "ferry-secrets", "with --k8s: the Kubernetes Secret whose keys become the environment (for {env: NAME} secrets)")
	return cmd
}

// withUsage documents --with.
const withUsage = "compile DIR with the definitions others declare in its executor group, saved from GET /v1/definitions in `FILE`: DIR may use their datacenters, shards and tiers"

// compileWith compiles dir with opts, keeping placements from the plan
// file from, together with the shared definitions of the file with (see
// compiler.WithShared); either may be "".
func compileWith(dir, from, with string, opts ...compiler.Option) (*plan.Plan, error) {
	if from != "" {
		prev, err := readPlan(from)
		if err != nil {
			return nil, exit(1, err)
		}
		opts = append(opts, compiler.WithPrevious(prev))
	}
	if with != "" {
		shared, err := readDefinitions(with)
		if err != nil {
			return nil, exit(1, err)
		}
		opts = append(opts, compiler.WithShared(shared))
	}
	p, _, err := compileDir(dir, opts...)
	if err != nil {
		return nil, exit(1, err)
	}
	return p, nil
}

// compileDir compiles dir with the garbage collector at a quarter of its
// usual pace, unless GOGC says otherwise. Compiling allocates many
// short-lived CUE structures and a command ends soon after: on 5,000
// mirrors and 5,000 tables this saves a fifth of the time for a few
// percent more memory.
func compileDir(dir string, opts ...compiler.Option) (*plan.Plan, *schema.Definitions, error) {
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	return compiler.CompileDir(dir, opts...)
}

// readDefinitions reads a definitions file: the JSON of GET
// /v1/definitions.
func readDefinitions(file string) (*schema.Definitions, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d schema.Definitions
	if err := dec.Decode(&d); err != nil {
		return nil, &fileError{file, fmt.Errorf("not the definitions of GET /v1/definitions: %w", err)}
	}
	return &d, nil
}

func readPlan(file string) (*plan.Plan, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, err := plan.Decode(b)
	if err != nil {
		return nil, &fileError{file, err}
	}
	return p, nil
}

type fileError struct {
	file string
	err  error
}

func (e *fileError) Error() string { return e.file + ": " + e.err.Error() }

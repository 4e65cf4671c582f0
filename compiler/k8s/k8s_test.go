package k8s_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/k8s"
	"github.com/ferry-pipelines/ferry/compiler/observe"
	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// TestRender renders the example pipelines and checks the manifests parse,
// carry the plan unchanged, and run one StatefulSet per shard with its
// --shard and the pod name as --instance.
func TestRender(t *testing.T) {
	p, _, err := compiler.CompileDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	out, err := k8s.Render(p, k8s.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	kinds := map[string][]string{}
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
			Data map[string]string `yaml:"data"`
			Spec struct {
				Replicas int `yaml:"replicas"`
				Template struct {
					Spec struct {
						Containers []struct {
							Args []string `yaml:"args"`
							Env  []struct {
								Name      string `yaml:"name"`
								ValueFrom struct {
									FieldRef struct {
										FieldPath string `yaml:"fieldPath"`
									} `yaml:"fieldRef"`
								} `yaml:"valueFrom"`
							} `yaml:"env"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("manifests do not parse: %v\n%s", err, out)
		}
		kinds[doc.Kind] = append(kinds[doc.Kind], doc.Metadata.Name)
		if doc.Metadata.Namespace != "ferry" {
			t.Errorf("%s %s in namespace %q", doc.Kind, doc.Metadata.Name, doc.Metadata.Namespace)
		}
		switch doc.Kind {
		case "ConfigMap":
			got, err := plan.Decode([]byte(doc.Data["plan.json"]))
			if err != nil || !reflect.DeepEqual(got, p) {
				a, _ := json.Marshal(got)
				t.Fatalf("the ConfigMap's plan differs from the compiled one (%v): %s", err, a)
			}
		case "StatefulSet":
			c := doc.Spec.Template.Spec.Containers[0]
			shard := doc.Metadata.Name[len("ferry-"):]
			want := []string{"run", "--plan", "/etc/ferry/plan.json", "--shard", shard, "--http", "0.0.0.0:7310", "--log-json"}
			if !reflect.DeepEqual(c.Args, want) || doc.Spec.Replicas != 3 {
				t.Errorf("%s: args %q, replicas %d; want %q, 3", doc.Metadata.Name, c.Args, doc.Spec.Replicas, want)
			}
			if len(c.Env) != 1 || c.Env[0].Name != "FERRY_INSTANCE" || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("%s: FERRY_INSTANCE is not the pod name: %+v", doc.Metadata.Name, c.Env)
			}
		}
	}
	want := map[string][]string{
		"ConfigMap":   {"ferry-plan"},
		"StatefulSet": {"ferry-realtime", "ferry-standard"},
		"Service":     {"ferry-realtime", "ferry-standard"},
	}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("manifests %v, want %v", kinds, want)
	}
}

// TestRenderRules: with Rules, the manifests add a PrometheusRule whose
// spec is the rule file unchanged and a ServiceMonitor that selects the
// executors' Services and keeps their job label (honorLabels).
func TestRenderRules(t *testing.T) {
	p, _, err := compiler.CompileDir("../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := observe.Rules(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := k8s.Render(p, k8s.Options{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := yaml.Unmarshal(rules, &want); err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	found := map[string]bool{}
	for {
		var doc struct {
			Kind     string                             `yaml:"kind"`
			Metadata struct{ Labels map[string]string } `yaml:"metadata"`
			Spec     yaml.Node                          `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("manifests do not parse: %v\n%s", err, out)
		}
		switch doc.Kind {
		case "PrometheusRule":
			var spec any
			if err := doc.Spec.Decode(&spec); err != nil || !reflect.DeepEqual(spec, want) {
				t.Errorf("the PrometheusRule's spec differs from the rule file (%v)", err)
			}
		case "ServiceMonitor":
			var spec struct {
				Selector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"selector"`
				Endpoints []struct {
					Port        string `yaml:"port"`
					HonorLabels bool   `yaml:"honorLabels"`
				} `yaml:"endpoints"`
			}
			if err := doc.Spec.Decode(&spec); err != nil || spec.Selector.MatchLabels["app.kubernetes.io/name"] != "ferry" ||
				len(spec.Endpoints) != 1 || spec.Endpoints[0].Port != "http" || !spec.Endpoints[0].HonorLabels {
				t.Errorf("ServiceMonitor %+v (%v): want the ferry Services' http port with honorLabels", spec, err)
			}
		case "Service":
			if doc.Metadata.Labels["app.kubernetes.io/name"] != "ferry" {
				t.Errorf("a Service without the label the ServiceMonitor selects: %v", doc.Metadata.Labels)
			}
		}
		found[doc.Kind] = true
	}
	if !found["PrometheusRule"] || !found["ServiceMonitor"] {
		t.Fatalf("no PrometheusRule or ServiceMonitor in:\n%s", out)
	}
}

// Package k8s renders a plan as Kubernetes manifests: the plan in a
// ConfigMap, and per shard a StatefulSet of executor processes (`ferry run
// --plan --shard`) with a headless Service for their HTTP API. Pod names are
// stable, so each process passes its pod name as --instance and a restarted
// pod takes its partitions back at once (static group membership).
package k8s

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"text/template"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// Options tune the manifests.
type Options struct {
	Namespace string // default "ferry"
	Image     string // default "ghcr.io/ferry-pipelines/ferry:latest"
	Replicas  int    // processes per shard; default 2
	// SecretName is the Kubernetes Secret whose keys become environment
	// variables, for the plan's {env: NAME} secret references. Default
	// "ferry-secrets".
	SecretName string
	// Rules, a Prometheus rule file (observe.Rules), adds a PrometheusRule
	// holding it and a ServiceMonitor of the executors, for the Prometheus
	// Operator. Default: none.
	Rules []byte
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = "ferry"
	}
	if o.Image == "" {
		o.Image = "ghcr.io/ferry-pipelines/ferry:latest"
	}
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	if o.SecretName == "" {
		o.SecretName = "ferry-secrets"
	}
}

// Render writes the manifests of p as one YAML stream.
func Render(p *plan.Plan, o Options) ([]byte, error) {
	o.defaults()
	planJSON, err := p.Encode()
	if err != nil {
		return nil, err
	}
	jobs := map[string]int{}
	for _, j := range p.Jobs {
		jobs[j.Shard]++
	}
	var shards []shard
	for name := range p.Shards {
		if jobs[name] > 0 {
			shards = append(shards, shard{Name: name, Resource: strings.ReplaceAll(name, "_", "-"), Jobs: jobs[name]})
		}
	}
	sort.Slice(shards, func(a, b int) bool { return shards[a].Name < shards[b].Name })
	var b bytes.Buffer
	err = manifests.Execute(&b, struct {
		Options
		Plan      string
		RuleGroup string
		Shards    []shard
	}{o, indent(string(planJSON), "    "), indent(string(o.Rules), "  "), shards})
	if err != nil {
		return nil, fmt.Errorf("render manifests: %w", err)
	}
	return b.Bytes(), nil
}

type shard struct {
	Name     string // as in the plan
	Resource string // as Kubernetes names allow
	Jobs     int
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

var manifests = template.Must(template.New("k8s").Parse(`# Rendered by ferry compile --k8s: the plan, and per shard a StatefulSet of
# executors. Secrets referenced as {env: NAME} come from the Secret
# {{.SecretName}}; create it before applying.
apiVersion: v1
kind: ConfigMap
metadata:
  name: ferry-plan
  namespace: {{.Namespace}}
data:
  plan.json: |
{{.Plan}}
{{- range .Shards}}
---
# Shard {{.Name}}: {{.Jobs}} jobs, shared by the replicas through Kafka
# consumer groups (ferry.{{.Name}}.<job>).
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: ferry-{{.Resource}}
  namespace: {{$.Namespace}}
  labels: {app.kubernetes.io/name: ferry, ferry.shard: {{.Resource}}}
spec:
  serviceName: ferry-{{.Resource}}
  replicas: {{$.Replicas}}
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app.kubernetes.io/name: ferry, ferry.shard: {{.Resource}}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: ferry, ferry.shard: {{.Resource}}}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "7310"
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: ferry
          image: {{$.Image}}
          args: [run, --plan, /etc/ferry/plan.json, --shard, {{.Name}}, --http, "0.0.0.0:7310", --log-json]
          env:
            - name: FERRY_INSTANCE
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          envFrom:
            - secretRef: {name: {{$.SecretName}}, optional: true}
          ports:
            - {name: http, containerPort: 7310}
          readinessProbe:
            httpGet: {path: /healthz, port: http}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 20
          volumeMounts:
            - {name: plan, mountPath: /etc/ferry}
      volumes:
        - name: plan
          configMap: {name: ferry-plan}
---
apiVersion: v1
kind: Service
metadata:
  name: ferry-{{.Resource}}
  namespace: {{$.Namespace}}
  labels: {app.kubernetes.io/name: ferry, ferry.shard: {{.Resource}}}
spec:
  clusterIP: None
  selector: {app.kubernetes.io/name: ferry, ferry.shard: {{.Resource}}}
  ports:
    - {name: http, port: 7310}
{{- end}}
{{- if .Rules}}
---
# The plan's alert rules (ferry compile --alerts), for the Prometheus Operator.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: ferry
  namespace: {{.Namespace}}
  labels: {app.kubernetes.io/name: ferry}
spec:
{{.RuleGroup}}
---
# Every executor's /metrics. ferry's metrics carry their own job label (the
# ferry job): honorLabels keeps it.
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: ferry
  namespace: {{.Namespace}}
  labels: {app.kubernetes.io/name: ferry}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: ferry}
  endpoints:
    - {port: http, path: /metrics, interval: 15s, honorLabels: true}
{{- end}}
`))

package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/server"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const chart = "helm/jetmesh"

// helm runs the Helm CLI built from the Go module proxy (go.mod's tool directive).
func helm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "helm"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// render is `helm template` of the chart with the values files given: the objects, and
// the output as helm printed it.
func render(t *testing.T, valueFiles ...string) ([]map[string]any, string) {
	t.Helper()
	args := []string{"template", "jetmesh", chart, "--namespace", "jetmesh", "--kube-version", "1.31.0"}
	for _, f := range valueFiles {
		args = append(args, "-f", f)
	}
	out := helm(t, args...)
	var docs []map[string]any
	for _, doc := range strings.Split(out, "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs, out
}

// kinds maps every kind the chart renders to its Kubernetes API type.
var kinds = map[string]func() any{
	"apps/v1/StatefulSet":                      func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                       func() any { return &appsv1.Deployment{} },
	"v1/Service":                               func() any { return &corev1.Service{} },
	"v1/ConfigMap":                             func() any { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":                        func() any { return &corev1.ServiceAccount{} },
	"policy/v1/PodDisruptionBudget":            func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":             func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":       func() any { return &networkingv1.NetworkPolicy{} },
	"batch/v1/Job":                             func() any { return &batchv1.Job{} },
	"rbac.authorization.k8s.io/v1/Role":        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
	"monitoring.coreos.com/v1/ServiceMonitor":  func() any { return &serviceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule":  func() any { return &prometheusRule{} },
}

// serviceMonitor and prometheusRule are the fields of the Prometheus operator's kinds the
// chart uses: k8s.io/api does not have them, and these refuse any other field.
type serviceMonitor struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   map[string]any     `json:"metadata"`
	Spec       serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	JobLabel string `json:"jobLabel"`
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Endpoints []struct {
		Port      string `json:"port"`
		Path      string `json:"path"`
		Interval  string `json:"interval"`
		Scheme    string `json:"scheme"`
		TLSConfig *struct {
			CA struct {
				Secret corev1.SecretKeySelector `json:"secret"`
			} `json:"ca"`
		} `json:"tlsConfig,omitempty"`
	} `json:"endpoints"`
}

type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []any `json:"groups"`
	} `json:"spec"`
}

// decode decodes every rendered object into its API type, refusing unknown fields, and
// returns them by "Kind/name".
func decode(t *testing.T, docs []map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, doc := range docs {
		kind, _ := doc["kind"].(string)
		key := fmt.Sprintf("%s/%s", doc["apiVersion"], kind)
		newObj, ok := kinds[key]
		if !ok {
			t.Errorf("the chart renders %s, which the test does not know", key)
			continue
		}
		raw, _ := json.Marshal(doc)
		obj := newObj()
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			name, _ := doc["metadata"].(map[string]any)["name"].(string)
			t.Errorf("%s %s does not decode strictly into its API type: %v", kind, name, err)
			continue
		}
		name := doc["metadata"].(map[string]any)["name"].(string)
		out[kind+"/"+name] = obj
	}
	return out
}

func TestHelmLint(t *testing.T) {
	for _, values := range []string{"", "helm/jetmesh/ci/external-values.yaml", "helm/jetmesh/ci/everything-values.yaml"} {
		args := []string{"lint", "--strict", chart}
		if values != "" {
			args = append(args, "-f", values)
		}
		out := helm(t, args...)
		if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint %s:\n%s", values, out)
		}
	}
}

// TestHelmDefault renders the default chart: a 3-node embedded cluster with access
// control, checked object by object, and against the golden file.
func TestHelmDefault(t *testing.T) {
	docs, out := render(t)
	objs := decode(t, docs)
	golden(t, out, "testdata/helm-default.golden.yaml")

	sts, ok := objs["StatefulSet/jetmesh"].(*appsv1.StatefulSet)
	if !ok {
		t.Fatalf("no StatefulSet jetmesh in %v", slices.Sorted(maps.Keys(objs)))
	}
	if *sts.Spec.Replicas != 3 || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement || len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("StatefulSet: replicas %d, policy %s, %d claim templates", *sts.Spec.Replicas, sts.Spec.PodManagementPolicy, len(sts.Spec.VolumeClaimTemplates))
	}
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	routes := flagValue(c.Args, "--routes")
	if strings.Count(routes, "nats-route://") != 3 || !strings.Contains(routes, "jetmesh-2.jetmesh-headless.jetmesh.svc.cluster.local:6222") {
		t.Errorf("routes %q", routes)
	}
	if c.StartupProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("probes missing")
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("no preStop pause before the drain")
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || pod.SecurityContext.FSGroup == nil {
		t.Errorf("container security context %+v", sc)
	}
	if env := envValue(c.Env, "GOMEMLIMIT"); env != "1843MiB" {
		t.Errorf("GOMEMLIMIT %q, want 90%% of 2Gi", env)
	}
	if len(pod.TopologySpreadConstraints) != 2 {
		t.Errorf("%d topology spread constraints, want hosts and zones", len(pod.TopologySpreadConstraints))
	}
	if pdb, ok := objs["PodDisruptionBudget/jetmesh"].(*policyv1.PodDisruptionBudget); !ok || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %+v", objs["PodDisruptionBudget/jetmesh"])
	}
	for _, svc := range []string{"jetmesh-headless", "jetmesh-nats", "jetmesh-http", "jetmesh-console"} {
		if _, ok := objs["Service/"+svc]; !ok {
			t.Errorf("no Service %s", svc)
		}
	}
	if np, ok := objs["NetworkPolicy/jetmesh"].(*networkingv1.NetworkPolicy); !ok || len(np.Spec.Ingress) != 2 || np.Spec.Ingress[0].Ports[0].Port.String() != "cluster" || len(np.Spec.Ingress[0].From) != 1 {
		t.Errorf("the route port is not limited to the nodes: %+v", objs["NetworkPolicy/jetmesh"])
	}
	if job, ok := objs["Job/jetmesh-admin-secret"].(*batchv1.Job); !ok || job.Annotations["helm.sh/hook"] == "" {
		t.Error("no admin-secret hook Job")
	}
	// The rendered configuration is one the server accepts, with the flags the pods add.
	cfg := serverConfig(t, objs["ConfigMap/jetmesh"].(*corev1.ConfigMap))
	cfg.Name, cfg.Cluster.Name, cfg.Cluster.Listen = "jetmesh-0", "jetmesh", flagValue(c.Args, "--cluster")
	cfg.Cluster.Routes = strings.Split(routes, ",")
	if err := cfg.Validate(); err != nil {
		t.Errorf("the server refuses the chart's configuration: %v", err)
	}
	if !cfg.Auth.Enabled || cfg.Insecure || cfg.Streams.Replicas != 3 {
		t.Errorf("config: auth %v, insecure %v, replicas %d", cfg.Auth.Enabled, cfg.Insecure, cfg.Streams.Replicas)
	}
}

// TestHelmExternal renders the control plane for an existing NATS: a Deployment, no
// volume, no embedded NATS Service.
func TestHelmExternal(t *testing.T) {
	docs, _ := render(t, "helm/jetmesh/ci/external-values.yaml")
	objs := decode(t, docs)
	dep, ok := objs["Deployment/jetmesh"].(*appsv1.Deployment)
	if !ok {
		t.Fatalf("no Deployment in %v", slices.Sorted(maps.Keys(objs)))
	}
	for _, k := range []string{"StatefulSet/jetmesh", "Service/jetmesh-nats", "Service/jetmesh-headless", "Job/jetmesh-admin-secret"} {
		if _, ok := objs[k]; ok {
			t.Errorf("%s rendered in external mode", k)
		}
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if url := envValue(c.Env, "NATS_URL"); strings.Count(url, "nats://") != 3 || flagValue(c.Args, "--nats-url") != "$(NATS_URL)" {
		t.Errorf("NATS_URL %q, args %v", url, c.Args)
	}
	cfg := serverConfig(t, objs["ConfigMap/jetmesh"].(*corev1.ConfigMap))
	cfg.NATSURL = envValue(c.Env, "NATS_URL")
	if err := cfg.Validate(); err != nil {
		t.Errorf("the server refuses the chart's configuration: %v", err)
	}
}

// TestHelmEverything renders every optional object (TLS, ingress, monitoring); the
// PrometheusRule's groups are the alerts file's, which Prometheus's rulefmt accepts.
func TestHelmEverything(t *testing.T) {
	docs, _ := render(t, "helm/jetmesh/ci/everything-values.yaml")
	objs := decode(t, docs)
	for _, k := range []string{"Ingress/jetmesh", "ServiceMonitor/jetmesh", "PrometheusRule/jetmesh", "ConfigMap/jetmesh-dashboard"} {
		if _, ok := objs[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
	rule := objs["PrometheusRule/jetmesh"].(*prometheusRule)
	raw, _ := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if _, errs := rulefmt.Parse(raw, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler)); len(errs) > 0 {
		t.Errorf("the PrometheusRule's groups: %v", errs)
	}
	sts := objs["StatefulSet/jetmesh"].(*appsv1.StatefulSet)
	if p := sts.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet; p.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("with TLS the probes use %s", p.Scheme)
	}
	dash := objs["ConfigMap/jetmesh-dashboard"].(*corev1.ConfigMap)
	if !json.Valid([]byte(dash.Data["jetmesh.json"])) {
		t.Error("the dashboard ConfigMap holds no valid JSON")
	}
	cfg := serverConfig(t, objs["ConfigMap/jetmesh"].(*corev1.ConfigMap))
	if cfg.TLS.Cert != "/etc/jetmesh/tls/tls.crt" || cfg.MonitorAddr != "0.0.0.0:8222" {
		t.Errorf("config TLS %+v, monitor %q", cfg.TLS, cfg.MonitorAddr)
	}
}

// TestHelmSchemaRefusesUnknownValues: values.schema.json refuses a misspelt key and a
// cluster of two nodes.
func TestHelmSchemaRefusesUnknownValues(t *testing.T) {
	for _, set := range []string{"replica=3", "replicas=2", "config.shutdownTimeout=1m"} {
		cmd := exec.Command("go", "tool", "helm", "template", "jetmesh", chart, "--set", set)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "values don't meet the specifications of the schema") {
			t.Errorf("--set %s accepted: %v\n%s", set, err, out)
		}
	}
}

func serverConfig(t *testing.T, cm *corev1.ConfigMap) server.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jetmesh.yaml")
	if err := os.WriteFile(path, []byte(cm.Data["jetmesh.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(path)
	if err != nil {
		t.Fatalf("the server cannot load the chart's configuration: %v\n%s", err, cm.Data["jetmesh.yaml"])
	}
	return cfg
}

func golden(t *testing.T, rendered, path string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(rendered), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./deploy -run HelmDefault -update writes it)", err)
	}
	if rendered != string(want) {
		t.Errorf("the default chart renders differently from %s: if the change is meant, go test ./deploy -run HelmDefault -update", path)
	}
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestHelmValuesDocumented: every value in values.yaml has a row in the chart's README.
func TestHelmValuesDocumented(t *testing.T) {
	raw, err := os.ReadFile(chart + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(chart + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Maps that users fill (labels, annotations, resources) are one value each.
	whole := []string{"resources", "metrics.grafanaDashboard.labels"}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !slices.Contains(whole, key) {
				walk(key+".", sub)
				continue
			}
			if !strings.Contains(string(readme), "| `"+key+"` |") {
				t.Errorf("value %s is not in the chart's README", key)
			}
		}
	}
	walk("", values)
}

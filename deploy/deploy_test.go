// Package deploy holds jetmesh's deployment files; its tests check them offline.
package deploy

import (
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var promql = parser.NewParser(parser.Options{})

// documented reads the metric names docs/metrics.md lists.
func documented(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(jetmesh_[a-z0-9_]+)`").FindAllStringSubmatch(string(raw), -1) {
		names[m[1]] = true
	}
	return names
}

// metricsOf returns the metric names an expression reads, histogram series folded into
// their histogram's name.
func metricsOf(t *testing.T, where, expr string) []string {
	t.Helper()
	parsed, err := promql.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var out []string
	parser.Inspect(parsed, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			name := vs.Name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				name = strings.TrimSuffix(name, suffix)
			}
			out = append(out, name)
		}
		return nil
	})
	return out
}

// checkMetrics fails for a jetmesh metric that docs/metrics.md does not list (the tests
// of the server and the sidecar hold that list to what they export).
func checkMetrics(t *testing.T, where string, names []string, known map[string]bool) {
	t.Helper()
	for _, n := range names {
		if strings.HasPrefix(n, "jetmesh_") && !known[n] {
			t.Errorf("%s reads %s, which docs/metrics.md does not list (not exported?)", where, n)
		}
	}
}

func TestAlertsParseAndUseRealMetrics(t *testing.T) {
	groups, errs := rulefmt.ParseFile("helm/jetmesh/files/alerts.yaml", false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	known := documented(t)
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkMetrics(t, "alert "+r.Alert, metricsOf(t, "alert "+r.Alert, r.Expr), known)
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s needs a summary and a severity", r.Alert)
			}
		}
	}
	// The alerts the issue asks for, by what they watch.
	for _, want := range []string{"JetmeshRuleBacklogGrowing", "JetmeshRuleStalled", "JetmeshRuleAtInFlightCap", "JetmeshDLQGrowing",
		"JetmeshStreamNearLimit", "JetmeshIngressUnavailable", "JetmeshRuleNoSidecar", "JetmeshNodeDown"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

func TestDashboardUsesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("helm/jetmesh/files/jetmesh-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || len(dash.Templating.List) == 0 || dash.Templating.List[0].Type != "datasource" {
		t.Errorf("the dashboard needs a uid and a datasource variable")
	}
	known := documented(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			names := metricsOf(t, "panel "+p.Title, target.Expr)
			checkMetrics(t, "panel "+p.Title, names, known)
			for _, n := range names {
				used[n] = true
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"jetmesh_ingress_entries_total", "jetmesh_delivery_end_to_end_seconds", "jetmesh_rule_pending",
		"jetmesh_rule_ack_pending", "jetmesh_rule_redelivered", "jetmesh_delivery_results_total", "jetmesh_delivery_request_seconds",
		"jetmesh_stream_bytes", "jetmesh_stream_max_bytes", "jetmesh_server_ready"} {
		if !used[want] {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
}

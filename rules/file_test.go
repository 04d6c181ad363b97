package rules_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/rules"
)

func TestParseFileForms(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             []string
	}{
		{"one mapping", "r.yaml", "name: a\npattern: {type: [x.y]}\ntarget: {service: s}\n", []string{"a"}},
		{"a list", "r.yaml", "- name: a\n  pattern: {type: [x.y]}\n  target: {service: s}\n- name: b\n  pattern: {type: [x.z]}\n  target: {service: s}\n", []string{"a", "b"}},
		{"several documents", "r.yaml", "name: a\npattern: {type: [x.y]}\ntarget: {service: s}\n---\n- name: b\n  pattern: {type: [x.z]}\n  target: {service: s}\n---\n", []string{"a", "b"}},
		{"JSON object", "r.json", `{"name":"a","pattern":{"type":["x.y"]},"target":{"service":"s"}}`, []string{"a"}},
		{"JSON list", "r.json", `[{"name":"a","pattern":{"type":["x.y"]},"target":{"service":"s"}},{"name":"b","pattern":{"type":["x.z"]},"target":{"service":"s"}}]`, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := rules.ParseFile(tt.file, []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("names %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDesignExample is the rule file of the design's contract, with every default.
func TestDesignExample(t *testing.T) {
	rs, err := rules.ParseFile("billing.yaml", []byte(`name: billing-big-orders
pattern:
  type: ["orders.created"]
  data:
    amount: [{numeric: [">=", 100]}]
target:
  service: billing
  path: /orders
delivery:
  maxAttempts: 5
  backoff: {initial: 1s, max: 1m, multiplier: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	d := r.Delivery
	if string(r.Pattern) != `{"data":{"amount":[{"numeric":[">=",100]}]},"type":["orders.created"]}` ||
		d.MaxAttempts != 5 || d.Backoff.Initial.Std() != time.Second || d.Backoff.Max.Std() != time.Minute || d.Backoff.Multiplier != 2 ||
		d.Timeout.Std() != rules.DefaultTimeout || d.MaxConcurrency != rules.DefaultMaxConcurrency || d.Ordered || !r.DeadLetters() || r.Target.Path != "/orders" {
		t.Fatalf("rule %+v", r)
	}
	p, err := r.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.MatchJSON([]byte(`{"type":"orders.created","data":{"amount":250}}`)); !ok {
		t.Error("the example pattern does not match a big order")
	}
}

// TestRuleProblems: Validate names every problem, with the rule's place in its file.
func TestRuleProblems(t *testing.T) {
	_, err := rules.ParseFile("bad.yaml", []byte(`
- name: Bad Name
  pattern: {type: orders.created}
  target: {service: "", path: orders}
  delivery:
    maxAttempts: -1
    timeout: 1h
    maxConcurrency: 4
    ordered: true
    backoff: {initial: 10s, max: 1s, multiplier: 0.5}
- name: never
  pattern: {type: [Orders.Created]}
  target: {service: s}
- name: typo
  pattern: {type: [a.b]}
  target: {service: s}
  delivry: {}
- name: nopattern
  target: {service: s}
- name: when
  pattern: {type: [a.b]}
  target: {service: s}
  startTime: yesterday
`))
	if !errors.Is(err, rules.ErrInvalidRule) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{
		`bad.yaml: rule 1: Bad Name: name "Bad Name" must be`,
		`pattern /type: must be an array`,
		`target.service: "" must be`,
		`target.path "orders" must start with /`,
		`delivery.maxAttempts must be between 1 and 1000, got -1`,
		`delivery.timeout must be positive and at most 15m0s, got 1h0m0s`,
		`delivery.ordered delivers one event at a time`,
		`delivery.backoff.max (1s) must be at least backoff.initial (10s)`,
		`delivery.backoff.multiplier must be between 1 and 10, got 0.5`,
		`rule 2: never: pattern can never match`,
		`rule 3: typo: json: unknown field "delivry"`,
		`rule 5: when: startTime "yesterday" is not an RFC 3339 time`,
		`rule 4: nopattern: pattern is required`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "name: a\npattern: {type: [x.y]}\ntarget: {service: s}\n")
	write("b.json", `{"name":"b","pattern":{"type":["x.y"]},"target":{"service":"s"}}`)
	write("README.md", "not a rule")
	rs, err := rules.Load(dir)
	if err != nil || len(rs) != 2 {
		t.Fatalf("load: %v %v", rs, err)
	}
	write("c.yml", "name: a\npattern: {type: [x.z]}\ntarget: {service: s}\n")
	if _, err := rules.Load(dir); err == nil || !strings.Contains(err.Error(), `rule "a" is defined twice`) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := rules.Load(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("missing path: want an error")
	}
}

// TestServiceNameOneLimit: a rule cannot target a service name a sidecar would refuse
// (a 64-character target.service was accepted, --service refused it).
func TestServiceNameOneLimit(t *testing.T) {
	ok := strings.Repeat("s", rules.MaxServiceNameLen)
	for name, want := range map[string]bool{ok: true, ok + "s": false, "billing": true, "Billing": false, "-x": false, "": false} {
		r := rules.Rule{Name: "r", Pattern: []byte(`{"type":["a"]}`), Target: rules.Target{Service: name}}
		r.SetDefaults()
		if err := r.Validate(); (err == nil) != want {
			t.Errorf("target.service %q: %v, want valid %v", name, err, want)
		}
		if err := rules.ValidateServiceName(name); (err == nil) != want {
			t.Errorf("ValidateServiceName(%q): %v", name, err)
		}
	}
}

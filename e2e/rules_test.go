package e2e

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRulesTestPattern is the test-pattern contract: true/false and exit 0, or exit 2
// with the reason; no server needed.
func TestRulesTestPattern(t *testing.T) {
	srv := &serverProc{natsAddr: "127.0.0.1:1"} // nothing listens: the command must not need it
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.json"), `{"data":{"amount":[{"numeric":[">=",100]}]}}`)
	writeFile(t, filepath.Join(dir, "e.json"), `{"data":{"amount":150}}`)
	tests := []struct {
		args     []string
		wantOut  string
		wantCode int
		wantErr  string
	}{
		{[]string{"--pattern", `{"type":["orders.created"]}`, "--event", `{"type":"orders.created"}`}, "true\n", 0, ""},
		{[]string{"--pattern", `{"type":["orders.created"]}`, "--event", `{"type":"orders.updated"}`}, "false\n", 0, ""},
		{[]string{"--pattern", `{"a":[{"exists":false}]}`, "--event", `{}`}, "true\n", 0, ""},
		{[]string{"--pattern-file", filepath.Join(dir, "p.json"), "--event-file", filepath.Join(dir, "e.json")}, "true\n", 0, ""},
		{[]string{"--pattern", `{"a":[{"wildcard":"x**"}]}`, "--event", `{}`}, "", 2, "consecutive *"},
		{[]string{"--pattern", `{"a":[]}`, "--event", `{}`}, "", 2, "pattern /a: an empty array"},
		{[]string{"--pattern", `{"a":[1]}`, "--event", `[1]`}, "", 2, "must be a JSON object"},
		{[]string{"--pattern", `{"a":[1]}`, "--event", `{"a":`}, "", 2, "not JSON"},
		{[]string{"--pattern", `{"a":[1]}`}, "", 2, "--event (JSON) or --event-file is required"},
	}
	for _, tt := range tests {
		out, errOut, code := srv.cli(t, "", append([]string{"rules", "test-pattern"}, tt.args...)...)
		if out != tt.wantOut || code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("%v: out %q exit %d err %q; want %q exit %d err ~%q", tt.args, out, code, errOut, tt.wantOut, tt.wantCode, tt.wantErr)
		}
	}
}

// streamRow is the part of `streams ls -o json` these tests read.
type streamRow struct {
	Name      string `json:"name"`
	Consumers int    `json:"consumers"`
}

// TestRules applies, changes, prunes and removes rules against a running server and
// watches the server keep one consumer per rule.
func TestRules(t *testing.T) {
	srv := startServer(t, t.TempDir())
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	writeFile(t, file, `name: billing-big-orders
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
---
- name: audit
  description: every order event
  pattern: {type: [{prefix: "orders."}]}
  target: {service: audit}
`)
	run := func(args ...string) (string, int) {
		out, errOut, code := srv.cli(t, "", args...)
		return out + errOut, code
	}
	out, code := run("rules", "apply", "-f", file, "--dry-run")
	expect(t, "dry run", code, 0, out, "created   billing-big-orders", "created   audit", "dry run: nothing was written")
	out, code = run("rules", "apply", "-f", file)
	expect(t, "apply", code, 0, out, "created   billing-big-orders", "created   audit")

	type row struct {
		Name           string   `json:"name"`
		FilterSubjects []string `json:"filterSubjects"`
		ConsumerReady  bool     `json:"consumerReady"`
	}
	waitRules := func(what string, ok func([]row) bool) []row {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; {
			out, code := run("rules", "ls", "-o", "json")
			var rows []row
			if code == 0 && json.Unmarshal([]byte(out), &rows) == nil && ok(rows) {
				return rows
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %s", what, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rows := waitRules("both consumers", func(rs []row) bool { return len(rs) == 2 && rs[0].ConsumerReady && rs[1].ConsumerReady })
	if strings.Join(rows[0].FilterSubjects, ",") != "evt.orders.>" || strings.Join(rows[1].FilterSubjects, ",") != "evt.orders.created" {
		t.Errorf("filter subjects: %+v", rows)
	}
	out, code = run("rules", "ls")
	expect(t, "ls", code, 0, out, "billing-big-orders  billing  /orders  evt.orders.created  ready")
	out, code = run("rules", "get", "billing-big-orders")
	expect(t, "get", code, 0, out, "maxAttempts: 5", "maxConcurrency: 16", "'>='", "service: billing")

	out, code = run("rules", "apply", "-f", file)
	expect(t, "apply again", code, 0, out, "unchanged billing-big-orders", "unchanged audit")
	writeFile(t, file, `name: billing-big-orders
pattern: {type: [orders.created, orders.updated]}
target: {service: billing, path: /orders}
delivery: {maxConcurrency: 2}
`)
	out, code = run("rules", "apply", "-f", file, "--prune")
	expect(t, "apply changed with prune", code, 0, out, "updated   billing-big-orders (delivery, pattern)", "deleted   audit")
	waitRules("the update and the prune", func(rs []row) bool {
		return len(rs) == 1 && strings.Join(rs[0].FilterSubjects, ",") == "evt.orders.created,evt.orders.updated"
	})
	// The audit consumer goes with its rule: only billing's (and the id indexer's) remains
	// on EVENTS.
	for deadline := time.Now().Add(15 * time.Second); ; {
		out, _ := run("streams", "ls", "-o", "json")
		var streams []streamRow
		_ = json.Unmarshal([]byte(out), &streams)
		if slices.Contains(streams, streamRow{Name: "EVENTS", Consumers: 2}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit's consumer outlived its rule: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	writeFile(t, filepath.Join(dir, "bad.yaml"), "name: x\npattern: {type: orders.created}\ntarget: {service: s}\n")
	out, code = run("rules", "apply", "-f", filepath.Join(dir, "bad.yaml"))
	expect(t, "invalid file", code, 2, out, "bad.yaml: rule 1: x: pattern /type: must be an array")
	out, code = run("rules", "get", "nope")
	expect(t, "get missing", code, 1, out, "rule not found")
	out, code = run("rules", "rm", "billing-big-orders")
	expect(t, "rm", code, 0, out, "deleted billing-big-orders")
	out, code = run("rules", "rm", "billing-big-orders")
	expect(t, "rm again", code, 1, out, "rule not found")
	out, code = run("rules", "ls")
	expect(t, "ls empty", code, 0, out, "no rules")
}

// TestRuleChangeNeverSkipsUndelivered: the issue's `updated ledger (startTime)` that took
// PENDING from 1 to 0: with the CLI, a later startTime is refused (dry run included) with
// the count of events it would skip, removing startTime keeps the backlog, and --force
// skips only when asked.
func TestRuleChangeNeverSkipsUndelivered(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	file := filepath.Join(t.TempDir(), "ledger.yaml")
	rule := func(start string) {
		r := "name: ledger\npattern: {type: [payments.captured]}\ntarget: {service: ledger}\n"
		if start != "" {
			r += "startTime: " + start + "\n"
		}
		writeFile(t, file, r)
	}
	run := func(args ...string) (string, int) {
		out, errOut, code := srv.cli(t, "", args...)
		return out + errOut, code
	}
	pending := func() int {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			out, _ := run("rules", "ls", "-o", "json")
			var rows []struct {
				ConsumerReady bool `json:"consumerReady"`
				Pending       int  `json:"pending"`
			}
			if json.Unmarshal([]byte(out), &rows) == nil && len(rows) == 1 && rows[0].ConsumerReady {
				return rows[0].Pending
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ledger consumer: %s", out)
			}
		}
	}
	rule(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	out, code := run("rules", "apply", "-f", file)
	expect(t, "create", code, 0, out, "created   ledger")
	pending()
	if out, code := run("publish", "--type", "payments.captured", "--source", "/pay", "--id", "p-1"); code != 0 {
		t.Fatalf("publish: %s", out)
	}
	if n := pending(); n != 1 {
		t.Fatalf("pending %d, want 1", n)
	}

	rule("")
	out, code = run("rules", "apply", "-f", file)
	expect(t, "remove startTime", code, 0, out, "updated   ledger (startTime)")
	time.Sleep(300 * time.Millisecond) // what the reconciler would have done by now
	if n := pending(); n != 1 {
		t.Fatalf("after removing startTime: pending %d, want 1 (the event was skipped)", n)
	}

	rule(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	out, code = run("rules", "apply", "-f", file, "--dry-run")
	expect(t, "dry run of a later start", code, 2, out, "skips 1 undelivered event(s)", "--force")
	out, code = run("rules", "apply", "-f", file)
	expect(t, "apply of a later start", code, 2, out, "skips 1 undelivered event(s)", "nothing was written")
	if n := pending(); n != 1 {
		t.Fatalf("after a refused apply: pending %d, want 1", n)
	}
	out, code = run("rules", "apply", "-f", file, "--force")
	expect(t, "forced", code, 0, out, "updated   ledger", "skipUndelivered")
	for deadline := time.Now().Add(15 * time.Second); pending() != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the forced start did not move the consumer")
		}
	}
}

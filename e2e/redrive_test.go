package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type dlqRow struct {
	Sequence uint64 `json:"sequence"`
	Reason   string `json:"reason"`
	Rule     string `json:"rule"`
	EventID  string `json:"eventId"`
	Previous uint64 `json:"previous"`
	Redrive  *struct {
		State   string    `json:"state"`
		At      time.Time `json:"at"`
		By      string    `json:"by"`
		To      string    `json:"to"`
		Outcome string    `json:"outcome"`
	} `json:"redrive"`
}

func lsDLQ(t *testing.T, srv *serverProc, args ...string) []dlqRow {
	t.Helper()
	out, errOut, code := srv.cli(t, "", append([]string{"dlq", "ls", "-n", "1000", "-o", "json"}, args...)...)
	var rows []dlqRow
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil {
		t.Fatalf("dlq ls: %d %s %s", code, out, errOut)
	}
	return rows
}

// TestRedriveDeliveryFailures: a handler fails until fixed; `dlq redrive --rule billing`
// then delivers exactly the failed events to billing and nothing to the other rule on the
// same type; a redrive killed midway and run again loses none and doubles none; a third
// run finds nothing to do; an event that fails again gets a record naming the first.
func TestRedriveDeliveryFailures(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `name: billing
pattern: {type: [orders.created]}
target: {service: billing}
delivery: {maxAttempts: 1}
---
name: audit
pattern: {type: [orders.created]}
target: {service: audit}
`)
	var fixed atomic.Bool
	billing, billingURL := newRecorder(t)
	billing.answer = func(_, id string, attempt int) int {
		if fixed.Load() && (id != "order-00011" || attempt > 2) { // order 11 fails its redrive too
			return 200
		}
		return 500
	}
	audit, auditURL := newRecorder(t)
	startSidecar(t, srv, "billing", billingURL)
	startSidecar(t, srv, "audit", auditURL)

	ids := publishEvents(t, srv, "order", "orders.created", 12, func(int) string { return `{"n":1}` })
	var failed []dlqRow
	eventually(t, 20*time.Second, "12 failed deliveries dead-lettered", func() bool {
		failed = lsDLQ(t, srv, "--rule", "billing")
		return len(failed) == 12
	})
	eventually(t, 10*time.Second, "audit got every event", func() bool { return audit.distinct() == 12 })
	fixed.Store(true)

	out, errOut, code := srv.cli(t, "", "dlq", "redrive", "--rule", "billing", "--dry-run")
	if code != 0 || strings.Count(out, "would redrive") != 12 || !strings.Contains(errOut, "12 record(s) would be redriven") {
		t.Fatalf("dry run: %d\n%s\n%s", code, out, errOut)
	}
	time.Sleep(500 * time.Millisecond)
	if got := billing.total.Load(); got != 12 {
		t.Fatalf("a dry run delivered: the handler saw %d requests, want the 12 failures", got)
	}

	// Killed halfway: 4 a second over 12 records (3 s), killed once it has marked one.
	p := startProc(t, "redrive", "dlq", "redrive", "--server", srv.natsURL(), "--rule", "billing", "--rate", "4")
	redriven := func() int {
		n := 0
		for _, r := range lsDLQ(t, srv, "--rule", "billing") {
			if r.Redrive != nil {
				n++
			}
		}
		return n
	}
	eventually(t, 15*time.Second, "the redrive under way", func() bool { return redriven() > 0 })
	p.kill()
	redrivenBefore := redriven()
	if redrivenBefore == 0 || redrivenBefore == 12 {
		t.Fatalf("the killed redrive marked %d of 12 records; the test wants it stopped midway\n%s", redrivenBefore, p.log.String())
	}
	// Run again over the same 12 records (order 11 may already have failed again and made a
	// 13th, which the third run below takes).
	var seqs []string
	for _, r := range failed {
		seqs = append(seqs, strconv.FormatUint(r.Sequence, 10))
	}
	out, errOut, code = srv.cli(t, "", "dlq", "redrive", "--seq", strings.Join(seqs, ","), "-o", "json")
	if code != 0 {
		t.Fatalf("redrive after the kill: %d %s %s", code, out, errOut)
	}
	var results []struct {
		Sequence uint64 `json:"sequence"`
		Result   string `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 12 {
		t.Fatalf("redrive -o json: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "every failed event delivered to billing again", func() bool {
		for _, id := range ids {
			if billing.count(id) < 2 {
				return false
			}
		}
		return true
	})
	if h := billing.lastHeader("order-00003"); h.Get("Ce-Jetmeshredrive") == "" {
		t.Errorf("the redriven delivery lacks ce-jetmeshredrive: %v", h)
	}
	// Order 11 failed again: a new record that names the first.
	var rows []dlqRow
	eventually(t, 10*time.Second, "order 11's second failure dead-lettered", func() bool {
		rows = lsDLQ(t, srv, "--rule", "billing")
		return len(rows) == 13
	})
	again := rows[12]
	var first dlqRow
	for _, r := range rows[:12] {
		if r.EventID == "order-00011" {
			first = r
		}
		if r.Redrive == nil || r.Redrive.State != "done" || r.Redrive.By == "" || r.Redrive.To != "rule billing" {
			t.Errorf("record %d does not show its redrive: %+v", r.Sequence, r.Redrive)
		}
	}
	if again.EventID != "order-00011" || again.Previous != first.Sequence || first.Sequence == 0 || again.Redrive != nil {
		t.Errorf("the event failing again: %+v, want a new record of order-00011 naming #%d", again, first.Sequence)
	}

	// A third run redrives that new record only; a fourth finds nothing to do.
	out, errOut, code = srv.cli(t, "", "dlq", "redrive", "--rule", "billing")
	if code != 0 || strings.Count(out, "already redriven") != 12 || !strings.Contains(errOut, "1 redriven to their rule") {
		t.Fatalf("a third run: %d\n%s\n%s", code, out, errOut)
	}
	eventually(t, 10*time.Second, "order 11 delivered at its second redrive", func() bool { return billing.count("order-00011") == 3 })
	out, errOut, code = srv.cli(t, "", "dlq", "redrive", "--rule", "billing")
	if code != 0 || !strings.Contains(errOut, "nothing left to redrive") {
		t.Fatalf("a fourth run: %d\n%s\n%s", code, out, errOut)
	}
	billing.settle(t)
	for _, id := range ids {
		want := 2
		if id == "order-00011" {
			want = 3
		}
		if n := billing.count(id); n != want {
			t.Errorf("billing saw %s %d times, want %d", id, n, want)
		}
		if n := audit.count(id); n != 1 {
			t.Errorf("audit saw %s %d times, want 1: a redrive reaches its rule only", id, n)
		}
	}
	if out, _, _ := srv.cli(t, "", "dlq", "show", "1"); !strings.Contains(out, "Redriven") {
		t.Errorf("dlq show does not say the record was redriven:\n%s", out)
	}
}

// TestRedriveIngressRejection: an event rejected for an unknown type is accepted when
// redriven after `schemas push` registers the type, keeps its id and reaches the rule.
func TestRedriveIngressRejection(t *testing.T) {
	srv := startServer(t, t.TempDir())
	applyRules(t, srv, "name: shipping\npattern: {type: [shipments.sent]}\ntarget: {service: shipping}\n")
	rec, url := newRecorder(t)
	startSidecar(t, srv, "shipping", url)

	out, errOut, code := srv.cli(t, "", "publish", "--type", "shipments.sent", "--source", "/e2e", "--id", "ship-1", "--data", `{"parcel":"p-1"}`)
	if code != 2 || !strings.Contains(errOut, "unknown_type") {
		t.Fatalf("publish of an unknown type: %d %s %s", code, out, errOut)
	}
	out, errOut, code = srv.cli(t, "", "dlq", "redrive", "--reason", "unknown_type")
	if code != 0 || !strings.Contains(out, "rejected again") {
		t.Fatalf("redrive before the fix: %d\n%s\n%s", code, out, errOut)
	}
	rows := lsDLQ(t, srv, "--reason", "unknown_type")
	if len(rows) != 2 || rows[1].Previous != rows[0].Sequence {
		t.Fatalf("rejected again: want a second record naming the first, got %+v", rows)
	}

	catalog := t.TempDir()
	if err := os.MkdirAll(filepath.Join(catalog, "shipments.sent"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(catalog, "shipments.sent", "v1.json"), `{"type":"object","properties":{"parcel":{"type":"string"}},"required":["parcel"]}`)
	if out, errOut, code := srv.cli(t, "", "schemas", "push", catalog); code != 0 {
		t.Fatalf("push: %d %s %s", code, out, errOut)
	}
	eventually(t, 10*time.Second, "the pushed schema in force", func() bool {
		_, _, code := srv.cli(t, "", "publish", "--type", "shipments.sent", "--source", "/e2e", "--id", "probe", "--data", `{"parcel":"p-0"}`)
		return code == 0
	})
	// The second record is the one left to redrive.
	out, errOut, code = srv.cli(t, "", "dlq", "redrive", "--seq", strconv.FormatUint(rows[1].Sequence, 10))
	if code != 0 || !strings.Contains(out, "accepted") {
		t.Fatalf("redrive after the fix: %d\n%s\n%s", code, out, errOut)
	}
	eventually(t, 10*time.Second, "the accepted event delivered", func() bool { return rec.count("ship-1") == 1 })
	out, errOut, code = srv.cli(t, "", "dlq", "redrive", "--reason", "unknown_type")
	if code != 0 || !strings.Contains(errOut, "nothing left to redrive") {
		t.Fatalf("a second run: %d\n%s\n%s", code, out, errOut)
	}
}

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type ruleState struct {
	Rule        string `json:"rule"`
	State       string `json:"state"`
	Detail      string `json:"detail"`
	Attempt     int    `json:"attempt"`
	DLQSequence uint64 `json:"dlqSequence"`
}

type foundEvent struct {
	Sequence  uint64              `json:"sequence"`
	Subject   string              `json:"subject"`
	Stored    time.Time           `json:"stored"`
	Header    map[string][]string `json:"header"`
	Data      string              `json:"data"`
	Principal string              `json:"principal"`
	Rules     []ruleState         `json:"rules"`
}

func getEvent(t *testing.T, srv *serverProc, args ...string) foundEvent {
	t.Helper()
	out, errOut, code := srv.cli(t, "", append([]string{"events", "get", "-o", "json"}, args...)...)
	var found []foundEvent
	if code != 0 || json.Unmarshal([]byte(out), &found) != nil || len(found) != 1 {
		t.Fatalf("events get %v: %d %s %s", args, code, out, errOut)
	}
	return found[0]
}

func stateOf(e foundEvent, rule string) ruleState {
	for _, r := range e.Rules {
		if r.Rule == rule {
			return r
		}
	}
	return ruleState{State: "(rule not listed)"}
}

// TestEventsGetAndStatus: `events get` tells delivered, dead-lettered (with the DLQ
// record), retrying (with the attempt) and waiting behind a pause, per rule; exits 1 for an
// unknown id; `status -o json` has every field the issue lists and names the rule with a
// backlog and no sidecar.
func TestEventsGetAndStatus(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `name: billing
pattern: {type: [orders.created]}
target: {service: billing}
---
name: slow
pattern: {type: [orders.created]}
target: {service: slow}
delivery: {maxAttempts: 5, backoff: {initial: 60s, max: 120s}}
---
name: ledger
pattern: {type: [orders.created]}
target: {service: ledger}
---
name: orphan
pattern: {type: [orders.created]}
target: {service: nobody}
---
name: shipping
pattern: {type: [shipments.sent]}
target: {service: billing}
`)
	billing, billingURL := newRecorder(t)
	billing.answer = func(_, id string, _ int) int {
		if id == "order-bad" {
			return 422
		}
		return 200
	}
	slow, slowURL := newRecorder(t)
	slow.answer = func(_, id string, _ int) int {
		if id == "order-retry" {
			return 503
		}
		return 200
	}
	ledger, ledgerURL := newRecorder(t)
	startSidecar(t, srv, "billing", billingURL)
	startSidecar(t, srv, "slow", slowURL)
	startSidecar(t, srv, "ledger", ledgerURL)
	if out, errOut, code := srv.cli(t, "", "rules", "pause", "ledger"); code != 0 {
		t.Fatalf("pause: %d %s %s", code, out, errOut)
	}
	for _, id := range []string{"order-ok", "order-bad", "order-retry"} {
		if out, errOut, code := srv.cli(t, "", "publish", "--type", "orders.created", "--source", "/e2e", "--id", id, "--data", `{"n":1}`); code != 0 {
			t.Fatalf("publish %s: %d %s %s", id, code, out, errOut)
		}
	}
	eventually(t, 10*time.Second, "the deliveries made", func() bool {
		return billing.distinct() == 3 && slow.count("order-retry") == 1 && slow.count("order-ok") == 1
	})

	var bad foundEvent
	eventually(t, 10*time.Second, "order-bad dead-lettered for billing", func() bool {
		bad = getEvent(t, srv, "order-bad")
		return stateOf(bad, "billing").State == "dead_lettered"
	})
	if bad.Sequence == 0 || bad.Subject != "evt.orders.created" || bad.Data != `{"n":1}` || bad.Stored.IsZero() || len(bad.Header["ce-source"]) == 0 {
		t.Errorf("the event itself: %+v", bad)
	}
	if st := stateOf(bad, "billing"); st.DLQSequence == 0 || !strings.Contains(st.Detail, "delivery_rejected") {
		t.Errorf("billing's state of order-bad: %+v", st)
	}
	if st := stateOf(bad, "ledger"); st.State != "paused" {
		t.Errorf("ledger's state of order-bad: %+v, want paused", st)
	}
	if st := stateOf(bad, "orphan"); st.State != "waiting" {
		t.Errorf("orphan's state of order-bad: %+v, want waiting", st)
	}
	if st := stateOf(bad, "shipping"); st.State != "(rule not listed)" {
		t.Errorf("a rule the event does not match is listed: %+v", st)
	}
	var retry foundEvent
	eventually(t, 10*time.Second, "order-retry noted as retrying", func() bool {
		retry = getEvent(t, srv, "order-retry", "--type", "orders.created", "--since", "10m")
		return stateOf(retry, "slow").State == "retrying"
	})
	if st := stateOf(retry, "slow"); st.Attempt != 1 || !strings.Contains(st.Detail, "503") {
		t.Errorf("slow's state of order-retry: %+v, want attempt 1 answered 503", st)
	}
	eventually(t, 10*time.Second, "order-ok delivered for billing and slow", func() bool {
		ok := getEvent(t, srv, "order-ok")
		return stateOf(ok, "billing").State == "delivered" && stateOf(ok, "slow").State == "delivered"
	})
	if got := ledger.total.Load(); got != 0 {
		t.Errorf("the paused rule's handler got %d requests", got)
	}
	out, _, _ := srv.cli(t, "", "events", "get", "order-bad")
	for _, want := range []string{"dead_lettered", "paused", "Data:", "ce-type"} {
		if !strings.Contains(out, want) {
			t.Errorf("events get text lacks %q:\n%s", want, out)
		}
	}
	if _, errOut, code := srv.cli(t, "", "events", "get", "no-such-id"); code != 1 || !strings.Contains(errOut, `no stored event has id "no-such-id"`) {
		t.Errorf("an unknown id: %d %s", code, errOut)
	}
	if _, errOut, code := srv.cli(t, "", "events", "get", "order-ok", "--type", "orders.shipped"); code != 1 || !strings.Contains(errOut, "of type orders.shipped") {
		t.Errorf("the id under another type: %d %s", code, errOut)
	}

	// status: every field, and the problems an operator must see.
	var rep map[string]any
	eventually(t, 15*time.Second, "status with the sidecars and the ingress counts", func() bool {
		out, _, code := srv.cli(t, "", "status", "-o", "json")
		rep = nil
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
			return false
		}
		ing, _ := rep["ingress"].(map[string]any)
		svcs, _ := rep["services"].([]any)
		// Each sidecar reports its rules' last minute in its own heartbeat.
		delivered, failed := false, false
		for _, r := range rep["rules"].([]any) {
			r := r.(map[string]any)
			delivered = delivered || r["name"] == "billing" && r["deliveredPerMinute"].(float64) > 0 && r["handlerP99Ns"].(float64) > 0
			failed = failed || r["name"] == "slow" && r["errorsPerMinute"].(float64) > 0
		}
		return ing != nil && ing["acceptedPerMinute"].(float64) >= 3 && len(svcs) == 3 && delivered && failed
	})
	need := map[string][]string{
		"nodes":   {"name", "version", "since", "ready", "ingressPerMinute"},
		"streams": {"name", "messages", "bytes", "maxBytes", "bytesPercent", "maxAgeNs", "oldestAgeNs", "agePercent", "leader", "replicas"},
		"rules": {"name", "service", "pending", "inFlight", "redelivered", "deadLetteredLastHour", "paused", "oldestUndeliveredNs", "sidecars",
			"deliveredPerMinute", "errorsPerMinute", "handlerP50Ns", "handlerP99Ns"},
		"services": {"name", "sidecars", "ready", "since", "versions"},
	}
	for section, fields := range need {
		items, _ := rep[section].([]any)
		if len(items) == 0 {
			t.Errorf("status has no %s", section)
			continue
		}
		for _, f := range fields {
			if _, ok := items[0].(map[string]any)[f]; !ok {
				t.Errorf("status %s lack %q: %v", section, f, items[0])
			}
		}
	}
	ing := rep["ingress"].(map[string]any)
	for _, f := range []string{"acceptedPerMinute", "rejectedPerMinute", "rejectedByReason"} {
		if _, ok := ing[f]; !ok {
			t.Errorf("status ingress lacks %q", f)
		}
	}
	d := rep["dlq"].(map[string]any)
	if byReason, _ := d["byReason"].(map[string]any); byReason["delivery_rejected"] != float64(1) {
		t.Errorf("status dlq: %v, want delivery_rejected 1", d)
	}
	rules := map[string]map[string]any{}
	for _, r := range rep["rules"].([]any) {
		rules[r.(map[string]any)["name"].(string)] = r.(map[string]any)
	}
	if r := rules["ledger"]; r["paused"] != true || r["pending"] != float64(3) || r["oldestUndeliveredNs"].(float64) <= 0 || r["sidecars"] != float64(1) {
		t.Errorf("status of the paused rule: %v", r)
	}
	if r := rules["billing"]; r["deadLetteredLastHour"] != float64(1) {
		t.Errorf("status of billing: %v, want 1 dead-lettered in the last hour", r)
	}
	if r := rules["slow"]; r["inFlight"] != float64(1) || r["errorsPerMinute"].(float64) <= 0 {
		t.Errorf("status of slow: %v, want the retried event in flight", r)
	}
	problems, _ := json.Marshal(rep["problems"])
	if !strings.Contains(string(problems), "rule orphan: 3 event(s) waiting and no sidecar of nobody") {
		t.Errorf("status problems %s, want the rule with a backlog and no sidecar", problems)
	}
	out, _, code := srv.cli(t, "", "status")
	if code != 0 || !strings.Contains(out, "PROBLEMS") || !strings.Contains(out, "ledger") {
		t.Errorf("status text:\n%s", out)
	}
}

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPauseResume: once `rules pause` returns, no event reaches the handler while events
// are published (no attempt spent, the backlog kept), the pause shows in `rules ls` and
// survives a server restart and a rule change, and `rules resume` delivers every event.
func TestPauseResume(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: ledger\npattern: {type: [payments.captured]}\ntarget: {service: ledger}\ndelivery: {maxAttempts: 1}\n")
	rec, url := newRecorder(t)
	startSidecar(t, srv, "ledger", url)
	publishEvents(t, srv, "live", "payments.captured", 5, func(int) string { return "{}" })
	eventually(t, 10*time.Second, "live events delivered", func() bool { return rec.distinct() == 5 })

	out, errOut, code := srv.cli(t, "", "rules", "pause", "ledger")
	if code != 0 || !strings.Contains(out, "paused ledger until resumed") {
		t.Fatalf("pause: %d %s %s", code, out, errOut)
	}
	ids := publishEvents(t, srv, "held", "payments.captured", 20, func(int) string { return "{}" })
	time.Sleep(time.Second) // time for a delivery to show up, were there one
	if got := rec.total.Load(); got != 5 {
		t.Fatalf("%d requests reached the handler while paused, want the 5 from before", got)
	}
	type row struct {
		Name        string     `json:"name"`
		Pending     uint64     `json:"pending"`
		PausedUntil *time.Time `json:"pausedUntil"`
	}
	lsRules := func() row {
		t.Helper()
		out, _, code := srv.cli(t, "", "rules", "ls", "-o", "json")
		var rows []row
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 {
			t.Fatalf("rules ls: %d %s", code, out)
		}
		return rows[0]
	}
	if r := lsRules(); r.PausedUntil == nil || r.Pending != 20 {
		t.Fatalf("rules ls while paused: %+v, want paused with 20 pending", r)
	}
	if out, _, _ := srv.cli(t, "", "rules", "ls"); !strings.Contains(out, "paused until resumed") {
		t.Errorf("rules ls does not show the pause:\n%s", out)
	}

	// A rule change (the reconciler updates the consumer) and a restart keep the pause.
	applyRules(t, srv, "name: ledger\npattern: {type: [payments.captured]}\ntarget: {service: ledger}\ndelivery: {maxAttempts: 2}\n")
	srv.kill()
	srv = srv.restart(anyType)
	time.Sleep(time.Second)
	if r := lsRules(); r.PausedUntil == nil || r.Pending != 20 {
		t.Fatalf("after a rule change and a restart: %+v, want still paused with 20 pending", r)
	}
	if got := rec.total.Load(); got != 5 {
		t.Fatalf("%d requests reached the handler while paused across the restart", got)
	}

	if out, errOut, code := srv.cli(t, "", "rules", "resume", "ledger"); code != 0 {
		t.Fatalf("resume: %d %s %s", code, out, errOut)
	}
	eventually(t, 20*time.Second, "the held events delivered after resume", func() bool { return rec.distinct() == 25 })
	for _, id := range ids {
		if n := rec.count(id); n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if _, errOut, code := srv.cli(t, "", "rules", "pause", "nope"); code != 1 || !strings.Contains(errOut, "rule not found") {
		t.Errorf("pausing an unknown rule: %d %s", code, errOut)
	}
	if _, errOut, code := srv.cli(t, "", "rules", "pause", "ledger", "--until", "yesterday"); code != 2 || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("a bad --until: %d %s", code, errOut)
	}
}

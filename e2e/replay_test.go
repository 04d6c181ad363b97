package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReplay: a replay of a 10,000-event window at 500/s is paced within ±10%, reaches
// its rule only, carries the jetmeshreplay marker, lets live events through while it
// runs, and finishes after a server restart in the middle without losing a copy.
func TestReplay(t *testing.T) {
	const n, rate = 10000, 500
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `name: billing
pattern: {type: [orders.created]}
target: {service: billing}
delivery: {maxConcurrency: 64}
---
name: audit
pattern: {type: [orders.created]}
target: {service: audit}
`)
	var (
		mu       sync.Mutex
		replayed = map[string]int{} // id → replayed deliveries
		markers  = map[string]bool{}
		count    atomic.Int64
	)
	billing, billingURL := newRecorder(t)
	billing.hook = func(h http.Header) {
		if m := h.Get("Ce-Jetmeshreplay"); m != "" {
			mu.Lock()
			replayed[h.Get("Ce-Id")]++
			markers[m] = true
			mu.Unlock()
			count.Add(1)
		}
	}
	var auditReplays atomic.Int64
	audit, auditURL := newRecorder(t)
	audit.hook = func(h http.Header) {
		if h.Get("Ce-Jetmeshreplay") != "" {
			auditReplays.Add(1)
		}
	}
	startSidecar(t, srv, "billing", billingURL)
	startSidecar(t, srv, "audit", auditURL)

	from := time.Now().Add(-time.Second)
	publishEvents(t, srv, "old", "orders.created", n, func(int) string { return `{"n":1}` })
	to := time.Now().Add(time.Second)
	eventually(t, 60*time.Second, "the window delivered live to both rules", func() bool {
		return billing.distinct() == n && audit.distinct() == n
	})
	time.Sleep(time.Second) // an event after the window's end, so it is not part of it
	out, errOut, code := srv.cli(t, "", "replay", "start", "--rule", "billing", "--from", from.Format(time.RFC3339Nano),
		"--to", to.Format(time.RFC3339Nano), "--rate", "500", "-o", "json")
	var started struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &started) != nil || started.ID == "" {
		t.Fatalf("replay start: %d %s %s", code, out, errOut)
	}

	// Pace, measured at the handler between the 1,000th and the 3,500th replayed delivery.
	eventually(t, 30*time.Second, "1,000 replayed deliveries", func() bool { return count.Load() >= 1000 })
	c1, t1 := count.Load(), time.Now()
	// Live traffic goes through while the replay runs.
	liveIDs := publishEvents(t, srv, "live", "orders.created", 20, func(int) string { return `{"n":2}` })
	published := time.Now()
	eventually(t, 5*time.Second, "live events delivered during the replay", func() bool {
		for _, id := range liveIDs {
			if billing.count(id) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("live events delivered %v after publishing, during the replay", time.Since(published).Round(time.Millisecond))
	eventually(t, 30*time.Second, "3,500 replayed deliveries", func() bool { return count.Load() >= 3500 })
	c2, t2 := count.Load(), time.Now()
	measured := float64(c2-c1) / t2.Sub(t1).Seconds()
	t.Logf("replay pace %.1f/s (asked %d/s)", measured, rate)
	if measured < rate*0.9 || measured > rate*1.1 {
		t.Errorf("replay paced at %.1f/s, want %d/s ±10%%", measured, rate)
	}

	out, _, _ = srv.cli(t, "", "replay", "ls")
	if !strings.Contains(out, started.ID) || !strings.Contains(out, "running") || !strings.Contains(out, "/10000") {
		t.Errorf("replay ls while running:\n%s", out)
	}

	srv.kill()
	srv = srv.restart(anyType)
	eventually(t, 60*time.Second, "every event of the window replayed after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(replayed) == n
	})
	type lsRow struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Total    uint64 `json:"total"`
		Scanned  uint64 `json:"scanned"`
		Replayed uint64 `json:"replayed"`
	}
	var rows []lsRow
	eventually(t, 10*time.Second, "the replay done", func() bool {
		out, _, code := srv.cli(t, "", "replay", "ls", "-o", "json")
		return code == 0 && json.Unmarshal([]byte(out), &rows) == nil && len(rows) == 1 && rows[0].State == "done"
	})
	if r := rows[0]; r.Total != n || r.Scanned != n || r.Replayed != n {
		t.Errorf("replay ls after the end: %+v, want %d of each", r, n)
	}
	billing.settle(t)
	mu.Lock()
	extra := 0
	for id, k := range replayed {
		if !strings.HasPrefix(id, "old-") {
			t.Errorf("%s replayed, outside the window", id)
		}
		extra += k - 1
	}
	if len(markers) != 1 || !markers[started.ID] {
		t.Errorf("replay markers seen %v, want only %s", markers, started.ID)
	}
	mu.Unlock()
	// At least once: a delivery in flight when the server was killed may come again.
	t.Logf("%d replayed deliveries came twice across the restart", extra)
	if extra > 200 {
		t.Errorf("%d replayed deliveries came twice: more than the in-flight window", extra)
	}
	if got := auditReplays.Load(); got != 0 {
		t.Errorf("audit got %d replayed deliveries; a replay reaches its rule only", got)
	}

	if _, errOut, code := srv.cli(t, "", "replay", "cancel", started.ID); code != 1 || !strings.Contains(errOut, "finished already") {
		t.Errorf("cancelling a finished replay: %d %s", code, errOut)
	}
	if _, errOut, code := srv.cli(t, "", "replay", "start", "--rule", "nope", "--from", "1h"); code != 1 || !strings.Contains(errOut, "rule not found") {
		t.Errorf("a replay of an unknown rule: %d %s", code, errOut)
	}
	if _, errOut, code := srv.cli(t, "", "replay", "start", "--rule", "billing", "--from", "yesterday"); code != 2 || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("a bad --from: %d %s", code, errOut)
	}
}

// TestReplayWaitAndCancel: --wait returns once the replayed events were answered; a
// running replay can be cancelled and stops.
func TestReplayWaitAndCancel(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: billing\npattern: {type: [orders.created]}\ntarget: {service: billing}\n")
	rec, url := newRecorder(t)
	var replays atomic.Int64
	rec.hook = func(h http.Header) {
		if h.Get("Ce-Jetmeshreplay") != "" {
			replays.Add(1)
		}
	}
	startSidecar(t, srv, "billing", url)
	publishEvents(t, srv, "old", "orders.created", 300, func(int) string { return `{}` })
	eventually(t, 20*time.Second, "live deliveries", func() bool { return rec.distinct() == 300 })

	out, errOut, code := srv.cli(t, "", "replay", "start", "--rule", "billing", "--from", "1m", "--wait")
	if code != 0 || !strings.Contains(out, "300 event(s) replayed") {
		t.Fatalf("replay --wait: %d %s %s", code, out, errOut)
	}
	if got := replays.Load(); got != 300 {
		t.Errorf("--wait returned with %d of 300 replayed deliveries answered", got)
	}

	out, errOut, code = srv.cli(t, "", "replay", "start", "--rule", "billing", "--from", "1m", "--rate", "20", "-o", "json")
	var started struct {
		ID string `json:"id"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &started) != nil {
		t.Fatalf("replay start: %d %s %s", code, out, errOut)
	}
	time.Sleep(time.Second)
	if out, errOut, code := srv.cli(t, "", "replay", "cancel", started.ID); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %d %s %s", code, out, errOut)
	}
	time.Sleep(time.Second)
	after := replays.Load()
	time.Sleep(time.Second)
	if got := replays.Load(); got != after || got > 300+60 {
		t.Errorf("a cancelled replay went on: %d then %d replayed deliveries", after, got)
	}
}

package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDelayedEvents: an event with deliverat is accepted (stored) at once and reaches the
// rule no earlier than its time, also across a kill -9 and restart of the server; a time
// in the past means now; a malformed one is refused.
func TestDelayedEvents(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: reminders\npattern: {type: [reminder.due]}\ntarget: {service: reminders}\n")
	var (
		mu      sync.Mutex
		arrived = map[string]time.Time{}
	)
	rec, url := newRecorder(t)
	rec.hook = func(h http.Header) {
		mu.Lock()
		arrived[h.Get("Ce-Id")] = time.Now()
		mu.Unlock()
	}
	startSidecar(t, srv, "reminders", url)
	when := func(id string) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		at, ok := arrived[id]
		return at, ok
	}

	due := time.Now().Add(3 * time.Second)
	if out, errOut, code := srv.cli(t, "", "publish", "--type", "reminder.due", "--source", "/e2e", "--id", "soon",
		"--deliver-at", due.UTC().Format(time.RFC3339Nano), "--data", "{}"); code != 0 {
		t.Fatalf("publish --deliver-at: %d %s %s", code, out, errOut)
	}
	if st := stateOf(getEvent(t, srv, "soon"), "reminders"); st.State != "scheduled" || !strings.Contains(st.Detail, "no earlier than") {
		t.Errorf("events get of a delayed event before its time: %+v", st)
	}
	if out, errOut, code := srv.cli(t, "", "publish", "--type", "reminder.due", "--source", "/e2e", "--id", "past",
		"--deliver-at", "2020-01-01T00:00:00Z", "--data", "{}"); code != 0 {
		t.Fatalf("publish with a past time: %d %s %s", code, out, errOut)
	}
	eventually(t, 5*time.Second, "the event due in the past delivered at once", func() bool { _, ok := when("past"); return ok })
	eventually(t, 10*time.Second, "the delayed event delivered", func() bool { _, ok := when("soon"); return ok })
	at, _ := when("soon")
	if at.Before(due) {
		t.Errorf("delivered %v before its time", due.Sub(at))
	}
	t.Logf("delivered %v after its time", at.Sub(due).Round(time.Millisecond))

	// Across a kill -9 of the server: stored, then delivered on time after the restart.
	due = time.Now().Add(6 * time.Second)
	if out, errOut, code := srv.cli(t, "", "publish", "--type", "reminder.due", "--source", "/e2e", "--id", "later",
		"--delay", "6s", "--data", "{}"); code != 0 {
		t.Fatalf("publish --delay: %d %s %s", code, out, errOut)
	}
	srv.kill()
	srv = srv.restart(anyType)
	eventually(t, 20*time.Second, "the delayed event delivered after the restart", func() bool { _, ok := when("later"); return ok })
	if at, _ := when("later"); at.Before(due.Add(-50 * time.Millisecond)) {
		t.Errorf("delivered %v before its time", due.Sub(at))
	}
	if n := rec.count("later"); n != 1 {
		t.Errorf("the delayed event was delivered %d times", n)
	}

	if _, errOut, code := srv.cli(t, "", "publish", "--type", "reminder.due", "--source", "/e2e", "--deliver-at", "tomorrow"); code != 2 || !strings.Contains(errOut, "deliverat") {
		t.Errorf("a malformed deliverat: %d %s", code, errOut)
	}
}

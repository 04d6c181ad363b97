package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestRateLimitAcrossReplicas: a rule's rateLimit holds for the service as a whole, with
// two sidecar replicas sharing it: measured at the handler, within ±5%.
func TestRateLimitAcrossReplicas(t *testing.T) {
	const limit, n = 200.0, 2600
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: mailer\npattern: {type: [mail.send]}\ntarget: {service: mailer}\ndelivery: {rateLimit: 200/s, maxConcurrency: 32}\n")
	var (
		mu    sync.Mutex
		times []time.Time
	)
	rec, url := newRecorder(t)
	rec.hook = func(http.Header) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	}
	startSidecar(t, srv, "mailer", url)
	startSidecar(t, srv, "mailer", url)
	// Each replica learns of the other from the heartbeats (every 5 s), and says so in its own.
	waitReplicas(t, srv, "mailer", 2)
	publishEvents(t, srv, "job", "mail.send", n, func(int) string { return "{}" })
	eventually(t, 60*time.Second, "every job delivered", func() bool { return rec.distinct() == n })
	mu.Lock()
	defer mu.Unlock()
	// The steady rate, between the 300th and the 2,300th delivery.
	got := 2000 / times[2300].Sub(times[300]).Seconds()
	t.Logf("delivered at %.1f/s across two replicas (limit %.0f/s)", got, limit)
	if got < limit*0.95 || got > limit*1.05 {
		t.Errorf("delivered at %.1f/s, want %.0f/s ±5%%", got, limit)
	}
}

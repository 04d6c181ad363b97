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
	// The steady rate from the 300th delivery on: the least-squares slope of deliveries
	// over time. Two arrival times alone can be off by a stall of this (handler) process
	// on a loaded machine, which bunches arrivals; the slope over 2,300 of them is not.
	got := slope(times[300:])
	t.Logf("delivered at %.1f/s across two replicas (limit %.0f/s); from two arrival times alone %.1f/s",
		got, limit, float64(n-301)/times[n-1].Sub(times[300]).Seconds())
	if got < limit*0.95 || got > limit*1.05 {
		t.Errorf("delivered at %.1f/s, want %.0f/s ±5%%", got, limit)
	}
}

// slope is the least-squares rate of arrivals: the fit of arrival index against time, in
// arrivals per second.
func slope(times []time.Time) float64 {
	var sx, sy, sxx, sxy float64
	for i, at := range times {
		x, y := at.Sub(times[0]).Seconds(), float64(i)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	k := float64(len(times))
	return (k*sxy - sx*sy) / (k*sxx - sx*sx)
}

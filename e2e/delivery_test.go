package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/dlq"
)

// sidecarProc is a `jetmesh sidecar` process.
type sidecarProc struct {
	proc
	listen string
}

// startSidecar runs `jetmesh sidecar` for service against srv and waits for /readyz.
func startSidecar(t *testing.T, srv *serverProc, service, handler string, extra ...string) *sidecarProc {
	t.Helper()
	listen := freeAddr(t)
	args := append([]string{"sidecar", "--server", srv.natsURL(), "--service", service, "--handler", handler, "--listen", listen}, extra...)
	p := &sidecarProc{proc: startProc(t, "sidecar", args...), listen: listen}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://" + p.listen + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("sidecar not ready: %s\n%s", body, p.log)
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("sidecar exited: %v\n%s", err, p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar not ready in 20s:\n%s", p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder is a service's event handler: it counts what it receives and how many
// requests it holds at once, and answers as fail says.
type recorder struct {
	mu       sync.Mutex
	seen     map[string]int
	first    map[string]http.Header
	last     map[string]http.Header
	bodies   map[string]string
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	total    atomic.Int64
	delay    time.Duration
	// answer picks the status for a request; nil answers 200.
	answer func(path, id string, attempt int) int
	// hook, when set, sees every request's headers as it arrives.
	hook func(http.Header)
}

func newRecorder(t *testing.T) (*recorder, string) {
	r := blankRecorder()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func blankRecorder() *recorder {
	return &recorder{seen: map[string]int{}, first: map[string]http.Header{}, last: map[string]http.Header{}, bodies: map[string]string{}}
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for m := r.maxSeen.Load(); n > m && !r.maxSeen.CompareAndSwap(m, n); m = r.maxSeen.Load() {
	}
	body, _ := io.ReadAll(req.Body)
	if r.hook != nil {
		r.hook(req.Header)
	}
	id := req.Header.Get("Ce-Id")
	r.mu.Lock()
	r.seen[id]++
	attempt := r.seen[id]
	if attempt == 1 {
		r.first[id] = req.Header.Clone()
		r.bodies[id] = string(body)
	}
	r.last[id] = req.Header.Clone()
	r.mu.Unlock()
	r.total.Add(1)
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	status := 200
	if r.answer != nil {
		status = r.answer(req.URL.Path, id, attempt)
	}
	w.WriteHeader(status)
}

// settle waits until no request is in the handler and none arrived for 200ms: with no
// sender left, everything already sent has then been recorded.
func (r *recorder) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for last := r.total.Load(); ; {
		time.Sleep(200 * time.Millisecond)
		now := r.total.Load()
		if now == last && r.inFlight.Load() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handler kept receiving requests 10s after their sender stopped")
		}
		last = now
	}
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id]
}

// lastHeader returns the headers of the latest request for id.
func (r *recorder) lastHeader(id string) http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[id]
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *recorder) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// applyRules writes yaml to a file and applies it.
func applyRules(t *testing.T, srv *serverProc, yaml string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := srv.cli(t, "", "rules", "apply", "-f", file); code != 0 {
		t.Fatalf("rules apply: %d %s %s", code, out, errOut)
	}
}

// publishEvents posts n events of type typ in batches of 250 and returns their ids.
func publishEvents(t *testing.T, srv *serverProc, prefix, typ string, n int, data func(i int) string) []string {
	t.Helper()
	var ids []string
	for start := 0; start < n; start += 250 {
		var entries []string
		for i := start; i < min(start+250, n); i++ {
			id := fmt.Sprintf("%s-%05d", prefix, i)
			entries = append(entries, ce(id, typ, data(i)))
			ids = append(ids, id)
		}
		code, r, err := post(t, srv.httpURL(), "application/cloudevents-batch+json", nil, "["+strings.Join(entries, ",")+"]")
		if err != nil || code != 200 {
			t.Fatalf("publish: %d %+v %v", code, r, err)
		}
	}
	return ids
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// dlqRecords reads every DLQ record of a rule.
func dlqRecords(t *testing.T, srv *serverProc, rule string) []*dlq.Record {
	t.Helper()
	var out []*dlq.Record
	for _, m := range readStream(t, srv.natsURL(), "DLQ") {
		rec, err := dlq.Parse(m.Headers(), m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if rec.Rule == rule {
			out = append(out, rec)
		}
	}
	return out
}

// TestDeliveryRoutesEvents: each published event reaches exactly the services whose rules
// match it, in CloudEvents binary mode, and nothing else reaches them.
func TestDeliveryRoutesEvents(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `
name: billing-big-orders
pattern: {type: [orders.created], data: {total: [{numeric: [">=", 100]}]}}
target: {service: billing, path: /events/orders}
---
name: shipping-orders
pattern: {type: [{prefix: "orders."}], source: [{anything-but: "/test-data"}]}
target: {service: shipping}
`)
	billing, billingURL := newRecorder(t)
	shipping, shippingURL := newRecorder(t)
	startSidecar(t, srv, "billing", billingURL)
	startSidecar(t, srv, "shipping", shippingURL)

	want := map[string][2]bool{} // id → delivered to billing, to shipping
	for i := range 40 {
		id := fmt.Sprintf("o-%d", i)
		typ := []string{"orders.created", "orders.cancelled", "payments.captured", "orders.created"}[i%4]
		total := i * 10
		source := "/shop"
		if i%5 == 0 {
			source = "/test-data"
		}
		body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,"data":{"total":%d}}`, id, source, typ, total)
		hdr := map[string]string{}
		if i == 12 {
			hdr["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		}
		if code, r, err := post(t, srv.httpURL(), "application/cloudevents+json", hdr, body); err != nil || code != 200 {
			t.Fatalf("publish %s: %d %+v %v", id, code, r, err)
		}
		want[id] = [2]bool{typ == "orders.created" && total >= 100, strings.HasPrefix(typ, "orders.") && source != "/test-data"}
	}
	nBilling, nShipping := 0, 0
	for _, w := range want {
		if w[0] {
			nBilling++
		}
		if w[1] {
			nShipping++
		}
	}
	eventually(t, 20*time.Second, "every matching event", func() bool {
		return billing.distinct() == nBilling && shipping.distinct() == nShipping
	})
	time.Sleep(300 * time.Millisecond) // anything wrongly routed would have arrived by now
	for id, w := range want {
		if got := billing.count(id); got != b2i(w[0]) {
			t.Errorf("billing got %s %d times, want %d", id, got, b2i(w[0]))
		}
		if got := shipping.count(id); got != b2i(w[1]) {
			t.Errorf("shipping got %s %d times, want %d", id, got, b2i(w[1]))
		}
	}
	billing.mu.Lock()
	defer billing.mu.Unlock()
	h := billing.first["o-12"]
	if h.Get("Ce-Type") != "orders.created" || h.Get("Ce-Source") != "/shop" || h.Get("Ce-Specversion") != "1.0" ||
		h.Get("Content-Type") != "application/json" || h.Get("Ce-Time") == "" || billing.bodies["o-12"] != `{"total":120}` {
		t.Errorf("headers %v body %q", h, billing.bodies["o-12"])
	}
	if h.Get("Traceparent") != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent not passed through: %q", h.Get("Traceparent"))
	}
	if h := billing.first["o-11"]; h != nil && h.Get("Traceparent") == "" {
		t.Error("an event without a trace got no fresh traceparent")
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDeliveryFailures: a handler failing 30% of requests still gets every event; one
// that always fails sends every event to the DLQ after maxAttempts; one that answers 400
// sends it there at once. The records say why, after how many attempts, with which status.
func TestDeliveryFailures(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `
name: flaky
pattern: {type: [jobs.flaky]}
target: {service: worker, path: /flaky}
delivery: {maxAttempts: 20, backoff: {initial: 10ms, max: 200ms, multiplier: 2}}
---
name: down
pattern: {type: [jobs.down]}
target: {service: worker, path: /down}
delivery: {maxAttempts: 3, backoff: {initial: 10ms, max: 50ms}}
---
name: picky
pattern: {type: [jobs.picky]}
target: {service: worker, path: /picky}
`)
	var calls atomic.Int64
	rec, url := newRecorder(t)
	delivered := sync.Map{}
	rec.answer = func(path, id string, attempt int) int {
		switch path {
		case "/flaky":
			if calls.Add(1)%10 < 3 { // 30% of requests fail
				return 500
			}
			delivered.Store(id, true)
			return 200
		case "/down":
			return 503
		}
		return 400
	}
	startSidecar(t, srv, "worker", url)
	flaky := publishEvents(t, srv, "flaky", "jobs.flaky", 500, func(i int) string { return fmt.Sprint(i) })
	down := publishEvents(t, srv, "down", "jobs.down", 10, func(int) string { return "{}" })
	picky := publishEvents(t, srv, "picky", "jobs.picky", 10, func(int) string { return "{}" })

	began := time.Now()
	eventually(t, 60*time.Second, "every flaky event delivered", func() bool {
		n := 0
		delivered.Range(func(any, any) bool { n++; return true })
		return n == len(flaky)
	})
	t.Logf("flaky delivered in %v", time.Since(began))
	eventually(t, 30*time.Second, "the DLQ records", func() bool {
		return len(dlqRecords(t, srv, "down")) >= len(down) && len(dlqRecords(t, srv, "picky")) >= len(picky)
	})
	t.Logf("DLQ complete after %v", time.Since(began))
	if n := len(dlqRecords(t, srv, "flaky")); n != 0 {
		t.Errorf("%d flaky events dead-lettered", n)
	}
	check := func(rule string, ids []string, reason string, attempts, status int) {
		t.Helper()
		got := map[string]bool{}
		for _, r := range dlqRecords(t, srv, rule) {
			id, _ := r.EventRef()
			got[id] = true
			if r.Reason != reason || r.Attempts != attempts || r.LastStatus != status || r.Origin != "sidecar/worker" || r.Error == "" {
				t.Errorf("%s record: %+v", rule, r)
			}
		}
		for _, id := range ids {
			if !got[id] {
				t.Errorf("%s: no DLQ record for %s", rule, id)
			}
			if n := rec.count(id); n != attempts {
				t.Errorf("%s: %s tried %d times, want %d", rule, id, n, attempts)
			}
		}
	}
	check("down", down, dlq.ReasonDeliveryFailed, 3, 503)
	check("picky", picky, dlq.ReasonDeliveryRejected, 1, 400)

	out, _, code := srv.cli(t, "", "dlq", "ls", "--reason", "delivery_failed")
	if code != 0 || !strings.Contains(out, "down") {
		t.Errorf("dlq ls: %d %s", code, out)
	}
}

// TestConcurrencyAndReplicas: two sidecars of one service share a rule of
// maxConcurrency 8: together they never hold more than 8 requests, both take part, and
// every event is delivered exactly once (no failures, so no redeliveries).
func TestConcurrencyAndReplicas(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: jobs\npattern: {type: [jobs.run]}\ntarget: {service: worker}\ndelivery: {maxConcurrency: 8}\n")
	a, aURL := newRecorder(t)
	b, bURL := newRecorder(t)
	a.delay, b.delay = 2*time.Millisecond, 2*time.Millisecond
	startSidecar(t, srv, "worker", aURL)
	startSidecar(t, srv, "worker", bURL)
	var both atomic.Int32
	var peak atomic.Int32
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := a.inFlight.Load() + b.inFlight.Load(); n > peak.Load() {
				peak.Store(n)
			}
			runtimeYield()
		}
	}()
	ids := publishEvents(t, srv, "job", "jobs.run", 2000, func(i int) string { return fmt.Sprint(i) })
	eventually(t, 60*time.Second, "every job", func() bool { return a.distinct()+b.distinct() >= len(ids) })
	close(stop)
	time.Sleep(200 * time.Millisecond)
	sa, sb := a.snapshot(), b.snapshot()
	for _, id := range ids {
		if sa[id]+sb[id] != 1 {
			t.Errorf("%s delivered %d+%d times", id, sa[id], sb[id])
		}
	}
	both.Store(int32(min(len(sa), len(sb))))
	if both.Load() < 100 {
		t.Errorf("the replicas did not share the work: %d and %d", len(sa), len(sb))
	}
	if p := max(peak.Load(), a.maxSeen.Load()+0, b.maxSeen.Load()); p > 8 {
		t.Errorf("%d requests in flight, maxConcurrency is 8", p)
	}
	t.Logf("replica A %d, replica B %d, peak in flight (sampled) %d, per replica %d/%d", len(sa), len(sb), peak.Load(), a.maxSeen.Load(), b.maxSeen.Load())
}

func runtimeYield() { time.Sleep(50 * time.Microsecond) }

// TestSidecarKillNine: kill -9 the sidecar in the middle of a 10,000-event run and start
// it again: every event is delivered, and the only duplicates are events that were in
// flight when it died.
func TestSidecarKillNine(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	// timeout 2s: a dead sidecar's events come back after 2s + 5s ack-wait margin.
	applyRules(t, srv, "name: run\npattern: {type: [jobs.run]}\ntarget: {service: worker}\ndelivery: {maxConcurrency: 16, timeout: 2s}\n")
	rec, url := newRecorder(t)
	rec.delay = 200 * time.Microsecond
	sc := startSidecar(t, srv, "worker", url)
	ids := publishEvents(t, srv, "k", "jobs.run", 10000, func(i int) string { return fmt.Sprint(i) })
	eventually(t, 60*time.Second, "a third delivered", func() bool { return rec.distinct() >= 3000 })
	sc.kill()
	beforeSettle := rec.distinct()
	// Requests the dead sidecar had already written may still be read and recorded by the
	// handler; they count as having reached it before the kill.
	rec.settle(t)
	atKill := rec.snapshot()
	t.Logf("killed the sidecar after %d events (%d of them recorded after the kill, sent before it)", len(atKill), len(atKill)-beforeSettle)
	startSidecar(t, srv, "worker", url)
	eventually(t, 90*time.Second, "every event", func() bool { return rec.distinct() == len(ids) })
	time.Sleep(500 * time.Millisecond)
	final := rec.snapshot()
	dups := 0
	for id, n := range final {
		if n > 1 {
			dups++
			if atKill[id] == 0 {
				t.Errorf("%s was delivered twice but had not reached the handler before the kill", id)
			}
		}
	}
	// In flight at the kill: up to maxConcurrency requests, plus acks not yet flushed.
	if dups > 2*16 {
		t.Errorf("%d duplicates; at most 16 requests were in flight", dups)
	}
	t.Logf("%d events, %d delivered twice", len(final), dups)
}

// TestServerKillNineDuringDelivery: kill -9 the server while events are published and
// delivered, restart it on the same data and addresses: the sidecar reconnects by itself
// and every event the ingress accepted reaches the handler.
func TestServerKillNineDuringDelivery(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: tick\npattern: {type: [load.tick]}\ntarget: {service: worker}\ndelivery: {timeout: 2s}\n")
	rec, url := newRecorder(t)
	startSidecar(t, srv, "worker", url)
	accepted := publishUnderLoad(t, srv, func() {
		time.Sleep(1500 * time.Millisecond)
		srv.kill()
	})
	srv = srv.restart(anyType)
	eventually(t, 90*time.Second, "every accepted event delivered", func() bool {
		s := rec.snapshot()
		for id := range accepted {
			if s[id] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%d accepted events delivered after the restart (%d requests in all)", len(accepted), rec.total.Load())
}

// TestSidecarSIGTERMFinishesInFlight: SIGTERM while a slow handler holds requests: the
// sidecar stops pulling, lets those requests finish, acknowledges them, and exits 0; a new
// sidecar then delivers the rest, and nothing is delivered twice.
func TestSidecarSIGTERMFinishesInFlight(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: slow\npattern: {type: [jobs.slow]}\ntarget: {service: worker}\ndelivery: {maxConcurrency: 4}\n")
	rec, url := newRecorder(t)
	rec.delay = 700 * time.Millisecond
	var completed atomic.Int32
	rec.answer = func(string, string, int) int { completed.Add(1); return 200 }
	sc := startSidecar(t, srv, "worker", url, "--grace", "10s")
	ids := publishEvents(t, srv, "slow", "jobs.slow", 20, func(i int) string { return fmt.Sprint(i) })
	eventually(t, 10*time.Second, "4 requests in flight", func() bool { return rec.inFlight.Load() == 4 })
	began := time.Now()
	if err := sc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sc.done:
		if err != nil {
			t.Fatalf("sidecar exit: %v\n%s", err, sc.log)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("sidecar still running 15s after SIGTERM\n%s", sc.log)
	}
	t.Logf("exited %v after SIGTERM, %d requests completed", time.Since(began), completed.Load())
	if got := rec.total.Load(); got != int64(completed.Load()) || got < 4 {
		t.Fatalf("%d requests received, %d completed: the sidecar did not let them finish", got, completed.Load())
	}
	startSidecar(t, srv, "worker", url)
	eventually(t, 30*time.Second, "every event", func() bool { return rec.distinct() == len(ids) })
	time.Sleep(time.Second)
	for id, n := range rec.snapshot() {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// TestServiceRestartSpendsNoAttempts: the service stops (gracefully, then nothing listens
// at its address) for 2 s in the middle of a run and comes back on the same address. The
// rule allows 2 attempts with a 200 ms backoff, which a 2 s outage would use up many times
// over if refused connections counted; with --hold-unreachable none do: every event
// arrives, none is dead-lettered.
func TestServiceRestartSpendsNoAttempts(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: restart\npattern: {type: [jobs.run]}\ntarget: {service: worker}\n"+
		"delivery: {maxAttempts: 2, maxConcurrency: 16, backoff: {initial: 200ms, max: 1s}}\n")
	addr := freeAddr(t)
	rec := blankRecorder()
	rec.delay = 5 * time.Millisecond
	up := func() *http.Server {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		svc := &http.Server{Handler: rec}
		go func() { _ = svc.Serve(ln) }()
		return svc
	}
	svc := up()
	startSidecar(t, srv, "worker", "http://"+addr, "--hold-unreachable", "30s")
	ids := publishEvents(t, srv, "s", "jobs.run", 3000, func(i int) string { return fmt.Sprint(i) })
	eventually(t, 60*time.Second, "some events delivered", func() bool { return rec.distinct() >= 300 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = svc.Shutdown(ctx) // requests in flight finish; then nothing listens
	cancel()
	atStop := rec.distinct()
	time.Sleep(2 * time.Second)
	svc = up()
	t.Cleanup(func() { _ = svc.Close() })
	eventually(t, 60*time.Second, "every event", func() bool { return rec.distinct() == len(ids) })
	if recs := dlqRecords(t, srv, "restart"); len(recs) != 0 {
		t.Fatalf("%d events dead-lettered, first: %+v", len(recs), recs[0])
	}
	t.Logf("service away for 2s after %d of %d events; all delivered, %d requests, none dead-lettered", atStop, len(ids), rec.total.Load())
}

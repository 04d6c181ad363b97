package delivery_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type fixture struct {
	js jetstream.JetStream
}

func setup(t *testing.T) *fixture { return setupB(t) }

func setupB(t testing.TB) *fixture {
	t.Helper()
	_, js := natstest.JetStream(t, natstest.RunServer(t))
	if err := bus.EnsureStreams(context.Background(), js, bus.DefaultStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js}
}

// rule parses a rule and creates its consumer the way the server's reconciler does;
// tune adjusts the consumer config first (a shorter ack wait, for instance).
func (f *fixture) ruleB(t testing.TB, yaml string) rules.Rule { return f.ruleTB(t, yaml, nil) }

func (f *fixture) rule(t *testing.T, yaml string, tune func(*jetstream.ConsumerConfig)) rules.Rule {
	return f.ruleTB(t, yaml, tune)
}

func (f *fixture) ruleTB(t testing.TB, yaml string, tune func(*jetstream.ConsumerConfig)) rules.Rule {
	t.Helper()
	rs, err := rules.ParseFile("rule.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	r.SetDefaults()
	cfgs, err := rules.ConsumerConfigs(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range cfgs {
		if tune != nil {
			tune(&cfg)
		}
		if _, err := f.js.CreateOrUpdateConsumer(context.Background(), bus.EventsStream, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// publish stores an event the way the ingress does.
func (f *fixture) publish(t testing.TB, typ, data string) *event.Event {
	t.Helper()
	ev := &event.Event{ID: event.NewID(), Source: "/test", SpecVersion: event.SpecVersion, Type: typ, Data: []byte(data)}
	msg := &nats.Msg{Subject: ev.NATSSubject(), Header: nats.Header(ev.Header()), Data: ev.Data}
	if _, err := f.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return ev
}

// start runs deliverers until the test ends.
func (f *fixture) start(t *testing.T, r rules.Rule, url string, opts ...delivery.Option) *delivery.Deliverer {
	t.Helper()
	target := &delivery.HTTPTarget{URL: delivery.JoinURL(url, r.Target.Path), Client: delivery.NewHTTPClient(r.Delivery.MaxConcurrency)}
	d, err := delivery.New(f.js, r, target, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

// dlqRecords waits for n DLQ records and returns them in order.
func (f *fixture) dlqRecords(t *testing.T, n int) []*dlq.Record {
	t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("%d DLQ records", n), func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs >= uint64(n)
	})
	var out []*dlq.Record
	for seq := uint64(1); len(out) < n; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := dlq.Parse(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// handler is a service: it records what it receives and answers with respond.
type handler struct {
	mu       sync.Mutex
	got      []received
	byID     map[string]int
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	respond  func(r *http.Request, attempt int) (int, string)
	delay    time.Duration
}

type received struct {
	header http.Header
	body   string
}

func newHandler(t *testing.T, respond func(r *http.Request, attempt int) (int, string)) (*handler, string) {
	h := &handler{byID: map[string]int{}, respond: respond}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxSeen.Load()
		if n <= m || h.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.got = append(h.got, received{header: r.Header.Clone(), body: string(body)})
	id := r.Header.Get("Ce-Id")
	h.byID[id]++
	attempt := h.byID[id]
	h.mu.Unlock()
	if h.delay > 0 {
		time.Sleep(h.delay)
	}
	status, answer := 200, ""
	if h.respond != nil {
		status, answer = h.respond(r, attempt)
	}
	if len(answer) > 0 && answer[0] == '{' {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (h *handler) requests() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

func (h *handler) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byID)
}

func TestDeliverMatchingEvents(t *testing.T) {
	f := setup(t)
	r := f.rule(t, `
name: big-orders
pattern: {type: [orders.created], data: {total: [{numeric: [">", 100]}]}}
target: {service: billing, path: /orders}
`, nil)
	h, url := newHandler(t, nil)
	var paths sync.Map
	h.respond = func(r *http.Request, _ int) (int, string) { paths.Store(r.URL.Path, true); return 204, "" }
	f.start(t, r, url)
	small := f.publish(t, "orders.created", `{"total":5}`)
	big := f.publish(t, "orders.created", `{"total":500}`)
	f.publish(t, "orders.cancelled", `{"total":900}`) // other type: not even in the filter
	waitFor(t, "the big order", func() bool { return h.distinct() == 1 })
	time.Sleep(100 * time.Millisecond) // the small one was filtered, not late
	got := h.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	req := got[0]
	if req.header.Get("Ce-Id") != big.ID || req.header.Get("Ce-Type") != "orders.created" || req.header.Get("Ce-Source") != "/test" ||
		req.header.Get("Ce-Specversion") != "1.0" || req.header.Get("Content-Type") != "application/json" || req.body != `{"total":500}` {
		t.Fatalf("request %v %q", req.header, req.body)
	}
	if req.header.Get("Traceparent") == "" {
		t.Fatal("no traceparent")
	}
	if _, ok := paths.Load("/orders"); !ok {
		t.Fatal("the target path was not used")
	}
	_ = small
	waitFor(t, "every event settled", func() bool { return pendingOf(t, f, r) == 0 })
}

func pendingOf(t *testing.T, f *fixture, r rules.Rule) uint64 {
	t.Helper()
	c, err := f.js.Consumer(context.Background(), bus.EventsStream, r.ConsumerName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending + uint64(info.NumAckPending)
}

const fastRetries = `
delivery:
  maxAttempts: 3
  backoff: {initial: 10ms, max: 50ms, multiplier: 2}
`

func TestRetryUntilDelivered(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: flaky\npattern: {type: [a.b]}\ntarget: {service: s}\n"+fastRetries, nil)
	h, url := newHandler(t, func(_ *http.Request, attempt int) (int, string) {
		if attempt < 3 {
			return 503, "warming up"
		}
		return 200, ""
	})
	f.start(t, r, url)
	f.publish(t, "a.b", `{}`)
	waitFor(t, "three attempts", func() bool { return len(h.requests()) == 3 })
	waitFor(t, "the ack", func() bool { return pendingOf(t, f, r) == 0 })
	if dlqMsgs(t, f) != 0 {
		t.Fatal("a delivered event reached the DLQ")
	}
}

func TestDeadLetterAfterMaxAttempts(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: down\npattern: {type: [a.b]}\ntarget: {service: s}\n"+fastRetries, nil)
	h, url := newHandler(t, func(*http.Request, int) (int, string) { return 500, "database is down" })
	f.start(t, r, url, delivery.WithOrigin("sidecar/s"))
	ev := f.publish(t, "a.b", `{"n":1}`)
	rec := f.dlqRecords(t, 1)[0]
	if rec.Reason != dlq.ReasonDeliveryFailed || rec.Rule != "down" || rec.Attempts != 3 || rec.LastStatus != 500 ||
		rec.Error != "handler answered 500: database is down" || rec.Origin != "sidecar/s" || string(rec.Body) != `{"n":1}` {
		t.Fatalf("record %+v", rec)
	}
	if id, typ := rec.EventRef(); id != ev.ID || typ != "a.b" {
		t.Fatalf("record names %s %s", id, typ)
	}
	if n := len(h.requests()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	waitFor(t, "the event terminated", func() bool { return pendingOf(t, f, r) == 0 })
}

func TestRejectedAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		body   string
		err    string
	}{
		{"400", 400, "total must be positive", "handler answered 400: total must be positive"},
		{"DROP", 200, `{"status":"DROP"}`, `handler answered {"status":"DROP"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			r := f.rule(t, "name: picky\npattern: {type: [a.b]}\ntarget: {service: s}\n", nil)
			h, url := newHandler(t, func(*http.Request, int) (int, string) { return tt.status, tt.body })
			f.start(t, r, url)
			f.publish(t, "a.b", `{}`)
			rec := f.dlqRecords(t, 1)[0]
			if rec.Reason != dlq.ReasonDeliveryRejected || rec.Attempts != 1 || rec.LastStatus != tt.status || rec.Error != tt.err {
				t.Fatalf("record %+v", rec)
			}
			if n := len(h.requests()); n != 1 {
				t.Fatalf("%d attempts, want 1", n)
			}
		})
	}
}

// TestDeadLetterOff: with deadLetter false the event is dropped, not recorded.
func TestDeadLetterOff(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: lossy\npattern: {type: [a.b]}\ntarget: {service: s}\ndeadLetter: false\n", nil)
	h, url := newHandler(t, func(*http.Request, int) (int, string) { return 400, "" })
	f.start(t, r, url)
	f.publish(t, "a.b", `{}`)
	waitFor(t, "the event terminated", func() bool { return len(h.requests()) == 1 && pendingOf(t, f, r) == 0 })
	if dlqMsgs(t, f) != 0 {
		t.Fatal("a DLQ record was written with dead-lettering off")
	}
}

// TestConcurrencyBound: two deliverers share a rule of maxConcurrency 4; the handler never
// sees more than 4 requests at once, and every event arrives.
func TestConcurrencyBound(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: bounded\npattern: {type: [a.b]}\ntarget: {service: s}\ndelivery: {maxConcurrency: 4}\n", nil)
	h, url := newHandler(t, nil)
	h.delay = 5 * time.Millisecond
	f.start(t, r, url)
	f.start(t, r, url)
	const n = 200
	for range n {
		f.publish(t, "a.b", `{}`)
	}
	waitFor(t, "every event", func() bool { return h.distinct() == n })
	if m := h.maxSeen.Load(); m > 4 || m < 2 {
		t.Fatalf("max in flight %d, want 2..4", m)
	}
}

// TestOrdered: an ordered rule delivers in stream order, retries included.
func TestOrdered(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: ledger\npattern: {type: [a.b]}\ntarget: {service: s}\ndelivery: {ordered: true, maxAttempts: 10, backoff: {initial: 5ms, max: 20ms}}\n", nil)
	h, url := newHandler(t, func(r *http.Request, attempt int) (int, string) {
		if attempt < 3 && r.Header.Get("Ce-Subject") != "" {
			return 500, ""
		}
		return 200, ""
	})
	f.start(t, r, url)
	f.start(t, r, url) // a second replica changes nothing: one in flight for the rule
	const n = 30
	var ids []string
	for i := range n {
		ev := &event.Event{ID: event.NewID(), Source: "/t", SpecVersion: "1.0", Type: "a.b", Data: []byte(fmt.Sprint(i))}
		if i%7 == 3 {
			ev.Subject = "flaky"
		}
		msg := &nats.Msg{Subject: ev.NATSSubject(), Header: nats.Header(ev.Header()), Data: ev.Data}
		if _, err := f.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	waitFor(t, "every event", func() bool { return h.distinct() == n && pendingOf(t, f, r) == 0 })
	if h.maxSeen.Load() != 1 {
		t.Fatalf("ordered rule had %d requests at once", h.maxSeen.Load())
	}
	next := 0
	for _, req := range h.requests() {
		id := req.header.Get("Ce-Id")
		switch {
		case next < n && id == ids[next]:
			next++
		case next > 0 && id == ids[next-1]: // a retry of the current one
		default:
			t.Fatalf("got %s while expecting event %d (%s)", id, next, ids[next])
		}
	}
}

// TestSlowHandlerKeptAlive: a handler slower than the ack wait gets the event once; the
// in-progress signals keep JetStream from redelivering it meanwhile.
func TestSlowHandlerKeptAlive(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: slow\npattern: {type: [a.b]}\ntarget: {service: s}\n", func(c *jetstream.ConsumerConfig) {
		c.AckWait = 300 * time.Millisecond
	})
	h, url := newHandler(t, nil)
	h.delay = time.Second
	f.start(t, r, url)
	f.start(t, r, url)
	f.publish(t, "a.b", `{}`)
	waitFor(t, "the ack", func() bool { return len(h.requests()) >= 1 && pendingOf(t, f, r) == 0 })
	if n := len(h.requests()); n != 1 {
		t.Fatalf("the slow handler got the event %d times", n)
	}
}

// TestGate: a closed gate delivers nothing; opening it delivers what waited.
func TestGate(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: gated\npattern: {type: [a.b]}\ntarget: {service: s}\n", nil)
	h, url := newHandler(t, nil)
	gate := delivery.NewGate(true)
	d := f.start(t, r, url, delivery.WithGate(gate))
	waitFor(t, "bound", d.Bound)
	gate.Set(false)
	waitFor(t, "unbound", func() bool { return !d.Bound() })
	for range 5 {
		f.publish(t, "a.b", `{}`)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(h.requests()); n != 0 {
		t.Fatalf("%d requests while paused", n)
	}
	gate.Set(true)
	waitFor(t, "every event", func() bool { return h.distinct() == 5 })
	if n := len(h.requests()); n != 5 {
		t.Fatalf("%d requests for 5 events", n)
	}
}

// TestRetryAfterHonoured: a 429 with Retry-After 1 waits about a second, not the 10ms
// backoff.
func TestRetryAfterHonoured(t *testing.T) {
	f := setup(t)
	r := f.rule(t, "name: limited\npattern: {type: [a.b]}\ntarget: {service: s}\n"+fastRetries, nil)
	var first, second atomic.Int64
	h, url := newHandler(t, nil)
	h.respond = func(_ *http.Request, attempt int) (int, string) {
		if attempt == 1 {
			first.Store(time.Now().UnixNano())
			return 429, ""
		}
		second.Store(time.Now().UnixNano())
		return 200, ""
	}
	// Retry-After needs a header: wrap the handler.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Retry-After", "1")
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	_ = url
	r.Delivery.Backoff.Max = r.Delivery.Backoff.Initial * 1000 // a 10s cap, so the 1s ask is not cut
	f.start(t, r, srv.URL)
	f.publish(t, "a.b", `{}`)
	waitFor(t, "the retry", func() bool { return second.Load() != 0 })
	if gap := time.Duration(second.Load() - first.Load()); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After asked 1s", gap)
	}
}

// deadAddr is a loopback address nothing listens on (until the test listens there).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func dlqMsgs(t *testing.T, f *fixture) uint64 {
	t.Helper()
	s, err := f.js.Stream(context.Background(), bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestUnreachableHandlerSpendsNoAttempt: while nothing listens at the handler's address
// (a service restarting), events are held and sent again; with maxAttempts 1 a single
// counted failure would dead-letter them, yet all arrive once the service listens.
func TestUnreachableHandlerSpendsNoAttempt(t *testing.T) {
	f := setup(t)
	r := f.rule(t, `
name: restarts
pattern: {type: [jobs.queued]}
target: {service: worker}
delivery: {maxAttempts: 1}
`, nil)
	addr := deadAddr(t)
	d := f.start(t, r, "http://"+addr, delivery.WithUnreachableHold(30*time.Second))
	for i := range 3 {
		f.publish(t, "jobs.queued", fmt.Sprintf(`{"n":%d}`, i))
	}
	waitFor(t, "the handler to be found unreachable", d.Unreachable)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &handler{byID: map[string]int{}}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	waitFor(t, "every event delivered", func() bool { return h.distinct() == 3 })
	waitFor(t, "every event settled", func() bool { return pendingOf(t, f, r) == 0 })
	if n := dlqMsgs(t, f); n != 0 {
		t.Fatalf("%d DLQ records: attempts were spent on a handler that never saw the events", n)
	}
	if len(h.requests()) != 3 || d.Unreachable() {
		t.Fatalf("%d requests (want 3), unreachable %v", len(h.requests()), d.Unreachable())
	}
}

// TestUnreachableIsAnAttemptByDefault: without a hold, a refused connection is a failed
// attempt like a 5xx (the status-code contract), dead-lettered after maxAttempts.
func TestUnreachableIsAnAttemptByDefault(t *testing.T) {
	f := setup(t)
	r := f.rule(t, `
name: refused
pattern: {type: [jobs.queued]}
target: {service: worker}
delivery: {maxAttempts: 2, backoff: {initial: 10ms, max: 20ms}}
`, nil)
	d := f.start(t, r, "http://"+deadAddr(t))
	f.publish(t, "jobs.queued", `{}`)
	recs := f.dlqRecords(t, 1)
	if recs[0].Reason != dlq.ReasonDeliveryFailed || recs[0].Attempts != 2 || recs[0].LastStatus != 0 || !strings.Contains(recs[0].Error, "refused") {
		t.Fatalf("record %+v", recs[0])
	}
	if !d.Unreachable() {
		t.Fatal("the deliverer does not report the handler unreachable")
	}
}

// TestUnreachableHandedBackOnStop: a deliverer that stops while its handler is away hands
// the events it holds back, for a replica whose handler is up.
func TestUnreachableHandedBackOnStop(t *testing.T) {
	f := setup(t)
	r := f.rule(t, `
name: handback
pattern: {type: [jobs.queued]}
target: {service: worker}
`, nil)
	target := &delivery.HTTPTarget{URL: "http://" + deadAddr(t), Client: delivery.NewHTTPClient(4)}
	away, err := delivery.New(f.js, r, target, slog.New(slog.DiscardHandler), delivery.WithUnreachableHold(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = away.Run(ctx) }()
	f.publish(t, "jobs.queued", `{"n":1}`)
	f.publish(t, "jobs.queued", `{"n":2}`)
	waitFor(t, "the handler to be found unreachable", away.Unreachable)
	cancel()
	<-done

	h, url := newHandler(t, nil)
	f.start(t, r, url)
	waitFor(t, "both events at the replica whose handler is up", func() bool { return h.distinct() == 2 })
	waitFor(t, "every event settled", func() bool { return pendingOf(t, f, r) == 0 })
	if n := dlqMsgs(t, f); n != 0 {
		t.Fatalf("%d DLQ records", n)
	}
}

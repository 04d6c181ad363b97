package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/pace"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/telemetry"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Deliverer delivers one rule's events from the rule's durable consumer to a Target. Any
// number of deliverers, in any number of processes, may share a rule: the consumer hands
// each event to one of them, and its max ack pending (the rule's maxConcurrency) bounds
// the events in flight across all of them. Run owns every goroutine a Deliverer starts.
type Deliverer struct {
	js       jetstream.JetStream
	rule     rules.Rule
	pattern  *rules.Pattern
	residual bool // the filter subjects do not decide the pattern alone
	useData  bool // the pattern reads data
	target   Target
	log      *slog.Logger
	metrics  *Metrics
	m        ruleMetrics
	gate     *Gate
	origin   string
	abort    context.Context
	bound    atomic.Bool
	// unreachable: the last send found no handler listening.
	unreachable     atomic.Bool
	unreachableHold time.Duration
	retries         *retryNotes
	tracer          trace.Tracer
	// rate is the rule's rateLimit in deliveries per second across every replica; 0 none.
	rate     float64
	replicas func() int
	// members names who delivers an orderBy rule now, to split its partitions.
	members func() (self string, all []string)
}

// Option tunes a Deliverer at construction.
type Option func(*Deliverer)

// WithMetrics counts results in m.
func WithMetrics(m *Metrics) Option { return func(d *Deliverer) { d.metrics = m } }

// WithGate pauses pulling while g is closed (the service is unhealthy).
func WithGate(g *Gate) Option { return func(d *Deliverer) { d.gate = g } }

// WithTracer makes a consumer span per delivery attempt (see telemetry), whose
// traceparent the handler receives; nil, the default, traces nothing.
func WithTracer(t trace.Tracer) Option { return func(d *Deliverer) { d.tracer = t } }

// WithReplicas tells a rate-limited deliverer how many replicas of the service deliver
// the rule now (itself included): each takes its share of the rule's rateLimit. Without
// it a deliverer takes the whole limit.
func WithReplicas(count func() int) Option { return func(d *Deliverer) { d.replicas = count } }

// WithOrigin names where DLQ records come from, such as "sidecar/billing".
func WithOrigin(origin string) Option { return func(d *Deliverer) { d.origin = origin } }

// WithAbort bounds requests in flight: when ctx ends they are cut short and their events
// handed back for redelivery. Run's own context only stops pulling, so a caller gives
// in-flight requests a grace period by ending this one later.
func WithAbort(ctx context.Context) Option { return func(d *Deliverer) { d.abort = ctx } }

// WithUnreachableHold keeps an event whose handler accepts no connection (refused, unknown
// host: the handler never saw it) for up to hold, sending it again without spending an
// attempt, so a service restart costs no attempts. Past hold the event counts one failed
// attempt and backs off like any failure. Zero, the default, counts every refused
// connection as a failed attempt, as the status-code contract says.
func WithUnreachableHold(hold time.Duration) Option {
	return func(d *Deliverer) { d.unreachableHold = hold }
}

// New returns a deliverer for rule. The rule gets its defaults applied and must be valid.
func New(js jetstream.JetStream, rule rules.Rule, target Target, log *slog.Logger, opts ...Option) (*Deliverer, error) {
	rule.SetDefaults()
	if err := rule.Validate(); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	p, err := rule.Compile()
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	d := &Deliverer{
		js: js, rule: rule, pattern: p, target: target,
		residual: !p.SubjectsSuffice(), useData: p.UsesKey("data"),
		log: log.With("rule", rule.Name), gate: NewGate(true), origin: "delivery",
		abort: context.Background(),
	}
	for _, o := range opts {
		o(d)
	}
	d.rate, _ = rule.Delivery.Rate() // Validate refused a bad one
	d.m = d.metrics.forRule(rule.Name)
	return d, nil
}

// Rule returns the rule being delivered, defaults applied.
func (d *Deliverer) Rule() rules.Rule { return d.rule }

// Bound reports whether the deliverer is attached to its consumer and pulling.
func (d *Deliverer) Bound() bool { return d.bound.Load() }

// Run delivers until ctx ends, binding to the rule's consumer (waiting for it to exist)
// and rebinding after any failure. When ctx ends it stops pulling, hands back events it
// holds but has not sent, and returns once the requests in flight are answered (or cut
// short by the abort context).
func (d *Deliverer) Run(ctx context.Context) error {
	wait := newBackoff()
	loggedMissing := false
	d.retries = openRetryNotes(ctx, d.js, d.rule.Name)
	if d.rule.Delivery.OrderBy != "" {
		return d.runKeyed(ctx)
	}
	for ctx.Err() == nil {
		open, changed := d.gate.State()
		if !open {
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		cons, err := d.js.Consumer(ctx, bus.EventsStream, d.rule.ConsumerName())
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) && !loggedMissing {
				d.log.Info("waiting for the rule's consumer to be created by the server", "consumer", d.rule.ConsumerName())
				loggedMissing = true
			} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				d.log.Warn("binding to the rule's consumer failed; retrying", "error", err)
			}
			wait.sleep(ctx)
			continue
		}
		d.log.Debug("bound to the rule's consumer", "consumer", d.rule.ConsumerName())
		loggedMissing = false
		err = d.pump(ctx, cons)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			d.log.Warn("pulling from the rule's consumer stopped; rebinding", "error", err)
			wait.sleep(ctx)
			continue
		}
		wait.reset()
	}
	return nil
}

// pump pulls and dispatches until ctx ends, the gate closes or the subscription fails.
// A slot of the semaphore is taken before each pull, so no more than MaxConcurrency
// events are ever held, and with the consumer's max ack pending at the same number an
// event handed over always finds a free slot at once.
func (d *Deliverer) pump(ctx context.Context, cons jetstream.Consumer) error {
	n := d.rule.Delivery.MaxConcurrency
	ackWait := cons.CachedInfo().Config.AckWait
	buffered := n
	if d.rate > 0 {
		// Hold at most about a second's worth: events wait here for the limit, and their
		// ack wait runs meanwhile.
		buffered = max(1, min(n, int(d.rate)))
	}
	// A pull that reaches a consumer with no leader yet (just created, or failing over in
	// a cluster) goes unanswered until it expires: expire it soon, so that costs seconds.
	iter, err := cons.Messages(jetstream.PullMaxMessages(buffered), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return err
	}
	d.bound.Store(true)
	defer d.bound.Store(false)

	_, gateChanged := d.gate.State()
	// stopping ends when pulling stops; events still held are then handed back.
	stopping, endStopping := context.WithCancel(ctx)
	defer endStopping()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			endStopping()
			iter.Drain() // buffered events still come out of Next, to be handed back
		})
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-stopping.Done():
		case <-gateChanged:
		}
		stop()
	}()

	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var failed error
	limit := d.newLimiter()
	if b := d.rule.Delivery.Batch; b != nil {
		failed = d.pumpBatches(stopping, iter, sem, &wg, limit, b.MaxEvents, b.MaxWait.Std(), ackWait)
	}
	for d.rule.Delivery.Batch == nil {
		sem <- struct{}{}
		msg, err := iter.Next()
		if err != nil {
			<-sem
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				failed = err
			}
			break
		}
		if stopping.Err() != nil || limit.wait(stopping) != nil {
			d.release(msg)
			<-sem
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.handle(stopping, msg, ackWait)
		}()
	}
	stop()
	<-watched
	iter.Stop()
	wg.Wait()
	return failed
}

// pullExpiry bounds how long one pull request waits on the server.
const pullExpiry = 5 * time.Second

// handle makes one delivery attempt and settles the event. stopping ends when the
// deliverer stops pulling: an event waiting for an unreachable handler is then handed
// back rather than kept from the other replicas.
func (d *Deliverer) handle(stopping context.Context, msg jetstream.Msg, ackWait time.Duration) {
	attempt := 1
	var stored time.Time
	if meta, err := msg.Metadata(); err == nil {
		attempt, stored = int(meta.NumDelivered), meta.Timestamp
	}
	header := msg.Headers()
	// A copy addressed to this rule alone (redrive, replay) was chosen for it already.
	if d.residual && !bus.IsDirect(msg.Subject()) && !d.matches(header, msg.Data()) {
		_ = msg.Ack()
		d.count(resultFiltered)
		return
	}
	res := d.send(msg, ackWait, attempt)
	if res.Outcome == Unreachable {
		res = d.holdUnreachable(stopping, msg, ackWait, res)
	}
	if (res.Outcome != Delivered && d.abort.Err() != nil) || (res.Outcome == Unreachable && stopping.Err() != nil) {
		d.release(msg) // cut short by shutdown or pause: not the handler's failure
		return
	}
	if res.Outcome != Unreachable {
		d.reachable()
	}
	d.settleAttempt(msg, attempt, stored, res)
}

// settle acknowledges, retries or dead-letters one event by the result of its attempt.
func (d *Deliverer) settle(msg jetstream.Msg, res Result) {
	attempt, stored := 1, time.Time{}
	if meta, err := msg.Metadata(); err == nil {
		attempt, stored = int(meta.NumDelivered), meta.Timestamp
	}
	d.settleAttempt(msg, attempt, stored, res)
}

func (d *Deliverer) settleAttempt(msg jetstream.Msg, attempt int, stored time.Time, res Result) {
	switch res.Outcome {
	case Delivered:
		_ = msg.Ack()
		if !stored.IsZero() {
			d.m.latency.Observe(time.Since(stored).Seconds())
		}
		d.retries.clear(msg, attempt)
		d.count(resultDelivered)
	case Retry, Unreachable:
		if attempt >= d.rule.Delivery.MaxAttempts {
			d.deadLetter(msg, dlq.ReasonDeliveryFailed, attempt, res)
			return
		}
		delay := d.retryDelay(attempt, res.RetryAfter)
		d.log.Debug("delivery failed; retrying", "attempt", attempt, "delay", delay, "status", res.Status, "error", res.Error)
		_ = msg.NakWithDelay(delay)
		d.retries.note(msg, RetryNote{Attempt: attempt, Status: res.Status, Error: res.Error, NextAt: time.Now().Add(delay).UTC(), Service: d.rule.Target.Service})
		d.count(resultRetried)
	case Reject:
		d.deadLetter(msg, dlq.ReasonDeliveryRejected, attempt, res)
	}
}

// send makes one request, bounded by the rule's timeout and cut short by the abort context.
// attempt is JetStream's delivery count, 0 for a send that spends no attempt.
func (d *Deliverer) send(msg jetstream.Msg, ackWait time.Duration, attempt int) (res Result) {
	timeout := d.rule.Delivery.Timeout.Std()
	ctx, cancel := context.WithTimeout(d.abort, timeout)
	defer cancel()
	if d.tracer != nil {
		var span trace.Span
		ctx, span = d.startSpan(ctx, msg, attempt)
		defer func() { endDeliverySpan(span, res) }()
	}
	if timeout > ackWait-rules.AckWaitMargin {
		// The request may outlast the ack wait (a timeout over rules.AckWaitCap, or a
		// consumer changed by hand): keep telling JetStream it is alive.
		defer keepAlive(msg, ackWait/3)()
	}
	d.m.inFlight.Inc()
	defer d.m.inFlight.Dec()
	began := time.Now()
	res = d.target.Send(ctx, msg.Headers(), msg.Data())
	if res.Outcome != Unreachable {
		d.m.duration.Observe(time.Since(began).Seconds())
	}
	return res
}

// startSpan starts the consumer span of one attempt.
func (d *Deliverer) startSpan(ctx context.Context, msg jetstream.Msg, attempt int) (context.Context, trace.Span) {
	h := msg.Headers()
	return telemetry.StartDelivery(ctx, d.tracer, h, telemetry.Event{
		ID: event.HeaderGet(h, "ce-id"), Type: event.HeaderGet(h, "ce-type"), Source: event.HeaderGet(h, "ce-source"),
		SpecVersion: event.HeaderGet(h, "ce-specversion"), Subject: event.HeaderGet(h, "ce-subject"),
		Destination: msg.Subject(), BodySize: len(msg.Data()),
	}, d.rule.Name, d.rule.ConsumerName(), attempt)
}

func endDeliverySpan(span trace.Span, res Result) {
	if res.Status > 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", res.Status))
	}
	if res.Outcome != Delivered {
		span.SetStatus(codes.Error, res.Outcome.String()+": "+res.Error)
	}
	span.End()
}

// holdUnreachable re-sends an event the handler never saw, with growing pauses, until
// the handler answers, the hold time (WithUnreachableHold) passes or stopping ends. The
// event's ack wait is renewed before each send.
func (d *Deliverer) holdUnreachable(stopping context.Context, msg jetstream.Msg, ackWait time.Duration, res Result) Result {
	if !d.unreachable.Swap(true) {
		if d.unreachableHold > 0 {
			d.log.Warn("the handler accepts no connection; holding its events until it does, without spending attempts", "error", res.Error, "hold", d.unreachableHold)
		} else {
			d.log.Warn("the handler accepts no connection; each try is a failed attempt", "error", res.Error)
		}
	}
	deadline := time.Now().Add(d.unreachableHold)
	pause := 250 * time.Millisecond
	for res.Outcome == Unreachable && time.Now().Before(deadline) {
		d.count(resultUnreachable)
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-stopping.Done():
			t.Stop()
			return res
		case <-d.abort.Done():
			t.Stop()
			return res
		case <-t.C:
		}
		pause = min(2*pause, 4*time.Second) // under the smallest ack wait, the margin
		_ = msg.InProgress()
		res = d.send(msg, ackWait, 0)
	}
	if res.Outcome == Unreachable {
		d.count(resultUnreachable)
	}
	return res
}

// reachable notes that the handler answered again.
func (d *Deliverer) reachable() {
	if d.unreachable.Load() && d.unreachable.Swap(false) {
		d.log.Info("the handler accepts connections again")
	}
}

// Unreachable reports whether the last send found no handler listening.
func (d *Deliverer) Unreachable() bool { return d.unreachable.Load() }

// matches evaluates the full pattern over the event's structured form, decoding data only
// when the pattern reads it.
func (d *Deliverer) matches(header map[string][]string, data []byte) bool {
	return d.pattern.Match(rules.StoredEvent(header, data, d.useData))
}

// dlqWriteTimeout bounds a DLQ write; it stays under rules.AckWaitMargin so the event is
// not redelivered while its record is being written.
const dlqWriteTimeout = rules.AckWaitMargin - time.Second

// deadLetter writes the DLQ record and only then terminates the event, so a crash in
// between leaves a duplicate record at worst, never a lost event. A failed write is
// retried like a failed delivery.
func (d *Deliverer) deadLetter(msg jetstream.Msg, reason string, attempt int, res Result) {
	if !d.writeDeadLetter(msg, reason, attempt, res) {
		_ = msg.NakWithDelay(d.retryDelay(attempt, 0))
	}
}

// writeDeadLetter is deadLetter leaving a failed write to the caller: false when the
// event stays unsettled.
func (d *Deliverer) writeDeadLetter(msg jetstream.Msg, reason string, attempt int, res Result) bool {
	if !d.rule.DeadLetters() {
		d.log.Warn("event dropped: dead-lettering is off for this rule", "reason", reason, "attempts", attempt, "status", res.Status, "error", res.Error)
		_ = msg.Term()
		d.count(resultDropped)
		return true
	}
	rec := &dlq.Record{
		Reason: reason, Error: res.Error, Rule: d.rule.Name, Attempts: attempt, LastStatus: res.Status,
		Origin: d.origin, Header: msg.Headers(), Body: msg.Data(),
	}
	if from := event.HeaderGet(rec.Header, "ce-"+event.RedriveExtension); from != "" {
		rec.Previous, _ = strconv.ParseUint(from, 10, 64)
	}
	// A fresh ack wait (at least the margin) covers the write, which is bounded below it.
	_ = msg.InProgress()
	ctx, cancel := context.WithTimeout(context.Background(), dlqWriteTimeout)
	defer cancel()
	if _, err := d.js.PublishMsg(ctx, rec.Msg()); err != nil {
		d.m.dlqFail.Inc()
		d.log.Error("writing the DLQ record failed; the event stays for redelivery", "error", err)
		return false
	}
	d.log.Warn("event dead-lettered", "reason", reason, "attempts", attempt, "status", res.Status, "error", res.Error)
	_ = msg.Term()
	d.retries.clear(msg, attempt)
	d.count(resultDeadLettered)
	return true
}

// release hands an event back unattempted, for another replica or a later try. JetStream
// counts it as a delivery all the same.
func (d *Deliverer) release(msg jetstream.Msg) {
	_ = msg.Nak()
	d.count(resultReleased)
}

// retryDelay is the rule's exponential backoff for the attempt just failed, with equal
// jitter (half fixed, half random) so retries of a burst spread out; a Retry-After from
// the handler lengthens it, and the rule's max caps both.
func (d *Deliverer) retryDelay(attempt int, asked time.Duration) time.Duration {
	b := d.rule.Delivery.Backoff
	maxDelay := b.Max.Std()
	delay := float64(b.Initial.Std())
	for i := 1; i < attempt && delay < float64(maxDelay); i++ {
		delay *= b.Multiplier
	}
	delay = min(delay, float64(maxDelay))
	delay = delay/2 + rand.Float64()*delay/2
	return min(max(time.Duration(delay), asked), maxDelay)
}

func (d *Deliverer) count(result string) {
	if c := d.m.results[result]; c != nil {
		c.Inc()
	}
}

// keepAlive tells JetStream every interval that msg is still being worked on, so a slow
// but live handler does not get the event redelivered elsewhere meanwhile.
func keepAlive(msg jetstream.Msg, every time.Duration) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// backoff spaces attempts to bind to a consumer: 100ms doubling to 5s.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 100 * time.Millisecond} }

func (b *backoff) reset() { b.next = 100 * time.Millisecond }

func (b *backoff) sleep(ctx context.Context) {
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.next = min(2*b.next, 5*time.Second)
}

// limiter paces one deliverer to its share of the rule's rate limit: the limit divided
// by the replicas delivering the rule now, followed as they come and go.
type limiter struct {
	total    float64
	replicas func() int
	mu       sync.Mutex // the partitions of an orderBy rule share one
	n        int
	pacer    *pace.Pacer
}

func (d *Deliverer) newLimiter() *limiter {
	return &limiter{total: d.rate, replicas: d.replicas}
}

// wait returns when the next delivery may start, or ctx's error; at once without a limit.
func (l *limiter) wait(ctx context.Context) error {
	if l.total <= 0 {
		return nil
	}
	n := 1
	if l.replicas != nil {
		n = max(1, l.replicas())
	}
	l.mu.Lock()
	if n != l.n || l.pacer == nil {
		l.n, l.pacer = n, pace.New(l.total/float64(n))
	}
	pacer := l.pacer
	l.mu.Unlock()
	return pacer.Wait(ctx)
}

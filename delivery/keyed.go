package delivery

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/internal/pace"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery by key (orderBy rules).
//
// The rule has Partitions consumers, each reading every event of the rule. A partition is
// delivered by one replica at a time: replicas split the partitions among themselves by
// the heartbeats (WithMembers), and the consumer's pinned-client priority group makes sure
// two replicas that briefly disagree never both receive from it. The replica holding a
// partition delivers the events whose key falls in it and acknowledges the others at once.
// Within a partition the events of one key go one at a time, in stream order, retries
// included (a failing event waits out its backoff in place and holds back its key only);
// different keys go in parallel.
//
// Whenever a replica starts receiving from a partition (a first session, a takeover after
// a crash, a new pin) it first rewinds the consumer to its ack floor, so whatever an
// earlier holder had received but not settled comes again, in stream order, before
// anything newer. Events acknowledged past the floor come again too: at-least-once.

// WithMembers tells an orderBy rule's deliverer who delivers the rule now: its own
// instance and every live replica's (itself included or not). Partition i goes to the
// i-th of them, sorted; without it the deliverer takes every partition.
func WithMembers(members func() (self string, all []string)) Option {
	return func(d *Deliverer) { d.members = members }
}

// owns reports whether partition i is this deliverer's to deliver now.
func (d *Deliverer) owns(i int) bool {
	if d.members == nil {
		return true
	}
	self, all := d.members()
	if !slices.Contains(all, self) {
		all = append(slices.Clone(all), self)
	}
	slices.Sort(all)
	return all[i%len(all)] == self
}

// runKeyed delivers an orderBy rule until ctx ends: one loop per partition.
func (d *Deliverer) runKeyed(ctx context.Context) error {
	key, err := rules.ParseKeyPath(d.rule.Delivery.OrderBy)
	if err != nil {
		return err // Validate refused it already
	}
	names := d.rule.ConsumerNames()
	limit := d.newLimiter() // the replica's share of a rate limit, over all its partitions
	// The deliverer is bound once every partition is.
	var mu sync.Mutex
	bound := make([]bool, len(names))
	setBound := func(i int, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		bound[i] = ok
		d.bound.Store(!slices.Contains(bound, false))
	}
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { d.runPartition(ctx, i, name, key, limit, func(ok bool) { setBound(i, ok) }) })
	}
	wg.Wait()
	d.bound.Store(false)
	return nil
}

// ownershipCheck is how often a partition's loop looks again at who should deliver it.
const ownershipCheck = 500 * time.Millisecond

// runPartition delivers partition i while this deliverer owns it, hands it over when it
// no longer does, and waits while the gate is closed. bound says whether the partition
// is taken care of: its consumer found, and delivered here or left to another replica.
func (d *Deliverer) runPartition(ctx context.Context, i int, name string, key rules.KeyPath, limit *limiter, bound func(bool)) {
	log := d.log.With("partition", i)
	wait := newBackoff()
	var cons jetstream.Consumer // kept across sessions: the pin lives in it
	for ctx.Err() == nil {
		open, changed := d.gate.State()
		if !open {
			bound(false)
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		if cons == nil {
			c, err := d.js.Consumer(ctx, bus.EventsStream, name)
			if err != nil {
				bound(false)
				if ctx.Err() == nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
					log.Warn("binding to the partition's consumer failed; retrying", "consumer", name, "error", err)
				}
				wait.sleep(ctx)
				continue
			}
			cons = c
		}
		bound(true)
		if !d.owns(i) {
			_ = pace.Sleep(ctx, ownershipCheck)
			continue
		}
		log.Debug("delivering partition", "consumer", name)
		handover, err := d.partitionSession(ctx, cons, i, key, limit)
		if handover && ctx.Err() == nil {
			// Every event received is settled: the next owner starts where this one stopped.
			uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := d.js.Conn().Flush()
			if err == nil {
				var s jetstream.Stream
				if s, err = d.js.Stream(uctx, bus.EventsStream); err == nil {
					err = s.UnpinConsumer(uctx, name, rules.PriorityGroup)
				}
			}
			cancel()
			if err != nil {
				// The other replica gets the partition after PinnedTTL instead.
				log.Warn("handing the partition over: unpinning failed", "error", err)
			} else {
				log.Info("partition handed over to another replica")
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("pulling from the partition stopped; rebinding", "error", err)
			cons = nil
			wait.sleep(ctx)
			continue
		}
		wait.reset()
	}
}

// partitionSession receives from the partition until ctx ends, the gate closes, the
// partition is no longer this deliverer's (handover true) or pulling fails. Events of its
// keys still held when it ends are neither acknowledged nor handed back: the next session,
// here or elsewhere, rewinds the partition and receives them again in order.
func (d *Deliverer) partitionSession(ctx context.Context, cons jetstream.Consumer, i int, key rules.KeyPath, limit *limiter) (handover bool, err error) {
	sessCtx, end := context.WithCancel(ctx)
	defer end()
	var lost atomic.Bool
	_, gateChanged := d.gate.State()
	go func() {
		t := time.NewTicker(ownershipCheck)
		defer t.Stop()
		for {
			select {
			case <-sessCtx.Done():
				return
			case <-gateChanged:
				end()
				return
			case <-t.C:
				if !d.owns(i) {
					lost.Store(true)
					end()
					return
				}
			}
		}
	}()

	ackWait := cons.CachedInfo().Config.AckWait
	p := newPartition(d, sessCtx, ackWait, i, key, limit)
	defer func() { p.wait() }()
	pin := ""
	var nextReclaim time.Time
	for sessCtx.Err() == nil {
		// Asked at most every half pin TTL, not at each 1 s fetch: an idle partition's
		// owner would otherwise load the JetStream API with a consumer info a second.
		if now := time.Now(); pin == "" && !now.Before(nextReclaim) {
			d.reclaim(sessCtx, cons, i)
			nextReclaim = now.Add(rules.PinnedTTL / 2)
		}
		batch, err := cons.Fetch(rules.PartitionWindow, jetstream.FetchMaxWait(rules.PartitionPullExpiry),
			jetstream.FetchPriorityGroup(rules.PriorityGroup))
		if err != nil {
			if sessCtx.Err() != nil {
				break
			}
			return false, err
		}
		rewind := false
		for msg := range batch.Messages() {
			if rewind || sessCtx.Err() != nil {
				continue // dropped: received again after the rewind
			}
			h := msg.Headers()
			if got := h.Get("Nats-Pin-Id"); got != pin {
				rewind, pin = true, got
				continue
			}
			h.Del("Nats-Pin-Id") // not the event's: kept out of DLQ records
			p.dispatch(msg)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrPinIDMismatch) && sessCtx.Err() == nil && !rewind {
			d.log.Debug("fetch ended", "partition", i, "error", err)
		}
		if rewind && sessCtx.Err() == nil {
			// Pinned anew: let what this replica still delivers finish, then rewind.
			p.wait()
			p = newPartition(d, sessCtx, ackWait, i, key, limit)
			rctx, cancel := context.WithTimeout(sessCtx, 10*time.Second)
			resp, err := d.js.ResetConsumer(rctx, bus.EventsStream, cons.CachedInfo().Name)
			cancel()
			if err == nil {
				d.log.Debug("partition pinned here; rewound to its ack floor", "partition", i, "from_sequence", resp.ResetSeq)
			}
			if err != nil {
				pin = "" // rewind again before delivering anything
				if sessCtx.Err() == nil {
					d.log.Warn("rewinding the partition to its ack floor failed; retrying", "partition", i, "error", err)
					_ = pace.Sleep(sessCtx, time.Second)
				}
			}
		}
	}
	end()
	p.wait()
	// Unpinning is for the replica that held the partition: another's pin is left alone.
	return lost.Load() && pin != "" && ctx.Err() == nil, nil
}

// reclaim rewinds a partition that nobody holds but that has events out: those of a
// replica gone without settling them. JetStream would hand them out again only after
// their ack wait, and the pin goes to whoever receives the next event, so without this
// the new owner would wait the ack wait out.
func (d *Deliverer) reclaim(ctx context.Context, cons jetstream.Consumer, i int) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil || info.NumAckPending == 0 {
		return
	}
	for _, g := range info.PriorityGroups {
		if g.Group == rules.PriorityGroup && g.PinnedClientID != "" {
			return // held, or its holder's pin has not expired yet
		}
	}
	if _, err := d.js.ResetConsumer(ctx, bus.EventsStream, info.Name); err != nil {
		d.log.Warn("reclaiming the events of a replica gone failed; retrying", "partition", i, "error", err)
		return
	}
	d.log.Info("reclaimed the events a replica left unsettled", "partition", i, "events", info.NumAckPending)
}

// partition delivers the events one session receives: per key one at a time, in order.
type partition struct {
	d        *Deliverer
	stopping context.Context
	stop     context.CancelFunc
	ackWait  time.Duration
	index    int
	n        int
	key      rules.KeyPath
	slots    chan struct{}
	limit    *limiter
	wg       sync.WaitGroup

	mu     sync.Mutex
	queues map[string][]jetstream.Msg // per key: the event being delivered, then those behind it
}

// newPartition starts delivering for a session; the events it holds are delivered until
// session ends or wait is called.
func newPartition(d *Deliverer, session context.Context, ackWait time.Duration, i int, key rules.KeyPath, limit *limiter) *partition {
	n := d.rule.Delivery.PartitionCount()
	share := max(1, (d.rule.Delivery.MaxConcurrency+n-1)/n)
	stopping, stop := context.WithCancel(session)
	p := &partition{d: d, stopping: stopping, stop: stop, ackWait: ackWait, index: i, n: n, key: key,
		slots: make(chan struct{}, share), limit: limit, queues: map[string][]jetstream.Msg{}}
	// Events waiting behind their key keep their ack wait alive, or JetStream would hand
	// them out again meanwhile.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(max(time.Second, ackWait/3))
		defer t.Stop()
		for {
			select {
			case <-p.stopping.Done():
				return
			case <-t.C:
				p.mu.Lock()
				for _, q := range p.queues {
					for _, m := range q {
						_ = m.InProgress()
					}
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// dispatch acknowledges an event of another partition, and queues one of this
// partition behind its key (without a key it goes at once, as on an unordered rule).
func (p *partition) dispatch(msg jetstream.Msg) {
	d := p.d
	header := msg.Headers()
	part, k, keyed := p.key.PartitionOf(header, msg.Data(), p.n)
	if part != p.index {
		_ = msg.Ack()
		return
	}
	if d.residual && !bus.IsDirect(msg.Subject()) && !d.matches(header, msg.Data()) {
		_ = msg.Ack()
		d.count(resultFiltered)
		return
	}
	if !keyed {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.slots <- struct{}{}
			defer func() { <-p.slots }()
			if p.limit.wait(p.stopping) == nil {
				d.handle(p.stopping, msg, p.ackWait)
			}
		}()
		return
	}
	p.mu.Lock()
	q, busy := p.queues[k]
	p.queues[k] = append(q, msg)
	p.mu.Unlock()
	if !busy {
		p.wg.Add(1)
		go p.drain(k)
	}
}

// drain delivers key's events one after the other until its queue is empty.
func (p *partition) drain(k string) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		q := p.queues[k]
		if len(q) == 0 || p.stopping.Err() != nil {
			delete(p.queues, k)
			p.mu.Unlock()
			return
		}
		msg := q[0]
		p.mu.Unlock()
		p.slots <- struct{}{}
		settled := p.deliver(msg)
		<-p.slots
		if !settled {
			return // the session is ending; the queue is left for the next one
		}
		p.mu.Lock()
		p.queues[k] = p.queues[k][1:]
		p.mu.Unlock()
	}
}

// deliver makes attempts at one event until it is delivered or dead-lettered, waiting
// out each retry's backoff in place; false when the session ends first.
func (p *partition) deliver(msg jetstream.Msg) bool {
	d := p.d
	attempt, stored := 1, time.Time{}
	if meta, err := msg.Metadata(); err == nil {
		attempt, stored = int(meta.NumDelivered), meta.Timestamp
	}
	for {
		if p.limit.wait(p.stopping) != nil {
			return false
		}
		res := d.send(msg, p.ackWait, attempt)
		if res.Outcome == Unreachable {
			res = d.holdUnreachable(p.stopping, msg, p.ackWait, res)
		}
		if (res.Outcome != Delivered && d.abort.Err() != nil) || (res.Outcome == Unreachable && p.stopping.Err() != nil) {
			return false
		}
		if res.Outcome != Unreachable {
			d.reachable()
		}
		switch {
		case res.Outcome == Delivered:
			d.settleAttempt(msg, attempt, stored, res)
			return true
		case res.Outcome == Reject || attempt >= d.rule.Delivery.MaxAttempts:
			reason := dlq.ReasonDeliveryFailed
			if res.Outcome == Reject {
				reason = dlq.ReasonDeliveryRejected
			}
			for !d.writeDeadLetter(msg, reason, attempt, res) {
				if !waitHolding(p.stopping, []jetstream.Msg{msg}, d.retryDelay(attempt, 0), p.ackWait) {
					return false
				}
			}
			return true
		}
		delay := d.retryDelay(attempt, res.RetryAfter)
		d.retries.note(msg, RetryNote{Attempt: attempt, Status: res.Status, Error: res.Error, NextAt: time.Now().Add(delay).UTC(), Service: d.rule.Target.Service})
		d.count(resultRetried)
		if !waitHolding(p.stopping, []jetstream.Msg{msg}, delay, p.ackWait) {
			return false
		}
		attempt++
	}
}

// wait stops taking events from the queues and returns once the deliveries under way
// have ended. Events left in the queues are not settled: the rewind that starts the next
// session brings them back.
func (p *partition) wait() {
	p.stop()
	p.wg.Wait()
}

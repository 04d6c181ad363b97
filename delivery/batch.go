package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/pace"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BatchTarget delivers several stored events in one request (a CloudEvents batch) and
// says what became of each, in order.
type BatchTarget interface {
	SendBatch(ctx context.Context, events []StoredEvent) []Result
}

// StoredEvent is one event of a batch, as stored.
type StoredEvent struct {
	Header map[string][]string
	Data   []byte
}

// pumpBatches is pump for a batch rule: it gathers up to maxEvents events (each holding
// one of the rule's slots, so maxConcurrency still counts events), closes the batch when
// it is full or maxWait after its first event, and sends it while the next one fills.
func (d *Deliverer) pumpBatches(stopping context.Context, iter jetstream.MessagesContext, sem chan struct{}, wg *sync.WaitGroup,
	limit *limiter, maxEvents int, maxWait, ackWait time.Duration) error {
	for {
		sem <- struct{}{}
		first, err := iter.Next()
		if err != nil {
			<-sem
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		batch := []jetstream.Msg{first}
		deadline := time.Now().Add(maxWait)
	filling:
		for len(batch) < maxEvents {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			select {
			case sem <- struct{}{}:
			case <-time.After(wait):
				break filling
			case <-stopping.Done():
				break filling
			}
			m, err := iter.Next(jetstream.NextMaxWait(max(time.Millisecond, time.Until(deadline))))
			if err != nil {
				<-sem
				if errors.Is(err, nats.ErrTimeout) {
					break
				}
				d.dispatch(stopping, batch, sem, wg, ackWait) // what was gathered still goes out
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return nil
				}
				return err
			}
			batch = append(batch, m)
		}
		for range batch {
			if limit.wait(stopping) != nil {
				break
			}
		}
		d.dispatch(stopping, batch, sem, wg, ackWait)
	}
}

// dispatch sends a gathered batch on its own goroutine, or hands it back when stopping.
func (d *Deliverer) dispatch(stopping context.Context, batch []jetstream.Msg, sem chan struct{}, wg *sync.WaitGroup, ackWait time.Duration) {
	if stopping.Err() != nil {
		for _, m := range batch {
			d.release(m)
			<-sem
		}
		return
	}
	send := func() {
		defer func() {
			for range batch {
				<-sem
			}
		}()
		d.handleBatch(batch, ackWait)
	}
	if d.rule.Delivery.Ordered {
		send() // the next batch is gathered only once this one is settled
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		send()
	}()
}

// handleBatch makes one batch request and settles each event by its own result: a
// delivered one is acknowledged, one to retry backs off (or is dead-lettered once its own
// attempts are used up), one dropped is dead-lettered at once. An ordered rule's batch
// goes to handleOrderedBatch instead.
func (d *Deliverer) handleBatch(batch []jetstream.Msg, ackWait time.Duration) {
	if d.rule.Delivery.Ordered {
		d.handleOrderedBatch(batch, ackWait)
		return
	}
	results, ok := d.sendBatch(batch, ackWait)
	if !ok {
		return
	}
	for i, m := range batch {
		res := results[i]
		if res.Outcome != Delivered && d.abort.Err() != nil {
			d.release(m) // cut short by shutdown: not the handler's failure
			continue
		}
		d.settle(m, res)
	}
}

// handleOrderedBatch keeps an ordered rule's order through failures: the events before
// the first one to retry are settled, and that one and every later one are sent again,
// as a batch, once its backoff has passed. Later events the handler took are sent again
// too (at-least-once), since taking only them would put them before the failed one.
func (d *Deliverer) handleOrderedBatch(batch []jetstream.Msg, ackWait time.Duration) {
	attempts := make([]int, len(batch))
	for i, m := range batch {
		attempts[i] = 1
		if meta, err := m.Metadata(); err == nil {
			attempts[i] = int(meta.NumDelivered)
		}
	}
	for len(batch) > 0 {
		results, ok := d.sendBatch(batch, ackWait)
		if !ok {
			return
		}
		failed := len(batch)
		for i, res := range results {
			if res.Outcome == Retry || res.Outcome == Unreachable || res.Outcome != Delivered && d.abort.Err() != nil {
				failed = i
				break
			}
		}
		for i, m := range batch[:failed] {
			d.settleAttempt(m, attempts[i], time.Time{}, results[i])
		}
		if failed == len(batch) {
			return
		}
		if d.abort.Err() != nil {
			for _, m := range batch[failed:] {
				d.release(m) // cut short by shutdown; handed back in order
			}
			return
		}
		head, res := batch[failed], results[failed]
		batch, attempts = batch[failed:], attempts[failed:]
		if attempts[0] >= d.rule.Delivery.MaxAttempts {
			d.deadLetter(head, dlq.ReasonDeliveryFailed, attempts[0], res)
			batch, attempts = batch[1:], attempts[1:]
			continue
		}
		delay := d.retryDelay(attempts[0], res.RetryAfter)
		d.retries.note(head, RetryNote{Attempt: attempts[0], Status: res.Status, Error: res.Error, NextAt: time.Now().Add(delay).UTC(), Service: d.rule.Target.Service})
		d.count(resultRetried)
		if !waitHolding(d.abort, batch, delay, ackWait) {
			for _, m := range batch {
				d.release(m)
			}
			return
		}
		for i := range attempts {
			attempts[i]++
		}
	}
}

// waitHolding waits out a retry's backoff in place, keeping held's ack wait alive; false
// when ctx ends first.
func waitHolding(ctx context.Context, held []jetstream.Msg, delay, ackWait time.Duration) bool {
	for _, m := range held {
		defer keepAlive(m, max(time.Second, ackWait/3))()
	}
	return pace.Sleep(ctx, delay) == nil
}

// sendBatch makes one batch request; false when the target takes no batches (the events
// are then dead-lettered).
func (d *Deliverer) sendBatch(batch []jetstream.Msg, ackWait time.Duration) ([]Result, bool) {
	bt, ok := d.target.(BatchTarget)
	if !ok {
		for _, m := range batch {
			d.deadLetter(m, dlq.ReasonDeliveryRejected, 1, Result{Outcome: Reject, Error: "the target cannot take batches"})
		}
		return nil, false
	}
	events := make([]StoredEvent, len(batch))
	for i, m := range batch {
		events[i] = StoredEvent{Header: m.Headers(), Data: m.Data()}
	}
	ctx, cancel := context.WithTimeout(d.abort, d.rule.Delivery.Timeout.Std())
	defer cancel()
	if d.rule.Delivery.Timeout.Std() > ackWait-rules.AckWaitMargin {
		for _, m := range batch {
			defer keepAlive(m, ackWait/3)()
		}
	}
	d.m.inFlight.Add(float64(len(batch)))
	began := time.Now()
	results := bt.SendBatch(ctx, events)
	d.m.inFlight.Sub(float64(len(batch)))
	d.m.duration.Observe(time.Since(began).Seconds())
	return results, true
}

// MediaBatch is the content type of a batch request.
const MediaBatch = "application/cloudevents-batch+json"

// SendBatch implements BatchTarget: one POST of a CloudEvents batch (a JSON array of
// structured events). A non-2xx answer applies to every event, by the status table. A 2xx
// may name events to retry or drop, Dapr's bulk convention keyed by CloudEvent id:
// {"statuses": [{"id": "...", "status": "RETRY" | "DROP"}]}; the others are delivered.
func (t *HTTPTarget) SendBatch(ctx context.Context, events []StoredEvent) []Result {
	evs := make([]*event.Event, len(events))
	for i, e := range events {
		evs[i] = event.FromStored(e.Header, e.Data)
	}
	body := event.MarshalBatch(evs)
	header := map[string][]string{"Content-Type": {MediaBatch}}
	res, answer := t.post(ctx, header, body, false)
	out := make([]Result, len(events))
	if res.Outcome != Delivered {
		for i := range out {
			out[i] = res
		}
		return out
	}
	var statuses struct {
		Statuses []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"statuses"`
	}
	_ = json.Unmarshal(answer, &statuses) // anything else: every event delivered
	asked := make(map[string]string, len(statuses.Statuses))
	for _, s := range statuses.Statuses {
		asked[s.ID] = strings.ToUpper(s.Status)
	}
	for i, e := range evs {
		switch asked[e.ID] {
		case "RETRY":
			out[i] = Result{Outcome: Retry, Status: res.Status, Error: `handler answered {"status":"RETRY"} for this event`}
		case "DROP":
			out[i] = Result{Outcome: Reject, Status: res.Status, Error: `handler answered {"status":"DROP"} for this event`}
		default:
			out[i] = Result{Outcome: Delivered, Status: res.Status}
		}
	}
	return out
}

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
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			for range batch {
				<-sem
			}
		}()
		d.handleBatch(batch, ackWait)
	}()
}

// handleBatch makes one batch request and settles each event by its own result: a
// delivered one is acknowledged, one to retry backs off (or is dead-lettered once its own
// attempts are used up), one dropped is dead-lettered at once.
func (d *Deliverer) handleBatch(batch []jetstream.Msg, ackWait time.Duration) {
	bt, ok := d.target.(BatchTarget)
	if !ok {
		for _, m := range batch {
			d.deadLetter(m, dlq.ReasonDeliveryRejected, 1, Result{Outcome: Reject, Error: "the target cannot take batches"})
		}
		return
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
	for i, m := range batch {
		res := results[i]
		if res.Outcome != Delivered && d.abort.Err() != nil {
			d.release(m) // cut short by shutdown: not the handler's failure
			continue
		}
		d.settle(m, res)
	}
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

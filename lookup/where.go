package lookup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
)

// Where an event's delivery to a rule stands.
const (
	StateDelivered    = "delivered"     // acknowledged by the handler
	StateDeadLettered = "dead_lettered" // in the DLQ (DLQSeq), possibly redriven since
	StateRetrying     = "retrying"      // an attempt failed; another is scheduled
	StateInFlight     = "in_flight"     // handed to a sidecar, not yet acknowledged
	StateWaiting      = "waiting"       // stored, not yet handed out
	StatePaused       = "paused"        // waiting behind a paused rule
	StateNoConsumer   = "no_consumer"   // the rule's consumer does not exist (yet)
	StateBefore       = "before_rule"   // stored before the rule's consumer started
	StateScheduled    = "scheduled"     // a delayed event, not due yet
)

// RuleState is where an event stands for one rule that matches it.
type RuleState struct {
	Rule    string `json:"rule"`
	Service string `json:"service"`
	State   string `json:"state"`
	Detail  string `json:"detail,omitempty"`
	// Attempt is the last attempt made, when known (retrying, dead-lettered).
	Attempt int `json:"attempt,omitempty"`
	// DLQSeq is the DLQ record of a dead-lettered delivery.
	DLQSeq uint64 `json:"dlqSequence,omitempty"`
}

// Where tells, for each rule whose pattern matches the stored event, where its delivery
// stands, from the rule's consumer (ack floor, delivered sequence, pause), the retries
// bucket and the DLQ.
//
// Between the ack floor and the last sequence handed out, JetStream does not say which
// events were acknowledged out of order: such an event is reported in flight unless a
// retry note or a DLQ record says more.
func Where(ctx context.Context, js jetstream.JetStream, ev *Stored, rs []rules.Rule) ([]RuleState, error) {
	var out []RuleState
	structured := rules.StoredEvent(ev.Header, ev.Data, true)
	id := event.HeaderGet(ev.Header, "ce-id")
	for _, r := range rs {
		p, err := r.Compile()
		if err != nil || !p.Match(structured) {
			continue
		}
		st := RuleState{Rule: r.Name, Service: r.Target.Service}
		if !ev.ScheduledFor.IsZero() {
			st.State, st.Detail = StateScheduled, "a delayed event: reaches the rule no earlier than "+ev.ScheduledFor.UTC().Format(time.RFC3339Nano)
			out = append(out, st)
			continue
		}
		if err := where(ctx, js, ev, id, r, &st); err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		out = append(out, st)
	}
	return out, nil
}

func where(ctx context.Context, js jetstream.JetStream, ev *Stored, id string, r rules.Rule, st *RuleState) error {
	// An orderBy rule delivers the event from its key's partition.
	c, err := js.Consumer(ctx, bus.EventsStream, r.ConsumerNames()[r.PartitionOf(ev.Header, ev.Data)])
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		st.State, st.Detail = StateNoConsumer, "the rule's consumer does not exist yet (is the server reconciling?)"
		return nil
	}
	if err != nil {
		return err
	}
	info := c.CachedInfo()
	if rec, err := deadLetter(ctx, js, r.Name, id, ev.Time); err != nil {
		return err
	} else if rec != nil {
		st.State, st.DLQSeq, st.Attempt = StateDeadLettered, rec.Seq, rec.Record.Attempts
		st.Detail = fmt.Sprintf("DLQ #%d: %s after %d attempt(s): %s", rec.Seq, rec.Record.Reason, rec.Record.Attempts, rec.Record.Error)
		if marks, err := dlq.Marks(ctx, js, []uint64{rec.Seq}); err == nil {
			if m, ok := marks[rec.Seq]; ok {
				st.Detail += fmt.Sprintf("; redriven %s by %s (%s)", m.At.Format(time.RFC3339), m.By, m.Outcome)
			}
		}
		return nil
	}
	switch {
	case ev.Seq <= info.AckFloor.Stream:
		st.State = StateDelivered
		if info.Config.DeliverPolicy == jetstream.DeliverNewPolicy && ev.Time.Before(info.Created) {
			// A new rule starts at new events: this one was never its to deliver.
			st.State, st.Detail = StateBefore, "stored before the rule's consumer was created (it starts at new events)"
		}
	case ev.Seq > info.Delivered.Stream:
		st.State = StateWaiting
		st.Detail = fmt.Sprintf("%d event(s) of the rule waiting in all", info.NumPending)
		if info.Paused {
			st.State = StatePaused
			st.Detail = "the rule is paused"
			if until := info.Config.PauseUntil; until != nil && !rules.UntilResumed(*until) {
				st.Detail += " until " + until.UTC().Format(time.RFC3339)
			}
		}
	default:
		note, ok, err := delivery.ReadRetryNote(ctx, js, r.Name, ev.Seq)
		if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return err
		}
		if ok {
			st.State, st.Attempt = StateRetrying, note.Attempt
			st.Detail = fmt.Sprintf("attempt %d failed (%s); attempt %d at %s", note.Attempt, answer(note), note.Attempt+1, note.NextAt.Format(time.RFC3339))
		} else {
			st.State, st.Detail = StateInFlight, "handed to a sidecar of "+r.Target.Service+", not yet acknowledged"
		}
	}
	return nil
}

func answer(n delivery.RetryNote) string {
	switch {
	case n.Status > 0 && n.Error != "":
		return fmt.Sprintf("%d: %s", n.Status, n.Error)
	case n.Status > 0:
		return fmt.Sprintf("status %d", n.Status)
	}
	return n.Error
}

// deadLetter finds the rule's DLQ record of the event, if any: the latest, when a redriven
// event failed again.
func deadLetter(ctx context.Context, js jetstream.JetStream, rule, id string, stored time.Time) (*dlq.Stored, error) {
	var found *dlq.Stored
	err := dlq.Scan(ctx, js, dlq.Filter{Rule: rule, Since: stored.Add(-time.Second)}, nil, func(s dlq.Stored, _ uint64) error {
		if eid, _ := s.Record.EventRef(); eid == id {
			c := s
			found = &c
		}
		return nil
	})
	return found, err
}

// Located is a found event and where it stands for each rule that matches it.
type Located struct {
	Stored
	Rules []RuleState
}

// Locate finds the stored events with q.ID (Find) and tells, against the rules stored
// now, where each stands (Where): what `jetmesh events get` and the console's explorer
// show.
func Locate(ctx context.Context, js jetstream.JetStream, q Query) ([]Located, Stats, error) {
	found, stats, err := Find(ctx, js, q)
	if err != nil {
		return nil, stats, err
	}
	store, err := rules.OpenStore(ctx, js)
	if err != nil {
		return nil, stats, err
	}
	rs, err := store.List(ctx)
	if err != nil {
		return nil, stats, err
	}
	out := make([]Located, len(found))
	for i := range found {
		states, err := Where(ctx, js, &found[i], rs)
		if err != nil {
			return nil, stats, err
		}
		out[i] = Located{Stored: found[i], Rules: states}
	}
	return out, stats, nil
}

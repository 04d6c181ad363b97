package rules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Forever is how long a pause without an end lasts: JetStream pauses until a time.
const Forever = 100 * 365 * 24 * time.Hour

// UntilResumed reports whether a pause's end stands for "until resumed" (Forever from
// when it was set) rather than a time someone chose.
func UntilResumed(until time.Time) bool { return time.Until(until) > Forever/2 }

// ErrNoConsumer: the rule exists but its consumer does not (yet).
var ErrNoConsumer = errors.New("the rule has no consumer yet")

// Pause stops delivery of a rule until the given time (zero: until resumed). It uses
// JetStream's consumer pause: no event is handed out meanwhile, so no attempt is spent,
// the backlog is kept, and the state is stored with the consumer (it survives restarts;
// the reconciler keeps it). Events already handed to a sidecar before the pause finish
// their attempt.
// An orderBy rule's partitions are paused together.
func (s *Store) Pause(ctx context.Context, name string, until time.Time) (time.Time, error) {
	r, err := s.Get(ctx, name)
	if err != nil {
		return time.Time{}, err
	}
	if until.IsZero() {
		until = time.Now().Add(Forever)
	}
	var paused time.Time
	for _, c := range r.ConsumerNames() {
		resp, err := s.js.PauseConsumer(ctx, bus.EventsStream, c, until.UTC())
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return time.Time{}, fmt.Errorf("%s: %w", name, ErrNoConsumer)
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("pausing %s (consumer %s): %w", name, c, err)
		}
		paused = resp.PauseUntil
	}
	return paused, nil
}

// Resume lets a paused rule deliver again, its backlog first.
func (s *Store) Resume(ctx context.Context, name string) error {
	r, err := s.Get(ctx, name)
	if err != nil {
		return err
	}
	for _, c := range r.ConsumerNames() {
		_, err := s.js.ResumeConsumer(ctx, bus.EventsStream, c)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("%s: %w", name, ErrNoConsumer)
		}
		if err != nil {
			return fmt.Errorf("resuming %s (consumer %s): %w", name, c, err)
		}
	}
	return nil
}

// Package replay re-delivers a window of stored events to one rule, at a set pace, from
// inside the server. A replay is a key in the mesh-replays bucket: the CLI (or the
// console) writes it, a server's Runner claims it with a lease and copies each event of
// the window that matches the rule onto the rule's direct subject
// (rule.<rule>.replay.<id>), which only that rule's consumer reads, with the extension
// jetmeshreplay = <id> and a message id that makes the copy once-only. Progress and the
// cursor are written back every second, so a replay survives the CLI exiting and resumes
// where it was after a server restart. The rule's live events keep flowing meanwhile:
// the copies are interleaved with them in the stream at the replay's pace, not queued
// in front of them.
package replay

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
)

// States of a replay.
const (
	StatePending   = "pending"   // written, not claimed by a server yet
	StateRunning   = "running"   // a server is copying events
	StateDone      = "done"      // every event of the window was copied
	StateCancelled = "cancelled" // stopped by replay cancel
	StateFailed    = "failed"    // stopped by an error a retry would not fix (its Error says)
)

// Replay is a replay's definition and progress, as stored under its id.
type Replay struct {
	ID   string `json:"id"`
	Rule string `json:"rule"`
	// From and To bound the window by stored time, To included.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Rate is the most events per second copied; 0 is unpaced.
	Rate      float64   `json:"rate"`
	By        string    `json:"by,omitempty"`
	CreatedAt time.Time `json:"createdAt"`

	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Total is how many stored events of the window the rule's filter subjects take (the
	// rule's full pattern may still pass over some); Scanned of them were looked at, and
	// Replayed were copied to the rule.
	Total    uint64 `json:"total"`
	Scanned  uint64 `json:"scanned"`
	Replayed uint64 `json:"replayed"`
	// NextSeq is the EVENTS sequence to look at next; EndSeq the last one of the window
	// (fixed when the replay starts, so later events are never part of it).
	NextSeq uint64 `json:"nextSeq,omitempty"`
	EndSeq  uint64 `json:"endSeq,omitempty"`
	// LastCopySeq is the EVENTS sequence of the latest copy, for waiting on its delivery.
	LastCopySeq uint64 `json:"lastCopySeq,omitempty"`
	// Owner is the server running it; its claim lapses at LeaseUntil unless renewed.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	UpdatedAt  time.Time `json:"updatedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// RatePerSec is the pace measured over the last progress interval.
	RatePerSec float64 `json:"ratePerSec"`
}

// Finished reports whether the replay will do no more.
func (r *Replay) Finished() bool {
	return r.State == StateDone || r.State == StateCancelled || r.State == StateFailed
}

// ETA estimates the time left from the measured pace; 0 when unknown or finished.
func (r *Replay) ETA() time.Duration {
	if r.Finished() || r.RatePerSec <= 0 || r.Total <= r.Scanned {
		return 0
	}
	return time.Duration(float64(r.Total-r.Scanned) / r.RatePerSec * float64(time.Second)).Round(time.Second)
}

// Errors of the client calls.
var (
	ErrNotFound = errors.New("no such replay")
	ErrFinished = errors.New("the replay has finished already")
)

// Request is what replay start asks for.
type Request struct {
	Rule     string
	From, To time.Time
	Rate     float64
	By       string
}

// Validate names what is wrong with the request; now is the reference for "in the future".
func (q Request) Validate(now time.Time) error {
	var errs []error
	if q.Rule == "" {
		errs = append(errs, errors.New("a replay needs a rule"))
	}
	if q.From.IsZero() {
		errs = append(errs, errors.New("a replay needs the start of its window (from)"))
	}
	if !q.To.IsZero() && !q.To.After(q.From) {
		errs = append(errs, fmt.Errorf("the window ends (%s) before it starts (%s)", q.To.Format(time.RFC3339), q.From.Format(time.RFC3339)))
	}
	if q.From.After(now) {
		errs = append(errs, fmt.Errorf("the window starts in the future (%s)", q.From.Format(time.RFC3339)))
	}
	if q.Rate < 0 {
		errs = append(errs, errors.New("the rate must be 0 (unpaced) or a number of events per second"))
	}
	return errors.Join(errs...)
}

// Start writes a new replay of an existing rule for the servers to run and returns it. A
// window without an end ends now: events stored after the replay starts are not part of it.
func Start(ctx context.Context, js jetstream.JetStream, q Request) (*Replay, error) {
	now := time.Now().UTC()
	if err := q.Validate(now); err != nil {
		return nil, err
	}
	store, err := rules.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	if _, err := store.Get(ctx, q.Rule); err != nil {
		return nil, err
	}
	to := q.To
	if to.IsZero() || to.After(now) {
		to = now
	}
	r := &Replay{ID: newID(now), Rule: q.Rule, From: q.From.UTC(), To: to.UTC(), Rate: q.Rate, By: q.By,
		CreatedAt: now, State: StatePending, UpdatedAt: now}
	kv, err := bucket(ctx, js)
	if err != nil {
		return nil, err
	}
	if _, err := kv.Create(ctx, r.ID, encode(r)); err != nil {
		return nil, fmt.Errorf("storing replay %s: %w", r.ID, err)
	}
	return r, nil
}

// Get reads one replay.
func Get(ctx context.Context, js jetstream.JetStream, id string) (*Replay, error) {
	kv, err := bucket(ctx, js)
	if err != nil {
		return nil, err
	}
	r, _, err := get(ctx, kv, id)
	return r, err
}

// List returns every replay the bucket keeps, newest first.
func List(ctx context.Context, js jetstream.JetStream) ([]*Replay, error) {
	kv, err := bucket(ctx, js)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing replays: %w", err)
	}
	var out []*Replay
	for key := range lister.Keys() {
		r, _, err := get(ctx, kv, key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Replay) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Cancel stops a replay that has not finished; copies already made are still delivered.
func Cancel(ctx context.Context, js jetstream.JetStream, id string) (*Replay, error) {
	kv, err := bucket(ctx, js)
	if err != nil {
		return nil, err
	}
	for {
		r, rev, err := get(ctx, kv, id)
		if err != nil {
			return nil, err
		}
		if r.Finished() {
			return r, fmt.Errorf("%w (%s)", ErrFinished, r.State)
		}
		r.State, r.FinishedAt, r.UpdatedAt = StateCancelled, time.Now().UTC(), time.Now().UTC()
		if _, err := kv.Update(ctx, id, encode(r), rev); err == nil {
			return r, nil
		} else if !isConflict(err) {
			return nil, fmt.Errorf("cancelling replay %s: %w", id, err)
		}
		// The runner wrote progress meanwhile: read it again.
	}
}

func bucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bus.ReplaysBucket)
	if err != nil {
		return nil, fmt.Errorf("the %s bucket: %w (is a jetmesh server running against this NATS?)", bus.ReplaysBucket, err)
	}
	return kv, nil
}

func get(ctx context.Context, kv jetstream.KeyValue, id string) (*Replay, uint64, error) {
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, fmt.Errorf("%w: %s (see 'jetmesh replay ls')", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading replay %s: %w", id, err)
	}
	r, err := decode(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("replay %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

func encode(r *Replay) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain struct
	}
	return b
}

func decode(b []byte) (*Replay, error) {
	var r Replay
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		errors.Is(err, jetstream.ErrKeyExists)
}

// newID is sortable by creation time and unique: rp-<UTC time>-<random>. It is a valid
// KV key and subject token.
func newID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("rp-%s-%x", strings.ReplaceAll(now.Format("20060102-150405"), "-", "t"), b)
}

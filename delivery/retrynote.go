package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// RetryNote is what the retries bucket says of an event being retried, so an operator's
// lookup can tell "retrying, attempt 3, the handler answered 503" from "in flight".
type RetryNote struct {
	Attempt int       `json:"attempt"`
	Status  int       `json:"status,omitempty"`
	Error   string    `json:"error,omitempty"`
	NextAt  time.Time `json:"nextAt"`
	Service string    `json:"service,omitempty"`
}

// RetryKey is the key of an event's note: <rule>.<stream sequence>.
func RetryKey(rule string, seq uint64) string { return rule + "." + strconv.FormatUint(seq, 10) }

// ReadRetryNote returns the note of an event, ok false when it is not being retried.
func ReadRetryNote(ctx context.Context, js jetstream.JetStream, rule string, seq uint64) (RetryNote, bool, error) {
	kv, err := js.KeyValue(ctx, bus.RetriesBucket)
	if err != nil {
		return RetryNote{}, false, err
	}
	e, err := kv.Get(ctx, RetryKey(rule, seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return RetryNote{}, false, nil
	}
	if err != nil {
		return RetryNote{}, false, err
	}
	var n RetryNote
	if err := json.Unmarshal(e.Value(), &n); err != nil {
		return RetryNote{}, false, err
	}
	return n, true, nil
}

// retryNotes writes and clears notes; only failures and the settling of a retried event
// write, so a healthy rule pays nothing. A note that cannot be written is only a poorer
// lookup: errors are ignored.
type retryNotes struct {
	kv   jetstream.KeyValue
	rule string
}

func openRetryNotes(ctx context.Context, js jetstream.JetStream, rule string) *retryNotes {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.RetriesBucket)
	if err != nil {
		return nil // a server without the bucket (older), or no right to it
	}
	return &retryNotes{kv: kv, rule: rule}
}

func (n *retryNotes) note(msg jetstream.Msg, note RetryNote) {
	if n == nil {
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		return
	}
	b, _ := json.Marshal(note)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = n.kv.Put(ctx, RetryKey(n.rule, md.Sequence.Stream), b)
}

// clear removes the note of an event settled after a retry.
func (n *retryNotes) clear(msg jetstream.Msg, attempt int) {
	if n == nil || attempt < 2 {
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = n.kv.Purge(ctx, RetryKey(n.rule, md.Sequence.Stream))
}

package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Filter selects records. The zero Filter selects every record.
type Filter struct {
	// Rule keeps failed deliveries of this rule only.
	Rule string
	// Reasons keeps records with one of these reasons; empty keeps every reason.
	Reasons []string
	// Since keeps records stored at or after this time; zero keeps all.
	Since time.Time
	// Seqs keeps these records only (DLQ stream sequences); the other fields still apply.
	Seqs []uint64
}

// IsDeliveryReason reports whether a reason is a failed delivery (a record of a rule),
// as opposed to an ingress rejection.
func IsDeliveryReason(reason string) bool {
	return reason == ReasonDeliveryFailed || reason == ReasonDeliveryRejected
}

// Validate names what is wrong with the filter: an unknown reason, or a rule together
// with ingress reasons, which have no rule.
func (f Filter) Validate() error {
	for _, r := range f.Reasons {
		if !slices.Contains(Reasons, r) {
			return fmt.Errorf("%q is not a DLQ reason; the reasons are %v", r, Reasons)
		}
		if f.Rule != "" && !IsDeliveryReason(r) {
			return fmt.Errorf("reason %s is an ingress rejection, which has no rule", r)
		}
	}
	return nil
}

// subjects are the narrowest filter subjects for f: ingress records are filed by reason,
// delivery records by rule and reason (or by rule alone, written by older versions).
func (f Filter) subjects() []string {
	delivery, ingress := 0, 0
	for _, r := range f.Reasons {
		if IsDeliveryReason(r) {
			delivery++
		} else {
			ingress++
		}
	}
	switch {
	case f.Rule != "" && delivery == 1:
		return []string{RuleSubject(f.Rule), RuleSubject(f.Rule) + "." + f.Reasons[0]}
	case f.Rule != "":
		return []string{RuleSubject(f.Rule), RuleSubject(f.Rule) + ".>"}
	case len(f.Reasons) == 0:
		return []string{bus.DLQSubjects}
	case ingress == 0:
		return []string{"dlq.rule.>"}
	case delivery == 0 && ingress == 1:
		return []string{"dlq.ingress." + f.Reasons[0]}
	case delivery == 0:
		return []string{"dlq.ingress.>"}
	}
	return []string{bus.DLQSubjects}
}

func (f Filter) keeps(s *Stored) bool {
	if len(f.Reasons) > 0 && !slices.Contains(f.Reasons, s.Record.Reason) {
		return false
	}
	if f.Rule != "" && s.Record.Rule != f.Rule {
		return false
	}
	return f.Since.IsZero() || !s.Stored.Before(f.Since)
}

// Stored is a record with its place in the DLQ stream.
type Stored struct {
	Seq     uint64
	Subject string
	// Stored is when the DLQ stream stored it.
	Stored time.Time
	Record *Record
}

// Scan calls fn with each record f selects, oldest first, and with how many records the
// scan may still visit (an upper bound, for progress). A record that cannot be parsed
// goes to bad, when set, and is skipped. fn's error ends the scan and is returned.
func Scan(ctx context.Context, js jetstream.JetStream, f Filter, bad func(seq uint64, err error), fn func(s Stored, remaining uint64) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if len(f.Seqs) > 0 {
		return scanSeqs(ctx, js, f, bad, fn)
	}
	cfg := jetstream.ConsumerConfig{FilterSubjects: f.subjects(), DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, Replicas: 1, MemoryStorage: true}
	if !f.Since.IsZero() {
		start := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cons, err := bus.PlaceReader(ctx, nil, func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateConsumer(ctx, bus.DLQStream, cfg)
	})
	if err != nil {
		return fmt.Errorf("reading the DLQ: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, bus.DLQStream, cons.CachedInfo().Name)
	}()
	for pending := cons.CachedInfo().NumPending; pending > 0; {
		batch, err := cons.Fetch(min(int(pending), 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("reading the DLQ: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			pending = md.NumPending
			rec, err := Parse(m.Headers(), m.Data())
			if err != nil {
				if bad != nil {
					bad(md.Sequence.Stream, err)
				}
				continue
			}
			s := Stored{Seq: md.Sequence.Stream, Subject: m.Subject(), Stored: md.Timestamp, Record: rec}
			if !f.keeps(&s) {
				continue
			}
			if err := fn(s, pending); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("reading the DLQ: %w", err)
		}
		if got == 0 {
			break
		}
	}
	return nil
}

func scanSeqs(ctx context.Context, js jetstream.JetStream, f Filter, bad func(uint64, error), fn func(Stored, uint64) error) error {
	seqs := slices.Clone(f.Seqs)
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	for i, seq := range seqs {
		s, err := Get(ctx, js, seq)
		if err != nil {
			if errors.Is(err, ErrNoRecord) || bad == nil {
				return err
			}
			bad(seq, err)
			continue
		}
		if !f.keeps(s) {
			continue
		}
		if err := fn(*s, uint64(len(seqs)-i-1)); err != nil {
			return err
		}
	}
	return nil
}

// ErrNoRecord is returned by Get for a sequence the DLQ does not hold.
var ErrNoRecord = errors.New("no DLQ record")

// Get reads one record by its DLQ sequence.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (*Stored, error) {
	st, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("DLQ stream: %w", err)
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w #%d (see 'jetmesh dlq ls')", ErrNoRecord, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("DLQ record #%d: %w", seq, err)
	}
	rec, err := Parse(m.Header, m.Data)
	if err != nil {
		return nil, fmt.Errorf("DLQ record #%d: %w", seq, err)
	}
	return &Stored{Seq: seq, Subject: m.Subject, Stored: m.Time, Record: rec}, nil
}

// Last returns the last limit records f selects, oldest first.
func Last(ctx context.Context, js jetstream.JetStream, f Filter, limit int, bad func(uint64, error)) ([]Stored, error) {
	ring := make([]Stored, 0, limit)
	err := Scan(ctx, js, f, bad, func(s Stored, _ uint64) error {
		if len(ring) == limit {
			ring = append(ring[:0], ring[1:]...)
		}
		ring = append(ring, s)
		return nil
	})
	return ring, err
}

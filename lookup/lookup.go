// Package lookup finds a stored event by id and tells, for each rule it matches, where
// its delivery stands.
//
// JetStream has no index by header, and scanning the headers of a 10-million-event stream
// takes about a minute here, so jetmesh keeps its own id index (see Indexer), off the
// publish path: a lookup reads the 1/16 of the index its id hashes to, then the few events
// stored since the index was last brought up to date. --since narrows both to the time
// after it; --type keeps the events of that type.
package lookup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound means no stored event has the id in the window looked at.
var ErrNotFound = errors.New("not found")

// Query says what to look for.
type Query struct {
	ID string
	// Type, when set, looks only at events of this type.
	Type string
	// Since, when set, looks only at events stored from then on.
	Since time.Time
	// Progress, when set, hears how many stored events were looked at, of how many.
	Progress func(scanned, total uint64)
}

// Stored is one stored event found.
type Stored struct {
	Seq     uint64              `json:"sequence"`
	Subject string              `json:"subject"`
	Time    time.Time           `json:"stored"`
	Header  map[string][]string `json:"header"`
	Data    []byte              `json:"-"`
	// Principal is who published it (access control on), from jetmeshprincipal.
	Principal string `json:"principal,omitempty"`
	// ScheduledFor is set for a delayed event not yet due: it waits as a message schedule
	// and reaches the rules at that time.
	ScheduledFor time.Time `json:"scheduledFor,omitzero"`
}

// Stats say how the lookup went.
type Stats struct {
	// IndexEntries is how many index entries were read; Scanned how many stored events'
	// headers were read past the index's reach.
	IndexEntries uint64        `json:"indexEntries"`
	Scanned      uint64        `json:"scanned"`
	Elapsed      time.Duration `json:"elapsedNs"`
}

// Find returns every stored event with q.ID (an id may repeat beyond the duplicate
// window, or from two sources), oldest first.
func Find(ctx context.Context, js jetstream.JetStream, q Query) ([]Stored, Stats, error) {
	began := time.Now()
	var stats Stats
	if q.ID == "" {
		return nil, stats, errors.New("lookup: an id is needed")
	}
	filter := bus.EventsSubjects
	if q.Type != "" {
		if err := event.ValidateType(q.Type); err != nil {
			return nil, stats, fmt.Errorf("--type: %w", err)
		}
		filter = event.SubjectPrefix + q.Type
	}
	stream, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return nil, stats, fmt.Errorf("stream %s: %w", bus.EventsStream, err)
	}
	floor := indexed(ctx, js)
	var candidates []uint64
	if floor > 0 {
		if candidates, stats.IndexEntries, err = fromIndex(ctx, js, q.ID, q.Since); err != nil {
			return nil, stats, err
		}
	}
	found, scanned, err := scan(ctx, stream, filter, q, floor+1)
	stats.Scanned = scanned
	if err != nil {
		return nil, stats, err
	}
	// Delayed events not yet due wait as schedules; fired ones are removed, so few remain.
	waiting, scanned, err := scan(ctx, stream, bus.ScheduledSubjects, Query{ID: q.ID}, 1)
	stats.Scanned += scanned
	if err != nil {
		return nil, stats, err
	}
	for _, w := range waiting {
		if err := fill(ctx, stream, &w); err != nil {
			continue // fired meanwhile: the scan of EVENTS or the index has it
		}
		if q.Type == "" || event.HeaderGet(w.Header, "Nats-Schedule-Target") == filter {
			w.ScheduledFor, _ = time.Parse(time.RFC3339Nano, strings.TrimPrefix(event.HeaderGet(w.Header, "Nats-Schedule"), "@at "))
			found = append(found, w)
		}
	}
	slices.Sort(candidates)
	for _, seq := range slices.Compact(candidates) {
		if seq > floor {
			continue // the scan covered it
		}
		s := Stored{Seq: seq}
		if err := fill(ctx, stream, &s); errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired since it was indexed
		} else if err != nil {
			return nil, stats, err
		}
		if !matches(s.Header, q.ID) || q.Type != "" && s.Subject != filter || !q.Since.IsZero() && s.Time.Before(q.Since) {
			continue // another id with the same hash, or outside what was asked
		}
		found = append(found, s)
	}
	for i := range found {
		if found[i].Header == nil {
			if err := fill(ctx, stream, &found[i]); err != nil {
				return nil, stats, err
			}
		}
	}
	slices.SortFunc(found, func(a, b Stored) int { return cmp.Compare(a.Seq, b.Seq) })
	stats.Elapsed = time.Since(began)
	if len(found) == 0 {
		return nil, stats, fmt.Errorf("%w (%s)", ErrNotFound, describe(q))
	}
	return found, stats, nil
}

func matches(h map[string][]string, id string) bool {
	if v := event.HeaderGet(h, event.HeaderMsgID); v != "" {
		return v == id
	}
	return event.HeaderGet(h, "ce-id") == id
}

func describe(q Query) string {
	s := "looked at every stored event"
	if q.Type != "" {
		s = "looked at every stored event of type " + q.Type
	}
	if !q.Since.IsZero() {
		s += " since " + q.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// scan reads the headers of the events on filter from sequence from on (and from
// q.Since) and keeps those with the id.
func scan(ctx context.Context, stream jetstream.Stream, filter string, q Query, from uint64) ([]Stored, uint64, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, HeadersOnly: true,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from, InactiveThreshold: time.Minute}
	if from <= 1 && !q.Since.IsZero() {
		since := q.Since
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &since
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("scanning EVENTS: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("scanning EVENTS: %w", err)
	}
	total := info.NumPending
	var (
		found   []Stored
		scanned uint64
	)
	for remaining := total; remaining > 0; {
		batch, err := cons.Fetch(int(min(remaining, 10000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, scanned, fmt.Errorf("scanning EVENTS: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			scanned++
			md, err := m.Metadata()
			if err != nil {
				return nil, scanned, err
			}
			remaining = md.NumPending
			if !q.Since.IsZero() && md.Timestamp.Before(q.Since) {
				continue
			}
			if matches(m.Headers(), q.ID) {
				found = append(found, Stored{Seq: md.Sequence.Stream})
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, scanned, fmt.Errorf("scanning EVENTS: %w", err)
		}
		if q.Progress != nil {
			q.Progress(scanned, total)
		}
		if got == 0 {
			break
		}
	}
	return found, scanned, nil
}

// fill reads the whole stored message of a found event.
func fill(ctx context.Context, stream jetstream.Stream, s *Stored) error {
	m, err := stream.GetMsg(ctx, s.Seq)
	if err != nil {
		return fmt.Errorf("reading EVENTS #%d: %w", s.Seq, err)
	}
	s.Subject, s.Header, s.Data, s.Time = m.Subject, m.Header, m.Data, m.Time
	s.Principal = event.HeaderGet(m.Header, "ce-jetmeshprincipal")
	return nil
}

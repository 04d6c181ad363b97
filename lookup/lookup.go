// Package lookup finds a stored event by id and tells, for each rule it matches, where
// its delivery stands.
//
// JetStream has no index by header, and an index of every id would cost a write per event
// on the hot path and memory per id in the server (250M events a day), so a lookup is a
// scan the server filters for us, made as short as the id and the caller allow:
//
//   - headers only: the scan never moves event data, only the stored headers;
//   - by type: --type narrows the scan to the subject evt.<type>, which JetStream
//     serves from its per-subject index without reading other types;
//   - by time: --since starts the scan at that time (JetStream finds the first sequence
//     by time without reading what comes before);
//   - by the id itself: ids jetmesh mints are UUIDv7, whose first 48 bits are the
//     publisher's clock; such an id is first looked for in the minutes around that time,
//     and only then, if absent, in the whole window.
package lookup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
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
}

// Stats say how the lookup went.
type Stats struct {
	// Scanned is how many stored events' headers were looked at.
	Scanned  uint64        `json:"scanned"`
	Elapsed  time.Duration `json:"elapsedNs"`
	Narrowed string        `json:"narrowedBy"`
}

// window is one stretch of the stream to scan.
type window struct {
	from, to time.Time // to zero: to the end
	why      string
}

// Find returns every stored event with q.ID (an id may repeat beyond the duplicate
// window, or from two sources), oldest first.
func Find(ctx context.Context, js jetstream.JetStream, q Query) ([]Stored, Stats, error) {
	began := time.Now()
	if q.ID == "" {
		return nil, Stats{}, errors.New("lookup: an id is needed")
	}
	filter := bus.EventsSubjects
	if q.Type != "" {
		if err := event.ValidateType(q.Type); err != nil {
			return nil, Stats{}, fmt.Errorf("--type: %w", err)
		}
		filter = event.SubjectPrefix + q.Type
	}
	stream, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("stream %s: %w", bus.EventsStream, err)
	}
	var windows []window
	narrowed := []string{}
	if q.Type != "" {
		narrowed = append(narrowed, "type")
	}
	if t, ok := uuidV7Time(q.ID); ok && (q.Since.IsZero() || t.After(q.Since)) {
		windows = append(windows, window{from: t.Add(-time.Minute), to: t.Add(10 * time.Minute), why: "id time"})
	}
	windows = append(windows, window{from: q.Since, why: "since"})
	var stats Stats
	for _, w := range windows {
		found, scanned, err := scan(ctx, stream, filter, q, w)
		stats.Scanned += scanned
		if err != nil {
			return nil, stats, err
		}
		if len(found) > 0 {
			if w.why == "id time" {
				narrowed = append(narrowed, "id time")
			} else if !q.Since.IsZero() {
				narrowed = append(narrowed, "since")
			}
			stats.Narrowed, stats.Elapsed = strings.Join(narrowed, "+"), time.Since(began)
			for j := range found {
				if err := fill(ctx, stream, &found[j]); err != nil {
					return nil, stats, err
				}
			}
			return found, stats, nil
		}
	}
	stats.Elapsed = time.Since(began)
	return nil, stats, fmt.Errorf("%w (%s)", ErrNotFound, describe(q))
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

// scan reads the headers of the events on filter in w and keeps those with the id.
func scan(ctx context.Context, stream jetstream.Stream, filter string, q Query, w window) ([]Stored, uint64, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, HeadersOnly: true,
		DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute}
	if !w.from.IsZero() {
		from := w.from
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
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
			if !w.to.IsZero() && md.Timestamp.After(w.to) {
				remaining = 0
				break
			}
			h := m.Headers()
			if id := h.Get(event.HeaderMsgID); id == q.ID || id == "" && event.HeaderGet(h, "ce-id") == q.ID {
				found = append(found, Stored{Seq: md.Sequence.Stream, Subject: m.Subject(), Time: md.Timestamp})
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
	s.Header, s.Data, s.Time = m.Header, m.Data, m.Time
	s.Principal = event.HeaderGet(m.Header, "ce-jetmeshprincipal")
	return nil
}

// uuidV7Time reads the millisecond clock of a UUIDv7 (RFC 9562); ok is false for any other
// id, and for a time too far from now to be a real clock (a made-up id).
func uuidV7Time(id string) (time.Time, bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' || id[14] != '7' {
		return time.Time{}, false
	}
	var b [6]byte
	if _, err := hex.Decode(b[:4], []byte(id[0:8])); err != nil {
		return time.Time{}, false
	}
	if _, err := hex.Decode(b[4:], []byte(id[9:13])); err != nil {
		return time.Time{}, false
	}
	ms := int64(b[0])<<40 | int64(b[1])<<32 | int64(b[2])<<24 | int64(b[3])<<16 | int64(b[4])<<8 | int64(b[5])
	t := time.UnixMilli(ms)
	if d := time.Since(t); d < -24*time.Hour || d > 400*24*time.Hour {
		return time.Time{}, false
	}
	return t, true
}

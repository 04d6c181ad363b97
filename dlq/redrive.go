package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/pace"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Mark is what the redrives bucket keeps of a redriven record, under its DLQ sequence.
type Mark struct {
	// State is "started" until the event is handed over, then "done". A run killed in
	// between leaves "started", and the next run finishes the record's redrive.
	State string    `json:"state"`
	At    time.Time `json:"at"`
	By    string    `json:"by,omitempty"`
	// To is "rule <name>" for a failed delivery, "ingress" for a rejection.
	To string `json:"to"`
	// Outcome says what became of it: "queued for rule <name>", "accepted", or the
	// ingress's refusal.
	Outcome string `json:"outcome,omitempty"`
	// EventsSeq is where the redriven event was stored in EVENTS, when it was.
	EventsSeq uint64 `json:"eventsSeq,omitempty"`
}

// Mark states.
const (
	MarkStarted = "started"
	MarkDone    = "done"
)

// Marks reads the redrive marks of the given records (missing ones are absent from the
// map), for listings that show which records were redriven. It reads at most for
// marksTimeout: a listing is worth more without its marks than not at all (a cluster
// electing the bucket's leader after losing a node takes a while to answer).
func Marks(ctx context.Context, js jetstream.JetStream, seqs []uint64) (map[uint64]Mark, error) {
	if len(seqs) == 0 {
		return map[uint64]Mark{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, marksTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.RedrivesBucket)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", bus.RedrivesBucket, err)
	}
	out := make(map[uint64]Mark, len(seqs))
	for _, seq := range seqs {
		if m, ok, err := readMark(ctx, kv, seq); err != nil {
			return nil, err
		} else if ok {
			out[seq] = m
		}
	}
	return out, nil
}

// marksTimeout bounds Marks.
const marksTimeout = 5 * time.Second

func readMark(ctx context.Context, kv jetstream.KeyValue, seq uint64) (Mark, bool, error) {
	e, err := kv.Get(ctx, strconv.FormatUint(seq, 10))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Mark{}, false, nil
	}
	if err != nil {
		return Mark{}, false, fmt.Errorf("reading the redrive mark of #%d: %w", seq, err)
	}
	var m Mark
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return Mark{}, false, fmt.Errorf("redrive mark of #%d: %w", seq, err)
	}
	return m, true, nil
}

// Resubmit hands a rejected event back to the ingress, as a NATS request with the given
// headers and body, and says whether every event in it was accepted (with the EVENTS
// sequence of the first) or why not. err means no answer was had: the ingress is
// unreachable or refused for a passing reason, and the redrive stops there.
type Resubmit func(ctx context.Context, msg *nats.Msg) (accepted bool, seq uint64, refusal string, err error)

// RedriveOptions say which records to redrive and how.
type RedriveOptions struct {
	Filter
	// Rate is the most records per second; 0 is as fast as they go.
	Rate float64
	// DryRun lists what would go where and changes nothing.
	DryRun bool
	// By names who redrives, for the marks.
	By string
	// Resubmit sends ingress rejections back to the ingress.
	Resubmit Resubmit
	// Progress, when set, hears after each record how many were handled and how many the
	// scan may still visit.
	Progress func(done int, remaining uint64)
}

// Redriven is what became of one record.
type Redriven struct {
	Seq       uint64 `json:"sequence"`
	Reason    string `json:"reason"`
	Rule      string `json:"rule,omitempty"`
	EventID   string `json:"eventId,omitempty"`
	EventType string `json:"eventType,omitempty"`
	// To is "rule <name>" or "ingress".
	To string `json:"to"`
	// Result is "redriven", "would redrive" (dry run), "accepted", "rejected again",
	// "already redriven" or "skipped".
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
	// EventsSeq is where the redriven event was stored in EVENTS.
	EventsSeq uint64 `json:"eventsSeq,omitempty"`
}

// Redrive results.
const (
	ResultRedriven      = "redriven"
	ResultWouldRedrive  = "would redrive"
	ResultAccepted      = "accepted"
	ResultRejectedAgain = "rejected again"
	ResultAlready       = "already redriven"
	ResultSkipped       = "skipped"
)

// Redrive sends the records o selects back where they failed, each at most once: a failed
// delivery to its own rule only (a copy on the rule's direct subject, which no other rule
// reads), an ingress rejection to the ingress, validated again. Each record is marked in
// the redrives bucket before and after; a record marked done is never redriven again, and
// one left "started" by a run that was killed is finished, not repeated: its copy is
// looked up on its own subject before being published, and both kinds of publish carry a
// message id the stream's duplicate window recognises.
//
// It returns what became of each record, including those skipped, and stops at the first
// error (the records handled so far stay handled).
func Redrive(ctx context.Context, js jetstream.JetStream, o RedriveOptions) ([]Redriven, error) {
	kv, err := js.KeyValue(ctx, bus.RedrivesBucket)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", bus.RedrivesBucket, err)
	}
	events, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", bus.EventsStream, err)
	}
	// A failed delivery of a rule deleted since has nowhere to go: it stays in the DLQ.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	store, err := rules.OpenStore(rctx, js)
	if err != nil {
		return nil, err
	}
	defined, err := store.List(rctx)
	if err != nil {
		return nil, err
	}
	ruleExists := make(map[string]bool, len(defined))
	for _, rule := range defined {
		ruleExists[rule.Name] = true
	}
	var out []Redriven
	pacer := pace.New(o.Rate)
	err = Scan(ctx, js, o.Filter, nil, func(s Stored, remaining uint64) error {
		r := s.Record
		res := Redriven{Seq: s.Seq, Reason: r.Reason, Rule: r.Rule, To: "ingress"}
		res.EventID, res.EventType = r.EventRef()
		if r.Rule != "" {
			res.To = "rule " + r.Rule
		}
		defer func() {
			if o.Progress != nil {
				o.Progress(len(out), remaining)
			}
		}()
		mark, marked, err := readMark(ctx, kv, s.Seq)
		if err != nil {
			return err
		}
		switch {
		case marked && mark.State == MarkDone:
			res.Result, res.Detail, res.EventsSeq = ResultAlready, fmt.Sprintf("at %s by %s: %s", mark.At.UTC().Format(time.RFC3339), orDash(mark.By), mark.Outcome), mark.EventsSeq
			out = append(out, res)
			return nil
		case r.Rule != "" && !ruleExists[r.Rule]:
			res.Result, res.Detail = ResultSkipped, "rule "+r.Rule+" no longer exists"
			out = append(out, res)
			return nil
		case r.Rule == "" && o.Resubmit == nil && !o.DryRun:
			return errors.New("dlq: Redrive needs a Resubmit for ingress rejections")
		case o.DryRun:
			res.Result = ResultWouldRedrive
			out = append(out, res)
			return nil
		}
		if err := pacer.Wait(ctx); err != nil {
			return err
		}
		if !marked {
			mark = Mark{State: MarkStarted, At: time.Now().UTC(), By: o.By, To: res.To}
			if _, err := kv.Create(ctx, markKey(s.Seq), mustJSON(mark)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				return fmt.Errorf("marking #%d: %w", s.Seq, err)
			}
		}
		if r.Rule != "" {
			err = redriveToRule(ctx, js, events, s, &res)
		} else {
			err = resubmit(ctx, o.Resubmit, s, &res)
		}
		if err != nil {
			return fmt.Errorf("redriving #%d: %w", s.Seq, err)
		}
		mark.State, mark.Outcome, mark.EventsSeq = MarkDone, res.Result, res.EventsSeq
		if res.Detail != "" {
			mark.Outcome += ": " + res.Detail
		}
		if _, err := kv.Put(ctx, markKey(s.Seq), mustJSON(mark)); err != nil {
			return fmt.Errorf("marking #%d done: %w", s.Seq, err)
		}
		out = append(out, res)
		return nil
	})
	return out, err
}

// redriveToRule stores a copy of the failed event on the rule's direct subject, unless a
// killed earlier run already did.
func redriveToRule(ctx context.Context, js jetstream.JetStream, events jetstream.Stream, s Stored, res *Redriven) error {
	id := strconv.FormatUint(s.Seq, 10)
	subject := bus.DirectSubject(s.Record.Rule, "redrive", id)
	if m, err := events.GetLastMsgForSubject(ctx, subject); err == nil {
		res.Result, res.EventsSeq = ResultRedriven, m.Sequence
		return nil
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("looking for an earlier copy: %w", err)
	}
	msg := &nats.Msg{Subject: subject, Header: originalHeader(s.Record.Header), Data: s.Record.Body}
	msg.Header.Set("ce-"+event.RedriveExtension, id)
	msg.Header.Set(event.HeaderMsgID, "jetmesh-redrive-"+id)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return err
	}
	res.Result, res.EventsSeq = ResultRedriven, ack.Sequence
	return nil
}

// resubmit sends an ingress rejection to the ingress again, as it was received: binary
// mode when it came with ce-* headers, otherwise the structured entry it was.
func resubmit(ctx context.Context, send Resubmit, s Stored, res *Redriven) error {
	h := originalHeader(s.Record.Header)
	if h.Get("ce-specversion") == "" {
		// A structured event, or one entry of a batch: send it as a structured event.
		h = nats.Header{}
		ct := event.HeaderGet(s.Record.Header, event.HeaderContentType)
		if ct == "" || strings.Contains(ct, "batch") && isObject(s.Record.Body) {
			ct = "application/cloudevents+json"
		}
		h.Set(event.HeaderContentType, ct)
	}
	h.Set(HeaderPrevious, strconv.FormatUint(s.Seq, 10))
	h.Set("Jetmesh-Origin", "redrive")
	accepted, seq, refusal, err := send(ctx, &nats.Msg{Header: h, Data: s.Record.Body})
	if err != nil {
		return err
	}
	if accepted {
		res.Result, res.EventsSeq = ResultAccepted, seq
	} else {
		res.Result, res.Detail = ResultRejectedAgain, refusal
	}
	return nil
}

// originalHeader copies the event's own headers, leaving out anything that would change
// how JetStream stores it.
func originalHeader(h map[string][]string) nats.Header {
	out := nats.Header{}
	for k, vs := range h {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		out[k] = vs
	}
	return out
}

func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

func markKey(seq uint64) string { return strconv.FormatUint(seq, 10) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/internal/clip"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect dead-letter records: rejected events and failed deliveries",
		Long: `Inspect the DLQ stream. Every event the ingress rejects is recorded there with
the reason, the error and the original event exactly as it was received.`,
		Example: `  jetmesh dlq ls
  jetmesh dlq ls --reason invalid_event --since 1h
  jetmesh dlq show 42`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newDLQLsCmd(g), newDLQShowCmd(g))
	return cmd
}

// dlqEntry is the --output json form of a record.
type dlqEntry struct {
	Sequence      uint64              `json:"sequence"`
	Subject       string              `json:"subject"`
	Reason        string              `json:"reason"`
	Error         string              `json:"error"`
	Field         string              `json:"field,omitempty"`
	Rule          string              `json:"rule,omitempty"`
	Attempts      int                 `json:"attempts,omitempty"`
	LastStatus    int                 `json:"lastStatus,omitempty"`
	Origin        string              `json:"origin,omitempty"`
	Time          time.Time           `json:"time"`
	EventID       string              `json:"eventId,omitempty"`
	EventType     string              `json:"eventType,omitempty"`
	TruncatedFrom int                 `json:"truncatedFrom,omitempty"`
	Header        map[string][]string `json:"header,omitempty"`
	// Body is the original body as text when it is UTF-8, else BodyBase64 holds it.
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"bodyBase64,omitempty"`
}

func toEntry(seq uint64, subject string, r *dlq.Record, withBody bool) dlqEntry {
	e := dlqEntry{Sequence: seq, Subject: subject, Reason: r.Reason, Error: r.Error, Field: r.Field, Rule: r.Rule,
		Attempts: r.Attempts, LastStatus: r.LastStatus, Origin: r.Origin, Time: r.Time, TruncatedFrom: r.TruncatedFrom}
	e.EventID, e.EventType = r.EventRef()
	if withBody {
		e.Header = r.Header
		if utf8.Valid(r.Body) {
			e.Body = string(r.Body)
		} else {
			e.BodyBase64 = r.Body
		}
	}
	return e
}

func newDLQLsCmd(g *globals) *cobra.Command {
	var (
		reason, rule string
		since        time.Duration
		limit        int
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the most recent dead-letter records",
		Example: `  jetmesh dlq ls
  jetmesh dlq ls --reason too_large -n 100 -o json
  jetmesh dlq ls --rule billing-orders --reason delivery_rejected`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || since < 0 {
				return refused("-n must be at least 1 and --since not negative")
			}
			if reason != "" && !slices.Contains(dlq.Reasons, reason) {
				return refused("--reason %q is not a DLQ reason; the reasons are %s", reason, strings.Join(dlq.Reasons, ", "))
			}
			delivery := reason == dlq.ReasonDeliveryFailed || reason == dlq.ReasonDeliveryRejected
			if reason != "" && rule != "" && !delivery {
				return refused("--reason %s is an ingress rejection, which has no rule: drop --rule", reason)
			}
			// Ingress records are filed by reason, delivery records by rule.
			filter := bus.DLQSubjects
			switch {
			case rule != "":
				filter = "dlq.rule." + rule
			case delivery:
				filter = "dlq.rule.>"
			case reason != "":
				filter = "dlq.ingress." + reason
			}
			onlyReason := ""
			if delivery {
				onlyReason = reason
			}
			entries, err := readDLQ(cmd.Context(), g, filter, onlyReason, since, limit)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, entries)
			}
			if len(entries) == 0 {
				fmt.Fprintln(g.stderr, "no dead-letter records")
				return nil
			}
			t := newTable(g.stdout, "SEQ", "TIME", "REASON", "ORIGIN", "EVENT", "TYPE", "ERROR")
			for _, e := range entries {
				origin := e.Origin
				if e.Rule != "" {
					origin = "rule " + e.Rule
				}
				t.row(e.Sequence, e.Time.UTC().Format(time.RFC3339), e.Reason, dash(origin), dash(e.EventID), dash(e.EventType), clip.String(e.Error, 80))
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "only records with this reason: "+strings.Join(dlq.Reasons, ", "))
	f.StringVar(&rule, "rule", "", "only failed deliveries of this rule")
	f.DurationVar(&since, "since", 0, "only records from this past window, e.g. 1h (default: all)")
	f.IntVarP(&limit, "count", "n", 20, "show at most this many, the most recent")
	return cmd
}

// readDLQ returns the last limit records matching filter (and reason, when set), oldest
// first.
func readDLQ(ctx context.Context, g *globals, filter, reason string, since time.Duration, limit int) ([]dlqEntry, error) {
	nc, js, err := g.jetStream("dlq")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cfg := jetstream.ConsumerConfig{FilterSubject: filter, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, Replicas: 1, MemoryStorage: true}
	if since > 0 {
		start := time.Now().Add(-since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cons, err := placeReader(ctx, g.stderr, func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateConsumer(ctx, bus.DLQStream, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("reading DLQ: %w", err)
	}
	info := cons.CachedInfo()
	ring := make([]dlqEntry, 0, limit)
	for pending := info.NumPending; pending > 0; {
		batch, err := cons.Fetch(min(int(pending), 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("reading DLQ: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			pending = md.NumPending
			rec, err := dlq.Parse(m.Headers(), m.Data())
			if err != nil {
				fmt.Fprintf(g.stderr, "DLQ #%d: %v\n", md.Sequence.Stream, err)
				continue
			}
			if reason != "" && rec.Reason != reason {
				continue
			}
			if len(ring) == limit {
				ring = append(ring[:0], ring[1:]...)
			}
			ring = append(ring, toEntry(md.Sequence.Stream, m.Subject(), rec, false))
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("reading DLQ: %w", err)
		}
		if got == 0 {
			break
		}
	}
	return ring, nil
}

func newDLQShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show SEQ",
		Short: "Show one dead-letter record: why, and the original event",
		Example: `  jetmesh dlq show 42
  jetmesh dlq show 42 -o json | jq -r .body`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return refused("dlq show takes one record sequence number (see 'jetmesh dlq ls')")
			}
			if _, err := strconv.ParseUint(args[0], 10, 64); err != nil {
				return refused("dlq show: %q is not a sequence number", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, _ := strconv.ParseUint(args[0], 10, 64)
			nc, js, err := g.jetStream("dlq")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			st, err := js.Stream(ctx, bus.DLQStream)
			if err != nil {
				return fmt.Errorf("DLQ stream: %w", err)
			}
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("no DLQ record #%d (see 'jetmesh dlq ls')", seq)
			}
			if err != nil {
				return fmt.Errorf("DLQ record #%d: %w", seq, err)
			}
			rec, err := dlq.Parse(m.Header, m.Data)
			if err != nil {
				return fmt.Errorf("DLQ record #%d: %w", seq, err)
			}
			e := toEntry(seq, m.Subject, rec, true)
			if g.output == "json" {
				return writeJSON(g.stdout, e)
			}
			t := newTable(g.stdout, "FIELD", "VALUE")
			t.row("Sequence", e.Sequence)
			t.row("Subject", e.Subject)
			t.row("Time", e.Time.UTC().Format(time.RFC3339Nano))
			t.row("Reason", e.Reason)
			t.row("Error", e.Error)
			for _, kv := range [][2]string{{"Field", e.Field}, {"Rule", e.Rule}, {"Origin", e.Origin}, {"Event id", e.EventID}, {"Event type", e.EventType}} {
				if kv[1] != "" {
					t.row(kv[0], kv[1])
				}
			}
			if e.Attempts > 0 {
				t.row("Attempts", e.Attempts)
			}
			if e.LastStatus > 0 {
				t.row("Last status", e.LastStatus)
			}
			if e.TruncatedFrom > 0 {
				t.row("Truncated", fmt.Sprintf("body cut to %d of %d bytes", len(rec.Body), e.TruncatedFrom))
			}
			for _, k := range sortedHeaderNames(rec.Header) {
				t.row("Header "+k, strings.Join(rec.Header[k], ", "))
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "\nOriginal body:")
			_, err = fmt.Fprintln(g.stdout, renderBody(rec.Body))
			return err
		},
	}
}

func renderBody(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") == nil {
		return terminalSafe(pretty.String(), true)
	}
	if utf8.Valid(b) {
		return terminalSafe(string(b), true)
	}
	return fmt.Sprintf("<%d bytes of binary data; use -o json>", len(b))
}

func sortedHeaderNames(h map[string][]string) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

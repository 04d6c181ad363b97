package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/internal/clip"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/spf13/cobra"
)

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and redrive dead-letter records: rejected events and failed deliveries",
		Long: `Inspect the DLQ stream, and send its records back once the cause is fixed. Every
event the ingress rejects, and every delivery that failed for good, is recorded there with
the reason, the error and the original event exactly as it was received.`,
		Example: `  jetmesh dlq ls
  jetmesh dlq ls --reason invalid_event --since 1h
  jetmesh dlq show 42
  jetmesh dlq redrive --rule billing-orders --dry-run`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newDLQLsCmd(g), newDLQShowCmd(g), newDLQRedriveCmd(g))
	return cmd
}

// dlqEntry is the --output json form of a record.
type dlqEntry struct {
	Sequence      uint64    `json:"sequence"`
	Subject       string    `json:"subject"`
	Reason        string    `json:"reason"`
	Error         string    `json:"error"`
	Field         string    `json:"field,omitempty"`
	Rule          string    `json:"rule,omitempty"`
	Attempts      int       `json:"attempts,omitempty"`
	LastStatus    int       `json:"lastStatus,omitempty"`
	Origin        string    `json:"origin,omitempty"`
	Time          time.Time `json:"time"`
	EventID       string    `json:"eventId,omitempty"`
	EventType     string    `json:"eventType,omitempty"`
	TruncatedFrom int       `json:"truncatedFrom,omitempty"`
	// Previous is the record this event was redriven from, when it failed again.
	Previous uint64 `json:"previous,omitempty"`
	// Redrive says when, by whom and to where this record was redriven.
	Redrive *dlq.Mark           `json:"redrive,omitempty"`
	Header  map[string][]string `json:"header,omitempty"`
	// Body is the original body as text when it is UTF-8, else BodyBase64 holds it.
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"bodyBase64,omitempty"`
}

func toEntry(s dlq.Stored, marks map[uint64]dlq.Mark, withBody bool) dlqEntry {
	r := s.Record
	e := dlqEntry{Sequence: s.Seq, Subject: s.Subject, Reason: r.Reason, Error: r.Error, Field: r.Field, Rule: r.Rule,
		Attempts: r.Attempts, LastStatus: r.LastStatus, Origin: r.Origin, Time: r.Time, TruncatedFrom: r.TruncatedFrom,
		Previous: r.Previous}
	if m, ok := marks[s.Seq]; ok {
		e.Redrive = &m
	}
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
		reason, rule, since string
		limit               int
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the most recent dead-letter records, and which were redriven",
		Example: `  jetmesh dlq ls
  jetmesh dlq ls --reason too_large -n 100 -o json
  jetmesh dlq ls --rule billing-orders --reason delivery_rejected --since 1h`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return refused("-n must be at least 1")
			}
			f, err := dlqFilter(rule, reasonList(reason), since, "")
			if err != nil {
				return err
			}
			nc, js, err := g.jetStream("dlq")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
			defer cancel()
			records, err := dlq.Last(ctx, js, f, limit, g.badRecord)
			if err != nil {
				return err
			}
			seqs := make([]uint64, len(records))
			for i, r := range records {
				seqs[i] = r.Seq
			}
			marks, err := dlq.Marks(ctx, js, seqs)
			if err != nil {
				g.note(fmt.Errorf("which records were redriven is unknown for now: %w", err))
			}
			entries := make([]dlqEntry, len(records))
			for i, r := range records {
				entries[i] = toEntry(r, marks, false)
			}
			if g.output == "json" {
				return writeJSON(g.stdout, entries)
			}
			if len(entries) == 0 {
				fmt.Fprintln(g.stderr, "no dead-letter records")
				return nil
			}
			t := newTable(g.stdout, "SEQ", "TIME", "REASON", "ORIGIN", "EVENT", "TYPE", "REDRIVEN", "ERROR")
			for _, e := range entries {
				origin := e.Origin
				if e.Rule != "" {
					origin = "rule " + e.Rule
				}
				redriven := "-"
				if m := e.Redrive; m != nil {
					redriven = m.At.UTC().Format(time.RFC3339) + " by " + dash(m.By)
					if m.State != dlq.MarkDone {
						redriven += " (unfinished)"
					}
				}
				t.row(e.Sequence, e.Time.UTC().Format(time.RFC3339), e.Reason, dash(origin), dash(e.EventID), dash(e.EventType), redriven, clip.String(e.Error, 80))
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "only records with this reason: "+strings.Join(dlq.Reasons, ", "))
	f.StringVar(&rule, "rule", "", "only failed deliveries of this rule")
	f.StringVar(&since, "since", "", "only records from this time on: a duration ago (1h, 7d) or an RFC 3339 time (default: all)")
	f.IntVarP(&limit, "count", "n", 20, "show at most this many, the most recent")
	return cmd
}

// reasonList turns an optional single --reason into a list.
func reasonList(reason string) []string {
	if reason == "" {
		return nil
	}
	return []string{reason}
}

// dlqFilter builds a record filter from flags, refusing what cannot select anything.
func dlqFilter(rule string, reasons []string, since, seqs string) (dlq.Filter, error) {
	f := dlq.Filter{Rule: rule, Reasons: reasons}
	for _, r := range reasons {
		if !slices.Contains(dlq.Reasons, r) {
			return f, refused("--reason %q is not a DLQ reason; the reasons are %s", r, strings.Join(dlq.Reasons, ", "))
		}
		if rule != "" && !dlq.IsDeliveryReason(r) {
			return f, refused("--reason %s is an ingress rejection, which has no rule: drop --rule", r)
		}
	}
	if since != "" {
		t, err := duration.ParseTime(since, time.Now())
		if err != nil {
			return f, refused("--since: %v", err)
		}
		f.Since = t
	}
	if seqs != "" {
		for _, part := range strings.Split(seqs, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(part), 10, 64)
			if err != nil || n == 0 {
				return f, refused("--seq: %q is not a DLQ sequence number (see 'jetmesh dlq ls')", part)
			}
			f.Seqs = append(f.Seqs, n)
		}
	}
	return f, nil
}

// badRecord reports a DLQ message that is not a readable record and goes on.
func (g *globals) badRecord(seq uint64, err error) {
	fmt.Fprintf(g.stderr, "DLQ #%d: %v\n", seq, err)
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
			stored, err := dlq.Get(ctx, js, seq)
			if err != nil {
				return err
			}
			marks, err := dlq.Marks(ctx, js, []uint64{seq})
			if err != nil {
				g.note(fmt.Errorf("whether the record was redriven is unknown for now: %w", err))
			}
			rec := stored.Record
			e := toEntry(*stored, marks, true)
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
			if e.Previous > 0 {
				t.row("Redriven from", fmt.Sprintf("#%d (this is the event failing again)", e.Previous))
			}
			if m := e.Redrive; m != nil {
				t.row("Redriven", fmt.Sprintf("%s by %s to %s: %s (%s)", m.At.UTC().Format(time.RFC3339), dash(m.By), m.To, dash(m.Outcome), m.State))
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

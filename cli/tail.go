package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/clip"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

type tailOptions struct {
	since    time.Duration
	all      bool
	count    int
	maxBytes int
}

func newTailCmd(g *globals) *cobra.Command {
	o := &tailOptions{}
	cmd := &cobra.Command{
		Use:   "tail [TYPE-PATTERN]",
		Short: "Print events as they are stored, one per line",
		Long: `Print events from the EVENTS stream as they arrive, one per line. It creates no
durable state on the server (an ordered, ephemeral consumer).

TYPE-PATTERN selects event types with NATS wildcards over the dot-separated
tokens: 'orders.created' exactly, 'orders.*' one token, 'orders.>' one or more.
Without it every event is shown. By default only new events are shown; --since
and --all replay stored ones first.

Text lines read: #SEQ TIME TYPE id=ID source=SOURCE [subject=SUBJECT] DATA.
--output json prints each event as a CloudEvents structured JSON object.`,
		Example: `  jetmesh tail
  jetmesh tail 'orders.>' --since 10m
  jetmesh tail orders.created -n 1 -o json | jq .data`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return refused("tail takes at most one TYPE-PATTERN, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ">"
			if len(args) == 1 {
				pattern = args[0]
			}
			return runTail(cmd.Context(), g, o, pattern)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.since, "since", 0, "first replay events stored in this past window, e.g. 10m")
	f.BoolVar(&o.all, "all", false, "first replay every stored event")
	f.IntVarP(&o.count, "count", "n", 0, "exit after this many events (0 = run until interrupted)")
	f.IntVar(&o.maxBytes, "max-data", 4096, "in text output, cut data longer than this many bytes (0 = never)")
	return cmd
}

func runTail(ctx context.Context, g *globals, o *tailOptions, pattern string) error {
	if err := event.ValidateTypePattern(pattern); err != nil {
		return refused("%v", err)
	}
	if o.since < 0 || o.count < 0 {
		return refused("--since and --count must not be negative")
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.SubjectPrefix + pattern},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		// Bounded: an ordered consumer re-creates itself under one name, and after a cluster
		// node dies that name can stay placed on the dead node; fail with a message (after one
		// to two minutes of retries) rather than hang silently.
		MaxResetAttempts: 6,
	}
	switch {
	case o.all:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case o.since > 0:
		start := time.Now().Add(-o.since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	nc, js, err := g.jetStream("tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	// Each OrderedConsumer call picks a fresh name prefix, so a retry is a fresh placement.
	setup, cancel := context.WithTimeout(ctx, 60*time.Second)
	cons, err := bus.PlaceReader(setup, g.note, func(ctx context.Context) (jetstream.Consumer, error) {
		return js.OrderedConsumer(ctx, bus.EventsStream, cfg)
	})
	cancel()
	if err != nil {
		return fmt.Errorf("tail %s: %w", pattern, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("tail %s: %w", pattern, err)
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for n := 0; o.count == 0 || n < o.count; n++ {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil // interrupted
		}
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		if err := printEvent(g, o, msg); err != nil {
			return err
		}
	}
	return nil
}

func printEvent(g *globals, o *tailOptions, msg jetstream.Msg) error {
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	ev, err := event.ParseNATSBinary(msg.Headers(), msg.Data(), math.MaxInt32)
	if err != nil {
		fmt.Fprintf(g.stderr, "#%d %s: not a valid event: %v\n", seq, msg.Subject(), err)
		return nil
	}
	if g.output == "json" {
		b, _ := ev.MarshalJSON() // never fails
		_, err := fmt.Fprintf(g.stdout, "%s\n", b)
		return err
	}
	var line strings.Builder
	fmt.Fprintf(&line, "#%d %s %s id=%s source=%s", seq, ev.Time.UTC().Format(time.RFC3339Nano), ev.Type, ev.ID, ev.Source)
	if ev.Subject != "" {
		fmt.Fprintf(&line, " subject=%s", ev.Subject)
	}
	if len(ev.Data) > 0 {
		line.WriteByte(' ')
		line.WriteString(renderData(ev, o.maxBytes))
	}
	_, err = fmt.Fprintln(g.stdout, terminalSafe(line.String(), false))
	return err
}

// renderData shows data on one line: compact JSON, quoted text, or a size for binary.
func renderData(ev *event.Event, max int) string {
	var s string
	switch ct := ev.ContentType(); {
	case event.IsJSON(ct):
		var b bytes.Buffer
		if json.Compact(&b, ev.Data) == nil {
			s = b.String()
		} else {
			s = strconv.Quote(string(ev.Data))
		}
	case strings.HasPrefix(ct, "text/"):
		s = strconv.Quote(string(ev.Data))
	default:
		return fmt.Sprintf("<%d bytes %s>", len(ev.Data), ct)
	}
	if max > 0 && len(s) > max {
		s = clip.String(s, max) + fmt.Sprintf(" (%d bytes)", len(ev.Data))
	}
	return s
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/internal/human"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

func newStreamsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "Inspect the JetStream streams (EVENTS, DLQ, ...)",
		Example: `  jetmesh streams ls
  jetmesh streams info EVENTS -o json`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newStreamsLsCmd(g), newStreamsInfoCmd(g))
	return cmd
}

// streamSummary is one row of `streams ls`, and its stable --output json shape.
type streamSummary struct {
	Name      string        `json:"name"`
	Subjects  []string      `json:"subjects"`
	Messages  uint64        `json:"messages"`
	Bytes     uint64        `json:"bytes"`
	FirstSeq  uint64        `json:"firstSeq"`
	LastSeq   uint64        `json:"lastSeq"`
	Consumers int           `json:"consumers"`
	MaxAge    time.Duration `json:"maxAgeNs"`
	Replicas  int           `json:"replicas"`
}

func newStreamsLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List streams with message counts, size and consumers",
		Example: "  jetmesh streams ls\n  jetmesh streams ls -o json | jq '.[].messages'",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := g.jetStream("streams")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			var rows []streamSummary
			lister := js.ListStreams(ctx)
			for info := range lister.Info() {
				rows = append(rows, streamSummary{
					Name: info.Config.Name, Subjects: info.Config.Subjects,
					Messages: info.State.Msgs, Bytes: info.State.Bytes,
					FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
					Consumers: info.State.Consumers, MaxAge: info.Config.MaxAge, Replicas: info.Config.Replicas,
				})
			}
			if err := lister.Err(); err != nil {
				return fmt.Errorf("listing streams: %w", err)
			}
			if g.output == "json" {
				if rows == nil {
					rows = []streamSummary{}
				}
				return writeJSON(g.stdout, rows)
			}
			t := newTable(g.stdout, "NAME", "SUBJECTS", "MESSAGES", "SIZE", "FIRST", "LAST", "CONSUMERS", "MAX AGE")
			for _, r := range rows {
				t.row(r.Name, strings.Join(r.Subjects, ","), r.Messages, human.Bytes(r.Bytes), r.FirstSeq, r.LastSeq, r.Consumers, r.MaxAge)
			}
			return t.flush()
		},
	}
}

func newStreamsInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "info NAME",
		Short:   "Show a stream's configuration and state",
		Example: "  jetmesh streams info EVENTS\n  jetmesh streams info DLQ -o json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return refused("streams info takes one stream NAME, e.g. 'jetmesh streams info EVENTS'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, js, err := g.jetStream("streams")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			st, err := js.Stream(ctx, args[0])
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("stream %q not found (see 'jetmesh streams ls')", args[0])
			}
			if err != nil {
				return fmt.Errorf("stream %s: %w", args[0], err)
			}
			info := st.CachedInfo()
			if g.output == "json" {
				return writeJSON(g.stdout, info)
			}
			c, s := info.Config, info.State
			t := newTable(g.stdout, "FIELD", "VALUE")
			t.row("Name", c.Name)
			t.row("Description", c.Description)
			t.row("Subjects", strings.Join(c.Subjects, ", "))
			t.row("Storage", c.Storage)
			t.row("Replicas", c.Replicas)
			t.row("Retention", c.Retention)
			t.row("Max age", c.MaxAge)
			t.row("Max bytes", limit(c.MaxBytes))
			t.row("Duplicate window", c.Duplicates)
			t.row("Messages", s.Msgs)
			t.row("Size", human.Bytes(s.Bytes))
			t.row("First", fmt.Sprintf("#%d %s", s.FirstSeq, stamp(s.FirstTime)))
			t.row("Last", fmt.Sprintf("#%d %s", s.LastSeq, stamp(s.LastTime)))
			t.row("Subjects stored", s.NumSubjects)
			t.row("Consumers", s.Consumers)
			t.row("Created", stamp(info.Created))
			return t.flush()
		},
	}
}

func limit(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return human.Bytes(uint64(n))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

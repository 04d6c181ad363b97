package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/lookup"
	"github.com/spf13/cobra"
)

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Find stored events",
		Example: `  jetmesh events get 0193a1c2-7b9e-7c4d-9a8b-1f2e3d4c5b6a
  jetmesh events get order-42 --type orders.created --since 2h`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newEventsGetCmd(g))
	return cmd
}

// foundEvent is the --output json form of a found event.
type foundEvent struct {
	lookup.Stored
	Data       string             `json:"data,omitempty"`
	DataBase64 []byte             `json:"dataBase64,omitempty"`
	Rules      []lookup.RuleState `json:"rules"`
}

func newEventsGetCmd(g *globals) *cobra.Command {
	var typ, since string
	cmd := &cobra.Command{
		Use:   "get ID [--type T] [--since D]",
		Short: "Show a stored event and, for each rule it matches, where its delivery stands",
		Long: `Find the stored event with this id and print it (attributes, data, stream sequence,
stored time, publishing principal) and, for each rule it matches, where it is now:
delivered, in flight, retrying (attempt n), waiting, waiting behind a pause, or
dead-lettered (with the DLQ record's sequence).

There is no index by id: the lookup scans the stored headers, which the server filters.
--type (only that type's subject) and --since (start at that time) make it shorter; ids
jetmesh mints (UUIDv7) carry their time and are looked for around it first. Exits 1 when
no stored event has the id.`,
		Example: `  jetmesh events get 0193a1c2-7b9e-7c4d-9a8b-1f2e3d4c5b6a
  jetmesh events get order-42 --type orders.created --since 2h -o json`,
		Args: exactArgs(1, "an event ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := lookup.Query{ID: args[0], Type: typ}
			if since != "" {
				t, err := duration.ParseTime(since, time.Now())
				if err != nil {
					return refused("--since: %v", err)
				}
				q.Since = t
			}
			nc, js, err := g.jetStream("events")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			bar := newProgress(g.stderr, "looking for "+args[0])
			q.Progress = bar.update
			found, stats, err := lookup.Locate(ctx, js, q)
			if errors.Is(err, lookup.ErrNotFound) {
				bar.finish("%d stored event(s) looked at", stats.Scanned)
				return fmt.Errorf("no stored event has id %q: %w", args[0], err)
			}
			if err != nil {
				return err
			}
			bar.finish("found %d event(s) with this id, %d stored event(s) looked at", len(found), stats.Scanned)
			out := make([]foundEvent, len(found))
			for i := range found {
				out[i] = foundEvent{Stored: found[i].Stored, Rules: found[i].Rules}
				if utf8.Valid(found[i].Data) {
					out[i].Data = string(found[i].Data)
				} else {
					out[i].DataBase64 = found[i].Data
				}
				if out[i].Rules == nil {
					out[i].Rules = []lookup.RuleState{}
				}
			}
			if g.output == "json" {
				return writeJSON(g.stdout, out)
			}
			for i, e := range out {
				if i > 0 {
					fmt.Fprintln(g.stdout)
				}
				t := newTable(g.stdout, "FIELD", "VALUE")
				t.row("Sequence", e.Seq)
				t.row("Subject", e.Subject)
				t.row("Stored", e.Time.UTC().Format(time.RFC3339Nano))
				t.row("Principal", dash(e.Principal))
				for _, k := range sortedHeaderNames(e.Header) {
					if strings.HasPrefix(strings.ToLower(k), "nats-") {
						continue
					}
					t.row(k, strings.Join(e.Header[k], ", "))
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, "\nData:")
				fmt.Fprintln(g.stdout, renderBody(found[i].Data))
				fmt.Fprintln(g.stdout)
				if len(e.Rules) == 0 {
					fmt.Fprintln(g.stdout, "No rule matches this event.")
					continue
				}
				rt := newTable(g.stdout, "RULE", "SERVICE", "STATE", "DETAIL")
				for _, r := range e.Rules {
					rt.row(r.Rule, r.Service, r.State, dash(r.Detail))
				}
				if err := rt.flush(); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "look only at events of this type (much faster)")
	cmd.Flags().StringVar(&since, "since", "", "look only at events stored from this time on: a duration ago (2h) or an RFC 3339 time")
	return cmd
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/pace"
	"github.com/jetmesh/jetmesh/replay"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

func newReplayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Deliver a window of stored events to one rule again, paced, run by the server",
		Long: `Re-deliver the stored events of a time window that match a rule, to that rule's
target only, at most --rate events per second. The server runs the replay: it goes on
when the CLI exits and resumes where it was after a server restart. Replayed deliveries
carry the CloudEvents extension jetmeshreplay = <replay id> (header ce-jetmeshreplay), so
a handler can tell them from live ones. The rule's live events keep flowing meanwhile:
the copies are interleaved with them at the replay's pace, not queued in front of them.

This replaces editing a rule's startTime as the way to replay.`,
		Example: `  jetmesh replay start --rule billing-orders --from 2h --rate 500
  jetmesh replay start --rule billing-orders --from 2026-12-04T08:00:00Z --to 2026-12-04T09:00:00Z --wait
  jetmesh replay ls
  jetmesh replay cancel rp-20261204t101500-3fa2c1`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newReplayStartCmd(g), newReplayLsCmd(g), newReplayCancelCmd(g))
	return cmd
}

func newReplayStartCmd(g *globals) *cobra.Command {
	var (
		rule, from, to string
		rate           float64
		wait           bool
	)
	cmd := &cobra.Command{
		Use:   "start --rule R --from T [--to T] [--rate N] [--wait]",
		Short: "Start a replay of a window to one rule",
		Long: `Start a replay of the events stored between --from and --to (default: now) that
match rule R, to R's target only. Times are RFC 3339 or a duration ago (2h, 7d). Prints the
replay id at once; with --wait it follows the replay (a progress bar on a terminal) and
returns once every replayed event was answered by the handler: delivered, or
dead-lettered. The window is what EVENTS still holds (streams.eventsMaxAge).`,
		Example: `  jetmesh replay start --rule billing-orders --from 2h
  jetmesh replay start --rule billing-orders --from 2h --to 1h --rate 200 --wait`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rule == "" || from == "" {
				return refused("replay start needs --rule and --from (see 'jetmesh replay start --help')")
			}
			now := time.Now()
			q := replay.Request{Rule: rule, Rate: rate}
			var err error
			if q.From, err = duration.ParseTime(from, now); err != nil {
				return refused("--from: %v", err)
			}
			if to != "" {
				if q.To, err = duration.ParseTime(to, now); err != nil {
					return refused("--to: %v", err)
				}
			}
			if err := q.Validate(now); err != nil {
				return refused("%v", err)
			}
			if q.By, err = g.actor(); err != nil {
				return err
			}
			ctx, js, done, err := g.jetStreamCall(cmd.Context(), "replay", 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			r, err := replay.Start(ctx, js, q)
			if err != nil {
				return err
			}
			if !wait {
				if g.output == "json" {
					return writeJSON(g.stdout, r)
				}
				fmt.Fprintf(g.stdout, "replay %s started: rule %s, %s to %s, %s\n", r.ID, r.Rule,
					r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), rateText(r.Rate))
				fmt.Fprintf(g.stderr, "follow it with 'jetmesh replay ls'; stop it with 'jetmesh replay cancel %s'\n", r.ID)
				return nil
			}
			fmt.Fprintf(g.stderr, "replay %s started\n", r.ID)
			r, err = waitReplay(cmd.Context(), g, js, r.ID)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, r)
			}
			fmt.Fprintf(g.stdout, "replay %s %s: %d event(s) replayed to %s, every one answered by the handler\n", r.ID, r.State, r.Replayed, r.Rule)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rule, "rule", "", "the rule whose target gets the events again")
	f.StringVar(&from, "from", "", "start of the window: an RFC 3339 time or a duration ago (2h)")
	f.StringVar(&to, "to", "", "end of the window, included (default: now)")
	f.Float64Var(&rate, "rate", 0, "at most this many events per second (default: no limit)")
	f.BoolVar(&wait, "wait", false, "follow the replay and return once every replayed event was answered")
	return cmd
}

func rateText(rate float64) string {
	if rate <= 0 {
		return "unpaced"
	}
	return fmt.Sprintf("at most %g/s", rate)
}

// waitReplay follows a replay to its end, then waits until the rule's consumer has every
// copy answered (acknowledged after delivery, or dead-lettered).
func waitReplay(ctx context.Context, g *globals, js jetstream.JetStream, id string) (*replay.Replay, error) {
	bar := newProgress(g.stderr, "replay "+id)
	var r *replay.Replay
	for {
		var err error
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err = replay.Get(callCtx, js, id)
		cancel()
		if err != nil {
			return nil, err
		}
		bar.update(r.Scanned, r.Total)
		if r.Finished() {
			break
		}
		if err := pace.Sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
	switch r.State {
	case replay.StateCancelled:
		bar.finish("replay %s cancelled after %d of %d event(s)", id, r.Replayed, r.Total)
		return r, errors.New("the replay was cancelled")
	case replay.StateFailed:
		bar.finish("replay %s failed after %d event(s)", id, r.Replayed)
		return r, fmt.Errorf("the replay failed: %s", r.Error)
	}
	for r.LastCopySeq > 0 {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := js.Consumer(callCtx, bus.EventsStream, rules.ConsumerName(r.Rule))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("the rule's consumer: %w", err)
		}
		if c.CachedInfo().AckFloor.Stream >= r.LastCopySeq {
			break
		}
		if err := pace.Sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
	bar.finish("replay %s done: %d event(s) replayed of %d in the window", id, r.Replayed, r.Total)
	return r, nil
}

func newReplayLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List replays with their state and progress (done/total, rate, ETA)",
		Example: `  jetmesh replay ls
  jetmesh replay ls -o json | jq '.[] | select(.state == "running")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, js, done, err := g.jetStreamCall(cmd.Context(), "replay", 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			all, err := replay.List(ctx, js)
			if err != nil {
				return err
			}
			if g.output == "json" {
				type row struct {
					*replay.Replay
					ETASeconds float64 `json:"etaSeconds"`
				}
				rows := make([]row, len(all))
				for i, r := range all {
					rows[i] = row{r, r.ETA().Seconds()}
				}
				return writeJSON(g.stdout, rows)
			}
			if len(all) == 0 {
				fmt.Fprintln(g.stderr, "no replays")
				return nil
			}
			t := newTable(g.stdout, "ID", "RULE", "STATE", "PROGRESS", "REPLAYED", "RATE", "ETA", "WINDOW", "BY")
			for _, r := range all {
				eta := "-"
				if d := r.ETA(); d > 0 {
					eta = d.String()
				}
				progress := fmt.Sprintf("%d/%d", r.Scanned, r.Total)
				if r.Total > 0 {
					progress += fmt.Sprintf(" (%d%%)", r.Scanned*100/r.Total)
				}
				state := r.State
				if r.Error != "" {
					state += ": " + r.Error
				}
				t.row(r.ID, r.Rule, state, progress, r.Replayed, fmt.Sprintf("%.0f/s", r.RatePerSec), eta,
					r.From.Format(time.RFC3339)+" → "+r.To.Format(time.RFC3339), dash(r.By))
			}
			return t.flush()
		},
	}
}

func newReplayCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "cancel ID",
		Short:   "Stop a replay; copies already made are still delivered",
		Example: `  jetmesh replay cancel rp-20261204t101500-3fa2c1`,
		Args:    exactArgs(1, "a replay ID (see 'jetmesh replay ls')"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, js, done, err := g.jetStreamCall(cmd.Context(), "replay", 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			r, err := replay.Cancel(ctx, js, args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, r)
			}
			fmt.Fprintf(g.stdout, "cancelled replay %s after %d of %d event(s)\n", r.ID, r.Scanned, r.Total)
			return nil
		},
	}
}

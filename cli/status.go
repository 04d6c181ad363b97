package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/internal/human"
	"github.com/jetmesh/jetmesh/internal/pace"
	"github.com/jetmesh/jetmesh/status"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [--watch]",
		Short: "One screen for the whole bus: nodes, streams, ingress, rules, sidecars, DLQ",
		Long: `Show the whole bus at once:
  - nodes: each server's version, readiness and, in a cluster, the meta leader;
  - streams: messages and bytes against their limits, the leader and whether each replica
    is current;
  - ingress: events accepted and rejected over the last minute, by reason;
  - rules: pending, in flight, redelivered, dead-lettered in the last hour, paused, the age
    of the oldest undelivered event, and how many sidecars deliver it;
  - services: connected sidecars, since when, which versions;
  - DLQ depth by reason and by rule;
  - problems: what needs a look (a rule with a backlog and no sidecar, a replica behind,
    a stream nearly full, a server not ready).
Servers and sidecars announce themselves every 5s; one gone for 30s drops out.`,
		Example: `  jetmesh status
  jetmesh status --watch
  jetmesh status -o json | jq '.rules[] | select(.pending > 0)'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 500*time.Millisecond {
				return refused("--interval must be at least 500ms")
			}
			nc, js, err := g.jetStream("status")
			if err != nil {
				return err
			}
			defer nc.Close()
			tty := isTerminal(g.stdout)
			for {
				ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
				rep, err := status.Collect(ctx, js)
				cancel()
				if err != nil {
					return err
				}
				if watch && tty {
					fmt.Fprint(g.stdout, "\033[H\033[2J")
				}
				if g.output == "json" {
					if err := writeJSON(g.stdout, rep); err != nil {
						return err
					}
				} else if err := printStatus(g.stdout, rep); err != nil {
					return err
				}
				if !watch {
					return nil
				}
				if err := pace.Sleep(cmd.Context(), interval); err != nil {
					return nil // interrupted: a normal end of --watch
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch redraws")
	return cmd
}

func printStatus(w io.Writer, rep *status.Report) error {
	fmt.Fprintf(w, "jetmesh status at %s\n\n", rep.At.Format(time.RFC3339))
	t := newTable(w, "NODE", "VERSION", "UP", "READY", "META LEADER")
	for _, n := range rep.Nodes {
		ready := "yes"
		if !n.Ready {
			ready = "no: " + n.Reason
		}
		t.row(n.Name, n.Version, ago(rep.At, n.Since), ready, dash(n.MetaLeader))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "STREAM", "MESSAGES", "BYTES", "OF MAX", "OLDEST", "OF MAX AGE", "LEADER", "REPLICAS")
	for _, s := range rep.Streams {
		ofMax := "-"
		if s.MaxBytes > 0 {
			ofMax = fmt.Sprintf("%.1f%%", s.BytesPercent)
		}
		var reps []string
		for _, r := range s.Replicas {
			state := "current"
			if !r.Current {
				state = fmt.Sprintf("behind %d", r.Lag)
			}
			if r.Offline {
				state = "offline"
			}
			reps = append(reps, r.Name+" "+state)
		}
		t.row(s.Name, s.Messages, human.Bytes(s.Bytes), ofMax, s.OldestAge.Round(time.Second), fmt.Sprintf("%.1f%%", s.AgePercent), dash(s.Leader), dash(strings.Join(reps, ", ")))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ningress, last minute: %d accepted, %d rejected", rep.Ingress.AcceptedPerMinute, rep.Ingress.RejectedPerMinute)
	for _, reason := range slices.Sorted(maps.Keys(rep.Ingress.RejectedByReason)) {
		fmt.Fprintf(w, ", %s %d", reason, rep.Ingress.RejectedByReason[reason])
	}
	fmt.Fprint(w, "\n\n")
	t = newTable(w, "RULE", "SERVICE", "PENDING", "IN FLIGHT", "REDELIVERED", "DLQ 1H", "PAUSED", "OLDEST UNDELIVERED", "SIDECARS")
	for _, r := range rep.Rules {
		paused := "-"
		if r.Paused {
			paused = "yes"
			if r.PausedUntil != nil {
				paused = "until " + r.PausedUntil.Format(time.RFC3339)
			}
		}
		oldest := "-"
		if r.OldestUndelivered > 0 {
			oldest = r.OldestUndelivered.Round(time.Second).String()
		}
		t.row(r.Name, r.Service, r.Pending, r.InFlight, r.Redelivered, r.DeadLetteredLastHour, paused, oldest, r.Sidecars)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "SERVICE", "SIDECARS", "READY", "SINCE", "VERSIONS")
	for _, s := range rep.Services {
		t.row(s.Name, s.Sidecars, s.Ready, ago(rep.At, s.Since), strings.Join(s.Versions, ","))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nDLQ: %d record(s)", rep.DLQ.Messages)
	for _, reason := range slices.Sorted(maps.Keys(rep.DLQ.ByReason)) {
		fmt.Fprintf(w, ", %s %d", reason, rep.DLQ.ByReason[reason])
	}
	fmt.Fprintln(w)
	if len(rep.Problems) == 0 {
		_, err := fmt.Fprintln(w, "\nno problems")
		return err
	}
	fmt.Fprintln(w, "\nPROBLEMS")
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "  - "+terminalSafe(p, false))
	}
	return nil
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

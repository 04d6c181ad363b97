package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func newRulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Route events to services with declarative rules (EventBridge event patterns)",
		Long: `A rule says which events a service wants (an EventBridge event pattern), where they go
(target service and path) and how (attempts, backoff, timeout, concurrency, order). Rules
live in YAML or JSON files reviewed like code; 'rules apply' stores them in the mesh-rules
bucket and the server keeps one durable JetStream consumer per rule. Adding a consumer of
an event is one 'rules apply': no code or infrastructure change.

The pattern language is in docs/patterns.md; try patterns offline with 'rules test-pattern'.`,
		Example: `  jetmesh rules test-pattern --pattern '{"type":["orders.created"]}' --event '{"type":"orders.created"}'
  jetmesh rules apply -f rules/ --dry-run
  jetmesh rules apply -f rules/ --prune
  jetmesh rules ls
  jetmesh rules get billing-big-orders
  jetmesh rules rm billing-big-orders`,
		Args: unknownSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newTestPatternCmd(g), newRulesApplyCmd(g), newRulesLsCmd(g), newRulesGetCmd(g), newRulesRmCmd(g),
		newRulesPauseCmd(g), newRulesResumeCmd(g))
	return cmd
}

// inlineOrFile reads a flag pair like --pattern / --pattern-file: exactly one must be set.
func inlineOrFile(what, inline, file string) ([]byte, error) {
	switch {
	case inline != "" && file != "":
		return nil, refused("give --%s or --%s-file, not both", what, what)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, refused("--%s-file: %v", what, err)
		}
		return b, nil
	case inline != "":
		return []byte(inline), nil
	}
	return nil, refused("--%s (JSON) or --%s-file is required", what, what)
}

func newTestPatternCmd(g *globals) *cobra.Command {
	var pattern, patternFile, ev, eventFile string
	cmd := &cobra.Command{
		Use:   "test-pattern --pattern JSON --event JSON",
		Short: "Print whether an event pattern matches an event (true or false); no server needed",
		Long: `Compiles the pattern and matches it against the event, like EventBridge's
TestEventPattern: any JSON object works as the event (no envelope fields are required).
Prints true or false and exits 0; exits 2 with the reason when the pattern is invalid or
the event is not a JSON object.`,
		Example: `  jetmesh rules test-pattern --pattern '{"type":["orders.created"],"data":{"amount":[{"numeric":[">=",100]}]}}' \
    --event '{"type":"orders.created","data":{"amount":250}}'
  jetmesh rules test-pattern --pattern-file pattern.json --event-file event.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			praw, err := inlineOrFile("pattern", pattern, patternFile)
			if err != nil {
				return err
			}
			eraw, err := inlineOrFile("event", ev, eventFile)
			if err != nil {
				return err
			}
			p, err := rules.Compile(praw)
			if err != nil {
				return refused("%v", err)
			}
			obj, err := rules.DecodeEvent(eraw)
			if err != nil {
				return refused("event: %v", err)
			}
			matched := p.Match(obj)
			if g.output == "json" {
				return writeJSON(g.stdout, struct {
					Match          bool     `json:"match"`
					FilterSubjects []string `json:"filterSubjects"`
				}{matched, p.FilterSubjects()})
			}
			fmt.Fprintln(g.stdout, strconv.FormatBool(matched))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&pattern, "pattern", "", "the event pattern, as JSON")
	f.StringVar(&patternFile, "pattern-file", "", "read the pattern from a file")
	f.StringVar(&ev, "event", "", "the event, as a JSON object")
	f.StringVar(&eventFile, "event-file", "", "read the event from a file")
	return cmd
}

// rulesCall opens the mesh-rules bucket for one command: a context bounded by timeout, and
// done, which ends it and closes the connection.
func (g *globals) rulesCall(parent context.Context, timeout time.Duration) (context.Context, *rules.Store, func(), error) {
	store, _, closeConn, err := g.rulesStore(parent)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	return ctx, store, func() { cancel(); closeConn() }, nil
}

// rulesStore opens the mesh-rules bucket; done closes the connection.
func (g *globals) rulesStore(ctx context.Context) (*rules.Store, jetstream.JetStream, func(), error) {
	nc, js, err := g.jetStream("rules")
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	store, err := rules.OpenStore(ctx, js)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return store, js, nc.Close, nil
}

func newRulesApplyCmd(g *globals) *cobra.Command {
	var path string
	var dryRun, prune, force bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR",
		Short: "Create or update rules from files; print what changed",
		Long: `Reads rules from a YAML or JSON file (one rule, a list, or several YAML documents) or
from every .yaml/.yml/.json file under a directory, validates all of them (nothing is
written if any is invalid), and stores them. Prints one line per rule: created, updated
(with the fields that changed), unchanged, or, with --prune, deleted for stored rules the
files no longer hold. The server creates, updates or deletes the rules' consumers within
moments.

A rule change never skips events stored but not yet delivered: a startTime moved later
than the events a rule still has to deliver is refused (exit 2) with the number of
events it would skip, and nothing is written; --force applies it and those events never
reach the rule. An earlier startTime replays from there; removing startTime keeps the
consumer where it is.`,
		Example: `  jetmesh rules apply -f rules/billing.yaml
  jetmesh rules apply -f rules/ --dry-run
  jetmesh rules apply -f rules/ --prune -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return refused("-f FILE|DIR is required")
			}
			desired, err := rules.Load(path)
			if err != nil {
				return refused("%v", err)
			}
			store, _, done, err := g.rulesStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			changes, err := store.Apply(ctx, desired, rules.ApplyOptions{Prune: prune, DryRun: dryRun, Force: force})
			if errors.Is(err, rules.ErrWouldSkip) {
				err = refused("%v", err)
			}
			if g.output == "json" {
				if changes == nil {
					changes = []rules.Change{}
				}
				if werr := writeJSON(g.stdout, struct {
					DryRun  bool           `json:"dryRun"`
					Changes []rules.Change `json:"changes"`
				}{dryRun, changes}); werr != nil {
					return werr
				}
			} else {
				for _, c := range changes {
					fmt.Fprintln(g.stdout, c)
				}
				if err == nil && dryRun {
					fmt.Fprintln(g.stdout, "dry run: nothing was written")
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&path, "file", "f", "", "rule file or directory of rule files")
	f.BoolVar(&dryRun, "dry-run", false, "show what would change, write nothing")
	f.BoolVar(&prune, "prune", false, "delete stored rules the files do not hold")
	f.BoolVar(&force, "force", false, "let a later startTime skip events stored but not yet delivered to the rule")
	return cmd
}

// ruleRow is one rule in `rules ls` and its --output json shape.
type ruleRow struct {
	Name           string   `json:"name"`
	Description    string   `json:"description,omitempty"`
	Service        string   `json:"service"`
	Path           string   `json:"path"`
	FilterSubjects []string `json:"filterSubjects"`
	Consumer       string   `json:"consumer"`
	// ConsumerReady is false until the server has created the rule's consumer.
	ConsumerReady bool `json:"consumerReady"`
	// Pending is the consumer's lag: events not yet delivered plus those awaiting an ack.
	Pending uint64 `json:"pending"`
	// PausedUntil is set while delivery is paused (rules pause).
	PausedUntil *time.Time `json:"pausedUntil,omitempty"`
}

func newRulesLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Short:   "List rules with their target, filter subjects and consumer lag",
		Example: "  jetmesh rules ls\n  jetmesh rules ls -o json | jq '.[] | select(.pending > 1000)'",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, js, done, err := g.rulesStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			list, err := store.List(ctx)
			if err != nil {
				return err
			}
			// One listing call for every consumer's state, not one call per rule.
			consumers := map[string]*jetstream.ConsumerInfo{}
			if st, err := js.Stream(ctx, bus.EventsStream); err == nil {
				lister := st.ListConsumers(ctx)
				for info := range lister.Info() {
					consumers[info.Name] = info
				}
			}
			rows := []ruleRow{}
			for _, r := range list {
				row := ruleRow{Name: r.Name, Description: r.Description, Service: r.Target.Service, Path: r.Target.Path, Consumer: r.ConsumerName()}
				if p, err := r.Compile(); err == nil {
					row.FilterSubjects = p.FilterSubjects()
				}
				if info, ok := consumers[row.Consumer]; ok {
					row.ConsumerReady = true
					row.Pending = info.NumPending + uint64(info.NumAckPending)
					if info.Paused && info.Config.PauseUntil != nil {
						row.PausedUntil = info.Config.PauseUntil
					}
				}
				rows = append(rows, row)
			}
			if g.output == "json" {
				return writeJSON(g.stdout, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(g.stdout, "no rules: add some with `jetmesh rules apply -f FILE`")
				return nil
			}
			tbl := newTable(g.stdout, "NAME", "SERVICE", "PATH", "FILTER", "CONSUMER", "PENDING")
			for _, r := range rows {
				state := "ready"
				switch {
				case !r.ConsumerReady:
					state = "pending creation"
				case r.PausedUntil != nil:
					state = "paused " + pausedText(*r.PausedUntil)
				}
				tbl.row(r.Name, r.Service, r.Path, strings.Join(r.FilterSubjects, ","), state, r.Pending)
			}
			return tbl.flush()
		},
	}
}

// pausedText says how long a pause lasts.
func pausedText(until time.Time) string {
	if rules.UntilResumed(until) {
		return "until resumed"
	}
	return "until " + until.UTC().Format(time.RFC3339)
}

// parseUntil reads a --until: an RFC 3339 time, or a duration from now (2h).
func parseUntil(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, refused("--until %s: a duration must be positive", s)
		}
		return time.Now().Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, refused("--until %q: give an RFC 3339 time (2026-12-05T08:00:00Z) or a duration from now (2h)", s)
	}
	if !t.After(time.Now()) {
		return time.Time{}, refused("--until %s is in the past", s)
	}
	return t, nil
}

func newRulesPauseCmd(g *globals) *cobra.Command {
	var until string
	cmd := &cobra.Command{
		Use:   "pause NAME [--until T]",
		Short: "Stop delivering a rule's events, keeping its backlog, until resumed (or --until)",
		Long: `Pauses the rule's consumer (JetStream consumer pause): when the command returns no
event of the rule is handed to its service any more, so no attempt is spent; events keep
being stored and wait. Events already handed out before the pause finish their attempt.
The pause is stored with the consumer: it survives restarts, and shows in 'rules ls'.
'rules resume' (or the --until time) delivers the backlog in order.`,
		Example: `  jetmesh rules pause billing-big-orders
  jetmesh rules pause billing-big-orders --until 30m
  jetmesh rules pause billing-big-orders --until 2026-12-05T08:00:00Z`,
		Args: exactArgs(1, "a rule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseUntil(until)
			if err != nil {
				return err
			}
			ctx, store, done, err := g.rulesCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			paused, err := store.Pause(ctx, args[0], t)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, struct {
					Rule        string    `json:"rule"`
					PausedUntil time.Time `json:"pausedUntil"`
				}{args[0], paused})
			}
			fmt.Fprintf(g.stdout, "paused %s %s\n", args[0], pausedText(paused))
			return nil
		},
	}
	cmd.Flags().StringVar(&until, "until", "", "resume by itself then: an RFC 3339 time or a duration from now (default: until 'rules resume')")
	return cmd
}

func newRulesResumeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "resume NAME",
		Short:   "Deliver a paused rule's events again, its backlog first",
		Example: `  jetmesh rules resume billing-big-orders`,
		Args:    exactArgs(1, "a rule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, store, done, err := g.rulesCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			if err := store.Resume(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "resumed %s\n", args[0])
			return nil
		},
	}
}

func newRulesGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Print one rule as stored, defaults included (YAML; -o json for JSON)",
		Example: "  jetmesh rules get billing-big-orders\n  jetmesh rules get billing-big-orders -o json > billing.json",
		Args:    exactArgs(1, "a rule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, store, done, err := g.rulesCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			r, err := store.Get(ctx, args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, r)
			}
			var generic any
			if err := json.Unmarshal(rules.Encode(r), &generic); err != nil {
				return err
			}
			enc := yaml.NewEncoder(g.stdout)
			enc.SetIndent(2)
			if err := enc.Encode(generic); err != nil {
				return err
			}
			return enc.Close()
		},
	}
}

func newRulesRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Short:   "Delete a rule; the server deletes its consumer",
		Example: "  jetmesh rules rm billing-big-orders",
		Args:    exactArgs(1, "a rule NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, store, done, err := g.rulesCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			if err := store.Delete(ctx, args[0]); err != nil {
				if errors.Is(err, rules.ErrNotFound) {
					return fmt.Errorf("%w: see `jetmesh rules ls`", err)
				}
				return err
			}
			fmt.Fprintln(g.stdout, "deleted", args[0])
			return nil
		},
	}
}

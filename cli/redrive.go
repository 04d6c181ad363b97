package cli

import (
	"context"
	"fmt"

	"github.com/jetmesh/jetmesh/dlq"
	"github.com/spf13/cobra"
)

func newDLQRedriveCmd(g *globals) *cobra.Command {
	var (
		rule, since, seqs string
		reasons           []string
		rate              float64
		dryRun            bool
	)
	cmd := &cobra.Command{
		Use:   "redrive",
		Short: "Send dead-letter records back: failed deliveries to their rule, rejections to the ingress",
		Long: `Send the selected DLQ records back where they failed, once the cause is fixed.

A failed delivery (delivery_failed, delivery_rejected) goes back to its own rule only: the
rule's target gets the event again (with the extension jetmeshredrive = the record's
sequence) and no other rule sees it twice. An ingress rejection is submitted to the
ingress again and validated again (say, after 'jetmesh schemas push' of a fixed schema);
when accepted it is stored in EVENTS with its own id and reaches every matching rule.

Each record is redriven at most once: running the command twice, or again after it was
killed halfway, redrives nothing twice and loses nothing. A redriven event that fails
again makes a new DLQ record that names the earlier one. 'jetmesh dlq ls' shows which
records were redriven, when and by whom. With nothing left to redrive it exits 0 and says
so.`,
		Example: `  # what would go where, changing nothing
  jetmesh dlq redrive --rule billing-orders --dry-run
  # the handler is fixed: deliver its failures of the last hour again, 200 a second
  jetmesh dlq redrive --rule billing-orders --since 1h --rate 200
  # the schema is fixed: submit the rejected events again
  jetmesh dlq redrive --reason schema_invalid
  # two records by sequence
  jetmesh dlq redrive --seq 41,42`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rate < 0 {
				return refused("--rate must be 0 (no limit) or a number of events per second")
			}
			f, err := dlqFilter(rule, reasons, since, seqs)
			if err != nil {
				return err
			}
			return g.redrive(cmd.Context(), dlq.RedriveOptions{Filter: f, Rate: rate, DryRun: dryRun})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&rule, "rule", "", "only failed deliveries of this rule")
	fl.StringSliceVar(&reasons, "reason", nil, "only records with this reason (repeat or comma-separate for several)")
	fl.StringVar(&since, "since", "", "only records from this time on: a duration ago (1h, 7d) or an RFC 3339 time")
	fl.StringVar(&seqs, "seq", "", "only these records, by DLQ sequence: 41,42")
	fl.Float64Var(&rate, "rate", 0, "at most this many events per second (default: no limit)")
	fl.BoolVar(&dryRun, "dry-run", false, "list what would go where, and change nothing")
	return cmd
}

func (g *globals) redrive(ctx context.Context, o dlq.RedriveOptions) error {
	nc, js, err := g.jetStream("dlq-redrive")
	if err != nil {
		return err
	}
	defer nc.Close()
	client, err := g.ingressClient(nc)
	if err != nil {
		return err
	}
	if o.By, err = g.actor(); err != nil {
		return err
	}
	o.Resubmit = client.Resubmit
	bar := newProgress(g.stderr, "redrive")
	o.Progress = func(done int, remaining uint64) { bar.update(uint64(done), uint64(done)+remaining) }

	results, err := dlq.Redrive(ctx, js, o)
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Result]++
	}
	summary := fmt.Sprintf("%d record(s): %d redriven to their rule, %d accepted by the ingress, %d rejected again, %d already redriven, %d skipped",
		len(results), counts[dlq.ResultRedriven], counts[dlq.ResultAccepted], counts[dlq.ResultRejectedAgain], counts[dlq.ResultAlready], counts[dlq.ResultSkipped])
	if o.DryRun {
		summary = fmt.Sprintf("dry run, nothing changed: %d record(s) would be redriven, %d already were, %d skipped",
			counts[dlq.ResultWouldRedrive], counts[dlq.ResultAlready], counts[dlq.ResultSkipped])
	}
	bar.finish("%s", summary)
	if g.output == "json" {
		if results == nil {
			results = []dlq.Redriven{}
		}
		if werr := writeJSON(g.stdout, results); werr != nil {
			return werr
		}
	} else if len(results) > 0 {
		t := newTable(g.stdout, "SEQ", "REASON", "EVENT", "TO", "RESULT", "DETAIL")
		for _, r := range results {
			detail := r.Detail
			if r.EventsSeq > 0 && detail == "" {
				detail = fmt.Sprintf("stored as EVENTS #%d", r.EventsSeq)
			}
			t.row(r.Seq, r.Reason, dash(r.EventID), r.To, r.Result, dash(detail))
		}
		if ferr := t.flush(); ferr != nil {
			return ferr
		}
	}
	if err != nil {
		return fmt.Errorf("%w (the records before it are done; run the command again to go on)", err)
	}
	if len(results) == counts[dlq.ResultAlready]+counts[dlq.ResultSkipped] {
		fmt.Fprintln(g.stderr, "nothing left to redrive")
	}
	return nil
}

package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/jetmesh/jetmesh/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd(g *globals) *cobra.Command {
	cfg := bench.DefaultConfig()
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure jetmesh end to end against raw JetStream and raw loopback HTTP",
		Long: `Measure, in one process and one run on this machine:

  jetmesh    publish through the ingress (HTTP, schema-validated) → EVENTS →
             rule consumer → sidecar → POST to an HTTP handler
  jetstream  raw JetStream: async publish to a file stream, consume and ack
  http       raw HTTP: POST to the same handler over loopback

All three carry the same event: the baselines send the very request the sidecar
sends (CloudEvents binary mode) and store the very message the ingress stores.

each at full speed (--events, for throughput) and at a fixed rate (--rate for
--duration, for latency). Latency runs from the send (its scheduled time at a
fixed rate, so falling behind counts) to the arrival at the handler or consumer.
The last lines give jetmesh's ratio to each baseline.

An embedded server runs on a temporary store and random loopback ports;
--server is not used. Everything shares this machine's cores, as in a
one-box deployment.`,
		Example: `  jetmesh bench
  jetmesh bench --events 50000 --rate 5000 --duration 10s -o json
  jetmesh bench --cpuprofile cpu.out && go tool pprof -top cpu.out`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return refused("%v", err)
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return refused("--cpuprofile: %v", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			cfg.Progress = g.stderr
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, cfg)
			if errors.Is(err, bench.ErrConfig) {
				return refused("%v", err)
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.stdout, rep)
			}
			t := newTable(g.stdout, "PATH", "MODE", "EVENTS", "EVENTS/S", "P50", "P99", "P99.9")
			for _, r := range rep.Results {
				mode := "full speed"
				if r.Mode == bench.ModeFixed {
					mode = fmt.Sprintf("%d/s", cfg.Rate)
				}
				t.row(r.Path, mode, r.Events, fmt.Sprintf("%.0f", r.EventsPerSec), ms(r.P50), ms(r.P99), ms(r.P999))
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "\njetmesh throughput: %.2f× raw HTTP, %.2f× raw JetStream (full speed)\n",
				rep.Ratios["throughputVsHTTP"], rep.Ratios["throughputVsJetStream"])
			fmt.Fprintf(g.stdout, "jetmesh p99 at %d/s: %.1f× raw HTTP, %.1f× raw JetStream\n",
				cfg.Rate, rep.Ratios["p99VsHTTP"], rep.Ratios["p99VsJetStream"])
			if cfg.DeliveryBatch > 0 {
				fmt.Fprintf(g.stdout, "jetmesh with batch delivery (%d a request): %.2f× the throughput, %.2f× the p99 at %d/s of per-event delivery\n",
					cfg.DeliveryBatch, rep.Ratios["batchThroughputVsPerEvent"], rep.Ratios["batchP99VsPerEvent"], cfg.Rate)
			}
			if cfg.Secure {
				fmt.Fprintf(g.stdout, "jetmesh with access control and TLS: %.2f× the throughput, %.2f× the p99 at %d/s of jetmesh without\n",
					rep.Ratios["secureThroughputVsPlain"], rep.Ratios["secureP99VsPlain"], cfg.Rate)
			}
			fmt.Fprintf(g.stdout, "(%d CPUs, %s)\n", rep.CPUs, rep.Go)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Events, "events", cfg.Events, "events per full-speed measurement")
	f.IntVar(&cfg.Rate, "rate", cfg.Rate, "events per second of the fixed-rate measurements")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of each fixed-rate measurement")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "the rule's maxConcurrency, and the raw HTTP client count")
	f.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "concurrent publishers at full speed")
	f.IntVar(&cfg.Batch, "batch", cfg.Batch, "events per publish request at full speed")
	f.IntVar(&cfg.DeliveryBatch, "delivery-batch", 0, "also measure batch delivery to the handler, this many events a request (delivery.batch), beside per-event delivery")
	f.BoolVar(&cfg.Secure, "secure", false, "also measure jetmesh with access control and TLS on (a second server in the same run)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	return cmd
}

func ms(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

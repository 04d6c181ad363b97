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
	var sidecarProcess bool
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
			if sidecarProcess {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("--sidecar-process: finding this binary: %w", err)
				}
				cfg.SidecarExec = exe
			}
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
			cols := []any{"PATH", "MODE", "EVENTS", "EVENTS/S", "P50", "P99", "P99.9"}
			cols = append(cols, "CPU")
			if cfg.SidecarExec != "" {
				cols = append(cols, "SIDECAR CPU", "SIDECAR PEAK RSS")
			}
			t := newTable(g.stdout, cols...)
			for _, r := range rep.Results {
				mode := "full speed"
				if r.Mode == bench.ModeFixed {
					mode = fmt.Sprintf("%d/s", cfg.Rate)
				}
				row := []any{r.Path, mode, r.Events, fmt.Sprintf("%.0f", r.EventsPerSec), ms(r.P50), ms(r.P99), ms(r.P999)}
				row = append(row, fmt.Sprintf("%.1fs", r.CPUSeconds))
				if cfg.SidecarExec != "" {
					row = append(row, fmt.Sprintf("%.1fs", r.SidecarCPUSeconds), fmt.Sprintf("%.0f MiB", r.SidecarPeakRSSMiB))
				}
				t.row(row...)
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout)
			if v, ok := rep.Ratios["throughputVsHTTP"]; ok {
				fmt.Fprintf(g.stdout, "jetmesh throughput: %.2f× raw HTTP, %.2f× raw JetStream (full speed)\n", v, rep.Ratios["throughputVsJetStream"])
			}
			if v, ok := rep.Ratios["p99VsHTTP"]; ok {
				fmt.Fprintf(g.stdout, "jetmesh p99 at %d/s: %.1f× raw HTTP, %.1f× raw JetStream\n", cfg.Rate, v, rep.Ratios["p99VsJetStream"])
			}
			if r, ok := rep.Find(bench.PathJetmeshOrdered, bench.ModeFull); ok {
				fmt.Fprintf(g.stdout, "ordered by key (%d keys, 2 replicas): %.0f events/s, %d order violations, %d repeats\n",
					r.Keys, r.EventsPerSec, r.OrderViolations, r.Repeats)
			}
			if r, ok := rep.Find(bench.PathJetmeshDelayed, bench.ModeFixed); ok {
				fmt.Fprintf(g.stdout, "delayed events (%d due a second, %s ahead): lateness p50 %s, p99 %s, p99.9 %s after the due time\n",
					cfg.Rate, cfg.Delay, ms(r.P50), ms(r.P99), ms(r.P999))
			}
			if r, ok := rep.Find(bench.PathJetmeshRateLimited, bench.ModeFull); ok {
				fmt.Fprintf(g.stdout, "rate limit %d/s: the handler saw %.1f/s (%+.1f%%)\n",
					cfg.RateLimit, r.EventsPerSec, (rep.Ratios["rateLimitAccuracy"]-1)*100)
			}
			if _, ok := rep.Ratios["batchThroughputVsPerEvent"]; ok {
				fmt.Fprintf(g.stdout, "jetmesh with batch delivery (%d a request): %.2f× the throughput, %.2f× the p99 at %d/s of per-event delivery\n",
					cfg.DeliveryBatch, rep.Ratios["batchThroughputVsPerEvent"], rep.Ratios["batchP99VsPerEvent"], cfg.Rate)
			}
			if _, ok := rep.Ratios["secureThroughputVsPlain"]; ok {
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
	f.IntVar(&cfg.OrderKeys, "order-keys", 0, "also measure an orderBy rule over this many keys, delivered by two sidecar replicas, counting order violations at the handler")
	f.DurationVar(&cfg.Delay, "delay", 0, "also measure delayed events (deliverat), each due this long after it is published, at --rate for --duration: the lateness after the due time")
	f.IntVar(&cfg.RateLimit, "rate-limit", 0, "also measure a rule limited to this many deliveries a second (delivery.rateLimit): the rate the handler sees")
	f.StringSliceVar(&cfg.Only, "only", nil, "measure only these paths (http, jetstream, jetmesh, jetmesh-batch, jetmesh-ordered, jetmesh-delayed, jetmesh-ratelimited, jetmesh-secure)")
	f.IntVar(&cfg.Nodes, "nodes", 1, "servers: 1, or 3 for a cluster on loopback with R3 streams (publishers and sidecars use the first)")
	f.BoolVar(&sidecarProcess, "sidecar-process", false, "run the sidecars as separate processes of this binary, and report their peak memory (VmHWM)")
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

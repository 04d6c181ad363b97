package bench_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bench"
)

// TestRunSmall runs the whole benchmark at a small size: every path delivers every event
// and the report is complete. It asserts no timing: the machine decides those.
func TestRunSmall(t *testing.T) {
	cfg := bench.DefaultConfig()
	cfg.Events, cfg.Rate, cfg.Duration, cfg.Concurrency = 500, 1000, 300*time.Millisecond, 16
	cfg.DeliveryBatch = 10
	cfg.DataDir = t.TempDir()
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 8 {
		t.Fatalf("%d results", len(rep.Results))
	}
	for _, path := range []string{bench.PathJetmesh, bench.PathJetmeshBatch, bench.PathJetStream, bench.PathHTTP} {
		full, ok1 := rep.Find(path, bench.ModeFull)
		fixed, ok2 := rep.Find(path, bench.ModeFixed)
		if !ok1 || !ok2 || full.Events != 500 || fixed.Events != 300 {
			t.Fatalf("%s: %+v %+v", path, full, fixed)
		}
		if full.EventsPerSec <= 0 || full.P50 <= 0 || full.P50 > full.P99 || full.P99 > full.P999 {
			t.Fatalf("%s: implausible %+v", path, full)
		}
	}
	for _, k := range []string{"throughputVsHTTP", "throughputVsJetStream", "p99VsHTTP", "p99VsJetStream", "batchThroughputVsPerEvent", "batchP99VsPerEvent"} {
		if rep.Ratios[k] <= 0 {
			t.Fatalf("ratio %s missing: %v", k, rep.Ratios)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	cfg := bench.DefaultConfig()
	cfg.Events, cfg.Rate = 5, 0
	_, err := bench.Run(context.Background(), cfg)
	if !errors.Is(err, bench.ErrConfig) {
		t.Fatalf("err %v", err)
	}
}

// TestRunModes runs the measurements of the other delivery modes at a small size: every
// event arrives, the ordered rule's keys keep their order across its two replicas, and
// the report carries what each mode measures.
func TestRunModes(t *testing.T) {
	cfg := bench.DefaultConfig()
	cfg.Events, cfg.Rate, cfg.Duration, cfg.Concurrency = 2000, 500, 400*time.Millisecond, 16
	cfg.OrderKeys, cfg.Delay, cfg.RateLimit = 100, 300*time.Millisecond, 250
	cfg.Only = []string{bench.PathJetmeshOrdered, bench.PathJetmeshDelayed, bench.PathJetmeshRateLimited}
	cfg.DataDir = t.TempDir()
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 3 {
		t.Fatalf("%d results: %+v", len(rep.Results), rep.Results)
	}
	ordered, ok := rep.Find(bench.PathJetmeshOrdered, bench.ModeFull)
	if !ok || ordered.Events != 2000 || ordered.Keys != 100 || ordered.OrderViolations != 0 {
		t.Fatalf("ordered: %+v", ordered)
	}
	delayed, ok := rep.Find(bench.PathJetmeshDelayed, bench.ModeFixed)
	if !ok || delayed.Events != 200 {
		t.Fatalf("delayed: %+v", delayed)
	}
	limited, ok := rep.Find(bench.PathJetmeshRateLimited, bench.ModeFull)
	if !ok || limited.Events != 100 || rep.Ratios["rateLimitAccuracy"] <= 0 {
		t.Fatalf("rate-limited: %+v, ratios %v", limited, rep.Ratios)
	}
}

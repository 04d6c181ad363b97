package delivery

import (
	"github.com/prometheus/client_golang/prometheus"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	if got := Quantile(0.5, nil); got != 0 {
		t.Errorf("no requests: %v", got)
	}
	// 100 requests, all in the bucket (1ms, 2.5ms]: the median is in its middle.
	b := make([]uint64, len(RequestBuckets)+1)
	b[2] = 100
	if got := Quantile(0.5, b); got < 1700*time.Microsecond || got > 1800*time.Microsecond {
		t.Errorf("median %v, want about 1.75ms", got)
	}
	// One slow request past the largest bound: p99 of 100 stays in the fast bucket, the max is the bound.
	b[len(RequestBuckets)] = 1
	if got := Quantile(0.99, b); got > 2500*time.Microsecond {
		t.Errorf("p99 %v, want within the fast bucket", got)
	}
	if got := Quantile(1, b); got != 30*time.Second {
		t.Errorf("max %v, want the largest bound", got)
	}
}

func TestCountsSub(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	rm := m.forRule("r")
	rm.results[resultDelivered].Add(3)
	rm.duration.Observe(0.002)
	before := m.Counts("r")
	rm.results[resultDelivered].Add(2)
	rm.results[resultRetried].Inc()
	rm.duration.Observe(0.002)
	d := m.Counts("r").Sub(before)
	if d.Results[resultDelivered] != 2 || d.Results[resultRetried] != 1 || d.Buckets[2] != 1 {
		t.Errorf("delta %+v", d)
	}
}

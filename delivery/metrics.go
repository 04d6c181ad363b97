package delivery

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the delivery counters, labelled by rule. One Metrics serves every deliverer
// of a process; it is safe for concurrent use.
type Metrics struct {
	results  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	latency  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	dlqFail  *prometheus.CounterVec
}

// Results counted by jetmesh_delivery_results_total.
const (
	resultDelivered    = "delivered"
	resultRetried      = "retried"
	resultDeadLettered = "dead_lettered"
	resultDropped      = "dropped"
	resultFiltered     = "filtered"
	resultReleased     = "released"
	resultUnreachable  = "unreachable"
)

// NewMetrics registers the delivery metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmesh_delivery_results_total",
			Help: "Events handled per rule, by result: delivered, retried, dead_lettered, dropped (dead-lettering off), filtered (pattern did not match), released (handed back unattempted on pause or shutdown), unreachable (a send that found no handler listening).",
		}, []string{"rule", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetmesh_delivery_request_seconds",
			Help:    "Time from sending an event to the handler to its answer, per rule.",
			Buckets: RequestBuckets,
		}, []string{"rule"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jetmesh_delivery_end_to_end_seconds",
			Help: "Time from an event being stored to the handler's answer that delivered it, per rule: what a publisher waits for a consumer to have it (retries, backlog and pauses included).",
			// 1 ms to about 3 days, ×4 a bucket.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 14),
		}, []string{"rule"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetmesh_delivery_in_flight",
			Help: "Requests to the handler in progress, per rule.",
		}, []string{"rule"}),
		dlqFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmesh_delivery_dlq_write_errors_total",
			Help: "DLQ records that could not be written; the event is retried instead of terminated.",
		}, []string{"rule"}),
	}
	reg.MustRegister(m.results, m.duration, m.latency, m.inFlight, m.dlqFail)
	return m
}

// RequestBuckets are the upper bounds, in seconds, of jetmesh_delivery_request_seconds.
var RequestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Counts are one rule's delivery counters at a moment: results by kind, and handler
// request durations per bucket of RequestBuckets (the last one past the largest bound).
type Counts struct {
	Results map[string]uint64 `json:"results"`
	Buckets []uint64          `json:"buckets"`
}

// Sub is what happened between an earlier reading and c.
func (c Counts) Sub(earlier Counts) Counts {
	out := Counts{Results: map[string]uint64{}, Buckets: make([]uint64, len(c.Buckets))}
	for k, v := range c.Results {
		if d := v - earlier.Results[k]; v >= earlier.Results[k] && d > 0 {
			out.Results[k] = d
		}
	}
	for i, v := range c.Buckets {
		if i < len(earlier.Buckets) && v >= earlier.Buckets[i] {
			out.Buckets[i] = v - earlier.Buckets[i]
		} else {
			out.Buckets[i] = v
		}
	}
	return out
}

// Counts reads one rule's counters, for a sidecar's heartbeat.
func (m *Metrics) Counts(rule string) Counts {
	c := Counts{Results: map[string]uint64{}, Buckets: make([]uint64, len(RequestBuckets)+1)}
	if m == nil {
		return c
	}
	for _, r := range allResults {
		var d dto.Metric
		if m.results.WithLabelValues(rule, r).Write(&d) == nil && d.GetCounter().GetValue() > 0 {
			c.Results[r] = uint64(d.GetCounter().GetValue())
		}
	}
	var d dto.Metric
	if h, ok := m.duration.WithLabelValues(rule).(prometheus.Metric); ok && h.Write(&d) == nil {
		prev := uint64(0)
		for i, b := range d.GetHistogram().GetBucket() {
			if i < len(RequestBuckets) {
				c.Buckets[i] = b.GetCumulativeCount() - prev
				prev = b.GetCumulativeCount()
			}
		}
		c.Buckets[len(RequestBuckets)] = d.GetHistogram().GetSampleCount() - prev
	}
	return c
}

// Quantile estimates the q-quantile of request durations from bucket counts, by linear
// interpolation inside the bucket it falls in; 0 without requests.
func Quantile(q float64, buckets []uint64) time.Duration {
	var total uint64
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, n := range buckets {
		if seen+float64(n) >= rank && n > 0 {
			if i >= len(RequestBuckets) {
				return time.Duration(RequestBuckets[len(RequestBuckets)-1] * float64(time.Second))
			}
			lower := 0.0
			if i > 0 {
				lower = RequestBuckets[i-1]
			}
			frac := (rank - seen) / float64(n)
			return time.Duration((lower + frac*(RequestBuckets[i]-lower)) * float64(time.Second))
		}
		seen += float64(n)
	}
	return time.Duration(RequestBuckets[len(RequestBuckets)-1] * float64(time.Second))
}

// Forget drops a removed rule's series.
func (m *Metrics) Forget(rule string) {
	if m == nil {
		return
	}
	m.results.DeletePartialMatch(prometheus.Labels{"rule": rule})
	m.duration.DeleteLabelValues(rule)
	m.latency.DeleteLabelValues(rule)
	m.inFlight.DeleteLabelValues(rule)
	m.dlqFail.DeleteLabelValues(rule)
}

// ruleMetrics are one rule's series, looked up once rather than per event. Without
// Metrics they count into unregistered throwaway collectors.
type ruleMetrics struct {
	results  map[string]prometheus.Counter
	duration prometheus.Observer
	latency  prometheus.Observer
	inFlight prometheus.Gauge
	dlqFail  prometheus.Counter
}

var allResults = []string{resultDelivered, resultRetried, resultDeadLettered, resultDropped, resultFiltered, resultReleased, resultUnreachable}

func (m *Metrics) forRule(rule string) ruleMetrics {
	if m == nil {
		m = &Metrics{ // unregistered: counts nobody reads
			results:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unused"}, []string{"rule", "result"}),
			duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "unused"}, []string{"rule"}),
			latency:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "unused"}, []string{"rule"}),
			inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "unused"}, []string{"rule"}),
			dlqFail:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unused"}, []string{"rule"}),
		}
	}
	rm := ruleMetrics{
		results:  make(map[string]prometheus.Counter, len(allResults)),
		duration: m.duration.WithLabelValues(rule),
		latency:  m.latency.WithLabelValues(rule),
		inFlight: m.inFlight.WithLabelValues(rule),
		dlqFail:  m.dlqFail.WithLabelValues(rule),
	}
	for _, r := range allResults {
		rm.results[r] = m.results.WithLabelValues(rule, r)
	}
	return rm
}

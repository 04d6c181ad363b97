package ingress

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the ingress's Prometheus metrics. They are safe for concurrent use.
type Metrics struct {
	entries   *prometheus.CounterVec
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inflight  prometheus.Gauge
	dlqFailed prometheus.Counter
}

var (
	transports   = []string{"http", "nats"}
	entryResults = []string{"accepted", "duplicate", CodeMalformed, CodeInvalidEvent, CodeTooLarge, CodeUnavailable}
)

// NewMetrics creates the ingress metrics and registers them with reg (nil: not registered,
// for callers that do not export metrics).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmesh_ingress_entries_total",
			Help: "Events received by the ingress, by transport and result (accepted, duplicate, or the error code).",
		}, []string{"transport", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmesh_ingress_requests_total",
			Help: "Publish requests answered, by transport and HTTP-equivalent status code.",
		}, []string{"transport", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetmesh_ingress_request_duration_seconds",
			Help:    "Time from a publish request's arrival to its answer, JetStream acknowledgement included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"transport"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmesh_ingress_inflight_requests",
			Help: "Publish requests being worked on now (bounded by ingress.maxInflight).",
		}),
		dlqFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmesh_ingress_dlq_write_failures_total",
			Help: "Rejected events whose DLQ record could not be written (the caller still got the rejection).",
		}),
	}
	for _, t := range transports {
		m.duration.WithLabelValues(t)
		for _, r := range entryResults {
			m.entries.WithLabelValues(t, r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.entries, m.requests, m.duration, m.inflight, m.dlqFailed)
	}
	return m
}

func (m *Metrics) observe(transport string, began time.Time, resp *Response) {
	m.duration.WithLabelValues(transport).Observe(time.Since(began).Seconds())
	m.requests.WithLabelValues(transport, strconv.Itoa(resp.StatusCode())).Inc()
	for _, e := range resp.Entries {
		result := e.ErrorCode
		switch {
		case e.Accepted() && e.Duplicate:
			result = "duplicate"
		case e.Accepted():
			result = "accepted"
		}
		m.entries.WithLabelValues(transport, result).Inc()
	}
}

// Counts returns the events counted so far by result (accepted, duplicate, or the
// rejection code), summed over the transports: what status turns into rates.
func (m *Metrics) Counts() map[string]uint64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { m.entries.Collect(ch); close(ch) }()
	out := map[string]uint64{}
	for metric := range ch {
		var d dto.Metric
		if metric.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "result" {
				out[l.GetValue()] += uint64(d.GetCounter().GetValue())
			}
		}
	}
	return out
}

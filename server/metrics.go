package server

import (
	"context"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/schemas"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// streamCollector reports the state of the EVENTS and DLQ streams at scrape time: two
// stream-info calls per scrape, whatever the load.
type streamCollector struct {
	js                        jetstream.JetStream
	messages, bytes, consumer *prometheus.Desc
	up                        *prometheus.Desc
}

var _ prometheus.Collector = (*streamCollector)(nil)

func newStreamCollector(js jetstream.JetStream) *streamCollector {
	labels := []string{"stream"}
	return &streamCollector{
		js:       js,
		messages: prometheus.NewDesc("jetmesh_stream_messages", "Messages stored in the stream.", labels, nil),
		bytes:    prometheus.NewDesc("jetmesh_stream_bytes", "Bytes stored in the stream.", labels, nil),
		consumer: prometheus.NewDesc("jetmesh_stream_consumers", "Consumers on the stream.", labels, nil),
		up:       prometheus.NewDesc("jetmesh_stream_up", "1 when the stream answered the scrape, 0 otherwise.", labels, nil),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.bytes
	ch <- c.consumer
	ch <- c.up
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range []string{bus.EventsStream, bus.DLQStream} {
		st, err := c.js.Stream(ctx, name)
		if err != nil {
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0, name)
			continue
		}
		s := st.CachedInfo().State
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1, name)
		ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(s.Msgs), name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes), name)
		ch <- prometheus.MustNewConstMetric(c.consumer, prometheus.GaugeValue, float64(s.Consumers), name)
	}
}

// schemaMetrics follows the registry the ingress validates against.
type schemaMetrics struct {
	versions, broken prometheus.Gauge
	reloads          prometheus.Counter
	compile          prometheus.Histogram
}

func newSchemaMetrics(reg prometheus.Registerer) *schemaMetrics {
	m := &schemaMetrics{
		versions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmesh_schemas_versions",
			Help: "Schema versions the ingress validates against."}),
		broken: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmesh_schemas_broken_versions",
			Help: "Schema versions in the registry that do not compile; events validated against them are refused."}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "jetmesh_schemas_reloads_total",
			Help: "Times the registry was recompiled after a change."}),
		compile: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "jetmesh_schemas_compile_seconds",
			Help: "Time to compile the whole registry.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
	}
	reg.MustRegister(m.versions, m.broken, m.reloads, m.compile)
	return m
}

func (m *schemaMetrics) observe(set *schemas.Set, took time.Duration) {
	m.versions.Set(float64(set.Versions()))
	m.broken.Set(float64(set.Broken()))
	m.reloads.Inc()
	m.compile.Observe(took.Seconds())
}

package server

import (
	"context"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/presence"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/schemas"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// streamCollector reports the state of the streams and of every rule's consumer at scrape
// time: three stream-info calls, one consumer listing and one read of the heartbeats per
// scrape, whatever the load and however many rules.
type streamCollector struct {
	js                        jetstream.JetStream
	messages, bytes, consumer *prometheus.Desc
	maxBytes, up              *prometheus.Desc
	rulePending, ruleAcks     *prometheus.Desc
	ruleRedelivered           *prometheus.Desc
	ruleMaxInFlight           *prometheus.Desc
	rulePaused, ruleSidecars  *prometheus.Desc
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
		maxBytes: prometheus.NewDesc("jetmesh_stream_max_bytes", "The stream's byte limit; absent when it has none.", labels, nil),
		rulePending: prometheus.NewDesc("jetmesh_rule_pending",
			"Events a rule's consumer has not delivered yet (its lag).", []string{"rule"}, nil),
		ruleAcks: prometheus.NewDesc("jetmesh_rule_ack_pending",
			"Events delivered to a rule's service and not yet acknowledged.", []string{"rule"}, nil),
		ruleRedelivered: prometheus.NewDesc("jetmesh_rule_redelivered",
			"Events of a rule being delivered again (retries in progress).", []string{"rule"}, nil),
		ruleMaxInFlight: prometheus.NewDesc("jetmesh_rule_max_in_flight",
			"The most events of a rule in flight at once (its maxConcurrency, the consumer's max ack pending).", []string{"rule"}, nil),
		rulePaused: prometheus.NewDesc("jetmesh_rule_paused",
			"1 while a rule is paused (jetmesh rules pause), 0 otherwise.", []string{"rule"}, nil),
		ruleSidecars: prometheus.NewDesc("jetmesh_rule_sidecars",
			"Sidecars announcing that they deliver a rule (heartbeats of the last 30s).", []string{"rule"}, nil),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.bytes
	ch <- c.consumer
	ch <- c.up
	ch <- c.rulePending
	ch <- c.ruleAcks
	ch <- c.ruleRedelivered
	ch <- c.maxBytes
	ch <- c.ruleMaxInFlight
	ch <- c.rulePaused
	ch <- c.ruleSidecars
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range []string{bus.EventsStream, bus.DLQStream, bus.IndexStream} {
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
		if limit := st.CachedInfo().Config.MaxBytes; limit > 0 {
			ch <- prometheus.MustNewConstMetric(c.maxBytes, prometheus.GaugeValue, float64(limit), name)
		}
		if name == bus.EventsStream && s.Consumers > 0 {
			c.collectRules(ctx, st, ch)
		}
	}
}

func (c *streamCollector) collectRules(ctx context.Context, st jetstream.Stream, ch chan<- prometheus.Metric) {
	sidecars := map[string]int{}
	if _, beats, err := presence.Read(ctx, c.js); err == nil {
		for _, b := range beats {
			for rule := range b.Rules {
				sidecars[rule]++
			}
		}
	}
	// An orderBy rule has a consumer per partition, each reading every event of the rule:
	// its backlog is the largest, its in-flight and limits the sums.
	type ruleState struct {
		pending                        uint64
		acks, redelivered, maxInFlight int
		paused                         bool
	}
	byRule := map[string]*ruleState{}
	lister := st.ListConsumers(ctx)
	for info := range lister.Info() {
		rule, ok := info.Config.Metadata[rules.MetaRule]
		if !ok {
			continue
		}
		r := byRule[rule]
		if r == nil {
			r = &ruleState{}
			byRule[rule] = r
		}
		r.pending = max(r.pending, info.NumPending)
		r.acks += info.NumAckPending
		r.redelivered += info.NumRedelivered
		r.maxInFlight += info.Config.MaxAckPending
		r.paused = r.paused || info.Paused
	}
	for rule, r := range byRule {
		ch <- prometheus.MustNewConstMetric(c.rulePending, prometheus.GaugeValue, float64(r.pending), rule)
		ch <- prometheus.MustNewConstMetric(c.ruleAcks, prometheus.GaugeValue, float64(r.acks), rule)
		ch <- prometheus.MustNewConstMetric(c.ruleRedelivered, prometheus.GaugeValue, float64(r.redelivered), rule)
		ch <- prometheus.MustNewConstMetric(c.ruleMaxInFlight, prometheus.GaugeValue, float64(r.maxInFlight), rule)
		ch <- prometheus.MustNewConstMetric(c.rulePaused, prometheus.GaugeValue, boolGauge(r.paused), rule)
		ch <- prometheus.MustNewConstMetric(c.ruleSidecars, prometheus.GaugeValue, float64(sidecars[rule]), rule)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ruleMetrics follows the reconciler.
type ruleMetrics struct {
	passes  *prometheus.CounterVec
	changes *prometheus.CounterVec
}

func newRuleMetrics(reg prometheus.Registerer) *ruleMetrics {
	m := &ruleMetrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jetmesh_rules_reconcile_total",
			Help: "Reconcile passes over the rule consumers, by result (ok, error)."}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jetmesh_rules_consumer_changes_total",
			Help: "Rule consumers created, updated, recreated, restarted or deleted."}, []string{"op"}),
	}
	reg.MustRegister(m.passes, m.changes)
	return m
}

func (m *ruleMetrics) observe(actions []rules.Action, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.passes.WithLabelValues(result).Inc()
	for _, a := range actions {
		m.changes.WithLabelValues(a.Op).Inc()
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

package sidecar

import (
	"time"

	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/presence"
)

// deliveryWindow turns the delivery counters into what the last minute's deliveries came
// to, per rule, from samples taken at each heartbeat.
type deliveryWindow struct {
	metrics *delivery.Metrics
	samples []deliverySample
}

type deliverySample struct {
	at     time.Time
	counts map[string]delivery.Counts
}

func newDeliveryWindow(m *delivery.Metrics, start time.Time) *deliveryWindow {
	return &deliveryWindow{metrics: m, samples: []deliverySample{{at: start, counts: map[string]delivery.Counts{}}}}
}

// over samples the rules now and returns each one's deliveries since the oldest sample
// kept (about a minute ago).
func (w *deliveryWindow) over(rules map[string]string) map[string]presence.Delivery {
	now := time.Now()
	cur := deliverySample{at: now, counts: make(map[string]delivery.Counts, len(rules))}
	for rule := range rules {
		cur.counts[rule] = w.metrics.Counts(rule)
	}
	w.samples = append(w.samples, cur)
	for len(w.samples) > 2 && now.Sub(w.samples[1].at) >= time.Minute {
		w.samples = w.samples[1:]
	}
	base := w.samples[0]
	out := make(map[string]presence.Delivery, len(rules))
	for rule, c := range cur.counts {
		d := c.Sub(base.counts[rule])
		out[rule] = presence.Delivery{WindowSeconds: now.Sub(base.at).Seconds(), Results: d.Results, Buckets: d.Buckets}
	}
	return out
}

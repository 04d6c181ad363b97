package sidecar

import (
	"time"

	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/internal/lastminute"
	"github.com/jetmesh/jetmesh/presence"
)

// deliveryWindow turns the delivery counters into what the last minute's deliveries came
// to, per rule, from samples taken at each heartbeat.
type deliveryWindow struct {
	metrics *delivery.Metrics
	window  *lastminute.Window[map[string]delivery.Counts]
}

func newDeliveryWindow(m *delivery.Metrics, start time.Time) *deliveryWindow {
	return &deliveryWindow{metrics: m, window: lastminute.New(start, map[string]delivery.Counts{})}
}

// over samples the rules now and returns each one's deliveries over about the last minute.
func (w *deliveryWindow) over(rules map[string]string) map[string]presence.Delivery {
	now := time.Now()
	cur := make(map[string]delivery.Counts, len(rules))
	for rule := range rules {
		cur[rule] = w.metrics.Counts(rule)
	}
	base, since := w.window.Add(now, cur)
	out := make(map[string]presence.Delivery, len(rules))
	for rule, c := range cur {
		d := c.Sub(base[rule])
		out[rule] = presence.Delivery{WindowSeconds: now.Sub(since).Seconds(), Results: d.Results, Buckets: d.Buckets}
	}
	return out
}

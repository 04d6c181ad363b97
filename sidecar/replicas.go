package sidecar

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/presence"
	"github.com/nats-io/nats.go/jetstream"
)

// replicaCount follows the heartbeats of the service's sidecars: how many deliver each
// rule now. A rate-limited rule's limit is shared out among them.
type replicaCount struct {
	counts atomic.Pointer[map[string]int]
}

// of returns the count for rule, at least 1 (this sidecar, before its first heartbeat).
func (r *replicaCount) of(rule string) func() int {
	return func() int {
		if m := r.counts.Load(); m != nil {
			return max(1, (*m)[rule])
		}
		return 1
	}
}

// seen returns the counts last read, for the heartbeat.
func (r *replicaCount) seen() map[string]int {
	if m := r.counts.Load(); m != nil {
		return *m
	}
	return nil
}

// follow re-reads the heartbeats every bus.PresenceInterval until ctx ends.
func (r *replicaCount) follow(ctx context.Context, js jetstream.JetStream, service string) {
	tick := time.NewTicker(bus.PresenceInterval)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, bus.PresenceInterval)
		_, sidecars, err := presence.Read(rctx, js)
		cancel()
		if err == nil {
			m := map[string]int{}
			for _, sc := range sidecars {
				if sc.Service != service {
					continue
				}
				for rule := range sc.Rules {
					m[rule]++
				}
			}
			r.counts.Store(&m)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

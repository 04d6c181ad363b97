package sidecar

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/presence"
	"github.com/nats-io/nats.go/jetstream"
)

// replicaCount follows the heartbeats of the service's sidecars: how many deliver each
// rule now (a rate-limited rule's limit is shared out among them), and which are alive
// (an orderBy rule's partitions are split among those).
type replicaCount struct {
	counts atomic.Pointer[map[string]int]
	live   atomic.Pointer[map[string][]string]

	mu      sync.Mutex
	renewed map[string]beat // by instance: its last heartbeat, and when it was first seen here
}

type beat struct {
	at   time.Time // the sidecar's own clock
	seen time.Time // this one's
}

// staleAfter is how long a sidecar whose heartbeat has not changed counts as alive for
// splitting partitions: three beats. It is measured on this sidecar's clock, so clock
// skew between hosts does not matter.
const staleAfter = 3 * bus.PresenceInterval

// of returns the count for rule, at least 1 (this sidecar, before its first heartbeat).
func (r *replicaCount) of(rule string) func() int {
	return func() int {
		if m := r.counts.Load(); m != nil {
			return max(1, (*m)[rule])
		}
		return 1
	}
}

// members returns, for rule, this sidecar's instance and the instances of the live
// sidecars that deliver it.
func (r *replicaCount) members(self, rule string) func() (string, []string) {
	return func() (string, []string) {
		if m := r.live.Load(); m != nil {
			return self, (*m)[rule]
		}
		return self, nil
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
			r.update(service, sidecars, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *replicaCount) update(service string, sidecars []presence.Sidecar, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.renewed == nil {
		r.renewed = map[string]beat{}
	}
	counts := map[string]int{}
	live := map[string][]string{}
	present := map[string]bool{}
	for _, sc := range sidecars {
		if sc.Service != service {
			continue
		}
		present[sc.Instance] = true
		b, ok := r.renewed[sc.Instance]
		if !ok || !b.at.Equal(sc.At) {
			b = beat{at: sc.At, seen: now}
			r.renewed[sc.Instance] = b
		}
		alive := now.Sub(b.seen) < staleAfter
		for rule := range sc.Rules {
			counts[rule]++
			if alive {
				live[rule] = append(live[rule], sc.Instance)
			}
		}
	}
	for instance := range r.renewed {
		if !present[instance] {
			delete(r.renewed, instance)
		}
	}
	for _, instances := range live {
		slices.Sort(instances)
	}
	r.counts.Store(&counts)
	r.live.Store(&live)
}

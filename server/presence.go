package server

import (
	"context"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/lastminute"
	"github.com/jetmesh/jetmesh/presence"
)

// announce renews this server's heartbeat until ctx ends (see presence): its version,
// readiness, the embedded cluster's meta leader, and the ingress's answers over the last
// minute, from samples of its counters taken at each beat.
func (s *Server) announce(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, ing *atomic.Pointer[ingress.Ingress]) {
	since := time.Now().UTC()
	window := lastminute.New(since, map[string]uint64{}) // the counters start at zero
	presence.Beat(ctx, js, presence.NodeKey(s.nodeName()), s.log, nil, func() any {
		now := time.Now()
		n := presence.Node{Name: s.nodeName(), Version: s.cfg.Version, Since: since, At: now.UTC(),
			Cluster: s.cfg.Cluster.Name, IngressPerMinute: map[string]uint64{}}
		in := ing.Load()
		n.Reason = s.unready(nc, in)
		n.Ready = n.Reason == ""
		if s.ns != nil && s.cfg.Cluster.enabled() {
			if jsz, err := s.ns.Jsz(&natsserver.JSzOptions{}); err == nil && jsz.Meta != nil {
				n.MetaLeader = jsz.Meta.Leader
			}
		}
		if in != nil {
			cur := in.Metrics().Counts()
			base, baseAt := window.Add(now, cur)
			for k, v := range cur {
				if d := v - base[k]; d > 0 {
					n.IngressPerMinute[k] = d
				}
			}
			n.IngressWindowSeconds = now.Sub(baseAt).Seconds()
		}
		return n
	})
}

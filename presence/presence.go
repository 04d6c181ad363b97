// Package presence is how jetmesh processes announce themselves: every server and sidecar
// renews a key in the mesh-presence bucket every few seconds, and the bucket forgets a
// key not renewed within bus.PresenceTTL. Status reads the bucket to show who is there,
// so "a rule has a backlog and no sidecar" is plain to see.
package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/nats-io/nats.go/jetstream"
)

// Node is a server's heartbeat.
type Node struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Since   time.Time `json:"since"`
	At      time.Time `json:"at"`
	// Cluster and MetaLeader describe the embedded NATS cluster, when there is one.
	Cluster    string `json:"cluster,omitempty"`
	MetaLeader string `json:"metaLeader,omitempty"`
	// Ready is the server's /readyz, with the reason when not.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// IngressPerMinute counts the events the ingress answered over the last minute by
	// result: accepted, duplicate, or the rejection code. IngressWindowSeconds is the span
	// actually counted: less than 60 while the server has run less than a minute.
	IngressPerMinute     map[string]uint64 `json:"ingressPerMinute"`
	IngressWindowSeconds float64           `json:"ingressWindowSeconds"`
}

// Sidecar is a sidecar's heartbeat.
type Sidecar struct {
	Service  string    `json:"service"`
	Instance string    `json:"instance"`
	Version  string    `json:"version"`
	Since    time.Time `json:"since"`
	At       time.Time `json:"at"`
	Ready    bool      `json:"ready"`
	Reason   string    `json:"reason,omitempty"`
	// Rules maps each rule the sidecar delivers to its state: bound, waiting, paused,
	// unreachable.
	Rules map[string]string `json:"rules"`
	// Delivery is what each rule's deliveries came to over the last minute (less while the
	// sidecar has run less than that).
	Delivery map[string]Delivery `json:"delivery,omitempty"`
	// Replicas is how many sidecars the sidecar last saw delivering each of its rules: a
	// rate-limited rule's share is the limit divided by it.
	Replicas map[string]int `json:"replicas,omitempty"`
}

// Delivery counts a rule's deliveries over a window: results by kind (delivered, retried,
// dead_lettered, ...) and handler request durations per bucket of
// delivery.RequestBuckets.
type Delivery struct {
	WindowSeconds float64           `json:"windowSeconds"`
	Results       map[string]uint64 `json:"results"`
	Buckets       []uint64          `json:"buckets"`
}

// NodeKey and SidecarKey are where heartbeats are kept.
func NodeKey(name string) string { return "node." + keySafe(name) }

// SidecarKey is sidecar.<service>.<instance>.
func SidecarKey(service, instance string) string {
	return "sidecar." + service + "." + keySafe(instance)
}

var unsafeKey = regexp.MustCompile(`[^-_=a-zA-Z0-9]`)

func keySafe(s string) string { return unsafeKey.ReplaceAllString(s, "_") }

// Instance names a sidecar among those of its service: host, pid, and a sequence number
// that tells apart sidecars sharing a process (the bench runs two). An orderBy rule's
// partitions are split among instances.
func Instance() string {
	host, _ := os.Hostname()
	n := instances.Add(1)
	if n == 1 {
		return fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return fmt.Sprintf("%s-%d-%d", host, os.Getpid(), n)
}

var instances atomic.Int64

// Beat puts what describe returns under key every bus.PresenceInterval, and at once
// whenever renew fires (nil: never), until ctx ends; then it deletes the key, so a process
// that stops cleanly leaves at once and one that dies is forgotten after bus.PresenceTTL.
func Beat(ctx context.Context, js jetstream.JetStream, key string, log *slog.Logger, renew <-chan struct{}, describe func() any) {
	var kv jetstream.KeyValue
	warned := false
	tick := time.NewTicker(bus.PresenceInterval)
	defer tick.Stop()
	for {
		if kv == nil {
			opened, err := js.KeyValue(ctx, bus.PresenceBucket)
			if err == nil {
				kv = opened
			} else if !warned && ctx.Err() == nil {
				log.Warn("cannot announce presence; status will not show this process", "error", err)
				warned = true
			}
		}
		if kv != nil {
			b, _ := json.Marshal(describe())
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if _, err := kv.Put(pctx, key, b); err != nil && !warned && ctx.Err() == nil {
				log.Warn("announcing presence failed; retrying", "error", err)
				warned = true
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			if kv != nil {
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = kv.Delete(dctx, key)
				cancel()
			}
			return
		case <-tick.C:
		case <-renew:
		}
	}
}

// Read returns the heartbeats now in the bucket.
func Read(ctx context.Context, js jetstream.JetStream) ([]Node, []Sidecar, error) {
	snap, err := kvwatch.Read(ctx, js, bus.PresenceBucket)
	if err != nil {
		return nil, nil, err
	}
	var nodes []Node
	var sidecars []Sidecar
	for key, raw := range snap {
		switch {
		case strings.HasPrefix(key, "node."):
			var n Node
			if json.Unmarshal(raw, &n) == nil {
				nodes = append(nodes, n)
			}
		case strings.HasPrefix(key, "sidecar."):
			var s Sidecar
			if json.Unmarshal(raw, &s) == nil {
				sidecars = append(sidecars, s)
			}
		}
	}
	return nodes, sidecars, nil
}

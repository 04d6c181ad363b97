// Package status gathers one view of the whole bus: nodes and cluster health, the
// streams against their limits, the ingress's recent answers, each rule's delivery, the
// sidecars of each service, and the DLQ by reason. It reads what JetStream and the
// presence heartbeats already hold; nothing is scanned.
package status

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/presence"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
)

// Report is the whole view.
type Report struct {
	At       time.Time          `json:"at"`
	Nodes    []presence.Node    `json:"nodes"`
	Streams  []Stream           `json:"streams"`
	Ingress  Ingress            `json:"ingress"`
	Rules    []Rule             `json:"rules"`
	Services []Service          `json:"services"`
	DLQ      DLQ                `json:"dlq"`
	Problems []string           `json:"problems"`
	Sidecars []presence.Sidecar `json:"sidecars"`
}

// Stream is a stream's size against its limits and its replicas' health.
type Stream struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// MaxBytes is the stream's byte cap (0: none); BytesPercent how full it is.
	MaxBytes     int64   `json:"maxBytes"`
	BytesPercent float64 `json:"bytesPercent"`
	// MaxAge is the retention; OldestAge the age of the oldest message, and AgePercent
	// how far into the retention it is.
	MaxAge     time.Duration `json:"maxAgeNs"`
	OldestAge  time.Duration `json:"oldestAgeNs"`
	AgePercent float64       `json:"agePercent"`
	Leader     string        `json:"leader,omitempty"`
	Replicas   []Replica     `json:"replicas"`
}

// Replica is one follower of a replicated stream.
type Replica struct {
	Name    string        `json:"name"`
	Current bool          `json:"current"`
	Offline bool          `json:"offline,omitempty"`
	Lag     uint64        `json:"lag"`
	Active  time.Duration `json:"activeNs"`
}

// Ingress sums the nodes' ingress answers over the last minute.
type Ingress struct {
	AcceptedPerMinute uint64            `json:"acceptedPerMinute"`
	RejectedPerMinute uint64            `json:"rejectedPerMinute"`
	RejectedByReason  map[string]uint64 `json:"rejectedByReason"`
}

// Rule is one rule's delivery.
type Rule struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	// Pending: stored, not yet handed out. InFlight: handed out, not yet acknowledged.
	Pending     uint64 `json:"pending"`
	InFlight    int    `json:"inFlight"`
	Redelivered int    `json:"redelivered"`
	// DeadLetteredLastHour counts the rule's DLQ records of the last hour.
	DeadLetteredLastHour uint64     `json:"deadLetteredLastHour"`
	Paused               bool       `json:"paused"`
	PausedUntil          *time.Time `json:"pausedUntil,omitempty"`
	// OldestUndelivered is the age of the oldest event not yet acknowledged; 0 if none.
	OldestUndelivered time.Duration `json:"oldestUndeliveredNs"`
	// Sidecars is how many sidecars of the service announce this rule.
	Sidecars int `json:"sidecars"`
	// DeliveredPerMinute and ErrorsPerMinute (retried or dead-lettered) sum the sidecars'
	// last minute; HandlerP50 and HandlerP99 estimate the handler's answer time over it.
	DeliveredPerMinute float64       `json:"deliveredPerMinute"`
	ErrorsPerMinute    float64       `json:"errorsPerMinute"`
	HandlerP50         time.Duration `json:"handlerP50Ns"`
	HandlerP99         time.Duration `json:"handlerP99Ns"`
	Problem            string        `json:"problem,omitempty"`
}

// Service is the sidecars of one service.
type Service struct {
	Name     string    `json:"name"`
	Sidecars int       `json:"sidecars"`
	Ready    int       `json:"ready"`
	Since    time.Time `json:"since"`
	Versions []string  `json:"versions"`
}

// DLQ is the dead-letter queue's depth.
type DLQ struct {
	Messages uint64            `json:"messages"`
	ByReason map[string]uint64 `json:"byReason"`
	ByRule   map[string]uint64 `json:"byRule"`
}

// Collect gathers the report.
func Collect(ctx context.Context, js jetstream.JetStream) (*Report, error) {
	now := time.Now()
	rep := &Report{At: now.UTC(), Problems: []string{}}
	var err error
	if rep.Nodes, rep.Sidecars, err = presence.Read(ctx, js); err != nil {
		return nil, fmt.Errorf("heartbeats: %w", err)
	}
	slices.SortFunc(rep.Nodes, func(a, b presence.Node) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(rep.Sidecars, func(a, b presence.Sidecar) int {
		return strings.Compare(a.Service+"/"+a.Instance, b.Service+"/"+b.Instance)
	})
	if len(rep.Nodes) == 0 {
		rep.Problems = append(rep.Problems, "no server has announced itself in the last 30s")
	}
	rep.Ingress = Ingress{RejectedByReason: map[string]uint64{}}
	for _, n := range rep.Nodes {
		if !n.Ready {
			rep.Problems = append(rep.Problems, fmt.Sprintf("server %s is not ready: %s", n.Name, n.Reason))
		}
		for k, v := range n.IngressPerMinute {
			switch k {
			case "accepted", "duplicate":
				rep.Ingress.AcceptedPerMinute += v
			default:
				rep.Ingress.RejectedPerMinute += v
				rep.Ingress.RejectedByReason[k] += v
			}
		}
	}
	for _, name := range []string{bus.EventsStream, bus.DLQStream} {
		st, err := stream(ctx, js, name, now)
		if err != nil {
			return nil, err
		}
		rep.Streams = append(rep.Streams, *st)
		for _, r := range st.Replicas {
			if !r.Current || r.Offline {
				rep.Problems = append(rep.Problems, fmt.Sprintf("stream %s: replica %s is behind by %d (offline %v)", name, r.Name, r.Lag, r.Offline))
			}
		}
		if st.BytesPercent >= 80 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("stream %s is %.0f%% full", name, st.BytesPercent))
		}
	}
	if rep.DLQ, err = dlqDepth(ctx, js); err != nil {
		return nil, err
	}
	rep.Services = services(rep.Sidecars)
	if rep.Rules, err = ruleStates(ctx, js, rep.Sidecars, now); err != nil {
		return nil, err
	}
	for _, r := range rep.Rules {
		if r.Problem != "" {
			rep.Problems = append(rep.Problems, "rule "+r.Name+": "+r.Problem)
		}
	}
	return rep, nil
}

func stream(ctx context.Context, js jetstream.JetStream, name string, now time.Time) (*Stream, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info := s.CachedInfo()
	st := &Stream{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes, MaxBytes: max(info.Config.MaxBytes, 0),
		MaxAge: info.Config.MaxAge, Replicas: []Replica{}}
	if st.MaxBytes > 0 {
		st.BytesPercent = 100 * float64(st.Bytes) / float64(st.MaxBytes)
	}
	if st.Messages > 0 && !info.State.FirstTime.IsZero() {
		st.OldestAge = now.Sub(info.State.FirstTime)
		if st.MaxAge > 0 {
			st.AgePercent = 100 * float64(st.OldestAge) / float64(st.MaxAge)
		}
	}
	if c := info.Cluster; c != nil {
		st.Leader = c.Leader
		for _, p := range c.Replicas {
			st.Replicas = append(st.Replicas, Replica{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag, Active: p.Active})
		}
	}
	return st, nil
}

// dlqDepth reads the DLQ's per-subject counts: dlq.ingress.<reason> and
// dlq.rule.<rule>.<reason> (or dlq.rule.<rule>, from older versions: reason unknown).
func dlqDepth(ctx context.Context, js jetstream.JetStream) (DLQ, error) {
	d := DLQ{ByReason: map[string]uint64{}, ByRule: map[string]uint64{}}
	s, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		return d, fmt.Errorf("stream %s: %w", bus.DLQStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.DLQSubjects))
	if err != nil {
		return d, fmt.Errorf("stream %s: %w", bus.DLQStream, err)
	}
	d.Messages = info.State.Msgs
	for subject, n := range info.State.Subjects {
		parts := strings.Split(subject, ".")
		switch {
		case len(parts) == 3 && parts[1] == "ingress":
			d.ByReason[parts[2]] += n
		case len(parts) == 4 && parts[1] == "rule":
			d.ByRule[parts[2]] += n
			d.ByReason[parts[3]] += n
		case len(parts) == 3 && parts[1] == "rule":
			d.ByRule[parts[2]] += n
			d.ByReason["delivery (older record)"] += n
		}
	}
	return d, nil
}

func services(sidecars []presence.Sidecar) []Service {
	by := map[string]*Service{}
	for _, sc := range sidecars {
		s := by[sc.Service]
		if s == nil {
			s = &Service{Name: sc.Service, Since: sc.Since}
			by[sc.Service] = s
		}
		s.Sidecars++
		if sc.Ready {
			s.Ready++
		}
		if sc.Since.Before(s.Since) {
			s.Since = sc.Since
		}
		if !slices.Contains(s.Versions, sc.Version) {
			s.Versions = append(s.Versions, sc.Version)
		}
	}
	out := make([]Service, 0, len(by))
	for _, name := range slices.Sorted(maps.Keys(by)) {
		slices.Sort(by[name].Versions)
		out = append(out, *by[name])
	}
	return out
}

func ruleStates(ctx context.Context, js jetstream.JetStream, sidecars []presence.Sidecar, now time.Time) ([]Rule, error) {
	store, err := rules.OpenStore(ctx, js)
	if err != nil {
		return nil, err
	}
	rs, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	events, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return nil, err
	}
	dlqStream, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		return nil, err
	}
	hourAgo := now.Add(-time.Hour)
	out := make([]Rule, 0, len(rs))
	for _, r := range rs {
		st := Rule{Name: r.Name, Service: r.Target.Service}
		var buckets []uint64
		for _, sc := range sidecars {
			if _, ok := sc.Rules[r.Name]; !ok || sc.Service != r.Target.Service {
				continue
			}
			st.Sidecars++
			d, ok := sc.Delivery[r.Name]
			if !ok || d.WindowSeconds <= 0 {
				continue
			}
			perMinute := 60 / d.WindowSeconds
			st.DeliveredPerMinute += float64(d.Results["delivered"]) * perMinute
			st.ErrorsPerMinute += float64(d.Results["retried"]+d.Results["dead_lettered"]) * perMinute
			for i, n := range d.Buckets {
				if i >= len(buckets) {
					buckets = append(buckets, 0)
				}
				buckets[i] += n
			}
		}
		st.HandlerP50, st.HandlerP99 = delivery.Quantile(0.5, buckets), delivery.Quantile(0.99, buckets)
		info, err := furthestBehind(ctx, events, r)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			st.Problem = "no consumer yet (the server creates it)"
			out = append(out, st)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		st.Pending, st.InFlight, st.Redelivered = info.NumPending, info.NumAckPending, info.NumRedelivered
		if info.Paused {
			st.Paused = true
			if u := info.Config.PauseUntil; u != nil && !rules.UntilResumed(*u) {
				t := u.UTC()
				st.PausedUntil = &t
			}
		}
		if st.Pending+uint64(st.InFlight) > 0 {
			if t, ok := oldestAfter(ctx, events, info); ok {
				st.OldestUndelivered = now.Sub(t)
			}
		}
		if st.DeadLetteredLastHour, err = bus.Pending(ctx, dlqStream, []string{dlq.RuleSubject(r.Name), dlq.RuleSubject(r.Name) + ".>"},
			jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &hourAgo}); err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		switch {
		case st.Sidecars == 0 && st.Pending+uint64(st.InFlight) > 0:
			st.Problem = fmt.Sprintf("%d event(s) waiting and no sidecar of %s is delivering", st.Pending+uint64(st.InFlight), r.Target.Service)
		case st.Sidecars == 0:
			st.Problem = "no sidecar of " + r.Target.Service + " is delivering"
		}
		out = append(out, st)
	}
	return out, nil
}

// oldestAfter is the stored time of the first event past the consumer's ack floor on its
// filter subjects: the oldest not yet acknowledged.
func oldestAfter(ctx context.Context, events jetstream.Stream, info *jetstream.ConsumerInfo) (time.Time, bool) {
	filters := info.Config.FilterSubjects
	if len(filters) == 0 && info.Config.FilterSubject != "" {
		filters = []string{info.Config.FilterSubject}
	}
	var oldest time.Time
	for _, f := range filters {
		m, err := events.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if err != nil {
			continue
		}
		if oldest.IsZero() || m.Time.Before(oldest) {
			oldest = m.Time
		}
	}
	return oldest, !oldest.IsZero()
}

// furthestBehind is the info of the rule's consumer with the most events waiting: its
// only one, or of an orderBy rule's partitions (each reads every event of the rule) the
// one that lags most.
func furthestBehind(ctx context.Context, events jetstream.Stream, r rules.Rule) (*jetstream.ConsumerInfo, error) {
	var worst *jetstream.ConsumerInfo
	for _, name := range r.ConsumerNames() {
		c, err := events.Consumer(ctx, name)
		if err != nil {
			return nil, err
		}
		info := c.CachedInfo()
		if worst == nil || info.NumPending+uint64(info.NumAckPending) > worst.NumPending+uint64(worst.NumAckPending) {
			worst = info
		}
	}
	return worst, nil
}

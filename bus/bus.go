// Package bus defines jetmesh's JetStream topology, the names every other package agrees on:
// the EVENTS and DLQ streams, their subjects, the ingress request subject, the KV buckets,
// and how the streams are created or updated idempotently at start-up.
package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names and subjects shared by the server, CLI and sidecar.
const (
	EventsStream   = "EVENTS"
	EventsSubjects = "evt.>"
	// DirectSubjects hold copies of stored events addressed to one rule only: redriven
	// deliveries (rule.<rule>.redrive.<dlq seq>) and replays (rule.<rule>.replay.<id>).
	// Every rule's consumer takes its own rule.<rule>.> besides the subjects of its pattern.
	DirectSubjects = "rule.>"
	// ScheduledSubjects hold delayed events until they are due: one JetStream message
	// schedule per event (sched.<hash of source and id>), which at the due time stores the
	// event on its evt.<type> subject, where the rules see it, and removes the schedule.
	ScheduledSubjects = "sched.>"
	// IndexStream is the id index of EVENTS (see lookup): entries id hash → stream
	// sequence, on IndexSubjects, written by each server's indexer.
	IndexStream   = "EVENT_IDS"
	IndexSubjects = "idx.>"
	DLQStream     = "DLQ"
	DLQSubjects   = "dlq.>"
	// IngressSubject is where the ingress answers publish requests over NATS
	// (request/reply, same payloads and answers as HTTP POST /v1/events).
	IngressSubject = "jetmesh.v1.events"
	// IngressQueue lets several servers share ingress requests.
	IngressQueue = "jetmesh-ingress"
	// SchemasBucket is the KV bucket of the schema registry: one key <type>.v<N> per
	// version, written once.
	SchemasBucket = "mesh-schemas"
	// RulesBucket is the KV bucket of rules: one key per rule name.
	RulesBucket = "mesh-rules"
	// PrincipalsBucket is the KV bucket of principals (access control): one key per name,
	// public keys and token hashes only.
	PrincipalsBucket = "mesh-principals"
	// RedrivesBucket records each DLQ record that was redriven, by its DLQ sequence, so a
	// record is redriven at most once. Kept as long as the DLQ keeps records.
	RedrivesBucket = "mesh-redrives"
	// ReplaysBucket holds the replays the servers run: one key per replay id, with its
	// window, pace and progress, so a replay resumes after a restart.
	ReplaysBucket = "mesh-replays"
	// RetriesBucket notes the events a rule is retrying: key <rule>.<stream seq> → the
	// attempt made, its answer and when the next comes. Written by deliverers on the
	// failure path only, removed when the event is settled.
	RetriesBucket = "mesh-retries"
	// PresenceBucket holds heartbeats: node.<server> from each server and
	// sidecar.<service>.<instance> from each sidecar. Entries expire after PresenceTTL.
	PresenceBucket = "mesh-presence"
	// PresenceTTL is how long a heartbeat stays without being renewed; PresenceInterval is
	// how often they are renewed.
	PresenceTTL      = 30 * time.Second
	PresenceInterval = 5 * time.Second
)

// ScheduleSubject is where the event source/id waits until it is due: one subject per
// event, since JetStream keeps one schedule per subject.
func ScheduleSubject(source, id string) string {
	sum := sha256.Sum256([]byte(source + "\n" + id))
	return "sched." + hex.EncodeToString(sum[:16])
}

// Schedule turns msg, an event bound for its evt.<type> subject, into a JetStream message
// schedule that stores it there at the time given.
func Schedule(msg *nats.Msg, source, id string, at time.Time) *nats.Msg {
	h := make(nats.Header, len(msg.Header)+2)
	for k, v := range msg.Header {
		h[k] = v
	}
	h.Set("Nats-Schedule", "@at "+at.UTC().Format(time.RFC3339Nano))
	h.Set("Nats-Schedule-Target", msg.Subject)
	return &nats.Msg{Subject: ScheduleSubject(source, id), Header: h, Data: msg.Data}
}

// DirectSubject is the subject of a copy of an event addressed to rule only: kind is
// "redrive" or "replay", id the DLQ sequence or replay id.
func DirectSubject(rule, kind, id string) string { return "rule." + rule + "." + kind + "." + id }

// DirectFilter is the filter subject of every copy addressed to rule.
func DirectFilter(rule string) string { return "rule." + rule + ".>" }

// IsDirect reports whether subject holds a copy addressed to one rule.
func IsDirect(subject string) bool { return strings.HasPrefix(subject, "rule.") }

// StreamsConfig sets the retention of the EVENTS and DLQ streams.
type StreamsConfig struct {
	// EventsMaxAge is how long events are kept: the archive that replay reads.
	EventsMaxAge duration.Duration `yaml:"eventsMaxAge" json:"eventsMaxAge"`
	// EventsMaxBytes caps the EVENTS stream; the oldest events go first. 0 = no cap.
	EventsMaxBytes int64 `yaml:"eventsMaxBytes" json:"eventsMaxBytes"`
	// DLQMaxAge is how long dead-letter records are kept.
	DLQMaxAge duration.Duration `yaml:"dlqMaxAge" json:"dlqMaxAge"`
	// DLQMaxBytes caps the DLQ stream; the oldest records go first. Anyone who can reach
	// the ingress can make records, so the DLQ always has a cap. The server sets it from
	// its dlq.maxBytes setting.
	DLQMaxBytes int64 `yaml:"-" json:"-"`
	// DuplicateWindow is how long a re-published event id is recognised and stored once.
	DuplicateWindow duration.Duration `yaml:"duplicateWindow" json:"duplicateWindow"`
	// Replicas is the stream replication factor: 1 single-node, 3 in a cluster.
	Replicas int `yaml:"replicas" json:"replicas"`
}

// DefaultDLQMaxBytes caps the DLQ stream unless configured otherwise: 256 MiB, about a
// thousand of the largest rejected requests, or a quarter million typical records.
// JetStream reserves a capped stream's bytes up front, so the cap must fit the store.
const DefaultDLQMaxBytes = 256 << 20

// DefaultStreamsConfig is the design's default: 7 days of events, 14 days (at most 256 MiB)
// of DLQ, a 2-minute duplicate window, one replica.
func DefaultStreamsConfig() StreamsConfig {
	return StreamsConfig{
		EventsMaxAge:    duration.Duration(7 * 24 * time.Hour),
		DLQMaxAge:       duration.Duration(14 * 24 * time.Hour),
		DLQMaxBytes:     DefaultDLQMaxBytes,
		DuplicateWindow: duration.Duration(2 * time.Minute),
		Replicas:        1,
	}
}

// Validate names every problem in the configuration.
func (c StreamsConfig) Validate() error {
	var errs []error
	if c.EventsMaxAge <= 0 {
		errs = append(errs, errors.New("streams.eventsMaxAge must be positive"))
	}
	if c.DLQMaxAge <= 0 {
		errs = append(errs, errors.New("streams.dlqMaxAge must be positive"))
	}
	if c.DuplicateWindow <= 0 {
		errs = append(errs, errors.New("streams.duplicateWindow must be positive"))
	}
	if c.DuplicateWindow > c.EventsMaxAge {
		errs = append(errs, fmt.Errorf("streams.duplicateWindow (%s) must not exceed streams.eventsMaxAge (%s)", c.DuplicateWindow, c.EventsMaxAge))
	}
	if c.EventsMaxBytes < 0 {
		errs = append(errs, errors.New("streams.eventsMaxBytes must be 0 (no cap) or positive"))
	}
	if c.DLQMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("dlq.maxBytes must be at least 1 MiB (1048576), got %d", c.DLQMaxBytes))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("streams.replicas must be between 1 and 5, got %d", c.Replicas))
	}
	return errors.Join(errs...)
}

// EventsConfig is the JetStream configuration of the EVENTS stream.
func (c StreamsConfig) EventsConfig() jetstream.StreamConfig {
	maxBytes := c.EventsMaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "jetmesh events, stored once; every rule is a consumer of this stream",
		Subjects:    []string{EventsSubjects, DirectSubjects, ScheduledSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.EventsMaxAge.Std(),
		MaxBytes:    maxBytes,
		Duplicates:  c.DuplicateWindow.Std(),
		Replicas:    c.Replicas,
		// Delayed events (deliverat) are message schedules (nats-server 2.12+).
		AllowMsgSchedules: true,
	}
}

// IndexConfig is the JetStream configuration of the id index: kept as long as the events.
func (c StreamsConfig) IndexConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        IndexStream,
		Description: "jetmesh id index of EVENTS: id hash → stream sequence, for jetmesh events get",
		Subjects:    []string{IndexSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.EventsMaxAge.Std(),
		Replicas:    c.Replicas,
	}
}

// DLQConfig is the JetStream configuration of the DLQ stream.
func (c StreamsConfig) DLQConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "jetmesh dead-letter records: rejected events and failed deliveries, with the reason",
		Subjects:    []string{DLQSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.DLQMaxAge.Std(),
		MaxBytes:    c.DLQMaxBytes,
		Replicas:    c.Replicas,
	}
}

// EnsureStreams creates the EVENTS, DLQ and id index streams or updates them to c. It retries while
// JetStream is not ready yet (a cluster electing its meta leader) until ctx is done.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c StreamsConfig) error {
	return all([]jetstream.StreamConfig{c.EventsConfig(), c.DLQConfig(), c.IndexConfig()}, func(cfg jetstream.StreamConfig) error {
		return ensureStream(ctx, js, cfg)
	})
}

// all runs op for each item at once (in a cluster each create is a round of consensus:
// one after another, they add up) and joins the errors.
func all[T any](items []T, op func(T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { errs[i] = op(it) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	return untilReady(ctx, "stream "+cfg.Name, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
}

// BucketConfigs are the KV buckets jetmesh keeps: the schema registry and the rules.
func (c StreamsConfig) BucketConfigs() []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{Bucket: SchemasBucket, Description: "jetmesh schema registry: <type>.v<N> → JSON Schema, written once",
			History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: RulesBucket, Description: "jetmesh rules: name → rule",
			History: 5, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: PrincipalsBucket, Description: "jetmesh principals: name → role, public key, token hash",
			History: 5, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: RedrivesBucket, Description: "jetmesh redriven DLQ records: DLQ sequence → when, by whom, where to",
			History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas, TTL: c.DLQMaxAge.Std()},
		{Bucket: ReplaysBucket, Description: "jetmesh replays: id → rule, window, pace, progress",
			History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas, TTL: c.EventsMaxAge.Std()},
		{Bucket: RetriesBucket, Description: "jetmesh events being retried: <rule>.<seq> → attempt, answer, next try",
			History: 1, Storage: jetstream.FileStorage, Replicas: c.Replicas, TTL: c.EventsMaxAge.Std()},
		{Bucket: PresenceBucket, Description: "jetmesh heartbeats of servers and sidecars",
			History: 1, Storage: jetstream.MemoryStorage, Replicas: c.Replicas, TTL: PresenceTTL},
	}
}

// EnsureBuckets creates the KV buckets or updates them to c, retrying like EnsureStreams.
func EnsureBuckets(ctx context.Context, js jetstream.JetStream, c StreamsConfig) error {
	return all(c.BucketConfigs(), func(cfg jetstream.KeyValueConfig) error {
		return untilReady(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateKeyValue(ctx, cfg)
			return err
		})
	})
}

// untilReady calls op until it succeeds, fails for a reason waiting will not fix, or ctx
// ends.
func untilReady(ctx context.Context, what string, op func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := op(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		if !notReadyYet(err) {
			// A refused configuration (for example a change JetStream cannot apply in place)
			// will not fix itself by waiting.
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// JetStream API error codes that mean "not ready yet, ask again": a cluster still forming
// or electing a leader.
var transientCodes = map[jetstream.ErrorCode]bool{
	10005: true, // JSClusterNoPeersErr: no suitable peers yet
	10006: true, // JSClusterNotActiveErr
	10007: true, // JSClusterNotAssignedErr
	10008: true, // JSClusterNotAvailErr
	10009: true, // JSClusterNotLeaderErr
	10023: true, // JSInsufficientResourcesErr: not enough nodes have joined for the replicas yet
	10076: true, // JSNotEnabledErr: JetStream still starting
}

func notReadyYet(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return transientCodes[apiErr.ErrorCode]
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// PlaceReader runs create, which makes a one-replica ephemeral consumer, with a short
// deadline per attempt, trying again (fresh consumer name, so possibly another node) while
// ctx allows: a cluster node that was just killed is still counted online for a while, and
// a consumer placed on it never answers. onRetry, when set, hears of each retry.
func PlaceReader[C any](ctx context.Context, onRetry func(error), create func(context.Context) (C, error)) (C, error) {
	const perAttempt = 3 * time.Second
	for {
		attempt, cancel := context.WithTimeout(ctx, perAttempt)
		cons, err := create(attempt)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return cons, err
		}
		if onRetry != nil {
			onRetry(fmt.Errorf("no answer to a consumer create in %v (a cluster node may be down); retrying", perAttempt))
		}
	}
}

// Pending counts the stored messages a consumer starting at pos's position (deliver
// policy, start sequence or time) with these filters would deliver, with a throwaway
// consumer that acks nothing and is deleted at once.
func Pending(ctx context.Context, stream jetstream.Stream, filters []string, pos jetstream.ConsumerConfig) (uint64, error) {
	cfg := pos
	cfg.FilterSubjects = filters
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	cfg.InactiveThreshold = 30 * time.Second // cleaned up by the server if the delete below is lost
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("counting messages from a start position: %w", err)
	}
	info := c.CachedInfo()
	if err := stream.DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, fmt.Errorf("deleting the counting consumer %s: %w", info.Name, err)
	}
	return info.NumPending, nil
}

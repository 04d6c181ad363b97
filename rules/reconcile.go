package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer metadata keys that mark a consumer as a rule's, so the reconciler never touches
// consumers it does not own.
const (
	MetaRule  = "jetmesh-rule"
	MetaHash  = "jetmesh-rule-hash"
	MetaStart = "jetmesh-rule-start"
)

// AckWaitMargin is added to a rule's timeout (at most AckWaitCap of it) to make its
// consumer's ack wait: how long a delivered event may stay unacknowledged before
// JetStream hands it out again. A live deliverer settles an event within the timeout plus
// less than this margin, so the ack wait only ever expires for a crashed or cut-off
// sidecar.
const AckWaitMargin = 5 * time.Second

// AckWaitCap bounds the timeout's share of the ack wait. A rule whose timeout is longer
// has its requests kept alive with progress signals instead, so a crashed sidecar's
// events come back within AckWaitCap + AckWaitMargin however long the timeout is.
const AckWaitCap = 30 * time.Second

// AckWait is the ack wait of a rule's consumer.
func AckWait(r Rule) time.Duration {
	return min(r.Delivery.Timeout.Std(), AckWaitCap) + AckWaitMargin
}

// ConsumerConfig is the durable consumer of a rule on EVENTS: explicit acks, the
// narrowest filter subjects the pattern allows plus the rule's own direct subjects
// (redriven and replayed copies addressed to it alone), at most maxConcurrency (1 when ordered)
// events in flight across every sidecar of the service, redelivery left to the deliverer
// (no MaxDeliver, no BackOff: retries are driven with NakWithDelay), starting at new events
// unless the rule names a start time, with replicas inherited from the stream. An orderBy
// rule's consumer is its partition 0 (see ConsumerConfigs).
func ConsumerConfig(r Rule) (jetstream.ConsumerConfig, error) {
	p, err := r.Compile()
	if err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        r.ConsumerName(),
		Description:    "jetmesh rule " + r.Name + " → " + r.Target.Service + r.Target.Path,
		FilterSubjects: append(p.FilterSubjects(), bus.DirectFilter(r.Name)),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        AckWait(r),
		MaxDeliver:     -1,
		MaxAckPending:  r.Delivery.MaxConcurrency,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		Metadata:       map[string]string{MetaRule: r.Name, MetaHash: ruleHash(r)},
	}
	if r.Delivery.OrderBy != "" {
		// Each partition is delivered by one replica at a time, the one the consumer
		// pins; it takes the events of its keys and acknowledges the others' at once.
		cfg.Description += " (partition 0 of " + strconv.Itoa(r.Delivery.Partitions) + ")"
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
		cfg.PriorityGroups = []string{PriorityGroup}
		cfg.PinnedTTL = PinnedTTL
		cfg.MaxAckPending = PartitionWindow
	}
	if r.StartTime != nil {
		t := r.StartTime.UTC()
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
		cfg.Metadata[MetaStart] = t.Format(time.RFC3339Nano)
	}
	return cfg, nil
}

// ConsumerConfigs are all a rule's consumers, partition i at index i: ConsumerConfig alone,
// or for an orderBy rule one per partition. Every partition reads all the rule's events.
func ConsumerConfigs(r Rule) ([]jetstream.ConsumerConfig, error) {
	first, err := ConsumerConfig(r)
	if err != nil {
		return nil, err
	}
	cfgs := []jetstream.ConsumerConfig{first}
	for i := 1; i < r.Delivery.Partitions; i++ {
		cfg := first
		cfg.Durable = PartitionConsumerName(r.Name, i)
		cfg.Description = fmt.Sprintf("jetmesh rule %s → %s%s (partition %d of %d)", r.Name, r.Target.Service, r.Target.Path, i, r.Delivery.Partitions)
		cfgs = append(cfgs, cfg)
	}
	return cfgs, nil
}

// Partitioned delivery (orderBy rules).
const (
	// PriorityGroup is the priority group a partition's deliverers pull in.
	PriorityGroup = "jetmesh"
	// PinnedTTL is how long a partition stays pinned to a replica that stopped pulling:
	// the failover time after a crash. Deliverers pull at least every PartitionPullExpiry.
	PinnedTTL           = 6 * time.Second
	PartitionPullExpiry = time.Second
	// PartitionWindow is each partition consumer's max ack pending: the events of its
	// keys waiting behind earlier ones of the same key, those being delivered, and the
	// other partitions' events not yet acknowledged.
	PartitionWindow = 256
)

// consumerLayout names how ConsumerConfig maps a rule; it goes into the hash, so a new
// jetmesh that maps rules differently updates the consumers an older one made.
// 2: ack wait derived from the rule's timeout; 3: that share capped at AckWaitCap;
// 4: the rule's direct subjects (redrive, replay) among the filters; 5: partitions.
const consumerLayout = "5"

func ruleHash(r Rule) string {
	sum := sha256.Sum256(append([]byte(consumerLayout+"\n"), Encode(r)...))
	return hex.EncodeToString(sum[:8])
}

// Action is one change a reconcile pass made to a consumer.
type Action struct {
	Rule string
	// Op is "created", "updated", "recreated", "restarted" (new start time) or "deleted".
	Op     string
	Detail string
}

// Reconciler keeps exactly one durable consumer per rule on EVENTS, following the
// mesh-rules bucket. Run owns its goroutine; Reconcile may also be called directly.
type Reconciler struct {
	js     jetstream.JetStream
	log    *slog.Logger
	resync time.Duration
	onPass func([]Action, error)
	leader func() (bool, <-chan struct{})
}

// ReconcilerOption tunes a Reconciler at construction.
type ReconcilerOption func(*Reconciler)

// OnPass registers a callback run after every pass Run makes, for metrics.
func OnPass(f func(actions []Action, err error)) ReconcilerOption {
	return func(rc *Reconciler) { rc.onPass = f }
}

// OnlyWhile makes Run reconcile only while leading reports true: in a cluster every server
// runs a reconciler and one, the lease holder, acts. Two acting at once would race: one
// whose view of the rules bucket lags could delete a consumer the other just made for a
// new rule. leading also returns a channel closed at its next change.
func OnlyWhile(leading func() (bool, <-chan struct{})) ReconcilerOption {
	return func(rc *Reconciler) { rc.leader = leading }
}

// leading reports whether this reconciler may act now (always, without OnlyWhile), and a
// channel closed at the next change.
func (rc *Reconciler) leading() (bool, <-chan struct{}) {
	if rc.leader == nil {
		return true, nil
	}
	return rc.leader()
}

// NewReconciler returns a reconciler that also re-checks every resync interval, repairing
// consumers deleted or changed behind its back.
func NewReconciler(js jetstream.JetStream, log *slog.Logger, resync time.Duration, opts ...ReconcilerOption) *Reconciler {
	rc := &Reconciler{js: js, log: log, resync: resync}
	for _, o := range opts {
		o(rc)
	}
	return rc
}

// Run watches the rules bucket and reconciles after every burst of changes, and every
// resync interval with the bucket read afresh, until ctx ends. A failed pass is retried.
func (rc *Reconciler) Run(ctx context.Context) error {
	w, snap, err := kvwatch.Start(ctx, rc.js, bus.RulesBucket)
	if err != nil {
		return err
	}
	defer w.Stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := w.Changes(ctx)
	tick := time.NewTicker(rc.resync)
	defer tick.Stop()
	retry := time.NewTimer(0)
	for {
		_, leadChanged := rc.leading()
		select {
		case <-ctx.Done():
			return nil
		case <-leadChanged:
			// Taking over: read the bucket afresh, not a view that may lag behind it.
			if fresh, err := kvwatch.Read(ctx, rc.js, bus.RulesBucket); err == nil {
				snap = fresh
			}
		case next, ok := <-changes:
			if !ok {
				if err := w.Err(); err != nil {
					return fmt.Errorf("rules watch ended: %w", err)
				}
				return nil
			}
			snap = next
		case <-tick.C:
			if fresh, err := kvwatch.Read(ctx, rc.js, bus.RulesBucket); err == nil {
				snap = fresh
			} else if ctx.Err() == nil {
				rc.log.Warn("re-reading the rules bucket failed; reconciling with the last contents seen", "error", err)
			}
		case <-retry.C:
		}
		if leading, _ := rc.leading(); !leading {
			continue // another server reconciles
		}
		actions, err := rc.Reconcile(ctx, decodeAll(snap, rc.log))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			rc.log.Error("reconciling rule consumers failed; retrying", "error", err)
			retry.Reset(2 * time.Second)
		}
		if rc.onPass != nil {
			rc.onPass(actions, err)
		}
	}
}

// decodeAll reads the stored rules; an unreadable one is logged and reported as nil so
// its consumer is left alone rather than deleted.
func decodeAll(m kvwatch.Snapshot, log *slog.Logger) map[string]*Rule {
	out := make(map[string]*Rule, len(m))
	for k, raw := range m {
		r, err := DecodeStored(k, raw)
		if err != nil {
			log.Error("stored rule is invalid; its consumer is left as it is", "rule", k, "error", err)
			out[k] = nil
			continue
		}
		out[k] = &r
	}
	return out
}

// DecodeStored reads the rule stored under key in the rules bucket, with its defaults
// filled in, refusing one that is invalid or stored under another name.
func DecodeStored(key string, raw []byte) (Rule, error) {
	r, err := Decode(raw)
	if err != nil {
		return Rule{}, err
	}
	r.SetDefaults()
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	if r.Name != key {
		return Rule{}, fmt.Errorf("%w: stored under %q but named %q", ErrInvalidRule, key, r.Name)
	}
	return r, nil
}

// Reconcile makes the consumers on EVENTS match rules (a nil rule means "leave its consumer
// alone"): creates missing ones, updates changed ones in place where JetStream allows or
// recreates them from the same stream position where it does not, and deletes rule
// consumers whose rule is gone.
func (rc *Reconciler) Reconcile(ctx context.Context, rules map[string]*Rule) ([]Action, error) {
	callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := rc.js.Stream(callCtx, bus.EventsStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", bus.EventsStream, err)
	}
	existing := map[string]*jetstream.ConsumerInfo{}
	lister := stream.ListConsumers(callCtx)
	for info := range lister.Info() {
		existing[info.Name] = info
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing consumers: %w", err)
	}
	var actions []Action
	var errs []error
	names := make([]string, 0, len(rules))
	for name := range rules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := rules[name]
		if r == nil {
			continue
		}
		cfgs, err := ConsumerConfigs(*r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", name, err))
			continue
		}
		for _, want := range cfgs {
			cur := existing[want.Durable]
			if cur == nil && want.Durable != r.ConsumerName() {
				// A partition added to a rule starts where the rule's first one stands,
				// so the events between are neither skipped nor delivered twice.
				if first := existing[r.ConsumerName()]; first != nil && first.Config.Metadata[MetaRule] == r.Name {
					want.DeliverPolicy, want.OptStartSeq, want.OptStartTime = jetstream.DeliverByStartSequencePolicy, first.AckFloor.Stream+1, nil
				}
			}
			a, err := rc.ensure(callCtx, stream, *r, want, cur)
			if err != nil {
				errs = append(errs, fmt.Errorf("rule %s: consumer %s: %w", name, want.Durable, err))
				continue
			}
			if a != nil {
				actions = append(actions, *a)
			}
		}
	}
	var orphans []string
	for cname, info := range existing {
		owner, ours := info.Config.Metadata[MetaRule]
		r, wanted := rules[owner]
		if ours && (!wanted || r != nil && !slices.Contains(r.ConsumerNames(), cname)) {
			orphans = append(orphans, cname)
		}
	}
	sort.Strings(orphans)
	for _, cname := range orphans {
		owner := existing[cname].Config.Metadata[MetaRule]
		if rules[owner] == nil && rc.ruleStored(callCtx, owner) {
			// The view of the bucket lags behind it: the rule is there. Deleting its consumer
			// now would lose the events published until it is made again.
			rc.log.Warn("a rule consumer's rule is missing from the view of the rules bucket but stored; keeping the consumer", "rule", owner, "consumer", cname)
			continue
		}
		if err := stream.DeleteConsumer(callCtx, cname); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("deleting consumer %s: %w", cname, err))
			continue
		}
		detail := "rule removed"
		if rules[owner] != nil {
			detail = "partition " + cname + " no longer used"
		}
		actions = append(actions, Action{Rule: owner, Op: "deleted", Detail: detail})
	}
	for _, a := range actions {
		rc.log.Info("rule consumer "+a.Op, "rule", a.Rule, "detail", a.Detail)
	}
	return actions, errors.Join(errs...)
}

// ruleStored reads the rules bucket itself (not a watch's view) for rule; a failed read
// counts as stored, so nothing is deleted on a doubt.
func (rc *Reconciler) ruleStored(ctx context.Context, rule string) bool {
	kv, err := rc.js.KeyValue(ctx, bus.RulesBucket)
	if err != nil {
		return true
	}
	_, err = kv.Get(ctx, rule)
	return !errors.Is(err, jetstream.ErrKeyNotFound)
}

// ensure brings one rule's consumer in line; nil Action means it already was.
func (rc *Reconciler) ensure(ctx context.Context, stream jetstream.Stream, r Rule, want jetstream.ConsumerConfig, cur *jetstream.ConsumerInfo) (*Action, error) {
	if cur != nil {
		// A pause (rules pause) lives with the consumer, not in the rule: keep it through
		// updates and recreations.
		want.PauseUntil = cur.Config.PauseUntil
	}
	detail := fmt.Sprintf("filter %v, max in flight %d", want.FilterSubjects, want.MaxAckPending)
	if cur == nil {
		if _, err := stream.CreateConsumer(ctx, want); err != nil {
			return nil, fmt.Errorf("creating consumer: %w", err)
		}
		return &Action{Rule: r.Name, Op: "created", Detail: detail}, nil
	}
	if cur.Config.Metadata[MetaHash] == want.Metadata[MetaHash] {
		return nil, nil
	}
	if cur.Config.Metadata[MetaRule] == r.Name && cur.Config.Metadata[MetaStart] != want.Metadata[MetaStart] {
		if a, err := rc.restart(ctx, stream, r, cur, want); a != nil || err != nil {
			return a, err
		}
	}
	// Where to start is fixed at creation: keep the consumer's own position settings.
	update := want
	update.DeliverPolicy, update.OptStartSeq, update.OptStartTime = cur.Config.DeliverPolicy, cur.Config.OptStartSeq, cur.Config.OptStartTime
	_, err := stream.UpdateConsumer(ctx, update)
	if err == nil {
		return &Action{Rule: r.Name, Op: "updated", Detail: detail}, nil
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return nil, fmt.Errorf("updating consumer: %w", err)
	}
	// JetStream refused the change in place: recreate the consumer where the old one had
	// got to, so nothing acknowledged is redelivered and nothing pending is skipped.
	next := cur.AckFloor.Stream + 1
	rc.log.Warn("consumer cannot be updated in place; recreating it from the same position",
		"rule", r.Name, "reason", apiErr.Description, "from_sequence", next)
	if err := stream.DeleteConsumer(ctx, cur.Name); err != nil {
		return nil, fmt.Errorf("deleting consumer to recreate it: %w", err)
	}
	recreate := want
	recreate.DeliverPolicy, recreate.OptStartSeq, recreate.OptStartTime = jetstream.DeliverByStartSequencePolicy, next, nil
	if _, err := stream.CreateConsumer(ctx, recreate); err != nil {
		return nil, fmt.Errorf("recreating consumer from sequence %d: %w", next, err)
	}
	return &Action{Rule: r.Name, Op: "recreated", Detail: fmt.Sprintf("from stream sequence %d (%s)", next, apiErr.Description)}, nil
}

// restart moves a rule's consumer to the new start its rule names: a replay when it is
// earlier, a skip when it is later. Events stored but not yet delivered are skipped only
// when the rule says so (rules apply --force); otherwise restart returns nil and the
// consumer is updated in place, keeping its position. A removed startTime never moves it.
func (rc *Reconciler) restart(ctx context.Context, stream jetstream.Stream, r Rule, cur *jetstream.ConsumerInfo, want jetstream.ConsumerConfig) (*Action, error) {
	if want.OptStartTime == nil {
		return nil, nil
	}
	if !r.SkipUndelivered {
		skipped, err := SkippedByRestart(ctx, stream, cur, want)
		if err != nil {
			return nil, err
		}
		if skipped > 0 {
			rc.log.Warn("the rule's new startTime would skip events not yet delivered; its consumer keeps its position (apply the rule with --force to skip them)",
				"rule", r.Name, "start", want.Metadata[MetaStart], "undelivered_skipped", skipped)
			return nil, nil
		}
	}
	if err := stream.DeleteConsumer(ctx, cur.Name); err != nil {
		return nil, fmt.Errorf("deleting consumer to restart it: %w", err)
	}
	if _, err := stream.CreateConsumer(ctx, want); err != nil {
		return nil, fmt.Errorf("recreating consumer: %w", err)
	}
	return &Action{Rule: r.Name, Op: "restarted", Detail: "new start time " + want.Metadata[MetaStart]}, nil
}

package rules_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
)

func setupBus(t *testing.T) (jetstream.JetStream, *rules.Store) {
	t.Helper()
	_, js := natstest.JetStream(t, natstest.RunServer(t))
	ctx := context.Background()
	cfg := bus.DefaultStreamsConfig()
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureBuckets(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	store, err := rules.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return js, store
}

func mustRules(t *testing.T, yaml string) []rules.Rule {
	t.Helper()
	rs, err := rules.ParseFile("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func consumerInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), bus.EventsStream, name)
	if err != nil {
		return nil
	}
	info, err := c.Info(context.Background())
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil // deleted between the two calls
	}
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// stored reads the bucket as the reconciler's watch would see it.
func stored(t *testing.T, store *rules.Store) map[string]*rules.Rule {
	t.Helper()
	list, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*rules.Rule{}
	for i := range list {
		out[list[i].Name] = &list[i]
	}
	return out
}

func ops(actions []rules.Action) []string {
	var out []string
	for _, a := range actions {
		out = append(out, a.Rule+":"+a.Op)
	}
	slices.Sort(out)
	return out
}

func publish(t *testing.T, js jetstream.JetStream, subject string, n int) {
	t.Helper()
	for range n {
		if _, err := js.Publish(context.Background(), subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReconcile applies, changes and removes rules and checks the consumers with the
// jetstream API after each pass.
func TestReconcile(t *testing.T) {
	js, store := setupBus(t)
	ctx := context.Background()
	rc := rules.NewReconciler(js, slog.New(slog.DiscardHandler), time.Hour)
	publish(t, js, "evt.orders.created", 3) // before any rule: never delivered to new rules

	v1 := `
name: billing
pattern: {type: [orders.created], data: {amount: [{numeric: [">=", 100]}]}}
target: {service: billing, path: /orders}
delivery: {maxConcurrency: 8}
---
- name: audit
  pattern: {type: [{prefix: "orders."}, "payments.captured"]}
  target: {service: audit}
- name: ledger
  pattern: {type: [payments.captured]}
  target: {service: ledger}
  delivery: {ordered: true}
`
	if _, err := store.Apply(ctx, mustRules(t, v1), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	actions, err := rc.Reconcile(ctx, stored(t, store))
	if err != nil {
		t.Fatal(err)
	}
	if got := ops(actions); !slices.Equal(got, []string{"audit:created", "billing:created", "ledger:created"}) {
		t.Fatalf("actions %v", got)
	}
	billing := consumerInfo(t, js, "rule-billing")
	if billing == nil {
		t.Fatal("no consumer for billing")
	}
	c := billing.Config
	if !slices.Equal(c.FilterSubjects, []string{"evt.orders.created", "rule.billing.>"}) || c.AckPolicy != jetstream.AckExplicitPolicy ||
		c.MaxAckPending != 8 || c.DeliverPolicy != jetstream.DeliverNewPolicy || c.Metadata[rules.MetaRule] != "billing" || c.Durable != "rule-billing" {
		t.Fatalf("billing consumer config %+v", c)
	}
	if billing.NumPending != 0 {
		t.Errorf("a new rule sees %d events published before it", billing.NumPending)
	}
	if got := consumerInfo(t, js, "rule-audit").Config.FilterSubjects; !slices.Equal(got, []string{"evt.orders.>", "evt.payments.captured", "rule.audit.>"}) {
		t.Errorf("audit filters %v", got)
	}
	if got := consumerInfo(t, js, "rule-ledger").Config.MaxAckPending; got != 1 {
		t.Errorf("ordered rule has max ack pending %d", got)
	}

	// A second pass with nothing changed does nothing: restarts converge.
	if actions, err := rc.Reconcile(ctx, stored(t, store)); err != nil || len(actions) != 0 {
		t.Fatalf("idempotent pass: %v %v", actions, err)
	}

	// Change billing in place, drop ledger (prune), add a replay rule.
	publish(t, js, "evt.orders.created", 2)
	v2 := `
- name: billing
  pattern: {type: [orders.created, orders.updated]}
  target: {service: billing, path: /orders}
  delivery: {maxConcurrency: 4}
- name: audit
  pattern: {type: [{prefix: "orders."}, "payments.captured"]}
  target: {service: audit}
- name: replay
  pattern: {type: [orders.created]}
  target: {service: analytics}
  startTime: 2000-01-01T00:00:00Z
`
	changes, err := store.Apply(ctx, mustRules(t, v2), rules.ApplyOptions{Prune: true, DryRun: false})
	if err != nil {
		t.Fatal(err)
	}
	var applied []string
	for _, ch := range changes {
		applied = append(applied, ch.String())
	}
	if !slices.Contains(applied, "updated   billing (delivery, pattern)") || !slices.Contains(applied, "deleted   ledger") ||
		!slices.Contains(applied, "created   replay") || !slices.Contains(applied, "unchanged audit") {
		t.Fatalf("apply: %q", applied)
	}
	actions, err = rc.Reconcile(ctx, stored(t, store))
	if err != nil {
		t.Fatal(err)
	}
	if got := ops(actions); !slices.Equal(got, []string{"billing:updated", "ledger:deleted", "replay:created"}) {
		t.Fatalf("actions %v", got)
	}
	after := consumerInfo(t, js, "rule-billing")
	if !after.Created.Equal(billing.Created) {
		t.Error("billing was recreated, want an update in place")
	}
	if !slices.Equal(after.Config.FilterSubjects, []string{"evt.orders.created", "evt.orders.updated", "rule.billing.>"}) || after.Config.MaxAckPending != 4 {
		t.Errorf("billing after update: %+v", after.Config)
	}
	if after.NumPending != 2 {
		t.Errorf("billing pending %d, want the 2 events since it was created", after.NumPending)
	}
	if consumerInfo(t, js, "rule-ledger") != nil {
		t.Error("ledger's consumer outlived its rule")
	}
	if replay := consumerInfo(t, js, "rule-replay"); replay == nil || replay.Config.DeliverPolicy != jetstream.DeliverByStartTimePolicy || replay.NumPending != 5 {
		t.Errorf("replay consumer %+v", replay)
	}
}

// TestReconcileRecreatesFromSamePosition: a consumer JetStream will not change in place
// (here one made by hand with another ack policy) is recreated where it had got to, and
// consumers jetmesh does not own are never touched.
func TestReconcileRecreatesFromSamePosition(t *testing.T) {
	js, store := setupBus(t)
	ctx := context.Background()
	stream, _ := js.Stream(ctx, bus.EventsStream)
	foreign, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "someone-elses", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	_ = foreign
	squatter, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "rule-billing", AckPolicy: jetstream.AckAllPolicy,
		FilterSubject: "evt.orders.created", DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, "evt.orders.created", 5)
	batch, err := squatter.Fetch(3)
	if err != nil {
		t.Fatal(err)
	}
	var last jetstream.Msg
	for m := range batch.Messages() {
		last = m
	}
	// ack-all: the first three are done; DoubleAck waits for the server to record it.
	if err := last.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := store.Apply(ctx, mustRules(t, "name: billing\npattern: {type: [orders.created]}\ntarget: {service: billing}\n"), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	rc := rules.NewReconciler(js, slog.New(slog.DiscardHandler), time.Hour)
	actions, err := rc.Reconcile(ctx, stored(t, store))
	if err != nil {
		t.Fatal(err)
	}
	if len(actions) != 1 || actions[0].Op != "recreated" {
		t.Fatalf("actions %+v", actions)
	}
	info := consumerInfo(t, js, "rule-billing")
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy || info.NumPending != 2 || info.Config.OptStartSeq != 4 {
		t.Fatalf("recreated consumer: pending %d, start %d, ack %v", info.NumPending, info.Config.OptStartSeq, info.Config.AckPolicy)
	}
	if consumerInfo(t, js, "someone-elses") == nil {
		t.Fatal("a consumer jetmesh does not own was deleted")
	}
	// Once recreated, it is ours and stable.
	if actions, err := rc.Reconcile(ctx, stored(t, store)); err != nil || len(actions) != 0 {
		t.Fatalf("second pass: %v %v", actions, err)
	}
}

// TestReconcilerFollowsBucket runs the reconciler as the server does and watches it act on
// rule changes made through the store.
func TestReconcilerFollowsBucket(t *testing.T) {
	js, store := setupBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rules.NewReconciler(js, slog.New(slog.DiscardHandler), time.Hour).Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := store.Apply(context.Background(), mustRules(t, "name: live\npattern: {type: [a.b]}\ntarget: {service: s}\n"), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the consumer", func() bool { return consumerInfo(t, js, "rule-live") != nil })
	if err := store.Delete(context.Background(), "live"); err != nil {
		t.Fatal(err)
	}
	waitFor("the consumer to go", func() bool { return consumerInfo(t, js, "rule-live") == nil })
}

// TestStoreReapplyAfterDelete: a rule removed and applied again is created anew.
func TestStoreReapplyAfterDelete(t *testing.T) {
	_, store := setupBus(t)
	ctx := context.Background()
	rs := mustRules(t, "name: again\npattern: {type: [a.b]}\ntarget: {service: s}\n")
	for i := range 2 {
		changes, err := store.Apply(ctx, rs, rules.ApplyOptions{})
		if err != nil || len(changes) != 1 || changes[0].Op != "create" {
			t.Fatalf("apply %d: %v %v", i, changes, err)
		}
		if err := store.Delete(ctx, "again"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Get(ctx, "again"); !errors.Is(err, rules.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := store.Delete(ctx, "again"); !errors.Is(err, rules.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

// TestAckWait: the ack wait covers the timeout up to AckWaitCap, so crash redelivery never
// waits longer than AckWaitCap + AckWaitMargin.
func TestAckWait(t *testing.T) {
	for _, tt := range []struct{ timeout, want time.Duration }{
		{time.Second, 6 * time.Second},
		{30 * time.Second, 35 * time.Second},
		{31 * time.Second, 35 * time.Second},
		{15 * time.Minute, 35 * time.Second},
	} {
		r := rules.Rule{Delivery: rules.Delivery{Timeout: duration.Duration(tt.timeout)}}
		if got := rules.AckWait(r); got != tt.want {
			t.Errorf("timeout %s: ack wait %s, want %s", tt.timeout, got, tt.want)
		}
	}
}

// TestStartTimeChangeNeverSkipsUndelivered: moving a rule's startTime past events it has
// not delivered yet is refused (and counted) unless forced; removing startTime keeps the
// consumer's position; an earlier startTime replays. The reconciler holds the same line
// for rules written to the bucket without the CLI.
func TestStartTimeChangeNeverSkipsUndelivered(t *testing.T) {
	js, store := setupBus(t)
	ctx := context.Background()
	rc := rules.NewReconciler(js, slog.New(slog.DiscardHandler), time.Hour)
	reconcile := func() []string {
		t.Helper()
		actions, err := rc.Reconcile(ctx, stored(t, store))
		if err != nil {
			t.Fatal(err)
		}
		return ops(actions)
	}
	pending := func() uint64 {
		t.Helper()
		info := consumerInfo(t, js, "rule-ledger")
		return info.NumPending + uint64(info.NumAckPending)
	}
	ledger := func(start string) []rules.Rule {
		r := "name: ledger\npattern: {type: [orders.created]}\ntarget: {service: ledger}\n"
		if start != "" {
			r += "startTime: " + start + "\n"
		}
		return mustRules(t, r)
	}
	begin := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if _, err := store.Apply(ctx, ledger(begin), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	reconcile()
	publish(t, js, "evt.orders.created", 2)
	if got := pending(); got != 2 {
		t.Fatalf("pending %d, want 2", got)
	}

	// Removing startTime: the consumer keeps its position (it used to restart at "new").
	if _, err := store.Apply(ctx, ledger(""), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := reconcile(); !slices.Equal(got, []string{"ledger:updated"}) {
		t.Fatalf("actions %v", got)
	}
	if got := pending(); got != 2 {
		t.Fatalf("after removing startTime: pending %d, want 2", got)
	}

	// A later startTime: dry run and apply both say how many events it skips and refuse.
	later := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	for _, dry := range []bool{true, false} {
		changes, err := store.Apply(ctx, ledger(later), rules.ApplyOptions{DryRun: dry})
		if !errors.Is(err, rules.ErrWouldSkip) {
			t.Fatalf("dry run %v: err %v, want ErrWouldSkip", dry, err)
		}
		if len(changes) != 1 || changes[0].Skips != 2 {
			t.Fatalf("dry run %v: changes %+v, want 2 skips", dry, changes)
		}
	}
	if r, err := store.Get(ctx, "ledger"); err != nil || r.StartTime != nil {
		t.Fatalf("a refused apply wrote the rule: %+v %v", r, err)
	}

	// Written behind the CLI's back, the reconciler still keeps the position.
	bypass := ledger(later)
	bypass[0].SetDefaults()
	kv, _ := js.KeyValue(ctx, bus.RulesBucket)
	if _, err := kv.Put(ctx, "ledger", rules.Encode(bypass[0])); err != nil {
		t.Fatal(err)
	}
	reconcile()
	if got := pending(); got != 2 {
		t.Fatalf("after a later startTime written to the bucket: pending %d, want 2", got)
	}

	// An earlier startTime is a replay: nothing is skipped, so no --force is needed.
	if _, err := store.Apply(ctx, ledger(begin), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := reconcile(); !slices.Equal(got, []string{"ledger:restarted"}) {
		t.Fatalf("actions %v", got)
	}
	if got := pending(); got != 2 {
		t.Fatalf("after replaying from the start: pending %d, want 2", got)
	}

	// --force skips, as asked.
	changes, err := store.Apply(ctx, ledger(later), rules.ApplyOptions{Force: true})
	if err != nil || changes[0].Skips != 2 || !slices.Contains(changes[0].Fields, "skipUndelivered") {
		t.Fatalf("forced apply: %+v %v", changes, err)
	}
	if got := reconcile(); !slices.Equal(got, []string{"ledger:restarted"}) {
		t.Fatalf("actions %v", got)
	}
	if got := pending(); got != 0 {
		t.Fatalf("after a forced later startTime: pending %d, want 0", got)
	}
}

// TestLaggingViewKeepsConsumer: a reconciler whose view of the rules bucket lacks a rule
// that is stored (it lags behind another server's writes) keeps the rule's consumer,
// where deleting it would lose the events published until it is made again; once the
// rule is really removed, the consumer goes.
func TestLaggingViewKeepsConsumer(t *testing.T) {
	js, store := setupBus(t)
	ctx := context.Background()
	rc := rules.NewReconciler(js, slog.New(slog.DiscardHandler), time.Hour)
	if _, err := store.Apply(ctx, mustRules(t, "name: fresh\npattern: {type: [a.b]}\ntarget: {service: s}\n"), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Reconcile(ctx, stored(t, store)); err != nil {
		t.Fatal(err)
	}
	lagging := map[string]*rules.Rule{} // a view from before the rule was applied
	actions, err := rc.Reconcile(ctx, lagging)
	if err != nil {
		t.Fatal(err)
	}
	if len(actions) != 0 || consumerInfo(t, js, "rule-fresh") == nil {
		t.Fatalf("a lagging view removed the consumer of a stored rule: %v", ops(actions))
	}
	if err := store.Delete(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	if actions, err = rc.Reconcile(ctx, lagging); err != nil || !slices.Equal(ops(actions), []string{"fresh:deleted"}) {
		t.Fatalf("after the rule's removal: %v %v", ops(actions), err)
	}
}

// TestReconcilerActsOnlyWhileLeading: a reconciler that does not hold the lease makes no
// consumer; it reconciles once it does.
func TestReconcilerActsOnlyWhileLeading(t *testing.T) {
	js, store := setupBus(t)
	var mu sync.Mutex
	leading, changed := false, make(chan struct{})
	lead := func() (bool, <-chan struct{}) { mu.Lock(); defer mu.Unlock(); return leading, changed }
	rc := rules.NewReconciler(js, slog.New(slog.DiscardHandler), time.Hour, rules.OnlyWhile(lead))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := store.Apply(context.Background(), mustRules(t, "name: led\npattern: {type: [a.b]}\ntarget: {service: s}\n"), rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if consumerInfo(t, js, "rule-led") != nil {
		t.Fatal("a reconciler without the lease made a consumer")
	}
	mu.Lock()
	leading = true
	close(changed)
	changed = make(chan struct{})
	mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); consumerInfo(t, js, "rule-led") == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the reconciler did not act once it held the lease")
		}
	}
}

package lease_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/internal/lease"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func held(l *lease.Lease) bool { h, _ := l.Held(); return h }

// TestOneHolderAtATime: of two servers asking, one holds the lease; when it stops, the
// other takes it; a holder restarted under its name takes its own lease back at once.
func TestOneHolderAtATime(t *testing.T) {
	_, js := natstest.JetStream(t, natstest.RunServer(t))
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "leases", TTL: 3 * time.Second, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	run := func(l *lease.Lease) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	a := lease.New(kv, "work", "a", 100*time.Millisecond, log)
	stopA := run(a)
	waitFor(t, "a to hold the lease", func() bool { return held(a) })
	b := lease.New(kv, "work", "b", 100*time.Millisecond, log)
	stopB := run(b)
	defer stopB()
	time.Sleep(500 * time.Millisecond) // several renewals
	if held(b) || !held(a) {
		t.Fatalf("a %v, b %v: one holder, and it keeps the lease", held(a), held(b))
	}
	_, changed := b.Held()
	stopA()
	if held(a) {
		t.Fatal("a still holds the lease after stopping")
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("b did not take the lease a gave up")
	}
	if !held(b) {
		t.Fatal("b was told of a change but does not hold the lease")
	}
	// b restarts under the same name while its entry lives: it takes it back at once.
	stopB()
	if _, err := kv.Put(context.Background(), "work", []byte("b")); err != nil {
		t.Fatal(err)
	}
	b2 := lease.New(kv, "work", "b", 100*time.Millisecond, log)
	defer run(b2)()
	waitFor(t, "b, restarted, to hold its lease again", func() bool { return held(b2) })
}

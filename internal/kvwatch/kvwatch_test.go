package kvwatch_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func TestFollowAndRead(t *testing.T) {
	_, js := natstest.JetStream(t, natstest.RunServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	w, snap, err := kvwatch.Start(ctx, js, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if !kvwatch.Equal(snap, kvwatch.Snapshot{"a": []byte("1")}) {
		t.Fatalf("initial %v", snap)
	}
	changes := w.Changes(ctx)
	if _, err := kv.Put(ctx, "b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	want := kvwatch.Snapshot{"b": []byte("2")}
	for got := range changes {
		if kvwatch.Equal(got, want) {
			break
		}
	}
	read, err := kvwatch.Read(ctx, js, "b")
	if err != nil || !kvwatch.Equal(read, want) {
		t.Fatalf("read %v %v", read, err)
	}
	cancel()
	for range changes {
	}
	if err := w.Err(); err != nil {
		t.Errorf("closed because the context ended, yet Err is %v", err)
	}
}

// TestClosedOnItsOwn: a watch ended by the connection closing reports ErrClosed.
func TestClosedOnItsOwn(t *testing.T) {
	nc, js := natstest.JetStream(t, natstest.RunServer(t))
	ctx := context.Background()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"}); err != nil {
		t.Fatal(err)
	}
	w, _, err := kvwatch.Start(ctx, js, "b")
	if err != nil {
		t.Fatal(err)
	}
	changes := w.Changes(ctx)
	nc.Close()
	for range changes {
	}
	if !errors.Is(w.Err(), kvwatch.ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", w.Err())
	}
}

// TestKeep: Keep waits for a bucket that does not exist yet, then applies its contents and
// every change, until its context ends.
func TestKeep(t *testing.T) {
	_, js := natstest.JetStream(t, natstest.RunServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	applied := make(chan kvwatch.Snapshot, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		kvwatch.Keep(ctx, js, "late", time.Hour, slog.New(slog.DiscardHandler), func(s kvwatch.Snapshot) { applied <- s })
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // Keep is retrying: the bucket is not there
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	want := kvwatch.Snapshot{"k": []byte("v")}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-applied:
			if kvwatch.Equal(s, want) {
				return
			}
		case <-deadline:
			t.Fatal("the bucket's contents were never applied")
		}
	}
}

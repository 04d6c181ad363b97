package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureStreamsIsIdempotentAndUpdates(t *testing.T) {
	_, js := natstest.JetStream(t, natstest.RunServer(t))
	ctx := context.Background()
	cfg := bus.DefaultStreamsConfig()
	for range 2 {
		if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "evt.orders.created", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	cfg.EventsMaxAge = duration.Duration(30 * 24 * time.Hour)
	if err := bus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.MaxAge != 30*24*time.Hour || info.State.Msgs != 1 {
		t.Errorf("update lost data or was not applied: max age %v, %d msgs", info.Config.MaxAge, info.State.Msgs)
	}
	dl, err := js.Stream(ctx, bus.DLQStream)
	if err != nil || dl.CachedInfo().Config.Subjects[0] != "dlq.>" || dl.CachedInfo().Config.Storage != jetstream.FileStorage {
		t.Fatalf("DLQ: %v %+v", err, dl)
	}
}

func TestEnsureStreamsRefusesImpossibleChange(t *testing.T) {
	_, js := natstest.JetStream(t, natstest.RunServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A memory-storage stream named EVENTS cannot be turned into file storage in place.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{"evt.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	err := bus.EnsureStreams(ctx, js, bus.DefaultStreamsConfig())
	if err == nil || !strings.Contains(err.Error(), "stream EVENTS") || ctx.Err() != nil {
		t.Fatalf("err = %v (should fail at once, naming the stream)", err)
	}
}

func TestStreamsConfigValidate(t *testing.T) {
	c := bus.DefaultStreamsConfig()
	c.EventsMaxAge, c.DLQMaxAge, c.EventsMaxBytes = 0, 0, -5
	err := c.Validate()
	for _, want := range []string{"eventsMaxAge must be positive", "dlqMaxAge must be positive", "eventsMaxBytes must be 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

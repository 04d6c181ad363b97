package lookup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/nats-io/nats.go"
)

// TestFind: an id is found by a scan of the headers, narrowed by type and time; every
// event with the id is returned, with its data and principal; a missing id says where it
// looked.
func TestFind(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.JetStream(t, s)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	store := func(id, typ, data string, ext map[string]string) {
		ev := &event.Event{SpecVersion: "1.0", ID: id, Source: "/t", Type: typ, Data: []byte(data), Extensions: ext}
		h := ev.Header()
		if typ == "t.n3" {
			delete(h, event.HeaderMsgID) // stands for the same id stored after the duplicate window
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: ev.NATSSubject(), Header: h, Data: ev.Data}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		store(fmt.Sprintf("e-%d", i), fmt.Sprintf("t.n%d", i%4), "{}", nil)
	}
	store("wanted", "t.n1", `{"x":1}`, map[string]string{"jetmeshprincipal": "shop"})
	mid := time.Now()
	for i := range 200 {
		store(fmt.Sprintf("f-%d", i), fmt.Sprintf("t.n%d", i%4), "{}", nil)
	}
	v7 := event.NewID()
	store(v7, "t.n2", "{}", nil)

	found, stats, err := Find(ctx, js, Query{ID: "wanted"})
	if err != nil || len(found) != 1 || string(found[0].Data) != `{"x":1}` || found[0].Principal != "shop" || found[0].Seq != 201 {
		t.Fatalf("Find: %+v %v", found, err)
	}
	if stats.Scanned != 402 {
		t.Errorf("an unnarrowed lookup scanned %d, want all 402", stats.Scanned)
	}
	_, stats, err = Find(ctx, js, Query{ID: "wanted", Type: "t.n1"})
	if err != nil || stats.Scanned != 101 {
		t.Errorf("--type scanned %d (%v), want the 101 of its type", stats.Scanned, err)
	}
	if _, _, err = Find(ctx, js, Query{ID: "wanted", Since: mid}); !errors.Is(err, ErrNotFound) {
		t.Errorf("--since after the event: %v, want not found", err)
	}
	found, _, err = Find(ctx, js, Query{ID: v7})
	if err != nil || len(found) != 1 {
		t.Errorf("a UUIDv7 id: %v %v", found, err)
	}

	// With the indexer caught up, a lookup reads index entries, not stored events.
	ictx, stop := context.WithCancel(ctx)
	defer stop()
	go NewIndexer(js, slog.New(slog.DiscardHandler)).Run(ictx, 1)
	for deadline := time.Now().Add(10 * time.Second); indexed(ctx, js) < 402; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the indexer reached %d of 402 in 10s", indexed(ctx, js))
		}
	}
	found, stats, err = Find(ctx, js, Query{ID: "wanted", Type: "t.n1"})
	if err != nil || len(found) != 1 || found[0].Seq != 201 || stats.Scanned != 0 || stats.IndexEntries == 0 || stats.IndexEntries > 402 {
		t.Errorf("an indexed lookup: %+v %+v %v", found, stats, err)
	}
	if _, _, err = Find(ctx, js, Query{ID: "wanted", Since: mid}); !errors.Is(err, ErrNotFound) {
		t.Errorf("an indexed lookup, --since after the event: %v, want not found", err)
	}
	if _, _, err = Find(ctx, js, Query{ID: "wanted", Type: "t.n2"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("an indexed lookup under another type: %v, want not found", err)
	}
	// The id again, outside any duplicate window: both are found.
	store("wanted", "t.n3", "{}", nil)
	found, _, err = Find(ctx, js, Query{ID: "wanted"})
	if err != nil || len(found) != 2 {
		t.Errorf("a repeated id: %d found, %v", len(found), err)
	}
	_, _, err = Find(ctx, js, Query{ID: "nope", Type: "t.n0"})
	if !errors.Is(err, ErrNotFound) || err.Error() != "not found (looked at every stored event of type t.n0)" {
		t.Errorf("missing: %v", err)
	}
}

package lookup_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/jetmesh/jetmesh/lookup"
)

// -lookup.events sizes the stream BenchmarkFind looks in. The default keeps `go test
// -bench .` quick; the design was measured with 10,000,000:
//
//	go test ./lookup -run '^$' -bench Find -lookup.events 10000000 -benchtime 3x -timeout 60m
var benchEvents = flag.Int("lookup.events", 200_000, "events in the stream BenchmarkFind searches")

var (
	benchOnce   sync.Once
	benchJS     jetstream.JetStream
	benchTarget struct {
		plainID, typ string
		storedAt     time.Time
	}
)

// fill stores n events of 20 types, 300-byte JSON data, ids like the ingress stores them;
// at 90% of the way it stores the one to look up.
func fill(b *testing.B, n int) {
	dir, err := tempDir()
	if err != nil {
		b.Fatal(err)
	}
	s := natstest.RunServerWith(b, dir, func(o *natsserver.Options) { o.JetStreamMaxStore = 60 << 30 })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultStreamsConfig()); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"orderId":"o-000000","customerId":"c-000000","total":{"cents":12345,"currency":"EUR"},"lines":[{"sku":"sku-1","qty":1},{"sku":"sku-2","qty":3}],"note":"` + string(make([]byte, 0)) + `lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore"}`)
	began := time.Now()
	for i := range n {
		ev := &event.Event{SpecVersion: "1.0", ID: fmt.Sprintf("evt-%09d", i), Source: "/bench/orders",
			Type: fmt.Sprintf("bench.type%02d", i%20), Time: time.Now().UTC(), Data: data}
		switch i {
		case n * 9 / 10:
			ev.ID = "the-one-we-want"
			benchTarget.plainID, benchTarget.typ, benchTarget.storedAt = ev.ID, ev.Type, time.Now()
		}
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: ev.NATSSubject(), Header: ev.Header(), Data: ev.Data}); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	b.Logf("stored %d events in %v", n, time.Since(began).Round(time.Second))
	// The index, built the way a server builds it: from the start of the stream.
	began = time.Now()
	go lookup.NewIndexer(js, slog.New(slog.DiscardHandler)).Run(context.Background(), 1)
	for {
		c, err := js.Consumer(ctx, bus.EventsStream, lookup.IndexerConsumer)
		if err == nil && c.CachedInfo().AckFloor.Stream >= uint64(n) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("indexed %d events in %v", n, time.Since(began).Round(time.Second))
	benchJS = js
}

func tempDir() (string, error) {
	return mkdirTemp()
}

func BenchmarkFind(b *testing.B) {
	benchOnce.Do(func() { fill(b, *benchEvents) })
	cases := []struct {
		name string
		q    func() lookup.Query
	}{
		{"id-only", func() lookup.Query { return lookup.Query{ID: benchTarget.plainID} }},
		{"type", func() lookup.Query { return lookup.Query{ID: benchTarget.plainID, Type: benchTarget.typ} }},
		{"since", func() lookup.Query {
			return lookup.Query{ID: benchTarget.plainID, Since: benchTarget.storedAt.Add(-time.Second)}
		}},
		{"type+since", func() lookup.Query {
			return lookup.Query{ID: benchTarget.plainID, Type: benchTarget.typ, Since: benchTarget.storedAt.Add(-time.Second)}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var stats lookup.Stats
			for b.Loop() {
				found, st, err := lookup.Find(context.Background(), benchJS, c.q())
				if err != nil || len(found) != 1 {
					b.Fatalf("found %d: %v", len(found), err)
				}
				stats = st
			}
			b.ReportMetric(float64(stats.IndexEntries), "index-entries/op")
			b.ReportMetric(float64(stats.Scanned), "scanned/op")
		})
	}
}

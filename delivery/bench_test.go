package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/event"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkDeliver measures the delivery loop: events already in the stream pulled from
// the rule's consumer, POSTed to a loopback handler and acked, 64 at a time. Compare with
// BenchmarkLoopbackHTTP, the same POSTs without JetStream: the difference is what the
// deliverer costs.
func BenchmarkDeliver(b *testing.B) {
	f := setupB(b)
	var got atomic.Int64
	done := make(chan struct{})
	var want int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if got.Add(1) == atomic.LoadInt64(&want) {
			close(done)
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	r := f.ruleB(b, "name: bench\npattern: {type: [bench.tick]}\ntarget: {service: s}\ndelivery: {maxConcurrency: 64}\n")
	// Publish first, so only delivery is timed.
	ev := &event.Event{Source: "/bench", SpecVersion: "1.0", Type: "bench.tick", Data: []byte(`{"n":1}`)}
	b.ReportAllocs()
	n := b.N
	atomic.StoreInt64(&want, int64(n))
	for i := 0; i < n; i++ {
		ev.ID = event.NewID()
		if _, err := f.js.PublishMsgAsync(&nats.Msg{Subject: ev.NATSSubject(), Header: nats.Header(ev.Header()), Data: ev.Data}); err != nil {
			b.Fatal(err)
		}
	}
	<-f.js.PublishAsyncComplete()
	target := &delivery.HTTPTarget{URL: srv.URL, Client: delivery.NewHTTPClient(64)}
	d, err := delivery.New(f.js, r, target, slog.New(slog.DiscardHandler), delivery.WithMetrics(delivery.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Run(ctx) })
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("delivered %d of %d", got.Load(), n)
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	cancel()
	wg.Wait()
}

// BenchmarkLoopbackHTTP is the baseline of BenchmarkDeliver: 64 clients POSTing to a
// loopback handler.
func BenchmarkLoopbackHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	client := delivery.NewHTTPClient(64)
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				res, err := client.Post(srv.URL, "application/json", strings.NewReader(`{"n":1}`))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkClassify is the per-answer decision, on the common 2xx path.
func BenchmarkClassify(b *testing.B) {
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		if delivery.Classify(204, h, nil, time.Time{}).Outcome != delivery.Delivered {
			b.Fatal("not delivered")
		}
	}
}

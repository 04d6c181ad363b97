package ingress_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/jetmesh/jetmesh/schemas"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var benchSeq atomic.Int64

func benchBody(n int) []byte {
	var b bytes.Buffer
	if n > 1 {
		b.WriteByte('[')
	}
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		id := "bench-" + strconv.FormatInt(benchSeq.Add(1), 10)
		b.WriteString(structured(id, "orders.created", `{"orderId":"o-1","customer":"c-42","amount":120.5,"currency":"EUR"}`))
	}
	if n > 1 {
		b.WriteByte(']')
	}
	return b.Bytes()
}

func mediaFor(size int) string {
	if size == 1 {
		return ingress.MediaStructured
	}
	return ingress.MediaBatch
}

// benchPostHTTP posts b.N requests of size events each, sequentially, and reports events/s.
func benchPostHTTP(b *testing.B, f *fixture, size int) {
	client := &http.Client{}
	for b.Loop() {
		res, err := client.Post(f.url+"/v1/events", mediaFor(size), bytes.NewReader(benchBody(size)))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishHTTP measures POST /v1/events over loopback into a file-backed JetStream,
// each request answered only after the JetStream ack. Events/s = b.N*size / elapsed.
func BenchmarkPublishHTTP(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			benchPostHTTP(b, setup(b), size)
		})
	}
	b.Run("batch=1/parallel", func(b *testing.B) {
		f := setup(b)
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			client := &http.Client{}
			for pb.Next() {
				res, err := client.Post(f.url+"/v1/events", ingress.MediaStructured, bytes.NewReader(benchBody(1)))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkPublishHTTPSyncAlways is BenchmarkPublishHTTP with every write fsynced before
// its ack (server option syncAlways): the price of surviving a power loss on one node.
func BenchmarkPublishHTTPSyncAlways(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			benchPostHTTP(b, setupWith(b, natstest.RunServerWith(b, b.TempDir(), func(o *natsserver.Options) { o.SyncAlways = true }), nil), size)
		})
	}
}

// benchSchema is the schema of the benchmark events' data: four typed, required properties.
const benchSchema = `{"type":"object","properties":{"orderId":{"type":"string","minLength":1},"customer":{"type":"string"},
"amount":{"type":"number","minimum":0},"currency":{"enum":["EUR","USD"]}},"required":["orderId","customer","amount","currency"],
"additionalProperties":false}`

// BenchmarkPublishHTTPValidation runs the HTTP ingress with and without schema validation
// in one run, so the two rows compare like for like: the cost of validation at publish.
func BenchmarkPublishHTTPValidation(b *testing.B) {
	set, problems := schemas.Compile(schemas.NewCatalog([]schemas.Document{{Type: "orders.created", Version: 1, Raw: []byte(benchSchema)}}))
	if len(problems) != 0 {
		b.Fatal(problems)
	}
	for _, size := range []int{1, 100} {
		for _, validate := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch=%d/validate=%v", size, validate), func(b *testing.B) {
				var opts []ingress.Option
				if validate {
					opts = append(opts, ingress.WithValidator(set))
				}
				b.ReportAllocs()
				benchPostHTTP(b, setupWith(b, natstest.RunServer(b), opts), size)
			})
		}
	}
}

// BenchmarkPublishNATS measures the NATS request/reply ingress, the path sidecars use.
func BenchmarkPublishNATS(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			f := setup(b)
			ctx, cancel := context.WithCancel(context.Background())
			serve, err := f.ing.Listen(ctx, f.ingressNC)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error)
			go func() { done <- serve() }()
			defer func() { cancel(); <-done }()
			client := ingress.NewClient(f.nc)
			b.ReportAllocs()
			for b.Loop() {
				msg := nats.NewMsg(bus.IngressSubject)
				msg.Header.Set("Content-Type", mediaFor(size))
				msg.Data = benchBody(size)
				resp, err := client.Send(ctx, msg)
				if err != nil || resp.FailedEntryCount != 0 {
					b.Fatalf("%v %+v", err, resp)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRawJetStream is the baseline for the ingress benchmarks: the same stored
// messages (subject, headers, data) published straight to JetStream over one client
// connection, waiting for every ack, with no parsing, validation or HTTP.
func BenchmarkRawJetStream(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			f := setup(b)
			ctx := context.Background()
			entries, err := event.ParseBatch([]byte("[" + string(benchBody(1)) + "]"))
			if err != nil {
				b.Fatal(err)
			}
			template, err := event.ParseStructured(entries[0], 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				futures := make([]jetstream.PubAckFuture, size)
				for i := range futures {
					ev := *template
					ev.ID = "raw-" + strconv.FormatInt(benchSeq.Add(1), 10)
					msg := &nats.Msg{Subject: ev.NATSSubject(), Header: ev.Header(), Data: ev.Data}
					if futures[i], err = f.js.PublishMsgAsync(msg); err != nil {
						b.Fatal(err)
					}
				}
				for _, fu := range futures {
					select {
					case <-fu.Ok():
					case err := <-fu.Err():
						b.Fatal(err)
					case <-ctx.Done():
					}
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

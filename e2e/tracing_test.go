package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it is sent.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []recordedSpan
}

type recordedSpan struct {
	service    string
	name       string
	kind       tracepb.Span_SpanKind
	trace, id  string
	parent     string
	links      []string // span ids
	attrs      map[string]string
	statusCode tracepb.Status_StatusCode
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	raw, _ := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(raw, &req) != nil {
		http.Error(w, "not an OTLP trace export", 400)
		return
	}
	o.add(&req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = io.Copy(w, bytes.NewReader(out))
}

// Export is the OTLP/gRPC trace service.
func (o *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	o.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (o *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				rec := recordedSpan{service: service, name: s.Name, kind: s.Kind, trace: hex.EncodeToString(s.TraceId),
					id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId), attrs: map[string]string{},
					statusCode: s.GetStatus().GetCode()}
				for _, l := range s.Links {
					rec.links = append(rec.links, hex.EncodeToString(l.SpanId))
				}
				for _, a := range s.Attributes {
					v := a.GetValue()
					switch {
					case v.GetStringValue() != "":
						rec.attrs[a.Key] = v.GetStringValue()
					default:
						rec.attrs[a.Key] = strings.TrimSpace(v.String())
					}
				}
				o.spans = append(o.spans, rec)
			}
		}
	}
	o.mu.Unlock()
}

func (o *otlpReceiver) find(service, name string) (recordedSpan, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if s.service == service && s.name == name {
			return s, true
		}
	}
	return recordedSpan{}, false
}

// TestTracing: with OTEL_EXPORTER_OTLP_ENDPOINT set, the server exports a producer span per
// stored event, child of the publisher's traceparent; the sidecar a consumer span per
// delivery, child of and linked to the producer span; and the handler receives the
// delivery span's traceparent. Everything goes over real OTLP/HTTP.
func TestTracing(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")

	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: billing\npattern: {type: [orders.created]}\ntarget: {service: billing}\n")
	rec, url := newRecorder(t)
	startSidecar(t, srv, "billing", url)

	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest("POST", srv.httpURL()+"/v1/events", strings.NewReader(`{"n":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "traced-1")
	req.Header.Set("Ce-Source", "/e2e")
	req.Header.Set("Ce-Type", "orders.created")
	req.Header.Set("Traceparent", caller)
	res, err := srv.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("publish: %d", res.StatusCode)
	}
	eventually(t, 10*time.Second, "the delivery", func() bool { return rec.count("traced-1") == 1 })

	var producer, consumer recordedSpan
	eventually(t, 15*time.Second, "both spans exported", func() bool {
		var ok1, ok2 bool
		producer, ok1 = recv.find("jetmesh-server", "send evt.orders.created")
		consumer, ok2 = recv.find("jetmesh-sidecar", "process evt.orders.created")
		return ok1 && ok2
	})
	if producer.kind != tracepb.Span_SPAN_KIND_PRODUCER || producer.trace != "4bf92f3577b34da6a3ce929d0e0e4736" || producer.parent != "00f067aa0ba902b7" {
		t.Errorf("the producer span is not the caller's child: %+v", producer)
	}
	for k, v := range map[string]string{"messaging.system": "nats", "messaging.operation.type": "send", "messaging.destination.name": "evt.orders.created",
		"messaging.message.id": "traced-1", "cloudevents.event_type": "orders.created"} {
		if producer.attrs[k] != v {
			t.Errorf("producer span %s = %q, want %q", k, producer.attrs[k], v)
		}
	}
	if consumer.kind != tracepb.Span_SPAN_KIND_CONSUMER || consumer.trace != producer.trace || consumer.parent != producer.id ||
		len(consumer.links) != 1 || consumer.links[0] != producer.id {
		t.Errorf("the consumer span is not the producer's child and link: %+v (producer %s)", consumer, producer.id)
	}
	if consumer.attrs["messaging.operation.type"] != "process" || consumer.attrs["messaging.consumer.group.name"] != "rule-billing" || consumer.attrs["jetmesh.rule"] != "billing" {
		t.Errorf("consumer span attributes: %v", consumer.attrs)
	}
	want := "00-" + consumer.trace + "-" + consumer.id + "-01"
	if got := rec.lastHeader("traced-1").Get("Traceparent"); got != want {
		t.Errorf("the handler got traceparent %q, want the delivery span's %q", got, want)
	}
}

// TestTracingOverGRPC: with OTEL_EXPORTER_OTLP_PROTOCOL=grpc the server and the sidecar
// export over OTLP/gRPC instead.
func TestTracingOverGRPC(t *testing.T) {
	recv := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(g, recv)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")

	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: billing\npattern: {type: [orders.created]}\ntarget: {service: billing}\n")
	rec, url := newRecorder(t)
	startSidecar(t, srv, "billing", url)
	publishEvents(t, srv, "grpc", "orders.created", 1, func(int) string { return "{}" })
	eventually(t, 10*time.Second, "the delivery", func() bool { return rec.count("grpc-00000") == 1 })
	eventually(t, 15*time.Second, "both spans exported over gRPC", func() bool {
		p, ok1 := recv.find("jetmesh-server", "send evt.orders.created")
		c, ok2 := recv.find("jetmesh-sidecar", "process evt.orders.created")
		return ok1 && ok2 && c.parent == p.id
	})
}

package telemetry

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestOffWithoutAnEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tracer, shutdown, err := Setup(context.Background(), "x", "v")
	if err != nil || tracer != nil || shutdown(context.Background()) != nil {
		t.Errorf("tracing off: %v %v", tracer, err)
	}
}

func TestRefusesAnUnknownProtocol(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, _, err := Setup(context.Background(), "x", "v"); err == nil || !strings.Contains(err.Error(), "grpc or http/protobuf") {
		t.Errorf("http/json: %v", err)
	}
	for _, p := range []string{"grpc", "http/protobuf"} {
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", p)
		tracer, shutdown, err := Setup(context.Background(), "x", "v")
		if err != nil || tracer == nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		_ = shutdown(context.Background())
	}
}

// TestPublishThenDeliver: the producer span is the publisher's child and its context goes
// into the event; the delivery span is the producer's child, linked to it.
func TestPublishThenDeliver(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("t")
	ext := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=1"}
	ev := Event{ID: "e-1", Type: "orders.created", Source: "/t", SpecVersion: "1.0", Destination: "evt.orders.created"}
	StartPublish(tracer, ext, ev).End()
	producer := rec.Ended()[0]
	if producer.SpanKind() != trace.SpanKindProducer || producer.Parent().SpanID().String() != "00f067aa0ba902b7" ||
		producer.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("producer span: kind %v parent %v", producer.SpanKind(), producer.Parent())
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + producer.SpanContext().SpanID().String() + "-01"; ext["traceparent"] != want || ext["tracestate"] != "vendor=1" {
		t.Errorf("the event carries %v, want traceparent %s", ext, want)
	}

	stored := map[string][]string{"ce-traceparent": {ext["traceparent"]}, "ce-tracestate": {ext["tracestate"]}}
	_, span := StartDelivery(context.Background(), tracer, stored, ev, "billing", "rule-billing", 2)
	span.End()
	consumer := rec.Ended()[1]
	if consumer.SpanKind() != trace.SpanKindConsumer || consumer.Parent().SpanID() != producer.SpanContext().SpanID() ||
		len(consumer.Links()) != 1 || consumer.Links()[0].SpanContext.SpanID() != producer.SpanContext().SpanID() {
		t.Errorf("consumer span: kind %v parent %v links %v", consumer.SpanKind(), consumer.Parent(), consumer.Links())
	}

	// An event without a trace starts one at its producer span.
	bare := map[string]string{}
	StartPublish(tracer, bare, ev).End()
	if !strings.HasPrefix(bare["traceparent"], "00-") || rec.Ended()[2].Parent().IsValid() {
		t.Errorf("an untraced event: %v", bare)
	}
}

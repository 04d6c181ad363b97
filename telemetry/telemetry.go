// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_* environment and
// holds the messaging conventions jetmesh's spans follow: the ingress makes a producer
// span per stored event, the deliverer a consumer span per delivery attempt, child of
// the event's trace and linked to its producer span.
//
// Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set, and off otherwise: then no tracer exists and the hot paths skip tracing entirely.
// OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL picks grpc or http/protobuf (the default); the
// exporters, the SDK's sampler (OTEL_TRACES_SAMPLER), batching (OTEL_BSP_*) and resource
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) read the rest of the standard variables.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName names jetmesh's instrumentation.
const ScopeName = "github.com/jetmesh/jetmesh"

// Enabled reports whether the environment asks for tracing.
func Enabled() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup returns the tracer of a process called service ("jetmesh-server", "jetmesh-sidecar"
// unless OTEL_SERVICE_NAME says otherwise) and the shutdown that flushes its spans. With
// tracing off it returns a nil tracer and a shutdown that does nothing.
func Setup(ctx context.Context, service, version string) (trace.Tracer, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	if !Enabled() {
		return nil, noop, nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, noop, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: jetmesh exports traces over grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, noop, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, noop, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp.Tracer(ScopeName, trace.WithInstrumentationVersion(version)), tp.Shutdown, nil
}

// system is messaging.system: JetStream is not in the conventions' list of systems.
var system = semconv.MessagingSystemKey.String("nats")

// traceContext reads and writes W3C traceparent/tracestate.
var traceContext = propagation.TraceContext{}

// mapCarrier reads trace headers from a stored event's extensions (traceparent, tracestate).
type mapCarrier map[string]string

func (c mapCarrier) Get(key string) string { return c[key] }
func (c mapCarrier) Set(key, value string) { c[key] = value }
func (c mapCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Event is what the spans say of a CloudEvent.
type Event struct {
	ID, Type, Source, SpecVersion, Subject string
	// Destination is the NATS subject the event is stored on.
	Destination string
	BodySize    int
}

func (e Event) attributes(op attribute.KeyValue, opName string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{system, op, semconv.MessagingOperationName(opName),
		semconv.MessagingDestinationName(e.Destination), semconv.MessagingMessageID(e.ID),
		semconv.MessagingMessageBodySize(e.BodySize),
		semconv.CloudEventsEventID(e.ID), semconv.CloudEventsEventType(e.Type),
		semconv.CloudEventsEventSource(e.Source), semconv.CloudEventsEventSpecVersion(e.SpecVersion)}
	if e.Subject != "" {
		attrs = append(attrs, semconv.CloudEventsEventSubject(e.Subject))
	}
	return attrs
}

// StartPublish starts the producer span of an event being stored, as a child of the
// trace the event (or its request) carries in ext's traceparent, and writes the span's
// own context back into ext, so every delivery of the event joins it.
func StartPublish(t trace.Tracer, ext map[string]string, e Event) trace.Span {
	parent := traceContext.Extract(context.Background(), mapCarrier(ext))
	ctx, span := t.Start(parent, "send "+e.Destination,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(e.attributes(semconv.MessagingOperationTypeSend, "send")...))
	delete(ext, "tracestate") // Inject writes it again when the trace has one
	traceContext.Inject(ctx, mapCarrier(ext))
	return span
}

// StartDelivery starts the consumer span of one delivery attempt to a rule's handler: a
// child of the producer span the stored event names in its traceparent, linked to it as
// the messaging conventions ask. The returned context carries the span: a target sends
// its traceparent to the handler (see InjectHTTP).
func StartDelivery(ctx context.Context, t trace.Tracer, stored map[string][]string, e Event, rule, consumer string, attempt int) (context.Context, trace.Span) {
	ext := mapCarrier{}
	for k, vs := range stored {
		if len(vs) == 0 {
			continue
		}
		switch strings.ToLower(k) {
		case "ce-traceparent":
			ext["traceparent"] = vs[0]
		case "ce-tracestate":
			ext["tracestate"] = vs[0]
		}
	}
	producer := traceContext.Extract(context.Background(), ext)
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(e.attributes(semconv.MessagingOperationTypeProcess, "process")...),
		trace.WithAttributes(semconv.MessagingConsumerGroupName(consumer),
			attribute.String("jetmesh.rule", rule), attribute.Int("jetmesh.delivery.attempt", attempt)),
	}
	if sc := trace.SpanContextFromContext(producer); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return t.Start(ctx, "process "+e.Destination, opts...)
}

// InjectHTTP writes the traceparent (and tracestate) of the span in ctx onto outgoing
// headers, when ctx carries one.
func InjectHTTP(ctx context.Context, h propagation.HeaderCarrier) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		traceContext.Inject(ctx, h)
	}
}

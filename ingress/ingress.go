package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/schemas"
	"github.com/jetmesh/jetmesh/telemetry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Media types the ingress reads.
const (
	MediaStructured = "application/cloudevents+json"
	MediaBatch      = "application/cloudevents-batch+json"
	MediaJSON       = "application/json"
)

// Config bounds what the ingress accepts and how much work it holds at once.
type Config struct {
	// MaxEventBytes is the size limit of one event (attributes plus data).
	MaxEventBytes int `yaml:"maxEventBytes" json:"maxEventBytes"`
	// MaxRequestBytes is the size limit of one request body (a whole batch).
	MaxRequestBytes int `yaml:"maxRequestBytes" json:"maxRequestBytes"`
	// MaxBatchEntries is the most events one batch may hold.
	MaxBatchEntries int `yaml:"maxBatchEntries" json:"maxBatchEntries"`
	// MaxInflight is how many requests each transport (HTTP, NATS) works on at once; more
	// wait their turn. An HTTP request takes its slot only once its body has arrived, so
	// slow clients cannot hold slots, and one transport never waits for the other's.
	MaxInflight int `yaml:"maxInflight" json:"maxInflight"`
	// BodyTimeout bounds how long an HTTP request body may take to arrive (408 after).
	BodyTimeout duration.Duration `yaml:"bodyTimeout" json:"bodyTimeout"`
	// MaxBufferedBytes bounds the HTTP request bodies held at once, being read or worked
	// on; a request that would go over it is refused with 503 (retry).
	MaxBufferedBytes int64 `yaml:"maxBufferedBytes" json:"maxBufferedBytes"`
	// PublishTimeout bounds the wait for JetStream's acknowledgement.
	PublishTimeout duration.Duration `yaml:"publishTimeout" json:"publishTimeout"`
	// AllowUnknownTypes accepts events whose type has no registered schema, unvalidated.
	// Off by default: a typo in a type name is refused, not stored where no rule looks.
	AllowUnknownTypes bool `yaml:"allowUnknownTypes" json:"allowUnknownTypes"`
}

// DefaultConfig: 256 KiB events, 4 MiB requests, 1,000 entries per batch, 256 requests in
// flight per transport, 30 s for a body to arrive, 256 MiB of bodies held, 5 s publish
// timeout.
func DefaultConfig() Config {
	return Config{
		MaxEventBytes:    event.DefaultMaxBytes,
		MaxRequestBytes:  4 << 20,
		MaxBatchEntries:  1000,
		MaxInflight:      256,
		BodyTimeout:      duration.Duration(30 * time.Second),
		MaxBufferedBytes: 256 << 20,
		PublishTimeout:   duration.Duration(5 * time.Second),
	}
}

// Validate names every problem in the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.MaxEventBytes < 1024 {
		errs = append(errs, fmt.Errorf("ingress.maxEventBytes must be at least 1024, got %d", c.MaxEventBytes))
	}
	if c.MaxRequestBytes < c.MaxEventBytes {
		errs = append(errs, fmt.Errorf("ingress.maxRequestBytes (%d) must be at least ingress.maxEventBytes (%d)", c.MaxRequestBytes, c.MaxEventBytes))
	}
	if c.MaxBatchEntries < 1 {
		errs = append(errs, fmt.Errorf("ingress.maxBatchEntries must be at least 1, got %d", c.MaxBatchEntries))
	}
	if c.MaxInflight < 1 {
		errs = append(errs, fmt.Errorf("ingress.maxInflight must be at least 1, got %d", c.MaxInflight))
	}
	if c.BodyTimeout <= 0 {
		errs = append(errs, errors.New("ingress.bodyTimeout must be positive"))
	}
	if c.MaxBufferedBytes < int64(c.MaxRequestBytes) {
		errs = append(errs, fmt.Errorf("ingress.maxBufferedBytes (%d) must be at least ingress.maxRequestBytes (%d)", c.MaxBufferedBytes, c.MaxRequestBytes))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("ingress.publishTimeout must be positive"))
	}
	return errors.Join(errs...)
}

// Ingress validates and stores events. Create it with New.
type Ingress struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger
	// Each transport has its own slots, so neither can starve the other.
	httpSlots, natsSlots chan struct{}
	bodies               *BodyReader
	storage              storageState
	// principals, when set, turns access control on: every request must prove an active
	// principal, whose limits apply and whose name every stored event records.
	principals *auth.Directory
	tracer     trace.Tracer
	metrics    *Metrics
	validator  Validator
}

// Validator checks an event's data against its registered schema. *schemas.Live is the
// server's; its errors are *schemas.ValidationError.
type Validator interface {
	Validate(ev *event.Event) error
}

var _ Validator = (*schemas.Live)(nil)

// Option tunes an Ingress at construction.
type Option func(*Ingress)

// WithMetrics makes the ingress record into m (default: unregistered metrics).
func WithMetrics(m *Metrics) Option { return func(in *Ingress) { in.metrics = m } }

// WithPrincipals turns access control on (see auth): HTTP requests need a bearer token,
// NATS requests must come on the principal's own subject (jetmesh.v1.events.<name>).
func WithPrincipals(d *auth.Directory) Option { return func(in *Ingress) { in.principals = d } }

// PrincipalExtension is the extension attribute that records who published an event,
// with access control on. Publishers cannot set it: an event that carries it is refused.
const PrincipalExtension = "jetmeshprincipal"

// ServiceExtension records, for an event a sidecar published, the service it speaks for.
// Reserved like PrincipalExtension.
const ServiceExtension = "jetmeshservice"

// WithTracer makes a producer span per stored event (see telemetry); nil, the default,
// traces nothing.
func WithTracer(t trace.Tracer) Option { return func(in *Ingress) { in.tracer = t } }

// WithValidator makes the ingress validate every event with v before storing it. Without
// it events are checked against the CloudEvents rules only.
func WithValidator(v Validator) Option { return func(in *Ingress) { in.validator = v } }

// New returns an ingress that stores into the EVENTS and DLQ streams through nc.
func New(nc *nats.Conn, cfg Config, log *slog.Logger, opts ...Option) (*Ingress, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(16384),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout.Std()))
	if err != nil {
		return nil, fmt.Errorf("ingress: %w", err)
	}
	in := &Ingress{js: js, cfg: cfg, log: log,
		httpSlots: make(chan struct{}, cfg.MaxInflight), natsSlots: make(chan struct{}, cfg.MaxInflight),
		bodies: NewBodyReader(int64(cfg.MaxRequestBytes), cfg.MaxBufferedBytes, cfg.BodyTimeout.Std())}
	for _, opt := range opts {
		opt(in)
	}
	if in.metrics == nil {
		in.metrics = NewMetrics(nil)
	}
	return in, nil
}

// Metrics returns the ingress's metrics.
func (in *Ingress) Metrics() *Metrics { return in.metrics }

// entry is one event of a request: parsed, or the reason it could not be, plus what the DLQ
// needs to keep the original.
type entry struct {
	ev     *event.Event
	err    error
	header map[string][]string
	raw    []byte
}

// request is a publish request as a transport received it.
type request struct {
	origin      string
	contentType string
	body        []byte
	// parseBinary parses the request in binary mode, nil when it has no ce-* headers.
	parseBinary func(maxBytes int) (*event.Event, error)
	// binaryHeader is the part of the request's headers a DLQ record keeps (ce-*, Content-Type).
	binaryHeader map[string][]string
	// trace holds traceparent/tracestate from the transport, copied into events lacking them.
	trace map[string]string
	// readErr is set when the transport could not read the whole body.
	readErr *RequestError
	// principal is who sent it, with access control on.
	principal *auth.Principal
	// redriveOf is the DLQ record an administrator's redrive resubmits: a new rejection
	// names it.
	redriveOf uint64
}

// acquire takes one of a transport's MaxInflight slots, waiting for one while ctx allows.
func (in *Ingress) acquire(ctx context.Context, slots chan struct{}) error {
	select {
	case slots <- struct{}{}:
		in.metrics.inflight.Inc()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (in *Ingress) release(slots chan struct{}) {
	in.metrics.inflight.Dec()
	<-slots
}

// process decodes, validates, stores and answers one request.
func (in *Ingress) process(ctx context.Context, req request) *Response {
	began := time.Now()
	var resp *Response
	if req.readErr != nil {
		resp = in.refuse(ctx, req, req.readErr)
	} else if entries, reqErr := in.decode(req); reqErr != nil {
		resp = in.refuse(ctx, req, reqErr)
	} else {
		resp = in.store(ctx, req, entries)
	}
	in.metrics.observe(req.origin, began, resp)
	return resp
}

func (in *Ingress) decode(req request) ([]entry, *RequestError) {
	if req.parseBinary != nil {
		ev, err := req.parseBinary(in.cfg.MaxEventBytes)
		return []entry{{ev: ev, err: err, header: req.binaryHeader, raw: req.body}}, nil
	}
	mediaType := strings.ToLower(strings.TrimSpace(req.contentType))
	if mediaType != "" {
		mt, _, err := mime.ParseMediaType(mediaType)
		if err != nil {
			return nil, &RequestError{Code: CodeUnsupportedMediaType, Message: fmt.Sprintf("unreadable Content-Type %q: %v", req.contentType, err)}
		}
		mediaType = mt
	}
	batch := false
	switch mediaType {
	case MediaBatch:
		batch = true
	case MediaStructured:
	case MediaJSON, "":
		// Plain JSON: a JSON array is a batch, anything else one structured event.
		batch = firstByte(req.body) == '['
	default:
		return nil, &RequestError{Code: CodeUnsupportedMediaType, Message: fmt.Sprintf(
			"Content-Type %q is not an event: send %s, %s, or binary mode with ce-* headers", req.contentType, MediaStructured, MediaBatch)}
	}
	structuredHeader := map[string][]string{event.HeaderContentType: {MediaStructured}}
	if !batch {
		ev, err := event.ParseStructured(req.body, in.cfg.MaxEventBytes)
		return []entry{{ev: ev, err: err, header: structuredHeader, raw: req.body}}, nil
	}
	raws, err := event.ParseBatch(req.body)
	if err != nil {
		return nil, &RequestError{Code: CodeMalformed, Message: err.Error()}
	}
	switch {
	case len(raws) == 0:
		return nil, &RequestError{Code: CodeMalformed, Message: "batch has no entries"}
	case len(raws) > in.cfg.MaxBatchEntries:
		return nil, &RequestError{Code: CodeTooManyEntries, Message: fmt.Sprintf("batch has %d entries, over the limit of %d", len(raws), in.cfg.MaxBatchEntries)}
	}
	entries := make([]entry, len(raws))
	for i, raw := range raws {
		ev, err := event.ParseStructured(raw, in.cfg.MaxEventBytes)
		entries[i] = entry{ev: ev, err: err, header: structuredHeader, raw: raw}
	}
	return entries, nil
}

// store publishes every valid entry to EVENTS and every rejected one to the DLQ, all
// asynchronously, then waits for every acknowledgement before answering.
func (in *Ingress) store(ctx context.Context, req request, entries []entry) *Response {
	// The writes are under way whether or not the caller stays for the answer: wait for
	// them on their own clock, so what is counted (accepted, DLQ failures) is what happened.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.PublishTimeout.Std())
	defer cancel()
	resp := &Response{Entries: make([]EntryResult, len(entries))}
	futures := make([]jetstream.PubAckFuture, len(entries))
	var spans []trace.Span
	if in.tracer != nil {
		spans = make([]trace.Span, len(entries))
	}
	var dead []jetstream.PubAckFuture
	now := time.Now().UTC()
	// Whether storage may be tried is asked once, at the first event to store, so a
	// request with nothing to store does not use up the probe of broken storage.
	var down *StorageError
	admitted := false
	for i := range entries {
		en := &entries[i]
		if en.err == nil {
			for _, reserved := range []string{PrincipalExtension, ServiceExtension, event.ReplayExtension, event.RedriveExtension} {
				if _, set := en.ev.Extensions[reserved]; set {
					en.err = event.Invalid(reserved, event.RuleExtension, "is set by the server (who published the event, or which replay or redrive delivered it again); publishers cannot set it")
				}
			}
		}
		if en.err == nil && req.principal != nil {
			if p := req.principal; !p.MayPublishType(en.ev.Type) || !p.MayPublishSource(en.ev.Source) {
				resp.Entries[i] = EntryResult{ID: en.ev.ID, ErrorCode: CodeForbidden, Field: "type",
					ErrorMessage: fmt.Sprintf("principal %s may not publish type %q from source %q (allowed types %v, source %q)", p.Name, en.ev.Type, en.ev.Source, p.Types, p.Source)}
				continue
			}
		}
		if en.err == nil {
			en.err = in.validate(en.ev)
		}
		if en.err != nil {
			resp.Entries[i] = rejection(en.err)
			if f := in.deadLetter(req, en.header, en.raw, resp.Entries[i]); f != nil {
				dead = append(dead, f)
			}
			continue
		}
		if !admitted {
			down, admitted = in.storage.admit(now), true
		}
		if down != nil {
			resp.Entries[i] = unavailable(en.ev.ID, down)
			continue
		}
		if en.ev.Time.IsZero() {
			en.ev.Time = now
		}
		addTrace(en.ev, req.trace)
		if req.principal != nil {
			if en.ev.Extensions == nil {
				en.ev.Extensions = make(map[string]string, 1)
			}
			en.ev.Extensions[PrincipalExtension] = req.principal.Name
			if req.principal.Role == auth.RoleSidecar {
				en.ev.Extensions[ServiceExtension] = req.principal.Service
			}
		}
		if spans != nil {
			if en.ev.Extensions == nil {
				en.ev.Extensions = make(map[string]string, 2)
			}
			spans[i] = telemetry.StartPublish(in.tracer, en.ev.Extensions, telemetry.Event{ID: en.ev.ID, Type: en.ev.Type,
				Source: en.ev.Source, SpecVersion: en.ev.SpecVersion, Subject: en.ev.Subject, Destination: en.ev.NATSSubject(), BodySize: len(en.ev.Data)})
		}
		msg := &nats.Msg{Subject: en.ev.NATSSubject(), Header: en.ev.Header(), Data: en.ev.Data}
		if at := en.ev.DeliverAt(); at.After(now) {
			msg = bus.Schedule(msg, en.ev.Source, en.ev.ID, at)
		}
		f, err := in.js.PublishMsgAsync(msg, jetstream.WithStallWait(in.cfg.PublishTimeout.Std()))
		if err != nil {
			resp.Entries[i] = unavailable(en.ev.ID, err)
			endSpan(spans, i, err)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		ack, err := waitAck(ctx, f)
		endSpan(spans, i, err)
		if err != nil {
			in.log.Error("storing event failed", "id", entries[i].ev.ID, "type", entries[i].ev.Type, "error", err)
			in.storage.failed(err, time.Now())
			resp.Entries[i] = unavailable(entries[i].ev.ID, err)
			continue
		}
		in.storage.stored()
		resp.Entries[i] = EntryResult{ID: entries[i].ev.ID, Sequence: ack.Sequence, Duplicate: ack.Duplicate}
	}
	in.awaitDeadLetters(ctx, dead...)
	for _, r := range resp.Entries {
		if !r.Accepted() {
			resp.FailedEntryCount++
		}
	}
	return resp
}

// endSpan ends the producer span of entry i, if tracing made one, with the store's outcome.
func endSpan(spans []trace.Span, i int, err error) {
	if spans == nil || spans[i] == nil {
		return
	}
	if err != nil {
		spans[i].RecordError(err)
		spans[i].SetStatus(codes.Error, "not stored")
	}
	spans[i].End()
}

// deadLetter starts writing the DLQ record of one rejected entry.
func (in *Ingress) deadLetter(req request, header map[string][]string, raw []byte, res EntryResult) jetstream.PubAckFuture {
	origin := req.origin
	rec := &dlq.Record{Reason: res.ErrorCode, Error: res.ErrorMessage, Field: res.Field, Origin: origin, Header: header, Body: raw, Previous: req.redriveOf}
	rec.Truncate(in.cfg.MaxEventBytes)
	in.log.Debug("event rejected", "origin", origin, "code", res.ErrorCode, "error", res.ErrorMessage)
	f, err := in.js.PublishMsgAsync(rec.Msg(), jetstream.WithStallWait(in.cfg.PublishTimeout.Std()))
	if err != nil {
		in.metrics.dlqFailed.Inc()
		in.log.Error("writing DLQ record failed", "reason", rec.Reason, "error", err)
		return nil
	}
	return f
}

// refuse answers a request refused as a whole and records it in the DLQ, body cut to the
// event limit.
func (in *Ingress) refuse(ctx context.Context, req request, rerr *RequestError) *Response {
	resp := &Response{Error: rerr, Entries: []EntryResult{}}
	header := req.binaryHeader
	if header == nil {
		header = map[string][]string{event.HeaderContentType: {req.contentType}}
	}
	body, msg := req.body, rerr.Message
	if rerr.Code == CodeTooLarge && len(body) > in.cfg.MaxEventBytes {
		// Its size is unknown (reading stopped at the limit): keep a part, say which.
		body = body[:in.cfg.MaxEventBytes]
		msg += fmt.Sprintf("; the record keeps its first %d bytes", len(body))
	}
	if f := in.deadLetter(req, header, body, EntryResult{ErrorCode: rerr.Code, ErrorMessage: msg}); f != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.PublishTimeout.Std())
		defer cancel()
		in.awaitDeadLetters(ctx, f)
	}
	return resp
}

// awaitDeadLetters waits for DLQ writes to be acknowledged. A failed one is counted and
// logged; the caller has its rejection either way.
func (in *Ingress) awaitDeadLetters(ctx context.Context, futures ...jetstream.PubAckFuture) {
	for _, f := range futures {
		if _, err := waitAck(ctx, f); err != nil {
			in.metrics.dlqFailed.Inc()
			in.log.Error("writing DLQ record failed", "error", err)
		}
	}
}

func waitAck(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for JetStream acknowledgement: %w", ctx.Err())
	}
}

// validate applies the schema registry, letting unknown types through when configured to.
func (in *Ingress) validate(ev *event.Event) error {
	if in.validator == nil {
		return nil
	}
	err := in.validator.Validate(ev)
	if err != nil && in.cfg.AllowUnknownTypes && errors.Is(err, schemas.ErrUnknownType) {
		return nil
	}
	return err
}

func rejection(err error) EntryResult {
	var ve *schemas.ValidationError
	if errors.As(err, &ve) {
		return EntryResult{ErrorCode: ve.Code, ErrorMessage: ve.Error(), Field: ve.Field}
	}
	var ee *event.Error
	if !errors.As(err, &ee) {
		return EntryResult{ErrorCode: CodeInvalidEvent, ErrorMessage: err.Error()}
	}
	code := CodeInvalidEvent
	switch {
	case errors.Is(err, event.ErrMalformed):
		code = CodeMalformed
	case errors.Is(err, event.ErrTooLarge):
		code = CodeTooLarge
	}
	return EntryResult{ErrorCode: code, ErrorMessage: ee.Error(), Field: ee.Field}
}

func unavailable(id string, err error) EntryResult {
	return EntryResult{ID: id, ErrorCode: CodeUnavailable,
		ErrorMessage: "event not stored, retry with the same id: " + err.Error()}
}

// maxTraceLen bounds a trace header taken from a transport; W3C values are far shorter.
const maxTraceLen = 512

// addTrace copies transport-level trace context into an event that carries none, so
// delivery can continue the caller's trace. A value that breaks the extension rules is
// dropped: it comes from a header, not from the event the caller sent.
func addTrace(ev *event.Event, trace map[string]string) {
	for name, v := range trace {
		if _, ok := ev.Extensions[name]; ok || v == "" || len(v) > maxTraceLen || event.ValidateExtension(name, v) != nil {
			continue
		}
		if ev.Extensions == nil {
			ev.Extensions = make(map[string]string, len(trace))
		}
		ev.Extensions[name] = v
	}
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// Package dlq is the format of jetmesh's dead-letter records: the original event exactly as
// it was received or stored (headers and body) plus why it is here, carried in Jetmesh-Dlq-*
// headers on the DLQ stream. Ingress rejections go to dlq.ingress.<reason>, failed
// deliveries to dlq.rule.<rule>.<reason> (dlq.rule.<rule> before jetmesh 0.x kept no
// reason in the subject; readers take both).
package dlq

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/clip"
	"github.com/nats-io/nats.go"
)

// Reasons a record is in the DLQ.
const (
	ReasonMalformed        = "malformed"         // not parseable as a CloudEvent at all
	ReasonInvalidEvent     = "invalid_event"     // an attribute or the data breaks a rule
	ReasonTooLarge         = "too_large"         // over the size limit
	ReasonUnknownType      = "unknown_type"      // no schema registered for the type
	ReasonSchemaInvalid    = "schema_invalid"    // data does not match the type's schema
	ReasonDeliveryFailed   = "delivery_failed"   // retries exhausted
	ReasonDeliveryRejected = "delivery_rejected" // the handler refused it for good
	// Requests the ingress refused as a whole.
	ReasonTooManyEntries       = "too_many_entries"       // a batch over the entry limit
	ReasonUnsupportedMediaType = "unsupported_media_type" // a Content-Type that is not an event
)

// Reasons lists every reason a record can have, ingress rejections first.
var Reasons = []string{ReasonMalformed, ReasonInvalidEvent, ReasonTooLarge, ReasonTooManyEntries, ReasonUnsupportedMediaType,
	ReasonUnknownType, ReasonSchemaInvalid, ReasonDeliveryFailed, ReasonDeliveryRejected}

// Header names of a record's metadata.
const (
	HeaderReason    = "Jetmesh-Dlq-Reason"
	HeaderError     = "Jetmesh-Dlq-Error"
	HeaderField     = "Jetmesh-Dlq-Field"
	HeaderRule      = "Jetmesh-Dlq-Rule"
	HeaderAttempts  = "Jetmesh-Dlq-Attempts"
	HeaderStatus    = "Jetmesh-Dlq-Status"
	HeaderTime      = "Jetmesh-Dlq-Time"
	HeaderOrigin    = "Jetmesh-Dlq-Origin"
	HeaderTruncated = "Jetmesh-Dlq-Truncated"
	// HeaderDropped counts the original headers left out to stay under JetStream's header
	// limit (an event refused for having too many attributes).
	HeaderDropped = "Jetmesh-Dlq-Headers-Dropped"
	// HeaderPrevious names the record a redriven event came from, when it failed again.
	HeaderPrevious = "Jetmesh-Dlq-Previous"
	headerPrefix   = "Jetmesh-Dlq-"
)

// maxErrorLen bounds the error text kept in a header; handlers can return anything.
const maxErrorLen = 1024

// maxOriginalHeaderBytes bounds the original headers a record keeps, leaving room under
// JetStream's 64 KiB header limit for the record's own metadata.
const maxOriginalHeaderBytes = 48 << 10

// keptFirst are the original headers a record keeps before any other when it cannot keep
// them all: enough to tell which event it was.
var keptFirst = []string{"ce-id", "ce-type", "ce-source", "ce-specversion", "content-type", "ce-time", "ce-subject"}

// ErrNotRecord is returned by Parse for a message without Jetmesh-Dlq-* metadata.
var ErrNotRecord = errors.New("not a jetmesh DLQ record")

// Record is one dead-letter record.
type Record struct {
	Reason string
	// Error is the human-readable cause (validator message, handler answer).
	Error string
	// Field is the event attribute at fault, for ingress rejections.
	Field string
	// Rule is the rule whose delivery failed; empty for ingress rejections.
	Rule string
	// Attempts is how many deliveries were made; 0 for ingress rejections.
	Attempts int
	// LastStatus is the last HTTP status the handler returned, 0 if none.
	LastStatus int
	Time       time.Time
	// Origin says where the event came from: "http", "nats", "sidecar/<service>".
	Origin string
	// Header holds the original event's headers (ce-*, Content-Type); for an event that was
	// received in structured or batch form, just its Content-Type.
	Header map[string][]string
	// Body is the original body: data in binary mode, the JSON entry otherwise.
	Body []byte
	// TruncatedFrom is the original body size when Body was cut to fit; 0 otherwise.
	TruncatedFrom int
	// HeadersDropped counts original headers a stored record left out (Msg keeps at most
	// 48 KiB of them, those naming the event first).
	HeadersDropped int
	// Previous is the DLQ sequence of the record this event was redriven from, when the
	// redriven event failed again; 0 otherwise.
	Previous uint64
}

// Subject is where the record is stored: dlq.rule.<rule>.<reason> or
// dlq.ingress.<reason>, so the stream's per-subject counts give the depth by reason.
func (r *Record) Subject() string {
	if r.Rule != "" {
		return RuleSubject(r.Rule) + "." + r.Reason
	}
	return "dlq.ingress." + r.Reason
}

// Msg renders the record as a message for the DLQ stream. Original headers that would
// change how JetStream stores it (Nats-*) are dropped; everything else is kept.
func (r *Record) Msg() *nats.Msg {
	h := nats.Header{}
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") || strings.HasPrefix(k, headerPrefix) {
			continue
		}
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if pa, pb := priority(a), priority(b); pa != pb {
			return pa - pb
		}
		return strings.Compare(a, b)
	})
	size, dropped := 0, 0
	for _, k := range names {
		n := 0
		for _, v := range r.Header[k] {
			n += len(k) + len(": \r\n") + len(v)
		}
		if size+n > maxOriginalHeaderBytes {
			dropped++
			continue
		}
		size += n
		h[k] = r.Header[k]
	}
	if dropped > 0 {
		h.Set(HeaderDropped, strconv.Itoa(dropped))
	}
	h.Set(HeaderReason, r.Reason)
	setIf(h, HeaderError, sanitize(r.Error))
	setIf(h, HeaderField, r.Field)
	setIf(h, HeaderRule, r.Rule)
	setIf(h, HeaderOrigin, r.Origin)
	if r.Attempts > 0 {
		h.Set(HeaderAttempts, strconv.Itoa(r.Attempts))
	}
	if r.LastStatus > 0 {
		h.Set(HeaderStatus, strconv.Itoa(r.LastStatus))
	}
	if r.TruncatedFrom > 0 {
		h.Set(HeaderTruncated, strconv.Itoa(r.TruncatedFrom))
	}
	if r.Previous > 0 {
		h.Set(HeaderPrevious, strconv.FormatUint(r.Previous, 10))
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	h.Set(HeaderTime, t.UTC().Format(time.RFC3339Nano))
	return &nats.Msg{Subject: r.Subject(), Header: h, Data: r.Body}
}

// RuleSubject is the subject of a rule's records without their reason, as records written
// before the reason was part of the subject have it; RuleSubject(rule)+".>" holds the
// others.
func RuleSubject(rule string) string { return "dlq.rule." + rule }

// Parse reads a record back from a DLQ message's headers and body.
func Parse(header nats.Header, body []byte) (*Record, error) {
	reason := header.Get(HeaderReason)
	if reason == "" {
		return nil, ErrNotRecord
	}
	r := &Record{
		Reason: reason,
		Error:  header.Get(HeaderError),
		Field:  header.Get(HeaderField),
		Rule:   header.Get(HeaderRule),
		Origin: header.Get(HeaderOrigin),
		Header: map[string][]string{},
		Body:   body,
	}
	var err error
	if r.Attempts, err = atoiIf(header.Get(HeaderAttempts)); err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderAttempts, err)
	}
	if r.LastStatus, err = atoiIf(header.Get(HeaderStatus)); err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderStatus, err)
	}
	if r.TruncatedFrom, err = atoiIf(header.Get(HeaderTruncated)); err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderTruncated, err)
	}
	if r.HeadersDropped, err = atoiIf(header.Get(HeaderDropped)); err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderDropped, err)
	}
	if p := header.Get(HeaderPrevious); p != "" {
		if r.Previous, err = strconv.ParseUint(p, 10, 64); err != nil {
			return nil, fmt.Errorf("%s: %w", HeaderPrevious, err)
		}
	}
	if ts := header.Get(HeaderTime); ts != "" {
		if r.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, fmt.Errorf("%s: %w", HeaderTime, err)
		}
	}
	for k, vs := range header {
		if !strings.HasPrefix(k, headerPrefix) {
			r.Header[k] = vs
		}
	}
	return r, nil
}

// Truncate cuts body to at most limit bytes, recording the original size.
func (r *Record) Truncate(limit int) {
	if limit > 0 && len(r.Body) > limit {
		r.TruncatedFrom = len(r.Body)
		r.Body = r.Body[:limit]
	}
}

// priority orders original headers for keeping: those naming the event first.
func priority(name string) int {
	if i := slices.Index(keptFirst, strings.ToLower(name)); i >= 0 {
		return i
	}
	return len(keptFirst)
}

func setIf(h nats.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

func atoiIf(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(s)
}

// sanitize makes arbitrary text safe for a header: no control characters, bounded length.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, clip.String(s, maxErrorLen))
}

// EventRef names the original event, as far as the record allows: from its ce-id/ce-type
// headers (binary mode), else from the JSON entry in the body. Empty when neither says.
func (r *Record) EventRef() (id, typ string) {
	id, typ = event.HeaderGet(r.Header, "ce-id"), event.HeaderGet(r.Header, "ce-type")
	if id != "" || typ != "" {
		return id, typ
	}
	var entry struct {
		ID   any `json:"id"`
		Type any `json:"type"`
	}
	if json.Unmarshal(r.Body, &entry) == nil {
		return stringish(entry.ID), stringish(entry.Type)
	}
	return "", ""
}

func stringish(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

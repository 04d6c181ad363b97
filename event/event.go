package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// SpecVersion is the only CloudEvents version jetmesh accepts.
const SpecVersion = "1.0"

// DefaultContentType is assumed when an event names no datacontenttype.
const DefaultContentType = "application/json"

// DefaultMaxBytes is the default event size limit (attributes plus data).
const DefaultMaxBytes = 256 << 10

// SubjectPrefix is the NATS subject prefix of every stored event: evt.<type>.
const SubjectPrefix = "evt."

// Attribute limits that keep events safe to carry in NATS and HTTP headers.
const (
	maxIDLen        = 512
	maxTypeLen      = 255
	maxAttrLen      = 4096
	maxExtensionLen = 64
)

// Event is a CloudEvent 1.0. Data holds the event payload exactly as it will be stored: the
// JSON text when DataContentType is JSON, raw bytes otherwise.
type Event struct {
	ID              string
	Source          string
	SpecVersion     string
	Type            string
	Subject         string
	Time            time.Time
	DataContentType string
	DataSchema      string
	// Extensions holds extension attributes (for example traceparent) as strings, the way
	// the CloudEvents binary bindings carry them.
	Extensions map[string]string
	Data       []byte
}

// Extensions jetmesh sets on copies of stored events it delivers again to one rule only;
// publishers cannot set them. A handler reads them as ce-jetmeshreplay / ce-jetmeshredrive.
const (
	// ReplayExtension carries the id of the replay that re-delivered the event.
	ReplayExtension = "jetmeshreplay"
	// RedriveExtension carries the sequence of the DLQ record the event was redriven from.
	RedriveExtension = "jetmeshredrive"
)

// DeliverAtExtension delays an event: it is stored at once and delivered to rules no
// earlier than this RFC 3339 time (a time in the past means now).
const DeliverAtExtension = "deliverat"

// DeliverAt is when the event may be delivered; zero when it has no deliverat. Validate
// has checked the format.
func (e *Event) DeliverAt() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Extensions[DeliverAtExtension])
	return t
}

// NATSSubject returns the subject the event is stored under: evt.<type>.
func (e *Event) NATSSubject() string { return SubjectPrefix + e.Type }

// ContentType returns DataContentType, or DefaultContentType when it is empty.
func (e *Event) ContentType() string {
	if e.DataContentType == "" {
		return DefaultContentType
	}
	return e.DataContentType
}

// Validate checks every attribute rule and returns the first *Error found, in a fixed order
// (specversion, id, source, type, then the optional attributes, then data).
func (e *Event) Validate() error { return e.validate(true) }

// validate is Validate; checkData false skips re-checking data a parser already scanned.
func (e *Event) validate(checkData bool) error {
	if e.SpecVersion == "" {
		return invalid("specversion", RuleRequired, "required attribute is missing")
	}
	if e.SpecVersion != SpecVersion {
		return invalid("specversion", RuleSpecVersion, "must be %q, got %q", SpecVersion, e.SpecVersion)
	}
	if err := checkText("id", e.ID, true, maxIDLen); err != nil {
		return err
	}
	if err := checkText("source", e.Source, true, maxAttrLen); err != nil {
		return err
	}
	if _, err := url.Parse(e.Source); err != nil {
		return invalid("source", RuleURIRef, "must be a URI reference: %v", err)
	}
	if err := ValidateType(e.Type); err != nil {
		return err
	}
	if err := checkText("subject", e.Subject, false, maxAttrLen); err != nil {
		return err
	}
	if err := checkText("datacontenttype", e.DataContentType, false, maxAttrLen); err != nil {
		return err
	}
	if e.DataContentType != "" {
		if _, _, err := mime.ParseMediaType(e.DataContentType); err != nil {
			return invalid("datacontenttype", RuleString, "must be a media type such as application/json: %v", err)
		}
	}
	if err := checkText("dataschema", e.DataSchema, false, maxAttrLen); err != nil {
		return err
	}
	if e.DataSchema != "" {
		if _, err := url.Parse(e.DataSchema); err != nil {
			return invalid("dataschema", RuleURIRef, "must be a URI reference: %v", err)
		}
	}
	for name, value := range e.Extensions {
		if err := checkExtension(name, value); err != nil {
			return err
		}
	}
	if v, ok := e.Extensions[DeliverAtExtension]; ok {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return invalid(DeliverAtExtension, RuleTimestamp, "must be an RFC 3339 time (fractional seconds allowed), like 2026-12-04T10:00:00Z, got %q", v)
		}
	}
	if checkData && len(e.Data) > 0 && IsJSON(e.ContentType()) {
		if serr := validJSON(e.Data); serr != nil {
			if serr.text && json.Valid(e.Data) {
				return invalid("data", RuleText, "is not Unicode text (RFC 8259): %s", serr)
			}
			return invalid("data", RuleDataJSON, "datacontenttype is %s but data is not valid JSON", e.ContentType())
		}
	}
	if n := e.headerBytes(); n > MaxHeaderBytes {
		return &Error{Rule: RuleHeaderSize, kind: ErrTooLarge, Msg: fmt.Sprintf(
			"the event's attributes take %d bytes as stored headers, over the limit of %d bytes (JetStream stores at most 64 KiB of headers): send fewer or shorter extension attributes, or move them into data",
			n, MaxHeaderBytes)}
	}
	return nil
}

// MaxHeaderBytes bounds an event's stored headers (its attributes in binary form, as NATS
// encodes them). JetStream refuses a message with more than 64 KiB of headers; the rest
// is left for headers added on the way (trace context, delivery and DLQ metadata).
const MaxHeaderBytes = 60 << 10

// headerBytes is the size of Header() as NATS encodes it ("NATS/1.0\r\n", one
// "Name: value\r\n" line each, a final "\r\n"), computed without building it.
func (e *Event) headerBytes() int {
	line := func(name, v string) int {
		if v == "" {
			return 0
		}
		return len(name) + 2 + len(v) + 2
	}
	n := len("NATS/1.0\r\n\r\n")
	n += line("ce-specversion", e.SpecVersion) + line("ce-id", e.ID) + line("ce-source", e.Source) + line("ce-type", e.Type) +
		line("ce-subject", e.Subject) + line("ce-dataschema", e.DataSchema) + line(HeaderContentType, e.ContentType()) + line(HeaderMsgID, e.ID)
	if !e.Time.IsZero() {
		n += len("ce-time: \r\n") + len(time.RFC3339Nano) // the layout is as wide as its widest rendering
	}
	for name, v := range e.Extensions {
		if v != "" {
			n += len("ce-") + line(name, v)
		}
	}
	return n
}

// ValidateType checks an event type: dot-separated tokens of [a-z0-9_-], at most 255 bytes.
func ValidateType(t string) error {
	if t == "" {
		return invalid("type", RuleRequired, "required attribute is missing")
	}
	if len(t) > maxTypeLen {
		return invalid("type", RuleTooLong, "is %d bytes, over the limit of %d", len(t), maxTypeLen)
	}
	tokenLen := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '.':
			if tokenLen == 0 {
				return invalid("type", RuleTypeToken, "%q has an empty token: use dot-separated tokens like orders.created", t)
			}
			tokenLen = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			tokenLen++
		default:
			r, _ := utf8.DecodeRuneInString(t[i:])
			return invalid("type", RuleTypeToken, "%q has character %q: each dot-separated token must match [a-z0-9_-]+", t, r)
		}
	}
	if tokenLen == 0 {
		return invalid("type", RuleTypeToken, "%q has an empty token: use dot-separated tokens like orders.created", t)
	}
	return nil
}

func checkText(field, v string, required bool, limit int) *Error {
	if v == "" {
		if required {
			return invalid(field, RuleRequired, "required attribute is missing or empty")
		}
		return nil
	}
	if len(v) > limit {
		return invalid(field, RuleTooLong, "is %d bytes, over the limit of %d", len(v), limit)
	}
	if hasControl(v) {
		return invalid(field, RuleControlChar, "must not contain control characters (such as newlines)")
	}
	if !utf8.ValidString(v) {
		return invalid(field, RuleText, "is not Unicode text (RFC 8259): not valid UTF-8")
	}
	return nil
}

// ValidateExtension checks one extension attribute against the rules Validate applies, for
// callers that add extensions to an already validated event.
func ValidateExtension(name, value string) error {
	if err := checkExtension(name, value); err != nil {
		return err
	}
	return nil
}

func checkExtension(name, value string) *Error {
	if !validExtensionName(name) {
		return invalid(name, RuleExtension, "extension attribute names must be 1-%d characters of [a-z0-9]", maxExtensionLen)
	}
	return checkText(name, value, false, maxAttrLen)
}

func validExtensionName(name string) bool {
	if name == "" || len(name) > maxExtensionLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// IsJSON reports whether a media type carries JSON: application/json, text/json, or any
// +json suffix type. Parameters such as charset are ignored.
func IsJSON(contentType string) bool {
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

func isText(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/")
}

// MarshalJSON renders the event in CloudEvents structured JSON: data inline when it is JSON,
// a string for text/* content, data_base64 otherwise.
func (e *Event) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(e.Data) + 256)
	b.WriteByte('{')
	writeAttr(&b, "specversion", e.SpecVersion, true)
	writeAttr(&b, "id", e.ID, false)
	writeAttr(&b, "source", e.Source, false)
	writeAttr(&b, "type", e.Type, false)
	writeAttr(&b, "subject", e.Subject, false)
	if !e.Time.IsZero() {
		writeAttr(&b, "time", e.Time.Format(time.RFC3339Nano), false)
	}
	writeAttr(&b, "datacontenttype", e.DataContentType, false)
	writeAttr(&b, "dataschema", e.DataSchema, false)
	for _, name := range sortedKeys(e.Extensions) {
		writeAttr(&b, name, e.Extensions[name], false)
	}
	if len(e.Data) > 0 {
		switch ct := e.ContentType(); {
		case IsJSON(ct) && validJSON(e.Data) == nil:
			b.WriteString(`,"data":`)
			b.Write(e.Data)
		case isText(ct):
			writeAttr(&b, "data", string(e.Data), false)
		default:
			writeAttr(&b, "data_base64", base64.StdEncoding.EncodeToString(e.Data), false)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeAttr(b *bytes.Buffer, name, value string, first bool) {
	if value == "" {
		return
	}
	if !first {
		b.WriteByte(',')
	}
	b.WriteByte('"')
	b.WriteString(name)
	b.WriteString(`":`)
	enc, _ := json.Marshal(value) // a string always marshals
	b.Write(enc)
}

// MarshalBatch renders events as a CloudEvents JSON batch. Use it (and MarshalJSON) rather
// than json.Marshal, which re-escapes <, > and & inside data and so changes its bytes.
func MarshalBatch(events []*Event) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		raw, _ := e.MarshalJSON() // never fails
		b.Write(raw)
	}
	b.WriteByte(']')
	return b.Bytes()
}

package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/internal/clip"
)

// ParseStructured parses and validates one event in CloudEvents structured JSON mode.
// maxBytes bounds the size of raw; zero or less means DefaultMaxBytes.
//
// It validates the JSON and walks the top-level object in one pass, slicing attribute
// strings without decoding them when they hold no escapes: this is the ingress hot path.
func ParseStructured(raw []byte, maxBytes int) (*Event, error) {
	if limit := limitOrDefault(maxBytes); len(raw) > limit {
		return nil, tooLarge(len(raw), limit)
	}
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, notA("object", raw, i)
	}
	e := &Event{}
	var data, data64 []byte
	var attrErr *Error // the first attribute problem; a syntax error anywhere wins over it
	var seenCore uint16
	var nullExtensions []string
	i = skipWS(raw, i+1)
	for empty := i < len(raw) && raw[i] == '}'; !empty; {
		if i >= len(raw) || raw[i] != '"' {
			return nil, syntax("not a JSON object", unexpected(raw, i, "looking for beginning of object key string"))
		}
		keyEnd, keySlow, serr := scanString(raw, i)
		if serr != nil {
			return nil, structuredError(raw, "", serr)
		}
		name := jsonString(raw[i:keyEnd], keySlow)
		if i = skipWS(raw, keyEnd); i >= len(raw) || raw[i] != ':' {
			return nil, syntax("not a JSON object", unexpected(raw, i, "after object key"))
		}
		vStart := skipWS(raw, i+1)
		vEnd, vSlow := 0, false
		if vStart < len(raw) && raw[vStart] == '"' {
			vEnd, vSlow, serr = scanString(raw, vStart)
		} else {
			vEnd, serr = scanValue(raw, vStart, 1)
		}
		if serr != nil {
			return nil, structuredError(raw, name, serr)
		}
		value := raw[vStart:vEnd]
		// Decoders disagree on which of two values for one key wins (encoding/json keeps the
		// last): refuse the event. Extensions are checked against those already set, and
		// the rare null ones (absent, so not set) against a list of their own.
		dup := false
		if bit := coreBit(name); bit != 0 {
			dup, seenCore = seenCore&bit != 0, seenCore|bit
		} else {
			_, dup = e.Extensions[name]
			dup = dup || slices.Contains(nullExtensions, name)
			if isNull(value) {
				nullExtensions = append(nullExtensions, name)
			}
		}
		if dup && attrErr == nil {
			attrErr = invalid(name, RuleDuplicate, "appears more than once in the event object")
		}
		switch name {
		case "data":
			data = value
		case "data_base64":
			data64 = value
		default:
			if err := e.setAttr(name, value, vSlow); err != nil && attrErr == nil {
				attrErr = err
			}
		}
		i = skipWS(raw, vEnd)
		if i < len(raw) && raw[i] == '}' {
			break
		}
		if i >= len(raw) || raw[i] != ',' {
			return nil, syntax("not a JSON object", unexpected(raw, i, "after object key:value pair"))
		}
		i = skipWS(raw, i+1)
	}
	if i = skipWS(raw, i+1); i != len(raw) {
		return nil, syntax("not a JSON object", unexpected(raw, i, "after top-level value"))
	}
	if attrErr != nil {
		return nil, attrErr
	}
	if err := e.setStructuredData(data, data64); err != nil {
		return nil, err
	}
	// Inline data is JSON the scanner has just validated; decoded data must be checked.
	inlineJSON := len(data64) == 0 || isNull(data64)
	if err := e.validate(!inlineJSON); err != nil {
		return nil, err
	}
	return e, nil
}

// structuredError reports a scan failure inside the event object at raw. A string that is
// not Unicode text is the event's fault, named by the attribute holding it (data for
// anything inside data), unless the JSON is also broken somewhere: a syntax error wins,
// as it does for every other attribute problem.
func structuredError(raw []byte, field string, serr *syntaxError) *Error {
	if !serr.text || !json.Valid(raw) {
		return syntax("not a JSON object", serr)
	}
	if field == "" {
		return invalid("", RuleText, "an attribute name is not Unicode text: %s", serr)
	}
	return invalid(field, RuleText, "is not Unicode text (RFC 8259): %s", serr)
}

// coreBit numbers the attributes with a fixed name, for the duplicate check.
func coreBit(name string) uint16 {
	switch name {
	case "specversion":
		return 1 << 0
	case "id":
		return 1 << 1
	case "source":
		return 1 << 2
	case "type":
		return 1 << 3
	case "subject":
		return 1 << 4
	case "time":
		return 1 << 5
	case "datacontenttype":
		return 1 << 6
	case "dataschema":
		return 1 << 7
	case "data":
		return 1 << 8
	case "data_base64":
		return 1 << 9
	}
	return 0
}

// setAttr sets one context attribute or extension from its JSON value.
func (e *Event) setAttr(name string, value []byte, slow bool) *Error {
	if isNull(value) {
		return nil // CloudEvents: a null attribute is an absent one
	}
	var s string
	if value[0] == '"' {
		s = jsonString(value, slow)
	} else {
		var err *Error
		if s, err = attrString(name, value); err != nil {
			return err
		}
	}
	switch name {
	case "specversion":
		e.SpecVersion = s
	case "id":
		e.ID = s
	case "source":
		e.Source = s
	case "type":
		e.Type = s
	case "subject":
		e.Subject = s
	case "time":
		t, err := parseTime(s)
		if err != nil {
			return err
		}
		e.Time = t
	case "datacontenttype":
		e.DataContentType = s
	case "dataschema":
		e.DataSchema = s
	default:
		if e.Extensions == nil {
			e.Extensions = make(map[string]string)
		}
		e.Extensions[name] = s
	}
	return nil
}

// jsonString returns the value of a scanned, valid JSON string literal: sliced when it
// holds no escapes or invalid UTF-8, decoded by encoding/json otherwise.
func jsonString(lit []byte, slow bool) string {
	if !slow {
		return string(lit[1 : len(lit)-1])
	}
	var s string
	_ = json.Unmarshal(lit, &s) // lit was validated by scanString
	return s
}

func (e *Event) setStructuredData(data, data64 []byte) error {
	hasData, hasData64 := len(data) > 0 && !isNull(data), len(data64) > 0 && !isNull(data64)
	switch {
	case hasData && hasData64:
		return invalid("data", RuleDataConflict, "data and data_base64 are mutually exclusive")
	case hasData64:
		var s string
		if err := json.Unmarshal(data64, &s); err != nil {
			return invalid("data_base64", RuleString, "must be a base64 string")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return invalid("data_base64", RuleBase64, "is not valid base64: %v", err)
		}
		e.Data = b
	case hasData:
		// Non-JSON content carried as a JSON string is stored as the string's bytes (for
		// text/plain, "hello" is stored as hello); JSON content is stored as JSON text.
		if !IsJSON(e.ContentType()) && data[0] == '"' {
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				return invalid("data", RuleString, "is not a valid JSON string")
			}
			e.Data = []byte(s)
			return nil
		}
		e.Data = bytes.Clone(data)
	}
	return nil
}

// ParseBatch splits a CloudEvents batch (a JSON array of structured events) into its
// entries without parsing them, so one bad entry does not sink the others. The entries
// share raw's memory.
func ParseBatch(raw []byte) ([]json.RawMessage, error) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, notA("array", raw, i)
	}
	entries := []json.RawMessage{}
	i = skipWS(raw, i+1)
	for empty := i < len(raw) && raw[i] == ']'; !empty; {
		end, serr := scanValue(raw, i, 1)
		if serr != nil && serr.text && json.Valid(raw) {
			return splitBatchSlow(raw), nil
		}
		if serr != nil {
			return nil, syntax("batch is not a JSON array", serr)
		}
		entries = append(entries, raw[i:end:end])
		if i = skipWS(raw, end); i < len(raw) && raw[i] == ']' {
			break
		}
		if i >= len(raw) || raw[i] != ',' {
			return nil, syntax("batch is not a JSON array", unexpected(raw, i, "after array element"))
		}
		i = skipWS(raw, i+1)
	}
	if i = skipWS(raw, i+1); i != len(raw) {
		return nil, syntax("batch is not a JSON array", unexpected(raw, i, "after top-level value"))
	}
	return entries, nil
}

// splitBatchSlow splits a valid JSON array whose entries hold strings that are not Unicode
// text: the batch is sound, the entries are refused one by one when parsed.
func splitBatchSlow(raw []byte) []json.RawMessage {
	var entries []json.RawMessage
	_ = json.Unmarshal(raw, &entries) // raw is a valid JSON array
	return entries
}

// notA explains why raw, whose first value starts at b[i], is not the JSON kind wanted:
// a syntax error if it is not JSON at all, else what it is instead.
func notA(kind string, raw []byte, i int) *Error {
	what := "batch is not a JSON array"
	if kind == "object" {
		what = "not a JSON object"
	}
	if serr := validJSON(raw); serr != nil {
		return syntax(what, serr)
	}
	got := map[byte]string{'{': "a JSON object", '[': "a JSON array", '"': "a JSON string", 't': "a JSON boolean", 'f': "a JSON boolean", 'n': "null"}[raw[i]]
	if got == "" {
		got = "a JSON number"
	}
	return malformed("%s: got %s", what, got)
}

func syntax(what string, serr *syntaxError) *Error {
	return malformed("%s: %s", what, serr)
}

// headerSource is a read view over binary-mode headers, HTTP or NATS alike.
type headerSource interface {
	each(fn func(name, value string))
}

type httpHeaders http.Header

func (h httpHeaders) each(fn func(string, string)) {
	for k, vs := range h {
		if len(vs) > 0 {
			fn(k, vs[0])
		}
	}
}

type mapHeaders map[string][]string

func (h mapHeaders) each(fn func(string, string)) {
	for k, vs := range h {
		if len(vs) > 0 {
			fn(k, vs[0])
		}
	}
}

// IsBinaryHTTP reports whether an HTTP request carries an event in binary mode, i.e. has a
// ce-specversion header.
func IsBinaryHTTP(h http.Header) bool { return h.Get("Ce-Specversion") != "" }

// ParseHTTPBinary parses and validates an event in CloudEvents HTTP binary mode: ce-*
// headers (percent-decoded), Content-Type as datacontenttype, body as data.
func ParseHTTPBinary(h http.Header, body []byte, maxBytes int) (*Event, error) {
	return parseBinary(httpHeaders(h), body, maxBytes, true)
}

// ParseNATSBinary parses and validates an event in the binary form jetmesh stores and
// accepts over NATS: ce-* headers (matched case-insensitively), Content-Type, body as data.
// h is a nats.Header; the type is spelled out so this package needs no NATS import.
func ParseNATSBinary(h map[string][]string, body []byte, maxBytes int) (*Event, error) {
	return parseBinary(mapHeaders(h), body, maxBytes, false)
}

func parseBinary(h headerSource, body []byte, maxBytes int, percentDecode bool) (*Event, error) {
	size := len(body)
	h.each(func(k, v string) { size += len(k) + len(v) })
	if limit := limitOrDefault(maxBytes); size > limit {
		return nil, tooLarge(size, limit)
	}
	e := &Event{}
	var perr *Error
	h.each(func(k, v string) {
		if perr != nil {
			return
		}
		lk := strings.ToLower(k)
		if lk == "content-type" {
			e.DataContentType = v
			return
		}
		name, ok := strings.CutPrefix(lk, "ce-")
		if !ok {
			return
		}
		if percentDecode {
			if d, err := url.PathUnescape(v); err == nil {
				v = d
			}
		}
		switch name {
		case "specversion":
			e.SpecVersion = v
		case "id":
			e.ID = v
		case "source":
			e.Source = v
		case "type":
			e.Type = v
		case "subject":
			e.Subject = v
		case "time":
			t, err := parseTime(v)
			if err != nil {
				perr = err
				return
			}
			e.Time = t
		case "dataschema":
			e.DataSchema = v
		case "datacontenttype":
			// Not a binary-mode header (Content-Type carries it); ignore like the spec says.
		default:
			if e.Extensions == nil {
				e.Extensions = make(map[string]string)
			}
			e.Extensions[name] = v
		}
	})
	if perr != nil {
		return nil, perr
	}
	if len(body) > 0 {
		e.Data = bytes.Clone(body)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Header names of the stored binary form.
const (
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderContentType = "Content-Type"
)

// Header returns the stored binary-form headers of the event: ce-* attributes, Content-Type
// and Nats-Msg-Id = id, so the stream's duplicate window drops re-publishes.
func (e *Event) Header() map[string][]string {
	h := make(map[string][]string, 8+len(e.Extensions))
	set := func(k, v string) {
		if v != "" {
			h[k] = []string{v}
		}
	}
	set("ce-specversion", e.SpecVersion)
	set("ce-id", e.ID)
	set("ce-source", e.Source)
	set("ce-type", e.Type)
	set("ce-subject", e.Subject)
	if !e.Time.IsZero() {
		set("ce-time", e.Time.Format(time.RFC3339Nano))
	}
	set("ce-dataschema", e.DataSchema)
	for name, v := range e.Extensions {
		set("ce-"+name, v)
	}
	set(HeaderContentType, e.ContentType())
	set(HeaderMsgID, e.ID)
	return h
}

// HeaderGet returns the first value of the header named name in any letter case: stored
// events use lower-case ce-* names, nats.Header.Set canonical ones.
func HeaderGet(h map[string][]string, name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

func attrString(name string, value json.RawMessage) (string, *Error) {
	var s string
	if err := json.Unmarshal(value, &s); err == nil {
		return s, nil
	}
	switch name {
	case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema":
		return "", invalid(name, RuleString, "must be a JSON string, got %s", clip.String(string(value), 40))
	}
	// Extension attributes may be booleans or integers; the binary form carries them as
	// strings, so that is what they become here.
	var v any
	if err := json.Unmarshal(value, &v); err == nil {
		switch v.(type) {
		case bool, float64:
			return string(value), nil
		}
	}
	return "", invalid(name, RuleExtension, "extension attribute values must be strings, numbers or booleans, got %s", clip.String(string(value), 40))
}

func parseTime(s string) (time.Time, *Error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid("time", RuleTimestamp, "must be an RFC 3339 timestamp like 2024-05-01T12:00:00Z, got %q", clip.String(s, 64))
	}
	return t, nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func limitOrDefault(n int) int {
	if n <= 0 {
		return DefaultMaxBytes
	}
	return n
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// FromStored rebuilds an event from its stored binary form (the headers Header writes,
// and the data), for handlers that take structured events, such as batch delivery.
// Nats-* headers are left out.
func FromStored(h map[string][]string, data []byte) *Event {
	e := &Event{Data: data}
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		lk := strings.ToLower(k)
		v := vs[0]
		switch lk {
		case "ce-specversion":
			e.SpecVersion = v
		case "ce-id":
			e.ID = v
		case "ce-source":
			e.Source = v
		case "ce-type":
			e.Type = v
		case "ce-subject":
			e.Subject = v
		case "ce-time":
			e.Time, _ = time.Parse(time.RFC3339Nano, v)
		case "ce-dataschema":
			e.DataSchema = v
		case "content-type":
			e.DataContentType = v
		default:
			if name, ok := strings.CutPrefix(lk, "ce-"); ok {
				if e.Extensions == nil {
					e.Extensions = map[string]string{}
				}
				e.Extensions[name] = v
			}
		}
	}
	return e
}

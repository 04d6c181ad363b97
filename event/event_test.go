package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/event"
)

const valid = `{"specversion":"1.0","id":"e-1","source":"/shop","type":"orders.created","data":{"amount":120}}`

// with returns the valid event with one attribute replaced (or removed, for nil).
func with(attr string, value any) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(valid), &m); err != nil {
		panic(err)
	}
	if value == nil {
		delete(m, attr)
	} else {
		m[attr] = value
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseStructuredRejects(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		limit     int
		wantKind  error
		wantField string
		wantRule  string
		wantText  string
	}{
		{"not json", `{"id":`, 0, event.ErrMalformed, "", event.RuleJSON, "not a JSON object"},
		{"array", `[1,2]`, 0, event.ErrMalformed, "", event.RuleJSON, "got a JSON array"},
		{"number", `42`, 0, event.ErrMalformed, "", event.RuleJSON, "got a JSON number"},
		{"null", `null`, 0, event.ErrMalformed, "", event.RuleJSON, "got null"},
		{"empty body", ``, 0, event.ErrMalformed, "", event.RuleJSON, "not a JSON object"},
		{"missing specversion", with("specversion", nil), 0, event.ErrInvalid, "specversion", event.RuleRequired, "missing"},
		{"specversion 0.3", with("specversion", "0.3"), 0, event.ErrInvalid, "specversion", event.RuleSpecVersion, `must be "1.0", got "0.3"`},
		{"specversion number", with("specversion", 1.0), 0, event.ErrInvalid, "specversion", event.RuleString, "must be a JSON string"},
		{"missing id", with("id", nil), 0, event.ErrInvalid, "id", event.RuleRequired, "missing"},
		{"empty id", with("id", ""), 0, event.ErrInvalid, "id", event.RuleRequired, "missing or empty"},
		{"id not a string", with("id", 7), 0, event.ErrInvalid, "id", event.RuleString, "got 7"},
		{"id with newline", with("id", "a\nb"), 0, event.ErrInvalid, "id", event.RuleControlChar, "control characters"},
		{"id too long", with("id", strings.Repeat("x", 513)), 0, event.ErrInvalid, "id", event.RuleTooLong, "over the limit of 512"},
		{"missing source", with("source", nil), 0, event.ErrInvalid, "source", event.RuleRequired, "missing"},
		{"source not a URI reference", with("source", "%zz"), 0, event.ErrInvalid, "source", event.RuleURIRef, "URI reference"},
		{"missing type", with("type", nil), 0, event.ErrInvalid, "type", event.RuleRequired, "missing"},
		{"type uppercase", with("type", "Orders.created"), 0, event.ErrInvalid, "type", event.RuleTypeToken, "[a-z0-9_-]+"},
		{"type with space", with("type", "orders created"), 0, event.ErrInvalid, "type", event.RuleTypeToken, "' '"},
		{"type with wildcard", with("type", "orders.*"), 0, event.ErrInvalid, "type", event.RuleTypeToken, "'*'"},
		{"type empty token", with("type", "orders..created"), 0, event.ErrInvalid, "type", event.RuleTypeToken, "empty token"},
		{"type leading dot", with("type", ".orders"), 0, event.ErrInvalid, "type", event.RuleTypeToken, "empty token"},
		{"type trailing dot", with("type", "orders."), 0, event.ErrInvalid, "type", event.RuleTypeToken, "empty token"},
		{"type too long", with("type", strings.Repeat("a", 256)), 0, event.ErrInvalid, "type", event.RuleTooLong, "limit of 255"},
		{"bad time", with("time", "yesterday"), 0, event.ErrInvalid, "time", event.RuleTimestamp, "RFC 3339"},
		{"time without zone", with("time", "2024-05-01T12:00:00"), 0, event.ErrInvalid, "time", event.RuleTimestamp, "RFC 3339"},
		{"subject control char", with("subject", "a\tb"), 0, event.ErrInvalid, "subject", event.RuleControlChar, "control"},
		{"subject not a string", with("subject", []int{1}), 0, event.ErrInvalid, "subject", event.RuleString, "JSON string"},
		{"bad datacontenttype", with("datacontenttype", "not a type"), 0, event.ErrInvalid, "datacontenttype", event.RuleString, "media type"},
		{"bad dataschema", with("dataschema", "%zz"), 0, event.ErrInvalid, "dataschema", event.RuleURIRef, "URI reference"},
		{"data and data_base64", with("data_base64", "aGk="), 0, event.ErrInvalid, "data", event.RuleDataConflict, "mutually exclusive"},
		{"data_base64 not base64", `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/octet-stream","data_base64":"!!"}`, 0, event.ErrInvalid, "data_base64", event.RuleBase64, "not valid base64"},
		{"data_base64 not a string", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":5}`, 0, event.ErrInvalid, "data_base64", event.RuleString, "base64 string"},
		{"json content, base64 non-json data", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"aGVsbG8="}`, 0, event.ErrInvalid, "data", event.RuleDataJSON, "not valid JSON"},
		{"extension bad name", with("TraceParent", "00-x"), 0, event.ErrInvalid, "TraceParent", event.RuleExtension, "[a-z0-9]"},
		{"extension name with dash", with("trace-id", "x"), 0, event.ErrInvalid, "trace-id", event.RuleExtension, "[a-z0-9]"},
		{"extension object value", with("tenant", map[string]int{"a": 1}), 0, event.ErrInvalid, "tenant", event.RuleExtension, "strings, numbers or booleans"},
		{"extension control char", with("tenant", "a\rb"), 0, event.ErrInvalid, "tenant", event.RuleControlChar, "control"},
		{"over size limit", with("data", strings.Repeat("x", 2000)), 1024, event.ErrTooLarge, "", event.RuleMaxSize, "over the limit of 1024 bytes"},
		// Two different ids must never collide on a decoder's U+FFFD.
		{"id lone high surrogate", `{"specversion":"1.0","id":"\udbffx","source":"/s","type":"a"}`, 0, event.ErrInvalid, "id", event.RuleText, `\udbff is a lone UTF-16 surrogate`},
		{"id lone low surrogate", `{"specversion":"1.0","id":"\udc00","source":"/s","type":"a"}`, 0, event.ErrInvalid, "id", event.RuleText, "lone UTF-16 surrogate"},
		{"id invalid UTF-8", "{\"specversion\":\"1.0\",\"id\":\"a\xffb\",\"source\":\"/s\",\"type\":\"a\"}", 0, event.ErrInvalid, "id", event.RuleText, "byte 0xff is not valid UTF-8"},
		{"source invalid UTF-8", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/\xc3\",\"type\":\"a\"}", 0, event.ErrInvalid, "source", event.RuleText, "not valid UTF-8"},
		{"extension invalid UTF-8", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"a\",\"tenant\":\"\xed\xa0\x80\"}", 0, event.ErrInvalid, "tenant", event.RuleText, "not valid UTF-8"},
		{"data lone surrogate", `{"specversion":"1.0","id":"1","source":"/s","type":"a","data":{"name":"\ud800"}}`, 0, event.ErrInvalid, "data", event.RuleText, "lone UTF-16 surrogate"},
		{"data invalid UTF-8", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"a\",\"data\":[\"\x80\"]}", 0, event.ErrInvalid, "data", event.RuleText, "not valid UTF-8"},
		{"key invalid UTF-8", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"a\",\"\xff\":1}", 0, event.ErrInvalid, "", event.RuleText, "attribute name is not Unicode text"},
		{"invalid UTF-8 and a syntax error: the syntax error wins", "{\"id\":\"\xff\",}", 0, event.ErrMalformed, "", event.RuleJSON, "not a JSON object"},
		{"duplicate id", `{"specversion":"1.0","id":"1","source":"/s","type":"a","id":"2"}`, 0, event.ErrInvalid, "id", event.RuleDuplicate, "appears more than once"},
		{"duplicate id, escaped", `{"specversion":"1.0","id":"1","source":"/s","type":"a","\u0069d":"1"}`, 0, event.ErrInvalid, "id", event.RuleDuplicate, "appears more than once"},
		{"duplicate data", `{"specversion":"1.0","id":"1","source":"/s","type":"a","data":1,"data":2}`, 0, event.ErrInvalid, "data", event.RuleDuplicate, "appears more than once"},
		{"duplicate extension", `{"specversion":"1.0","id":"1","source":"/s","type":"a","tenant":"x","tenant":"y"}`, 0, event.ErrInvalid, "tenant", event.RuleDuplicate, "appears more than once"},
		{"headers over JetStream's limit", manyExtensions(4000), 1 << 20, event.ErrTooLarge, "", event.RuleHeaderSize, "over the limit of 61440 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := event.ParseStructured([]byte(tt.raw), tt.limit)
			if err == nil {
				t.Fatalf("accepted %s as %+v", tt.raw, ev)
			}
			if !errors.Is(err, tt.wantKind) {
				t.Errorf("error %q is not %v", err, tt.wantKind)
			}
			var ee *event.Error
			if !errors.As(err, &ee) {
				t.Fatalf("error %T is not *event.Error", err)
			}
			if ee.Field != tt.wantField || ee.Rule != tt.wantRule {
				t.Errorf("field/rule = %q/%q, want %q/%q (%v)", ee.Field, ee.Rule, tt.wantField, tt.wantRule, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
			if tt.wantField != "" && !strings.HasPrefix(err.Error(), tt.wantField+": ") {
				t.Errorf("error %q does not start by naming the field %q", err, tt.wantField)
			}
		})
	}
}

func TestParseStructuredAccepts(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 500, time.FixedZone("", 2*3600))
	tests := []struct {
		name string
		raw  string
		want event.Event
	}{
		{"minimal, no data", `{"specversion":"1.0","id":"1","source":"/s","type":"a"}`,
			event.Event{SpecVersion: "1.0", ID: "1", Source: "/s", Type: "a"}},
		{"every attribute", `{"specversion":"1.0","id":"1","source":"urn:shop","type":"orders.created-v_2","subject":"o-1",
			"time":"2024-05-01T12:00:00.0000005+02:00","datacontenttype":"application/json; charset=utf-8","dataschema":"https://schemas.example/orders/v1",
			"traceparent":"00-abc-def-01","priority":3,"replay":true,"data":{"a":[1,2]}}`,
			event.Event{SpecVersion: "1.0", ID: "1", Source: "urn:shop", Type: "orders.created-v_2", Subject: "o-1", Time: ts,
				DataContentType: "application/json; charset=utf-8", DataSchema: "https://schemas.example/orders/v1",
				Extensions: map[string]string{"traceparent": "00-abc-def-01", "priority": "3", "replay": "true"},
				Data:       []byte(`{"a":[1,2]}`)}},
		{"json string data stays JSON", `{"specversion":"1.0","id":"1","source":"/s","type":"a","data":"hi"}`,
			event.Event{SpecVersion: "1.0", ID: "1", Source: "/s", Type: "a", Data: []byte(`"hi"`)}},
		{"text data is unquoted", `{"specversion":"1.0","id":"1","source":"/s","type":"a","datacontenttype":"text/plain","data":"hi\n"}`,
			event.Event{SpecVersion: "1.0", ID: "1", Source: "/s", Type: "a", DataContentType: "text/plain", Data: []byte("hi\n")}},
		{"binary data_base64", `{"specversion":"1.0","id":"1","source":"/s","type":"a","datacontenttype":"application/octet-stream","data_base64":"AAEC"}`,
			event.Event{SpecVersion: "1.0", ID: "1", Source: "/s", Type: "a", DataContentType: "application/octet-stream", Data: []byte{0, 1, 2}}},
		{"null attributes are absent", `{"specversion":"1.0","id":"1","source":"/s","type":"a","subject":null,"data":null}`,
			event.Event{SpecVersion: "1.0", ID: "1", Source: "/s", Type: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := event.ParseStructured([]byte(tt.raw), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(tt.want.Time) {
				t.Errorf("time = %v, want %v", got.Time, tt.want.Time)
			}
			got.Time, tt.want.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseHTTPBinary(t *testing.T) {
	base := func() http.Header {
		h := http.Header{}
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Id", "b-1")
		h.Set("Ce-Source", "/bin")
		h.Set("Ce-Type", "orders.created")
		h.Set("Content-Type", "application/json")
		h.Set("Authorization", "Bearer secret")
		return h
	}
	t.Run("valid, percent-decoded, extension", func(t *testing.T) {
		h := base()
		h.Set("Ce-Subject", "caf%C3%A9 order")
		h.Set("Ce-Tenant", "acme")
		ev, err := event.ParseHTTPBinary(h, []byte(`{"x":1}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Subject != "café order" || ev.Extensions["tenant"] != "acme" || string(ev.Data) != `{"x":1}` {
			t.Errorf("got %+v", ev)
		}
		if _, ok := ev.Extensions["authorization"]; ok {
			t.Error("a non ce- header became an extension")
		}
	})
	rejects := []struct {
		name, header, value string
		body                string
		limit               int
		field, rule         string
	}{
		{"missing id", "Ce-Id", "", `{}`, 0, "id", event.RuleRequired},
		{"bad type", "Ce-Type", "Orders", `{}`, 0, "type", event.RuleTypeToken},
		{"bad time", "Ce-Time", "now", `{}`, 0, "time", event.RuleTimestamp},
		{"wrong specversion", "Ce-Specversion", "0.3", `{}`, 0, "specversion", event.RuleSpecVersion},
		{"body not JSON", "Content-Type", "application/json", `{"x":`, 0, "data", event.RuleDataJSON},
		{"too large", "Ce-Subject", "s", strings.Repeat("x", 3000), 2048, "", event.RuleMaxSize},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			if tt.value == "" {
				h.Del(tt.header)
			} else {
				h.Set(tt.header, tt.value)
			}
			_, err := event.ParseHTTPBinary(h, []byte(tt.body), tt.limit)
			var ee *event.Error
			if !errors.As(err, &ee) || ee.Field != tt.field || ee.Rule != tt.rule {
				t.Fatalf("err = %v, want field %q rule %q", err, tt.field, tt.rule)
			}
		})
	}
	t.Run("non-JSON body is fine for non-JSON content", func(t *testing.T) {
		h := base()
		h.Set("Content-Type", "text/plain")
		if _, err := event.ParseHTTPBinary(h, []byte("plain words"), 0); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBinaryRoundTrip(t *testing.T) {
	in, err := event.ParseStructured([]byte(`{"specversion":"1.0","id":"r-1","source":"/s","type":"orders.created",
		"subject":"o-9","time":"2024-05-01T12:00:00.123456789Z","dataschema":"orders.created/v2","traceparent":"00-1-2-01","data":{"n":1.5}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	h := in.Header()
	if got := h[event.HeaderMsgID]; len(got) != 1 || got[0] != "r-1" {
		t.Errorf("Nats-Msg-Id = %v, want r-1", got)
	}
	if got := h["ce-time"]; len(got) != 1 || got[0] != "2024-05-01T12:00:00.123456789Z" {
		t.Errorf("ce-time = %v", got)
	}
	if in.NATSSubject() != "evt.orders.created" {
		t.Errorf("subject = %s", in.NATSSubject())
	}
	out, err := event.ParseNATSBinary(h, in.Data, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The stored form always names its content type.
	in.DataContentType = event.DefaultContentType
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip changed the event:\n in  %+v\n out %+v", in, out)
	}
	again, err := out.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := event.ParseStructured(again, 0)
	if err != nil {
		t.Fatalf("structured form of a stored event does not parse: %v\n%s", err, again)
	}
	if !reflect.DeepEqual(out, back) {
		t.Errorf("structured round trip changed the event:\n %+v\n %+v", out, back)
	}
}

func TestParseBatch(t *testing.T) {
	entries, err := event.ParseBatch([]byte(`[` + valid + `, 5, {"x":1}]`))
	if err != nil || len(entries) != 3 {
		t.Fatalf("entries=%d err=%v", len(entries), err)
	}
	for _, raw := range []string{`{"a":1}`, `null`, `[1,`} {
		if _, err := event.ParseBatch([]byte(raw)); !errors.Is(err, event.ErrMalformed) {
			t.Errorf("ParseBatch(%s) = %v, want ErrMalformed", raw, err)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := event.NewID()
		if len(id) != 36 || id[14] != '7' || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		if id[:13] < prev[:min(13, len(prev))] {
			t.Fatalf("ids not time ordered: %s after %s", id, prev)
		}
		seen[id], prev = true, id
	}
}

// manyExtensions is a valid event with n short extension attributes: small as JSON, but
// over JetStream's header limit once each becomes a ce-* header.
func manyExtensions(n int) string {
	var b strings.Builder
	b.WriteString(`{"specversion":"1.0","id":"1","source":"/s","type":"a"`)
	for i := range n {
		fmt.Fprintf(&b, `,"x%d":"abcdefgh"`, i)
	}
	b.WriteString("}")
	return b.String()
}

// TestParseBinaryRefusesNonText: binary mode holds the same line as structured mode, in
// headers (percent-decoded) and in JSON data.
func TestParseBinaryRefusesNonText(t *testing.T) {
	base := func() http.Header {
		return http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"a"}, "Content-Type": {"application/json"}}
	}
	tests := []struct {
		name, header, value string
		body                string
		wantField           string
	}{
		{"id percent-encodes invalid UTF-8", "Ce-Id", "a%FFb", `{}`, "id"},
		{"id percent-encodes a surrogate", "Ce-Id", "%ED%A0%80", `{}`, "id"},
		{"extension raw invalid UTF-8", "Ce-Tenant", "\xff", `{}`, "tenant"},
		{"data lone surrogate", "", "", `{"a":"\udbff"}`, "data"},
		{"data invalid UTF-8", "", "", "{\"a\":\"\xc0\"}", "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			if tt.header != "" {
				h.Set(tt.header, tt.value)
			}
			_, err := event.ParseHTTPBinary(h, []byte(tt.body), 0)
			var ee *event.Error
			if !errors.As(err, &ee) || ee.Field != tt.wantField || ee.Rule != event.RuleText || !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("err %v (%+v), want field %s refused as %s", err, ee, tt.wantField, event.RuleText)
			}
		})
	}
}

// TestDraftKeepsWhatTheClientGave: a Draft's structured form carries attributes and data
// untouched, so the parser (the ingress) judges them; valid drafts parse to the event.
func TestDraftKeepsWhatTheClientGave(t *testing.T) {
	draft := func(data string, kv ...string) []byte {
		var d event.Draft
		for i := 0; i < len(kv); i += 2 {
			d.Set(kv[i], kv[i+1])
		}
		d.SetData([]byte(data))
		raw, _ := d.MarshalJSON()
		return raw
	}
	base := []string{"specversion", "1.0", "id", "d-1", "type", "a.b", "source", "/s"}
	refused := []struct {
		name      string
		raw       []byte
		wantField string
		wantRule  string
	}{
		{"extension named id", draft("{}", append(base, "id", "X")...), "id", event.RuleDuplicate},
		{"upper-case extension", draft("{}", append(base, "Bad", "1")...), "Bad", event.RuleExtension},
		{"newline in id", draft("{}", "specversion", "1.0", "id", "a\nb", "type", "a", "source", "/s"), "id", event.RuleControlChar},
		{"id not UTF-8", draft("{}", "specversion", "1.0", "id", "\xff", "type", "a", "source", "/s"), "id", event.RuleText},
		{"JSON content, not JSON data", draft("{", base...), "data", event.RuleDataJSON},
	}
	for _, tt := range refused {
		_, err := event.ParseStructured(tt.raw, 0)
		var ee *event.Error
		if !errors.As(err, &ee) || ee.Field != tt.wantField || ee.Rule != tt.wantRule {
			t.Errorf("%s: %s parsed with %v, want %s/%s", tt.name, tt.raw, err, tt.wantField, tt.wantRule)
		}
	}
	ev, err := event.ParseStructured(draft("raw \x00 bytes", append(base, "datacontenttype", "application/octet-stream", "tenant", `q"uote\`)...), 0)
	if err != nil || string(ev.Data) != "raw \x00 bytes" || ev.Extensions["tenant"] != `q"uote\` {
		t.Fatalf("binary data draft: %+v %v", ev, err)
	}
	ev, err = event.ParseStructured(draft(`{"a":[1]}`, base...), 0)
	if err != nil || string(ev.Data) != `{"a":[1]}` || ev.ID != "d-1" {
		t.Fatalf("JSON draft: %+v %v", ev, err)
	}
}

func TestTypePatterns(t *testing.T) {
	for _, tt := range []struct {
		pattern, typ string
		want         bool
	}{
		{"orders.created", "orders.created", true}, {"orders.created", "orders.updated", false},
		{"orders.*", "orders.created", true}, {"orders.*", "orders.created.v2", false}, {"orders.*", "orders", false},
		{"orders.>", "orders.created.v2", true}, {"orders.>", "orders", false}, {">", "a", true},
		{"*.created", "orders.created", true}, {"orders", "orders.created", false},
	} {
		if err := event.ValidateTypePattern(tt.pattern); err != nil {
			t.Fatal(err)
		}
		if got := event.MatchTypePattern(tt.pattern, tt.typ); got != tt.want {
			t.Errorf("MatchTypePattern(%q, %q) = %v", tt.pattern, tt.typ, got)
		}
	}
	for _, bad := range []string{"orders.>.x", "Orders", "a..b", ""} {
		if event.ValidateTypePattern(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

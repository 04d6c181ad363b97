package ingress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/natstest"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type fixture struct {
	nc  *nats.Conn // a client's TCP connection
	js  jetstream.JetStream
	ing *ingress.Ingress
	// ingressNC is the ingress's own in-process connection, as in jetmesh server.
	ingressNC *nats.Conn
	url       string
}

func setup(t testing.TB, mutate ...func(*ingress.Config)) *fixture {
	t.Helper()
	return setupWith(t, natstest.RunServer(t), nil, mutate...)
}

func setupWith(t testing.TB, s *natsserver.Server, opts []ingress.Option, mutate ...func(*ingress.Config)) *fixture {
	t.Helper()
	nc, js := natstest.JetStream(t, s)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	cfg := ingress.DefaultConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	inc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inc.Close)
	ing, err := ingress.New(inc, cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ing)
	t.Cleanup(hs.Close)
	return &fixture{nc: nc, js: js, ing: ing, ingressNC: inc, url: hs.URL}
}

func (f *fixture) post(t testing.TB, contentType string, header http.Header, body []byte) (int, *ingress.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var resp ingress.Response
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("response %d is not JSON: %s", res.StatusCode, raw)
	}
	return res.StatusCode, &resp
}

func (f *fixture) lastSeq(t testing.TB, stream string) uint64 {
	t.Helper()
	st, err := f.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.LastSeq
}

func (f *fixture) msg(t testing.TB, stream string, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	st, err := f.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatalf("%s #%d: %v", stream, seq, err)
	}
	return m
}

func structured(id, typ, data string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"/test","type":"` + typ + `","data":` + data + `}`
}

func TestRejectionsGoToDLQ(t *testing.T) {
	f := setup(t, func(c *ingress.Config) { c.MaxEventBytes = 2048 })
	binary := func(kv ...string) http.Header {
		h := http.Header{}
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Id", "b-1")
		h.Set("Ce-Source", "/bin")
		h.Set("Ce-Type", "orders.created")
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name        string
		contentType string
		header      http.Header
		body        string
		wantCode    string
		wantField   string
		wantText    string
	}{
		{"malformed JSON", ingress.MediaStructured, nil, `{"id":`, ingress.CodeMalformed, "", "not a JSON object"},
		{"missing id", ingress.MediaStructured, nil, `{"specversion":"1.0","source":"/s","type":"a"}`, ingress.CodeInvalidEvent, "id", "id: required"},
		{"bad type token", ingress.MediaStructured, nil, structured("x", "Orders.Created", "{}"), ingress.CodeInvalidEvent, "type", "[a-z0-9_-]+"},
		{"specversion not 1.0", ingress.MediaStructured, nil, strings.Replace(structured("x", "a", "{}"), `"1.0"`, `"0.3"`, 1), ingress.CodeInvalidEvent, "specversion", `must be "1.0"`},
		{"data not JSON (binary mode)", "application/json", binary(), `{"amount":`, ingress.CodeInvalidEvent, "data", "not valid JSON"},
		{"bad time (binary mode)", "application/json", binary("Ce-Time", "noon"), `{}`, ingress.CodeInvalidEvent, "time", "RFC 3339"},
		{"over the size limit", ingress.MediaStructured, nil, structured("big", "a", `"`+strings.Repeat("x", 3000)+`"`), ingress.CodeTooLarge, "", "over the limit of 2048"},
		{"plain JSON, not an object", "application/json", nil, `"hello"`, ingress.CodeMalformed, "", "got a JSON string"},
		// Once decoded to U+FFFD, \udbfex and \udbffx were the same id: the second was
		// answered "duplicate" and dropped.
		{"id with a lone surrogate", ingress.MediaStructured, nil, structured(`\udbffx`, "a", "{}"), ingress.CodeInvalidEvent, "id", "lone UTF-16 surrogate"},
		{"id not UTF-8", ingress.MediaStructured, nil, structured("a\xffb", "a", "{}"), ingress.CodeInvalidEvent, "id", "not valid UTF-8"},
		{"id not UTF-8 (binary mode)", "application/json", binary("Ce-Id", "a%FEb"), `{}`, ingress.CodeInvalidEvent, "id", "not valid UTF-8"},
		{"data not UTF-8", ingress.MediaStructured, nil, structured("x", "a", "{\"k\":\"\xc3\"}"), ingress.CodeInvalidEvent, "data", "not valid UTF-8"},
		{"data with a lone surrogate (binary mode)", "application/json", binary(), `{"k":"\udc01"}`, ingress.CodeInvalidEvent, "data", "lone UTF-16 surrogate"},
		{"duplicate id", ingress.MediaStructured, nil, `{"specversion":"1.0","id":"1","source":"/s","type":"a","id":"2"}`, ingress.CodeInvalidEvent, "id", "more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.lastSeq(t, bus.EventsStream)
			status, resp := f.post(t, tt.contentType, tt.header, []byte(tt.body))
			if status != http.StatusBadRequest || resp.FailedEntryCount != 1 || len(resp.Entries) != 1 {
				t.Fatalf("status %d, response %+v", status, resp)
			}
			got := resp.Entries[0]
			if got.ErrorCode != tt.wantCode || got.Field != tt.wantField || !strings.Contains(got.ErrorMessage, tt.wantText) {
				t.Errorf("entry = %+v, want code %s field %q text %q", got, tt.wantCode, tt.wantField, tt.wantText)
			}
			if after := f.lastSeq(t, bus.EventsStream); after != before {
				t.Errorf("a rejected event reached EVENTS (%d -> %d)", before, after)
			}
			m := f.msg(t, bus.DLQStream, f.lastSeq(t, bus.DLQStream))
			rec, err := dlq.Parse(m.Header, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Reason != tt.wantCode || rec.Error != got.ErrorMessage || rec.Field != tt.wantField || rec.Origin != "http" {
				t.Errorf("DLQ record = %+v", rec)
			}
			if m.Subject != "dlq.ingress."+tt.wantCode {
				t.Errorf("DLQ subject = %s", m.Subject)
			}
			wantBody := tt.body
			if tt.wantCode == ingress.CodeTooLarge {
				wantBody = tt.body[:2048]
				if rec.TruncatedFrom != len(tt.body) {
					t.Errorf("TruncatedFrom = %d, want %d", rec.TruncatedFrom, len(tt.body))
				}
			}
			if string(rec.Body) != wantBody {
				t.Errorf("DLQ body = %q, want the original %q", rec.Body, wantBody)
			}
			if tt.header != nil && rec.Header["ce-id"] == nil {
				t.Errorf("binary-mode DLQ record lost its ce-* headers: %v", rec.Header)
			}
		})
	}
}

// TestHeaderLimitRefusedAtParse: an event whose attributes would exceed JetStream's header
// limit once stored is refused as too large, naming the limit, with a DLQ record (it used
// to be answered 503 "retry" forever and counted unavailable).
func TestHeaderLimitRefusedAtParse(t *testing.T) {
	f := setup(t)
	var ext strings.Builder
	bin := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"h-1"}, "Ce-Source": {"/s"}, "Ce-Type": {"a"}}
	for i := range 4000 {
		fmt.Fprintf(&ext, `,"x%d":"abcdefgh"`, i)
		bin.Set(fmt.Sprintf("Ce-X%d", i), "abcdefgh")
	}
	requests := []struct {
		name, contentType string
		header            http.Header
		body              string
	}{
		{"structured", ingress.MediaStructured, nil, `{"specversion":"1.0","id":"h-1","source":"/s","type":"a"` + ext.String() + `}`},
		{"binary", "application/json", bin, `{}`},
	}
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			before := f.lastSeq(t, bus.DLQStream)
			status, resp := f.post(t, r.contentType, r.header, []byte(r.body))
			if status != http.StatusBadRequest || len(resp.Entries) != 1 {
				t.Fatalf("status %d, response %+v", status, resp)
			}
			got := resp.Entries[0]
			if got.ErrorCode != ingress.CodeTooLarge || !strings.Contains(got.ErrorMessage, "over the limit of 61440 bytes") {
				t.Fatalf("entry %+v", got)
			}
			after := f.lastSeq(t, bus.DLQStream)
			if after != before+1 {
				t.Fatalf("DLQ went from %d to %d records, want one more", before, after)
			}
			m := f.msg(t, bus.DLQStream, after)
			rec, err := dlq.Parse(m.Header, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Reason != ingress.CodeTooLarge {
				t.Errorf("record %+v", rec)
			}
			if r.header != nil && (rec.HeadersDropped == 0 || rec.Header["ce-id"] == nil) {
				t.Errorf("binary record: %d headers dropped, ce-id %v; want the event named and the excess dropped", rec.HeadersDropped, rec.Header["ce-id"])
			}
		})
	}
}

func TestAcceptedIsStored(t *testing.T) {
	f := setup(t)
	h := http.Header{}
	h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	status, resp := f.post(t, ingress.MediaStructured, h, []byte(structured("s-1", "orders.created", `{"amount":120}`)))
	if status != http.StatusOK || resp.FailedEntryCount != 0 || resp.Entries[0].ID != "s-1" || resp.Entries[0].Sequence == 0 {
		t.Fatalf("status %d, response %+v", status, resp)
	}
	m := f.msg(t, bus.EventsStream, resp.Entries[0].Sequence)
	if m.Subject != "evt.orders.created" || string(m.Data) != `{"amount":120}` {
		t.Errorf("stored %s %q", m.Subject, m.Data)
	}
	for k, want := range map[string]string{"ce-id": "s-1", "ce-type": "orders.created", "ce-source": "/test", "ce-specversion": "1.0",
		"Nats-Msg-Id": "s-1", "Content-Type": "application/json", "ce-traceparent": h.Get("Traceparent")} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Header.Get("ce-time")); err != nil {
		t.Errorf("ce-time not set by the ingress: %v", err)
	}
	if len(m.Header) != 8 {
		t.Errorf("stored headers are not exactly the binary form: %v", m.Header)
	}
}

// TestTraceHeadersAreValidated: trace context taken from transport headers obeys the same
// attribute rules as the event's own; a bad value is dropped, never stored.
func TestTraceHeadersAreValidated(t *testing.T) {
	f := setup(t)
	h := http.Header{}
	h["Traceparent"] = []string{"00-abc\tdef-01"} // a tab is legal in an HTTP header value
	status, resp := f.post(t, ingress.MediaStructured, h, []byte(structured("tr-1", "orders.created", `{}`)))
	if status != http.StatusOK {
		t.Fatalf("status %d, %+v", status, resp)
	}
	m := f.msg(t, bus.EventsStream, resp.Entries[0].Sequence)
	if v := m.Header.Get("ce-traceparent"); v != "" {
		t.Errorf("a traceparent with a control character was stored: %q", v)
	}
	if _, err := event.ParseNATSBinary(m.Header, m.Data, 0); err != nil {
		t.Errorf("the stored event does not parse back: %v", err)
	}
}

func TestDuplicateStoredOnce(t *testing.T) {
	f := setup(t)
	body := []byte(structured("dup-1", "orders.created", `{}`))
	_, first := f.post(t, ingress.MediaStructured, nil, body)
	status, second := f.post(t, ingress.MediaStructured, nil, body)
	if status != http.StatusOK || !second.Entries[0].Duplicate || second.Entries[0].Sequence != first.Entries[0].Sequence {
		t.Fatalf("second publish: %d %+v (first %+v)", status, second, first)
	}
	if first.Entries[0].Duplicate {
		t.Error("first publish reported as duplicate")
	}
	if n := f.lastSeq(t, bus.EventsStream); n != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", n)
	}
}

func TestBatch(t *testing.T) {
	f := setup(t, func(c *ingress.Config) { c.MaxBatchEntries = 3 })
	t.Run("partial failure is 207 with per-entry results", func(t *testing.T) {
		body := `[` + structured("b-1", "a", "1") + `, {"specversion":"1.0"}, ` + structured("b-2", "a.b", `{"x":[1]}`) + `]`
		status, resp := f.post(t, ingress.MediaBatch, nil, []byte(body))
		if status != http.StatusMultiStatus || resp.FailedEntryCount != 1 || len(resp.Entries) != 3 {
			t.Fatalf("status %d, %+v", status, resp)
		}
		if resp.Entries[0].ID != "b-1" || resp.Entries[1].Field != "id" || resp.Entries[2].ID != "b-2" {
			t.Errorf("entries %+v", resp.Entries)
		}
	})
	t.Run("plain JSON array is a batch", func(t *testing.T) {
		status, resp := f.post(t, "application/json", nil, []byte(`[`+structured("b-3", "a", "1")+`]`))
		if status != http.StatusOK || resp.Entries[0].ID != "b-3" {
			t.Fatalf("status %d, %+v", status, resp)
		}
	})
	requestErrors := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"not an array", ingress.MediaBatch, `{"a":1}`, 400, ingress.CodeMalformed},
		{"empty", ingress.MediaBatch, `[]`, 400, ingress.CodeMalformed},
		{"too many entries", ingress.MediaBatch, `[{},{},{},{}]`, 413, ingress.CodeTooManyEntries},
		{"unsupported media type", "text/plain", `hello`, 415, ingress.CodeUnsupportedMediaType},
		{"unreadable media type", "a/b; =", `hello`, 415, ingress.CodeUnsupportedMediaType},
	}
	for _, tt := range requestErrors {
		t.Run(tt.name, func(t *testing.T) {
			dlqBefore := f.lastSeq(t, bus.DLQStream)
			status, resp := f.post(t, tt.contentType, nil, []byte(tt.body))
			if status != tt.status || resp.Error == nil || resp.Error.Code != tt.code {
				t.Fatalf("status %d, %+v", status, resp)
			}
			m := f.msg(t, bus.DLQStream, f.lastSeq(t, bus.DLQStream))
			if f.lastSeq(t, bus.DLQStream) != dlqBefore+1 || m.Header.Get(dlq.HeaderReason) != tt.code || string(m.Data) != tt.body {
				t.Errorf("DLQ record %s %q %v", m.Subject, m.Data, m.Header)
			}
		})
	}
}

func TestRequestTooLarge(t *testing.T) {
	f := setup(t, func(c *ingress.Config) { c.MaxEventBytes, c.MaxRequestBytes = 1024, 4096 })
	// Announced by Content-Length: refused before a byte of the body is read.
	status, resp := f.post(t, ingress.MediaBatch, nil, bytes.Repeat([]byte("x"), 10000))
	if status != http.StatusRequestEntityTooLarge || resp.Error == nil || resp.Error.Code != ingress.CodeTooLarge ||
		!strings.Contains(resp.Error.Message, "10000 bytes (Content-Length), over the limit of 4096") {
		t.Fatalf("status %d, %+v", status, resp)
	}
	m := f.msg(t, bus.DLQStream, f.lastSeq(t, bus.DLQStream))
	rec, err := dlq.Parse(m.Header, m.Data)
	if err != nil || rec.Reason != ingress.CodeTooLarge || len(rec.Body) != 0 || rec.TruncatedFrom != 0 {
		t.Fatalf("DLQ record %+v, %v", rec, err)
	}
	// Chunked, so the size shows only while reading: the record keeps a part and says so,
	// without claiming an original size it does not know.
	req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/events", io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("y"), 10000))))
	req.ContentLength = -1
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	m = f.msg(t, bus.DLQStream, f.lastSeq(t, bus.DLQStream))
	rec, err = dlq.Parse(m.Header, m.Data)
	if err != nil || res.StatusCode != http.StatusRequestEntityTooLarge || len(rec.Body) != 1024 || rec.TruncatedFrom != 0 ||
		!strings.Contains(rec.Error, "keeps its first 1024 bytes") {
		t.Fatalf("chunked: status %d, DLQ record %+v, %v", res.StatusCode, rec, err)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := setup(t)
	res, err := http.Get(f.url + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d %v", res.StatusCode, res.Header)
	}
}

func TestNATSRequestReply(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	// No wait and no retry: Listen returns once a request finds the subscription.
	serve, err := f.ing.Listen(ctx, f.ingressNC)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- serve() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	client := ingress.NewClient(f.nc)

	good := &event.Event{SpecVersion: "1.0", ID: "n-1", Source: "/nats", Type: "orders.created", Data: []byte(`{"a":"<&>"}`)}
	bad := &event.Event{SpecVersion: "1.0", ID: "n-2", Source: "/nats", Type: "BAD"}
	resp, err := client.Publish(ctx, good, bad)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusMultiStatus || resp.Entries[0].ID != "n-1" || resp.Entries[1].Field != "type" {
		t.Fatalf("%+v", resp)
	}
	m := f.msg(t, bus.EventsStream, resp.Entries[0].Sequence)
	if string(m.Data) != `{"a":"<&>"}` {
		t.Errorf("data changed in transit: %q", m.Data)
	}
	rec := f.msg(t, bus.DLQStream, f.lastSeq(t, bus.DLQStream))
	if rec.Header.Get(dlq.HeaderOrigin) != "nats" || rec.Header.Get(dlq.HeaderField) != "type" {
		t.Errorf("DLQ record headers %v", rec.Header)
	}

	// Binary mode over NATS: the stored form itself, as `jetmesh publish` sends it.
	msg := nats.NewMsg(bus.IngressSubject)
	msg.Header.Set("ce-specversion", "1.0")
	msg.Header.Set("ce-id", "n-3")
	msg.Header.Set("ce-source", "/nats")
	msg.Header.Set("ce-type", "orders.paid")
	msg.Data = []byte(`{"paid":true}`)
	resp, err = client.Send(ctx, msg)
	if err != nil || resp.StatusCode() != http.StatusOK || resp.Entries[0].ID != "n-3" {
		t.Fatalf("binary over NATS: %+v %v", resp, err)
	}
}

func TestClientNoIngress(t *testing.T) {
	s := natstest.RunServer(t)
	nc := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ingress.NewClient(nc).Publish(ctx, &event.Event{SpecVersion: "1.0", ID: "1", Source: "/s", Type: "a"})
	if !errors.Is(err, ingress.ErrNoIngress) {
		t.Fatalf("err = %v, want ErrNoIngress", err)
	}
}

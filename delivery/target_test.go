package delivery_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/event"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	jsonHeader := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		want       delivery.Outcome
		retryAfter time.Duration
		errHas     string
	}{
		{"200", 200, nil, "", delivery.Delivered, 0, ""},
		{"204", 204, nil, "", delivery.Delivered, 0, ""},
		{"202 with other json", 202, jsonHeader, `{"status":"SUCCESS"}`, delivery.Delivered, 0, ""},
		{"200 RETRY", 200, jsonHeader, `{"status":"RETRY"}`, delivery.Retry, 0, "RETRY"},
		{"200 retry lowercase", 200, jsonHeader, `{"status":"retry"}`, delivery.Retry, 0, "RETRY"},
		{"200 DROP", 200, jsonHeader, `{"status":"DROP"}`, delivery.Reject, 0, "DROP"},
		{"200 DROP as text is just a body", 200, http.Header{"Content-Type": {"text/plain"}}, `{"status":"DROP"}`, delivery.Delivered, 0, ""},
		{"200 broken json", 200, jsonHeader, `{"status":`, delivery.Delivered, 0, ""},
		{"404", 404, nil, "no route", delivery.Retry, 0, "404: no route"},
		{"408", 408, nil, "", delivery.Retry, 0, "408 Request Timeout"},
		{"409", 409, nil, "", delivery.Retry, 0, ""},
		{"425", 425, nil, "", delivery.Retry, 0, ""},
		{"429 seconds", 429, http.Header{"Retry-After": {"7"}}, "", delivery.Retry, 7 * time.Second, ""},
		{"503 date", 503, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, "", delivery.Retry, 90 * time.Second, ""},
		{"503 past date", 503, http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, "", delivery.Retry, 0, ""},
		{"500 junk retry-after", 500, http.Header{"Retry-After": {"soon"}}, "boom", delivery.Retry, 0, "500: boom"},
		{"500 huge retry-after capped at a day", 500, http.Header{"Retry-After": {"99999999999"}}, "", delivery.Retry, 24 * time.Hour, ""},
		{"400", 400, nil, "bad total", delivery.Reject, 0, "400: bad total"},
		{"401", 401, nil, "", delivery.Reject, 0, ""},
		{"403", 403, nil, "", delivery.Reject, 0, ""},
		{"410", 410, nil, "", delivery.Reject, 0, ""},
		{"413", 413, nil, "", delivery.Reject, 0, ""},
		{"422", 422, nil, "", delivery.Reject, 0, ""},
		{"304", 304, nil, "", delivery.Reject, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got := delivery.Classify(tt.status, h, []byte(tt.body), now)
			if got.Outcome != tt.want || got.RetryAfter != tt.retryAfter || got.Status != tt.status {
				t.Fatalf("got %+v, want %v retryAfter %v", got, tt.want, tt.retryAfter)
			}
			if !strings.Contains(got.Error, tt.errHas) {
				t.Fatalf("error %q lacks %q", got.Error, tt.errHas)
			}
		})
	}
}

// TestBinaryHeadersRoundTrip: what a sidecar sends is what a CloudEvents HTTP receiver
// (here jetmesh's own ingress parser) reads back, odd characters included.
func TestBinaryHeadersRoundTrip(t *testing.T) {
	ev := &event.Event{
		ID: "id-1", Source: "/shop/eu west", SpecVersion: "1.0", Type: "orders.created",
		Subject: `ünïcode "quoted" 100%`, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		DataContentType: "application/json", DataSchema: "orders.created/v1",
		Extensions: map[string]string{"tenant": "acme", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		Data:       []byte(`{"total":12}`),
	}
	h := http.Header{}
	delivery.SetBinaryHeaders(h, ev.Header())
	if h.Get("Traceparent") != ev.Extensions["traceparent"] || h.Get("Ce-Traceparent") != "" {
		t.Fatalf("trace headers: %v", h)
	}
	if h.Get("Nats-Msg-Id") != "" {
		t.Fatal("a NATS header leaked into the HTTP request")
	}
	got, err := event.ParseHTTPBinary(h, ev.Data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != ev.Subject || got.Source != ev.Source || !got.Time.Equal(ev.Time) || got.Extensions["tenant"] != "acme" || got.DataSchema != ev.DataSchema {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestFreshTraceparent(t *testing.T) {
	h := http.Header{}
	delivery.SetBinaryHeaders(h, map[string][]string{"ce-id": {"x"}})
	tp := h.Get("Traceparent")
	if len(tp) != 55 || !strings.HasPrefix(tp, "00-") || !strings.HasSuffix(tp, "-01") {
		t.Fatalf("traceparent %q", tp)
	}
	if tp == delivery.NewTraceparent() {
		t.Fatal("trace ids repeat")
	}
}

// FuzzClassify: whatever a handler answers (status, Retry-After, content type, body), the
// sidecar reaches a decision without panicking, and delays stay within a day.
func FuzzClassify(f *testing.F) {
	f.Add(200, "", "application/json", `{"status":"DROP"}`)
	f.Add(503, "120", "", "")
	f.Add(429, "Wed, 21 Oct 2026 07:28:00 GMT", "text/plain", "slow down")
	f.Add(700, "-5", "application/cloudevents+json; charset=utf-8", `{"status":`)
	f.Fuzz(func(t *testing.T, status int, retry, contentType, body string) {
		h := http.Header{"Retry-After": {retry}, "Content-Type": {contentType}}
		r := delivery.Classify(status, h, []byte(body), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
		if r.Outcome != delivery.Delivered && r.Outcome != delivery.Retry && r.Outcome != delivery.Reject {
			t.Fatalf("outcome %v", r.Outcome)
		}
		if r.RetryAfter < 0 || r.RetryAfter > 24*time.Hour {
			t.Fatalf("retry after %v", r.RetryAfter)
		}
		if r.Outcome != delivery.Delivered && r.Error == "" {
			t.Fatal("a failure without a reason")
		}
	})
}

func ExampleClassify() {
	for _, status := range []int{204, 503, 422} {
		fmt.Println(status, delivery.Classify(status, http.Header{}, nil, time.Now()).Outcome)
	}
	// Output:
	// 204 delivered
	// 503 retry
	// 422 reject
}

// TestSendTransportFailures: a connection that cannot be made is Unreachable (the handler
// never saw the event, so no attempt is spent); a connection cut after the request was
// sent, or a handler too slow, is Retry (it may have acted on it).
func TestSendTransportFailures(t *testing.T) {
	send := func(url string, timeout time.Duration) delivery.Result {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		target := &delivery.HTTPTarget{URL: url, Client: delivery.NewHTTPClient(1)}
		return target.Send(ctx, map[string][]string{"ce-id": {"x"}}, []byte(`{}`))
	}

	if res := send("http://"+deadAddr(t), 5*time.Second); res.Outcome != delivery.Unreachable || !strings.Contains(res.Error, "refused") {
		t.Errorf("nothing listening: %v %q, want unreachable, connection refused", res.Outcome, res.Error)
	}

	cut, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	go func() {
		for {
			c, err := cut.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4096)) // the request arrived
			c.Close()
		}
	}()
	if res := send("http://"+cut.Addr().String(), 5*time.Second); res.Outcome != delivery.Retry {
		t.Errorf("connection cut after the request: %v %q, want retry", res.Outcome, res.Error)
	}

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client leaving
		<-r.Context().Done()
	}))
	defer slow.Close()
	if res := send(slow.URL, 100*time.Millisecond); res.Outcome != delivery.Retry || !strings.Contains(res.Error, "timed out") {
		t.Errorf("slow handler: %v %q, want retry, timed out", res.Outcome, res.Error)
	}
}

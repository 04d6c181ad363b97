package dlq_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/dlq"
	"github.com/nats-io/nats.go"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	in := &dlq.Record{
		Reason: dlq.ReasonDeliveryFailed, Error: "handler said:\r\nboom", Rule: "billing-big-orders",
		Attempts: 5, LastStatus: 503, Time: at, Origin: "sidecar/billing",
		Header: map[string][]string{"ce-id": {"e-1"}, "Content-Type": {"application/json"}, "Nats-Msg-Id": {"e-1"}, "Jetmesh-Dlq-Reason": {"forged"}},
		Body:   []byte(`{"amount":120}`),
	}
	msg := in.Msg()
	if msg.Subject != "dlq.rule.billing-big-orders.delivery_failed" {
		t.Errorf("subject %s", msg.Subject)
	}
	if msg.Header.Get("Nats-Msg-Id") != "" {
		t.Error("the original Nats-Msg-Id was kept: DLQ dedup would drop records of other rules")
	}
	if strings.ContainsAny(msg.Header.Get(dlq.HeaderError), "\r\n") {
		t.Errorf("control characters reached a header: %q", msg.Header.Get(dlq.HeaderError))
	}
	out, err := dlq.Parse(msg.Header, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if out.Reason != in.Reason || out.Rule != in.Rule || out.Attempts != 5 || out.LastStatus != 503 || !out.Time.Equal(at) ||
		out.Origin != in.Origin || out.Error != "handler said:  boom" || string(out.Body) != string(in.Body) || out.Header["ce-id"][0] != "e-1" {
		t.Errorf("round trip: %+v", out)
	}
	if _, ok := out.Header["Jetmesh-Dlq-Reason"]; ok {
		t.Error("metadata leaked into the original headers")
	}
}

func TestIngressSubjectAndTruncate(t *testing.T) {
	r := &dlq.Record{Reason: dlq.ReasonTooLarge, Body: make([]byte, 100), Error: strings.Repeat("é", 2000)}
	r.Truncate(10)
	msg := r.Msg()
	if msg.Subject != "dlq.ingress.too_large" || len(msg.Data) != 10 || msg.Header.Get(dlq.HeaderTruncated) != "100" {
		t.Errorf("%s %d %v", msg.Subject, len(msg.Data), msg.Header)
	}
	if n := len(msg.Header.Get(dlq.HeaderError)); n > 1100 {
		t.Errorf("error header is %d bytes", n)
	}
}

func TestParseRefusesNonRecords(t *testing.T) {
	if _, err := dlq.Parse(nats.Header{"ce-id": {"x"}}, nil); !errors.Is(err, dlq.ErrNotRecord) {
		t.Errorf("err = %v", err)
	}
	if _, err := dlq.Parse(nats.Header{dlq.HeaderReason: {"x"}, dlq.HeaderAttempts: {"many"}}, nil); err == nil {
		t.Error("bad attempts accepted")
	}
}

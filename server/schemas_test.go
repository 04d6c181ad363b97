package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/schemas"
	"github.com/jetmesh/jetmesh/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func publishHTTP(t *testing.T, base, body string) (int, ingress.Response) {
	t.Helper()
	res, err := http.Post(base+"/v1/events", ingress.MediaStructured, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var resp ingress.Response
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("response %s: %v", raw, err)
	}
	return res.StatusCode, resp
}

// TestSchemasValidateLive: with no schema the type is refused; a version pushed while the
// server runs takes effect without restart; data that breaks it is refused and kept in the
// DLQ with the validator's reason.
func TestSchemasValidateLive(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.NATSAddr, cfg.HTTPAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	srv, _ := startWith(t, cfg)
	base := "http://" + srv.HTTPAddr()
	event := func(id, data string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/t","type":"orders.created","data":` + data + `}`
	}

	code, resp := publishHTTP(t, base, event("u-1", `{"amount":5}`))
	if code != http.StatusBadRequest || resp.Entries[0].ErrorCode != ingress.CodeUnknownType {
		t.Fatalf("unknown type: %d %+v", code, resp)
	}

	js := clientJS(t, srv)
	ctx := context.Background()
	reg, err := schemas.OpenRegistry(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	pushed := time.Now()
	if err := reg.Push(ctx, []schemas.Document{{Type: "orders.created", Version: 1,
		Raw: []byte(`{"type":"object","properties":{"amount":{"type":"number","minimum":0}},"required":["amount"]}`)}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		code, resp = publishHTTP(t, base, event(fmt.Sprintf("v-%d", i), `{"amount":5}`))
		if code == http.StatusOK {
			break
		}
		if time.Since(pushed) > 10*time.Second {
			t.Fatalf("schema not in force 10s after the push: %d %+v", code, resp)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("schema in force %v after the push", time.Since(pushed).Round(time.Millisecond))

	code, resp = publishHTTP(t, base, event("bad-1", `{"amount":-1}`))
	if code != http.StatusBadRequest || resp.Entries[0].ErrorCode != ingress.CodeSchemaInvalid ||
		!strings.Contains(resp.Entries[0].ErrorMessage, "/amount: minimum") {
		t.Fatalf("invalid data: %d %+v", code, resp)
	}

	st, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	// The last unknown_type record may be one of the polls above; any of them will do.
	for reason, id := range map[string]string{dlq.ReasonUnknownType: `"orders.created"`, dlq.ReasonSchemaInvalid: `"bad-1"`} {
		m, err := st.GetLastMsgForSubject(ctx, "dlq.ingress."+reason)
		if err != nil {
			t.Fatalf("no DLQ record for %s: %v", reason, err)
		}
		rec, err := dlq.Parse(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Reason != reason || !strings.Contains(string(rec.Body), id) || rec.Error == "" {
			t.Errorf("DLQ record for %s: %+v", reason, rec)
		}
	}
}

// clientJS is a JetStream client on a TCP connection to the server, as the CLI has;
// closed when the test ends.
func clientJS(t *testing.T, srv *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// applyRule stores rules through the server's NATS and waits until the server has made
// every rule's consumer.
func applyRule(t *testing.T, srv *server.Server, yaml string) {
	t.Helper()
	js := clientJS(t, srv)
	ctx := context.Background()
	store, err := rules.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.ParseFile("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(ctx, rs, rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := js.Consumer(ctx, bus.EventsStream, r.ConsumerName()); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no consumer for rule %s after 10s", r.Name)
			}
		}
	}
}

package ingress

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/natstest"
	dto "github.com/prometheus/client_model/go"
)

// TestDLQFailuresCountOnlyRealOnes: a caller that leaves before the DLQ write is
// acknowledged does not make a written record count as a failure (1,021 records were
// counted failed, all written, after clients went away).
func TestDLQFailuresCountOnlyRealOnes(t *testing.T) {
	nc, js := natstest.JetStream(t, natstest.RunServer(t))
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	in, err := New(nc, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	const n = 50
	for range n {
		in.process(gone, request{origin: "http", contentType: MediaStructured, body: []byte(`{"id":`)})
		in.process(gone, request{origin: "http", contentType: "text/plain", body: []byte(`x`)})
	}
	var m dto.Metric
	if err := in.metrics.dlqFailed.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 0 {
		t.Errorf("%v DLQ write failures counted, want 0", got)
	}
	st, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 2*n {
		t.Errorf("%d DLQ records, want %d", info.State.Msgs, 2*n)
	}
}

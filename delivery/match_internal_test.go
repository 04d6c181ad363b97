package delivery

import (
	"log/slog"
	"testing"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/rules"
)

func residualDeliverer(tb testing.TB, pattern string) *Deliverer {
	tb.Helper()
	d, err := New(nil, rules.Rule{Name: "r", Pattern: []byte(pattern), Target: rules.Target{Service: "s"}}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

var storedOrder = (&event.Event{ID: "o-1", Source: "/shop", SpecVersion: "1.0", Type: "orders.created",
	Data: []byte(`{"orderId":"o-1","customerId":"c-7","total":{"cents":12000,"currency":"EUR"},"lines":[{"sku":"a","qty":2},{"sku":"b","qty":1}]}`)}).Header()

func TestResidualMatch(t *testing.T) {
	data := []byte(`{"orderId":"o-1","customerId":"c-7","total":{"cents":12000,"currency":"EUR"},"lines":[{"sku":"a","qty":2},{"sku":"b","qty":1}]}`)
	tests := []struct {
		pattern  string
		residual bool
		want     bool
	}{
		{`{"type":["orders.created"]}`, false, true},
		{`{"type":["orders.created"],"source":["/shop"]}`, true, true},
		{`{"type":["orders.created"],"source":["/other"]}`, true, false},
		{`{"type":["orders.created"],"data":{"total":{"cents":[{"numeric":[">=",10000]}]}}}`, true, true},
		{`{"type":["orders.created"],"data":{"total":{"cents":[{"numeric":["<",10000]}]}}}`, true, false},
		{`{"type":["orders.created"],"data":{"lines":{"sku":["b"]}}}`, true, true},
		{`{"datacontenttype":["application/json"],"specversion":["1.0"]}`, true, true},
	}
	for _, tt := range tests {
		d := residualDeliverer(t, tt.pattern)
		if d.residual != tt.residual {
			t.Errorf("%s: residual %v", tt.pattern, d.residual)
		}
		if got := d.matches(storedOrder, data); got != tt.want {
			t.Errorf("%s: matches %v", tt.pattern, got)
		}
	}
}

// BenchmarkResidualMatch is the per-event cost of evaluating what the filter subjects could
// not: rebuilding the structured event from the stored headers, decoding data, matching.
func BenchmarkResidualMatch(b *testing.B) {
	data := []byte(`{"orderId":"o-1","customerId":"c-7","total":{"cents":12000,"currency":"EUR"},"lines":[{"sku":"a","qty":2},{"sku":"b","qty":1}]}`)
	for _, bc := range []struct{ name, pattern string }{
		{"attributes", `{"type":["orders.created"],"source":["/shop"]}`},
		{"data", `{"type":["orders.created"],"data":{"total":{"cents":[{"numeric":[">=",10000]}]}}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := residualDeliverer(b, bc.pattern)
			b.ReportAllocs()
			for b.Loop() {
				if !d.matches(storedOrder, data) {
					b.Fatal("no match")
				}
			}
		})
	}
}

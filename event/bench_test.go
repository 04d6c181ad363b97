package event_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/event"
)

func smallEvent() []byte {
	return []byte(`{"specversion":"1.0","id":"01a20525-5b01-703a-bf60-8170300408d5","source":"/shop/checkout","type":"orders.created",
		"subject":"o-1","time":"2026-11-22T12:00:00Z","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"data":{"orderId":"o-1","customer":"c-42","amount":120.5,"currency":"EUR","items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}}`)
}

func largeEvent() []byte {
	items := make([]string, 0, 200)
	for i := range 200 {
		items = append(items, `{"sku":"sku-`+strings.Repeat("x", 10)+`","qty":`+string(rune('0'+i%10))+`}`)
	}
	return []byte(`{"specversion":"1.0","id":"big","source":"/shop","type":"orders.created","data":{"items":[` + strings.Join(items, ",") + `]}}`)
}

func BenchmarkParseStructured(b *testing.B) {
	for _, bc := range []struct {
		name string
		raw  []byte
	}{{"small", smallEvent()}, {"10KiB", largeEvent()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.raw)))
			for b.Loop() {
				if _, err := event.ParseStructured(bc.raw, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeBinary(b *testing.B) {
	ev, err := event.ParseStructured(smallEvent(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ev.Header()
	}
}

func BenchmarkParseNATSBinary(b *testing.B) {
	ev, err := event.ParseStructured(smallEvent(), 0)
	if err != nil {
		b.Fatal(err)
	}
	h := ev.Header()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.ParseNATSBinary(h, ev.Data, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalJSON(b *testing.B) {
	ev, err := event.ParseStructured(smallEvent(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}

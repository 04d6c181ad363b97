package rules_test

import (
	"fmt"
	"testing"

	"github.com/jetmesh/jetmesh/rules"
)

const benchEvent = `{"specversion":"1.0","id":"01J9","source":"/shop/eu","type":"orders.created","time":"2026-11-22T10:00:00Z",
"data":{"orderId":"o-1","customer":{"id":"c-42","tier":"gold","country":"DE"},"amount":120.5,"currency":"EUR","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}]}}`

// benchRules returns n realistic rules over n/4 event types: exact types with a data
// condition, exact sources, and one in ten with only a type prefix, which has no exact
// anchor and is tried for every event.
func benchRules(n int) []*rules.Pattern {
	out := make([]*rules.Pattern, 0, n)
	for i := range n {
		typ := fmt.Sprintf("svc%d.event%d", i%(n/4+1), i%7)
		if i == 0 {
			typ = "orders.created"
		}
		var p string
		switch {
		case i%10 == 9:
			p = fmt.Sprintf(`{"type":[{"prefix":"svc%d."}]}`, i)
		case i%4 == 0:
			p = fmt.Sprintf(`{"type":[%q],"data":{"amount":[{"numeric":[">=",%d]}]}}`, typ, i%200)
		case i%4 == 1:
			p = fmt.Sprintf(`{"type":[%q],"data":{"customer":{"tier":["gold","platinum"]}}}`, typ)
		case i%4 == 2:
			p = fmt.Sprintf(`{"type":[%q,"orders.cancelled"],"source":[{"prefix":"/shop"}]}`, typ)
		default:
			p = fmt.Sprintf(`{"source":["/svc%d"],"data":{"currency":[{"anything-but":["USD"]}]}}`, i)
		}
		out = append(out, rules.MustCompile(p))
	}
	return out
}

// BenchmarkMatch measures matching one decoded event against 1, 100 and 1,000 compiled
// rules through the index: candidates come from the event's own field values, so the cost
// tracks the rules that could match, not the rule count.
func BenchmarkMatch(b *testing.B) {
	ev, err := rules.DecodeEvent([]byte(benchEvent))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100, 1000} {
		idx := rules.NewIndex()
		for i, p := range benchRules(n) {
			idx.Add(fmt.Sprint(i), p)
		}
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(idx.Match(ev)) == 0 {
					b.Fatal("the first rule should match")
				}
			}
		})
	}
	// The same without the index: every rule tried in turn, for comparison.
	for _, n := range []int{100, 1000} {
		ps := benchRules(n)
		b.Run(fmt.Sprintf("rules=%d/loop", n), func(b *testing.B) {
			for b.Loop() {
				hits := 0
				for _, p := range ps {
					if p.Match(ev) {
						hits++
					}
				}
				if hits == 0 {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkDecodeEvent is the other half of matching a raw event: decoding it once.
func BenchmarkDecodeEvent(b *testing.B) {
	raw := []byte(benchEvent)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rules.DecodeEvent(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile is the cost of compiling one rule's pattern (once per rule change).
func BenchmarkCompile(b *testing.B) {
	p := []byte(`{"type":[{"prefix":"orders."}],"data":{"amount":[{"numeric":[">",0,"<=",500]}],"customer":{"tier":["gold"]},"$or":[{"country":["DE"]},{"vip":[{"exists":true}]}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rules.Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

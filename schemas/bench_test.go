package schemas_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/schemas"
)

// lineItems is a schema whose data grows with its item list, for the 10 KiB case.
const lineItems = `{"type":"object","properties":{"orderId":{"type":"string","minLength":1},
"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string","pattern":"^[A-Z0-9-]+$"},
"qty":{"type":"integer","minimum":1},"price":{"type":"number","minimum":0}},"required":["sku","qty","price"],
"additionalProperties":false}}},"required":["orderId","items"]}`

func itemsData(size int) string {
	var b strings.Builder
	b.WriteString(`{"orderId":"o-1","items":[`)
	for i := 0; b.Len() < size-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","qty":%d,"price":%d.95}`, i, i%5+1, i%90)
	}
	b.WriteString(`]}`)
	return b.String()
}

// BenchmarkValidate is the per-event cost the ingress adds with validation on: decode the
// data and run the compiled schema.
func BenchmarkValidate(b *testing.B) {
	c, _, err := schemas.LoadDir(exampleCatalog)
	if err != nil {
		b.Fatal(err)
	}
	c = schemas.NewCatalog(append(c.Docs, schemas.Document{Type: "orders.placed", Version: 1, Raw: []byte(lineItems)}))
	set, problems := schemas.Compile(c)
	if len(problems) != 0 {
		b.Fatal(problems)
	}
	cases := []struct {
		name string
		ev   *event.Event
	}{
		{"small", ev("orders.created", `{"orderId":"o-1","customerId":"c-42","total":{"cents":12050,"currency":"EUR"},"coupon":"SPRING"}`)},
		{"10KiB", ev("orders.placed", itemsData(10<<10))},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if err := set.Validate(tc.ev); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(tc.ev.Data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := set.Validate(tc.ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCompile is the cost of a registry reload: the example catalog compiled whole.
func BenchmarkCompile(b *testing.B) {
	c, _, err := schemas.LoadDir(exampleCatalog)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, problems := schemas.Compile(c); len(problems) != 0 {
			b.Fatal(problems)
		}
	}
}

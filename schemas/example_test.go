package schemas_test

import (
	"fmt"

	"github.com/jetmesh/jetmesh/schemas"
)

// OrderCreated is the data of an orders.created event, as a Go service defines it.
type OrderCreated struct {
	OrderID  string   `json:"orderId" jsonschema:"minLength=1"`
	Amount   float64  `json:"amount" jsonschema:"minimum=0"`
	Currency string   `json:"currency" jsonschema:"enum=EUR,enum=USD"`
	Coupons  []string `json:"coupons,omitempty"`
}

func ExampleGenerate() {
	doc, err := schemas.Generate(OrderCreated{})
	if err != nil {
		panic(err)
	}
	fmt.Print(string(doc))
	// Output:
	// {
	//   "$schema": "https://json-schema.org/draft/2020-12/schema",
	//   "properties": {
	//     "orderId": {
	//       "type": "string",
	//       "minLength": 1
	//     },
	//     "amount": {
	//       "type": "number",
	//       "minimum": 0
	//     },
	//     "currency": {
	//       "type": "string",
	//       "enum": [
	//         "EUR",
	//         "USD"
	//       ]
	//     },
	//     "coupons": {
	//       "items": {
	//         "type": "string"
	//       },
	//       "type": "array"
	//     }
	//   },
	//   "additionalProperties": false,
	//   "type": "object",
	//   "required": [
	//     "orderId",
	//     "amount",
	//     "currency"
	//   ]
	// }
}

func ExampleCheckCompatible() {
	v1 := schemas.Document{Type: "orders.created", Version: 1, Origin: "catalog/orders.created/v1.json",
		Raw: []byte(`{"type":"object","properties":{"amount":{"type":"number","minimum":0}}}`)}
	v2 := schemas.Document{Type: "orders.created", Version: 2, Origin: "catalog/orders.created/v2.json",
		Raw: []byte(`{"type":"object","properties":{"amount":{"type":"integer","minimum":1}},"required":["amount"]}`)}
	for _, p := range schemas.CheckCompatible(v1, v2, nil) {
		fmt.Println(p)
	}
	// Output:
	// catalog/orders.created/v2.json: /required: required-added: property "amount" is now required
	// catalog/orders.created/v2.json: /properties/amount/type: type-narrowed: type no longer allows number
	// catalog/orders.created/v2.json: /properties/amount/minimum: minimum-raised: minimum 1 (was minimum 0)
}

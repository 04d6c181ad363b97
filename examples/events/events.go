// Package events holds the data of the example shop's events as Go types: the one source
// of truth `jetmesh schemas gen` turns into catalog entries.
package events

// OrderCreated is the data of orders.created.
type OrderCreated struct {
	OrderID    string `json:"orderId" jsonschema:"minLength=1"`
	CustomerID string `json:"customerId"`
	Total      Money  `json:"total"`
	Coupon     string `json:"coupon,omitempty" jsonschema:"maxLength=32"`
}

// Money is an amount in minor units.
type Money struct {
	Cents    int64  `json:"cents" jsonschema:"minimum=0"`
	Currency string `json:"currency" jsonschema:"pattern=^[A-Z]{3}$"`
}

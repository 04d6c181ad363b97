package rules_test

import (
	"fmt"

	"github.com/jetmesh/jetmesh/rules"
)

func ExampleCompile() {
	p, err := rules.Compile([]byte(`{
		"type": ["orders.created"],
		"data": {"amount": [{"numeric": [">=", 100]}], "country": [{"anything-but": ["US", "CA"]}]}
	}`))
	if err != nil {
		panic(err)
	}
	for _, ev := range []string{
		`{"type":"orders.created","data":{"amount":250,"country":"DE"}}`,
		`{"type":"orders.created","data":{"amount":99.5,"country":"DE"}}`,
		`{"type":"orders.created","data":{"amount":1e3,"country":"US"}}`,
	} {
		ok, _ := p.MatchJSON([]byte(ev))
		fmt.Println(ok)
	}
	_, err = rules.Compile([]byte(`{"data":{"amount":[{"numeric":[">",10,"<",5]}]}}`))
	fmt.Println(err)
	// Output:
	// true
	// false
	// false
	// pattern /data/amount/0/numeric: the range is empty: the lower bound must be below the upper bound
}

func ExamplePattern_FilterSubjects() {
	for _, p := range []string{
		`{"type":["orders.created"]}`,
		`{"type":[{"prefix":"orders."}, "payments.captured"]}`,
		`{"data":{"amount":[{"numeric":[">",0]}]}}`,
	} {
		fmt.Println(rules.MustCompile(p).FilterSubjects())
	}
	// Output:
	// [evt.orders.created]
	// [evt.orders.> evt.payments.captured]
	// [evt.>]
}

func ExampleIndex() {
	idx := rules.NewIndex()
	idx.Add("billing", rules.MustCompile(`{"type":["orders.created"],"data":{"amount":[{"numeric":[">=",100]}]}}`))
	idx.Add("audit", rules.MustCompile(`{"type":[{"prefix":"orders."}]}`))
	idx.Add("mail", rules.MustCompile(`{"type":["customers.signed-up"]}`))
	ev, _ := rules.DecodeEvent([]byte(`{"type":"orders.created","data":{"amount":120}}`))
	fmt.Println(idx.Match(ev))
	// Output:
	// [billing audit]
}

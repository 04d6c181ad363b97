package event_test

import (
	"fmt"

	"github.com/jetmesh/jetmesh/event"
)

func ExampleParseStructured() {
	ev, err := event.ParseStructured([]byte(`{"specversion":"1.0","id":"o-1","source":"/shop",
		"type":"orders.created","data":{"amount":120}}`), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.NATSSubject(), ev.Header()["Nats-Msg-Id"], string(ev.Data))

	_, err = event.ParseStructured([]byte(`{"specversion":"1.0","id":"o-2","source":"/shop","type":"Orders"}`), 0)
	fmt.Println(err)
	// Output:
	// evt.orders.created [o-1] {"amount":120}
	// type: "Orders" has character 'O': each dot-separated token must match [a-z0-9_-]+
}

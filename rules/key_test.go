package rules_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go/jetstream"
)

func TestKeyPath(t *testing.T) {
	header := map[string][]string{"ce-id": {"e1"}, "ce-partitionkey": {"tenant-7"}, "Content-Type": {"application/json"}}
	data := []byte(`{"customer": {"id": 42, "name": "Ada"}, "region": "eu", "none": null}`)
	for _, tc := range []struct {
		path, key string
		keyed     bool
	}{
		{"partitionkey", "tenant-7", true},
		{"subject", "", false},
		{"data.region", "eu", true},
		{"data.customer.id", "42", true}, // a number's JSON text
		{"data.customer", `{"id":42,"name":"Ada"}`, true},
		{"data.none", "", false},
		{"data.missing", "", false},
		{"data.region.deeper", "", false},
	} {
		kp, err := rules.ParseKeyPath(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		key, keyed := kp.Of(header, data)
		if key != tc.key || keyed != tc.keyed {
			t.Errorf("%s: got %q, %v; want %q, %v", tc.path, key, keyed, tc.key, tc.keyed)
		}
	}
	kp, _ := rules.ParseKeyPath("data.region")
	if _, keyed := kp.Of(map[string][]string{"Content-Type": {"text/plain"}}, []byte(`{"region":"eu"}`)); keyed {
		t.Error("a key was read from data that is not JSON")
	}
	for _, bad := range []string{"", "data", "data.", "data..x", "Partition", "a.b", "toolongattributename_x"} {
		if _, err := rules.ParseKeyPath(bad); err == nil {
			t.Errorf("orderBy %q accepted", bad)
		}
	}
}

func TestPartitionIsStable(t *testing.T) {
	// A change would move keys between partitions while their events are in flight.
	got := []int{rules.Partition("customer-1", 4), rules.Partition("customer-2", 4), rules.Partition("", 4), rules.Partition("x", 1)}
	if want := []int{3, 2, 1, 0}; !slices.Equal(got, want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}
}

func TestOrderByValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"delivery: {orderBy: data.customerId, ordered: true}", "exclude each other"},
		{"delivery: {orderBy: data.customerId, batch: {maxEvents: 10}}", "batch with orderBy"},
		{"delivery: {orderBy: data.customerId, partitions: 65}", "partitions must be between 1 and 64"},
		{"delivery: {partitions: 2}", "orderBy rules only"},
		{"delivery: {orderBy: 'Data.x'}", "context attribute"},
	} {
		_, err := rules.ParseFile("r.yaml", []byte("name: r\npattern: {type: [a.b]}\ntarget: {service: s}\n"+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.yaml, err, tc.want)
		}
	}
}

func TestReconcilePartitions(t *testing.T) {
	js, store := setupBus(t)
	ctx := context.Background()
	rc := rules.NewReconciler(js, slog.New(slog.DiscardHandler), time.Hour)
	apply := func(yaml string) []string {
		t.Helper()
		if _, err := store.Apply(ctx, mustRules(t, yaml), rules.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		actions, err := rc.Reconcile(ctx, stored(t, store))
		if err != nil {
			t.Fatal(err)
		}
		return ops(actions)
	}
	const rule = "name: orders\npattern: {type: [orders.created]}\ntarget: {service: billing}\ndelivery: {orderBy: partitionkey, partitions: %s}\n"
	if got := apply(strings.Replace(rule, "%s", "3", 1)); !slices.Equal(got, []string{"orders:created", "orders:created", "orders:created"}) {
		t.Fatalf("actions %v", got)
	}
	for _, name := range []string{"rule-orders", "rule-orders~1", "rule-orders~2"} {
		info := consumerInfo(t, js, name)
		if info == nil {
			t.Fatalf("no consumer %s", name)
		}
		if info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned || info.Config.MaxAckPending != rules.PartitionWindow {
			t.Errorf("%s: priority policy %v, max ack pending %d", name, info.Config.PriorityPolicy, info.Config.MaxAckPending)
		}
	}
	publish(t, js, "evt.orders.created", 5)
	// Fewer partitions: the one left over goes; more: the new ones start where partition 0 stands.
	if got := apply(strings.Replace(rule, "%s", "2", 1)); !slices.Contains(got, "orders:deleted") {
		t.Fatalf("actions %v", got)
	}
	if consumerInfo(t, js, "rule-orders~2") != nil {
		t.Fatal("rule-orders~2 left behind")
	}
	apply(strings.Replace(rule, "%s", "4", 1))
	info, first := consumerInfo(t, js, "rule-orders~3"), consumerInfo(t, js, "rule-orders")
	if info == nil || info.NumPending != 5 || first.NumPending != 5 {
		t.Fatalf("a new partition starts at partition 0's position (5 events not yet delivered): %+v", info)
	}
}

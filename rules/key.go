package rules

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/jsonx"
)

// KeyPath is where an orderBy rule finds an event's key: a context attribute, or a path
// into the data.
type KeyPath struct {
	attribute string   // the ce- attribute, when the key is one
	data      []string // the members below data, when the key is there
}

var attributeRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// ParseKeyPath reads an orderBy value: "partitionkey" (any context attribute name) or
// "data.customerId" (a dotted path into JSON data).
func ParseKeyPath(s string) (KeyPath, error) {
	if rest, ok := strings.CutPrefix(s, "data."); ok {
		parts := strings.Split(rest, ".")
		for _, p := range parts {
			if p == "" {
				return KeyPath{}, fmt.Errorf("delivery.orderBy %q has an empty member: write a dotted path like \"data.customerId\"", s)
			}
		}
		return KeyPath{data: parts}, nil
	}
	if !attributeRE.MatchString(s) || s == "data" {
		return KeyPath{}, fmt.Errorf("delivery.orderBy %q must be a context attribute (1-20 of a-z and 0-9, like \"partitionkey\") or a path into the data (like \"data.customerId\")", s)
	}
	return KeyPath{attribute: s}, nil
}

// UsesData reports whether finding the key decodes the event's data.
func (k KeyPath) UsesData() bool { return k.data != nil }

// Of returns a stored event's key, false when it has none (the attribute or member is
// missing or null, or the data is not JSON). A key in the data that is not a string is
// its JSON text, so 42 and "42" are different keys.
func (k KeyPath) Of(header map[string][]string, data []byte) (string, bool) {
	if k.data == nil {
		v := event.HeaderGet(header, "ce-"+k.attribute)
		return v, v != ""
	}
	contentType := event.HeaderGet(header, "Content-Type")
	if len(data) == 0 || contentType != "" && !event.IsJSON(contentType) {
		return "", false
	}
	v, err := jsonx.Decode(data)
	if err != nil {
		return "", false
	}
	for _, member := range k.data {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = obj[member]; !ok {
			return "", false
		}
	}
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	default:
		b, err := json.Marshal(v)
		return string(b), err == nil
	}
}

// Partition is the partition of n that key falls in: the same for every replica and
// every jetmesh version, since a change would reorder keys in flight.
func Partition(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// PartitionOf is the partition of an orderBy rule that delivers a stored event: its key's,
// or for an event without the key its id's, which spreads those evenly. Always 0 for
// other rules.
func (r *Rule) PartitionOf(header map[string][]string, data []byte) int {
	n := r.Delivery.PartitionCount()
	if n <= 1 {
		return 0
	}
	kp, err := ParseKeyPath(r.Delivery.OrderBy)
	if err != nil {
		return 0
	}
	p, _, _ := kp.PartitionOf(header, data, n)
	return p
}

// PartitionOf is the partition of n that delivers a stored event (see Rule.PartitionOf);
// keyed reports whether the event has the key, and so waits behind its key's earlier events.
func (k KeyPath) PartitionOf(header map[string][]string, data []byte, n int) (partition int, key string, keyed bool) {
	if key, keyed = k.Of(header, data); keyed {
		return Partition(key, n), key, true
	}
	return Partition(event.HeaderGet(header, "ce-id"), n), "", false
}

package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Store is the mesh-rules KV bucket: one key per rule name, the rule as JSON. It is safe
// for concurrent use.
type Store struct {
	kv jetstream.KeyValue
}

// OpenStore opens the bucket the server created.
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, bus.RulesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("the %s bucket does not exist: is a jetmesh server running against this NATS? (%w)", bus.RulesBucket, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", bus.RulesBucket, err)
	}
	return &Store{kv: kv}, nil
}

// Encode is a rule's stored form.
func Encode(r Rule) []byte {
	b, _ := marshal(r)
	return b
}

// Decode reads a stored rule.
func Decode(b []byte) (Rule, error) {
	var r Rule
	if err := json.Unmarshal(b, &r); err != nil {
		return Rule{}, fmt.Errorf("%w: stored rule is unreadable: %v", ErrInvalidRule, err)
	}
	return r, nil
}

type stored struct {
	rule     Rule
	raw      []byte
	revision uint64
}

func (s *Store) all(ctx context.Context) (map[string]stored, error) {
	keys, err := s.kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, fmt.Errorf("listing %s: %w", bus.RulesBucket, err)
	}
	out := make(map[string]stored, len(keys))
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading rule %s: %w", k, err)
		}
		r, err := Decode(e.Value())
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", k, err)
		}
		out[k] = stored{rule: r, raw: e.Value(), revision: e.Revision()}
	}
	return out, nil
}

// List returns every stored rule, by name.
func (s *Store) List(ctx context.Context) ([]Rule, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Rule, 0, len(all))
	for _, st := range all {
		out = append(out, st.rule)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns one rule.
func (s *Store) Get(ctx context.Context, name string) (Rule, error) {
	e, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Rule{}, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Rule{}, fmt.Errorf("reading rule %s: %w", name, err)
	}
	return Decode(e.Value())
}

// Delete removes a rule; its consumer goes with the next reconcile.
func (s *Store) Delete(ctx context.Context, name string) error {
	if _, err := s.Get(ctx, name); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, name); err != nil {
		return fmt.Errorf("deleting rule %s: %w", name, err)
	}
	return nil
}

// Change is one thing Apply does (or would do) to the stored rules.
type Change struct {
	// Op is "create", "update", "unchanged" or "delete".
	Op   string `json:"op"`
	Name string `json:"name"`
	// Fields lists the top-level fields an update changes.
	Fields []string `json:"fields,omitempty"`
}

func (c Change) String() string {
	switch c.Op {
	case "update":
		return fmt.Sprintf("updated   %s (%s)", c.Name, joinFields(c.Fields))
	case "create":
		return "created   " + c.Name
	case "delete":
		return "deleted   " + c.Name
	}
	return "unchanged " + c.Name
}

func joinFields(fs []string) string {
	out := ""
	for i, f := range fs {
		if i > 0 {
			out += ", "
		}
		out += f
	}
	return out
}

// Apply makes the stored rules match desired: creates and updates them, and with prune
// deletes stored rules desired does not hold. With dryRun it only reports. Writes use the
// revision read, so a concurrent change to the same rule fails instead of being lost.
func (s *Store) Apply(ctx context.Context, desired []Rule, prune, dryRun bool) ([]Change, error) {
	current, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	var changes []Change
	want := map[string]bool{}
	for _, r := range desired {
		want[r.Name] = true
		raw := Encode(r)
		cur, exists := current[r.Name]
		switch {
		case !exists:
			changes = append(changes, Change{Op: "create", Name: r.Name})
			if !dryRun {
				if _, err := s.kv.Create(ctx, r.Name, raw); err != nil {
					return changes, fmt.Errorf("creating rule %s: %w", r.Name, err)
				}
			}
		case bytes.Equal(cur.raw, raw):
			changes = append(changes, Change{Op: "unchanged", Name: r.Name})
		default:
			changes = append(changes, Change{Op: "update", Name: r.Name, Fields: changedFields(cur.raw, raw)})
			if !dryRun {
				if _, err := s.kv.Update(ctx, r.Name, raw, cur.revision); err != nil {
					return changes, fmt.Errorf("updating rule %s (changed by someone else meanwhile? apply again): %w", r.Name, err)
				}
			}
		}
	}
	if prune {
		var names []string
		for name := range current {
			if !want[name] {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			changes = append(changes, Change{Op: "delete", Name: name})
			if !dryRun {
				if err := s.kv.Delete(ctx, name, jetstream.LastRevision(current[name].revision)); err != nil {
					return changes, fmt.Errorf("deleting rule %s: %w", name, err)
				}
			}
		}
	}
	return changes, nil
}

// changedFields compares two stored rules field by field.
func changedFields(a, b []byte) []string {
	var ma, mb map[string]json.RawMessage
	_ = json.Unmarshal(a, &ma)
	_ = json.Unmarshal(b, &mb)
	var out []string
	for k, v := range mb {
		if !bytes.Equal(ma[k], v) {
			out = append(out, k)
		}
	}
	for k := range ma {
		if _, ok := mb[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

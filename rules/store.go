package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Store is the mesh-rules KV bucket: one key per rule name, the rule as JSON. It is safe
// for concurrent use.
type Store struct {
	js jetstream.JetStream
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
	return &Store{js: js, kv: kv}, nil
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
	// Skips counts the events stored but not yet delivered that the update's new
	// startTime would move the rule's consumer past: they would never reach the rule.
	Skips uint64 `json:"skips,omitempty"`
}

func (c Change) String() string {
	switch c.Op {
	case "update":
		s := fmt.Sprintf("updated   %s (%s)", c.Name, strings.Join(c.Fields, ", "))
		if c.Skips > 0 {
			s += fmt.Sprintf(": the new startTime skips %d undelivered event(s)", c.Skips)
		}
		return s
	case "create":
		return "created   " + c.Name
	case "delete":
		return "deleted   " + c.Name
	}
	return "unchanged " + c.Name
}

// ApplyOptions say how far Apply may go.
type ApplyOptions struct {
	// Prune deletes stored rules the desired set does not hold.
	Prune bool
	// DryRun reports the changes and writes nothing.
	DryRun bool
	// Force lets a startTime change skip events stored but not yet delivered (the rule is
	// stored with SkipUndelivered). Without it such a change is refused with ErrWouldSkip.
	Force bool
}

// Apply makes the stored rules match desired: creates and updates them, and with
// opts.Prune deletes stored rules desired does not hold. A startTime change that would
// skip undelivered events is refused, with nothing written, unless opts.Force; the
// returned changes say how many each would skip. Writes use the revision read, so a
// concurrent change to the same rule fails instead of being lost.
func (s *Store) Apply(ctx context.Context, desired []Rule, opts ApplyOptions) ([]Change, error) {
	current, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	changes := make([]Change, 0, len(desired))
	encoded := make([][]byte, len(desired))
	var skipping []string
	for i, r := range desired {
		cur, exists := current[r.Name]
		raw := Encode(r)
		switch {
		case !exists:
			changes = append(changes, Change{Op: "create", Name: r.Name})
		case bytes.Equal(cur.raw, raw):
			changes = append(changes, Change{Op: "unchanged", Name: r.Name})
		default:
			c := Change{Op: "update", Name: r.Name}
			if c.Skips, err = s.skips(ctx, cur.rule, r); err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.Name, err)
			}
			if c.Skips > 0 {
				skipping = append(skipping, fmt.Sprintf("%s (%d)", r.Name, c.Skips))
				if opts.Force {
					r.SkipUndelivered = true
					raw = Encode(r)
				}
			}
			c.Fields = changedFields(cur.raw, raw)
			changes = append(changes, c)
		}
		encoded[i] = raw
	}
	if len(skipping) > 0 && !opts.Force {
		return changes, fmt.Errorf("%w: %s; nothing was written. Apply with --force to skip them, or keep the old startTime (to deliver older events again, set an earlier one)",
			ErrWouldSkip, strings.Join(skipping, ", "))
	}
	var deletions []string
	if opts.Prune {
		want := make(map[string]bool, len(desired))
		for _, r := range desired {
			want[r.Name] = true
		}
		for name := range current {
			if !want[name] {
				deletions = append(deletions, name)
			}
		}
		sort.Strings(deletions)
		for _, name := range deletions {
			changes = append(changes, Change{Op: "delete", Name: name})
		}
	}
	if opts.DryRun {
		return changes, nil
	}
	for i, r := range desired {
		switch changes[i].Op {
		case "create":
			if _, err := s.kv.Create(ctx, r.Name, encoded[i]); err != nil {
				return changes, fmt.Errorf("creating rule %s: %w", r.Name, err)
			}
		case "update":
			if _, err := s.kv.Update(ctx, r.Name, encoded[i], current[r.Name].revision); err != nil {
				return changes, fmt.Errorf("updating rule %s (changed by someone else meanwhile? apply again): %w", r.Name, err)
			}
		}
	}
	for _, name := range deletions {
		if err := s.kv.Delete(ctx, name, jetstream.LastRevision(current[name].revision)); err != nil {
			return changes, fmt.Errorf("deleting rule %s: %w", name, err)
		}
	}
	return changes, nil
}

// skips counts the undelivered events that changing the stored rule cur into r would
// skip: only a new, later startTime moves a consumer forward (see Reconciler).
func (s *Store) skips(ctx context.Context, cur, r Rule) (uint64, error) {
	if r.StartTime == nil || cur.StartTime != nil && cur.StartTime.Equal(*r.StartTime) {
		return 0, nil
	}
	want, err := ConsumerConfig(r)
	if err != nil {
		return 0, err
	}
	stream, err := s.js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", bus.EventsStream, err)
	}
	c, err := stream.Consumer(ctx, r.ConsumerName())
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil // not created yet: it will start where the rule says
	}
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", r.ConsumerName(), err)
	}
	return SkippedByRestart(ctx, stream, c.CachedInfo(), want)
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

package schemas

import (
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// refCycle finds a loop of $refs (or allOf/anyOf/oneOf/not/if/then/else, which apply at
// the same place in the data) that returns to a schema without descending into the data:
// a schema no instance can ever be validated against (the validator gives up with
// "causing reference cycle"). Recursion through properties or items is fine and ignored.
// It returns the schema locations around the loop, or nil.
func refCycle(root *jsonschema.Schema) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[*jsonschema.Schema]int{}
	var path []*jsonschema.Schema
	var cycle []string
	// visit walks every subschema; same marks edges that stay at the same data location,
	// the only ones a loop can be made of.
	var visit func(s *jsonschema.Schema) bool
	visit = func(s *jsonschema.Schema) bool {
		state[s] = onPath
		path = append(path, s)
		found := false
		walkSubschemas(s, func(sub *jsonschema.Schema, same bool) bool {
			switch {
			case sub == nil:
				return false
			case same && state[sub] == onPath:
				i := len(path) - 1
				for path[i] != sub {
					i--
				}
				for _, p := range append(path[i:], sub) {
					cycle = append(cycle, strings.TrimPrefix(p.Location, baseURL))
				}
				found = true
			case state[sub] == unseen && same:
				found = visit(sub)
			}
			return found
		})
		path = path[:len(path)-1]
		state[s] = done
		return found
	}
	// Every subschema is a possible start: a loop may sit under a property.
	var all []*jsonschema.Schema
	seen := map[*jsonschema.Schema]bool{}
	var collect func(s *jsonschema.Schema)
	collect = func(s *jsonschema.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		all = append(all, s)
		walkSubschemas(s, func(sub *jsonschema.Schema, _ bool) bool { collect(sub); return false })
	}
	collect(root)
	for _, s := range all {
		if state[s] == unseen && visit(s) {
			return cycle
		}
	}
	return nil
}

// walkSubschemas calls fn for every direct subschema of s, saying whether it applies at
// the same data location as s, until fn returns true.
func walkSubschemas(s *jsonschema.Schema, fn func(sub *jsonschema.Schema, same bool) bool) {
	same := []*jsonschema.Schema{s.Ref, s.RecursiveRef, s.Not, s.If, s.Then, s.Else}
	if s.DynamicRef != nil {
		same = append(same, s.DynamicRef.Ref)
	}
	same = append(same, s.AllOf...)
	same = append(same, s.AnyOf...)
	same = append(same, s.OneOf...)
	for _, sub := range s.DependentSchemas {
		same = append(same, sub)
	}
	for _, d := range s.Dependencies {
		if sub, ok := d.(*jsonschema.Schema); ok {
			same = append(same, sub)
		}
	}
	for _, sub := range same {
		if fn(sub, true) {
			return
		}
	}
	down := []*jsonschema.Schema{s.PropertyNames, s.UnevaluatedProperties, s.Contains, s.Items2020, s.UnevaluatedItems, s.ContentSchema}
	for _, sub := range s.Properties {
		down = append(down, sub)
	}
	for _, sub := range s.PatternProperties {
		down = append(down, sub)
	}
	down = append(down, s.PrefixItems...)
	for _, v := range []any{s.AdditionalProperties, s.Items, s.AdditionalItems} {
		switch x := v.(type) {
		case *jsonschema.Schema:
			down = append(down, x)
		case []*jsonschema.Schema:
			down = append(down, x...)
		}
	}
	for _, sub := range down {
		if fn(sub, false) {
			return
		}
	}
}

package rules

import (
	"slices"
	"sort"
	"strconv"
)

// Index matches one event against many patterns without trying each: every pattern that
// requires exact values of some top-level or nested field (an "anchor", usually "type") is
// filed under those values, so an event is only checked against the patterns filed under
// its own values, plus those with no anchor. The cost grows with the patterns that could
// match, not with all of them.
//
// Build an Index with Add, then call Match from any number of goroutines; Add must not run
// concurrently with Match.
type Index struct {
	ids      []string
	patterns []*Pattern
	anchors  map[string]*anchorPath // path key → its values
	paths    []*anchorPath          // the same, in first-use order
	scan     []int                  // patterns without an anchor
}

// anchorPath is one anchored field and the patterns filed under each of its values, or
// under a prefix of them.
type anchorPath struct {
	path       []string
	byValue    map[string][]int
	byPrefix   map[string][]int
	prefixLens []int // distinct lengths in byPrefix, ascending
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{anchors: map[string]*anchorPath{}}
}

// Add files a compiled pattern under id. Ids need not be unique; Match reports each entry.
func (x *Index) Add(id string, p *Pattern) {
	pos := len(x.patterns)
	x.ids = append(x.ids, id)
	x.patterns = append(x.patterns, p)
	path, values, prefixes := anchor(p.root, nil)
	if path == nil {
		x.scan = append(x.scan, pos)
		return
	}
	key := pathKey(path)
	a, ok := x.anchors[key]
	if !ok {
		a = &anchorPath{path: path, byValue: map[string][]int{}, byPrefix: map[string][]int{}}
		x.anchors[key] = a
		x.paths = append(x.paths, a)
	}
	for _, v := range values {
		a.byValue[v] = append(a.byValue[v], pos)
	}
	for _, pre := range prefixes {
		if _, seen := a.byPrefix[pre]; !seen {
			i := sort.SearchInts(a.prefixLens, len(pre))
			if i == len(a.prefixLens) || a.prefixLens[i] != len(pre) {
				a.prefixLens = slices.Insert(a.prefixLens, i, len(pre))
			}
		}
		a.byPrefix[pre] = append(a.byPrefix[pre], pos)
	}
}

// Match returns the ids of every pattern the event matches, in the order they were added.
func (x *Index) Match(ev map[string]any) []string {
	var candidates []int
	for _, a := range x.paths {
		collectValues(ev, a.path, func(v any) {
			if k, ok := valueKey(v); ok {
				candidates = append(candidates, a.byValue[k]...)
			}
			if s, ok := v.(string); ok {
				for _, n := range a.prefixLens {
					if n > len(s) {
						break
					}
					candidates = append(candidates, a.byPrefix[s[:n]]...)
				}
			}
		})
	}
	candidates = append(candidates, x.scan...)
	sort.Ints(candidates)
	var out []string
	last := -1
	for _, pos := range candidates {
		if pos == last {
			continue
		}
		last = pos
		if x.patterns[pos].Match(ev) {
			out = append(out, x.ids[pos])
		}
	}
	return out
}

// anchor finds a field, outside any $or, whose matchers are all exact values or
// case-sensitive prefixes: every event the pattern matches has one of those values, or a
// string starting with one of those prefixes, there. It prefers "type".
func anchor(o *objPattern, parent []string) (path, values, prefixes []string) {
	for _, f := range o.fields {
		p := append(append([]string(nil), parent...), f.key)
		if f.obj != nil {
			if sub, v, pre := anchor(f.obj, p); sub != nil && path == nil {
				path, values, prefixes = sub, v, pre
			}
			continue
		}
		v, pre, ok := anchorValues(f.matchers)
		if !ok {
			continue
		}
		if f.key == "type" && len(parent) == 0 {
			return p, v, pre
		}
		if path == nil {
			path, values, prefixes = p, v, pre
		}
	}
	return path, values, prefixes
}

func anchorValues(ms []matcher) (values, prefixes []string, ok bool) {
	for _, m := range ms {
		if a, isAffix := m.(affix); isAffix && !a.suffix && !a.ignoreCase {
			prefixes = append(prefixes, a.s)
			continue
		}
		var k string
		switch x := m.(type) {
		case exactString:
			k = "s" + string(x)
		case exactNumber:
			k = "n" + strconv.FormatFloat(float64(x), 'g', -1, 64)
		case exactBool:
			k = "b" + strconv.FormatBool(bool(x))
		case exactNull:
			k = "z"
		default:
			return nil, nil, false
		}
		values = append(values, k)
	}
	return values, prefixes, true
}

func valueKey(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return "s" + x, true
	case bool:
		return "b" + strconv.FormatBool(x), true
	case nil:
		return "z", true
	}
	if f, ok := number(v); ok {
		return "n" + strconv.FormatFloat(f, 'g', -1, 64), true
	}
	return "", false
}

func pathKey(path []string) string {
	k := ""
	for _, p := range path {
		k += strconv.Quote(p)
	}
	return k
}

// collectValues calls fn on every leaf value at path, looking through arrays the way
// matching does.
func collectValues(v any, path []string, fn func(any)) {
	if len(path) == 0 {
		eachLeaf(v, func(leaf any) bool { fn(leaf); return true })
		return
	}
	eachObject(v, func(o map[string]any) bool {
		if next, ok := o[path[0]]; ok {
			collectValues(next, path[1:], fn)
		}
		return true
	})
}

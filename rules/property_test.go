package rules_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/rules"
)

// subjectMatches is NATS subject matching for the filters jetmesh derives (literal tokens
// and a trailing ">").
func subjectMatches(filter, subject string) bool {
	if strings.HasSuffix(filter, ">") {
		return strings.HasPrefix(subject, strings.TrimSuffix(filter, ">")) && len(subject) > len(filter)-1
	}
	return filter == subject
}

func admitted(filters []string, eventType string) bool {
	for _, f := range filters {
		if subjectMatches(f, event.SubjectPrefix+eventType) {
			return true
		}
	}
	return false
}

var tokens = []string{"a", "b", "ab", "orders", "created", "x-1", "v_2"}

func randType(r *rand.Rand) string {
	n := 1 + r.IntN(3)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = tokens[r.IntN(len(tokens))]
	}
	return strings.Join(parts, ".")
}

// randTypeMatcher returns one matcher on "type", built from a real type so it often hits.
func randTypeMatcher(r *rand.Rand) any {
	t := randType(r)
	switch r.IntN(9) {
	case 0:
		return t
	case 1:
		return map[string]any{"prefix": t[:r.IntN(len(t)+1)]}
	case 2:
		cut := r.IntN(len(t) + 1)
		return map[string]any{"wildcard": t[:cut] + "*" + t[cut:][min(len(t)-cut, r.IntN(3)):]}
	case 3:
		return map[string]any{"equals-ignore-case": strings.ToUpper(t)}
	case 4:
		return map[string]any{"prefix": map[string]any{"equals-ignore-case": strings.ToUpper(t[:r.IntN(len(t)+1)])}}
	case 5:
		return map[string]any{"anything-but": t}
	case 6:
		return map[string]any{"suffix": t[r.IntN(len(t)+1):]}
	case 7:
		return strings.ToUpper(t) // never a valid type
	default:
		return map[string]any{"exists": r.IntN(2) == 0}
	}
}

func randPattern(r *rand.Rand, depth int) map[string]any {
	p := map[string]any{}
	if r.IntN(4) != 0 {
		ms := make([]any, 1+r.IntN(3))
		for i := range ms {
			ms[i] = randTypeMatcher(r)
		}
		p["type"] = ms
	}
	if r.IntN(3) == 0 {
		p["data"] = map[string]any{"n": []any{map[string]any{"numeric": []any{">", r.IntN(5)}}}}
	}
	if depth < 2 && r.IntN(3) == 0 {
		alts := make([]any, 1+r.IntN(3))
		for i := range alts {
			alts[i] = randPattern(r, depth+1)
		}
		p["$or"] = alts
	}
	if len(p) == 0 {
		p["source"] = []any{"/s"}
	}
	return p
}

// TestFilterSubjectsNeverExcludeAMatch is the property the consumers rely on: whatever the
// pattern, an event it matches is always inside the rule's filter subjects.
func TestFilterSubjectsNeverExcludeAMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	checked, matched := 0, 0
	for range 3000 {
		raw, _ := json.Marshal(randPattern(r, 0))
		p, err := rules.Compile(raw)
		if err != nil {
			continue // random wildcards may hold "**"
		}
		filters := p.FilterSubjects()
		for range 40 {
			typ := randType(r)
			ev := map[string]any{"type": typ, "source": "/s", "data": map[string]any{"n": json.Number(fmt.Sprint(r.IntN(6)))}}
			checked++
			if p.SubjectsSuffice() && admitted(filters, typ) && !p.Match(ev) {
				t.Fatalf("pattern %s claims its filters %v suffice, yet type %q is admitted and does not match", raw, filters, typ)
			}
			if !p.Match(ev) {
				continue
			}
			matched++
			if !admitted(filters, typ) {
				t.Fatalf("pattern %s matches type %q but filters %v exclude it", raw, typ, filters)
			}
		}
	}
	if matched < checked/20 {
		t.Fatalf("only %d of %d random events matched: the generator is too weak to test anything", matched, checked)
	}
	t.Logf("%d events checked, %d matched", checked, matched)
}

// TestIndexAgreesWithPatterns: the index returns exactly the patterns that match, for
// random patterns and events.
func TestIndexAgreesWithPatterns(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	idx := rules.NewIndex()
	var ps []*rules.Pattern
	for i := 0; len(ps) < 300; i++ {
		raw, _ := json.Marshal(randPattern(r, 0))
		p, err := rules.Compile(raw)
		if err != nil {
			continue
		}
		ps = append(ps, p)
		idx.Add(fmt.Sprint(len(ps)-1), p)
	}
	for range 2000 {
		ev := map[string]any{"type": randType(r), "source": "/s", "data": map[string]any{"n": json.Number(fmt.Sprint(r.IntN(6)))}}
		var want []string
		for i, p := range ps {
			if p.Match(ev) {
				want = append(want, fmt.Sprint(i))
			}
		}
		if got := idx.Match(ev); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("event %v: index %v, patterns %v", ev, got, want)
		}
	}
}

// FuzzPattern: compiling and matching arbitrary input never panics or hangs, and a match
// always lies inside the derived filter subjects.
func FuzzPattern(f *testing.F) {
	for _, s := range []struct{ p, e string }{
		{`{"type":["orders.created"]}`, `{"type":"orders.created"}`},
		{`{"type":[{"prefix":"orders."}],"data":{"amount":[{"numeric":[">=",100]}]}}`, `{"type":"orders.created","data":{"amount":150}}`},
		{`{"f":[{"wildcard":"a*b\\*c*"}]}`, `{"f":"a1b*c2"}`},
		{`{"$or":[{"a":[{"exists":false}]},{"b":[{"cidr":"10.0.0.0/8"}]}]}`, `{"b":["10.1.1.1"]}`},
		{`{"x":[{"anything-but":{"wildcard":["*a","b*"]}}]}`, `{"x":[[["c"]]]}`},
		{`{"a.b":[1],"a":{"c.d":[{"exists":true}]}}`, `{"a.b":1,"a":{"c":{"d":2},"b":[3]},"a.c.d":null}`},
		{`{"s":[{"anything-but":{"prefix":["in","ſt"]}},{"suffix":{"equals-ignore-case":"K"}}]}`, `{"s":["ST","k"]}`},
	} {
		f.Add([]byte(s.p), []byte(s.e))
	}
	f.Fuzz(func(t *testing.T, pattern, ev []byte) {
		p, err := rules.Compile(pattern)
		if err != nil {
			return
		}
		obj, err := rules.DecodeEvent(ev)
		if err != nil {
			return
		}
		if !p.Match(obj) {
			return
		}
		if typ, ok := obj["type"].(string); ok && event.ValidateType(typ) == nil && !admitted(p.FilterSubjects(), typ) {
			t.Fatalf("pattern %s matches type %q outside filters %v", pattern, typ, p.FilterSubjects())
		}
	})
}

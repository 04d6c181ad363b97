package rules

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jetmesh/jetmesh/internal/jsonx"
)

// Pattern is a compiled EventBridge event pattern. It is immutable after Compile, so any
// number of goroutines may Match with it at once.
type Pattern struct {
	root *objPattern
}

// objPattern is a pattern object: every field must match (AND), and each $or group must
// have one alternative that matches.
type objPattern struct {
	fields []*fieldPattern
	ors    [][]*objPattern
}

// fieldPattern constrains one key: a nested object pattern, or a list of matchers of which
// one must match (OR).
type fieldPattern struct {
	key      string
	obj      *objPattern
	matchers []matcher
}

// maxPatternDepth bounds nesting, so a hostile pattern cannot exhaust the stack.
const maxPatternDepth = 32

// numericLimit is EventBridge's range for numbers in numeric matching.
const numericLimit = 5e9

// Compile parses and checks an event pattern. A refused pattern is a *PatternError naming
// the JSON pointer of the problem.
func Compile(pattern []byte) (*Pattern, error) {
	v, err := jsonx.Decode(pattern)
	if err != nil {
		return nil, &PatternError{Msg: "not JSON: " + err.Error()}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &PatternError{Msg: "must be a JSON object, like {\"type\": [\"orders.created\"]}"}
	}
	if len(obj) == 0 {
		return nil, &PatternError{Msg: "is empty: a rule must say which events it wants (to take every event, use {\"type\": [{\"prefix\": \"\"}]})"}
	}
	root, err := compileObject(obj, "", 0)
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root}, nil
}

// MustCompile is Compile for patterns known to be valid; it panics otherwise.
func MustCompile(pattern string) *Pattern {
	p, err := Compile([]byte(pattern))
	if err != nil {
		panic(err)
	}
	return p
}

func ptrJoin(ptr, key string) string { return ptr + "/" + jsonx.Escape(key) }

func perr(ptr, format string, args ...any) *PatternError {
	return &PatternError{Pointer: ptr, Msg: fmt.Sprintf(format, args...)}
}

func compileObject(obj map[string]any, ptr string, depth int) (*objPattern, error) {
	if depth > maxPatternDepth {
		return nil, perr(ptr, "nested deeper than %d levels", maxPatternDepth)
	}
	obj, err := unflatten(obj, ptr)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	o := &objPattern{}
	for _, k := range keys {
		p := ptrJoin(ptr, k)
		if k == "$or" {
			alts, ok := obj[k].([]any)
			if !ok || len(alts) == 0 {
				return nil, perr(p, "$or takes a non-empty array of pattern objects")
			}
			group := make([]*objPattern, len(alts))
			for i, a := range alts {
				ap := p + "/" + strconv.Itoa(i)
				am, ok := a.(map[string]any)
				if !ok || len(am) == 0 {
					return nil, perr(ap, "each $or alternative must be a non-empty pattern object")
				}
				alt, err := compileObject(am, ap, depth+1)
				if err != nil {
					return nil, err
				}
				group[i] = alt
			}
			o.ors = append(o.ors, group)
			continue
		}
		f := &fieldPattern{key: k}
		switch v := obj[k].(type) {
		case map[string]any:
			if len(v) == 0 {
				return nil, perr(p, "an empty object matches nothing: give the fields to match")
			}
			sub, err := compileObject(v, p, depth+1)
			if err != nil {
				return nil, err
			}
			f.obj = sub
		case []any:
			if len(v) == 0 {
				return nil, perr(p, "an empty array matches nothing: list at least one value or matcher")
			}
			for i, m := range v {
				mt, err := compileMatcher(m, p+"/"+strconv.Itoa(i))
				if err != nil {
					return nil, err
				}
				f.matchers = append(f.matchers, mt)
			}
		default:
			return nil, perr(p, "must be an array of values or matchers (e.g. [%s]) or a nested object", jsonText(v))
		}
		o.fields = append(o.fields, f)
	}
	return o, nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// unflatten rewrites keys with dots into nested objects: EventBridge names a field by its
// path joined with ".", so {"a.b": [1]} is {"a": {"b": [1]}}, and the event side
// (childValue) reads a key "a.b" as the field b of a. Keys with an empty segment ("a..b",
// ".a") are left as they are.
func unflatten(obj map[string]any, ptr string) (map[string]any, error) {
	dotted := false
	for k := range obj {
		if k != "$or" && splittable(k) {
			dotted = true
			break
		}
	}
	if !dotted {
		return obj, nil
	}
	out := make(map[string]any, len(obj))
	keys := slices.Sorted(maps.Keys(obj))
	for _, k := range keys {
		path := []string{k}
		if k != "$or" && splittable(k) {
			path = strings.Split(k, ".")
		}
		if err := insertPath(out, path, obj[k], ptrJoin(ptr, k)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func splittable(k string) bool {
	return strings.Contains(k, ".") && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") && !strings.Contains(k, "..")
}

// insertPath puts v at path inside m, merging nested pattern objects; the same field given
// twice, or as both a value list and an object, is refused.
func insertPath(m map[string]any, path []string, v any, ptr string) error {
	for _, seg := range path[:len(path)-1] {
		next, ok := m[seg]
		if !ok {
			sub := map[string]any{}
			m[seg] = sub
			m = sub
			continue
		}
		sub, isObj := next.(map[string]any)
		if !isObj {
			return perr(ptr, "the field %q is given both as values and as an object", seg)
		}
		m = sub
	}
	last := path[len(path)-1]
	cur, exists := m[last]
	if !exists {
		m[last] = v
		return nil
	}
	a, aObj := cur.(map[string]any)
	b, bObj := v.(map[string]any)
	if !aObj || !bObj {
		return perr(ptr, "the field %q is given twice (a dotted key names the same field as a nested object)", last)
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if err := insertPath(a, []string{k}, b[k], ptrJoin(ptr, k)); err != nil {
			return err
		}
	}
	return nil
}

// ExpandDottedKeys rewrites an event's keys with dots into nested objects, in place where
// it can, the way EventBridge flattens events: {"a.b": 1} is {"a": {"b": 1}}, merged with
// whatever "a" holds (two values for one path become an array: either may match). Events
// are expanded once, when decoded, so matching pays nothing for it.
func ExpandDottedKeys(v any) any {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			x[i] = ExpandDottedKeys(e)
		}
		return x
	case map[string]any:
		var dotted []string
		for k, e := range x {
			x[k] = ExpandDottedKeys(e)
			if splittable(k) {
				dotted = append(dotted, k)
			}
		}
		slices.Sort(dotted)
		for _, k := range dotted {
			e := x[k]
			delete(x, k)
			mergePath(x, strings.Split(k, "."), e)
		}
		return x
	}
	return v
}

// mergePath puts v at path inside m; where something is already there, both are kept.
func mergePath(m map[string]any, path []string, v any) {
	head := path[0]
	cur, exists := m[head]
	if len(path) == 1 {
		if exists {
			m[head] = []any{cur, v}
		} else {
			m[head] = v
		}
		return
	}
	switch c := cur.(type) {
	case map[string]any:
		mergePath(c, path[1:], v)
		return
	case nil:
		if !exists {
			sub := map[string]any{}
			mergePath(sub, path[1:], v)
			m[head] = sub
			return
		}
	}
	sub := map[string]any{}
	mergePath(sub, path[1:], v)
	m[head] = []any{cur, sub}
}

// matcher tests one leaf value of an event.
type matcher interface {
	match(v any) bool
}

// existsMatcher is the one matcher about presence rather than value; fields handle it.
type existsMatcher bool

func (existsMatcher) match(any) bool { return false }

func compileMatcher(m any, ptr string) (matcher, error) {
	switch v := m.(type) {
	case string:
		return exactString(v), nil
	case json.Number:
		f, err := toFloat(v)
		if err != nil {
			return nil, perr(ptr, "%v", err)
		}
		return exactNumber(f), nil
	case bool:
		return exactBool(v), nil
	case nil:
		return exactNull{}, nil
	case []any:
		return nil, perr(ptr, "arrays do not nest in a pattern: list the values in one array")
	case map[string]any:
		if len(v) != 1 {
			return nil, perr(ptr, "a matcher object has exactly one operator (prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists, cidr), got %d keys", len(v))
		}
		for op, arg := range v {
			return compileOperator(op, arg, ptrJoin(ptr, op))
		}
	}
	return nil, perr(ptr, "not a value or matcher: %s", jsonText(m))
}

func compileOperator(op string, arg any, ptr string) (matcher, error) {
	switch op {
	case "prefix", "suffix":
		s, ignoreCase, err := stringOrIgnoreCase(op, arg, ptr)
		if err != nil {
			return nil, err
		}
		return affix{s: s, suffix: op == "suffix", ignoreCase: ignoreCase}, nil
	case "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return nil, perr(ptr, "equals-ignore-case takes a string, got %s", jsonText(arg))
		}
		return equalsIgnoreCase(s), nil
	case "wildcard":
		s, ok := arg.(string)
		if !ok {
			return nil, perr(ptr, "wildcard takes a string, got %s", jsonText(arg))
		}
		return compileWildcard(s, ptr)
	case "anything-but":
		return compileAnythingBut(arg, ptr)
	case "numeric":
		return compileNumeric(arg, ptr)
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return nil, perr(ptr, "exists takes true or false, got %s", jsonText(arg))
		}
		return existsMatcher(b), nil
	case "cidr":
		s, ok := arg.(string)
		if !ok {
			return nil, perr(ptr, "cidr takes a string like \"10.0.0.0/24\", got %s", jsonText(arg))
		}
		prefix, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, perr(ptr, "%q is not a CIDR block like 10.0.0.0/24 or 2001:db8::/32", s)
		}
		return cidr(prefix.Masked()), nil
	}
	return nil, perr(ptr, "unknown operator %q (known: prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists, cidr)", op)
}

// stringOrIgnoreCase reads the argument of prefix/suffix: "s" or {"equals-ignore-case": "s"}.
func stringOrIgnoreCase(op string, arg any, ptr string) (string, bool, error) {
	switch v := arg.(type) {
	case string:
		return v, false, nil
	case map[string]any:
		if s, ok := v["equals-ignore-case"].(string); ok && len(v) == 1 {
			return s, true, nil
		}
	}
	return "", false, perr(ptr, "%s takes a string or {\"equals-ignore-case\": string}, got %s", op, jsonText(arg))
}

func toFloat(n json.Number) (float64, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is not a usable number", n)
	}
	return f, nil
}

type exactString string

func (m exactString) match(v any) bool { s, ok := v.(string); return ok && s == string(m) }

type exactNumber float64

func (m exactNumber) match(v any) bool { f, ok := number(v); return ok && f == float64(m) }

// number reads an event value as a number: 3, 3.0 and 3e0 are all 3.
func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil
}

type exactBool bool

func (m exactBool) match(v any) bool { b, ok := v.(bool); return ok && b == bool(m) }

type exactNull struct{}

func (exactNull) match(v any) bool { return v == nil }

type affix struct {
	s                  string
	suffix, ignoreCase bool
}

func (m affix) match(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	if m.ignoreCase {
		return m.matchFold(s)
	}
	if len(s) < len(m.s) {
		return false
	}
	part := s[:len(m.s)]
	if m.suffix {
		part = s[len(s)-len(m.s):]
	}
	return part == m.s
}

// matchFold is affix.match with Unicode simple case folding, rune by rune: a character and
// its other case may differ in length (ſ and s, K and the Kelvin sign K, ẞ and ß), so the
// part to compare cannot be cut by the pattern's byte length.
func (m affix) matchFold(s string) bool {
	p := m.s
	for p != "" {
		if s == "" {
			return false
		}
		var pr, sr rune
		var pn, sn int
		if m.suffix {
			pr, pn = utf8.DecodeLastRuneInString(p)
			sr, sn = utf8.DecodeLastRuneInString(s)
			p, s = p[:len(p)-pn], s[:len(s)-sn]
		} else {
			pr, pn = utf8.DecodeRuneInString(p)
			sr, sn = utf8.DecodeRuneInString(s)
			p, s = p[pn:], s[sn:]
		}
		if !equalFoldRune(pr, sr) {
			return false
		}
	}
	return true
}

// equalFoldRune reports whether a and b are the same under simple case folding: b is in
// a's fold orbit.
func equalFoldRune(a, b rune) bool {
	if a == b {
		return true
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

type equalsIgnoreCase string

func (m equalsIgnoreCase) match(v any) bool {
	s, ok := v.(string)
	return ok && strings.EqualFold(s, string(m))
}

// wildcard matches strings where each * stands for any run of characters (dots included).
type wildcard struct {
	parts []string // literal runs between stars
	lead  bool     // starts with *
	trail bool     // ends with *
}

func compileWildcard(s, ptr string) (matcher, error) {
	var parts []string
	var cur strings.Builder
	lead, trail := false, false
	prevStar := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return nil, perr(ptr, "wildcard %q: a backslash escapes only * or \\", s)
			}
			i++
			cur.WriteByte(s[i])
			prevStar = false
		case c == '*':
			if prevStar {
				return nil, perr(ptr, "wildcard %q has consecutive * characters, which EventBridge refuses", s)
			}
			if i == 0 {
				lead = true
			} else {
				parts = append(parts, cur.String())
			}
			cur.Reset()
			prevStar = true
		default:
			cur.WriteByte(c)
			prevStar = false
		}
	}
	if prevStar {
		trail = true
	} else {
		parts = append(parts, cur.String())
	}
	if len(parts) == 0 {
		parts = []string{""}
	}
	return wildcard{parts: parts, lead: lead, trail: trail}, nil
}

func (m wildcard) match(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	parts := m.parts
	if !m.lead {
		if !strings.HasPrefix(s, parts[0]) {
			return false
		}
		s = s[len(parts[0]):]
		parts = parts[1:]
		if len(parts) == 0 {
			return m.trail || s == ""
		}
	}
	// The last literal is anchored at the end unless the pattern ends in *.
	last := ""
	if !m.trail {
		last = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
		if len(s) < len(last) || !strings.HasSuffix(s, last) {
			return false
		}
		s = s[:len(s)-len(last)]
	}
	// Middle literals: leftmost match each, which is optimal for *-only globs.
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// anythingBut matches every leaf value the inner matcher does not.
type anythingBut struct{ not []matcher }

func (m anythingBut) match(v any) bool {
	for _, n := range m.not {
		if n.match(v) {
			return false
		}
	}
	return true
}

func compileAnythingBut(arg any, ptr string) (matcher, error) {
	switch v := arg.(type) {
	case string:
		return anythingBut{[]matcher{exactString(v)}}, nil
	case json.Number:
		f, err := toFloat(v)
		if err != nil {
			return nil, perr(ptr, "%v", err)
		}
		return anythingBut{[]matcher{exactNumber(f)}}, nil
	case []any:
		if len(v) == 0 {
			return nil, perr(ptr, "anything-but takes a non-empty list")
		}
		var strs, nums int
		var not []matcher
		for i, x := range v {
			switch y := x.(type) {
			case string:
				strs++
				not = append(not, exactString(y))
			case json.Number:
				nums++
				f, err := toFloat(y)
				if err != nil {
					return nil, perr(ptr+"/"+strconv.Itoa(i), "%v", err)
				}
				not = append(not, exactNumber(f))
			default:
				return nil, perr(ptr+"/"+strconv.Itoa(i), "anything-but lists hold strings or numbers, got %s", jsonText(x))
			}
		}
		if strs > 0 && nums > 0 {
			return nil, perr(ptr, "anything-but lists hold only strings or only numbers, not both")
		}
		return anythingBut{not}, nil
	case map[string]any:
		if len(v) != 1 {
			return nil, perr(ptr, "anything-but takes one of prefix, suffix, equals-ignore-case, wildcard")
		}
		for op, inner := range v {
			ip := ptrJoin(ptr, op)
			switch op {
			case "prefix", "suffix":
				list, err := stringList(inner, ip, "anything-but "+op)
				if err != nil {
					return nil, err
				}
				var not []matcher
				for i, s := range list {
					if s == "" {
						at := ip
						if _, isList := inner.([]any); isList {
							at = ip + "/" + strconv.Itoa(i)
						}
						// Every string has the empty prefix: the rule could never match.
						return nil, perr(at, "anything-but %s takes a non-empty string: every value has the empty %s", op, op)
					}
					not = append(not, affix{s: s, suffix: op == "suffix"})
				}
				return anythingBut{not}, nil
			case "equals-ignore-case", "wildcard":
				list, err := stringList(inner, ip, op)
				if err != nil {
					return nil, err
				}
				var not []matcher
				for _, s := range list {
					if op == "wildcard" {
						w, err := compileWildcard(s, ip)
						if err != nil {
							return nil, err
						}
						not = append(not, w)
					} else {
						not = append(not, equalsIgnoreCase(s))
					}
				}
				return anythingBut{not}, nil
			}
			return nil, perr(ip, "anything-but does not take %q (it takes a value, a list, prefix, suffix, equals-ignore-case or wildcard)", op)
		}
	}
	return nil, perr(ptr, "anything-but takes a string, a number, a list of them, or an object with prefix, suffix, equals-ignore-case or wildcard; got %s", jsonText(arg))
}

func stringList(v any, ptr, op string) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		if len(x) == 0 {
			return nil, perr(ptr, "%s takes a string or a non-empty list of strings", op)
		}
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, perr(ptr+"/"+strconv.Itoa(i), "%s takes strings, got %s", op, jsonText(e))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, perr(ptr, "%s takes a string or a list of strings, got %s", op, jsonText(v))
}

// numeric holds up to one lower and one upper bound, or one equality.
type numeric struct {
	hasLo, loIncl, hasHi, hiIncl bool
	lo, hi                       float64
}

func compileNumeric(arg any, ptr string) (matcher, error) {
	list, ok := arg.([]any)
	if !ok || (len(list) != 2 && len(list) != 4) {
		return nil, perr(ptr, "numeric takes [op, number] or [lower-op, number, upper-op, number], e.g. [\">\", 0, \"<=\", 5]")
	}
	var m numeric
	for i := 0; i < len(list); i += 2 {
		op, ok := list[i].(string)
		ip := ptr + "/" + strconv.Itoa(i)
		if !ok {
			return nil, perr(ip, "expected an operator (=, <, <=, >, >=), got %s", jsonText(list[i]))
		}
		n, ok := list[i+1].(json.Number)
		if !ok {
			return nil, perr(ptr+"/"+strconv.Itoa(i+1), "expected a number after %q, got %s", op, jsonText(list[i+1]))
		}
		f, err := toFloat(n)
		if err != nil || f < -numericLimit || f > numericLimit {
			return nil, perr(ptr+"/"+strconv.Itoa(i+1), "%s is outside the numeric range -5e9 to 5e9", n)
		}
		switch op {
		case "=":
			if len(list) != 2 {
				return nil, perr(ip, "\"=\" stands alone: [\"=\", n]")
			}
			m = numeric{hasLo: true, loIncl: true, hasHi: true, hiIncl: true, lo: f, hi: f}
		case ">", ">=":
			if m.hasLo {
				return nil, perr(ip, "two lower bounds: give one of > or >= and one of < or <=")
			}
			m.hasLo, m.loIncl, m.lo = true, op == ">=", f
		case "<", "<=":
			if m.hasHi {
				return nil, perr(ip, "two upper bounds: give one of > or >= and one of < or <=")
			}
			m.hasHi, m.hiIncl, m.hi = true, op == "<=", f
		default:
			return nil, perr(ip, "unknown numeric operator %q (use =, <, <=, >, >=)", op)
		}
	}
	if m.hasLo && m.hasHi && (m.lo > m.hi || (m.lo == m.hi && !(m.loIncl && m.hiIncl))) {
		return nil, perr(ptr, "the range is empty: the lower bound must be below the upper bound")
	}
	return m, nil
}

func (m numeric) match(v any) bool {
	f, ok := number(v)
	if !ok {
		return false
	}
	if m.hasLo && (f < m.lo || (f == m.lo && !m.loIncl)) {
		return false
	}
	if m.hasHi && (f > m.hi || (f == m.hi && !m.hiIncl)) {
		return false
	}
	return true
}

type cidr netip.Prefix

func (m cidr) match(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	addr, err := netip.ParseAddr(s)
	return err == nil && netip.Prefix(m).Contains(addr.Unmap())
}

// Match reports whether an event, decoded as JSON (objects as map[string]any, numbers as
// json.Number) with its dotted keys expanded (DecodeEvent does both; see
// ExpandDottedKeys), matches the pattern.
func (p *Pattern) Match(ev map[string]any) bool { return p.root.match(ev) }

// MatchJSON decodes an event and matches it. The event must be a JSON object.
func (p *Pattern) MatchJSON(ev []byte) (bool, error) {
	obj, err := DecodeEvent(ev)
	if err != nil {
		return false, err
	}
	return p.Match(obj), nil
}

// DecodeEvent decodes an event for Match: any JSON object.
func DecodeEvent(ev []byte) (map[string]any, error) {
	if !utf8.Valid(ev) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrInvalidEvent)
	}
	v, err := jsonx.Decode(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrInvalidEvent, err)
	}
	obj, ok := ExpandDottedKeys(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: must be a JSON object", ErrInvalidEvent)
	}
	return obj, nil
}

func (o *objPattern) match(ev map[string]any) bool {
	for _, f := range o.fields {
		v, ok := ev[f.key]
		if !ok {
			v = absentValue{}
		}
		if !f.match(v) {
			return false
		}
	}
	for _, group := range o.ors {
		ok := false
		for _, alt := range group {
			if alt.match(ev) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

var emptyObject = map[string]any{}

func (f *fieldPattern) match(v any) bool {
	if f.obj != nil {
		// A nested pattern matches the value, or any object inside an array value; with no
		// object there, only a pattern of absences ("exists": false) can match.
		found := false
		matched := false
		eachObject(v, func(o map[string]any) bool {
			found = true
			matched = f.obj.match(o)
			return !matched
		})
		if !found {
			return f.obj.match(emptyObject)
		}
		return matched
	}
	hasLeaf := false
	matched := false
	eachLeaf(v, func(leaf any) bool {
		hasLeaf = true
		for _, m := range f.matchers {
			if m.match(leaf) {
				matched = true
				return false
			}
		}
		return true
	})
	if matched {
		return true
	}
	for _, m := range f.matchers {
		if e, ok := m.(existsMatcher); ok && bool(e) == hasLeaf {
			return true
		}
	}
	return false
}

// eachLeaf calls fn on every scalar (or null) in v, looking into arrays; objects are not
// leaves, and an absent key (absentValue, unlike a JSON null) has none.
func eachLeaf(v any, fn func(any) bool) bool {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if !eachLeaf(e, fn) {
				return false
			}
		}
		return true
	case map[string]any:
		return true
	case absentValue:
		return true
	}
	return fn(v)
}

func eachObject(v any, fn func(map[string]any) bool) bool {
	switch x := v.(type) {
	case map[string]any:
		return fn(x)
	case []any:
		for _, e := range x {
			if !eachObject(e, fn) {
				return false
			}
		}
	}
	return true
}

// absentValue marks a key the event does not have (a JSON null is nil).
type absentValue struct{}

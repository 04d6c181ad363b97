package schemas

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Rule names of compatibility problems: each is a way a new version can reject data the
// previous version accepted. They are stable: scripts may switch on them.
const (
	RuleTypeNarrowed        = "type-narrowed"
	RuleRequiredAdded       = "required-added"
	RulePropertyRemoved     = "property-removed"
	RuleAdditionalNarrowed  = "additional-properties-narrowed"
	RuleEnumNarrowed        = "enum-narrowed"
	RuleMinimumRaised       = "minimum-raised"
	RuleMaximumLowered      = "maximum-lowered"
	RuleMinLengthRaised     = "min-length-raised"
	RuleMaxLengthLowered    = "max-length-lowered"
	RuleMinItemsRaised      = "min-items-raised"
	RuleMaxItemsLowered     = "max-items-lowered"
	RuleMinPropertiesRaised = "min-properties-raised"
	RuleMaxPropsLowered     = "max-properties-lowered"
	RuleMultipleOf          = "multiple-of-changed"
	RulePattern             = "pattern-changed"
	RuleFormat              = "format-changed"
	RuleUniqueItems         = "unique-items-added"
	RuleSchemaFalse         = "schema-false"
	RuleAnyOfNarrowed       = "any-of-narrowed"
	RuleNotChanged          = "not-changed"
	RuleKeywordChanged      = "keyword-changed"
	RuleRef                 = "ref"
)

// annotations are keywords that never change which data validates.
var annotations = map[string]bool{
	"title": true, "description": true, "examples": true, "default": true, "$comment": true,
	"deprecated": true, "readOnly": true, "writeOnly": true, "$id": true, "$anchor": true,
	"$dynamicAnchor": true, "$defs": true, "definitions": true, "$schema": true, "$vocabulary": true,
}

// handled are the keywords the checker reasons about; a change to any other keyword is
// reported as keyword-changed, because the checker cannot prove it harmless.
var handled = map[string]bool{
	"type": true, "enum": true, "const": true, "minimum": true, "maximum": true,
	"exclusiveMinimum": true, "exclusiveMaximum": true, "minLength": true, "maxLength": true,
	"minItems": true, "maxItems": true, "minProperties": true, "maxProperties": true,
	"multipleOf": true, "pattern": true, "format": true, "uniqueItems": true, "required": true,
	"properties": true, "additionalProperties": true, "patternProperties": true, "items": true,
	"prefixItems": true, "allOf": true, "anyOf": true, "oneOf": true, "not": true, "$ref": true,
}

// CheckCompatible reports every way next rejects data that prev accepted: the backward
// compatibility a consumer relies on when producers move to a new version. docs resolves
// $refs; pass the catalog both documents belong to (it may be nil when neither uses refs
// to other files).
//
// The check is conservative: a change it cannot prove harmless (a new pattern, a changed
// "if") is reported. It deliberately allows one common evolution that is breaking in
// theory: adding an optional property to an open object. It assumes producers never sent
// an undeclared property; closing the object (additionalProperties: false) is what makes
// that assumption enforceable.
func CheckCompatible(prev, next Document, docs *Catalog) Problems {
	c := &compat{docs: map[string]any{}, file: next.Origin, seen: map[string]bool{}}
	if docs != nil {
		for _, d := range docs.Docs {
			if v, err := decode(d.Raw); err == nil {
				c.docs[d.URL()] = v
			}
		}
	}
	ov, err := decode(prev.Raw)
	if err != nil {
		return Problems{{File: prev.Origin, Rule: RuleJSON, Message: "not JSON: " + err.Error()}}
	}
	nv, err := decode(next.Raw)
	if err != nil {
		return Problems{{File: next.Origin, Rule: RuleJSON, Message: "not JSON: " + err.Error()}}
	}
	c.docs[prev.URL()], c.docs[next.URL()] = ov, nv
	c.compare(node{ov, prev.URL()}, node{nv, next.URL()}, "")
	return c.problems
}

// node is a schema value and the document URL its $refs resolve against.
type node struct {
	v    any
	base string
}

type compat struct {
	docs     map[string]any
	file     string
	problems Problems
	seen     map[string]bool
	depth    int
}

func (c *compat) add(ptr, rule, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: c.file, Pointer: ptr, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// maxDepth stops pathological or recursive schemas.
const maxDepth = 64

// compare reports how n rejects data o accepts; ptr locates n in the new document.
func (c *compat) compare(o, n node, ptr string) {
	if c.depth > maxDepth {
		return
	}
	c.depth++
	defer func() { c.depth-- }()

	if jsonEqual(o.v, n.v) && c.sameTargets(o, n, map[string]bool{}) {
		return // the same schema, whose $refs reach the same schemas from either file
	}
	o = c.flatten(o, ptr)
	if nb, ok := n.v.(bool); ok {
		if ob, ok := o.v.(bool); nb || (ok && !ob) {
			return
		}
		c.add(ptr, RuleSchemaFalse, "schema is false: it accepts nothing")
		return
	}
	nm, ok := n.v.(map[string]any)
	if !ok {
		return // not a schema; Compile reports it
	}
	if ob, ok := o.v.(bool); ok {
		if !ob {
			return // nothing was valid before
		}
		o.v = map[string]any{}
	}
	om, ok := o.v.(map[string]any)
	if !ok {
		return
	}

	// new = $ref ∧ allOf… ∧ the rest: old must fit every part.
	if ref, ok := nm["$ref"].(string); ok {
		target, key, err := c.resolve(n.base, ref)
		if err != nil {
			c.problems = append(c.problems, Problem{File: c.file, Pointer: ptr + "/$ref", Rule: RuleRef, Message: err.Error()})
		} else if pair := key + "|" + fmt.Sprint(o.v); !c.seen[pair] {
			c.seen[pair] = true
			c.compare(o, target, ptr+"/$ref")
		}
	}
	if all, ok := nm["allOf"].([]any); ok {
		for i, b := range all {
			c.compare(o, node{b, n.base}, fmt.Sprintf("%s/allOf/%d", ptr, i))
		}
	}
	c.anyOf(o, n, om, nm, ptr)
	if not, ok := nm["not"]; ok {
		if prev, had := om["not"]; !had || !jsonEqual(prev, not) {
			c.add(ptr+"/not", RuleNotChanged, "\"not\" added or changed: the checker cannot prove it rejects nothing new")
		}
	}

	c.types(om, nm, ptr)
	c.enum(om, nm, ptr)
	c.lowerBound(om, nm, ptr)
	c.upperBound(om, nm, ptr)
	c.minCount(om, nm, ptr, "minLength", RuleMinLengthRaised)
	c.minCount(om, nm, ptr, "minItems", RuleMinItemsRaised)
	c.minCount(om, nm, ptr, "minProperties", RuleMinPropertiesRaised)
	c.maxCount(om, nm, ptr, "maxLength", RuleMaxLengthLowered)
	c.maxCount(om, nm, ptr, "maxItems", RuleMaxItemsLowered)
	c.maxCount(om, nm, ptr, "maxProperties", RuleMaxPropsLowered)
	c.multipleOf(om, nm, ptr)
	for kw, rule := range map[string]string{"pattern": RulePattern, "format": RuleFormat} {
		if nv, ok := nm[kw]; ok {
			if ov, had := om[kw]; !had {
				c.add(ptr+"/"+kw, rule, "%s %v added", kw, nv)
			} else if !jsonEqual(ov, nv) {
				c.add(ptr+"/"+kw, rule, "%s changed from %v to %v", kw, ov, nv)
			}
		}
	}
	if nm["uniqueItems"] == true && om["uniqueItems"] != true {
		c.add(ptr+"/uniqueItems", RuleUniqueItems, "uniqueItems added: arrays with repeated items are refused")
	}
	c.required(om, nm, ptr)
	c.properties(o, n, om, nm, ptr)
	c.items(o, n, om, nm, ptr)

	keys := make([]string, 0, len(nm))
	for k := range nm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if handled[k] || annotations[k] {
			continue
		}
		if ov, had := om[k]; !had || !jsonEqual(ov, nm[k]) {
			c.add(ptr+"/"+escapePointer(k), RuleKeywordChanged, "%q added or changed: the checker cannot prove it rejects nothing new", k)
		}
	}
}

// flatten turns the old schema into one object: its $ref target and allOf branches merged
// in. Old = a ∧ b accepts no more than the merge, so checking the merge is sound for keys
// that do not clash; a clash keeps the stricter-looking outer value.
func (c *compat) flatten(o node, ptr string) node {
	for range maxDepth {
		m, ok := o.v.(map[string]any)
		if !ok {
			return o
		}
		ref, hasRef := m["$ref"].(string)
		all, hasAll := m["allOf"].([]any)
		if !hasRef && !hasAll {
			return o
		}
		merged := make(map[string]any, len(m))
		base := o.base
		if hasRef {
			target, _, err := c.resolve(o.base, ref)
			if err != nil {
				c.problems = append(c.problems, Problem{File: c.file, Pointer: ptr, Rule: RuleRef, Message: "in the previous version: " + err.Error()})
			} else if tm, ok := target.v.(map[string]any); ok {
				mergeInto(merged, tm)
				if len(m) == 1 {
					base = target.base
				}
			} else if target.v == false {
				return target
			}
		}
		if hasAll {
			for _, b := range all {
				if bm, ok := b.(map[string]any); ok {
					mergeInto(merged, bm)
				}
			}
		}
		rest := make(map[string]any, len(m))
		for k, v := range m {
			if k != "$ref" && k != "allOf" {
				rest[k] = v
			}
		}
		mergeInto(merged, rest)
		o = node{merged, base}
	}
	return o
}

// mergeInto adds src's keywords to dst as a conjunction would: property maps are united
// and required lists joined; any other clash keeps src's value.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		switch k {
		case "properties", "patternProperties", "$defs":
			dm, dok := dst[k].(map[string]any)
			sm, sok := v.(map[string]any)
			if dok && sok {
				united := make(map[string]any, len(dm)+len(sm))
				for name, sub := range dm {
					united[name] = sub
				}
				for name, sub := range sm {
					united[name] = sub
				}
				dst[k] = united
				continue
			}
		case "required":
			da, dok := dst[k].([]any)
			sa, sok := v.([]any)
			if dok && sok {
				joined := append([]any(nil), da...)
				for _, x := range sa {
					if !slices.ContainsFunc(joined, func(y any) bool { return jsonEqual(x, y) }) {
						joined = append(joined, x)
					}
				}
				dst[k] = joined
				continue
			}
		}
		dst[k] = v
	}
}

// resolve finds a $ref's target among the catalog documents.
func (c *compat) resolve(base, ref string) (node, string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return node{}, "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return node{}, "", fmt.Errorf("$ref %q is not a URI reference: %v", ref, err)
	}
	u := b.ResolveReference(r)
	frag := u.Fragment
	u.Fragment = ""
	doc, ok := c.docs[u.String()]
	if !ok {
		return node{}, "", fmt.Errorf("$ref %q is not in the catalog", ref)
	}
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return node{}, "", fmt.Errorf("$ref %q uses an anchor; the compatibility check follows JSON pointers only", ref)
	}
	v := doc
	for _, tok := range strings.Split(frag, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			if v, ok = x[tok]; !ok {
				return node{}, "", fmt.Errorf("$ref %q: no %q", ref, tok)
			}
		case []any:
			var i int
			if _, err := fmt.Sscan(tok, &i); err != nil || i < 0 || i >= len(x) {
				return node{}, "", fmt.Errorf("$ref %q: no index %q", ref, tok)
			}
			v = x[i]
		default:
			return node{}, "", fmt.Errorf("$ref %q: %q is not inside an object or array", ref, tok)
		}
	}
	return node{v, u.String()}, u.String() + "#" + frag, nil
}

// anyOf: new = anyOf(b…) holds old when each alternative old allows fits one new branch.
// oneOf is checked the same way: the check assumes its branches exclude each other (as in
// a union with a discriminator), which adding a branch keeps.
func (c *compat) anyOf(o, n node, om, nm map[string]any, ptr string) {
	for _, kw := range []string{"anyOf", "oneOf"} {
		branches, ok := nm[kw].([]any)
		if !ok || len(branches) == 0 || jsonEqual(om[kw], nm[kw]) && c.sameTargets(node{om[kw], o.base}, node{nm[kw], n.base}, map[string]bool{}) {
			continue // absent, invalid (Compile reports it), or unchanged
		}
		olds := []node{o}
		if ob, ok := om[kw].([]any); ok && len(ob) > 0 {
			olds = olds[:0]
			for _, b := range ob {
				merged := map[string]any{}
				for k, v := range om {
					if k != kw {
						merged[k] = v
					}
				}
				if bm, ok := b.(map[string]any); ok {
					mergeInto(merged, bm)
				}
				olds = append(olds, node{merged, o.base})
			}
		}
		for i, old := range olds {
			if !c.fitsOne(old, branches, n.base) {
				what := "the previous schema"
				if len(olds) > 1 {
					what = fmt.Sprintf("the previous %s branch %d", kw, i)
				}
				c.add(ptr+"/"+kw, RuleAnyOfNarrowed, "%s no longer covers %s", kw, what)
			}
		}
	}
}

func (c *compat) fitsOne(o node, branches []any, base string) bool {
	for _, b := range branches {
		sub := &compat{docs: c.docs, file: c.file, seen: map[string]bool{}, depth: c.depth}
		sub.compare(o, node{b, base}, "")
		if len(sub.problems) == 0 {
			return true
		}
		// A $ref that does not resolve makes the branch unjudgeable, not narrower:
		// report the ref itself.
		if onlyRefProblems(sub.problems) {
			c.problems = append(c.problems, sub.problems...)
			return true
		}
	}
	return false
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if r := num(x); r != nil && r.IsInt() {
			return "integer"
		}
		return "number"
	}
	return "unknown"
}

func onlyRefProblems(ps Problems) bool {
	for _, p := range ps {
		if p.Rule != RuleRef {
			return false
		}
	}
	return true
}

var allTypes = []string{"array", "boolean", "integer", "null", "number", "object", "string"}

// typeSet is the JSON types a schema admits: its "type", else the types of its enum or
// const values, else all.
func typeSet(m map[string]any) []string {
	if _, ok := m["type"]; !ok {
		if vals, ok := allowed(m); ok {
			var out []string
			for _, v := range vals {
				out = append(out, jsonType(v))
			}
			return out
		}
	}
	switch t := m["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return allTypes
}

func (c *compat) types(om, nm map[string]any, ptr string) {
	if _, ok := nm["type"]; !ok {
		return
	}
	newTypes := typeSet(nm)
	has := func(t string) bool {
		for _, x := range newTypes {
			if x == t || (t == "integer" && x == "number") {
				return true
			}
		}
		return false
	}
	var lost []string
	for _, t := range typeSet(om) {
		if !has(t) {
			lost = append(lost, t)
		}
	}
	if len(lost) > 0 {
		c.add(ptr+"/type", RuleTypeNarrowed, "type no longer allows %s", strings.Join(lost, ", "))
	}
}

// allowed returns the values const/enum allow, nil when any value is allowed.
func allowed(m map[string]any) ([]any, bool) {
	if v, ok := m["const"]; ok {
		return []any{v}, true
	}
	if e, ok := m["enum"].([]any); ok {
		return e, true
	}
	return nil, false
}

func (c *compat) enum(om, nm map[string]any, ptr string) {
	newVals, ok := allowed(nm)
	if !ok {
		return
	}
	kw := "enum"
	if _, isConst := nm["const"]; isConst {
		kw = "const"
	}
	oldVals, had := allowed(om)
	if !had {
		c.add(ptr+"/"+kw, RuleEnumNarrowed, "%s added: only %s allowed now", kw, list(newVals))
		return
	}
	var lost []any
	for _, ov := range oldVals {
		found := false
		for _, nv := range newVals {
			if jsonEqual(ov, nv) {
				found = true
				break
			}
		}
		if !found {
			lost = append(lost, ov)
		}
	}
	if len(lost) > 0 {
		c.add(ptr+"/"+kw, RuleEnumNarrowed, "%s no longer allows %s", kw, list(lost))
	}
}

func list(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		b, _ := json.Marshal(v)
		parts[i] = string(b)
	}
	return strings.Join(parts, ", ")
}

// bound is a numeric limit and whether it excludes its value.
type bound struct {
	v    *big.Rat
	excl bool
}

func num(v any) *big.Rat {
	n, ok := v.(json.Number)
	if !ok || !modest(string(n)) {
		return nil
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return nil
	}
	return r
}

// modest reports whether a number literal is small enough to compare exactly: big.Rat
// would expand an exponent like 1e999999999 into a number of a gigabyte.
func modest(s string) bool {
	if len(s) > 100 {
		return false
	}
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return true
	}
	exp := strings.TrimLeft(s[i+1:], "+-")
	return len(exp) < 4
}

// tightest returns the binding limit among a plain and an exclusive keyword; lower picks
// the larger value, upper the smaller.
func tightest(m map[string]any, plain, exclusive string, lower bool) *bound {
	var b *bound
	consider := func(v *big.Rat, excl bool) {
		if v == nil {
			return
		}
		if b == nil {
			b = &bound{v, excl}
			return
		}
		cmp := v.Cmp(b.v)
		if !lower {
			cmp = -cmp
		}
		if cmp > 0 || (cmp == 0 && excl) {
			b = &bound{v, excl}
		}
	}
	consider(num(m[plain]), false)
	consider(num(m[exclusive]), true)
	return b
}

// covers reports whether old limit o is at least as strict as new limit n.
func covers(o, n *bound, lower bool) bool {
	if o == nil {
		return false
	}
	cmp := o.v.Cmp(n.v)
	if !lower {
		cmp = -cmp
	}
	return cmp > 0 || (cmp == 0 && (o.excl || !n.excl))
}

func (c *compat) lowerBound(om, nm map[string]any, ptr string) {
	c.bound(om, nm, ptr, "minimum", "exclusiveMinimum", true, RuleMinimumRaised)
}

func (c *compat) upperBound(om, nm map[string]any, ptr string) {
	c.bound(om, nm, ptr, "maximum", "exclusiveMaximum", false, RuleMaximumLowered)
}

func (c *compat) bound(om, nm map[string]any, ptr, plain, exclusive string, lower bool, rule string) {
	n := tightest(nm, plain, exclusive, lower)
	if n == nil || covers(tightest(om, plain, exclusive, lower), n, lower) {
		return
	}
	kw := plain
	if n.excl {
		kw = exclusive
	}
	if o := tightest(om, plain, exclusive, lower); o != nil {
		c.add(ptr+"/"+kw, rule, "%s %s (was %s %s)", kw, n.v.RatString(), describe(o, plain, exclusive), o.v.RatString())
		return
	}
	c.add(ptr+"/"+kw, rule, "%s %s added", kw, n.v.RatString())
}

func describe(b *bound, plain, exclusive string) string {
	if b.excl {
		return exclusive
	}
	return plain
}

func (c *compat) minCount(om, nm map[string]any, ptr, kw, rule string) {
	n := num(nm[kw])
	if n == nil || n.Sign() <= 0 {
		return
	}
	if o := num(om[kw]); o == nil {
		c.add(ptr+"/"+kw, rule, "%s %s added", kw, n.RatString())
	} else if n.Cmp(o) > 0 {
		c.add(ptr+"/"+kw, rule, "%s raised from %s to %s", kw, o.RatString(), n.RatString())
	}
}

func (c *compat) maxCount(om, nm map[string]any, ptr, kw, rule string) {
	n := num(nm[kw])
	if n == nil {
		return
	}
	if o := num(om[kw]); o == nil {
		c.add(ptr+"/"+kw, rule, "%s %s added", kw, n.RatString())
	} else if n.Cmp(o) < 0 {
		c.add(ptr+"/"+kw, rule, "%s lowered from %s to %s", kw, o.RatString(), n.RatString())
	}
}

func (c *compat) multipleOf(om, nm map[string]any, ptr string) {
	n := num(nm["multipleOf"])
	if n == nil || n.Sign() <= 0 {
		return // not a valid multipleOf; Compile reports it
	}
	o := num(om["multipleOf"])
	if o == nil || o.Sign() <= 0 {
		c.add(ptr+"/multipleOf", RuleMultipleOf, "multipleOf %s added", n.RatString())
		return
	}
	if q := new(big.Rat).Quo(o, n); !q.IsInt() {
		c.add(ptr+"/multipleOf", RuleMultipleOf, "multipleOf changed from %s to %s, which does not divide it", o.RatString(), n.RatString())
	}
}

func stringSet(v any) map[string]bool {
	set := map[string]bool{}
	if xs, ok := v.([]any); ok {
		for _, x := range xs {
			if s, ok := x.(string); ok {
				set[s] = true
			}
		}
	}
	return set
}

func (c *compat) required(om, nm map[string]any, ptr string) {
	oldReq := stringSet(om["required"])
	xs, _ := nm["required"].([]any)
	for _, x := range xs {
		if s, ok := x.(string); ok && !oldReq[s] {
			c.add(ptr+"/required", RuleRequiredAdded, "property %q is now required", s)
		}
	}
}

// open reports whether additionalProperties (or items) lets anything through.
func open(m map[string]any, kw string) bool {
	v, ok := m[kw]
	if !ok || v == true {
		return true
	}
	vm, isMap := v.(map[string]any)
	return isMap && len(vm) == 0
}

// sub returns a subschema keyword as a node, true when absent.
func sub(m map[string]any, kw string) any {
	if v, ok := m[kw]; ok {
		return v
	}
	return true
}

func (c *compat) properties(o, n node, om, nm map[string]any, ptr string) {
	oldProps, _ := om["properties"].(map[string]any)
	newProps, _ := nm["properties"].(map[string]any)
	newPatterns, _ := nm["patternProperties"].(map[string]any)
	oldPatterns, _ := om["patternProperties"].(map[string]any)

	// What the new schema applies to a property it does not list.
	forUnlisted := func(name string) (any, string) {
		for p, s := range newPatterns {
			if re, err := regexp.Compile(p); err == nil && re.MatchString(name) {
				return s, "/patternProperties/" + escapePointer(p)
			}
		}
		return sub(nm, "additionalProperties"), "/additionalProperties"
	}
	for _, name := range sortedKeys(oldProps) {
		if ns, ok := newProps[name]; ok {
			c.compare(node{oldProps[name], o.base}, node{ns, n.base}, ptr+"/properties/"+escapePointer(name))
			continue
		}
		s, where := forUnlisted(name)
		if s == false {
			c.add(ptr+"/properties", RulePropertyRemoved, "property %q removed while additional properties are refused", name)
			continue
		}
		c.compare(node{oldProps[name], o.base}, node{s, n.base}, ptr+where)
	}
	for _, name := range sortedKeys(newProps) {
		if _, ok := oldProps[name]; ok || open(om, "additionalProperties") {
			continue // open objects: adding an optional property is allowed (see CheckCompatible)
		}
		c.compare(node{sub(om, "additionalProperties"), o.base}, node{newProps[name], n.base}, ptr+"/properties/"+escapePointer(name))
	}
	for _, p := range sortedKeys(newPatterns) {
		if os, ok := oldPatterns[p]; ok {
			c.compare(node{os, o.base}, node{newPatterns[p], n.base}, ptr+"/patternProperties/"+escapePointer(p))
		} else {
			c.add(ptr+"/patternProperties/"+escapePointer(p), RuleKeywordChanged, "patternProperties %q added: properties it matches are newly constrained", p)
		}
	}
	if !open(nm, "additionalProperties") {
		for _, p := range sortedKeys(oldPatterns) {
			if _, ok := newPatterns[p]; !ok {
				c.add(ptr+"/patternProperties", RuleKeywordChanged, "patternProperties %q removed: properties it matched now meet additionalProperties", p)
			}
		}
	}
	if _, ok := nm["additionalProperties"]; ok {
		if nm["additionalProperties"] == false && om["additionalProperties"] != false {
			c.add(ptr+"/additionalProperties", RuleAdditionalNarrowed, "additionalProperties set to false: properties not listed are refused")
		} else if nm["additionalProperties"] != false {
			c.compare(node{sub(om, "additionalProperties"), o.base}, node{nm["additionalProperties"], n.base}, ptr+"/additionalProperties")
		}
	}
}

func (c *compat) items(o, n node, om, nm map[string]any, ptr string) {
	oldPrefix, _ := om["prefixItems"].([]any)
	newPrefix, _ := nm["prefixItems"].([]any)
	at := func(prefix []any, m map[string]any, i int) (any, string) {
		if i < len(prefix) {
			return prefix[i], fmt.Sprintf("/prefixItems/%d", i)
		}
		return sub(m, "items"), "/items"
	}
	for i := 0; i < max(len(oldPrefix), len(newPrefix)); i++ {
		os, _ := at(oldPrefix, om, i)
		ns, where := at(newPrefix, nm, i)
		c.compare(node{os, o.base}, node{ns, n.base}, ptr+where)
	}
	if _, ok := nm["items"]; ok {
		c.compare(node{sub(om, "items"), o.base}, node{nm["items"], n.base}, ptr+"/items")
	}
}

// sameTargets reports whether every $ref inside two equal schemas resolves, from each
// one's document, to equal schemas (recursively; a ref already being checked counts as
// the same). Refs that resolve on neither side are the same too: Compile reports them.
func (c *compat) sameTargets(o, n node, seen map[string]bool) bool {
	if o.base == n.base || !hasRef(n.v) {
		return true
	}
	for _, ref := range refs(n.v, nil) {
		ot, okey, oerr := c.resolve(o.base, ref)
		nt, nkey, nerr := c.resolve(n.base, ref)
		if oerr != nil || nerr != nil {
			if (oerr == nil) != (nerr == nil) {
				return false
			}
			continue
		}
		if pair := okey + "|" + nkey; !seen[pair] {
			seen[pair] = true
			if !jsonEqual(ot.v, nt.v) || !c.sameTargets(ot, nt, seen) {
				return false
			}
		}
	}
	return true
}

// refs lists the $ref values inside a schema.
func refs(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["$ref"].(string); ok {
			out = append(out, r)
		}
		for _, e := range x {
			out = refs(e, out)
		}
	case []any:
		for _, e := range x {
			out = refs(e, out)
		}
	}
	return out
}

func hasRef(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["$ref"]; ok {
			return true
		}
		for _, e := range x {
			if hasRef(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasRef(e) {
				return true
			}
		}
	}
	return false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonEqual compares decoded JSON values, numbers by value (1 equals 1.0).
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		na, nb := num(x), num(b)
		return na != nil && nb != nil && na.Cmp(nb) == 0
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

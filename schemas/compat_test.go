package schemas_test

import (
	"slices"
	"sort"
	"testing"

	"github.com/jetmesh/jetmesh/schemas"
)

func doc(t string, v int, raw string) schemas.Document {
	return schemas.Document{Type: t, Version: v, Origin: "cat/" + t + "/v" + string(rune('0'+v)) + ".json", Raw: []byte(raw)}
}

// TestCheckCompatible is the evolution table: each case is one change from v1 to v2 and
// the rules it must trip (none for a compatible change).
func TestCheckCompatible(t *testing.T) {
	obj := func(props string) string { return `{"type":"object","properties":{` + props + `}}` }
	closed := func(props string) string {
		return `{"type":"object","properties":{` + props + `},"additionalProperties":false}`
	}
	tests := []struct {
		name     string
		old, new string
		want     []string // rules, sorted; nil = compatible
		wantPtr  string   // pointer of the first problem, when set
	}{
		// Compatible changes.
		{name: "identical", old: obj(`"a":{"type":"string"}`), new: obj(`"a":{"type":"string"}`)},
		{name: "optional property added to open object", old: obj(`"a":{"type":"string"}`), new: obj(`"a":{"type":"string"},"b":{"type":"integer"}`)},
		{name: "property added to closed object", old: closed(`"a":{}`), new: closed(`"a":{},"b":{"type":"string"}`)},
		{name: "required removed", old: `{"required":["a","b"]}`, new: `{"required":["a"]}`},
		{name: "type widened", old: obj(`"a":{"type":"string"}`), new: obj(`"a":{"type":["string","null"]}`)},
		{name: "integer widened to number", old: `{"type":"integer"}`, new: `{"type":"number"}`},
		{name: "type removed", old: `{"type":"string"}`, new: `{}`},
		{name: "enum widened", old: `{"enum":["a","b"]}`, new: `{"enum":["a","b","c"]}`},
		{name: "enum removed", old: `{"enum":["a"]}`, new: `{"type":"string"}`},
		{name: "const widened to enum", old: `{"const":"a"}`, new: `{"enum":["a","b"]}`},
		{name: "minimum lowered", old: `{"minimum":10}`, new: `{"minimum":0}`},
		{name: "maximum raised", old: `{"maximum":10}`, new: `{"maximum":100}`},
		{name: "3 equals 3.0", old: `{"maximum":3}`, new: `{"maximum":3.0}`},
		{name: "exponent form equal", old: `{"maximum":1000}`, new: `{"maximum":1e3}`},
		{name: "exclusive to inclusive at same value", old: `{"exclusiveMinimum":0}`, new: `{"minimum":0}`},
		{name: "maxLength raised", old: `{"maxLength":10}`, new: `{"maxLength":20}`},
		{name: "minItems lowered", old: `{"minItems":2}`, new: `{"minItems":1}`},
		{name: "pattern removed", old: `{"pattern":"^a"}`, new: `{}`},
		{name: "additionalProperties false removed", old: closed(`"a":{}`), new: obj(`"a":{}`)},
		{name: "multipleOf divides old", old: `{"multipleOf":10}`, new: `{"multipleOf":5}`},
		{name: "anyOf branch added", old: `{"anyOf":[{"type":"string"}]}`, new: `{"anyOf":[{"type":"string"},{"type":"integer"}]}`},
		{name: "oneOf branch added", old: `{"oneOf":[{"const":"a"}]}`, new: `{"oneOf":[{"const":"a"},{"const":"b"}]}`},
		{name: "annotations changed", old: `{"title":"x","description":"y"}`, new: `{"title":"z","examples":[1],"deprecated":true}`},
		{name: "nested property widened", old: obj(`"a":` + obj(`"b":{"type":"integer"}`)), new: obj(`"a":` + obj(`"b":{"type":"number"}`))},
		{name: "items widened", old: `{"items":{"type":"integer"}}`, new: `{"items":{"type":["integer","string"]}}`},
		{name: "false becomes true", old: `false`, new: `true`},

		// Breaking changes.
		{name: "required added", old: obj(`"a":{}`), new: `{"type":"object","properties":{"a":{}},"required":["a"]}`, want: []string{"required-added"}, wantPtr: "/required"},
		{name: "property removed from closed object", old: closed(`"a":{},"b":{}`), new: closed(`"a":{}`), want: []string{"property-removed"}},
		{name: "object closed", old: obj(`"a":{}`), new: closed(`"a":{}`), want: []string{"additional-properties-narrowed"}},
		{name: "additionalProperties narrowed", old: `{"additionalProperties":{"type":["string","integer"]}}`, new: `{"additionalProperties":{"type":"string"}}`, want: []string{"type-narrowed"}, wantPtr: "/additionalProperties/type"},
		{name: "type narrowed", old: obj(`"a":{"type":["string","null"]}`), new: obj(`"a":{"type":"string"}`), want: []string{"type-narrowed"}, wantPtr: "/properties/a/type"},
		{name: "number narrowed to integer", old: `{"type":"number"}`, new: `{"type":"integer"}`, want: []string{"type-narrowed"}},
		{name: "type added", old: `{}`, new: `{"type":"object"}`, want: []string{"type-narrowed"}},
		{name: "enum narrowed", old: `{"enum":["a","b"]}`, new: `{"enum":["a"]}`, want: []string{"enum-narrowed"}},
		{name: "enum added", old: `{"type":"string"}`, new: `{"type":"string","enum":["a"]}`, want: []string{"enum-narrowed"}},
		{name: "const changed", old: `{"const":1}`, new: `{"const":2}`, want: []string{"enum-narrowed"}},
		{name: "minimum raised", old: `{"minimum":0}`, new: `{"minimum":1}`, want: []string{"minimum-raised"}, wantPtr: "/minimum"},
		{name: "minimum added", old: `{"type":"number"}`, new: `{"type":"number","minimum":0}`, want: []string{"minimum-raised"}},
		{name: "inclusive to exclusive", old: `{"minimum":0}`, new: `{"exclusiveMinimum":0}`, want: []string{"minimum-raised"}},
		{name: "maximum lowered", old: `{"maximum":10}`, new: `{"maximum":9.5}`, want: []string{"maximum-lowered"}},
		{name: "exclusiveMaximum added", old: `{}`, new: `{"exclusiveMaximum":5}`, want: []string{"maximum-lowered"}},
		{name: "minLength raised", old: `{"minLength":1}`, new: `{"minLength":2}`, want: []string{"min-length-raised"}},
		{name: "maxLength lowered", old: `{"maxLength":10}`, new: `{"maxLength":5}`, want: []string{"max-length-lowered"}},
		{name: "maxLength added", old: `{}`, new: `{"maxLength":5}`, want: []string{"max-length-lowered"}},
		{name: "minItems raised", old: `{"minItems":0}`, new: `{"minItems":1}`, want: []string{"min-items-raised"}},
		{name: "maxItems lowered", old: `{"maxItems":3}`, new: `{"maxItems":2}`, want: []string{"max-items-lowered"}},
		{name: "minProperties added", old: `{}`, new: `{"minProperties":1}`, want: []string{"min-properties-raised"}},
		{name: "maxProperties lowered", old: `{"maxProperties":3}`, new: `{"maxProperties":1}`, want: []string{"max-properties-lowered"}},
		{name: "multipleOf added", old: `{}`, new: `{"multipleOf":2}`, want: []string{"multiple-of-changed"}},
		{name: "multipleOf not dividing", old: `{"multipleOf":4}`, new: `{"multipleOf":3}`, want: []string{"multiple-of-changed"}},
		{name: "pattern added", old: `{"type":"string"}`, new: `{"type":"string","pattern":"^[a-z]+$"}`, want: []string{"pattern-changed"}},
		{name: "pattern changed", old: `{"pattern":"^a"}`, new: `{"pattern":"^b"}`, want: []string{"pattern-changed"}},
		{name: "format added", old: `{"type":"string"}`, new: `{"type":"string","format":"email"}`, want: []string{"format-changed"}},
		{name: "uniqueItems added", old: `{"type":"array"}`, new: `{"type":"array","uniqueItems":true}`, want: []string{"unique-items-added"}},
		{name: "items narrowed", old: `{"items":{"type":["integer","string"]}}`, new: `{"items":{"type":"integer"}}`, want: []string{"type-narrowed"}, wantPtr: "/items/type"},
		{name: "prefixItems removed under closed items", old: `{"prefixItems":[{"type":"string"}],"items":{"type":"integer"}}`, new: `{"items":{"type":"integer"}}`, want: []string{"type-narrowed"}},
		{name: "nested required added", old: obj(`"a":` + obj(`"b":{}`)), new: obj(`"a":{"type":"object","properties":{"b":{}},"required":["b"]}`), want: []string{"required-added"}, wantPtr: "/properties/a/required"},
		{name: "schema becomes false", old: obj(`"a":{}`), new: obj(`"a":false`), want: []string{"schema-false"}},
		{name: "anyOf branch removed", old: `{"anyOf":[{"type":"string"},{"type":"integer"}]}`, new: `{"anyOf":[{"type":"string"}]}`, want: []string{"any-of-narrowed"}},
		{name: "anyOf added", old: `{}`, new: `{"anyOf":[{"type":"string"},{"type":"integer"}]}`, want: []string{"any-of-narrowed"}},
		{name: "not added", old: `{}`, new: `{"not":{"const":1}}`, want: []string{"not-changed"}},
		{name: "if/then added", old: `{}`, new: `{"if":{"required":["a"]},"then":{"required":["b"]}}`, want: []string{"keyword-changed", "keyword-changed"}},
		{name: "dependentRequired added", old: `{}`, new: `{"dependentRequired":{"a":["b"]}}`, want: []string{"keyword-changed"}},
		{name: "allOf branch adds constraint", old: `{"type":"string"}`, new: `{"allOf":[{"type":"string"},{"maxLength":3}]}`, want: []string{"max-length-lowered"}, wantPtr: "/allOf/1/maxLength"},
		{name: "patternProperties added", old: `{}`, new: `{"patternProperties":{"^x-":{"type":"string"}}}`, want: []string{"keyword-changed"}},
		{name: "several problems at once", old: obj(`"a":{"type":"string"},"b":{"minimum":0}`), new: `{"type":"object","properties":{"a":{"type":"integer"},"b":{"minimum":5}},"required":["a"]}`,
			want: []string{"minimum-raised", "required-added", "type-narrowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := schemas.CheckCompatible(doc("t", 1, tt.old), doc("t", 2, tt.new), nil)
			var got []string
			for _, p := range problems {
				got = append(got, p.Rule)
				if p.File != "cat/t/v2.json" || p.Message == "" {
					t.Errorf("problem %+v: want file cat/t/v2.json and a message", p)
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("rules = %v, want %v\n%v", got, tt.want, problems)
			}
			if tt.wantPtr != "" && problems[0].Pointer != tt.wantPtr {
				t.Errorf("pointer = %q, want %q", problems[0].Pointer, tt.wantPtr)
			}
		})
	}
	if len(tests) < 30 {
		t.Fatalf("the table must keep at least 30 evolution cases, has %d", len(tests))
	}
}

// TestCheckCompatibleFollowsRefs: a $ref to another catalog file or to $defs is compared
// through, and a recursive schema terminates.
func TestCheckCompatibleFollowsRefs(t *testing.T) {
	money1 := doc("money", 1, `{"type":"object","properties":{"cents":{"type":"integer"}}}`)
	money2 := doc("money", 2, `{"type":"object","properties":{"cents":{"type":"integer","minimum":0}}}`)
	v1 := doc("orders.created", 1, `{"type":"object","properties":{"total":{"$ref":"../money/v1.json"}}}`)
	v2 := doc("orders.created", 2, `{"type":"object","properties":{"total":{"$ref":"../money/v2.json"}}}`)
	cat := schemas.NewCatalog([]schemas.Document{money1, money2, v1, v2})
	problems := schemas.CheckCompatible(v1, v2, cat)
	if len(problems) != 1 || problems[0].Rule != schemas.RuleMinimumRaised || problems[0].Pointer != "/properties/total/$ref/properties/cents/minimum" {
		t.Fatalf("problems = %v, want one minimum-raised through the $ref", problems)
	}

	tree1 := doc("tree", 1, `{"$defs":{"node":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}}}},"$ref":"#/$defs/node"}`)
	tree2 := doc("tree", 2, `{"$defs":{"node":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/node"}},"name":{"type":"string"}}}},"$ref":"#/$defs/node"}`)
	if problems := schemas.CheckCompatible(tree1, tree2, nil); len(problems) != 0 {
		t.Fatalf("recursive schema: %v", problems)
	}
	broken := doc("tree", 2, `{"$ref":"../nowhere/v1.json"}`)
	if problems := schemas.CheckCompatible(tree1, broken, nil); len(problems) != 1 || problems[0].Rule != schemas.RuleRef {
		t.Fatalf("unresolvable ref: %v", problems)
	}
}

// TestOldAllOfIsUnited: properties spread over an old allOf are all compared, so a
// property narrowed in the new version is caught whichever branch declared it.
func TestOldAllOfIsUnited(t *testing.T) {
	v1 := doc("t", 1, `{"allOf":[{"properties":{"a":{"type":["string","null"]}},"required":["a"]},{"properties":{"b":{}},"required":["b"]}]}`)
	v2 := doc("t", 2, `{"properties":{"a":{"type":"string"},"b":{}},"required":["a","b"]}`)
	problems := schemas.CheckCompatible(v1, v2, nil)
	if len(problems) != 1 || problems[0].Rule != schemas.RuleTypeNarrowed || problems[0].Pointer != "/properties/a/type" {
		t.Fatalf("problems = %v", problems)
	}
}

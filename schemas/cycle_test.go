package schemas_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/schemas"
)

// TestRefCycleCaught: $refs that loop without descending into the data made every event of
// the types refused at publish, yet passed check; now check names the loop. Recursion
// through a property is a normal recursive schema and passes.
func TestRefCycleCaught(t *testing.T) {
	tests := []struct {
		name      string
		docs      []schemas.Document
		wantCycle bool
	}{
		{"two types refer to each other directly", []schemas.Document{
			doc("a.a", 1, `{"$ref":"../b.b/v1.json"}`), doc("b.b", 1, `{"$ref":"../a.a/v1.json"}`)}, true},
		{"through allOf and a $defs entry", []schemas.Document{
			doc("a.a", 1, `{"allOf":[{"$ref":"#/$defs/x"}],"$defs":{"x":{"anyOf":[{"$ref":"../b.b/v1.json"}]}}}`),
			doc("b.b", 1, `{"type":"object","properties":{"n":{"$ref":"#/$defs/loop"}},"$defs":{"loop":{"$ref":"../a.a/v1.json"}}}`)}, false},
		{"a loop under a property", []schemas.Document{
			doc("a.a", 1, `{"type":"object","properties":{"p":{"$ref":"#/$defs/l"}},"$defs":{"l":{"not":{"$ref":"#/$defs/l"}}}}`)}, true},
		{"recursion through properties", []schemas.Document{
			doc("a.a", 1, `{"type":"object","properties":{"b":{"$ref":"../b.b/v1.json"}}}`),
			doc("b.b", 1, `{"type":"object","properties":{"a":{"$ref":"../a.a/v1.json"}}}`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report := schemas.Check(schemas.NewCatalog(tt.docs), nil)
			var cycles []string
			for _, p := range report.Problems {
				if p.Rule == schemas.RuleRefCycle {
					cycles = append(cycles, p.String())
				}
			}
			if (len(cycles) > 0) != tt.wantCycle {
				t.Fatalf("ref-cycle problems %q, want any: %v (all problems %v)", cycles, tt.wantCycle, report.Problems)
			}
			if tt.wantCycle && !strings.Contains(cycles[0], "a.a/v1.json") {
				t.Errorf("the problem does not show the loop: %s", cycles[0])
			}
			set, _ := schemas.Compile(schemas.NewCatalog(tt.docs))
			err := set.Validate(ev("a.a", `{"p":1,"b":{"a":{}}}`))
			if tt.wantCycle && (!errors.Is(err, schemas.ErrSchemaInvalid) || !strings.Contains(err.Error(), "$ref cycle")) {
				t.Errorf("an event of a type with a loop: %v, want refused naming the loop", err)
			}
			if !tt.wantCycle && err != nil {
				t.Errorf("valid event refused: %v", err)
			}
		})
	}
}

// TestPushVisibleAllAtOnce: a catalog whose files refer across files is pushed references
// first, and a registry that holds a document before the one it refers to keeps the type's
// previous version in force instead of refusing its events ("… is not in the catalog").
func TestPushVisibleAllAtOnce(t *testing.T) {
	local := schemas.NewCatalog([]schemas.Document{
		doc("a.a", 1, `{"type":"object"}`),
		doc("a.a", 2, `{"type":"object","properties":{"m":{"$ref":"../z.money/v1.json"}}}`),
		doc("z.money", 1, `{"type":"object","properties":{"cents":{"type":"integer","minimum":0}}}`),
	})
	registry := schemas.NewCatalog([]schemas.Document{doc("a.a", 1, `{"type":"object"}`)})
	plan := schemas.PlanPush(local, registry, nil)
	var order []string
	for _, d := range plan.Add {
		order = append(order, d.Key())
	}
	if !slices.Equal(order, []string{"z.money.v1", "a.a.v2"}) {
		t.Fatalf("push order %v, want the referenced document first", order)
	}

	// The registry as a watcher sees it between two writes, in the wrong order.
	partial := schemas.NewCatalog([]schemas.Document{local.Docs[0], local.Docs[1]})
	set, problems, held := schemas.CompileComplete(partial)
	if len(problems) != 0 || len(held) != 1 || held[0].Key() != "a.a.v2" {
		t.Fatalf("problems %v, held %v", problems, held)
	}
	if err := set.Validate(ev("a.a", `{"m":{"cents":-1}}`)); err != nil {
		t.Fatalf("v1 should stay in force while v2 waits for z.money: %v", err)
	}
	set, _, held = schemas.CompileComplete(local)
	if len(held) != 0 {
		t.Fatalf("held %v with every document present", held)
	}
	if err := set.Validate(ev("a.a", `{"m":{"cents":-1}}`)); !errors.Is(err, schemas.ErrSchemaInvalid) {
		t.Fatalf("v2 in force: %v, want the money rule applied", err)
	}
}

package schemas_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/schemas"
)

const exampleCatalog = "../examples/catalog"

func loadExample(t *testing.T) *schemas.Catalog {
	t.Helper()
	c, problems, err := schemas.LoadDir(exampleCatalog)
	if err != nil || len(problems) != 0 {
		t.Fatalf("LoadDir: %v %v", err, problems)
	}
	return c
}

func TestExampleCatalogPasses(t *testing.T) {
	c := loadExample(t)
	if got := strings.Join(c.Types(), " "); got != "customers.signed-up money orders.created payments.captured" {
		t.Fatalf("types = %s", got)
	}
	if r := schemas.Check(c, nil); !r.OK(false) {
		t.Fatalf("check: %v %v", r.Problems, r.Breaking)
	}
}

// TestBrokenCatalog: every kind of layout and schema problem is reported, all in one run,
// each naming its file.
func TestBrokenCatalog(t *testing.T) {
	dir := filepath.Join("testdata", "broken")
	c, layout, err := schemas.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := schemas.Check(c, layout)
	want := map[string]string{
		"stray.json":              schemas.RuleLayout,
		"Orders/v1.json":          schemas.RuleTypeName,
		"orders.created/v01.json": schemas.RuleVersionName,
		"gap.type/v3.json":        schemas.RuleVersionGap,
		"bad.schema/v1.json":      schemas.RuleSchema,
		"bad.schema/v2.json":      schemas.RuleJSON,
		"refs/v1.json":            schemas.RuleSchema,
	}
	got := map[string]string{}
	for _, p := range r.Problems {
		rel, _ := filepath.Rel(dir, p.File)
		got[filepath.ToSlash(rel)] = p.Rule
		if p.Message == "" {
			t.Errorf("%v: no message", p)
		}
	}
	for file, rule := range want {
		if got[file] != rule {
			t.Errorf("%s: rule %q, want %q (all: %v)", file, got[file], rule, r.Problems)
		}
	}
	if len(r.Problems) != len(want) {
		t.Errorf("%d problems, want %d: %v", len(r.Problems), len(want), r.Problems)
	}
	if !errors.Is(r.Problems, schemas.ErrCatalog) {
		t.Error("Problems must wrap ErrCatalog")
	}
	for _, p := range r.Problems {
		if p.File == filepath.Join(dir, "refs", "v1.json") && !strings.Contains(p.Message, "missing/v1.json is not in the catalog") {
			t.Errorf("ref problem should name the missing file: %v", p)
		}
	}
}

func TestLoadDirErrors(t *testing.T) {
	if _, _, err := schemas.LoadDir("testdata/does-not-exist"); err == nil {
		t.Fatal("missing dir: want an error")
	}
	if _, _, err := schemas.LoadDir("catalog.go"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file as dir: %v", err)
	}
}

func TestKeys(t *testing.T) {
	for _, tt := range []struct {
		key     string
		typ     string
		version int
		wantErr bool
	}{
		{key: "orders.created.v1", typ: "orders.created", version: 1},
		{key: "orders.v1.v12", typ: "orders.v1", version: 12},
		{key: "orders.created", wantErr: true},
		{key: "orders.v0", wantErr: true},
		{key: "v1", wantErr: true},
		{key: "Orders.v1", wantErr: true},
	} {
		typ, version, err := schemas.ParseKey(tt.key)
		if (err != nil) != tt.wantErr || typ != tt.typ || version != tt.version {
			t.Errorf("ParseKey(%q) = %q %d %v", tt.key, typ, version, err)
		}
		if !tt.wantErr && schemas.Key(typ, version) != tt.key {
			t.Errorf("Key round trip of %q", tt.key)
		}
	}
}

func ev(typ, data string) *event.Event {
	return &event.Event{ID: "1", Source: "test", SpecVersion: "1.0", Type: typ, Data: []byte(data)}
}

func TestValidate(t *testing.T) {
	set, problems := schemas.Compile(loadExample(t))
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	valid := `{"orderId":"o-1","customerId":"c-1","total":{"cents":1250,"currency":"EUR"}}`
	withCoupon := `{"orderId":"o-1","customerId":"c-1","total":{"cents":1250,"currency":"EUR"},"coupon":"SPRING"}`
	tests := []struct {
		name       string
		ev         *event.Event
		wantErr    error
		wantField  string
		wantInMsg  string
		wantOKWith func(*event.Event)
	}{
		{name: "valid latest", ev: ev("orders.created", valid)},
		{name: "v2 property under latest", ev: ev("orders.created", withCoupon)},
		{name: "unknown type", ev: ev("orders.shipped", valid), wantErr: schemas.ErrUnknownType, wantField: "type", wantInMsg: `"orders.shipped"`},
		{name: "missing required", ev: ev("orders.created", `{"orderId":"o-1","customerId":"c"}`), wantErr: schemas.ErrSchemaInvalid, wantField: "data", wantInMsg: "total"},
		{name: "nested through $ref", ev: ev("orders.created", `{"orderId":"o","customerId":"c","total":{"cents":-1,"currency":"EUR"}}`), wantErr: schemas.ErrSchemaInvalid, wantInMsg: "/total/cents"},
		{name: "format asserted", ev: ev("customers.signed-up", `{"customerId":"c","email":"not-an-email"}`), wantErr: schemas.ErrSchemaInvalid, wantInMsg: "/email"},
		{name: "no data", ev: ev("orders.created", ``), wantErr: schemas.ErrSchemaInvalid, wantInMsg: "object"},
		{name: "dataschema v1 refuses the v2 property", ev: withSchema(ev("orders.created", withCoupon), "https://schemas.example.com/orders.created/v1.json"), wantErr: schemas.ErrSchemaInvalid, wantInMsg: "coupon"},
		{name: "dataschema v2 accepts it", ev: withSchema(ev("orders.created", withCoupon), "v2")},
		{name: "dataschema names a missing version", ev: withSchema(ev("orders.created", valid), "orders.created/v9"), wantErr: schemas.ErrSchemaInvalid, wantField: "dataschema", wantInMsg: "v1 to v2"},
		{name: "dataschema names another type", ev: withSchema(ev("orders.created", valid), "https://x/money/v1.json"), wantErr: schemas.ErrSchemaInvalid, wantField: "dataschema", wantInMsg: `"money"`},
		{name: "dataschema names another type, relative", ev: withSchema(ev("orders.created", valid), "money/v1"), wantErr: schemas.ErrSchemaInvalid, wantField: "dataschema", wantInMsg: `"money"`},
		{name: "dataschema type/version", ev: withSchema(ev("orders.created", withCoupon), "orders.created/v2")},
		{name: "dataschema without a version", ev: withSchema(ev("orders.created", valid), "https://x/orders.json"), wantErr: schemas.ErrSchemaInvalid, wantField: "dataschema"},
		{name: "binary data for a JSON schema", ev: func() *event.Event {
			e := ev("orders.created", "\x00\x01")
			e.DataContentType = "application/octet-stream"
			return e
		}(), wantErr: schemas.ErrSchemaInvalid, wantField: "datacontenttype"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := set.Validate(tt.ev)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			var ve *schemas.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("%T is not a *ValidationError", err)
			}
			if tt.wantField != "" && ve.Field != tt.wantField {
				t.Errorf("field = %q, want %q", ve.Field, tt.wantField)
			}
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("message %q lacks %q", err, tt.wantInMsg)
			}
			wantCode := schemas.CodeSchemaInvalid
			if errors.Is(err, schemas.ErrUnknownType) {
				wantCode = schemas.CodeUnknownType
			}
			if ve.Code != wantCode {
				t.Errorf("code = %q, want %q", ve.Code, wantCode)
			}
		})
	}
}

func withSchema(e *event.Event, ds string) *event.Event { e.DataSchema = ds; return e }

// TestBrokenVersionRefusesEvents: a version that does not compile never lets data through.
func TestBrokenVersionRefusesEvents(t *testing.T) {
	c := schemas.NewCatalog([]schemas.Document{
		doc("a.b", 1, `{"type":"object"}`),
		doc("a.b", 2, `{"type":7}`),
	})
	set, problems := schemas.Compile(c)
	if len(problems) != 1 {
		t.Fatalf("problems = %v", problems)
	}
	if err := set.Validate(ev("a.b", `{}`)); !errors.Is(err, schemas.ErrSchemaInvalid) || !strings.Contains(err.Error(), "does not compile") {
		t.Fatalf("latest broken: %v", err)
	}
	if err := set.Validate(withSchema(ev("a.b", `{}`), "v1")); err != nil {
		t.Fatalf("v1 still works: %v", err)
	}
}

func TestPlanPush(t *testing.T) {
	registry := schemas.NewCatalog([]schemas.Document{
		doc("a.b", 1, `{"type":"object"}`),
		doc("c.d", 1, `{}`),
		doc("c.d", 2, `{}`),
	})
	local := schemas.NewCatalog([]schemas.Document{
		doc("a.b", 1, "{\n  \"type\": \"object\"\n}"), // same JSON, other formatting
		doc("a.b", 2, `{"type":"object","required":["x"]}`),
		doc("c.d", 1, `{"type":"string"}`), // rewritten: refused
		doc("e.f", 1, `{}`),
	})
	p := schemas.PlanPush(local, registry, nil)
	var added []string
	for _, d := range p.Add {
		added = append(added, d.Key())
	}
	if strings.Join(added, " ") != "a.b.v2 e.f.v1" || len(p.Unchanged) != 1 {
		t.Fatalf("add = %v, unchanged = %v", added, p.Unchanged)
	}
	rules := map[string]bool{}
	for _, pr := range p.Problems {
		rules[pr.Rule] = true
	}
	if !rules[schemas.RuleImmutable] || !rules[schemas.RuleMissing] || len(p.Problems) != 2 {
		t.Fatalf("problems = %v", p.Problems)
	}
	if len(p.Breaking) != 1 || p.Breaking[0].Rule != schemas.RuleRequiredAdded {
		t.Fatalf("breaking = %v", p.Breaking)
	}
	if p.OK(true) {
		t.Fatal("immutable/missing problems are not waived by --allow-breaking")
	}
}

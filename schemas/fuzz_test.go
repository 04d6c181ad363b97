package schemas_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jetmesh/jetmesh/schemas"
)

func addCatalogSeeds(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(exampleCatalog, "*", "*.json"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`true`, `false`, `{"type":5}`, `{"$ref":"#"}`, `{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/a"}}}`,
		`{"anyOf":[{"allOf":[{"$ref":"#"}]}]}`, `{"minimum":1e400}`, `{"multipleOf":0}`, `{"pattern":"("}`, `{"enum":[]}`} {
		f.Add([]byte(s))
	}
}

// FuzzSchemaLoading: any document, however broken, compiles or is reported, and checking
// it against itself or another schema never panics or hangs. A document is always
// compatible with itself.
func FuzzSchemaLoading(f *testing.F) {
	addCatalogSeeds(f)
	other := doc("t", 1, `{"type":"object","properties":{"a":{"type":"string","minLength":1}},"required":["a"]}`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := doc("t", 2, string(raw))
		schemas.Compile(schemas.NewCatalog([]schemas.Document{other, d}))
		schemas.CheckCompatible(other, d, nil)
		schemas.CheckCompatible(d, other, nil)
		self := d
		self.Version = 1
		if problems := schemas.CheckCompatible(self, d, nil); len(problems) != 0 && schemas.Equal(raw, raw) {
			for _, p := range problems {
				if p.Rule != schemas.RuleRef && p.Rule != schemas.RuleJSON {
					t.Fatalf("a schema is incompatible with itself: %v", problems)
				}
			}
		}
	})
}

// FuzzValidationInput: any bytes as event data get an answer, never a panic: accepted, or
// refused with a ValidationError.
func FuzzValidationInput(f *testing.F) {
	c, _, err := schemas.LoadDir(exampleCatalog)
	if err != nil {
		f.Fatal(err)
	}
	set, problems := schemas.Compile(c)
	if len(problems) != 0 {
		f.Fatal(problems)
	}
	for _, s := range []string{`{"orderId":"o","customerId":"c","total":{"cents":1,"currency":"EUR"}}`, `null`, `[]`, `{"total":{"cents":1e999}}`, `"\ud800"`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := set.Validate(ev("orders.created", string(data)))
		var ve *schemas.ValidationError
		if err != nil && (!errors.As(err, &ve) || !errors.Is(err, schemas.ErrSchemaInvalid)) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

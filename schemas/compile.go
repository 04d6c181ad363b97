package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/jsonx"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Set is a compiled catalog: every version of every type, ready to validate event data. A
// Set never changes after Compile, so any number of goroutines may use it at once.
type Set struct {
	types map[string][]version
}

// version is one compiled document, or why it would not compile.
type version struct {
	schema *jsonschema.Schema
	err    error
}

// Compile compiles every document once. Documents may $ref each other by their place in
// the catalog ("../money/v1.json"); nothing outside the catalog is ever loaded. A document
// that does not compile is reported in Problems and, in the Set, refuses every event that
// would be validated against it: a broken schema never lets data through unchecked.
func Compile(c *Catalog) (*Set, Problems) {
	set, problems, _ := compile(c)
	return set, problems
}

// CompileComplete is Compile for a registry being written one document at a time: a
// document that refers to another not (yet) in the catalog is held back, with every
// document referring to it, so the Set holds the previous versions until the documents
// a push brings are all there, instead of refusing events in between. held lists what
// was held back; Problems covers the rest.
func CompileComplete(c *Catalog) (set *Set, problems Problems, held []Document) {
	docs := c.Docs
	for {
		var missing map[string]bool
		set, problems, missing = compile(NewCatalog(docs))
		if len(missing) == 0 {
			return set, problems, held
		}
		kept := docs[:0:0]
		for _, d := range docs {
			if missing[d.Origin] {
				held = append(held, d)
			} else {
				kept = append(kept, d)
			}
		}
		docs = kept
	}
}

// compile is Compile, also naming the documents that failed only because a document they
// refer to is not in the catalog.
func compile(c *Catalog) (*Set, Problems, map[string]bool) {
	var missing map[string]bool
	compiler := newCompiler()
	set := &Set{types: make(map[string][]version)}
	var problems Problems
	added := make([]bool, len(c.Docs))
	for i, d := range c.Docs {
		doc, err := decode(d.Raw)
		if err == nil {
			err = compiler.AddResource(d.URL(), doc)
		}
		if err != nil {
			problems = append(problems, Problem{File: d.Origin, Rule: RuleJSON, Message: "not JSON: " + err.Error()})
			continue
		}
		added[i] = true
	}
	for i, d := range c.Docs {
		versions := set.types[d.Type]
		for len(versions) < d.Version {
			versions = append(versions, version{err: fmt.Errorf("%s v%d is not registered", d.Type, len(versions)+1)})
		}
		v := version{err: fmt.Errorf("%s v%d is not JSON", d.Type, d.Version)}
		if added[i] {
			sch, err := compiler.Compile(d.URL())
			var notLoaded *jsonschema.LoadURLError
			if errors.As(err, &notLoaded) && strings.HasPrefix(notLoaded.URL, baseURL) {
				if missing == nil {
					missing = map[string]bool{}
				}
				missing[d.Origin] = true
			}
			if err != nil {
				msg := compileMessage(err)
				problems = append(problems, Problem{File: d.Origin, Rule: RuleSchema, Message: msg})
				v = version{err: fmt.Errorf("%s v%d does not compile: %s", d.Type, d.Version, msg)}
			} else if loop := refCycle(sch); loop != nil {
				msg := "$ref cycle " + strings.Join(loop, " → ") + ": these schemas refer to each other without descending into the data, so no event could ever be validated; put the reference under a property or items"
				problems = append(problems, Problem{File: d.Origin, Rule: RuleRefCycle, Message: msg})
				v = version{err: fmt.Errorf("%s v%d has a %s", d.Type, d.Version, msg)}
			} else {
				v = version{schema: sch}
			}
		}
		versions[d.Version-1] = v
		set.types[d.Type] = versions
	}
	return set, problems, missing
}

// newCompiler returns a draft 2020-12 compiler that asserts formats (users who write
// "format": "email" expect it enforced) and loads nothing from outside the catalog.
func newCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(catalogOnly{})
	return c
}

// catalogOnly refuses every load: all documents are added as resources up front, so a $ref
// that reaches a loader points outside the catalog (or at a version that does not exist).
type catalogOnly struct{}

func (catalogOnly) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is not in the catalog (refs reach other catalog files as ../<type>/v<N>.json)", strings.TrimPrefix(url, baseURL))
}

// compileMessage shortens the compiler's error, which repeats our internal URLs.
func compileMessage(err error) string {
	msg := err.Error()
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		msg = "not a valid JSON Schema: " + leafMessages(sve.Err)
	}
	return strings.ReplaceAll(msg, baseURL, "")
}

// Versions counts the versions of all types.
func (s *Set) Versions() int {
	n := 0
	for _, vs := range s.types {
		n += len(vs)
	}
	return n
}

// Broken counts the versions that did not compile.
func (s *Set) Broken() int {
	n := 0
	for _, vs := range s.types {
		for _, v := range vs {
			if v.err != nil {
				n++
			}
		}
	}
	return n
}

// Validate checks one event's data against its type's schema: the version its dataschema
// names, else the latest. It returns nil or a *ValidationError wrapping ErrUnknownType or
// ErrSchemaInvalid.
func (s *Set) Validate(ev *event.Event) error {
	versions, ok := s.types[ev.Type]
	if !ok {
		return &ValidationError{Code: CodeUnknownType, Field: "type", kind: ErrUnknownType,
			Msg: fmt.Sprintf("no schema is registered for %q: push one with `jetmesh schemas push`", ev.Type)}
	}
	n := len(versions)
	if ev.DataSchema != "" {
		named, err := DataSchemaVersion(ev.Type, ev.DataSchema)
		if err != nil {
			return &ValidationError{Code: CodeSchemaInvalid, Field: "dataschema", kind: ErrSchemaInvalid, Msg: err.Error()}
		}
		if named > n {
			return &ValidationError{Code: CodeSchemaInvalid, Field: "dataschema", kind: ErrSchemaInvalid,
				Msg: fmt.Sprintf("names v%d of %s, but the registry has v1 to v%d", named, ev.Type, n)}
		}
		n = named
	}
	v := versions[n-1]
	if v.err != nil {
		return &ValidationError{Code: CodeSchemaInvalid, Field: "data", kind: ErrSchemaInvalid, Msg: v.err.Error()}
	}
	if !event.IsJSON(ev.ContentType()) {
		return &ValidationError{Code: CodeSchemaInvalid, Field: "datacontenttype", kind: ErrSchemaInvalid,
			Msg: fmt.Sprintf("is %q, but %s v%d is a JSON Schema: send JSON data", ev.ContentType(), ev.Type, n)}
	}
	return validateData(v.schema, ev.Type, n, ev.Data)
}

func validateData(sch *jsonschema.Schema, eventType string, n int, data []byte) error {
	var inst any
	if len(bytes.TrimSpace(data)) > 0 {
		var err error
		if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)); err != nil {
			return &ValidationError{Code: CodeSchemaInvalid, Field: "data", kind: ErrSchemaInvalid, Msg: "is not JSON: " + err.Error()}
		}
	}
	if err := sch.Validate(inst); err != nil {
		return &ValidationError{Code: CodeSchemaInvalid, Field: "data", kind: ErrSchemaInvalid,
			Msg: fmt.Sprintf("does not match %s v%d: %s", eventType, n, leafMessages(err))}
	}
	return nil
}

// DataSchemaVersion reads the version a dataschema attribute names. jetmesh's convention:
// the URI ends in /<type>/v<N>.json, /<type>/v<N>, or is just v<N>; when it names a type, it
// must be the event's.
func DataSchemaVersion(eventType, dataschema string) (int, error) {
	s := dataschema
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSuffix(s, ".json")
	last, rest := s, ""
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		last, rest = s[i+1:], s[:i]
	}
	n, ok := parseVersion(last)
	if !ok {
		return 0, fmt.Errorf("%q does not name a schema version: use .../%s/v<N>.json or v<N>", dataschema, eventType)
	}
	if rest != "" {
		if named := rest[strings.LastIndexByte(rest, '/')+1:]; named != eventType {
			return 0, fmt.Errorf("%q names type %q, but the event's type is %q (use .../%s/v<N>.json or v<N>)", dataschema, named, eventType, eventType)
		}
	}
	return n, nil
}

// maxReported bounds how many schema violations one rejection lists.
const maxReported = 5

var printer = message.NewPrinter(language.English)

// leafMessages renders a validation error as "pointer: reason" for each leaf cause: the
// concrete violations, not the "does not validate with …" wrappers above them.
func leafMessages(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var leaves []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, pointer(e.InstanceLocation)+": "+e.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(leaves) > maxReported {
		more := len(leaves) - maxReported
		leaves = append(leaves[:maxReported], "and "+strconv.Itoa(more)+" more")
	}
	return strings.Join(leaves, "; ")
}

// pointer renders path tokens as a JSON pointer (RFC 6901).
func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

func escapePointer(t string) string { return jsonx.Escape(t) }

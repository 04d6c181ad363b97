package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/jsonx"
)

// Rule names of catalog problems. They are stable: scripts may switch on them.
const (
	RuleLayout      = "layout"       // a .json file not at <type>/v<N>.json
	RuleTypeName    = "type-name"    // the directory is not a valid event type
	RuleVersionName = "version-name" // the file name is not v<N>.json with N ≥ 1
	RuleVersionGap  = "version-gap"  // versions do not run 1, 2, … without a hole
	RuleJSON        = "json"         // the file is not JSON
	RuleSchema      = "schema"       // the file is not a valid JSON Schema, or a $ref fails
	RuleImmutable   = "immutable"    // a pushed version was changed
	RuleRefCycle    = "ref-cycle"    // $refs loop back without descending into the data
	RuleMissing     = "missing"      // the registry has a version the catalog lacks
)

// baseURL is where catalog documents live for $ref resolution: a file at <type>/v<N>.json
// is baseURL + "<type>/v<N>.json", so "../money/v1.json" from any file reaches the money
// type's first version, in a directory and in the registry alike. Nothing is fetched from
// it; the scheme is one no loader knows.
const baseURL = "jetmesh:///catalog/"

// Document is one schema version: the JSON Schema of one event type's data.
type Document struct {
	Type    string
	Version int
	// Origin is where the document came from, for messages: a file path or a registry key.
	Origin string
	// Raw is the document exactly as written.
	Raw []byte
}

// Key is the document's key in the mesh-schemas bucket: <type>.v<N>. The version is always
// the last token, so keys of all types are unambiguous.
func (d Document) Key() string { return Key(d.Type, d.Version) }

// Key returns the registry key of a type's version.
func Key(eventType string, version int) string { return eventType + ".v" + strconv.Itoa(version) }

// ParseKey splits a registry key into type and version.
func ParseKey(key string) (eventType string, version int, err error) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return "", 0, fmt.Errorf("registry key %q is not <type>.v<N>", key)
	}
	version, ok := parseVersion(key[i+1:])
	if !ok {
		return "", 0, fmt.Errorf("registry key %q does not end in .v<N>", key)
	}
	if err := event.ValidateType(key[:i]); err != nil {
		return "", 0, fmt.Errorf("registry key %q: %w", key, err)
	}
	return key[:i], version, nil
}

// URL is the document's location for $ref resolution.
func (d Document) URL() string { return docURL(d.Type, d.Version) }

func docURL(eventType string, version int) string {
	return baseURL + eventType + "/v" + strconv.Itoa(version) + ".json"
}

// parseVersion reads "v<N>" with N ≥ 1 and no leading zero.
func parseVersion(s string) (int, bool) {
	if len(s) < 2 || s[0] != 'v' || s[1] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n < 1 || strconv.Itoa(n) != s[1:] {
		return 0, false
	}
	return n, true
}

// Catalog is a set of schema documents, sorted by type then version.
type Catalog struct {
	Docs []Document
}

// NewCatalog sorts docs into a catalog.
func NewCatalog(docs []Document) *Catalog {
	c := &Catalog{Docs: append([]Document(nil), docs...)}
	sort.Slice(c.Docs, func(i, j int) bool {
		a, b := c.Docs[i], c.Docs[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Version < b.Version
	})
	return c
}

// Types lists the catalog's event types in order.
func (c *Catalog) Types() []string {
	var types []string
	for _, d := range c.Docs {
		if len(types) == 0 || types[len(types)-1] != d.Type {
			types = append(types, d.Type)
		}
	}
	return types
}

// Versions returns a type's documents in version order.
func (c *Catalog) Versions(eventType string) []Document {
	var out []Document
	for _, d := range c.Docs {
		if d.Type == eventType {
			out = append(out, d)
		}
	}
	return out
}

// Get returns one version of a type.
func (c *Catalog) Get(eventType string, version int) (Document, bool) {
	for _, d := range c.Docs {
		if d.Type == eventType && d.Version == version {
			return d, true
		}
	}
	return Document{}, false
}

// LoadDir reads a catalog directory laid out as <dir>/<type>/v<N>.json. Hidden files and
// directories and files not ending in .json (READMEs, CI files) are skipped. The returned
// Problems list every file in the wrong place or with a bad name; the documents that are
// well placed are returned either way, so a check reports everything in one run.
func LoadDir(dir string) (*Catalog, Problems, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading catalog: %w", err)
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("reading catalog: %s is not a directory", dir)
	}
	var docs []Document
	var problems Problems
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".json") {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 2 {
			problems = append(problems, Problem{File: path, Rule: RuleLayout,
				Message: "schema files live at <type>/v<N>.json, one directory per event type"})
			return nil
		}
		eventType, name := parts[0], strings.TrimSuffix(parts[1], ".json")
		if err := event.ValidateType(eventType); err != nil {
			var ee *event.Error
			msg := err.Error()
			if errors.As(err, &ee) {
				msg = "directory name is not an event type: " + ee.Msg
			}
			problems = append(problems, Problem{File: path, Rule: RuleTypeName, Message: msg})
			return nil
		}
		version, ok := parseVersion(name)
		if !ok {
			problems = append(problems, Problem{File: path, Rule: RuleVersionName,
				Message: fmt.Sprintf("file name %q is not v<N>.json with N = 1, 2, …", parts[1])})
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs = append(docs, Document{Type: eventType, Version: version, Origin: path, Raw: raw})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading catalog: %w", err)
	}
	c := NewCatalog(docs)
	problems = append(problems, c.checkVersions()...)
	return c, problems, nil
}

// checkVersions reports holes in each type's version sequence.
func (c *Catalog) checkVersions() Problems {
	var problems Problems
	for _, t := range c.Types() {
		for i, d := range c.Versions(t) {
			if d.Version != i+1 {
				problems = append(problems, Problem{File: d.Origin, Rule: RuleVersionGap,
					Message: fmt.Sprintf("%s has v%d but no v%d: versions run 1, 2, … without a hole", t, d.Version, i+1)})
				break
			}
		}
	}
	return problems
}

// decode parses a document as the generic JSON the checker and compiler read, numbers
// kept exact.
func decode(raw []byte) (any, error) { return jsonx.Decode(raw) }

// Equal reports whether two documents hold the same JSON, whatever their formatting.
func Equal(a, b []byte) bool {
	va, errA := decode(a)
	vb, errB := decode(b)
	if errA != nil || errB != nil {
		return bytes.Equal(a, b)
	}
	return jsonEqual(va, vb)
}

package schemas

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Report is the outcome of checking a catalog: Problems make it unusable; Breaking lists
// versions that reject data their predecessor accepted, which is allowed only on purpose
// (--allow-breaking).
type Report struct {
	Problems Problems `json:"problems"`
	Breaking Problems `json:"breaking"`
}

// OK reports whether the catalog passes; allowBreaking accepts incompatible versions.
func (r Report) OK(allowBreaking bool) bool {
	return len(r.Problems) == 0 && (allowBreaking || len(r.Breaking) == 0)
}

// Check checks a catalog on its own: every document compiles and every version is backward
// compatible with the one before. layout holds the problems LoadDir found.
func Check(c *Catalog, layout Problems) Report {
	r := Report{Problems: append(Problems(nil), layout...)}
	_, compileProblems := Compile(c)
	r.Problems = append(r.Problems, compileProblems...)
	broken := files(compileProblems)
	for _, t := range c.Types() {
		versions := c.Versions(t)
		for i := 1; i < len(versions); i++ {
			prev, next := versions[i-1], versions[i]
			if next.Version == prev.Version+1 && !broken[prev.Origin] && !broken[next.Origin] {
				r.Breaking = append(r.Breaking, CheckCompatible(prev, next, c)...)
			}
		}
	}
	return r
}

// Plan is what pushing a local catalog to the registry would do.
type Plan struct {
	// Add are the versions the registry lacks, in order.
	Add []Document
	// Unchanged are the versions the registry already holds, identical.
	Unchanged []Document
	Report
}

// PlanPush compares a local catalog with the registry's: local versions already pushed
// must be identical (pushed versions are immutable), the catalog must not lack versions
// the registry has, and every new version must compile together with the registry's
// documents and be compatible with its predecessor.
func PlanPush(local, registry *Catalog, layout Problems) Plan {
	p := Plan{Report: Report{Problems: append(Problems(nil), layout...)}}
	merged := append([]Document(nil), registry.Docs...)
	for _, d := range local.Docs {
		pushed, ok := registry.Get(d.Type, d.Version)
		switch {
		case !ok:
			p.Add = append(p.Add, d)
			merged = append(merged, d)
		case Equal(pushed.Raw, d.Raw):
			p.Unchanged = append(p.Unchanged, d)
		default:
			p.Problems = append(p.Problems, Problem{File: d.Origin, Rule: RuleImmutable, Message: fmt.Sprintf(
				"%s v%d is already in the registry with different content; pushed versions never change: put the change in v%d",
				d.Type, d.Version, len(registry.Versions(d.Type))+1)})
		}
	}
	for _, t := range local.Types() {
		have := len(local.Versions(t))
		for _, d := range registry.Versions(t) {
			if d.Version > have {
				p.Problems = append(p.Problems, Problem{File: d.Origin, Rule: RuleMissing, Message: fmt.Sprintf(
					"the registry has %s v%d, which the catalog lacks: save it with `jetmesh schemas show %s --version %d`",
					t, d.Version, t, d.Version)})
			}
		}
	}
	all := NewCatalog(merged)
	set, compileProblems := Compile(all)
	p.Add = set.dependenciesFirst(p.Add)
	broken := files(compileProblems)
	for _, cp := range compileProblems {
		for _, d := range p.Add {
			if cp.File == d.Origin {
				p.Problems = append(p.Problems, cp)
			}
		}
	}
	for _, d := range p.Add {
		if prev, ok := all.Get(d.Type, d.Version-1); ok && !broken[prev.Origin] && !broken[d.Origin] {
			p.Breaking = append(p.Breaking, CheckCompatible(prev, d, all)...)
		}
	}
	return p
}

// files is the set of files that have a problem: their compatibility cannot be judged.
func files(ps Problems) map[string]bool {
	set := make(map[string]bool, len(ps))
	for _, p := range ps {
		set[p.File] = true
	}
	return set
}

// dependenciesFirst orders docs so that a document comes after the ones it refers to, so
// that a push writes them in an order where each one's references are already there.
// Documents that refer to each other (recursion through properties) keep their order.
func (s *Set) dependenciesFirst(docs []Document) []Document {
	byURL := make(map[string]Document, len(docs))
	for _, d := range docs {
		byURL[d.URL()] = d
	}
	out := make([]Document, 0, len(docs))
	placed := map[string]bool{}
	var place func(d Document)
	place = func(d Document) {
		if placed[d.URL()] {
			return
		}
		placed[d.URL()] = true // before its references: a loop of documents ends here
		for _, ref := range s.referencedDocs(d) {
			if dep, ok := byURL[ref]; ok {
				place(dep)
			}
		}
		out = append(out, d)
	}
	for _, d := range docs {
		place(d)
	}
	return out
}

// referencedDocs lists the catalog documents d's compiled schema reaches, other than d.
func (s *Set) referencedDocs(d Document) []string {
	vs := s.types[d.Type]
	if d.Version > len(vs) || vs[d.Version-1].schema == nil {
		return nil
	}
	seen := map[*jsonschema.Schema]bool{}
	docs := map[string]bool{}
	var walk func(sch *jsonschema.Schema)
	walk = func(sch *jsonschema.Schema) {
		if sch == nil || seen[sch] {
			return
		}
		seen[sch] = true
		if url, _, _ := strings.Cut(sch.Location, "#"); url != d.URL() {
			docs[url] = true
		}
		walkSubschemas(sch, func(sub *jsonschema.Schema, _ bool) bool { walk(sub); return false })
	}
	walk(vs[d.Version-1].schema)
	return slices.Sorted(maps.Keys(docs))
}

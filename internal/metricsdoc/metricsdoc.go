// Package metricsdoc keeps docs/metrics.md honest: tests compare the jetmesh_* metrics a
// process exports with those a section of the document lists.
package metricsdoc

import (
	"os"
	"strings"
	"testing"
)

// Check fails t unless the jetmesh_* metrics in scrape (a Prometheus text exposition)
// are exactly those in the tables of docPath between the heading that starts with from
// (the top of the file when empty) and the next heading that starts with until (the end
// when empty).
func Check(t testing.TB, scrape, docPath, from, until string) {
	t.Helper()
	exported := map[string]bool{}
	for _, line := range strings.Split(scrape, "\n") {
		if name, ok := strings.CutPrefix(line, "# HELP jetmesh_"); ok {
			exported["jetmesh_"+strings.Fields(name)[0]] = true
		}
	}
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	if from != "" {
		var ok bool
		if _, doc, ok = strings.Cut(doc, from); !ok {
			t.Fatalf("%s has no %q section", docPath, from)
		}
	}
	if until != "" {
		doc, _, _ = strings.Cut(doc, until)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(doc, "\n") {
		if name, ok := strings.CutPrefix(line, "| `jetmesh_"); ok {
			documented["jetmesh_"+name[:strings.IndexByte(name, '`')]] = true
		}
	}
	for name := range exported {
		if !documented[name] {
			t.Errorf("%s is exported but not listed in %s", name, docPath)
		}
	}
	for name := range documented {
		if !exported[name] {
			t.Errorf("%s is listed in %s but not exported", name, docPath)
		}
	}
}

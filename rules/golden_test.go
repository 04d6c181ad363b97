package rules_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestConsumerConfigGolden renders each rule file under testdata/consumers into the
// consumer configuration the reconciler creates; `go test ./rules -run Golden -update`
// rewrites the .golden.json files after a deliberate change.
func TestConsumerConfigGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/consumers/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			rs, err := rules.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			cfgs, err := rules.ConsumerConfigs(rs[0])
			if err != nil {
				t.Fatal(err)
			}
			var cfg any = cfgs[0]
			if len(cfgs) > 1 {
				cfg = cfgs // an orderBy rule's partitions
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(cfg); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			golden := strings.TrimSuffix(file, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("consumer config of %s changed:\n%s\nwant:\n%s", file, got, want)
			}
		})
	}
}

package cli_test

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/jetmesh/jetmesh/cli"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md")

// TestReference keeps docs/cli.md equal to the commands' own help.
func TestReference(t *testing.T) {
	var b bytes.Buffer
	if err := cli.WriteReference(&b); err != nil {
		t.Fatal(err)
	}
	const path = "../docs/cli.md"
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatal("docs/cli.md is out of date: run go test ./cli -run Reference -update")
	}
}

package cli

import (
	"io"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandTeaches walks the whole command tree: each command says what it does
// and shows at least one example, so --help teaches.
func TestEveryCommandTeaches(t *testing.T) {
	var walk func(*cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		n++
		if c.Short == "" {
			t.Errorf("%s has no short description", c.CommandPath())
		}
		if c.HasParent() && c.Example == "" {
			t.Errorf("%s has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd("test", io.Discard, io.Discard))
	if n < 20 {
		t.Fatalf("walked only %d commands", n)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/dlq"
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

// TestRefusalsNameTheChoices: an unknown DLQ reason is refused with the list (it used to
// print nothing and exit 0), and under -o json the error is a JSON object.
func TestRefusalsNameTheChoices(t *testing.T) {
	var stderr strings.Builder
	code := run(context.Background(), "test", []string{"dlq", "ls", "--reason", "bogus", "--server", "nats://127.0.0.1:1"}, io.Discard, &stderr)
	if code != ExitRefused || !strings.Contains(stderr.String(), "unsupported_media_type") || !strings.Contains(stderr.String(), "too_many_entries") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var help strings.Builder
	run(context.Background(), "test", []string{"dlq", "ls", "--help"}, &help, io.Discard)
	for _, r := range dlq.Reasons {
		if !strings.Contains(help.String(), r) {
			t.Errorf("dlq ls --help does not list %s", r)
		}
	}
	stderr.Reset()
	code = run(context.Background(), "test", []string{"dlq", "ls", "--reason", "bogus", "-o", "json"}, io.Discard, &stderr)
	var out struct {
		Error struct {
			Kind     string `json:"kind"`
			Message  string `json:"message"`
			ExitCode int    `json:"exitCode"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(stderr.String()), &out); err != nil || code != ExitRefused || out.Error.Kind != "refused" ||
		out.Error.ExitCode != ExitRefused || !strings.Contains(out.Error.Message, "not a DLQ reason") {
		t.Fatalf("-o json error: exit %d %q (%v)", code, stderr.String(), err)
	}
}

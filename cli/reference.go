package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// WriteReference writes the command reference (docs/cli.md) from the command tree itself,
// so the document cannot drift from the code: a test compares the two.
func WriteReference(w io.Writer) error {
	root := newRootCmd("", io.Discard, io.Discard)
	// The default shown must not depend on the environment the reference is built in.
	root.PersistentFlags().Lookup("server").DefValue = DefaultServer
	fmt.Fprintln(w, "# Command reference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated from the commands' own help by `go test ./cli -run Reference -update`; a test keeps it")
	fmt.Fprintln(w, "in step. Every command also answers `--help`.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Global flags (every command):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```")
	fmt.Fprint(w, root.PersistentFlags().FlagUsages())
	fmt.Fprintln(w, "```")
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c != root {
			writeCommand(w, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return nil
}

func writeCommand(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "\n## %s\n\n", c.CommandPath())
	fmt.Fprintln(w, c.Short+".")
	if c.Long != "" {
		fmt.Fprintln(w)
		fmt.Fprintln(w, c.Long)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w, c.UseLine())
	if flags := c.LocalNonPersistentFlags().FlagUsages(); flags != "" {
		fmt.Fprintln(w)
		fmt.Fprint(w, flags)
	}
	fmt.Fprintln(w, "```")
	if c.Example != "" {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Examples:")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "```sh")
		fmt.Fprintln(w, strings.TrimRight(c.Example, "\n"))
		fmt.Fprintln(w, "```")
	}
}

// Command jetmesh is the jetmesh server, sidecar and admin CLI in one binary.
package main

import (
	"os"

	"github.com/jetmesh/jetmesh/cli"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3". Left empty,
// the CLI reads it from the module's build information (go install, or the VCS stamp of
// a plain go build).
var version string

func main() { os.Exit(cli.Execute(version)) }

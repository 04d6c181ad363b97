// Command jetmesh is the jetmesh server, sidecar and admin CLI in one binary.
package main

import (
	"os"

	"github.com/jetmesh/jetmesh/cli"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() { os.Exit(cli.Execute(version)) }

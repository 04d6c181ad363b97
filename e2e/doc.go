// Package e2e holds jetmesh's end-to-end tests: they build the jetmesh binary, run it as
// real processes on free loopback ports, and check behaviour from outside, the way users
// and operators see it (HTTP, the CLI, NATS, kill -9, SIGTERM).
package e2e

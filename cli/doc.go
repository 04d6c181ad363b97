// Package cli is the jetmesh command line: one cobra command constructor per command group,
// each parsing flags and calling the library packages. Execute maps errors to exit codes in
// one place: 0 success, 1 failure, 2 refused input (bad flags, a rejected event, an invalid
// pattern).
package cli

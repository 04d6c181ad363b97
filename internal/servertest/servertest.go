// Package servertest runs a jetmesh server inside a test's process: embedded JetStream in a
// temporary directory, random loopback ports.
package servertest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jetmesh/jetmesh/server"
)

// Config is what tests start from: a temporary data directory, random loopback ports, and
// events of any type accepted (tests about validation turn that off).
func Config(t testing.TB) server.Config {
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.NATSAddr, cfg.HTTPAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.Ingress.AllowUnknownTypes = true
	return cfg
}

// Start runs a server with cfg until the test ends, or stop; it fails the test when the
// server does not start. stop returns Run's error, and may be called more than once.
func Start(t testing.TB, cfg server.Config, log *slog.Logger) (srv *server.Server, stop func() error) {
	t.Helper()
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Started():
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	}
	stopped, result := false, error(nil)
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return srv, stop
}

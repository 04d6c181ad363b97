// Package natstest starts the in-process nats-server with JetStream that every jetmesh test
// runs against: a random port, a temporary store, shut down when the test ends.
package natstest

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunServer starts a JetStream-enabled nats-server on 127.0.0.1 with a random port and a
// store under t.TempDir(). It is shut down by t.Cleanup.
func RunServer(t testing.TB) *natsserver.Server {
	t.Helper()
	return RunServerAt(t, t.TempDir())
}

// RunServerAt is RunServer with a given store directory, for restart tests.
func RunServerAt(t testing.TB, storeDir string) *natsserver.Server {
	t.Helper()
	return RunServerWith(t, storeDir, nil)
}

// RunServerWith is RunServerAt with a hook that adjusts the options before start.
func RunServerWith(t testing.TB, storeDir string, tune func(*natsserver.Options)) *natsserver.Server {
	t.Helper()
	opts := &natsserver.Options{
		Host:               "127.0.0.1",
		Port:               -1,
		JetStream:          true,
		StoreDir:           storeDir,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		NoSigs:             true,
		NoLog:              true,
	}
	if tune != nil {
		tune(opts)
	}
	s, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("natstest: server not ready in 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed by t.Cleanup.
func Connect(t testing.TB, s *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream client on a new connection to s.
func JetStream(t testing.TB, s *natsserver.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

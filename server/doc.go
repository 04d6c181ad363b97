// Package server runs a jetmesh node: an embedded nats-server with JetStream on file storage,
// the EVENTS and DLQ streams, and the ingress over HTTP and NATS, with health endpoints and a
// graceful drain on shutdown.
//
// A *Server runs once: New, then Run until its context is cancelled.
package server

// Package sidecar runs next to one service: it delivers the events of every rule that
// targets the service to the service's local HTTP handler, following rule changes live,
// and offers the service a localhost publish endpoint forwarded to the ingress over NATS.
// Services speak only plain HTTP to localhost.
package sidecar

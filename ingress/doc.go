// Package ingress is jetmesh's publisher: it takes CloudEvents over HTTP (POST /v1/events)
// and NATS request/reply (bus.IngressSubject), validates each entry, stores accepted events
// once in the EVENTS stream, writes a DLQ record for every rejected entry, and answers
// per entry the way EventBridge's PutEvents does.
//
// An entry is accepted only once JetStream has acknowledged it: accepted means persisted.
// A re-published id inside the stream's duplicate window is accepted and reported as a
// duplicate, and stored once.
//
// An *Ingress is safe for concurrent use; it bounds how many requests it works on at once.
package ingress

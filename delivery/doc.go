// Package delivery moves one rule's events from its durable JetStream consumer to a target
// (a service's HTTP handler), at least once: it evaluates what the consumer's filter
// subjects could not, sends each event, and then acks, retries with backoff, or writes a
// dead-letter record and terminates, following the status-code contract in docs/delivery.md.
// Everything that shapes delivery (attempts, backoff, timeout, concurrency, order) comes
// from the rule, so two rules in one process never share limits.
package delivery

// Package event is jetmesh's CloudEvents 1.0 envelope. It parses and validates events from
// structured JSON, batch JSON and HTTP binary mode, and converts them to and from the binary
// form stored in JetStream: ce-* headers, Content-Type, Nats-Msg-Id = id, body = data, on
// subject evt.<type>.
//
// Every rejection is an *Error naming the attribute and the rule it broke, and wraps one of
// ErrMalformed, ErrInvalid or ErrTooLarge so callers can classify it with errors.Is.
//
// Event values are plain data: safe to read from many goroutines, not to mutate concurrently.
package event

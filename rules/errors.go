package rules

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrInvalidPattern: an event pattern breaks the pattern language.
	ErrInvalidPattern = errors.New("invalid event pattern")
	// ErrInvalidEvent: the event to match is not a JSON object.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrInvalidRule: a rule or rule file has problems; the message lists every one.
	ErrInvalidRule = errors.New("invalid rule")
	// ErrNotFound: no rule has that name.
	ErrNotFound = errors.New("rule not found")
	// ErrWouldSkip: a rule change would move its consumer past events not yet delivered.
	ErrWouldSkip = errors.New("the change would skip events not yet delivered")
)

// PatternError is a refused pattern: where (a JSON pointer into the pattern) and why.
type PatternError struct {
	Pointer string
	Msg     string
}

func (e *PatternError) Error() string {
	ptr := e.Pointer
	if ptr == "" {
		ptr = "/"
	}
	return fmt.Sprintf("pattern %s: %s", ptr, e.Msg)
}

// Unwrap returns ErrInvalidPattern.
func (e *PatternError) Unwrap() error { return ErrInvalidPattern }

package schemas

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrUnknownType: no schema is registered for the event's type.
	ErrUnknownType = errors.New("unknown event type")
	// ErrSchemaInvalid: the event's data breaks its schema, or names a version that does
	// not exist.
	ErrSchemaInvalid = errors.New("data does not match schema")
	// ErrCatalog: a catalog or a registry document is unusable (bad layout, bad schema,
	// incompatible change, immutable version rewritten). The error lists every problem.
	ErrCatalog = errors.New("schema catalog has problems")
	// ErrNotFound: the registry has no such type or version.
	ErrNotFound = errors.New("schema not found")
)

// Problem is one thing wrong with a catalog: where (file and JSON pointer inside it), which
// rule, and why, in words a reviewer can act on.
type Problem struct {
	// File is the catalog file (or registry key) the problem is in.
	File string `json:"file"`
	// Pointer is the JSON pointer inside File, "" for the whole file.
	Pointer string `json:"pointer"`
	// Rule is a stable name (see the Rule* constants) scripts may switch on.
	Rule string `json:"rule"`
	// Message explains the problem.
	Message string `json:"message"`
}

// String renders the problem as one line: "file: pointer: rule: message".
func (p Problem) String() string {
	ptr := p.Pointer
	if ptr == "" {
		ptr = "/"
	}
	return fmt.Sprintf("%s: %s: %s: %s", p.File, ptr, p.Rule, p.Message)
}

// Problems is a list of problems as one error wrapping ErrCatalog.
type Problems []Problem

func (ps Problems) Error() string {
	msg := fmt.Sprintf("%d schema problem", len(ps))
	if len(ps) != 1 {
		msg += "s"
	}
	for _, p := range ps {
		msg += "\n  " + p.String()
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrCatalog) hold.
func (ps Problems) Unwrap() error { return ErrCatalog }

// ValidationError is an event refused at publish: its Code is the ingress error code
// ("unknown_type" or "schema_invalid"), Field the CloudEvents attribute at fault.
type ValidationError struct {
	Code  string
	Field string
	Msg   string
	kind  error
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap returns ErrUnknownType or ErrSchemaInvalid.
func (e *ValidationError) Unwrap() error { return e.kind }

// Codes carried by ValidationError; they double as DLQ reasons.
const (
	CodeUnknownType   = "unknown_type"
	CodeSchemaInvalid = "schema_invalid"
)

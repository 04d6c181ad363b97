package event

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every *Error wraps exactly one of them.
var (
	// ErrMalformed: the input is not a JSON object (or array, for a batch) at all.
	ErrMalformed = errors.New("malformed event")
	// ErrInvalid: the input parses, but an attribute or the data breaks a CloudEvents or
	// jetmesh rule.
	ErrInvalid = errors.New("invalid event")
	// ErrTooLarge: the event is over the configured size limit.
	ErrTooLarge = errors.New("event too large")
)

// Rule names carried in Error.Rule. They are stable: API clients may switch on them.
const (
	RuleJSON         = "json"            // not parseable JSON, or not the JSON kind expected
	RuleRequired     = "required"        // a required attribute is missing or empty
	RuleString       = "string"          // the attribute must be a JSON string
	RuleSpecVersion  = "specversion"     // specversion is not "1.0"
	RuleTypeToken    = "type_token"      // type is not dot-separated [a-z0-9_-]+ tokens
	RuleTimestamp    = "rfc3339"         // time is not an RFC 3339 timestamp
	RuleURIRef       = "uri_reference"   // source or dataschema is not a URI reference
	RuleControlChar  = "control_char"    // a value contains control characters
	RuleTooLong      = "max_length"      // a value is longer than its limit
	RuleExtension    = "extension"       // a bad extension attribute name or value
	RuleDataConflict = "data_conflict"   // both data and data_base64 are present
	RuleBase64       = "base64"          // data_base64 is not valid base64
	RuleDataJSON     = "data_json"       // datacontenttype says JSON but data is not JSON
	RuleMaxSize      = "max_size"        // the event is over the size limit
	RuleText         = "unicode"         // a string is not Unicode text (invalid UTF-8, a lone surrogate)
	RuleDuplicate    = "duplicate_key"   // an attribute appears twice in the event object
	RuleHeaderSize   = "max_header_size" // the stored headers (attributes) are over JetStream's limit
)

// Error is a rejected event: which attribute broke which rule, in words a user can act on.
type Error struct {
	// Field is the CloudEvents attribute ("id", "type", "data", an extension name), or empty
	// when the problem concerns the whole event.
	Field string
	// Rule is one of the Rule* constants.
	Rule string
	// Msg explains the problem and, where useful, what was received.
	Msg  string
	kind error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Unwrap returns ErrMalformed, ErrInvalid or ErrTooLarge.
func (e *Error) Unwrap() error { return e.kind }

func invalid(field, rule, format string, args ...any) *Error {
	return &Error{Field: field, Rule: rule, Msg: fmt.Sprintf(format, args...), kind: ErrInvalid}
}

func malformed(format string, args ...any) *Error {
	return &Error{Rule: RuleJSON, Msg: fmt.Sprintf(format, args...), kind: ErrMalformed}
}

func tooLarge(size, limit int) *Error {
	return &Error{Rule: RuleMaxSize, Msg: fmt.Sprintf("event is %d bytes, over the limit of %d bytes", size, limit), kind: ErrTooLarge}
}

// Invalid is an ErrInvalid *Error for rules a caller adds on top of this package's.
func Invalid(field, rule, msg string) *Error {
	return &Error{Field: field, Rule: rule, Msg: msg, kind: ErrInvalid}
}

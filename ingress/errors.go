package ingress

import (
	"errors"

	"github.com/jetmesh/jetmesh/dlq"

	"github.com/jetmesh/jetmesh/schemas"
)

// Sentinel errors.
var (
	// ErrNoIngress: nobody answers on the ingress subject (no server running or reachable).
	ErrNoIngress = errors.New("no jetmesh ingress is answering")
	// ErrBadResponse: the ingress answered with something that is not a publish response.
	ErrBadResponse = errors.New("unreadable ingress response")
)

// Entry and request error codes, stable for API clients. Codes that are also DLQ reasons
// share their spelling with package dlq.
const (
	CodeMalformed            = dlq.ReasonMalformed
	CodeInvalidEvent         = dlq.ReasonInvalidEvent
	CodeTooLarge             = dlq.ReasonTooLarge
	CodeTooManyEntries       = dlq.ReasonTooManyEntries
	CodeUnsupportedMediaType = dlq.ReasonUnsupportedMediaType
	CodeUnavailable          = "unavailable"
	// CodeRequestTimeout: the request body did not arrive in time (HTTP 408).
	CodeRequestTimeout = "request_timeout"
	// CodeUnauthorized: access control is on and the request proves no active principal.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: the principal may not publish this event's type or source.
	CodeForbidden = "forbidden"
	// CodeUnknownType: no schema is registered for the event's type.
	CodeUnknownType = schemas.CodeUnknownType
	// CodeSchemaInvalid: the data breaks its schema (or dataschema names no such version).
	CodeSchemaInvalid = schemas.CodeSchemaInvalid
)

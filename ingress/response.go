package ingress

import "net/http"

// Response is the answer to a publish request: one result per entry, in request order.
type Response struct {
	// FailedEntryCount is how many entries were not accepted.
	FailedEntryCount int `json:"failedEntryCount"`
	// Entries holds one result per entry; empty when Error is set.
	Entries []EntryResult `json:"entries"`
	// Error is set when the request as a whole could not be read (not a batch, too large,
	// unsupported media type). No entry was accepted then.
	Error *RequestError `json:"error,omitempty"`
}

// EntryResult is the outcome of one entry: an accepted id, or an error code and message.
type EntryResult struct {
	ID string `json:"id,omitempty"`
	// Sequence is the event's sequence in the EVENTS stream.
	Sequence uint64 `json:"sequence,omitempty"`
	// Duplicate is true when the id was already stored inside the duplicate window.
	Duplicate    bool   `json:"duplicate,omitempty"`
	ErrorCode    string `json:"errorCode,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
	// Field is the attribute at fault, for invalid_event.
	Field string `json:"field,omitempty"`
}

// RequestError is a failure of the whole request.
type RequestError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Accepted reports whether the entry was stored.
func (r EntryResult) Accepted() bool { return r.ErrorCode == "" }

// StatusCode is the HTTP status of the response, also sent over NATS in the
// Jetmesh-Status header:
//
//	200 every entry accepted
//	207 some accepted, some not (read each entry)
//	400 none accepted, because of the entries themselves
//	503 none accepted, and at least one failed because storage was unavailable (retry)
//	413 / 415 / 400 the request as a whole was refused (see Error)
func (r *Response) StatusCode() int {
	if r.Error != nil {
		switch r.Error.Code {
		case CodeTooLarge, CodeTooManyEntries:
			return http.StatusRequestEntityTooLarge
		case CodeUnsupportedMediaType:
			return http.StatusUnsupportedMediaType
		case CodeUnavailable:
			return http.StatusServiceUnavailable
		case CodeRequestTimeout:
			return http.StatusRequestTimeout
		case CodeUnauthorized:
			return http.StatusUnauthorized
		}
		return http.StatusBadRequest
	}
	switch {
	case r.FailedEntryCount == 0:
		return http.StatusOK
	case r.FailedEntryCount < len(r.Entries):
		return http.StatusMultiStatus
	}
	forbidden := 0
	for _, e := range r.Entries {
		switch e.ErrorCode {
		case CodeUnavailable:
			return http.StatusServiceUnavailable
		case CodeForbidden:
			forbidden++
		}
	}
	if forbidden == len(r.Entries) {
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

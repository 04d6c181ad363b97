package ingress

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/auth"

	"github.com/jetmesh/jetmesh/event"
)

// traceHeaders are the W3C trace context headers carried into events (distributed tracing
// extension of CloudEvents).
var traceHeaders = []string{"traceparent", "tracestate"}

// ServeHTTP handles POST /v1/events: one structured event, one binary-mode event (ce-*
// headers), or a batch (application/cloudevents-batch+json). See Response.StatusCode for the
// status codes.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, &Response{Entries: []EntryResult{},
			Error: &RequestError{Code: "method_not_allowed", Message: "use POST to publish events"}})
		return
	}
	var principal *auth.Principal
	if in.principals != nil {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if principal, ok = in.principals.ByToken(strings.TrimSpace(token)); !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jetmesh"`)
			in.answerHTTP(w, time.Now(), &Response{Entries: []EntryResult{}, Error: &RequestError{Code: CodeUnauthorized,
				Message: "access control is on: send Authorization: Bearer <token> of an active principal (jetmesh creds add)"}})
			return
		}
	}
	// The body first, outside any slot: a slot is held only for work that finishes fast.
	body, release, readErr := in.bodies.Read(w, r)
	defer release()
	if readErr != nil && readErr.Code != CodeTooLarge {
		// No event arrived whole (a body too slow, or no room to hold it): nothing to keep.
		in.answerHTTP(w, time.Now(), &Response{Error: readErr, Entries: []EntryResult{}})
		return
	}
	if err := in.acquire(r.Context(), in.httpSlots); err != nil {
		return // the client went away while waiting
	}
	defer in.release(in.httpSlots)

	req := request{origin: "http", contentType: r.Header.Get("Content-Type"), trace: map[string]string{}, body: body, readErr: readErr, principal: principal}
	for _, h := range traceHeaders {
		req.trace[h] = r.Header.Get(h)
	}
	if event.IsBinaryHTTP(r.Header) {
		req.binaryHeader = eventHeaders(r.Header)
		req.parseBinary = func(maxBytes int) (*event.Event, error) {
			return event.ParseHTTPBinary(r.Header, req.body, maxBytes)
		}
	}
	writeResponse(w, in.process(r.Context(), req))
}

// answerHTTP answers a request refused before it was processed, counted like the others.
func (in *Ingress) answerHTTP(w http.ResponseWriter, began time.Time, resp *Response) {
	in.metrics.observe("http", began, resp)
	writeResponse(w, resp)
}

// writeResponse writes a publish answer with its status; a 503 says when to retry.
func writeResponse(w http.ResponseWriter, resp *Response) {
	status := resp.StatusCode()
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, resp)
}

// eventHeaders keeps the headers that make up a binary-mode event, HTTP or NATS, and
// nothing else (never credentials), for the DLQ.
func eventHeaders(h map[string][]string) map[string][]string {
	out := make(map[string][]string)
	for k, vs := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "ce-") || lk == "content-type" {
			out[lk] = vs
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing left to tell it
}

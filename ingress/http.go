package ingress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

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
	if err := in.acquire(r.Context()); err != nil {
		return // the client went away while waiting
	}
	defer in.release()

	req := request{origin: "http", contentType: r.Header.Get("Content-Type"), trace: map[string]string{}}
	for _, h := range traceHeaders {
		req.trace[h] = r.Header.Get(h)
	}
	if event.IsBinaryHTTP(r.Header) {
		req.binaryHeader = eventHeaders(r.Header)
		req.parseBinary = func(maxBytes int) (*event.Event, error) {
			return event.ParseHTTPBinary(r.Header, req.body, maxBytes)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(in.cfg.MaxRequestBytes)))
	req.body = body
	if err != nil {
		req.readErr = &RequestError{Code: CodeMalformed, Message: "reading request body: " + err.Error()}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			req.readErr = &RequestError{Code: CodeTooLarge, Message: fmt.Sprintf("request body is over the limit of %d bytes", in.cfg.MaxRequestBytes)}
		}
	}
	resp := in.process(r.Context(), req)
	writeJSON(w, resp.StatusCode(), resp)
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

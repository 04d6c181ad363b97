package ingress

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"
)

// BodyReader reads publish request bodies before any in-flight slot is taken, so a client
// that sends its body slowly holds a connection and a goroutine until its deadline, never
// a slot that other publishers need. Memory stays bounded: the bodies being read and
// worked on share a byte budget, and a request that would go over it is refused at once
// (503, retry). The ingress's HTTP endpoint and the sidecar's publish endpoint both use
// it. It is safe for concurrent use.
type BodyReader struct {
	limit   int64
	timeout time.Duration
	budget  int64
	held    atomic.Int64
}

// firstChunk bounds the first buffer a body gets, whatever its Content-Length says.
const firstChunk = 64 << 10

// NewBodyReader reads bodies of at most limit bytes, each within timeout, holding at most
// budget bytes across all requests at once.
func NewBodyReader(limit, budget int64, timeout time.Duration) *BodyReader {
	return &BodyReader{limit: limit, timeout: timeout, budget: budget}
}

// Read reads r's body. A Content-Length over the limit is refused before anything is read;
// a body that turns out longer is refused with the part that arrived.
// release returns the body's bytes to the budget once the caller is done with the body; it
// is never nil and must be called whatever the outcome.
func (b *BodyReader) Read(w http.ResponseWriter, r *http.Request) (body []byte, release func(), rerr *RequestError) {
	var taken atomic.Int64
	release = func() { b.held.Add(-taken.Swap(0)) }
	if r.ContentLength > b.limit {
		return nil, release, &RequestError{Code: CodeTooLarge, Message: fmt.Sprintf(
			"request body is %d bytes (Content-Length), over the limit of %d bytes", r.ContentLength, b.limit)}
	}
	// A deadline for this body alone; the server's own timeouts stay as a backstop.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(b.timeout))
	src := http.MaxBytesReader(w, r.Body, b.limit)
	var buf []byte
	for {
		if int64(len(buf)) > b.limit {
			return nil, release, b.tooLarge()
		}
		if len(buf) == cap(buf) {
			// The buffer grows with what arrives, not with what Content-Length announces, so
			// a client that announces 4 MiB and sends a byte a second holds 64 KiB at most.
			// It doubles up to one byte past the limit, so an over-long body is seen as such.
			grow := max(min(r.ContentLength+1, firstChunk), int64(cap(buf)), 512)
			grow = min(grow, b.limit+1-int64(len(buf)))
			if !b.take(&taken, grow) {
				return nil, release, &RequestError{Code: CodeUnavailable, Message: fmt.Sprintf(
					"the server is holding its limit of %d bytes of request bodies; retry shortly", b.budget)}
			}
			buf = slices.Grow(buf, int(grow))
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			return buf, release, nil
		case err == nil:
			continue
		}
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return buf, release, b.tooLarge() // what arrived, for a look at what it was
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, release, &RequestError{Code: CodeRequestTimeout, Message: fmt.Sprintf(
				"the request body did not arrive within %s (%d bytes received)", b.timeout, len(buf))}
		}
		return nil, release, &RequestError{Code: CodeMalformed, Message: "reading request body: " + err.Error()}
	}
}

// take reserves n bytes of the budget for one request, recording them in taken.
func (b *BodyReader) take(taken *atomic.Int64, n int64) bool {
	if b.held.Add(n) > b.budget {
		b.held.Add(-n)
		return false
	}
	taken.Add(n)
	return true
}

func (b *BodyReader) tooLarge() *RequestError {
	return &RequestError{Code: CodeTooLarge, Message: fmt.Sprintf("request body is over the limit of %d bytes", b.limit)}
}

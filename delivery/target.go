package delivery

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/internal/clip"
	"github.com/jetmesh/jetmesh/telemetry"
	"go.opentelemetry.io/otel/propagation"
)

// Target receives events. Implementations must be safe for concurrent use: a deliverer
// calls Send from up to MaxConcurrency goroutines.
type Target interface {
	// Send delivers one stored event (its ce-* and Content-Type headers, and its data) and
	// says what happened. It returns when the target answered or ctx ended.
	Send(ctx context.Context, header map[string][]string, data []byte) Result
}

// Outcome is what a delivery attempt asks for next.
type Outcome int

const (
	// Delivered: the target took the event; ack it.
	Delivered Outcome = iota
	// Retry: try again later, unless the attempts are used up.
	Retry
	// Reject: the target refused the event for good; dead-letter it now.
	Reject
	// Unreachable: no connection to the target could be made, so it never saw the event.
	// A failed attempt like Retry, unless the deliverer holds such events
	// (WithUnreachableHold).
	Unreachable
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Reject:
		return "reject"
	case Unreachable:
		return "unreachable"
	}
	return "unknown"
}

// Result is the outcome of one attempt.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status of the answer, 0 when there was none (timeout, refused).
	Status int
	// RetryAfter is the delay the target asked for (Retry-After), 0 if it did not.
	RetryAfter time.Duration
	// Error says why the attempt did not deliver, for logs and the DLQ record.
	Error string
}

// maxAnswerBytes is how much of a handler's answer is read, for the DLQ record and the
// {"status": ...} convention; the rest is discarded so the connection can be reused.
const maxAnswerBytes = 4 << 10

// maxDiscardBytes bounds the rest of an answer read only to keep the connection alive;
// beyond it closing the connection is cheaper.
const maxDiscardBytes = 64 << 10

// maxBatchAnswerBytes bounds a batch answer: room for a status for each of 1,000 events.
const maxBatchAnswerBytes = 256 << 10

// HTTPTarget POSTs events to URL in CloudEvents HTTP binary mode. Set URL and Client
// before the first Send and leave them alone after.
type HTTPTarget struct {
	URL    string
	Client *http.Client

	once   sync.Once
	parsed *url.URL
	bad    error
}

var _ Target = (*HTTPTarget)(nil)

// NewHTTPClient returns a client tuned for delivering to one local handler with up to
// conns requests at once: keep-alive connections, none of them shared with other hosts.
func NewHTTPClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	tr.ResponseHeaderTimeout = 0 // the rule's timeout, via the request context, bounds it
	tr.DisableCompression = true // answers are a few bytes; no Accept-Encoding on each request
	return &http.Client{Transport: tr}
}

// Send implements Target.
func (t *HTTPTarget) Send(ctx context.Context, header map[string][]string, data []byte) Result {
	res, _ := t.post(ctx, header, data, true)
	return res
}

// post sends one request: a stored event in binary mode (binary), or a body with the
// given headers as they are. It returns the classified answer and the answer's body.
func (t *HTTPTarget) post(ctx context.Context, header map[string][]string, data []byte, binary bool) (Result, []byte) {
	// The URL is parsed once, not per event: http.NewRequest would parse it every time.
	t.once.Do(func() { t.parsed, t.bad = url.Parse(t.URL) })
	if t.bad != nil {
		return Result{Outcome: Reject, Error: "target URL: " + t.bad.Error()}, nil
	}
	req := (&http.Request{
		Method: http.MethodPost, URL: t.parsed, Host: t.parsed.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, len(header)+2), ContentLength: int64(len(data)),
		Body:    io.NopCloser(bytes.NewReader(data)),
		GetBody: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}).WithContext(ctx)
	if len(data) == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	if binary {
		SetBinaryHeaders(req.Header, header)
	} else {
		for k, v := range header {
			req.Header[k] = v
		}
	}
	telemetry.InjectHTTP(ctx, propagation.HeaderCarrier(req.Header)) // the delivery span's, when traced
	resp, err := t.Client.Do(req)
	if err != nil {
		return transportFailure(ctx, err), nil
	}
	var answer []byte
	if resp.ContentLength != 0 {
		limit := int64(maxAnswerBytes)
		if !binary {
			limit = maxBatchAnswerBytes // a status per event of the batch
		}
		answer, _ = io.ReadAll(io.LimitReader(resp.Body, limit))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDiscardBytes))
	}
	_ = resp.Body.Close()
	return Classify(resp.StatusCode, resp.Header, answer, time.Now()), answer
}

func transportFailure(ctx context.Context, err error) Result {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return Result{Outcome: Retry, Error: "timed out waiting for the handler"}
	}
	// A failed dial (refused, no route, unknown host) means no byte of the request left:
	// the handler cannot have seen the event.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return Result{Outcome: Unreachable, Error: op.Error()}
	}
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		if inner := uerr.Unwrap(); inner != nil {
			err = inner
		}
	}
	return Result{Outcome: Retry, Error: err.Error()}
}

// Classify maps a handler's answer to an outcome (the Knative data-plane table):
//
//	2xx                                    delivered, unless the body is {"status":"RETRY"} or {"status":"DROP"}
//	404 408 409 425 429 5xx                retry (Retry-After honoured)
//	anything else (400 401 403 410 413 ...) rejected for good
//
// now is the reference for an HTTP-date Retry-After.
func Classify(status int, header http.Header, body []byte, now time.Time) Result {
	switch {
	case status >= 200 && status < 300:
		switch explicitStatus(header, body) {
		case "RETRY":
			return Result{Outcome: Retry, Status: status, RetryAfter: retryAfter(header, now), Error: `handler answered {"status":"RETRY"}`}
		case "DROP":
			return Result{Outcome: Reject, Status: status, Error: `handler answered {"status":"DROP"}`}
		}
		return Result{Outcome: Delivered, Status: status}
	case status == 404, status == 408, status == 409, status == 425, status == 429, status >= 500:
		return Result{Outcome: Retry, Status: status, RetryAfter: retryAfter(header, now), Error: answerText(status, body)}
	}
	return Result{Outcome: Reject, Status: status, Error: answerText(status, body)}
}

// explicitStatus reads Dapr's {"status": "RETRY" | "DROP" | "SUCCESS"} from a JSON answer.
func explicitStatus(header http.Header, body []byte) string {
	if len(body) == 0 || bytes.IndexByte(body, '{') < 0 {
		return ""
	}
	if mt, _, err := mime.ParseMediaType(header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return ""
	}
	var answer struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &answer) != nil {
		return ""
	}
	return strings.ToUpper(answer.Status)
}

func answerText(status int, body []byte) string {
	text := strings.TrimSpace(clip.String(string(body), 512))
	if text == "" {
		return fmt.Sprintf("handler answered %d %s", status, http.StatusText(status))
	}
	return fmt.Sprintf("handler answered %d: %s", status, text)
}

// maxRetryAfter bounds what a handler can ask for; the rule's backoff max caps it further.
const maxRetryAfter = 24 * time.Hour

// retryAfter parses Retry-After: delay-seconds or an HTTP date.
func retryAfter(header http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// SetBinaryHeaders writes a stored event's attributes onto an HTTP request in CloudEvents
// binary mode: ce-* headers percent-encoded as the HTTP binding requires, Content-Type, and
// the W3C trace headers. An event without a traceparent gets a fresh one, so the handler's
// spans always join a trace.
func SetBinaryHeaders(dst http.Header, stored map[string][]string) {
	traced := false
	for k, vs := range stored {
		if len(vs) == 0 {
			continue
		}
		// The stored value slices are shared, not copied, when they need no encoding:
		// neither the request nor the message changes them.
		lk := strings.ToLower(k)
		switch {
		case lk == "ce-traceparent":
			dst["Traceparent"] = vs[:1]
			traced = true
		case lk == "ce-tracestate":
			dst["Tracestate"] = vs[:1]
		case strings.HasPrefix(lk, "ce-"):
			name, ok := canonicalAttr[lk]
			if !ok {
				name = http.CanonicalHeaderKey(lk)
			}
			if v := percentEncode(vs[0]); v != vs[0] {
				dst[name] = []string{v}
			} else {
				dst[name] = vs[:1]
			}
		case lk == "content-type":
			dst["Content-Type"] = vs[:1]
		}
	}
	if !traced {
		dst["Traceparent"] = []string{NewTraceparent()}
	}
}

// canonicalAttr spares canonicalising the usual attribute headers for every event.
var canonicalAttr = map[string]string{
	"ce-id": "Ce-Id", "ce-source": "Ce-Source", "ce-type": "Ce-Type", "ce-specversion": "Ce-Specversion",
	"ce-time": "Ce-Time", "ce-subject": "Ce-Subject", "ce-dataschema": "Ce-Dataschema",
}

// percentEncode escapes what the CloudEvents HTTP binding says a header value cannot carry
// as is: space, double quote, percent, and anything outside printable ASCII.
func percentEncode(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hexdigits[c>>4])
			b.WriteByte(hexdigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// NewTraceparent starts a W3C trace: version 00, random trace and span ids, sampled.
func NewTraceparent() string {
	var id [24]byte
	_, _ = rand.Read(id[:]) // crypto/rand never fails on supported platforms
	var b [55]byte          // 00-<32 hex>-<16 hex>-01
	copy(b[:], "00-")
	hex.Encode(b[3:35], id[:16])
	b[35] = '-'
	hex.Encode(b[36:52], id[16:])
	copy(b[52:], "-01")
	return string(b[:])
}

// JoinURL appends a rule's target path to a handler's base URL.
func JoinURL(base, path string) string {
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(path, "/")
}

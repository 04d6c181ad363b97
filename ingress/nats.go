package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/clip"
	"github.com/nats-io/nats.go"
)

// HeaderStatus carries the HTTP-equivalent status of a NATS ingress answer.
const HeaderStatus = "Jetmesh-Status"

// HeaderOrigin names a forwarding publisher, such as "sidecar/billing", for DLQ records;
// without it a NATS request's origin is "nats".
const HeaderOrigin = "Jetmesh-Origin"

// maxOriginLen bounds a forwarded origin name.
const maxOriginLen = 128

// Listen subscribes to bus.IngressSubject (queue group bus.IngressQueue) and returns once
// the NATS server has registered the subscription, so that a publisher who sees this
// process ready finds a responder. Requests are answered until ctx is done; serve blocks
// until then, stops taking requests, finishes the ones it holds, and returns.
func (in *Ingress) Listen(ctx context.Context, nc *nats.Conn) (serve func() error, err error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		stopping bool // set before wg.Wait, so no callback adds to wg after it
	)
	handle := func(m *nats.Msg) {
		mu.Lock()
		if stopping {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		// Blocking here pushes back on the subscription, whose pending buffer is bounded.
		if in.acquire(ctx, in.natsSlots) != nil {
			wg.Done()
			return
		}
		go func() {
			defer wg.Done()
			defer in.release(in.natsSlots)
			in.serveNATS(m)
		}()
	}
	// jetmesh.v1.events, and jetmesh.v1.events.<principal>: the subject a principal's
	// credentials allow it, so the subject says who sent a request.
	var subs []*nats.Subscription
	for _, subject := range []string{bus.IngressSubject, bus.IngressSubject + ".*"} {
		sub, err := nc.QueueSubscribe(subject, bus.IngressQueue, handle)
		if err != nil {
			return nil, fmt.Errorf("ingress: subscribing to %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	unsubscribe := func() error {
		var errs []error
		for _, sub := range subs {
			errs = append(errs, sub.Unsubscribe())
		}
		return errors.Join(errs...)
	}
	if err := nc.FlushTimeout(listenFlushTimeout); err != nil {
		_ = unsubscribe()
		return nil, fmt.Errorf("ingress: registering the subscription to %s: %w", bus.IngressSubject, err)
	}
	return func() error {
		<-ctx.Done()
		// Unsubscribe rather than Drain: requests still queued would be answered after the
		// caller's connection is gone; callers retry on a timeout, and ids make that safe.
		err := unsubscribe()
		mu.Lock()
		stopping = true
		mu.Unlock()
		wg.Wait()
		return err
	}, nil
}

// listenFlushTimeout bounds the round trip that confirms the subscription.
const listenFlushTimeout = 10 * time.Second

func (in *Ingress) serveNATS(m *nats.Msg) {
	req := request{origin: "nats", contentType: m.Header.Get("Content-Type"), body: m.Data, trace: map[string]string{}}
	for k, vs := range m.Header {
		lk := strings.ToLower(k)
		for _, h := range traceHeaders {
			if lk == h && len(vs) > 0 {
				req.trace[h] = vs[0]
			}
		}
		if lk == "ce-specversion" {
			req.binaryHeader = eventHeaders(m.Header)
			req.parseBinary = func(maxBytes int) (*event.Event, error) {
				return event.ParseNATSBinary(m.Header, m.Data, maxBytes)
			}
		}
		if lk == "content-type" && len(vs) > 0 {
			req.contentType = vs[0]
		}
		if lk == "jetmesh-origin" && len(vs) > 0 && vs[0] != "" {
			req.origin = clip.String(vs[0], maxOriginLen)
		}
	}
	var resp *Response
	if in.principals != nil {
		name, _ := strings.CutPrefix(m.Subject, bus.IngressSubject+".")
		p, ok := in.principals.Active(name)
		if !ok || name == m.Subject {
			resp = &Response{Entries: []EntryResult{}, Error: &RequestError{Code: CodeUnauthorized,
				Message: "access control is on: publish with credentials, on jetmesh.v1.events.<principal>"}}
			in.metrics.observe("nats", time.Now(), resp)
		}
		req.principal = p
	}
	if v := m.Header.Get(dlq.HeaderPrevious); v != "" && (in.principals == nil || req.principal != nil && req.principal.Role == auth.RoleAdmin) {
		req.redriveOf, _ = strconv.ParseUint(v, 10, 64)
	}
	if resp == nil {
		resp = in.process(context.Background(), req)
	}
	if m.Reply == "" {
		return
	}
	reply := nats.NewMsg(m.Reply)
	reply.Header.Set(HeaderStatus, strconv.Itoa(resp.StatusCode()))
	reply.Data, _ = json.Marshal(resp) // plain structs always marshal
	if err := m.RespondMsg(reply); err != nil {
		in.log.Warn("answering publish request failed", "error", err)
	}
}

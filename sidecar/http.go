package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/ingress"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// publishTimeout bounds a publish forwarded to the ingress, including the wait for an
// ingress while none answers; the ingress itself answers within its publish timeout (5s
// by default).
const publishTimeout = 15 * time.Second

func (s *Sidecar) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/events", s.publish)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.statusProbe(func(st Status) bool { return st.Ready }))
	// /startupz leaves the app's health out: a native sidecar's startup probe asks it, and
	// the app starts only once it passes, so waiting for the app here would never end.
	mux.HandleFunc("GET /startupz", s.statusProbe(func(st Status) bool { return st.Started }))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return mux
}

// statusProbe answers the Status, 200 when pass says so and 503 otherwise.
func (s *Sidecar) statusProbe(pass func(Status) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		st := s.Status()
		code := http.StatusOK
		if !pass(st) {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, st)
	}
}

// publish forwards POST /v1/events to the ingress over NATS: the same request forms
// (structured, binary, batch) and the same answer as the server's own HTTP ingress.
func (s *Sidecar) publish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.refuse(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST to publish events")
		return
	}
	// The body first, outside any slot: a service (or anything else on this host) that
	// sends slowly holds a connection until the body deadline, never a slot.
	body, release, readErr := s.bodies.Read(w, r)
	defer release()
	if readErr != nil {
		resp := &ingress.Response{Entries: []ingress.EntryResult{}, Error: readErr}
		s.refuse(w, resp.StatusCode(), readErr.Code, readErr.Message)
		return
	}
	select {
	case s.publishSlots <- struct{}{}:
	case <-r.Context().Done():
		return // the service gave up waiting; nobody reads an answer
	}
	s.gauges.publishInflight.Inc()
	defer func() {
		s.gauges.publishInflight.Dec()
		<-s.publishSlots
	}()
	msg := nats.NewMsg(s.ingressSubject)
	msg.Data = body
	for k, vs := range r.Header {
		if len(vs) == 0 {
			continue
		}
		lk := strings.ToLower(k)
		switch {
		case strings.HasPrefix(lk, "ce-"):
			// HTTP binary mode percent-encodes attribute values; over NATS they travel as is.
			v := vs[0]
			if d, err := url.PathUnescape(v); err == nil {
				v = d
			}
			msg.Header.Set(lk, v)
		case lk == "content-type", lk == "traceparent", lk == "tracestate":
			msg.Header.Set(lk, vs[0])
		}
	}
	msg.Header.Set(ingress.HeaderOrigin, "sidecar/"+s.cfg.Service)
	ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	defer cancel()
	reply, err := s.forward(ctx, msg)
	if err != nil {
		text := "the jetmesh ingress did not answer: " + err.Error()
		if errors.Is(err, nats.ErrNoResponders) {
			text = "no jetmesh ingress is answering (is `jetmesh server` running and reachable?)"
		}
		if !s.nc.IsConnected() {
			text = "not connected to NATS at " + s.cfg.NATSURL + "; retry later"
		}
		s.refuse(w, http.StatusServiceUnavailable, ingress.CodeUnavailable, text)
		return
	}
	code, err := strconv.Atoi(reply.Header.Get(ingress.HeaderStatus))
	if err != nil || code < 200 || code > 599 {
		s.refuse(w, http.StatusBadGateway, ingress.CodeUnavailable, "unreadable answer from the ingress")
		return
	}
	s.gauges.publish.WithLabelValues(strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(reply.Data)
}

// forward sends a publish to the ingress. "No responders" means no ingress received it
// (a server starting, restarting or failing over), so sending it again is safe: it is
// re-sent with growing pauses until an ingress answers or ctx ends, and the service sees
// a slow answer instead of an error.
func (s *Sidecar) forward(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	pause := 50 * time.Millisecond
	for {
		reply, err := s.nc.RequestMsgWithContext(ctx, msg)
		if !errors.Is(err, nats.ErrNoResponders) {
			return reply, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

func (s *Sidecar) refuse(w http.ResponseWriter, status int, code, message string) {
	s.gauges.publish.WithLabelValues(strconv.Itoa(status)).Inc()
	writeJSON(w, status, &ingress.Response{Entries: []ingress.EntryResult{}, Error: &ingress.RequestError{Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

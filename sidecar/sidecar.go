package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/jetmesh/jetmesh/presence"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/telemetry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
)

// resync is how often the rules bucket is read afresh, bounding how long a change the
// watch missed can go unnoticed.
const resync = 30 * time.Second

// Sidecar delivers one service's rules and serves its localhost endpoint. Create it with
// New; Run owns every goroutine it starts.
type Sidecar struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *delivery.Metrics
	gauges  sidecarGauges
	gate    *delivery.Gate
	client  *http.Client
	ln      net.Listener
	// publishSlots bounds the publish requests worked on at once; a request takes one
	// only once bodies has read its body.
	publishSlots chan struct{}
	bodies       *ingress.BodyReader
	// ingressSubject is where publishes go: the principal's own with credentials.
	ingressSubject string

	nc *nats.Conn
	js jetstream.JetStream
	// conn is nc for Status, which may be called from any goroutine at any time.
	conn atomic.Pointer[nats.Conn]

	// tracer makes a span per delivery attempt; nil with tracing off.
	tracer trace.Tracer

	// replicas counts the sidecars delivering each rule, to share out rate limits.
	replicas replicaCount

	// instance names this sidecar in its heartbeats.
	instance string

	// changed asks for a heartbeat now: the rules delivered changed.
	changed chan struct{}

	mu      sync.Mutex
	loaded  bool // the rules bucket was read at least once
	running map[string]*worker
}

// worker is one rule's deliverer and the means to stop it.
type worker struct {
	d       *delivery.Deliverer
	encoded string // the stored rule, to notice changes
	stop    context.CancelFunc
	abort   context.CancelFunc
	done    chan struct{}
}

type sidecarGauges struct {
	appHealthy      prometheus.Gauge
	rules           prometheus.Gauge
	publish         *prometheus.CounterVec
	publishInflight prometheus.Gauge
}

// New checks cfg and binds the listen address, so a port in use is reported at once.
func New(cfg Config, log *slog.Logger) (*Sidecar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: --listen %s: %w", ErrConfig, cfg.Listen, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Sidecar{
		cfg: cfg, log: log.With("service", cfg.Service), reg: reg, ln: ln,
		metrics:        delivery.NewMetrics(reg),
		gate:           delivery.NewGate(cfg.AppHealth == ""),
		client:         delivery.NewHTTPClient(256),
		running:        map[string]*worker{},
		instance:       presence.Instance(),
		changed:        make(chan struct{}, 1),
		publishSlots:   make(chan struct{}, cfg.MaxPublishInflight),
		ingressSubject: bus.IngressSubject,
		bodies:         ingress.NewBodyReader(int64(cfg.MaxRequestBytes), int64(cfg.MaxPublishInflight)*int64(cfg.MaxRequestBytes), cfg.BodyTimeout.Std()),
		gauges: sidecarGauges{
			appHealthy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmesh_sidecar_app_healthy", Help: "1 when the service's health probe passes (always 1 without --app-health); delivery pauses at 0."}),
			rules:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmesh_sidecar_rules", Help: "Rules targeting this service that the sidecar delivers."}),
			publish: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "jetmesh_sidecar_publish_requests_total",
				Help: "Publish requests from the service, by HTTP status returned.",
			}, []string{"code"}),
			publishInflight: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "jetmesh_sidecar_publish_inflight_requests",
				Help: "Publish requests from the service being worked on now (bounded by --max-publish-inflight).",
			}),
		},
	}
	if cfg.AppHealth == "" {
		s.gauges.appHealthy.Set(1)
	}
	reg.MustRegister(s.gauges.appHealthy, s.gauges.rules, s.gauges.publish, s.gauges.publishInflight)
	return s, nil
}

// Addr is the address the HTTP endpoint listens on.
func (s *Sidecar) Addr() string { return s.ln.Addr().String() }

// Run connects to NATS (retrying forever), delivers and serves until ctx ends, then stops
// pulling, gives requests in flight the grace period, flushes acks and returns.
func (s *Sidecar) Run(ctx context.Context) error {
	tracer, stopTracing, err := telemetry.Setup(ctx, "jetmesh-sidecar", s.cfg.Version)
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("%w: tracing: %w", ErrConfig, err)
	}
	s.tracer = tracer
	defer func() {
		flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(flush); err != nil {
			s.log.Warn("flushing traces failed", "error", err)
		}
	}()
	var credOpts []nats.Option
	if s.cfg.Creds != "" {
		creds, err := auth.ReadCredentials(s.cfg.Creds)
		if err != nil {
			_ = s.ln.Close()
			return fmt.Errorf("%w: --creds: %w", ErrConfig, err)
		}
		if credOpts, err = creds.Options(); err != nil {
			_ = s.ln.Close()
			return fmt.Errorf("%w: --creds: %w", ErrConfig, err)
		}
		s.ingressSubject = auth.IngressSubject(creds.Name)
	}
	credOpts = append(credOpts, s.cfg.TLSOptions...)
	nc, err := nats.Connect(s.cfg.NATSURL, append(credOpts,
		nats.Name("jetmesh sidecar "+s.cfg.Service),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.log.Warn("disconnected from NATS; reconnecting", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
	)...)
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("%w: --server %s: %w", ErrConfig, s.cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		_ = s.ln.Close()
		return err
	}
	s.nc, s.js = nc, js
	s.conn.Store(nc)

	httpSrv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 2 * s.cfg.BodyTimeout.Std(), WriteTimeout: publishTimeout + 15*time.Second, IdleTimeout: 2 * time.Minute}
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Serve(s.ln) }()

	var wg sync.WaitGroup
	if s.cfg.AppHealth != "" {
		wg.Add(1)
		go func() { defer wg.Done(); s.probe(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.followRules(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.replicas.follow(ctx, js, s.cfg.Service) }()
	since := time.Now().UTC()
	instance := s.instance
	window := newDeliveryWindow(s.metrics, since)
	wg.Add(1)
	go func() {
		defer wg.Done()
		presence.Beat(ctx, js, presence.SidecarKey(s.cfg.Service, instance), s.log, s.changed, func() any {
			st := s.Status()
			return presence.Sidecar{Service: s.cfg.Service, Instance: instance, Version: s.cfg.Version, Since: since,
				At: time.Now().UTC(), Ready: st.Ready, Reason: st.Reason, Rules: st.Rules, Delivery: window.over(st.Rules),
				Replicas: s.replicas.seen()}
		})
	}()
	s.log.Info("jetmesh sidecar started", "listen", s.Addr(), "handler", s.cfg.Handler, "server", s.cfg.NATSURL)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-httpDone:
	}
	s.log.Info("shutting down: no new events pulled; finishing requests in flight", "grace", s.cfg.Grace)
	grace, cancel := context.WithTimeout(context.Background(), s.cfg.Grace.Std())
	defer cancel()
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.stopAll(grace) }()
	_ = httpSrv.Shutdown(grace)
	<-stopped
	wg.Wait()
	// Acks are written asynchronously: send them before closing.
	if err := nc.FlushTimeout(2 * time.Second); err != nil && nc.IsConnected() {
		s.log.Warn("flushing acknowledgements failed; the events concerned will be redelivered", "error", err)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// followRules keeps the running deliverers in line with the rules that target the
// service, for as long as ctx lasts (see kvwatch.Keep).
func (s *Sidecar) followRules(ctx context.Context) {
	kvwatch.Keep(ctx, s.js, bus.RulesBucket, resync, s.log, func(snap kvwatch.Snapshot) { s.apply(ctx, snap) })
}

// apply starts, restarts and stops deliverers to match the rules in snap.
func (s *Sidecar) apply(ctx context.Context, snap kvwatch.Snapshot) {
	want := map[string]rules.Rule{}
	encoded := map[string]string{}
	for name, raw := range snap {
		r, err := rules.Decode(raw)
		if err != nil {
			s.log.Error("a stored rule is unreadable; skipped", "rule", name, "error", err)
			continue
		}
		if r.Target.Service != s.cfg.Service {
			continue
		}
		want[name] = r
		encoded[name] = string(raw)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
	for name, w := range s.running {
		if _, ok := want[name]; !ok {
			s.log.Info("rule removed; stopping its delivery", "rule", name)
			s.stopWorker(w)
			delete(s.running, name)
			s.metrics.Forget(name)
		}
	}
	for name, r := range want {
		cur := s.running[name]
		if cur != nil && cur.encoded == encoded[name] {
			continue
		}
		target := &delivery.HTTPTarget{URL: delivery.JoinURL(s.cfg.Handler, r.Target.Path), Client: s.client}
		abortCtx, abort := context.WithCancel(context.Background())
		d, err := delivery.New(s.js, r, target, s.log, delivery.WithMetrics(s.metrics), delivery.WithGate(s.gate),
			delivery.WithOrigin("sidecar/"+s.cfg.Service), delivery.WithAbort(abortCtx),
			delivery.WithUnreachableHold(s.cfg.HoldUnreachable.Std()), delivery.WithTracer(s.tracer),
			delivery.WithReplicas(s.replicas.of(name)), delivery.WithMembers(s.replicas.members(s.instance, name)))
		if err != nil {
			abort()
			s.log.Error("a stored rule is invalid; its delivery is left as it is", "rule", name, "error", err)
			continue
		}
		if cur != nil {
			s.log.Info("rule changed; restarting its delivery", "rule", name)
			s.stopWorker(cur)
		} else {
			s.log.Info("delivering rule", "rule", name, "target", target.URL)
		}
		s.running[name] = s.startWorker(ctx, d, encoded[name], abort)
	}
	s.gauges.rules.Set(float64(len(s.running)))
	select {
	case s.changed <- struct{}{}:
	default: // a heartbeat is already due
	}
}

// startWorker runs d until stopped; abort cuts its requests in flight short.
func (s *Sidecar) startWorker(ctx context.Context, d *delivery.Deliverer, encoded string, abort context.CancelFunc) *worker {
	runCtx, stop := context.WithCancel(ctx)
	w := &worker{d: d, encoded: encoded, stop: stop, abort: abort, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer abort()
		_ = d.Run(runCtx)
	}()
	return w
}

// stopWorker stops pulling at once and cuts requests in flight short after the grace
// period, without waiting: a replaced rule's new deliverer starts meanwhile.
func (s *Sidecar) stopWorker(w *worker) {
	w.stop()
	go func() {
		t := time.NewTimer(s.cfg.Grace.Std())
		defer t.Stop()
		select {
		case <-w.done:
		case <-t.C:
			w.abort()
		}
	}()
}

// stopAll stops every deliverer and waits for them, cutting requests short when grace
// ends.
func (s *Sidecar) stopAll(grace context.Context) {
	s.mu.Lock()
	workers := make([]*worker, 0, len(s.running))
	for _, w := range s.running {
		w.stop()
		workers = append(workers, w)
	}
	s.mu.Unlock()
	for _, w := range workers {
		select {
		case <-w.done:
		case <-grace.Done():
			w.abort()
			<-w.done
		}
	}
}

// probe polls the service's health endpoint and opens or closes the delivery gate.
func (s *Sidecar) probe(ctx context.Context) {
	every := s.cfg.HealthInterval.Std()
	healthy := false
	for {
		ok := s.probeOnce(ctx, every)
		if ctx.Err() != nil {
			return
		}
		if ok != healthy {
			if ok {
				s.log.Info("service is healthy; delivering", "probe", s.cfg.AppHealth)
			} else {
				s.log.Warn("service is unhealthy; delivery paused", "probe", s.cfg.AppHealth)
			}
			healthy = ok
			s.gate.Set(ok)
			s.gauges.appHealthy.Set(map[bool]float64{true: 1, false: 0}[ok])
		}
		sleep(ctx, every)
	}
}

func (s *Sidecar) probeOnce(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.AppHealth, nil)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// Status is the sidecar's readiness, as /readyz reports it.
type Status struct {
	Ready bool `json:"ready"`
	// Started: connected to NATS and the rules read, whatever the app's health (/startupz).
	Started    bool `json:"started"`
	Connected  bool `json:"connected"`
	AppHealthy bool `json:"appHealthy"`
	// Rules maps each rule targeting the service to "bound" (pulling), "unreachable"
	// (pulling, but the handler accepted no connection at the last send),
	// "waiting" (its consumer is not there yet, or NATS is away) or "paused" (the service
	// is unhealthy).
	Rules map[string]string `json:"rules"`
	// Reason says why the sidecar is not ready.
	Reason string `json:"reason,omitempty"`
}

// Status reports readiness: connected, the rules read, every rule bound.
func (s *Sidecar) Status() Status {
	nc := s.conn.Load()
	st := Status{Connected: nc != nil && nc.IsConnected(), Rules: map[string]string{}}
	st.AppHealthy, _ = s.gate.State()
	s.mu.Lock()
	loaded := s.loaded
	var waiting []string
	for name, w := range s.running {
		switch {
		case w.d.Bound() && w.d.Unreachable():
			st.Rules[name] = "unreachable"
		case w.d.Bound():
			st.Rules[name] = "bound"
		case !st.AppHealthy:
			st.Rules[name] = "paused"
		default:
			st.Rules[name] = "waiting"
			waiting = append(waiting, name)
		}
	}
	s.mu.Unlock()
	sort.Strings(waiting)
	st.Started = st.Connected && loaded
	switch {
	case !st.Connected:
		st.Reason = "not connected to NATS at " + s.cfg.NATSURL
	case !loaded:
		st.Reason = "rules not read yet"
	case !st.AppHealthy:
		st.Reason = "delivery paused: the service's health probe fails"
	case len(waiting) > 0:
		st.Reason = fmt.Sprintf("not bound to the consumer of %v yet", waiting)
	default:
		st.Ready = true
	}
	return st
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

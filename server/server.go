package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/console"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/lease"
	"github.com/jetmesh/jetmesh/lookup"
	"github.com/jetmesh/jetmesh/replay"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/schemas"
	"github.com/jetmesh/jetmesh/telemetry"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is one jetmesh node.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ready atomic.Bool
	// started is closed once every listener is up (or Run failed before that).
	started  chan struct{}
	natsURL  string
	httpAddr string
	// ns is the embedded nats-server; nil against an external NATS.
	ns *natsserver.Server
	// storage watches the streams once they exist.
	storage atomic.Pointer[storageWatch]
	// storeWriteError is set when the embedded JetStream's store failed a write.
	storeWriteError atomic.Bool
	// issuer and internalPassword exist with access control on: the key that signs
	// credentials, and the in-process connection's password (never stored).
	issuer           *auth.Issuer
	internalPassword string
}

// New checks cfg and returns a server ready to Run.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, log: log, started: make(chan struct{})}, nil
}

// Started is closed once the server listens everywhere and its streams exist.
func (s *Server) Started() <-chan struct{} { return s.started }

// ReconcilerLease is the key of the presence bucket whose holder reconciles the rule
// consumers.
const ReconcilerLease = "lease.reconciler"

// NATSURL is the client URL, valid after Started.
func (s *Server) NATSURL() string { return s.natsURL }

// HTTPAddr is the HTTP listen address, valid after Started.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Run starts everything, serves until ctx is cancelled, then drains: it stops taking new
// requests, lets in-flight ones finish within ShutdownTimeout, and shuts JetStream down
// cleanly. A failure to start is returned at once.
func (s *Server) Run(ctx context.Context) error {
	startedOnce := sync.OnceFunc(func() { close(s.started) })
	defer startedOnce()

	nc, monitor, stopNATS, err := s.connectNATS()
	if err != nil {
		return err
	}
	defer func() {
		nc.Close()
		stopNATS()
		s.log.Info("jetmesh server stopped")
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	// HTTP comes up first: /healthz must answer while a cluster node waits for its peers,
	// or a liveness probe would kill it; /v1/events answers 503 until the ingress is ready.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newStreamCollector(js))
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	s.httpAddr = ln.Addr().String()
	var ing atomic.Pointer[ingress.Ingress]
	var web atomic.Pointer[http.Handler] // the console, once the server is up
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmesh_server_ready",
		Help: "1 while the server takes events (what /readyz says), 0 while starting, draining, cut off from NATS or with failing storage."},
		func() float64 { return boolGauge(s.unready(nc, ing.Load()) == "") }))
	httpSrv := &http.Server{
		Handler:           s.requireClientCert(s.routes(&ing, &web, nc, reg)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	if t := s.cfg.TLS; t.enabled() {
		cfg, err := t.serverTLS(false)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		if t.VerifyClients {
			// Checked per path (requireClientCert): probes reach /healthz and /readyz
			// without a certificate, as a kubelet does.
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
		httpSrv.TLSConfig = cfg // ServeTLS: HTTP/2 offered by ALPN, HTTP/1.1 otherwise
	}
	wg.Go(func() {
		serve := httpSrv.Serve
		if httpSrv.TLSConfig != nil {
			serve = func(ln net.Listener) error { return httpSrv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	})
	ingressCtx, stopIngress := context.WithCancel(context.Background())
	defer func() {
		s.ready.Store(false)
		drainCtx, cancelDrain := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.Std())
		defer cancelDrain()
		if err := httpSrv.Shutdown(drainCtx); err != nil {
			s.log.Warn("http drain incomplete", "error", err)
		}
		stopIngress()
		wg.Wait()
	}()

	if err := s.ensureStreams(ctx, js); err != nil {
		return err
	}
	live, err := schemas.Watch(ctx, js, s.log.With("component", "schemas"), 30*time.Second, schemas.OnReload(newSchemaMetrics(reg).observe))
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	tracer, stopTracing, err := telemetry.Setup(ctx, "jetmesh-server", s.cfg.Version)
	if err != nil {
		return err
	}
	defer func() {
		flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(flush); err != nil {
			s.log.Warn("flushing traces failed", "error", err)
		}
	}()
	if tracer != nil {
		s.log.Info("tracing on: a producer span per stored event, exported over OTLP")
	}
	ingressOpts := []ingress.Option{ingress.WithMetrics(ingress.NewMetrics(reg)), ingress.WithValidator(live), ingress.WithTracer(tracer)}
	var principals *auth.Directory
	if s.issuer != nil {
		dir, err := s.startAuth(ctx, ingressCtx, nc, js, &wg)
		if err != nil {
			return err
		}
		principals = dir
		ingressOpts = append(ingressOpts, ingress.WithPrincipals(dir))
	}
	if s.cfg.Console {
		c, err := console.New(nc, principals, s.log.With("component", "console"))
		if err != nil {
			return err
		}
		h := c.Handler()
		web.Store(&h)
	}
	in, err := ingress.New(nc, s.cfg.Ingress, s.log.With("component", "ingress"), ingressOpts...)
	if err != nil {
		return err
	}
	ing.Store(in)
	watch := &storageWatch{js: js, streams: s.cfg.streams(), ns: s.ns, dataDir: dataDirOf(s.cfg.DataDir), writeError: &s.storeWriteError,
		log: s.log.With("component", "storage"), discards: newDLQDiscards(reg)}
	s.storage.Store(watch)
	watch.check(ctx) // the DLQ's first record, before anything can be discarded
	wg.Go(func() { watch.run(ingressCtx) })
	presenceKV, err := js.KeyValue(ctx, bus.PresenceBucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bus.PresenceBucket, err)
	}
	// One server of a cluster reconciles the rule consumers: the holder of this lease.
	reconcileLease := lease.New(presenceKV, ReconcilerLease, s.nodeName(), bus.PresenceInterval, s.log.With("component", "rules"))
	wg.Go(func() { reconcileLease.Run(ingressCtx) })
	reconciler := rules.NewReconciler(js, s.log.With("component", "rules"), 30*time.Second, rules.OnPass(newRuleMetrics(reg).observe),
		rules.OnlyWhile(reconcileLease.Held))
	wg.Go(func() {
		if err := reconciler.Run(ingressCtx); err != nil {
			errc <- fmt.Errorf("rules reconciler: %w", err)
		}
	})
	replays := replay.NewRunner(js, s.nodeName(), s.log.With("component", "replay"))
	wg.Go(func() {
		if err := replays.Run(ingressCtx); err != nil {
			errc <- fmt.Errorf("replay runner: %w", err)
		}
	})
	wg.Go(func() { s.announce(ingressCtx, js, nc, &ing) })
	wg.Go(func() {
		lookup.NewIndexer(js, s.log.With("component", "index")).Run(ingressCtx, s.cfg.Streams.Replicas)
	})
	serveNATS, err := in.Listen(ingressCtx, nc)
	if err != nil {
		return err
	}
	wg.Go(func() {
		if err := serveNATS(); err != nil {
			errc <- fmt.Errorf("nats ingress: %w", err)
		}
	})

	s.ready.Store(true)
	startedOnce()
	if !s.cfg.Auth.Enabled && (!isLoopback(s.cfg.HTTPAddr) || s.cfg.NATSURL == "" && !isLoopback(s.cfg.NATSAddr)) {
		s.log.Warn("INSECURE: listening beyond loopback without access control (--insecure): anyone who reaches these ports can publish around validation, read every event and delete the streams; use --auth",
			"nats", s.cfg.NATSAddr, "http", s.cfg.HTTPAddr)
	}
	s.log.Info("jetmesh server ready",
		"nats", s.natsURL, "embedded", s.cfg.NATSURL == "", "http", "http://"+s.httpAddr, "monitor", monitor,
		"cluster", s.cfg.Cluster.Name, "data", s.cfg.DataDir, "ingress_subject", bus.IngressSubject, "sync_always", s.cfg.SyncAlways)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("draining", "timeout", s.cfg.ShutdownTimeout.String())
	return runErr
}

// ensureStreams creates or updates the streams. A cluster node waits for its peers however
// long they take to start (readyz says 503 meanwhile); a single node that cannot create its
// streams in 30s has a real problem.
func (s *Server) ensureStreams(ctx context.Context, js jetstream.JetStream) error {
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if s.cfg.Cluster.enabled() {
		s.log.Info("waiting for the cluster to form to create the streams", "routes", s.cfg.Cluster.Routes, "replicas", s.cfg.Streams.Replicas)
		ensureCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	if err := bus.EnsureStreams(ensureCtx, js, s.cfg.streams()); err != nil {
		return fmt.Errorf("creating streams: %w", err)
	}
	if err := bus.EnsureBuckets(ensureCtx, js, s.cfg.streams()); err != nil {
		return fmt.Errorf("creating KV buckets: %w", err)
	}
	return nil
}

// connectNATS gives the server its NATS connection: to the embedded nats-server it starts
// (in-process, no TCP), or, with NATSURL set, to an existing NATS deployment. stop shuts the
// embedded server down; it does nothing for an external one.
func (s *Server) connectNATS() (nc *nats.Conn, monitor string, stop func(), err error) {
	if s.cfg.NATSURL != "" {
		nc, err = nats.Connect(s.cfg.NATSURL, nats.Name("jetmesh-server"), nats.MaxReconnects(-1),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { s.log.Warn("disconnected from NATS", "error", err) }),
			nats.ReconnectHandler(func(c *nats.Conn) { s.log.Info("reconnected to NATS", "url", c.ConnectedUrlRedacted()) }))
		if err != nil {
			return nil, "", nil, fmt.Errorf("connecting to NATS at %s: %w", s.cfg.NATSURL, err)
		}
		s.natsURL = nc.ConnectedUrlRedacted()
		return nc, "off (external NATS)", func() {}, nil
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o750); err != nil {
		return nil, "", nil, fmt.Errorf("data directory: %w", err)
	}
	ns, err := s.startNATS()
	if err != nil {
		return nil, "", nil, err
	}
	s.ns = ns
	stop = func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	opts := []nats.Option{nats.InProcessServer(ns), nats.Name("jetmesh-server"), nats.MaxReconnects(-1)}
	if s.issuer != nil {
		opts = append(opts, nats.UserInfo(internalUser, s.internalPassword))
	}
	nc, err = nats.Connect("", opts...)
	if err != nil {
		stop()
		return nil, "", nil, fmt.Errorf("in-process NATS connection: %w", err)
	}
	return nc, monitorURL(ns), stop, nil
}

// startNATS starts the embedded nats-server and waits until it takes connections, failing
// fast when it cannot listen.
func (s *Server) startNATS() (*natsserver.Server, error) {
	host, port := splitAddr(s.cfg.NATSAddr)
	if port == 0 {
		port = natsserver.RANDOM_PORT // nats-server reads 0 as "default port"
	}
	opts := &natsserver.Options{
		ServerName:         s.cfg.Name,
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           s.cfg.DataDir,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  s.cfg.MaxStore,
		SyncAlways:         s.cfg.SyncAlways,
		MaxPayload:         int32(s.cfg.Ingress.MaxRequestBytes + 64<<10),
		NoSigs:             true,
	}
	if c := s.cfg.Cluster; c.enabled() {
		opts.Cluster.Name = c.Name
		opts.Cluster.Host, opts.Cluster.Port = splitAddr(c.Listen)
		opts.Routes = natsserver.RoutesFromStr(strings.Join(c.Routes, ","))
		if s.cfg.Streams.Replicas == 1 {
			s.log.Warn("clustered with streams.replicas: 1: the loss of one node loses its events; set replicas: 3")
		}
	}
	if s.cfg.Auth.Enabled {
		if err := s.configureAuth(opts); err != nil {
			return nil, err
		}
	}
	if t := s.cfg.TLS; t.enabled() {
		clientTLS, err := t.serverTLS(t.VerifyClients)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = clientTLS, true, t.VerifyClients, 5
		if s.cfg.Cluster.enabled() {
			routeTLS, err := t.serverTLS(true) // routes always verify each other
			if err != nil {
				return nil, fmt.Errorf("tls: %w", err)
			}
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = routeTLS, 5
		}
	}
	if s.cfg.MonitorAddr != "" {
		host, port := splitAddr(s.cfg.MonitorAddr)
		if port == 0 {
			port = natsserver.RANDOM_PORT
		}
		if s.cfg.TLS.enabled() {
			opts.HTTPHost, opts.HTTPSPort = host, port // served with opts.TLSConfig
		} else {
			opts.HTTPHost, opts.HTTPPort = host, port
		}
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	logger := &natsLogger{log: s.log.With("component", "nats"), fatal: make(chan string, 1), writeError: &s.storeWriteError}
	ns.SetLoggerV2(logger, false, false, false)
	ns.Start()
	deadline := time.Now().Add(15 * time.Second)
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-logger.fatal:
			ns.Shutdown()
			return nil, fmt.Errorf("nats server: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			return nil, errors.New("nats server: not ready after 15s")
		}
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, errors.New("nats server: JetStream did not start (see the log above)")
	}
	s.natsURL = ns.ClientURL()
	return ns, nil
}

func monitorURL(ns *natsserver.Server) string {
	if a := ns.MonitorAddr(); a != nil {
		return "http://" + a.String()
	}
	return "off"
}

func (s *Server) routes(ing *atomic.Pointer[ingress.Ingress], web *atomic.Pointer[http.Handler], nc *nats.Conn, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	if s.cfg.Console {
		mux.HandleFunc(console.Prefix, func(w http.ResponseWriter, r *http.Request) {
			if h := web.Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, "jetmesh is starting; the console comes up with it", http.StatusServiceUnavailable)
		})
		mux.Handle("GET /console", http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
	}
	mux.HandleFunc("/v1/events", func(w http.ResponseWriter, r *http.Request) {
		if in := ing.Load(); in != nil {
			in.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, &ingress.Response{Entries: []ingress.EntryResult{},
			Error: &ingress.RequestError{Code: ingress.CodeUnavailable, Message: "the server is starting: its streams are not ready yet"}})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if reason := s.unready(nc, ing.Load()); reason != "" {
			writeStatus(w, http.StatusServiceUnavailable, "unavailable", reason)
			return
		}
		writeStatus(w, http.StatusOK, "ready", "")
	})
	return mux
}

// requireClientCert refuses requests without a verified client certificate when the
// server verifies clients, except the health checks.
func (s *Server) requireClientCert(next http.Handler) http.Handler {
	if !s.cfg.TLS.VerifyClients {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			writeStatus(w, http.StatusUnauthorized, "unauthorized", "this server verifies clients: present a certificate signed by its CA")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// storageProblem says why published events cannot be stored now, or "".
func (s *Server) storageProblem(in *ingress.Ingress) string {
	if w := s.storage.Load(); w != nil {
		if p := w.Problem(); p != "" {
			return p
		}
	}
	if in != nil {
		if p := in.StorageProblem(); p != nil {
			return p.Error()
		}
	}
	return ""
}

func writeStatus(w http.ResponseWriter, code int, status, reason string) {
	writeJSON(w, code, struct {
		Status string `json:"status"`
		Reason string `json:"reason,omitempty"`
	}{status, reason})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing left to tell it
}

// natsLogger sends nats-server's log lines to slog, and reports its fatal errors (such as a
// port in use) to startNATS instead of exiting the process.
type natsLogger struct {
	log   *slog.Logger
	fatal chan string
	// writeError is set when nats-server reports that a store write failed: its only
	// sign (the publish that hit it gets no answer at all), and one it never clears.
	writeError *atomic.Bool
}

var _ natsserver.Logger = (*natsLogger)(nil)

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(strings.ToLower(msg), "critical write error") {
		l.writeError.Store(true)
	}
	l.log.Error(msg)
}
func (l *natsLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}

// unready says why the server does not take events now: starting or draining, cut off
// from NATS, or storage failing; "" when it is ready.
func (s *Server) unready(nc *nats.Conn, in *ingress.Ingress) string {
	switch {
	case !s.ready.Load():
		return "starting or draining"
	case !nc.IsConnected():
		return "not connected to NATS"
	}
	return s.storageProblem(in)
}

// nodeName names this server stably across restarts: its configured name, else its host
// and data directory, so a restarted server takes back the work it held.
func (s *Server) nodeName() string {
	if s.cfg.Name != "" {
		return s.cfg.Name
	}
	host, _ := os.Hostname()
	dir, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		dir = s.cfg.DataDir
	}
	return host + ":" + dir
}

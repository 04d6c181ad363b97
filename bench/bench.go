// Package bench measures jetmesh end to end (publish through the ingress, deliver through
// a sidecar to an HTTP handler) and, in the same process and run, the two raw baselines it
// is built from: JetStream publish + consume, and plain HTTP POSTs over loopback, both
// carrying the same event. Each is measured at full speed (throughput) and at a fixed rate
// (latency), so the ratios say what jetmesh costs on this machine.
package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/keyorder"
	"github.com/jetmesh/jetmesh/internal/pemfile"
	"github.com/jetmesh/jetmesh/internal/testcerts"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/schemas"
	"github.com/jetmesh/jetmesh/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config shapes a benchmark run.
type Config struct {
	// Events is how many events each full-speed measurement sends.
	Events int `json:"events"`
	// Rate is the event rate of the fixed-rate measurements, per second.
	Rate int `json:"rate"`
	// Duration is how long each fixed-rate measurement sends.
	Duration time.Duration `json:"duration"`
	// Concurrency is the rule's maxConcurrency, and the raw HTTP baseline's client count.
	Concurrency int `json:"concurrency"`
	// Publishers send concurrently at full speed, each Batch events per request.
	Publishers int `json:"publishers"`
	Batch      int `json:"batch"`
	// DeliveryBatch, when set, also measures a rule with batch delivery of this many events
	// a request (delivery.batch.maxEvents), beside the per-event rule, in the same run.
	DeliveryBatch int `json:"deliveryBatch,omitempty"`
	// OrderKeys, when set, also measures an orderBy rule (delivery.orderBy: partitionkey)
	// delivered by two sidecar replicas, with the events spread over this many keys; the
	// handler counts order violations.
	OrderKeys int `json:"orderKeys,omitempty"`
	// Delay, when set, also measures delayed events: at Rate for Duration, each due Delay
	// after it is published (deliverat); the latencies are the lateness after the due time.
	Delay time.Duration `json:"delay,omitempty"`
	// RateLimit, when set, also measures a rule limited to this many deliveries a second
	// (delivery.rateLimit), fed RateLimit×Duration events at once: the rate the handler sees.
	RateLimit int `json:"rateLimit,omitempty"`
	// Only limits the run to these paths (all of the configured ones when empty).
	Only []string `json:"only,omitempty"`
	// SidecarExec, when set, runs the sidecars as separate processes of this jetmesh binary
	// (`jetmesh sidecar`), so their peak memory is measured apart from the server's.
	SidecarExec string `json:"-"`
	// Nodes is how many servers run: 1, or 3 for a cluster on loopback with R3 streams
	// (publishers and sidecars use the first node).
	Nodes int `json:"nodes"`
	// Secure also measures jetmesh with access control and TLS on (bearer tokens over
	// HTTPS, a sidecar with credentials over TLS), in the same run: the cost of security.
	Secure bool `json:"secure"`
	// DataDir holds the embedded server's store; empty means a temporary directory.
	DataDir string `json:"-"`
	// Progress receives a line per measurement; nil for none.
	Progress io.Writer `json:"-"`
}

// DefaultConfig: 20,000 events at full speed, 2,000 events/s for 5 s, concurrency 64, four
// publishers of 100-event batches.
func DefaultConfig() Config {
	return Config{Events: 20000, Rate: 2000, Duration: 5 * time.Second, Concurrency: 64, Publishers: 4, Batch: 100, Nodes: 1}
}

// ErrConfig marks an invalid configuration.
var ErrConfig = errors.New("invalid bench configuration")

// Validate names every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Events < 100 || c.Events > 10_000_000 {
		errs = append(errs, fmt.Errorf("--events must be between 100 and 10000000, got %d", c.Events))
	}
	if c.Rate < 1 || c.Rate > 1_000_000 {
		errs = append(errs, fmt.Errorf("--rate must be between 1 and 1000000, got %d", c.Rate))
	}
	if c.Duration < 100*time.Millisecond || c.Duration > time.Hour {
		errs = append(errs, fmt.Errorf("--duration must be between 100ms and 1h, got %s", c.Duration))
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		errs = append(errs, fmt.Errorf("--concurrency must be between 1 and 10000, got %d", c.Concurrency))
	}
	if c.Publishers < 1 || c.Publishers > 256 {
		errs = append(errs, fmt.Errorf("--publishers must be between 1 and 256, got %d", c.Publishers))
	}
	if c.Batch < 1 || c.Batch > 1000 {
		errs = append(errs, fmt.Errorf("--batch must be between 1 and 1000, got %d", c.Batch))
	}
	if c.DeliveryBatch < 0 || c.DeliveryBatch > rules.MaxBatchEvents {
		errs = append(errs, fmt.Errorf("--delivery-batch must be between 0 (off) and %d, got %d", rules.MaxBatchEvents, c.DeliveryBatch))
	}
	if c.OrderKeys < 0 || c.OrderKeys > 1_000_000 {
		errs = append(errs, fmt.Errorf("--order-keys must be between 0 (off) and 1000000, got %d", c.OrderKeys))
	} else if c.OrderKeys > c.Events {
		errs = append(errs, fmt.Errorf("--order-keys (%d) must not exceed --events (%d)", c.OrderKeys, c.Events))
	}
	if c.Delay < 0 || c.Delay > time.Hour {
		errs = append(errs, fmt.Errorf("--delay must be between 0 (off) and 1h, got %s", c.Delay))
	}
	if c.RateLimit < 0 || c.RateLimit > 1_000_000 {
		errs = append(errs, fmt.Errorf("--rate-limit must be between 0 (off) and 1000000, got %d", c.RateLimit))
	}
	for _, p := range c.Only {
		if !slices.Contains(allPaths, p) {
			errs = append(errs, fmt.Errorf("--only: unknown path %q (paths: %s)", p, strings.Join(allPaths, ", ")))
		}
	}
	if c.Nodes != 1 && c.Nodes != 3 {
		errs = append(errs, fmt.Errorf("--nodes must be 1 or 3, got %d", c.Nodes))
	}
	if c.SidecarExec != "" && c.Secure {
		errs = append(errs, errors.New("--sidecar-process with --secure is not supported: the secured run's sidecar runs in this process"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// Result is one measurement.
type Result struct {
	// Path is what was measured: jetmesh, jetstream or http.
	Path string `json:"path"`
	// Mode is "full" (as fast as possible) or "fixed" (at Config.Rate).
	Mode string `json:"mode"`
	// Events is how many events arrived; Seconds is from the first send to the last arrival.
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"eventsPerSec"`
	// Latencies from send (the scheduled send time at a fixed rate) to arrival at the
	// handler (or consumer), in milliseconds.
	P50  float64 `json:"p50Ms"`
	P99  float64 `json:"p99Ms"`
	P999 float64 `json:"p999Ms"`
	// Keys, OrderViolations and Repeats, for jetmesh-ordered: the keys, the events that
	// arrived after a later event of their key, and the events that arrived more than once.
	Keys            int `json:"keys,omitempty"`
	OrderViolations int `json:"orderViolations"`
	Repeats         int `json:"repeats"`
	// SidecarPeakRSSMiB is the sidecars' peak resident memory so far, each at its highest
	// (VmHWM), and SidecarCPUSeconds the CPU time they used during the measurement, when
	// they run as separate processes; CPUSeconds is this process's (server, publishers,
	// handler) during the measurement.
	SidecarPeakRSSMiB float64 `json:"sidecarPeakRssMiB,omitempty"`
	SidecarCPUSeconds float64 `json:"sidecarCpuSeconds,omitempty"`
	CPUSeconds        float64 `json:"cpuSeconds"`
}

// Report is a whole run.
type Report struct {
	Config  Config   `json:"config"`
	CPUs    int      `json:"cpus"`
	Go      string   `json:"go"`
	Results []Result `json:"results"`
	// Ratios compare jetmesh to each baseline: throughput ratios at full speed (jetmesh ÷
	// baseline, higher is better) and p99 ratios at a fixed rate (jetmesh ÷ baseline).
	Ratios map[string]float64 `json:"ratios"`
}

// Find returns the result of path and mode.
func (r *Report) Find(path, mode string) (Result, bool) {
	for _, x := range r.Results {
		if x.Path == path && x.Mode == mode {
			return x, true
		}
	}
	return Result{}, false
}

// Paths measured, in order.
const (
	PathJetmesh = "jetmesh"
	// PathJetmeshBatch is jetmesh with batch delivery to the handler (--delivery-batch).
	PathJetmeshBatch = "jetmesh-batch"
	PathJetStream    = "jetstream"
	// PathJetmeshSecure is jetmesh with access control and TLS on (Config.Secure).
	PathJetmeshSecure = "jetmesh-secure"
	PathHTTP          = "http"
	// PathJetmeshOrdered is an orderBy rule delivered by two replicas (Config.OrderKeys).
	PathJetmeshOrdered = "jetmesh-ordered"
	// PathJetmeshDelayed is delayed events; its latencies are lateness (Config.Delay).
	PathJetmeshDelayed = "jetmesh-delayed"
	// PathJetmeshRateLimited is a rate-limited rule; its rate is the handler's (Config.RateLimit).
	PathJetmeshRateLimited = "jetmesh-ratelimited"
	ModeFull               = "full"
	ModeFixed              = "fixed"
)

var allPaths = []string{PathHTTP, PathJetStream, PathJetmesh, PathJetmeshBatch, PathJetmeshOrdered, PathJetmeshDelayed, PathJetmeshRateLimited, PathJetmeshSecure}

// Run starts an embedded jetmesh server, a sidecar and an HTTP sink in this process and
// measures the three paths, each at full speed and at the fixed rate.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "jetmesh-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	plain, err := setUp(ctx, cfg, filepath.Join(cfg.DataDir, "plain"), false)
	if err != nil {
		return nil, err
	}
	defer plain.close()

	rep := &Report{Config: cfg, CPUs: runtime.NumCPU(), Go: runtime.Version(), Ratios: map[string]float64{}}
	fixedEvents := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	type step struct {
		path, mode string
		on         *env
		run        func(context.Context, *measure) error
		n          int
	}
	steps := []step{
		{PathHTTP, ModeFull, plain, plain.httpFull, cfg.Events},
		{PathHTTP, ModeFixed, plain, plain.httpFixed, fixedEvents},
		{PathJetStream, ModeFull, plain, plain.jetstreamFull, cfg.Events},
		{PathJetStream, ModeFixed, plain, plain.jetstreamFixed, fixedEvents},
		{PathJetmesh, ModeFull, plain, plain.jetmeshFull, cfg.Events},
		{PathJetmesh, ModeFixed, plain, plain.jetmeshFixed, fixedEvents},
	}
	if cfg.DeliveryBatch > 0 {
		steps = append(steps, step{PathJetmeshBatch, ModeFull, plain, plain.jetmeshBatchFull, cfg.Events},
			step{PathJetmeshBatch, ModeFixed, plain, plain.jetmeshBatchFixed, fixedEvents})
	}
	if cfg.OrderKeys > 0 {
		perKey := cfg.Events / cfg.OrderKeys
		steps = append(steps, step{PathJetmeshOrdered, ModeFull, plain, plain.orderedFull, perKey * cfg.OrderKeys})
	}
	if cfg.Delay > 0 {
		steps = append(steps, step{PathJetmeshDelayed, ModeFixed, plain, plain.delayedFixed, fixedEvents})
	}
	if cfg.RateLimit > 0 {
		steps = append(steps, step{PathJetmeshRateLimited, ModeFull, plain, plain.limitedFull, max(100, int(float64(cfg.RateLimit)*cfg.Duration.Seconds()))})
	}
	if cfg.Secure && (len(cfg.Only) == 0 || slices.Contains(cfg.Only, PathJetmeshSecure)) {
		secure, err := setUp(ctx, cfg, filepath.Join(cfg.DataDir, "secure"), true)
		if err != nil {
			return nil, fmt.Errorf("the secured server: %w", err)
		}
		defer secure.close()
		steps = append(steps, step{PathJetmeshSecure, ModeFull, secure, secure.jetmeshFull, cfg.Events},
			step{PathJetmeshSecure, ModeFixed, secure, secure.jetmeshFixed, fixedEvents})
	}
	for _, s := range steps {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, s.path) {
			continue
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "measuring %s at %s (%d events)...\n", s.path, modeText(s.mode, cfg.Rate), s.n)
		}
		cpu0, sidecarCPU0 := processCPU(), s.on.sidecarCPU()
		m := s.on.sink.start(s.path+"-"+s.mode, s.n)
		if err := s.run(ctx, m); err != nil {
			return nil, fmt.Errorf("%s %s: %w", s.path, s.mode, err)
		}
		res, err := m.wait(ctx, 30*time.Second+time.Duration(s.n)*time.Millisecond+cfg.Delay)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", s.path, s.mode, err)
		}
		res.Path, res.Mode = s.path, s.mode
		if s.path == PathJetmeshOrdered {
			res.Keys = cfg.OrderKeys
		}
		res.SidecarPeakRSSMiB = s.on.sidecarPeakRSS()
		res.CPUSeconds, res.SidecarCPUSeconds = processCPU()-cpu0, s.on.sidecarCPU()-sidecarCPU0
		rep.Results = append(rep.Results, res)
	}
	ratio := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			rep.Ratios[name] = a / b
		}
	}
	jf, _ := rep.Find(PathJetmesh, ModeFull)
	hf, _ := rep.Find(PathHTTP, ModeFull)
	sf, _ := rep.Find(PathJetStream, ModeFull)
	jx, _ := rep.Find(PathJetmesh, ModeFixed)
	hx, _ := rep.Find(PathHTTP, ModeFixed)
	sx, _ := rep.Find(PathJetStream, ModeFixed)
	ratio("throughputVsHTTP", jf.EventsPerSec, hf.EventsPerSec)
	ratio("throughputVsJetStream", jf.EventsPerSec, sf.EventsPerSec)
	ratio("p99VsHTTP", jx.P99, hx.P99)
	ratio("p99VsJetStream", jx.P99, sx.P99)
	if cfg.DeliveryBatch > 0 {
		bf, _ := rep.Find(PathJetmeshBatch, ModeFull)
		bx, _ := rep.Find(PathJetmeshBatch, ModeFixed)
		ratio("batchThroughputVsPerEvent", bf.EventsPerSec, jf.EventsPerSec)
		ratio("batchP99VsPerEvent", bx.P99, jx.P99)
	}
	if cfg.RateLimit > 0 {
		lf, _ := rep.Find(PathJetmeshRateLimited, ModeFull)
		ratio("rateLimitAccuracy", lf.EventsPerSec, float64(cfg.RateLimit))
	}
	if cfg.Secure {
		qf, _ := rep.Find(PathJetmeshSecure, ModeFull)
		qx, _ := rep.Find(PathJetmeshSecure, ModeFixed)
		ratio("secureThroughputVsPlain", qf.EventsPerSec, jf.EventsPerSec)
		ratio("secureP99VsPlain", qx.P99, jx.P99)
	}
	return rep, nil
}

func modeText(mode string, rate int) string {
	if mode == ModeFull {
		return "full speed"
	}
	return fmt.Sprintf("%d events/s", rate)
}

// env is everything a run measures through.
type env struct {
	cfg       Config
	stop      func()
	srv       *server.Server
	sink      *sink
	sinkURL   string
	ingestURL string
	client    *http.Client
	nc        *nats.Conn
	js        jetstream.JetStream
	// token is the publisher's bearer token, with access control on.
	token string
	// sidecars deliver the bench rules: in this process, or child processes (SidecarExec).
	sidecars []benchSidecar
	// replicas of the streams: 3 in a cluster.
	replicas int
}

// mintBenchPrincipals creates, as the server's first admin, the sidecar and the publisher
// a secured run uses: the sidecar's credentials file and the publisher's token.
func (e *env) mintBenchPrincipals(ctx context.Context, dir string) (creds, token string, err error) {
	ask := func(req auth.AddRequest) (*auth.AddReply, error) { return auth.Ask(ctx, e.nc, auth.AddSubject, req) }
	sc, err := ask(auth.AddRequest{Name: "bench-sidecar", Role: auth.RoleSidecar, Service: "bench"})
	if err != nil {
		return "", "", fmt.Errorf("minting the sidecar: %w", err)
	}
	creds = filepath.Join(dir, "bench-sidecar.creds")
	if err := auth.WriteCreds(creds, []byte(sc.Creds)); err != nil {
		return "", "", err
	}
	pub, err := ask(auth.AddRequest{Name: "bench-publisher", Role: auth.RolePublisher})
	if err != nil {
		return "", "", fmt.Errorf("minting the publisher: %w", err)
	}
	return creds, pub.Token, nil
}

const benchType = "bench.tick"

// benchBatchType is what the batch-delivery rule takes (--delivery-batch).
const benchBatchType = "bench.job"

// benchSchema is the schema of the benchmark's events, so the ingress validates them the
// way it validates production traffic.
const benchSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
"required":["n"],"properties":{"n":{"type":"integer","minimum":0}},"additionalProperties":false}`

// setUp starts a server on dataDir, with access control and TLS when secure, a sidecar
// and a sink, and waits until an event makes the whole trip.
func setUp(ctx context.Context, cfg Config, dataDir string, secure bool) (*env, error) {
	quiet := slog.New(slog.DiscardHandler)
	scfg := server.DefaultConfig()
	scfg.DataDir, scfg.NATSAddr, scfg.HTTPAddr = dataDir, "127.0.0.1:0", "127.0.0.1:0"
	var certs testcerts.Files
	if secure {
		var err error
		if err = os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
		if certs, err = testcerts.Generate(dataDir); err != nil {
			return nil, err
		}
		scfg.Auth.Enabled = true
		scfg.TLS = server.TLSConfig{Cert: certs.Cert, Key: certs.Key, CA: certs.CA}
	}
	nodes := 1
	if !secure {
		nodes = cfg.Nodes
	}
	scfgs, err := clusterConfigs(scfg, nodes)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	e := &env{cfg: cfg}
	e.stop = func() { cancel(); wg.Wait() }
	serverErr := make(chan error, nodes)
	var servers []*server.Server
	for _, c := range scfgs {
		srv, err := server.New(c, quiet)
		if err != nil {
			e.stop()
			return nil, err
		}
		servers = append(servers, srv)
		wg.Go(func() { serverErr <- srv.Run(runCtx) })
	}
	e.srv = servers[0] // publishers and sidecars use the first node
	e.replicas = scfgs[0].Streams.Replicas
	for _, srv := range servers {
		select {
		case <-srv.Started():
		case err := <-serverErr:
			e.stop()
			return nil, fmt.Errorf("starting the server: %w", err)
		}
	}
	if nodes > 1 {
		if err := waitReady(ctx, servers); err != nil {
			e.stop()
			return nil, err
		}
	}
	fail := func(err error) (*env, error) { e.close(); return nil, err }

	e.sink = &sink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	sinkSrv := &http.Server{Handler: e.sink, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	wg.Go(func() { _ = sinkSrv.Serve(ln) })
	wg.Go(func() { <-runCtx.Done(); _ = sinkSrv.Close() })
	e.sinkURL = "http://" + ln.Addr().String()
	e.ingestURL = "http://" + e.srv.HTTPAddr() + "/v1/events"
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
	e.client = &http.Client{Transport: tr}

	natsOpts := []nats.Option{nats.Name("jetmesh bench")}
	var sidecarOpts []nats.Option
	if secure {
		pool, err := pemfile.CertPool(certs.CA)
		if err != nil {
			return fail(err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		e.ingestURL = "https://" + e.srv.HTTPAddr() + "/v1/events"
		admin, err := auth.ReadCredentials(filepath.Join(dataDir, "auth", "admin.creds"))
		if err != nil {
			return fail(err)
		}
		adminOpts, err := admin.Options()
		if err != nil {
			return fail(err)
		}
		sidecarOpts = []nats.Option{nats.RootCAs(certs.CA)}
		natsOpts = append(append(natsOpts, adminOpts...), sidecarOpts...)
	}
	if e.nc, err = nats.Connect(e.srv.NATSURL(), natsOpts...); err != nil {
		return fail(err)
	}
	var sidecarCreds string
	if secure {
		if sidecarCreds, e.token, err = e.mintBenchPrincipals(ctx, dataDir); err != nil {
			return fail(err)
		}
	}
	e.js, _ = jetstream.New(e.nc)
	reg, err := schemas.OpenRegistry(ctx, e.js)
	if err != nil {
		return fail(err)
	}
	var docs []schemas.Document
	for _, typ := range []string{benchType, benchBatchType, benchOrderedType, benchDelayedType, benchLimitedType} {
		docs = append(docs, schemas.Document{Type: typ, Version: 1, Origin: "bench", Raw: []byte(benchSchema)})
	}
	if err := reg.Push(ctx, docs); err != nil {
		return fail(err)
	}
	store, err := rules.OpenStore(ctx, e.js)
	if err != nil {
		return fail(err)
	}
	rule := rules.Rule{Name: "bench", Pattern: []byte(`{"type":["` + benchType + `"]}`),
		Target: rules.Target{Service: "bench", Path: "/"}, Delivery: rules.Delivery{MaxConcurrency: cfg.Concurrency}}
	wanted := []rules.Rule{rule}
	if cfg.DeliveryBatch > 0 {
		wanted = append(wanted, rules.Rule{Name: "bench-batch", Pattern: []byte(`{"type":["` + benchBatchType + `"]}`),
			Target: rules.Target{Service: "bench", Path: "/"}, Delivery: rules.Delivery{
				MaxConcurrency: max(cfg.Concurrency, 4*cfg.DeliveryBatch),
				Batch:          &rules.Batch{MaxEvents: cfg.DeliveryBatch, MaxWait: duration.Duration(20 * time.Millisecond)}}})
	}
	if !secure {
		wanted = append(wanted, modeRules(cfg)...)
	}
	if _, err := store.Apply(ctx, wanted, rules.ApplyOptions{}); err != nil {
		return fail(err)
	}
	replicas := 1
	if cfg.OrderKeys > 0 && !secure {
		replicas = 2 // the orderBy rule's partitions are split between two
	}
	for range replicas {
		side, err := e.startSidecar(runCtx, &wg, sidecarCreds, sidecarOpts)
		if err != nil {
			return fail(err)
		}
		e.sidecars = append(e.sidecars, side)
	}
	if err := e.waitSidecars(ctx, len(wanted)); err != nil {
		return fail(err)
	}
	// The schema is live once an event validates: wait for it rather than race the reload.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m := e.sink.start("warm-up", 1)
		if err := e.post(ctx, "application/cloudevents+json", structured("warm-up", 0, time.Now())); err == nil {
			if _, err := m.wait(ctx, 30*time.Second); err != nil {
				for _, sc := range e.sidecars {
					if p, ok := sc.(*childProcess); ok {
						fmt.Fprintln(os.Stderr, p.out.String())
					}
				}
				return fail(fmt.Errorf("warming up: %w", err))
			}
			break
		}
		if time.Now().After(deadline) {
			return fail(errors.New("the ingress did not accept the bench schema's events within 30s"))
		}
	}
	return e, nil
}

func (e *env) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	e.stop()
}

// post publishes body to the ingress; an answer other than 200 is an error.
func (e *env) post(ctx context.Context, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.ingestURL, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	res, err := e.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("ingress answered %d", res.StatusCode)
	}
	return nil
}

// structured renders one event; sentat carries the send time to the handler as an
// extension attribute (ce-sentat).
func structured(id string, n int, sent time.Time) []byte { return structuredOf(benchType, id, n, sent) }

func structuredOf(typ, id string, n int, sent time.Time) []byte {
	return eventJSON(typ, id, n, sent, "")
}

// eventJSON renders one event in structured mode; attrs, when set, are more attributes,
// each followed by a comma.
func eventJSON(typ, id string, n int, sent time.Time, attrs string) []byte {
	b := make([]byte, 0, 160+len(attrs))
	b = append(b, `{"specversion":"1.0","id":"`...)
	b = append(b, id...)
	b = append(b, `","source":"/bench","type":"`...)
	b = append(b, typ...)
	b = append(b, `",`...)
	b = append(b, attrs...)
	b = append(b, `"sentat":"`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	b = append(b, `","data":{"n":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, `}}`...)
}

func (e *env) jetmeshFull(ctx context.Context, m *measure) error {
	return e.publishAll(ctx, m, benchType)
}

func (e *env) jetmeshBatchFull(ctx context.Context, m *measure) error {
	return e.publishAll(ctx, m, benchBatchType)
}

func (e *env) jetmeshFixed(ctx context.Context, m *measure) error {
	return e.publishFixed(ctx, m, benchType)
}

func (e *env) jetmeshBatchFixed(ctx context.Context, m *measure) error {
	return e.publishFixed(ctx, m, benchBatchType)
}

// publishAll publishes the measurement's events of type typ as fast as the publishers go.
func (e *env) publishAll(ctx context.Context, m *measure, typ string) error {
	return spread(m.want, e.cfg.Publishers, e.cfg.Batch, func(from, to int) error {
		now := time.Now()
		batch := make([]byte, 0, (to-from)*160)
		batch = append(batch, '[')
		for i := from; i < to; i++ {
			if i > from {
				batch = append(batch, ',')
			}
			batch = append(batch, structuredOf(typ, m.name+"-"+strconv.Itoa(i), i, now)...)
		}
		batch = append(batch, ']')
		return e.post(ctx, "application/cloudevents-batch+json", batch)
	})
}

// publishFixed publishes the measurement's events of type typ at the configured rate.
func (e *env) publishFixed(ctx context.Context, m *measure, typ string) error {
	return pace(ctx, e.cfg.Rate, m.want, 32, func(i int, due time.Time) error {
		return e.post(ctx, "application/cloudevents+json", structuredOf(typ, m.name+"-"+strconv.Itoa(i), i, due))
	})
}

// stallWait lets the raw baseline's async publisher wait for acknowledgements when its
// window is full, as a real publisher would, instead of failing after nats.go's 200ms.
var stallWait = jetstream.WithStallWait(10 * time.Second)

// rawStream is the baseline's stream: file storage like EVENTS, on the same server.
const rawStream = "BENCHRAW"

func (e *env) rawConsumer(ctx context.Context, m *measure) (jetstream.ConsumeContext, error) {
	// As many replicas as EVENTS has, so the baseline pays for replication too.
	st, err := e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: rawStream, Subjects: []string{"benchraw"}, Storage: jetstream.FileStorage,
		Replicas: max(1, e.replicas)})
	if err != nil {
		return nil, err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy, MaxAckPending: e.cfg.Concurrency})
	if err != nil {
		return nil, err
	}
	// In a cluster a pull sent before the consumer has a leader goes unanswered until it
	// expires: start once it has one.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := cons.Info(ctx)
		if err == nil && (info.Cluster == nil || info.Cluster.Leader != "") {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the baseline's consumer got no leader within 30s")
		}
	}
	return cons.Consume(func(msg jetstream.Msg) {
		if sent, err := strconv.ParseInt(msg.Headers().Get("ce-sentat"), 10, 64); err == nil {
			m.arrived(sent)
		}
		_ = msg.Ack()
	}, jetstream.PullMaxMessages(e.cfg.Concurrency))
}

// stored is the event the jetmesh path stores for event n, in its stored form (the ce-*
// headers, Content-Type, Nats-Msg-Id; body = data). The baselines carry this very event,
// so each compares the same bytes moved with and without jetmesh.
func stored(name string, n int, sent time.Time) (map[string][]string, []byte) {
	ev := event.Event{SpecVersion: "1.0", ID: name + "-" + strconv.Itoa(n), Source: "/bench", Type: benchType,
		Extensions: map[string]string{"sentat": strconv.FormatInt(sent.UnixNano(), 10)},
		Data:       []byte(`{"n":` + strconv.Itoa(n) + `}`)}
	return ev.Header(), ev.Data
}

func (e *env) rawMsg(name string, sent time.Time, n int) *nats.Msg {
	header, data := stored(name, n, sent)
	return &nats.Msg{Subject: "benchraw", Header: header, Data: data}
}

func (e *env) jetstreamFull(ctx context.Context, m *measure) error {
	cc, err := e.rawConsumer(ctx, m)
	if err != nil {
		return err
	}
	m.onDone(cc.Stop)
	err = spread(e.cfg.Events, e.cfg.Publishers, e.cfg.Batch, func(from, to int) error {
		now := time.Now()
		for i := from; i < to; i++ {
			if _, err := e.js.PublishMsgAsync(e.rawMsg(m.name, now, i), stallWait); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case <-e.js.PublishAsyncComplete():
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("JetStream did not acknowledge the publishes within 30s")
	}
}

func (e *env) jetstreamFixed(ctx context.Context, m *measure) error {
	cc, err := e.rawConsumer(ctx, m)
	if err != nil {
		return err
	}
	m.onDone(cc.Stop)
	return pace(ctx, e.cfg.Rate, m.want, 1, func(i int, due time.Time) error {
		_, err := e.js.PublishMsgAsync(e.rawMsg(m.name, due, i), stallWait)
		return err
	})
}

// sinkPost sends the handler the request the sidecar would send for event n: the same
// CloudEvents binary-mode headers and body.
func (e *env) sinkPost(ctx context.Context, name string, sent time.Time, n int) error {
	header, data := stored(name, n, sent)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.sinkURL, bytes.NewReader(data))
	if err != nil {
		return err
	}
	delivery.SetBinaryHeaders(req.Header, header)
	res, err := e.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return nil
}

func (e *env) httpFull(ctx context.Context, m *measure) error {
	return spread(e.cfg.Events, e.cfg.Concurrency, 1, func(from, _ int) error {
		return e.sinkPost(ctx, m.name, time.Now(), from)
	})
}

func (e *env) httpFixed(ctx context.Context, m *measure) error {
	return pace(ctx, e.cfg.Rate, m.want, e.cfg.Concurrency, func(i int, due time.Time) error {
		return e.sinkPost(ctx, m.name, due, i)
	})
}

// spread runs n items in chunks of size chunk over workers goroutines.
func spread(n, workers, chunk int, do func(from, to int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for {
				from := int(next.Add(int64(chunk))) - chunk
				if from >= n {
					return
				}
				if err := do(from, min(from+chunk, n)); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pace sends n items at rate per second from workers goroutines. Latency is measured
// from when each item was due (or handed out, when the pacer overslept), so falling
// behind shows up in it (no coordinated omission).
func pace(ctx context.Context, rate, n, workers int, send func(i int, due time.Time) error) error {
	type item struct {
		i   int
		due time.Time
	}
	items := make(chan item, workers)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range workers {
		wg.Go(func() {
			for it := range items {
				if err := send(it.i, it.due); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; i < n && failed.Load() == nil && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
			// The sleep overshoots by up to a timer tick; that lateness is the pacer's,
			// not the system's, so the clock starts when the item is handed out. Time
			// spent waiting for a free worker still counts.
			due = time.Now()
		}
		items <- item{i, due}
	}
	close(items)
	wg.Wait()
	if err := failed.Load(); err != nil {
		return *err
	}
	return ctx.Err()
}

// sink is the handler every path delivers to; it records the latency of each arrival
// into the current measurement.
type sink struct{ cur atomic.Pointer[measure] }

func (s *sink) start(name string, want int) *measure {
	m := &measure{name: name, want: want, lat: make([]int64, want), at: make([]int64, want), done: make(chan struct{}), began: time.Now().UnixNano()}
	s.cur.Store(m)
	return m
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") == delivery.MediaBatch {
		var events []struct {
			SentAt string `json:"sentat"`
		}
		raw, _ := io.ReadAll(r.Body)
		if json.Unmarshal(raw, &events) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if m := s.cur.Load(); m != nil {
			for _, ev := range events {
				if sent, err := strconv.ParseInt(ev.SentAt, 10, 64); err == nil {
					m.arrived(sent)
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	m := s.cur.Load()
	if m != nil && m.order != nil {
		var data struct {
			N int `json:"n"`
		}
		raw, _ := io.ReadAll(r.Body)
		if json.Unmarshal(raw, &data) == nil {
			m.order.Observe(r.Header.Get("Ce-Partitionkey"), data.N)
		}
	} else {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	if sent, err := strconv.ParseInt(r.Header.Get("Ce-Sentat"), 10, 64); err == nil && m != nil {
		m.arrived(sent)
	}
	w.WriteHeader(http.StatusNoContent)
}

// measure collects one measurement's arrivals.
type measure struct {
	name    string
	want    int
	lat     []int64
	n       atomic.Int64 // slots claimed
	filled  atomic.Int64 // slots written
	last    atomic.Int64
	began   int64
	done    chan struct{}
	cleanup []func()
	// order checks each key's order (jetmesh-ordered); nil otherwise.
	order *keyorder.Checker
	// steady measures the rate over the middle 80% of the arrivals (jetmesh-ratelimited),
	// leaving out the start and the end.
	steady bool
	at     []int64 // arrival times, with steady
}

func (m *measure) onDone(f func()) { m.cleanup = append(m.cleanup, f) }

func (m *measure) arrived(sent int64) {
	now := time.Now().UnixNano()
	i := m.n.Add(1) - 1
	if i >= int64(m.want) {
		return // a redelivery after the measurement completed
	}
	m.lat[i], m.at[i] = now-sent, now
	m.last.Store(now)
	// Done when every slot is written, not when the last one is claimed: a slot claimed
	// earlier may still be being written.
	if m.filled.Add(1) == int64(m.want) {
		close(m.done)
	}
}

func (m *measure) wait(ctx context.Context, timeout time.Duration) (Result, error) {
	defer func() {
		for _, f := range m.cleanup {
			f()
		}
	}()
	select {
	case <-m.done:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-time.After(timeout):
		return Result{}, fmt.Errorf("only %d of %d events arrived within %s", min(m.n.Load(), int64(m.want)), m.want, timeout)
	}
	lat := slices.Clone(m.lat)
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6 }
	secs := float64(m.last.Load()-m.began) / 1e9
	res := Result{Events: m.want, Seconds: secs, EventsPerSec: float64(m.want) / secs, P50: q(0.50), P99: q(0.99), P999: q(0.999)}
	if m.steady && m.want >= 10 {
		at := slices.Clone(m.at)
		slices.Sort(at)
		from, to := m.want/10, m.want-m.want/10-1
		res.EventsPerSec = float64(to-from) / (float64(at[to]-at[from]) / 1e9)
	}
	if m.order != nil {
		_, res.Repeats, res.OrderViolations = m.order.Counts()
	}
	return res, nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

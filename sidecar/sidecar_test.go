package sidecar_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/metricsdoc"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/jetmesh/jetmesh/internal/servertest"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/server"
	"github.com/jetmesh/jetmesh/sidecar"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bed is a running jetmesh server (in process) and a client on it.
type bed struct {
	srv   *server.Server
	js    jetstream.JetStream
	store *rules.Store
}

func newBed(t *testing.T) *bed {
	t.Helper()
	srv, _ := servertest.Start(t, servertest.Config(t), slog.New(slog.DiscardHandler))
	nc, err := nats.Connect(srv.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	store, err := rules.OpenStore(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return &bed{srv: srv, js: js, store: store}
}

func (b *bed) apply(t *testing.T, yaml string) {
	t.Helper()
	rs, err := rules.ParseFile("r.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Apply(context.Background(), rs, rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// publish goes through the server's HTTP ingress.
func (b *bed) publish(t *testing.T, id, typ, data string) {
	t.Helper()
	body := `{"specversion":"1.0","id":"` + id + `","source":"/t","type":"` + typ + `","data":` + data + `}`
	res, err := http.Post("http://"+b.srv.HTTPAddr()+"/v1/events", "application/cloudevents+json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("publish: %d", res.StatusCode)
	}
}

type service struct {
	mu      sync.Mutex
	got     map[string][]string // path → ce-ids
	status  atomic.Int32
	healthy atomic.Bool
}

func newService(t *testing.T) (*service, string) {
	s := &service{got: map[string][]string{}}
	s.status.Store(200)
	s.healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if s.healthy.Load() {
				w.WriteHeader(200)
			} else {
				w.WriteHeader(503)
			}
			return
		}
		s.mu.Lock()
		s.got[r.URL.Path] = append(s.got[r.URL.Path], r.Header.Get("Ce-Id"))
		s.mu.Unlock()
		w.WriteHeader(int(s.status.Load()))
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *service) ids(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got[path]...)
}

func runSidecar(t *testing.T, cfg sidecar.Config) *sidecar.Sidecar {
	t.Helper()
	sc, err := sidecar.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return sc
}

func config(b *bed, handler string) sidecar.Config {
	cfg := sidecar.DefaultConfig()
	cfg.Service, cfg.Handler, cfg.Listen, cfg.NATSURL = "billing", handler, "127.0.0.1:0", b.srv.NATSURL()
	cfg.HealthInterval = duration.Duration(100 * time.Millisecond)
	return cfg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func readyz(t *testing.T, sc *sidecar.Sidecar) sidecar.Status {
	t.Helper()
	res, err := http.Get("http://" + sc.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st sidecar.Status
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Ready != (res.StatusCode == 200) {
		t.Fatalf("readyz status %d for %+v", res.StatusCode, st)
	}
	return st
}

// TestFollowsRules: rules applied, changed and removed while the sidecar runs take
// effect without a restart; rules of other services are not its business.
func TestFollowsRules(t *testing.T) {
	b := newBed(t)
	svc, url := newService(t)
	sc := runSidecar(t, config(b, url))
	waitFor(t, "ready with no rules", func() bool { return readyz(t, sc).Ready })

	b.apply(t, "name: orders\npattern: {type: [orders.created]}\ntarget: {service: billing, path: /orders}\n")
	b.apply(t, "name: not-mine\npattern: {type: [orders.created]}\ntarget: {service: shipping}\n")
	waitFor(t, "the rule bound", func() bool { st := readyz(t, sc); return st.Ready && st.Rules["orders"] == "bound" })
	if _, ok := readyz(t, sc).Rules["not-mine"]; ok {
		t.Fatal("the sidecar took another service's rule")
	}
	b.publish(t, "e1", "orders.created", `{}`)
	waitFor(t, "e1 delivered", func() bool { return len(svc.ids("/orders")) == 1 })

	// A changed path applies live.
	b.apply(t, "name: orders\npattern: {type: [orders.created]}\ntarget: {service: billing, path: /v2/orders}\n")
	waitFor(t, "the change applied", func() bool {
		b.publish(t, "probe-"+time.Now().Format("150405.000000"), "orders.created", `{}`)
		time.Sleep(50 * time.Millisecond)
		return len(svc.ids("/v2/orders")) > 0
	})

	// Removed: nothing more arrives.
	if err := b.store.Delete(context.Background(), "orders"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rule gone", func() bool { _, ok := readyz(t, sc).Rules["orders"]; return !ok })
	before := len(svc.ids("/v2/orders")) + len(svc.ids("/orders"))
	b.publish(t, "after-rm", "orders.created", `{}`)
	time.Sleep(200 * time.Millisecond)
	if after := len(svc.ids("/v2/orders")) + len(svc.ids("/orders")); after != before {
		t.Fatal("an event was delivered for a removed rule")
	}
}

// TestPublishWaitsForIngress: while no ingress answers (a server starting, restarting or
// failing over), a service's publish waits for one instead of failing at once.
func TestPublishWaitsForIngress(t *testing.T) {
	ns := natstest.RunServer(t)
	nc, js := natstest.JetStream(t, ns)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureBuckets(ctx, js, bus.DefaultStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	_, url := newService(t)
	cfg := sidecar.DefaultConfig()
	cfg.Service, cfg.Handler, cfg.Listen, cfg.NATSURL = "billing", url, "127.0.0.1:0", ns.ClientURL()
	sc := runSidecar(t, cfg)

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := http.Post("http://"+sc.Addr()+"/v1/events", "application/cloudevents+json",
			strings.NewReader(`{"specversion":"1.0","id":"w1","source":"/billing","type":"invoices.issued"}`))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		answered <- answer{status: res.StatusCode, body: string(body)}
	}()
	select {
	case a := <-answered:
		t.Fatalf("answered with no ingress running: %+v", a)
	case <-time.After(500 * time.Millisecond):
	}

	icfg := ingress.DefaultConfig()
	icfg.AllowUnknownTypes = true
	in, err := ingress.New(nc, icfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ictx, stop := context.WithCancel(ctx)
	serve, err := in.Listen(ictx, nc)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- serve() }()
	t.Cleanup(func() { stop(); <-served })

	a := <-answered
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, `"id":"w1"`) {
		t.Fatalf("publish once an ingress came: %+v", a)
	}
}

// TestPublishEndpoint: the service publishes through localhost; the answer is the
// ingress's, and a refused event's DLQ record names the sidecar.
func TestPublishEndpoint(t *testing.T) {
	b := newBed(t)
	_, url := newService(t)
	sc := runSidecar(t, config(b, url))
	base := "http://" + sc.Addr() + "/v1/events"

	res, err := http.Post(base, "application/cloudevents+json", strings.NewReader(`{"specversion":"1.0","id":"p1","source":"/billing","type":"invoices.issued","data":{"n":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"id":"p1"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}

	// Binary mode with a percent-encoded attribute.
	req, _ := http.NewRequest(http.MethodPost, base, strings.NewReader(`{"n":2}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "p2")
	req.Header.Set("Ce-Source", "/billing")
	req.Header.Set("Ce-Type", "invoices.issued")
	req.Header.Set("Ce-Subject", "caf%C3%A9")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("binary publish: %d", res.StatusCode)
	}
	m, err := lastMsg(b, bus.EventsStream, "evt.invoices.issued")
	if err != nil || m.Header.Get("ce-subject") != "café" {
		t.Fatalf("stored %v %v", m, err)
	}

	// Refused: 400 from the ingress, and the record says where it came from.
	res, err = http.Post(base, "application/cloudevents+json", strings.NewReader(`{"specversion":"1.0","id":"p3","source":"/billing","type":"Bad Type"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(body), "invalid_event") {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	dm, err := lastMsg(b, bus.DLQStream, "dlq.ingress.invalid_event")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := dlq.Parse(dm.Header, dm.Data)
	if err != nil || rec.Origin != "sidecar/billing" {
		t.Fatalf("record %+v %v", rec, err)
	}

	res, err = http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", res.StatusCode)
	}
}

// TestSlowBodyHoldsNoSlot: a publish whose body trickles in holds no slot (with one slot,
// another publish is answered meanwhile), and a body that does not arrive within the body
// timeout is answered 408. The slot used to be taken before the body was read, so 64
// such clients blocked the endpoint for ever.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	b := newBed(t)
	_, url := newService(t)
	cfg := config(b, url)
	cfg.MaxPublishInflight = 1
	cfg.BodyTimeout = duration.Duration(time.Second)
	sc := runSidecar(t, cfg)
	base := "http://" + sc.Addr()
	post := func(ctx context.Context, body io.Reader) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", body)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	event := func(id string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/billing","type":"invoices.issued","data":{}}`
	}

	trickle := func() (*io.PipeWriter, chan int) {
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			code, err := post(context.Background(), pr)
			if err != nil {
				t.Error(err)
			}
			done <- code
		}()
		if _, err := pw.Write([]byte(event("slow")[:10])); err != nil {
			t.Fatal(err)
		}
		return pw, done
	}
	pw, slow := trickle()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code, err := post(ctx, strings.NewReader(event("fast"))); err != nil || code != 200 {
		t.Fatalf("a publish while a slow body trickles in: %d %v", code, err)
	}
	if _, err := pw.Write([]byte(event("slow")[10:])); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-slow; code != 200 {
		t.Fatalf("slow request, once whole: %d", code)
	}

	_, stalled := trickle() // never finished
	select {
	case code := <-stalled:
		if code != http.StatusRequestTimeout {
			t.Fatalf("a body that never arrives: %d, want 408", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a body that never arrives was not answered")
	}
}

// TestAppHealthPauses: nothing is delivered before the first good probe or while the
// probe fails, and no attempt is spent meanwhile.
func TestAppHealthPauses(t *testing.T) {
	b := newBed(t)
	svc, url := newService(t)
	svc.healthy.Store(false)
	cfg := config(b, url)
	cfg.AppHealth = url + "/health"
	b.apply(t, "name: orders\npattern: {type: [orders.created]}\ntarget: {service: billing}\ndelivery: {maxAttempts: 1}\n")
	sc := runSidecar(t, cfg)
	waitFor(t, "paused", func() bool { return readyz(t, sc).Rules["orders"] == "paused" })
	// Not ready while the app is not, but started: a native sidecar's startup probe
	// (/startupz) passes, so the app it waits for can start.
	res, err := http.Get("http://" + sc.Addr() + "/startupz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || readyz(t, sc).Ready {
		t.Fatalf("/startupz %d while the app is unhealthy, want 200", res.StatusCode)
	}
	b.publish(t, "h1", "orders.created", `{}`)
	time.Sleep(300 * time.Millisecond)
	if len(svc.ids("/")) != 0 {
		t.Fatal("delivered while the service was unhealthy")
	}
	svc.healthy.Store(true)
	waitFor(t, "delivered after recovery", func() bool { return len(svc.ids("/")) == 1 })
	waitFor(t, "ready", func() bool { return readyz(t, sc).Ready })
	// maxAttempts 1 and a 200: had the pause spent the attempt, it would be in the DLQ.
	s, _ := b.js.Stream(context.Background(), bus.DLQStream)
	if info, _ := s.Info(context.Background()); info.State.Msgs != 0 {
		t.Fatal("the pause spent a delivery attempt")
	}
}

func TestConfigValidate(t *testing.T) {
	good := sidecar.DefaultConfig()
	good.Service, good.Handler = "billing", "http://127.0.0.1:8081"
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*sidecar.Config)
		want   string
	}{
		{"no service", func(c *sidecar.Config) { c.Service = "" }, "--service is required"},
		{"bad service", func(c *sidecar.Config) { c.Service = "Billing!" }, "must be 1-63 characters"},
		{"service one over the limit rules share", func(c *sidecar.Config) { c.Service = strings.Repeat("s", 64) }, "must be 1-63 characters"},
		{"no handler", func(c *sidecar.Config) { c.Handler = "" }, "--handler is required"},
		{"handler not http", func(c *sidecar.Config) { c.Handler = "127.0.0.1:8081" }, "not an http"},
		{"bad health", func(c *sidecar.Config) { c.AppHealth = "ftp://x" }, "--app-health"},
		{"bad listen", func(c *sidecar.Config) { c.Listen = "3500" }, "--listen"},
		{"tiny interval", func(c *sidecar.Config) { c.HealthInterval = duration.Duration(time.Millisecond) }, "at least 100ms"},
		{"negative grace", func(c *sidecar.Config) { c.Grace = -1 }, "--grace"},
		{"negative hold", func(c *sidecar.Config) { c.HoldUnreachable = -1 }, "--hold-unreachable"},
		{"hold too long", func(c *sidecar.Config) { c.HoldUnreachable = duration.Duration(time.Hour) }, "--hold-unreachable"},
		{"no publish slots", func(c *sidecar.Config) { c.MaxPublishInflight = 0 }, "--max-publish-inflight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			err := c.Validate()
			if !errors.Is(err, sidecar.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMetricsDocumented: the sidecar's jetmesh_* metrics and the sidecar section of
// docs/metrics.md are the same set.
func TestMetricsDocumented(t *testing.T) {
	b := newBed(t)
	_, url := newService(t)
	b.apply(t, "name: orders\npattern: {type: [orders.created]}\ntarget: {service: billing}\n")
	sc := runSidecar(t, config(b, url))
	waitFor(t, "ready", func() bool { return readyz(t, sc).Ready })
	b.publish(t, "m1", "orders.created", `{}`)
	base := "http://" + sc.Addr()
	waitFor(t, "the delivery counted", func() bool {
		return strings.Contains(scrape(t, base), `jetmesh_delivery_results_total{result="delivered",rule="orders"} 1`)
	})
	res, _ := http.Post(base+"/v1/events", "application/json", strings.NewReader(`{}`))
	res.Body.Close()
	metricsdoc.Check(t, scrape(t, base), "../docs/metrics.md", "## Sidecar", "")
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

func lastMsg(b *bed, stream, subject string) (*jetstream.RawStreamMsg, error) {
	s, err := b.js.Stream(context.Background(), stream)
	if err != nil {
		return nil, err
	}
	return s.GetLastMsgForSubject(context.Background(), subject)
}

package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/metricsdoc"
	"github.com/jetmesh/jetmesh/internal/natstest"
	"github.com/jetmesh/jetmesh/internal/servertest"
	"github.com/jetmesh/jetmesh/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*server.Config)
		wantErr []string
	}{
		{"defaults", func(*server.Config) {}, nil},
		{"no data dir", func(c *server.Config) { c.DataDir = "" }, []string{"data: a data directory is required"}},
		{"bad addresses", func(c *server.Config) { c.NATSAddr, c.HTTPAddr, c.MonitorAddr = "4222", "", "x:99999" },
			[]string{`nats: "4222" is not host:port`, "http: an address", `monitor: "x:99999" has an invalid port`}},
		{"stream limits", func(c *server.Config) {
			c.Streams.DuplicateWindow = duration.Duration(30 * 24 * time.Hour)
			c.Streams.Replicas = 0
		}, []string{"duplicateWindow (720h0m0s) must not exceed streams.eventsMaxAge", "replicas must be between 1 and 5"}},
		{"ingress limits", func(c *server.Config) { c.Ingress.MaxEventBytes, c.Ingress.MaxRequestBytes = 10, 5 },
			[]string{"maxEventBytes must be at least 1024", "maxRequestBytes (5) must be at least"}},
		{"negative store", func(c *server.Config) { c.MaxStore = -1 }, []string{"maxStore must be 0"}},
		{"cluster without name, routes or server name", func(c *server.Config) { c.Cluster.Listen = "127.0.0.1:6222" },
			[]string{"cluster.name (--cluster-name) is required", "name (--name) is required when clustered", "cluster.routes (--routes) must list"}},
		{"bad route", func(c *server.Config) {
			c.Name, c.Cluster = "n1", server.ClusterConfig{Name: "jm", Listen: "127.0.0.1:6222", Routes: []string{"http://x:1", "nats-route://y"}}
		}, []string{`"http://x:1" is not a route URL`, `"nats-route://y" is not a route URL`}},
		{"routes without listen", func(c *server.Config) { c.Cluster.Routes = []string{"nats-route://a:1"} }, []string{"need cluster.listen"}},
		{"beyond loopback without access control", func(c *server.Config) { c.NATSAddr, c.HTTPAddr = "0.0.0.0:4222", "10.0.0.5:8080" },
			[]string{"nats 0.0.0.0:4222 is not a loopback address, and access control is off", "http 10.0.0.5:8080 is not a loopback address", "--auth", "--insecure"}},
		{"beyond loopback, insecure on purpose", func(c *server.Config) { c.NATSAddr, c.Insecure = ":4222", true }, nil},
		{"beyond loopback with access control", func(c *server.Config) { c.HTTPAddr, c.Auth.Enabled = "0.0.0.0:8080", true }, nil},
		{"localhost and ::1 are loopback", func(c *server.Config) { c.NATSAddr, c.HTTPAddr = "localhost:4222", "[::1]:8080" }, nil},
		{"access control needs the embedded NATS", func(c *server.Config) { c.NATSURL, c.Auth.Enabled = "nats://x:4222", true }, []string{"auth.enabled needs the embedded NATS"}},
		{"cluster and external NATS", func(c *server.Config) {
			c.Name, c.NATSURL = "n1", "nats://x:4222"
			c.Cluster = server.ClusterConfig{Name: "jm", Listen: "127.0.0.1:6222", Routes: []string{"nats-route://a:1"}}
		}, []string{"cannot be combined with cluster settings"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := server.DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, server.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "data: /var/lib/jetmesh\nhttp: 0.0.0.0:9090\nstreams:\n  eventsMaxAge: 30d\n  duplicateWindow: 5m\ningress:\n  maxEventBytes: 65536\n")
	cfg, err := server.LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/jetmesh" || cfg.HTTPAddr != "0.0.0.0:9090" || cfg.NATSAddr != "127.0.0.1:4222" ||
		cfg.Streams.EventsMaxAge.Std() != 30*24*time.Hour || cfg.Streams.DuplicateWindow.Std() != 5*time.Minute ||
		cfg.Ingress.MaxEventBytes != 65536 || cfg.Ingress.MaxBatchEntries != 1000 {
		t.Errorf("config = %+v", cfg)
	}
	typo := filepath.Join(dir, "typo.yaml")
	writeFile(t, typo, "dta: /tmp\n")
	if _, err := server.LoadConfig(typo); !errors.Is(err, server.ErrConfig) || !strings.Contains(err.Error(), "field dta not found") {
		t.Errorf("typo: err = %v", err)
	}
	badDur := filepath.Join(dir, "dur.yaml")
	writeFile(t, badDur, "streams:\n  dlqMaxAge: fortnight\n")
	if _, err := server.LoadConfig(badDur); err == nil || !strings.Contains(err.Error(), `invalid duration "fortnight"`) {
		t.Errorf("bad duration: err = %v", err)
	}
	if _, err := server.LoadConfig(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs a server on free ports over dataDir until the test (or stop) ends it.
func start(t *testing.T, dataDir string) (srv *server.Server, stop func() error) {
	t.Helper()
	// These tests are about the server; TestSchemasValidateLive covers validation.
	cfg := servertest.Config(t)
	cfg.DataDir = dataDir
	return startWith(t, cfg)
}

// startWith runs a server with cfg until the test (or stop) ends it; stop returns Run's error.
func startWith(t *testing.T, cfg server.Config) (srv *server.Server, stop func() error) {
	t.Helper()
	return servertest.Start(t, cfg, slog.New(slog.DiscardHandler))
}

func TestRunServesAndKeepsEventsAcrossRestart(t *testing.T) {
	dataDir := t.TempDir()
	srv, stop := start(t, dataDir)
	base := "http://" + srv.HTTPAddr()
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s = %d", path, res.StatusCode)
		}
	}
	res, err := http.Post(base+"/v1/events", "application/cloudevents+json",
		strings.NewReader(`{"specversion":"1.0","id":"keep-1","source":"/t","type":"orders.created","data":{"n":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d", res.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("HTTP still answers after stop")
	}

	srv, _ = start(t, dataDir)
	nc, err := nats.Connect(srv.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), "evt.orders.created")
	if err != nil || m.Header.Get("ce-id") != "keep-1" {
		t.Fatalf("event lost across restart: %v %v", m, err)
	}
	info := st.CachedInfo()
	if info.Config.MaxAge != 7*24*time.Hour || info.Config.Duplicates != 2*time.Minute || info.Config.Storage != jetstream.FileStorage {
		t.Errorf("EVENTS config %+v", info.Config)
	}
}

// TestNATSIngressAnswersOnceStarted: a publisher that sees the server started (or ready)
// finds the NATS ingress at once: no "no responders" window while it subscribes.
func TestNATSIngressAnswersOnceStarted(t *testing.T) {
	dataDir := t.TempDir()
	for i := range 3 {
		srv, stop := start(t, dataDir)
		nc, err := nats.Connect(srv.NATSURL())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := ingress.NewClient(nc).Publish(ctx, &event.Event{SpecVersion: "1.0", ID: fmt.Sprint("early-", i), Source: "/t", Type: "orders.created"})
		cancel()
		nc.Close()
		if err != nil {
			t.Fatalf("start %d: first request: %v", i+1, err)
		}
		if resp.FailedEntryCount != 0 {
			t.Fatalf("start %d: first request refused: %+v", i+1, resp)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPortInUseFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.NATSAddr, cfg.HTTPAddr = t.TempDir(), ln.Addr().String(), "127.0.0.1:0"
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(began) > 10*time.Second {
		t.Errorf("took %v to report a port in use", time.Since(began))
	}
}

// TestShippedConfigIsValid keeps deploy/jetmesh.yaml loadable, valid, and equal to the
// defaults it documents (it used to show the monitor endpoint on, which is off by default).
func TestShippedConfigIsValid(t *testing.T) {
	cfg, err := server.LoadConfig("../deploy/jetmesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := server.DefaultConfig()
	if cfg.Cluster.Routes == nil {
		t.Error("cluster.routes missing from deploy/jetmesh.yaml")
	}
	cfg.Cluster.Routes = nil
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("deploy/jetmesh.yaml drifted from the defaults:\n got  %+v\n want %+v", cfg, want)
	}
}

// TestMetricsDocumented scrapes /metrics after a publish and checks that the jetmesh_*
// metrics exported and those listed in docs/metrics.md are the same set.
func TestMetricsDocumented(t *testing.T) {
	srv, _ := start(t, t.TempDir())
	base := "http://" + srv.HTTPAddr()
	res, err := http.Post(base+"/v1/events", "application/cloudevents+json", strings.NewReader(`{"specversion":"1.0","id":"m-1","source":"/t","type":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// keyed has three partition consumers: its metrics are one series, not three.
	applyRule(t, srv, "name: metered\npattern: {type: [a]}\ntarget: {service: s}\n---\nname: keyed\npattern: {type: [a]}\ntarget: {service: s}\ndelivery: {orderBy: partitionkey, partitions: 3}\n")
	// The reconciler counts its pass just after making the consumer: scrape until it has.
	var raw []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		res, err = http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(raw), `jetmesh_rules_consumer_changes_total{op="created"} 4`) || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(string(raw), `jetmesh_ingress_entries_total{result="accepted",transport="http"} 1`) {
		t.Errorf("the publish was not counted:\n%s", raw)
	}
	if !strings.Contains(string(raw), `jetmesh_stream_messages{stream="EVENTS"} 1`) {
		t.Errorf("stream state missing")
	}
	if !strings.Contains(string(raw), `jetmesh_rule_pending{rule="metered"} 0`) || !strings.Contains(string(raw), `jetmesh_rules_consumer_changes_total{op="created"} 4`) {
		t.Errorf("rule metrics missing:\n%s", raw)
	}
	if !strings.Contains(string(raw), `jetmesh_rule_max_in_flight{rule="keyed"} 768`) {
		t.Errorf("the orderBy rule's partitions are not summed (3 × 256):\n%s", raw)
	}
	metricsdoc.Check(t, string(raw), "../docs/metrics.md", "", "## Sidecar")
}

// TestControlPlaneForExternalNATS runs the server against an existing nats-server: it
// creates the streams there and stores published events there, embedding nothing.
func TestControlPlaneForExternalNATS(t *testing.T) {
	external := natstest.RunServer(t)
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "never-created")
	cfg.NATSURL, cfg.HTTPAddr = external.ClientURL(), "127.0.0.1:0"
	cfg.Ingress.AllowUnknownTypes = true
	srv, stop := startWith(t, cfg)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	res, err := http.Post("http://"+srv.HTTPAddr()+"/v1/events", "application/cloudevents+json",
		strings.NewReader(`{"specversion":"1.0","id":"ext-1","source":"/t","type":"orders.created"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d", res.StatusCode)
	}
	_, js := natstest.JetStream(t, external)
	st, err := js.Stream(context.Background(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.GetLastMsgForSubject(context.Background(), "evt.orders.created"); err != nil || m.Header.Get("ce-id") != "ext-1" {
		t.Fatalf("event not in the external JetStream: %v %v", m, err)
	}
	if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
		t.Errorf("a data directory was created in control-plane mode: %v", err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestClusterNodeWaitsForPeersAlive: a cluster node whose peers are not up yet stays alive
// (healthz 200, so a liveness probe keeps it), not ready (readyz 503), refuses publishes
// with 503, and stops cleanly when asked.
func TestClusterNodeWaitsForPeersAlive(t *testing.T) {
	cfg := server.DefaultConfig()
	self := freePort(t)
	cfg.DataDir, cfg.NATSAddr, cfg.HTTPAddr, cfg.Name = t.TempDir(), "127.0.0.1:0", freePort(t), "n1"
	cfg.Cluster = server.ClusterConfig{Name: "c", Listen: self,
		Routes: []string{"nats-route://" + self, "nats-route://" + freePort(t), "nats-route://" + freePort(t)}}
	cfg.Streams.Replicas = 3
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	base := "http://" + cfg.HTTPAddr
	status := func(method, path string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{}`))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	deadline := time.Now().Add(10 * time.Second)
	for status("GET", "/healthz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("healthz never answered while waiting for peers")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := status("GET", "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d while peers are missing", got)
	}
	if got := status("POST", "/v1/events"); got != http.StatusServiceUnavailable {
		t.Errorf("publish = %d while peers are missing", got)
	}
	select {
	case err := <-done:
		t.Fatalf("gave up waiting for peers: %v", err)
	case <-time.After(time.Second):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop while waiting for peers")
	}
}

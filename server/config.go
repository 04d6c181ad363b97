package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/internal/pemfile"
	"go.yaml.in/yaml/v3"
)

// Config is everything a server needs. A YAML file (--config) sets any of it; flags win.
type Config struct {
	// Version is announced in the server's heartbeat (jetmesh status).
	Version string `yaml:"-" json:"-"`

	// DataDir holds the JetStream store. Keep it across restarts: it is the event archive.
	DataDir string `yaml:"data"`
	// NATSAddr is where clients, sidecars and the CLI connect (host:port). Port 0 picks a
	// free port.
	NATSAddr string `yaml:"nats"`
	// NATSURL, when set, makes the server a control plane for an existing NATS deployment
	// with JetStream (for example a NATS cluster): nothing is embedded, and data, nats,
	// monitor, name, syncAlways and maxStore do not apply. Credentials go in the URL.
	NATSURL string `yaml:"natsURL"`
	// HTTPAddr serves POST /v1/events, /healthz and /readyz. Port 0 picks a free port.
	HTTPAddr string `yaml:"http"`
	// Console serves the web console at /console/ on the HTTP address.
	Console bool `yaml:"console"`
	// MonitorAddr serves the NATS monitoring endpoints (/varz, /jsz, ...); empty disables.
	MonitorAddr string `yaml:"monitor"`
	// Name is the server's name in NATS; defaults to the host name.
	Name string `yaml:"name"`
	// SyncAlways fsyncs every write before acknowledging it. Without it an acknowledged
	// event survives a process crash (kill -9) but not a power loss within the sync interval
	// (2 minutes); with it publishing is roughly an order of magnitude slower.
	SyncAlways bool `yaml:"syncAlways"`
	// MaxStore caps JetStream's disk use in bytes; 0 lets NATS take up to 75% of free disk.
	MaxStore int64 `yaml:"maxStore"`
	// ShutdownTimeout bounds the drain on SIGTERM: in-flight requests get this long.
	ShutdownTimeout duration.Duration `yaml:"shutdownTimeout"`
	// Cluster joins this server's embedded NATS to other jetmesh servers as one JetStream
	// cluster. Empty Listen means single node.
	Cluster ClusterConfig `yaml:"cluster"`
	// Streams sets the retention of the EVENTS and DLQ streams.
	Streams bus.StreamsConfig `yaml:"streams"`
	// Ingress bounds what the publisher accepts.
	Ingress ingress.Config `yaml:"ingress"`
	// DLQ bounds the dead-letter stream.
	DLQ DLQConfig `yaml:"dlq"`
	// Auth turns access control on: every NATS connection and HTTP publish must prove a
	// principal (see docs/security.md).
	Auth AuthConfig `yaml:"auth"`
	// TLS encrypts the NATS client port, cluster routes, the HTTP port and the monitor
	// endpoint.
	TLS TLSConfig `yaml:"tls"`
	// Insecure lets a server without access control listen beyond loopback (NATS or HTTP),
	// where anyone who reaches the port can do anything. Off: such a server refuses to
	// start.
	Insecure bool `yaml:"insecure"`
}

// TLSConfig is the server's certificate, and the CA its peers' certificates are checked
// against.
type TLSConfig struct {
	// Cert and Key are PEM files: the server's certificate (for every listener and for
	// routes) and its key. Both or neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// CA is a PEM file of the certificate authorities that sign cluster peers' (and, with
	// VerifyClients, clients') certificates. Required for a TLS cluster.
	CA string `yaml:"ca"`
	// VerifyClients requires NATS and HTTP clients to present a certificate CA signed.
	VerifyClients bool `yaml:"verifyClients"`
}

// enabled reports whether TLS is configured.
func (c TLSConfig) enabled() bool { return c.Cert != "" }

func (c TLSConfig) validate(clustered bool) []error {
	var errs []error
	if (c.Cert == "") != (c.Key == "") {
		errs = append(errs, errors.New("tls.cert (--tls-cert) and tls.key (--tls-key) go together"))
	}
	if c.enabled() {
		if _, err := tls.LoadX509KeyPair(c.Cert, c.Key); err != nil {
			errs = append(errs, fmt.Errorf("tls: loading the certificate: %w", err))
		}
	}
	if c.CA != "" {
		if _, err := pemfile.CertPool(c.CA); err != nil {
			errs = append(errs, fmt.Errorf("tls.ca: %w", err))
		}
	}
	if c.VerifyClients && (!c.enabled() || c.CA == "") {
		errs = append(errs, errors.New("tls.verifyClients needs tls.cert, tls.key and tls.ca"))
	}
	if clustered && c.enabled() && c.CA == "" {
		errs = append(errs, errors.New("a TLS cluster needs tls.ca (--tls-ca): routes verify each other's certificates"))
	}
	return errs
}

// serverTLS is the TLS configuration of the server's listeners; clientAuth says whether
// peers must present a certificate.
func (c TLSConfig) serverTLS(requireClientCert bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pool, err := pemfile.CertPool(c.CA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.RootCAs = pool, pool
	}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// AuthConfig is access control.
type AuthConfig struct {
	// Enabled refuses anonymous connections and publishes; principals get least-privilege
	// NATS permissions from their role. Needs the embedded NATS (not natsURL).
	Enabled bool `yaml:"enabled"`
}

// DLQConfig bounds the DLQ stream (its age limit is streams.dlqMaxAge).
type DLQConfig struct {
	// MaxBytes caps the DLQ stream's size. When it is full the oldest records are
	// discarded first (counted in jetmesh_dlq_discarded_total), so the newest failures
	// are always there to read. Default 256 MiB; JetStream reserves it in the store, so
	// it must be at most half of maxStore when that is set.
	MaxBytes int64 `yaml:"maxBytes"`
}

// streams is the streams' configuration with the DLQ's cap in it.
func (c Config) streams() bus.StreamsConfig {
	s := c.Streams
	s.DLQMaxBytes = c.DLQ.MaxBytes
	return s
}

// ClusterConfig makes the embedded nats-server one node of a JetStream cluster. Every node
// gets the same Name and Routes, and its own server Name and data directory; three nodes
// with streams.replicas: 3 survive the loss of any one.
type ClusterConfig struct {
	// Name of the cluster, the same on every node.
	Name string `yaml:"name"`
	// Listen is where this node takes route connections from the others (host:port).
	Listen string `yaml:"listen"`
	// Routes lists every node's route address (nats-route://host:port), this one included.
	Routes []string `yaml:"routes"`
}

// enabled reports whether the server runs clustered.
func (c ClusterConfig) enabled() bool { return c.Listen != "" }

func (c ClusterConfig) validate(serverName string) []error {
	if !c.enabled() {
		if c.Name != "" || len(c.Routes) > 0 {
			return []error{errors.New("cluster: name and routes need cluster.listen (--cluster) too")}
		}
		return nil
	}
	var errs []error
	if err := checkAddr("cluster.listen", c.Listen, false); err != nil {
		errs = append(errs, err)
	}
	if c.Name == "" {
		errs = append(errs, errors.New("cluster.name (--cluster-name) is required when clustered, the same on every node"))
	}
	if serverName == "" {
		errs = append(errs, errors.New("name (--name) is required when clustered, unique per node"))
	}
	if len(c.Routes) == 0 {
		errs = append(errs, errors.New("cluster.routes (--routes) must list the nodes, e.g. nats-route://10.0.0.1:6222"))
	}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Port() == "" || (u.Scheme != "nats-route" && u.Scheme != "nats") {
			errs = append(errs, fmt.Errorf("cluster.routes: %q is not a route URL like nats-route://host:6222", r))
		}
	}
	return errs
}

// DefaultConfig is a single node listening on loopback with data under ./data.
func DefaultConfig() Config {
	return Config{
		DataDir:         "./data",
		NATSAddr:        "127.0.0.1:4222",
		HTTPAddr:        "127.0.0.1:8080",
		Console:         true,
		ShutdownTimeout: duration.Duration(15 * time.Second),
		Streams:         bus.DefaultStreamsConfig(),
		Ingress:         ingress.DefaultConfig(),
		DLQ:             DLQConfig{MaxBytes: bus.DefaultDLQMaxBytes},
	}
}

// ErrConfig marks a configuration problem (bad file, bad value).
var ErrConfig = errors.New("invalid server configuration")

// LoadConfig reads a YAML file over the defaults. Unknown keys are errors, so a typo does
// not silently fall back to a default.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	return cfg, nil
}

// Validate names every problem in the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data: a data directory is required"))
	}
	if err := checkAddr("nats", c.NATSAddr, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkAddr("http", c.HTTPAddr, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkAddr("monitor", c.MonitorAddr, true); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Cluster.validate(c.Name)...)
	errs = append(errs, c.TLS.validate(c.Cluster.enabled())...)
	if c.Cluster.enabled() && c.NATSURL != "" {
		errs = append(errs, errors.New("natsURL (--nats-url) uses an external NATS: it cannot be combined with cluster settings"))
	}
	if !c.Auth.Enabled && !c.Insecure {
		for _, a := range [][2]string{{"nats", c.NATSAddr}, {"http", c.HTTPAddr}} {
			if c.NATSURL != "" && a[0] == "nats" {
				continue // nothing embedded listens
			}
			if !isLoopback(a[1]) {
				errs = append(errs, fmt.Errorf("%s %s is not a loopback address, and access control is off: anyone who reaches it could publish around validation, read every event and delete the streams; turn access control on (--auth), or accept that with --insecure", a[0], a[1]))
			}
		}
	}
	if c.Auth.Enabled && c.NATSURL != "" {
		errs = append(errs, errors.New("auth.enabled needs the embedded NATS: against an external NATS (natsURL), its own accounts and permissions apply"))
	}
	if c.MaxStore > 0 && c.DLQ.MaxBytes > c.MaxStore/2 {
		errs = append(errs, fmt.Errorf("dlq.maxBytes (%d) must be at most half of maxStore (%d): JetStream reserves the DLQ's cap in the store", c.DLQ.MaxBytes, c.MaxStore))
	}
	if c.MaxStore < 0 {
		errs = append(errs, fmt.Errorf("maxStore must be 0 (NATS default) or positive, got %d", c.MaxStore))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdownTimeout must be positive"))
	}
	if err := c.streams().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Ingress.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w:\n%w", ErrConfig, err)
	}
	return nil
}

// isLoopback reports whether a listen address binds to loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkAddr(name, addr string, optional bool) error {
	if addr == "" {
		if optional {
			return nil
		}
		return fmt.Errorf("%s: an address (host:port) is required", name)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port: %w", name, addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s: %q has an invalid port", name, addr)
	}
	return nil
}

func splitAddr(addr string) (string, int) {
	host, port, _ := net.SplitHostPort(addr) // checked by Validate
	p, _ := strconv.Atoi(port)
	return host, p
}

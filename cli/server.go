package cli

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jetmesh/jetmesh/server"
	"github.com/spf13/cobra"
)

func newServerCmd(g *globals) *cobra.Command {
	var (
		configPath string
		flags      = server.DefaultConfig()
		logLevel   string
		logFormat  string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a jetmesh server: embedded NATS JetStream plus the event ingress",
		Long: `Run a jetmesh server: an embedded nats-server with JetStream on file storage
(or, with --nats-url, an existing NATS deployment), the EVENTS and DLQ streams, and the ingress (HTTP POST /v1/events and NATS
request/reply on jetmesh.v1.events). GET /healthz and /readyz report health.

Settings come from defaults, then --config (YAML), then flags: flags win.
SIGINT or SIGTERM drains in-flight requests and shuts down cleanly; a restart
on the same --data keeps every event.

Security (docs/security.md): --auth turns access control on (anonymous clients are
refused; the first start writes <data>/auth/admin.creds); --tls-cert/--tls-key (and
--tls-ca for the peers' CA) encrypt every listener and the routes. Without --auth the
server refuses to listen beyond loopback unless --insecure says so.`,
		Example: `  # single node on loopback, data under ./data
  jetmesh server

  # reachable from other hosts: access control and TLS, and a monitoring endpoint
  jetmesh server --data /var/lib/jetmesh --nats 0.0.0.0:4222 --http 0.0.0.0:8080 --monitor 127.0.0.1:8222 \
    --auth --tls-cert server.pem --tls-key server-key.pem

  # one node of a three-node cluster (run the same on n2 and n3 with their own --name)
  jetmesh server --name n1 --data /var/lib/jetmesh --nats 0.0.0.0:4222 --http 0.0.0.0:8080 --insecure \
    --cluster 0.0.0.0:6222 --cluster-name jetmesh --replicas 3 \
    --routes nats-route://n1:6222,nats-route://n2:6222,nats-route://n3:6222

  # control plane for an existing NATS cluster with JetStream: nothing embedded
  # (its own accounts secure NATS; --insecure because this HTTP ingress takes anyone)
  jetmesh server --nats-url nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 --http 0.0.0.0:8080 --insecure

  # everything from a file (see deploy/jetmesh.yaml), one flag overriding it
  jetmesh server --config /etc/jetmesh/jetmesh.yaml --http 127.0.0.1:9090`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := server.DefaultConfig()
			if configPath != "" {
				var err error
				if cfg, err = server.LoadConfig(configPath); err != nil {
					return refused("%v", err)
				}
			}
			applyChanged(cmd, &cfg, &flags)
			if g.tlsCA != "" {
				cfg.TLS.CA = g.tlsCA
			}
			log, err := newLogger(g, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Version = g.version
			srv, err := server.New(cfg, log)
			if errors.Is(err, server.ErrConfig) {
				return refused("%v", err)
			}
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file; flags override it")
	f.StringVar(&flags.DataDir, "data", flags.DataDir, "data directory (the JetStream store)")
	f.StringVar(&flags.NATSAddr, "nats", flags.NATSAddr, "NATS listen address (port 0 picks a free one)")
	f.StringVar(&flags.HTTPAddr, "http", flags.HTTPAddr, "HTTP listen address for the ingress and health checks")
	f.StringVar(&flags.NATSURL, "nats-url", "", "use an existing NATS with JetStream at this URL instead of embedding one")
	f.StringVar(&flags.MonitorAddr, "monitor", "", "NATS monitoring listen address, e.g. 127.0.0.1:8222 (off when empty)")
	f.StringVar(&flags.Name, "name", "", "server name in NATS, unique per node (default: host name)")
	f.StringVar(&flags.Cluster.Listen, "cluster", "", "join a JetStream cluster: this node's route listen address, e.g. 0.0.0.0:6222")
	f.StringVar(&flags.Cluster.Name, "cluster-name", "", "cluster name, the same on every node")
	f.StringSliceVar(&flags.Cluster.Routes, "routes", nil, "route URLs of every node, comma-separated (nats-route://host:6222,...)")
	f.IntVar(&flags.Streams.Replicas, "replicas", flags.Streams.Replicas, "stream replicas: 1 single node, 3 in a cluster")
	f.BoolVar(&flags.Console, "console", flags.Console, "serve the web console at /console/ on the HTTP address (--console=false turns it off)")
	f.BoolVar(&flags.SyncAlways, "sync-always", false, "fsync every write before acknowledging it (survives power loss; much slower)")
	f.Var(&flags.ShutdownTimeout, "shutdown-timeout", "how long in-flight requests get to finish on SIGTERM")
	f.IntVar(&flags.Ingress.MaxEventBytes, "max-event-bytes", flags.Ingress.MaxEventBytes, "largest event accepted, in bytes")
	f.BoolVar(&flags.Ingress.AllowUnknownTypes, "allow-unknown-types", false, "accept events whose type has no registered schema (unvalidated)")
	f.StringVar(&flags.TLS.Cert, "tls-cert", "", "server certificate (PEM) for the NATS port, routes, HTTP and monitor; the CA is --tls-ca")
	f.StringVar(&flags.TLS.Key, "tls-key", "", "server certificate key (PEM)")
	f.BoolVar(&flags.TLS.VerifyClients, "tls-verify-clients", false, "require client certificates signed by --tls-ca")
	f.BoolVar(&flags.Insecure, "insecure", false, "without --auth, listen beyond loopback anyway (anyone who reaches the ports can do anything)")
	f.BoolVar(&flags.Auth.Enabled, "auth", false, "access control: refuse anonymous clients, least-privilege principals (writes <data>/auth/admin.creds on first start)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// applyChanged copies the flags the user set onto cfg, so flags win over the config file.
func applyChanged(cmd *cobra.Command, cfg, flags *server.Config) {
	set := map[string]func(){
		"data":               func() { cfg.DataDir = flags.DataDir },
		"nats":               func() { cfg.NATSAddr = flags.NATSAddr },
		"nats-url":           func() { cfg.NATSURL = flags.NATSURL },
		"http":               func() { cfg.HTTPAddr = flags.HTTPAddr },
		"console":            func() { cfg.Console = flags.Console },
		"monitor":            func() { cfg.MonitorAddr = flags.MonitorAddr },
		"name":               func() { cfg.Name = flags.Name },
		"cluster":            func() { cfg.Cluster.Listen = flags.Cluster.Listen },
		"cluster-name":       func() { cfg.Cluster.Name = flags.Cluster.Name },
		"routes":             func() { cfg.Cluster.Routes = flags.Cluster.Routes },
		"replicas":           func() { cfg.Streams.Replicas = flags.Streams.Replicas },
		"sync-always":        func() { cfg.SyncAlways = flags.SyncAlways },
		"shutdown-timeout":   func() { cfg.ShutdownTimeout = flags.ShutdownTimeout },
		"max-event-bytes":    func() { cfg.Ingress.MaxEventBytes = flags.Ingress.MaxEventBytes },
		"auth":               func() { cfg.Auth.Enabled = flags.Auth.Enabled },
		"insecure":           func() { cfg.Insecure = flags.Insecure },
		"tls-cert":           func() { cfg.TLS.Cert = flags.TLS.Cert },
		"tls-key":            func() { cfg.TLS.Key = flags.TLS.Key },
		"tls-verify-clients": func() { cfg.TLS.VerifyClients = flags.TLS.VerifyClients },
		"allow-unknown-types": func() {
			cfg.Ingress.AllowUnknownTypes = flags.Ingress.AllowUnknownTypes
		},
	}
	for name, apply := range set {
		if cmd.Flags().Changed(name) {
			apply()
		}
	}
}

func newLogger(g *globals, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, refused("--log-level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	}
	return nil, refused("--log-format must be text or json, got %q", format)
}

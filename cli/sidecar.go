package cli

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/jetmesh/jetmesh/sidecar"
	"github.com/spf13/cobra"
)

func newSidecarCmd(g *globals) *cobra.Command {
	cfg := sidecar.DefaultConfig()
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "sidecar --service NAME --handler URL",
		Short: "Deliver a service's events to its local HTTP handler, and publish for it",
		Long: `Run next to one replica of a service. The sidecar finds every rule whose
target.service is --service, pulls each rule's events and POSTs them to
--handler + target.path in CloudEvents HTTP binary mode (ce-* headers, body =
data, traceparent). It follows rule changes live: a rule applied starts, a rule
removed stops, a changed policy applies, with no restart.

The handler's answer decides what happens:
  2xx                          delivered (acknowledged)
  404 408 409 425 429 5xx,
  timeout, connection reset     retried with the rule's backoff (Retry-After honoured),
                                then dead-lettered (delivery_failed) after maxAttempts
  other 4xx                     dead-lettered at once (delivery_rejected)
  2xx {"status":"RETRY"|"DROP"} retry, or dead-letter at once
  no connection (refused)       retried like a 5xx; with --hold-unreachable D the event
                                is held and sent again for up to D first, no attempt spent

Replicas of a service each run a sidecar with the same --service: they share each
rule's consumer, so every event goes to one replica. A rule's maxConcurrency
bounds its requests in flight across all replicas; ordered rules deliver one at
a time in stream order.

On --listen (loopback) the sidecar serves the service:
  POST /v1/events   publish, same contract as the server's ingress; while no
                    ingress answers it waits up to 15s for one, then 503
  GET  /healthz     alive
  GET  /readyz      connected, rules read, every rule bound (JSON status)
  GET  /metrics     Prometheus metrics

With --app-health, delivery starts after the first good probe and pauses while
the probe fails. Without a health endpoint, --hold-unreachable 30s rides out a
service restart: events wait in the sidecar while the handler is not listening.

The sidecar reconnects to NATS forever. SIGTERM stops pulling, gives requests in
flight --grace to finish, and exits.`,
		Example: `  # deliver the billing service's events to its handler on port 8081
  jetmesh sidecar --service billing --handler http://127.0.0.1:8081

  # pause delivery while the service is unhealthy; a remote jetmesh server
  jetmesh sidecar --service billing --handler http://127.0.0.1:8081 \
    --app-health http://127.0.0.1:8081/healthz --server nats://jetmesh:4222

  # no health endpoint: ride out restarts of the service without spending attempts
  jetmesh sidecar --service billing --handler http://127.0.0.1:8081 --hold-unreachable 30s

  # the service publishes through its sidecar
  curl -s localhost:3500/v1/events -H 'Content-Type: application/cloudevents+json' \
    -d '{"specversion":"1.0","id":"inv-1","source":"/billing","type":"invoices.issued","data":{"total":12}}'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(g, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.NATSURL, cfg.Creds, cfg.TLSOptions = g.server, g.creds, g.tlsOptions()
			cfg.Version = g.version
			sc, err := sidecar.New(cfg, log)
			if errors.Is(err, sidecar.ErrConfig) {
				return refused("%v", err)
			}
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = sc.Run(ctx)
			if errors.Is(err, sidecar.ErrConfig) {
				return refused("%v", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Service, "service", "", "service name: rules whose target.service is this are delivered (required)")
	f.StringVar(&cfg.Handler, "handler", "", "base URL of the service's event handler, e.g. http://127.0.0.1:8081 (required)")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "listen address for the service: publish, health, readiness, metrics")
	f.StringVar(&cfg.AppHealth, "app-health", "", "URL probed with GET; delivery pauses while it does not answer 2xx")
	f.Var(&cfg.HealthInterval, "app-health-interval", "time between probes of --app-health")
	f.Var(&cfg.Grace, "grace", "how long requests in flight get to finish on SIGTERM")
	f.Var(&cfg.HoldUnreachable, "hold-unreachable", "hold events while the handler accepts no connection, up to this long, before counting an attempt (0: count at once)")
	f.IntVar(&cfg.MaxPublishInflight, "max-publish-inflight", cfg.MaxPublishInflight, "publish requests from the service worked on at once; more wait their turn")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

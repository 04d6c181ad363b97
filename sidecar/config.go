package sidecar

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jetmesh/jetmesh/internal/duration"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go"
)

// Config is a sidecar's settings.
type Config struct {
	// Service is the name rules target (target.service); every replica uses the same.
	Service string
	// Handler is the base URL of the service's event handler; a rule's target.path is
	// appended to it.
	Handler string
	// Listen is the address of the sidecar's own HTTP endpoint: POST /v1/events,
	// GET /healthz, /readyz, /metrics. Keep it on loopback.
	Listen string
	// AppHealth, when set, is probed with GET every HealthInterval; delivery pauses while
	// it does not answer 2xx, and starts only after the first good probe.
	AppHealth string
	// HealthInterval spaces the probes of AppHealth.
	HealthInterval duration.Duration
	// Grace is how long requests in flight get to finish on shutdown.
	Grace duration.Duration
	// NATSURL is the NATS server (or comma-separated servers) of the jetmesh deployment.
	NATSURL string
	// MaxRequestBytes bounds one publish request's body.
	MaxRequestBytes int
	// HoldUnreachable, when positive, keeps an event whose handler accepts no connection
	// for up to this long, sending it again without spending an attempt (a service
	// restarting). Zero counts a refused connection as a failed attempt.
	HoldUnreachable duration.Duration
	// MaxPublishInflight is how many publish requests are worked on at once; more wait
	// their turn. A request takes its slot once its body has arrived; the bodies being
	// read and worked on are held to MaxPublishInflight × MaxRequestBytes in all (more is
	// refused with 503), so a burst cannot grow the sidecar's memory beyond that.
	MaxPublishInflight int
	// BodyTimeout bounds how long a publish request's body may take to arrive (408 after).
	BodyTimeout duration.Duration
	// Creds is the sidecar principal's credentials file, for a server with access
	// control: it may reach its service's rules only, and publishes as its principal.
	Creds string
	// TLSOptions connect to a server with TLS (the CA of its certificate, a client
	// certificate); empty for plain connections.
	TLSOptions []nats.Option
	// Version is announced in the sidecar's heartbeat (jetmesh status).
	Version string `yaml:"-" json:"-"`
}

// DefaultConfig: listen on 127.0.0.1:3500, probe every 2s, 20s grace, 4 MiB publish
// requests, 64 of them at once.
func DefaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:3500",
		HealthInterval:     duration.Duration(2 * time.Second),
		Grace:              duration.Duration(20 * time.Second),
		NATSURL:            "nats://127.0.0.1:4222",
		MaxRequestBytes:    4 << 20,
		MaxPublishInflight: 64,
		BodyTimeout:        duration.Duration(30 * time.Second),
	}
}

// ErrConfig marks an invalid configuration.
var ErrConfig = errors.New("invalid sidecar configuration")

// Validate names every problem in the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Service == "" {
		errs = append(errs, errors.New("--service is required: the name your rules target (target.service)"))
	} else if err := rules.ValidateServiceName(c.Service); err != nil {
		errs = append(errs, fmt.Errorf("--service %w", err))
	}
	if c.Handler == "" {
		errs = append(errs, errors.New("--handler is required: the base URL of your service's event handler, e.g. http://127.0.0.1:8081"))
	} else if err := checkHTTPURL(c.Handler); err != nil {
		errs = append(errs, fmt.Errorf("--handler: %w", err))
	}
	if c.AppHealth != "" {
		if err := checkHTTPURL(c.AppHealth); err != nil {
			errs = append(errs, fmt.Errorf("--app-health: %w", err))
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
	}
	if c.HealthInterval.Std() < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--app-health-interval must be at least 100ms, got %s", c.HealthInterval))
	}
	if c.Grace < 0 {
		errs = append(errs, errors.New("--grace must not be negative"))
	}
	if c.MaxRequestBytes < 1024 {
		errs = append(errs, fmt.Errorf("max request bytes must be at least 1024, got %d", c.MaxRequestBytes))
	}
	if c.HoldUnreachable < 0 || c.HoldUnreachable.Std() > 15*time.Minute {
		errs = append(errs, fmt.Errorf("--hold-unreachable must be between 0 and 15m, got %s", c.HoldUnreachable))
	}
	if c.BodyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("the body timeout must be positive, got %s", c.BodyTimeout))
	}
	if c.MaxPublishInflight < 1 {
		errs = append(errs, fmt.Errorf("--max-publish-inflight must be at least 1, got %d", c.MaxPublishInflight))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	return nil
}

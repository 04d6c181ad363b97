package auth

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/rules"
)

// Role is what a principal may do.
type Role string

// Roles.
const (
	// RoleAdmin may do everything: the CLI's admin commands.
	RoleAdmin Role = "admin"
	// RolePublisher publishes events through the ingress, nothing else.
	RolePublisher Role = "publisher"
	// RoleSidecar delivers the rules of one service and publishes as that service.
	RoleSidecar Role = "sidecar"
	// RoleViewer reads streams, rules, schemas and DLQ records.
	RoleViewer Role = "viewer"
)

// Roles lists every role, for help texts and validation.
var Roles = []Role{RoleAdmin, RolePublisher, RoleSidecar, RoleViewer}

// Principal is one identity: a name, a role, and for publishers and sidecars what they
// may publish. It is what the registry stores; secrets are never part of it (the bearer
// token is kept as a hash, the NATS key as its public half).
type Principal struct {
	// Name identifies the principal: lowercase letters, digits, - and _. It names its
	// NATS inbox (_INBOX.<name>) and its ingress subject (jetmesh.v1.events.<name>).
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Service is the service a sidecar delivers for (its rules' target.service).
	Service string `json:"service,omitempty"`
	// Types limits the event types a publisher may publish, as tail patterns
	// (orders.created, orders.*, orders.>); empty allows every type.
	Types []string `json:"types,omitempty"`
	// Source, when set, is the only source a publisher may use.
	Source string `json:"source,omitempty"`
	// UserKey is the public NATS user key of its credentials file.
	UserKey string `json:"userKey"`
	// TokenHash is the SHA-256 (hex) of its HTTP bearer token.
	TokenHash string    `json:"tokenHash"`
	Created   time.Time `json:"created"`
	// Revoked, when set, is when the principal was revoked: its connections are cut and
	// its credentials refused from then on.
	Revoked *time.Time `json:"revoked,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ErrInvalid marks a principal that breaks a rule; the message says which.
var ErrInvalid = errors.New("invalid principal")

// Validate names every problem of a principal as it is asked for (before keys exist).
func (p *Principal) Validate() error {
	var problems []error
	if !nameRE.MatchString(p.Name) {
		problems = append(problems, fmt.Errorf("--name %q must be 1-64 characters of a-z, 0-9, - and _, starting with a letter or digit", p.Name))
	}
	switch p.Role {
	case RoleAdmin, RoleViewer:
		if p.Service != "" || len(p.Types) > 0 || p.Source != "" {
			problems = append(problems, fmt.Errorf("--service, --types and --source apply to publishers and sidecars, not to role %s", p.Role))
		}
	case RolePublisher:
		if p.Service != "" {
			problems = append(problems, errors.New("--service applies to sidecars; a publisher is limited with --types and --source"))
		}
	case RoleSidecar:
		if err := rules.ValidateServiceName(p.Service); err != nil {
			problems = append(problems, fmt.Errorf("--service (required for a sidecar): %w", err))
		}
	default:
		problems = append(problems, fmt.Errorf("--role %q: use one of admin, publisher, sidecar, viewer", p.Role))
	}
	for _, t := range p.Types {
		if err := event.ValidateTypePattern(t); err != nil {
			problems = append(problems, fmt.Errorf("--types: %w", err))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// MayPublishType reports whether the principal may publish events of type t.
func (p *Principal) MayPublishType(t string) bool {
	if len(p.Types) == 0 {
		return true
	}
	for _, pat := range p.Types {
		if event.MatchTypePattern(pat, t) {
			return true
		}
	}
	return false
}

// MayPublishSource reports whether the principal may publish with source s.
func (p *Principal) MayPublishSource(s string) bool { return p.Source == "" || p.Source == s }

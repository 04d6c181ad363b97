package auth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// CalloutSubject is where nats-server asks the auth callout service about a connection.
const CalloutSubject = "$SYS.REQ.USER.AUTH"

// GlobalAccount is the account every principal is placed in: the one jetmesh's streams
// live in, with or without access control, so turning it on moves no data.
const GlobalAccount = "$G"

// maxTrackedConns bounds the connection ids remembered per principal (for cutting them
// off on revocation or a permission change); older ones have long closed.
const maxTrackedConns = 4096

// Callout answers nats-server's authorization requests: it checks that a connection's
// credentials were issued here and prove their key, that the principal is active, and
// answers with a user whose permissions are minted from the principal's role and the
// rules in force. It remembers connections per principal, so it can cut them off when
// the principal is revoked or its permissions change. It is safe for concurrent use.
type Callout struct {
	issuer *Issuer
	dir    *Directory
	log    *slog.Logger
	kick   func(clientID uint64) error

	mu    sync.Mutex
	rules []rules.Rule
	conns map[string][]uint64

	// refresh re-reads the principals when a key is unknown: credentials minted through
	// another server a moment ago may not have reached this one's watch yet.
	refresh     func() error
	refreshMu   sync.Mutex
	lastRefresh time.Time
}

// refreshEvery bounds how often an unknown key makes the callout re-read the principals.
const refreshEvery = time.Second

// OnUnknownKey sets how the callout re-reads the principals when a key is unknown.
func (c *Callout) OnUnknownKey(refresh func() error) { c.refresh = refresh }

// lookup finds the active principal of a key, re-reading the principals once (at most
// every refreshEvery) when it is unknown.
func (c *Callout) lookup(key string) (*Principal, bool) {
	if p, ok := c.dir.ByUserKey(key); ok || c.refresh == nil {
		return p, ok
	}
	c.refreshMu.Lock()
	if time.Since(c.lastRefresh) >= refreshEvery {
		c.lastRefresh = time.Now()
		if err := c.refresh(); err != nil {
			c.log.Warn("re-reading the principals failed", "error", err)
		}
	}
	c.refreshMu.Unlock()
	return c.dir.ByUserKey(key)
}

// NewCallout returns a callout service; kick disconnects a client by its server id.
func NewCallout(issuer *Issuer, dir *Directory, log *slog.Logger, kick func(clientID uint64) error) *Callout {
	return &Callout{issuer: issuer, dir: dir, log: log, kick: kick, conns: map[string][]uint64{}}
}

// Listen subscribes to the callout subject on nc (a user that bypasses the callout) and
// answers until ctx ends.
func (c *Callout) Listen(ctx context.Context, nc *nats.Conn) error {
	sub, err := nc.Subscribe(CalloutSubject, c.handle)
	if err != nil {
		return fmt.Errorf("auth callout: %w", err)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("auth callout: %w", err)
	}
	context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	return nil
}

func (c *Callout) handle(m *nats.Msg) {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		c.log.Warn("unreadable authorization request", "error", err)
		return // without the request's user key there is no answer to sign: the connect times out
	}
	respond := func(userJWT, refusal string) {
		rc := jwt.NewAuthorizationResponseClaims(req.UserNkey)
		rc.Audience = req.Server.ID
		rc.Jwt, rc.Error = userJWT, refusal
		tok, err := c.issuer.sign(rc)
		if err != nil {
			c.log.Error("signing an authorization response", "error", err)
			return
		}
		_ = m.Respond([]byte(tok))
	}
	ci := req.ClientInformation
	userKey, err := VerifyKey(req.ConnectOptions.Nkey, ci.Nonce, req.ConnectOptions.SignedNonce)
	if req.ConnectOptions.Nkey == "" && req.ConnectOptions.SignedNonce != "" {
		// A standard .creds client (nats --creds): it sent its JWT, which nats-server drops
		// outside operator mode, and a signature of the nonce. The key that signature
		// verifies with is the principal's.
		userKey, err = c.dir.KeySigning(ci.Nonce, req.ConnectOptions.SignedNonce)
	}
	if err != nil {
		c.log.Info("connection refused", "client", ci.Host, "name", req.ConnectOptions.Name, "reason", err)
		respond("", err.Error())
		return
	}
	p, ok := c.lookup(userKey)
	if !ok {
		c.log.Info("connection refused: no active principal has this key (unknown or revoked)", "key", userKey, "client", ci.Host)
		respond("", "no active principal has this key: it is unknown or revoked")
		return
	}
	name := p.Name
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = name
	uc.Audience = GlobalAccount
	c.mu.Lock()
	uc.Permissions = Permissions(p, c.rules)
	c.track(name, ci.ID)
	c.mu.Unlock()
	ujwt, err := c.issuer.sign(uc)
	if err != nil {
		respond("", "internal error")
		return
	}
	respond(ujwt, "")
}

// track remembers a connection of a principal. c.mu is held.
func (c *Callout) track(name string, id uint64) {
	ids := append(c.conns[name], id)
	if len(ids) > maxTrackedConns {
		ids = ids[len(ids)-maxTrackedConns:]
	}
	c.conns[name] = ids
}

// Kick disconnects every connection of the principal; a revoked principal cannot come
// back, an active one reconnects with freshly minted permissions.
func (c *Callout) Kick(name string) {
	c.mu.Lock()
	ids := c.conns[name]
	delete(c.conns, name)
	c.mu.Unlock()
	for _, id := range ids {
		_ = c.kick(id) // already gone: nothing to do
	}
	if len(ids) > 0 {
		c.log.Info("connections of a principal cut", "principal", name, "connections", len(ids))
	}
}

// SetRules installs the rules permissions are minted from. Principals whose permissions
// depend on them and change (the sidecars of a service whose rules changed, and viewers,
// who are denied every rule consumer) are disconnected, to reconnect with new ones.
func (c *Callout) SetRules(rs []rules.Rule) {
	c.mu.Lock()
	old := c.rules
	c.rules = rs
	var affected []string
	for name := range c.conns {
		p, ok := c.dir.Active(name)
		if !ok || p.Role == RoleAdmin || p.Role == RolePublisher {
			continue
		}
		before, after := Permissions(p, old), Permissions(p, rs)
		if !slices.Equal(before.Pub.Allow, after.Pub.Allow) || !slices.Equal(before.Pub.Deny, after.Pub.Deny) {
			affected = append(affected, name)
		}
	}
	c.mu.Unlock()
	for _, name := range affected {
		c.Kick(name)
	}
}

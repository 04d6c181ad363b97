package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/nats-io/nats.go/jetstream"
)

// Registry is the mesh-principals bucket. It is safe for concurrent use.
type Registry struct {
	kv jetstream.KeyValue
}

// ErrNotFound: no principal has that name.
var ErrNotFound = errors.New("principal not found")

// ErrExists: a principal already has that name.
var ErrExists = errors.New("a principal with that name exists")

// OpenRegistry opens the bucket the server created.
func OpenRegistry(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := js.KeyValue(ctx, bus.PrincipalsBucket)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", bus.PrincipalsBucket, err)
	}
	return &Registry{kv: kv}, nil
}

// Create stores a new principal; a name in use (even revoked) is refused.
func (r *Registry) Create(ctx context.Context, p Principal) error {
	raw, _ := json.Marshal(p)
	if _, err := r.kv.Create(ctx, p.Name, raw); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%q: %w (names are never reused; pick another)", p.Name, ErrExists)
		}
		return fmt.Errorf("storing principal %s: %w", p.Name, err)
	}
	return nil
}

// Get reads one principal.
func (r *Registry) Get(ctx context.Context, name string) (Principal, uint64, error) {
	e, err := r.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Principal{}, 0, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Principal{}, 0, fmt.Errorf("reading principal %s: %w", name, err)
	}
	var p Principal
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return Principal{}, 0, fmt.Errorf("principal %s is unreadable: %w", name, err)
	}
	return p, e.Revision(), nil
}

// List returns every principal, by name.
func (r *Registry) List(ctx context.Context) ([]Principal, error) {
	keys, err := r.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", bus.PrincipalsBucket, err)
	}
	snap := kvwatch.Snapshot{}
	for _, k := range keys {
		if e, err := r.kv.Get(ctx, k); err == nil {
			snap[k] = e.Value()
		}
	}
	return decodeAll(snap), nil
}

// Revoke marks a principal revoked; servers cut its connections and refuse its
// credentials and token from then on.
func (r *Registry) Revoke(ctx context.Context, name string, at time.Time) (Principal, error) {
	p, rev, err := r.Get(ctx, name)
	if err != nil {
		return Principal{}, err
	}
	if p.Revoked != nil {
		return p, nil
	}
	at = at.UTC()
	p.Revoked = &at
	raw, _ := json.Marshal(p)
	if _, err := r.kv.Update(ctx, name, raw, rev); err != nil {
		return Principal{}, fmt.Errorf("revoking %s: %w", name, err)
	}
	return p, nil
}

func decodeAll(snap kvwatch.Snapshot) []Principal {
	out := make([]Principal, 0, len(snap))
	for _, raw := range snap {
		var p Principal
		if json.Unmarshal(raw, &p) == nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Principal) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Directory is the principals as a server sees them now, following the bucket. Lookups
// never wait on NATS. It is safe for concurrent use.
type Directory struct {
	mu       sync.RWMutex
	byName   map[string]*Principal
	byToken  map[string]*Principal
	byKey    map[string]*Principal
	onRevoke func(Principal)
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{byName: map[string]*Principal{}, byToken: map[string]*Principal{}, byKey: map[string]*Principal{}}
}

// OnRevoke registers f, called (outside any lock) for each principal that becomes revoked
// or disappears; set it before the first Apply.
func (d *Directory) OnRevoke(f func(Principal)) { d.onRevoke = f }

// Follow keeps the directory in line with the bucket until ctx ends (see kvwatch.Keep).
func (d *Directory) Follow(ctx context.Context, js jetstream.JetStream, resync time.Duration, log *slog.Logger) {
	kvwatch.Keep(ctx, js, bus.PrincipalsBucket, resync, log, d.Apply)
}

// Apply replaces the directory's contents with a snapshot of the bucket.
func (d *Directory) Apply(snap kvwatch.Snapshot) {
	byName := map[string]*Principal{}
	byToken := map[string]*Principal{}
	byKey := map[string]*Principal{}
	for _, p := range decodeAll(snap) {
		if p.Revoked != nil {
			continue
		}
		byName[p.Name], byToken[p.TokenHash], byKey[p.UserKey] = &p, &p, &p
	}
	d.mu.Lock()
	var gone []Principal
	for name, p := range d.byName {
		if _, ok := byName[name]; !ok {
			gone = append(gone, *p)
		}
	}
	d.byName, d.byToken, d.byKey = byName, byToken, byKey
	d.mu.Unlock()
	if d.onRevoke != nil {
		for _, p := range gone {
			d.onRevoke(p)
		}
	}
}

// Active returns the principal of that name unless it is unknown or revoked.
func (d *Directory) Active(name string) (*Principal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.byName[name]
	return p, ok
}

// ByUserKey returns the active principal whose NATS user key this is.
func (d *Directory) ByUserKey(key string) (*Principal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.byKey[key]
	return p, ok
}

// KeySigning finds the active principal key that signed the nonce: the identity of a
// client that proved a key without naming it (a standard .creds client, whose JWT
// nats-server drops outside operator mode). It costs one signature check per principal.
func (d *Directory) KeySigning(nonce, signedNonce string) (string, error) {
	d.mu.RLock()
	keys := make([]string, 0, len(d.byKey))
	for k := range d.byKey {
		keys = append(keys, k)
	}
	d.mu.RUnlock()
	for _, k := range keys {
		if _, err := VerifyKey(k, nonce, signedNonce); err == nil {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: the nonce is signed by no active principal's key", ErrBadCredentials)
}

// ByToken returns the active principal whose bearer token this is.
func (d *Directory) ByToken(token string) (*Principal, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.byToken[HashToken(token)]
	return p, ok
}

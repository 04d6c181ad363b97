package schemas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/nats-io/nats.go/jetstream"
)

// Registry is the mesh-schemas KV bucket. It is safe for concurrent use.
type Registry struct {
	kv jetstream.KeyValue
}

// OpenRegistry opens the bucket the server created.
func OpenRegistry(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := js.KeyValue(ctx, bus.SchemasBucket)
	if err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("the %s bucket does not exist: is a jetmesh server running against this NATS? (%w)", bus.SchemasBucket, err)
		}
		return nil, fmt.Errorf("opening %s: %w", bus.SchemasBucket, err)
	}
	return &Registry{kv: kv}, nil
}

// origin names a registry document in messages.
func origin(key string) string { return "registry:" + key }

// Catalog reads every version in the registry.
func (r *Registry) Catalog(ctx context.Context) (*Catalog, error) {
	keys, err := r.kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, fmt.Errorf("listing %s: %w", bus.SchemasBucket, err)
	}
	docs := make([]Document, 0, len(keys))
	for _, k := range keys {
		d, err := r.get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between list and get
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return NewCatalog(docs), nil
}

// Get reads one version; version 0 means the latest.
func (r *Registry) Get(ctx context.Context, eventType string, version int) (Document, error) {
	if version > 0 {
		return r.get(ctx, Key(eventType, version))
	}
	c, err := r.Catalog(ctx)
	if err != nil {
		return Document{}, err
	}
	versions := c.Versions(eventType)
	if len(versions) == 0 {
		return Document{}, fmt.Errorf("%s: %w", eventType, ErrNotFound)
	}
	return versions[len(versions)-1], nil
}

func (r *Registry) get(ctx context.Context, key string) (Document, error) {
	eventType, version, err := ParseKey(key)
	if err != nil {
		return Document{}, err
	}
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Document{}, fmt.Errorf("%s v%d: %w", eventType, version, ErrNotFound)
	}
	if err != nil {
		return Document{}, fmt.Errorf("reading %s: %w", key, err)
	}
	return Document{Type: eventType, Version: version, Origin: origin(key), Raw: e.Value()}, nil
}

// Push writes a plan's new versions, each created once: a version someone else pushed in
// the meantime with other content is refused, never overwritten.
func (r *Registry) Push(ctx context.Context, docs []Document) error {
	for _, d := range docs {
		_, err := r.kv.Create(ctx, d.Key(), d.Raw)
		if errors.Is(err, jetstream.ErrKeyExists) {
			pushed, gerr := r.get(ctx, d.Key())
			if gerr == nil && Equal(pushed.Raw, d.Raw) {
				continue
			}
			return Problems{{File: d.Origin, Rule: RuleImmutable, Message: fmt.Sprintf(
				"%s v%d was pushed by someone else meanwhile with different content", d.Type, d.Version)}}
		}
		if err != nil {
			return fmt.Errorf("pushing %s v%d: %w", d.Type, d.Version, err)
		}
	}
	return nil
}

// Live is the registry as the ingress sees it: compiled once, recompiled whenever the
// bucket changes. Validate is safe for concurrent use and never waits on a reload.
type Live struct {
	set      atomic.Pointer[Set]
	log      *slog.Logger
	onReload func(*Set, time.Duration)
}

// LiveOption tunes a Live at construction.
type LiveOption func(*Live)

// OnReload registers a callback run after every compile, for metrics.
func OnReload(f func(s *Set, took time.Duration)) LiveOption {
	return func(l *Live) { l.onReload = f }
}

// Watch loads the registry and keeps following it until ctx ends, re-reading it every
// resync interval as well (see kvwatch). It returns once the current contents are
// compiled, so the caller is never ready with an empty registry.
func Watch(ctx context.Context, js jetstream.JetStream, log *slog.Logger, resync time.Duration, opts ...LiveOption) (*Live, error) {
	w, snap, err := kvwatch.Start(ctx, js, bus.SchemasBucket)
	if err != nil {
		return nil, err
	}
	l := &Live{log: log}
	for _, o := range opts {
		o(l)
	}
	l.compile(snap)
	go l.follow(ctx, js, w, snap, resync)
	return l, nil
}

// follow recompiles once per burst of changes, and when a periodic re-read finds contents
// the watch did not deliver; a watch that ends is started again.
func (l *Live) follow(ctx context.Context, js jetstream.JetStream, w *kvwatch.Watcher, last kvwatch.Snapshot, resync time.Duration) {
	if err := w.Follow(ctx, last, resync, l.log, l.compile); err != nil {
		l.log.Error("schema registry watch ended; restarting it", "error", err)
		kvwatch.Keep(ctx, js, bus.SchemasBucket, resync, l.log, l.compile)
	}
}

func (l *Live) compile(snap kvwatch.Snapshot) {
	began := time.Now()
	docs := make([]Document, 0, len(snap))
	for key, raw := range snap {
		eventType, version, err := ParseKey(key)
		if err != nil {
			l.log.Error("ignoring a schema registry key jetmesh did not write", "key", key, "error", err)
			continue
		}
		docs = append(docs, Document{Type: eventType, Version: version, Origin: origin(key), Raw: raw})
	}
	set, problems, held := CompileComplete(NewCatalog(docs))
	for _, p := range problems {
		l.log.Error("schema does not compile; events validated against it are refused", "problem", p.String())
	}
	for _, d := range held {
		l.log.Warn("schema refers to a document the registry does not hold (yet); the type's previous version stays in force until it arrives",
			"type", d.Type, "version", d.Version)
	}
	took := time.Since(began)
	l.set.Store(set)
	l.log.Info("schemas loaded", "types", len(set.types), "versions", len(docs), "took", took)
	if l.onReload != nil {
		l.onReload(set, took)
	}
}

// Validate checks an event against the schemas in force now (see Set.Validate).
func (l *Live) Validate(ev *event.Event) error { return l.set.Load().Validate(ev) }

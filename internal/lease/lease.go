// Package lease elects one holder among the servers of a cluster for work only one may do
// at a time (reconciling the rule consumers), with a key of a KV bucket whose entries
// expire: the holder renews the key; when it stops, the key expires and another takes it.
package lease

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease is one key held by at most one holder at a time. Run owns its goroutine.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	every  time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	held    bool
	changed chan struct{}
}

// New returns a lease on key of kv for holder, renewed every interval; the bucket's entry
// TTL (its MaxAge) must be several intervals, and is how long a dead holder keeps it.
func New(kv jetstream.KeyValue, key, holder string, every time.Duration, log *slog.Logger) *Lease {
	return &Lease{kv: kv, key: key, holder: holder, every: every, log: log, changed: make(chan struct{})}
}

// Held reports whether this holder has the lease now, and a channel closed at the next
// change.
func (l *Lease) Held() (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.changed
}

func (l *Lease) set(held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if held == l.held {
		return
	}
	l.held = held
	close(l.changed)
	l.changed = make(chan struct{})
}

// Run takes and renews the lease until ctx ends, then gives it up.
func (l *Lease) Run(ctx context.Context) {
	var rev uint64
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	for {
		rev = l.try(ctx, rev)
		select {
		case <-ctx.Done():
			if held, _ := l.Held(); held {
				// Leave at once rather than after the entry's TTL.
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = l.kv.Delete(dctx, l.key, jetstream.LastRevision(rev))
				cancel()
			}
			l.set(false)
			return
		case <-tick.C:
		}
	}
}

// try renews the lease held at revision rev, or takes it when free (or when this holder
// had it before a restart); it returns the revision held, 0 for none.
func (l *Lease) try(ctx context.Context, rev uint64) uint64 {
	ctx, cancel := context.WithTimeout(ctx, l.every)
	defer cancel()
	if rev != 0 {
		next, err := l.kv.Update(ctx, l.key, []byte(l.holder), rev)
		if err == nil {
			return next
		}
		l.log.Warn("renewing the lease failed; it may pass to another server", "lease", l.key, "error", err)
		l.set(false)
	}
	next, err := l.kv.Create(ctx, l.key, []byte(l.holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := l.kv.Get(ctx, l.key)
		if gerr == nil && string(e.Value()) == l.holder {
			next, err = l.kv.Update(ctx, l.key, []byte(l.holder), e.Revision())
		}
	}
	if err != nil {
		l.set(false)
		return 0
	}
	if held, _ := l.Held(); !held {
		l.log.Info("took the lease", "lease", l.key)
	}
	l.set(true)
	return next
}

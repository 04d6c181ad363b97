// Package kvwatch follows a JetStream KV bucket as a whole: its current contents once, then
// its contents again after every burst of changes, so a follower rebuilds its state once
// per burst instead of once per key. Read gets the contents afresh, for followers that
// re-check periodically: a watch is an ordered consumer, which after a cluster node loss
// can keep retrying a placement on the dead node, and a periodic read bounds how long that
// can hide a change.
package kvwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Snapshot is a bucket's contents: key → value.
type Snapshot map[string][]byte

// Watcher follows one bucket. It is owned by one goroutine.
type Watcher struct {
	w      jetstream.KeyWatcher
	js     jetstream.JetStream
	bucket string
	// life is the context given to Start: the client library ends the watch when it ends,
	// which can close the updates before a context derived from it reports done.
	life context.Context
	cur  Snapshot
	err  error
}

// ErrClosed: the watch ended (the connection closed for good).
var ErrClosed = errors.New("kv watch closed")

// Start begins watching bucket and returns once its current contents are read.
func Start(ctx context.Context, js jetstream.JetStream, bucket string) (*Watcher, Snapshot, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", bucket, err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("watching %s: %w", bucket, err)
	}
	x := &Watcher{w: w, js: js, bucket: bucket, life: ctx, cur: Snapshot{}}
	// Current values come first, then a nil entry.
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, nil, fmt.Errorf("watching %s: %w", bucket, ErrClosed)
			}
			if e == nil {
				return x, maps.Clone(x.cur), nil
			}
			x.apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, nil, ctx.Err()
		}
	}
}

// Next waits for the next change and returns the contents once the burst it starts has
// been applied.
func (x *Watcher) Next(ctx context.Context) (Snapshot, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case e, ok := <-x.w.Updates():
		if !ok {
			if err := x.life.Err(); err != nil {
				return nil, err
			}
			return nil, ErrClosed
		}
		x.apply(e)
	}
	for {
		select {
		case e, ok := <-x.w.Updates():
			if !ok {
				return maps.Clone(x.cur), nil
			}
			x.apply(e)
		default:
			return maps.Clone(x.cur), nil
		}
	}
}

// Changes runs Next in a goroutine until ctx ends or the watch closes, and delivers only
// the newest contents: a slow reader skips intermediate states. The channel is closed when
// the goroutine ends; Err then says why.
func (x *Watcher) Changes(ctx context.Context) <-chan Snapshot {
	out := make(chan Snapshot, 1)
	go func() {
		defer close(out)
		for {
			snap, err := x.Next(ctx)
			if err != nil {
				if ctx.Err() == nil && x.life.Err() == nil {
					x.err = err
				}
				return
			}
			select {
			case <-out:
			default:
			}
			out <- snap
		}
	}()
	return out
}

// Err is why the channel from Changes closed: nil when it closed because a context given
// to Start or Changes ended, ErrClosed when the watch ended on its own.
func (x *Watcher) Err() error { return x.err }

// Read returns a bucket's current contents without watching: one listing and one read per
// key.
func Read(ctx context.Context, js jetstream.JetStream, bucket string) (Snapshot, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", bucket, err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, fmt.Errorf("listing %s: %w", bucket, err)
	}
	snap := make(Snapshot, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s %s: %w", bucket, k, err)
		}
		snap[k] = e.Value()
	}
	return snap, nil
}

// Equal reports whether two snapshots hold the same keys and values.
func Equal(a, b Snapshot) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

// Follow calls apply with the contents after every burst of changes, and every resync
// interval reads the bucket afresh and calls apply when that differs from what it last
// applied, starting from last (what the caller applied from Start). It stops the watch
// and returns nil when ctx ends, or ErrClosed when the watch ended on its own.
func (x *Watcher) Follow(ctx context.Context, last Snapshot, resync time.Duration, log *slog.Logger, apply func(Snapshot)) error {
	defer x.Stop()
	changes := x.Changes(ctx)
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case snap, ok := <-changes:
			if !ok {
				return x.Err()
			}
			last = snap
			apply(snap)
		case <-tick.C:
			fresh, err := Read(ctx, x.js, x.bucket)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("re-reading a bucket failed", "bucket", x.bucket, "error", err)
				}
				continue
			}
			if !Equal(fresh, last) {
				log.Warn("a bucket changed without its watch saying so; applying what was read", "bucket", x.bucket)
				last = fresh
				apply(fresh)
			}
		}
	}
}

// Keep follows bucket until ctx ends: it starts a watch (retrying, 1s doubling to 10s,
// while the bucket or the connection is not there), applies the current contents, follows
// them, and starts over whenever the watch ends on its own.
func Keep(ctx context.Context, js jetstream.JetStream, bucket string, resync time.Duration, log *slog.Logger, apply func(Snapshot)) {
	wait := time.Second
	for ctx.Err() == nil {
		w, snap, err := Start(ctx, js, bucket)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("watching a bucket failed; retrying", "bucket", bucket, "error", err, "retry", wait)
			sleep(ctx, wait)
			wait = min(2*wait, 10*time.Second)
			continue
		}
		wait = time.Second
		apply(snap)
		if err := w.Follow(ctx, snap, resync, log, apply); err != nil {
			log.Warn("a bucket watch ended; restarting it", "bucket", bucket, "error", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Stop ends the watch.
func (x *Watcher) Stop() { _ = x.w.Stop() }

func (x *Watcher) apply(e jetstream.KeyValueEntry) {
	if e == nil {
		return
	}
	if e.Operation() == jetstream.KeyValuePut {
		x.cur[e.Key()] = e.Value()
	} else {
		delete(x.cur, e.Key())
	}
}

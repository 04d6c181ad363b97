// Package kvwatch follows a JetStream KV bucket as a whole: its current contents once, then
// its contents again after every burst of changes, so a follower rebuilds its state once
// per burst instead of once per key.
package kvwatch

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/nats-io/nats.go/jetstream"
)

// Snapshot is a bucket's contents: key → value.
type Snapshot map[string][]byte

// Watcher follows one bucket. It is owned by one goroutine.
type Watcher struct {
	w   jetstream.KeyWatcher
	cur Snapshot
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
	x := &Watcher{w: w, cur: Snapshot{}}
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

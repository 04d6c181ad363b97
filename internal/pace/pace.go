// Package pace spaces work out to a rate.
package pace

import (
	"context"
	"sync"
	"time"
)

// Pacer spaces work to at most rate per second, without drift; after an idle spell it
// starts afresh rather than bursting to catch up. Goroutines may share one.
type Pacer struct {
	every time.Duration
	mu    sync.Mutex
	next  time.Time
}

// New returns a pacer for rate per second; 0 or less does not pace.
func New(rate float64) *Pacer {
	if rate <= 0 {
		return &Pacer{}
	}
	return &Pacer{every: time.Duration(float64(time.Second) / rate)}
}

// Wait blocks until the next unit of work may start, or ctx ends.
func (p *Pacer) Wait(ctx context.Context) error {
	if p.every == 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.IsZero() || p.next.Before(now.Add(-p.every)) {
		p.next = now // idle for a while: no burst to catch up
	}
	at := p.next
	p.next = p.next.Add(p.every)
	p.mu.Unlock()
	return Sleep(ctx, at.Sub(now))
}

// Sleep waits for d, or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

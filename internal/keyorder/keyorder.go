// Package keyorder checks, at a handler, that events of each key arrive in the order
// they were published: the yardstick of orderBy delivery in tests and in the bench.
package keyorder

import "sync"

// Checker counts the events a handler received per key, numbered by the publisher 1, 2,
// ... within each key. A violation is an event received for the first time after a
// later one of its key. A repeat of one already received (at-least-once delivery, or the
// rewind of a partition taken over after a crash) is not a violation.
type Checker struct {
	mu         sync.Mutex
	last       map[string]int
	seen       map[string]map[int]bool
	distinct   int
	repeats    int
	violations int
}

// New returns an empty Checker.
func New() *Checker {
	return &Checker{last: map[string]int{}, seen: map[string]map[int]bool{}}
}

// Observe records event n of key.
func (c *Checker) Observe(key string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.seen[key]
	if s == nil {
		s = map[int]bool{}
		c.seen[key] = s
	}
	if s[n] {
		c.repeats++
		return
	}
	s[n] = true
	c.distinct++
	if n < c.last[key] {
		c.violations++
	}
	c.last[key] = max(c.last[key], n)
}

// Counts returns the distinct events received, the repeats and the order violations.
func (c *Checker) Counts() (distinct, repeats, violations int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.distinct, c.repeats, c.violations
}

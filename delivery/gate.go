package delivery

import "sync"

// Gate pauses and resumes pulling, for a sidecar whose service reports itself unhealthy.
// It is safe for concurrent use. The zero value is not usable; use NewGate.
type Gate struct {
	mu   sync.Mutex
	open bool
	// change is closed and replaced at every change of state.
	change chan struct{}
}

// NewGate returns a gate, open or closed.
func NewGate(open bool) *Gate { return &Gate{open: open, change: make(chan struct{})} }

// Set opens or closes the gate.
func (g *Gate) Set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == open {
		return
	}
	g.open = open
	close(g.change)
	g.change = make(chan struct{})
}

// State returns whether the gate is open and a channel closed at its next change.
func (g *Gate) State() (open bool, changed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open, g.change
}

// Package lastminute turns cumulative counters, sampled now and then, into what happened
// over about the last minute: heartbeats report rates this way.
package lastminute

import "time"

// Window keeps just enough samples that the oldest is about a minute old.
type Window[T any] struct {
	samples []sample[T]
}

type sample[T any] struct {
	at time.Time
	v  T
}

// New starts a window whose first sample is v at start (counters at zero, typically).
func New[T any](start time.Time, v T) *Window[T] {
	return &Window[T]{samples: []sample[T]{{start, v}}}
}

// Add records v at now and returns the sample to difference it against: the newest one
// at least a minute older, or the first while there is none yet, with its time.
func (w *Window[T]) Add(now time.Time, v T) (base T, since time.Time) {
	w.samples = append(w.samples, sample[T]{now, v})
	for len(w.samples) > 2 && now.Sub(w.samples[1].at) >= time.Minute {
		w.samples = w.samples[1:]
	}
	return w.samples[0].v, w.samples[0].at
}

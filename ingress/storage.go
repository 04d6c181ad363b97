package ingress

import (
	"fmt"
	"sync"
	"time"
)

// probeEvery spaces the requests let through to JetStream while storage is failing: the
// rest are refused at once instead of each waiting out the publish timeout.
const probeEvery = 500 * time.Millisecond

// storageState remembers whether the last publishes to EVENTS were stored. While they
// fail, one request every probeEvery goes through as a probe and the others are refused
// fast; the first stored event clears it. It is safe for concurrent use.
type storageState struct {
	mu        sync.Mutex
	err       error
	since     time.Time
	lastProbe time.Time
}

// StorageError is set while publishes to EVENTS fail: why, and since when.
type StorageError struct {
	Err   error
	Since time.Time
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("events cannot be stored since %s: %v", e.Since.UTC().Format(time.RFC3339), e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// admit reports whether a request may try to store now: always while storage works, and
// as the next probe while it fails. Otherwise it returns the failure to answer with.
func (s *storageState) admit(now time.Time) *StorageError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil || now.Sub(s.lastProbe) >= probeEvery {
		s.lastProbe = now
		return nil
	}
	return &StorageError{Err: s.err, Since: s.since}
}

func (s *storageState) stored() {
	s.mu.Lock()
	s.err = nil
	s.mu.Unlock()
}

func (s *storageState) failed(err error, now time.Time) {
	s.mu.Lock()
	if s.err == nil {
		s.since = now
	}
	s.err = err
	s.mu.Unlock()
}

func (s *storageState) problem() *StorageError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil
	}
	return &StorageError{Err: s.err, Since: s.since}
}

// StorageProblem says why events cannot be stored right now, or nil when the last
// publish was stored. Readiness checks report it.
func (in *Ingress) StorageProblem() *StorageError { return in.storage.problem() }

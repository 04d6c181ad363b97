package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// storageCheckEvery spaces the storage watch's checks.
const storageCheckEvery = 2 * time.Second

// restartStoreAfter spaces restarts of the embedded JetStream store, so a disk that keeps
// failing is not restarted in a loop.
const restartStoreAfter = 30 * time.Second

// storageWatch keeps the streams the ingress writes to in working order and says when
// they are not. Every storageCheckEvery it
//   - recreates EVENTS or DLQ when someone deleted it (the way the reconciler recreates
//     consumers), reporting it missing meanwhile;
//   - counts DLQ records that its byte cap discarded;
//   - on an embedded server whose store hit a write error (disk full, read-only), which
//     nats-server never clears by itself, restarts JetStream once the data directory
//     takes writes again, so publishing resumes without a process restart.
type storageWatch struct {
	js      jetstream.JetStream
	streams bus.StreamsConfig
	ns      *natsserver.Server // nil against an external NATS
	dataDir string
	// writeError is set by the embedded server's log when its store failed a write.
	writeError *atomic.Bool
	log        *slog.Logger
	discards   *dlqDiscards

	mu      sync.Mutex
	problem string
	// Owned by the run loop.
	lastRestart time.Time
	waitingFor  string // the last reason logged for not restarting yet
}

// Problem is why the streams cannot take events now, or "" when they can.
func (w *storageWatch) Problem() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.problem
}

func (w *storageWatch) setProblem(p string) {
	w.mu.Lock()
	w.problem = p
	w.mu.Unlock()
}

func (w *storageWatch) run(ctx context.Context) {
	tick := time.NewTicker(storageCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.check(ctx)
	}
}

func (w *storageWatch) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, storageCheckEvery)
	defer cancel()
	var missing []string
	for _, name := range []string{bus.EventsStream, bus.DLQStream, bus.IndexStream} {
		st, err := w.js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing = append(missing, name)
		case err == nil && name == bus.DLQStream:
			w.discards.observe(st.CachedInfo().State, w.streams.DLQMaxAge.Std(), time.Now())
		}
	}
	if len(missing) > 0 {
		w.setProblem(fmt.Sprintf("stream %v does not exist; recreating it", missing))
		w.log.Warn("a stream was deleted; recreating it", "streams", missing)
		if err := bus.EnsureStreams(ctx, w.js, w.streams); err != nil {
			w.log.Error("recreating the streams failed; retrying", "error", err)
			return
		}
		w.log.Info("streams recreated", "streams", missing)
	}
	w.setProblem("")
	if w.ns != nil && w.writeError.Load() {
		w.healStore()
	}
}

// healStore restarts the embedded JetStream after a store write error, once a probe write
// to the data directory shows the cause (a full or read-only disk) has gone.
func (w *storageWatch) healStore() {
	if time.Since(w.lastRestart) < restartStoreAfter {
		return
	}
	if err := probeWrite(w.dataDir); err != nil {
		p := "JetStream's store failed a write and the data directory still refuses writes: " + err.Error()
		if w.waitingFor != p {
			w.log.Warn("JetStream's store cannot write; waiting for the data directory to take writes again", "probe", err)
			w.waitingFor = p
		}
		w.setProblem(p)
		return
	}
	w.lastRestart, w.waitingFor = time.Now(), ""
	w.writeError.Store(false)
	cfg := w.ns.JetStreamConfig()
	w.log.Warn("restarting JetStream: its store failed a write, and the data directory takes writes again")
	if err := w.ns.ShutdownJetStream(); err != nil {
		w.log.Error("stopping JetStream failed", "error", err)
		return
	}
	if err := w.ns.EnableJetStream(cfg); err != nil {
		w.log.Error("starting JetStream again failed", "error", err)
		return
	}
	w.log.Info("JetStream restarted")
}

// probeWrite writes, syncs and removes a small file in dir: whether the disk takes writes.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".jetmesh-write-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(make([]byte, 64<<10)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dlqDiscards counts DLQ records removed from the front of the stream while younger than
// its max age: removed by its byte cap (or deleted by hand), not expired. It compares the
// stream's first record between checks.
type dlqDiscards struct {
	total     prometheus.Counter
	known     bool
	firstSeq  uint64
	firstTime time.Time
}

func newDLQDiscards(reg prometheus.Registerer) *dlqDiscards {
	d := &dlqDiscards{total: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jetmesh_dlq_discarded_total",
		Help: "DLQ records discarded, oldest first, because the DLQ reached dlq.maxBytes.",
	})}
	reg.MustRegister(d.total)
	return d
}

// observe counts the records that left the front of the stream since the last call. If
// the oldest of them was younger than maxAge, none of them expired: the cap took them.
func (d *dlqDiscards) observe(s jetstream.StreamState, maxAge time.Duration, now time.Time) {
	if d.known && s.FirstSeq > d.firstSeq && now.Sub(d.firstTime) < maxAge {
		d.total.Add(float64(s.FirstSeq - d.firstSeq))
	}
	d.known, d.firstSeq, d.firstTime = true, s.FirstSeq, s.FirstTime
	if s.Msgs == 0 {
		// Empty: the next record will be the first, and younger than now.
		d.firstSeq, d.firstTime = s.LastSeq+1, now
	}
}

// dataDirOf is where an embedded server's JetStream writes.
func dataDirOf(dir string) string { return filepath.Join(dir, "jetstream") }

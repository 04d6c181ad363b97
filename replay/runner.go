package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/jetmesh/jetmesh/internal/pace"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Lease is how long a server's claim on a replay lasts without renewal; progress is
// written (and the claim renewed) every checkpoint interval.
const (
	Lease      = 15 * time.Second
	checkpoint = time.Second
)

// Runner runs the replays of the bucket: each server has one, and a replay is run by the
// server holding its lease. A server that stops (or dies) leaves its replays to be taken
// over when the lease lapses; the same server, restarted under the same name, takes its
// own back at once.
type Runner struct {
	js   jetstream.JetStream
	name string
	log  *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// NewRunner returns a runner for the server called name (stable across restarts).
func NewRunner(js jetstream.JetStream, name string, log *slog.Logger) *Runner {
	return &Runner{js: js, name: name, log: log, running: map[string]context.CancelFunc{}}
}

// Run follows the replays bucket until ctx ends, starting the replays this server may
// claim, and re-checks every few seconds for leases that lapsed. It returns once every
// replay it ran has written its last progress.
func (rn *Runner) Run(ctx context.Context) error {
	defer rn.wg.Wait()
	w, snap, err := kvwatch.Start(ctx, rn.js, bus.ReplaysBucket)
	if err != nil {
		return err
	}
	defer w.Stop()
	changes := w.Changes(ctx)
	tick := time.NewTicker(Lease / 3)
	defer tick.Stop()
	for {
		rn.consider(ctx, snap)
		select {
		case <-ctx.Done():
			return nil
		case next, ok := <-changes:
			if !ok {
				if err := w.Err(); err != nil && ctx.Err() == nil {
					return fmt.Errorf("replays watch ended: %w", err)
				}
				return nil
			}
			snap = next
		case <-tick.C:
		}
	}
}

// consider starts the replays of snap that are waiting for a server, and stops the ones
// this server runs that were cancelled.
func (rn *Runner) consider(ctx context.Context, snap kvwatch.Snapshot) {
	now := time.Now()
	for id, raw := range snap {
		r, err := decode(raw)
		if err != nil {
			rn.log.Error("unreadable replay in the bucket; left alone", "replay", id, "error", err)
			continue
		}
		rn.mu.Lock()
		cancel, mine := rn.running[id]
		rn.mu.Unlock()
		switch {
		case mine && r.Finished():
			cancel()
		case mine || r.Finished():
		case r.State == StatePending, r.Owner == rn.name, r.LeaseUntil.Before(now):
			rn.start(ctx, id)
		}
	}
}

func (rn *Runner) start(ctx context.Context, id string) {
	rctx, cancel := context.WithCancel(ctx)
	rn.mu.Lock()
	rn.running[id] = cancel
	rn.mu.Unlock()
	rn.wg.Go(func() {
		defer func() {
			cancel()
			rn.mu.Lock()
			delete(rn.running, id)
			rn.mu.Unlock()
		}()
		if err := rn.run(rctx, id); err != nil && rctx.Err() == nil {
			rn.log.Warn("replay stopped; it is retried while its lease allows", "replay", id, "error", err)
		}
	})
}

// job is one replay being run, with its last stored revision.
type job struct {
	rn  *Runner
	kv  jetstream.KeyValue
	r   *Replay
	rev uint64
	// rate measurement between checkpoints
	lastAt      time.Time
	lastScanned uint64
}

// errLost means another writer changed the replay: cancelled, or claimed by another server.
var errLost = errors.New("the replay was changed by someone else")

func (rn *Runner) run(ctx context.Context, id string) error {
	kv, err := bucket(ctx, rn.js)
	if err != nil {
		return err
	}
	r, rev, err := get(ctx, kv, id)
	if err != nil {
		return err
	}
	j := &job{rn: rn, kv: kv, r: r, rev: rev}
	if r.Finished() || (r.State != StatePending && r.Owner != rn.name && time.Now().Before(r.LeaseUntil)) {
		return nil
	}
	// Claim: only one server's compare-and-set of this revision wins.
	r.Owner, r.LeaseUntil = rn.name, time.Now().Add(Lease).UTC()
	if r.State == StatePending {
		r.State, r.StartedAt = StateRunning, time.Now().UTC()
	}
	if err := j.save(ctx); err != nil {
		if errors.Is(err, errLost) {
			return nil
		}
		return err
	}
	rn.log.Info("replay running", "replay", id, "rule", r.Rule, "from", r.From, "to", r.To, "rate", r.Rate, "next_seq", r.NextSeq)
	err = j.copyWindow(ctx)
	switch {
	case errors.Is(err, errLost):
		return nil
	case ctx.Err() != nil:
		// Stopping (server shutdown, or cancelled): keep the progress made for whoever resumes.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = j.save(sctx)
		return nil
	case errors.Is(err, errPermanent):
		r.State, r.Error, r.FinishedAt = StateFailed, err.Error(), time.Now().UTC()
		rn.log.Error("replay failed", "replay", id, "error", err)
		return j.save(ctx)
	case err != nil:
		return err
	}
	r.State, r.FinishedAt = StateDone, time.Now().UTC()
	rn.log.Info("replay done", "replay", id, "rule", r.Rule, "replayed", r.Replayed, "scanned", r.Scanned)
	return j.save(ctx)
}

// errPermanent marks errors that retrying will not fix (the rule is gone).
var errPermanent = errors.New("replay cannot go on")

// save writes the replay back with a compare-and-set on the revision last seen, renewing
// the lease and the measured pace.
func (j *job) save(ctx context.Context) error {
	now := time.Now()
	if !j.lastAt.IsZero() {
		if dt := now.Sub(j.lastAt).Seconds(); dt > 0 {
			j.r.RatePerSec = float64(j.r.Scanned-j.lastScanned) / dt
		}
	}
	j.lastAt, j.lastScanned = now, j.r.Scanned
	j.r.UpdatedAt = now.UTC()
	if !j.r.Finished() {
		j.r.LeaseUntil = now.Add(Lease).UTC()
	}
	rev, err := j.kv.Update(ctx, j.r.ID, encode(j.r), j.rev)
	if isConflict(err) {
		return errLost
	}
	if err != nil {
		return fmt.Errorf("saving replay progress: %w", err)
	}
	j.rev = rev
	return nil
}

// copyWindow copies the events of the window that match the rule, from the cursor on.
func (j *job) copyWindow(ctx context.Context) error {
	r := j.r
	rule, err := j.rule(ctx)
	if err != nil {
		return err
	}
	pattern, err := rule.Compile()
	if err != nil {
		return fmt.Errorf("%w: rule %s: %w", errPermanent, r.Rule, err)
	}
	filters := pattern.FilterSubjects()
	stream, err := j.rn.js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return err
	}
	if r.NextSeq == 0 {
		if err := j.window(ctx, stream, filters); err != nil {
			return err
		}
		if err := j.save(ctx); err != nil {
			return err
		}
	}
	if r.NextSeq > r.EndSeq {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.NextSeq,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return fmt.Errorf("reading the window: %w", err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("reading the window: %w", err)
	}
	defer iter.Stop()
	go func() { <-ctx.Done(); iter.Stop() }()

	useData := pattern.UsesKey("data")
	pacer := pace.New(r.Rate)
	saved := time.Now()
	for r.NextSeq <= r.EndSeq {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading the window: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		if seq > r.EndSeq || md.Timestamp.After(r.To) {
			r.NextSeq = r.EndSeq + 1
			break
		}
		if pattern.Match(rules.StoredEvent(msg.Headers(), msg.Data(), useData)) {
			if err := pacer.Wait(ctx); err != nil {
				return err
			}
			copySeq, err := j.copy(ctx, msg, seq)
			if err != nil {
				return err
			}
			r.Replayed++
			r.LastCopySeq = copySeq
		}
		r.Scanned++
		r.NextSeq = seq + 1
		if md.NumPending == 0 {
			// Nothing more is stored on the filters; whatever comes next is newer than the
			// window, which ended at the stream's last sequence when the replay started.
			r.NextSeq = r.EndSeq + 1
		}
		if time.Since(saved) >= checkpoint {
			if err := j.save(ctx); err != nil {
				return err
			}
			saved = time.Now()
		}
	}
	return nil
}

// rule reads the replay's rule as stored now; a deleted rule ends the replay.
func (j *job) rule(ctx context.Context) (rules.Rule, error) {
	kv, err := j.rn.js.KeyValue(ctx, bus.RulesBucket)
	if err != nil {
		return rules.Rule{}, err
	}
	e, err := kv.Get(ctx, j.r.Rule)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rules.Rule{}, fmt.Errorf("%w: rule %s no longer exists", errPermanent, j.r.Rule)
	}
	if err != nil {
		return rules.Rule{}, err
	}
	rule, err := rules.DecodeStored(j.r.Rule, e.Value())
	if err != nil {
		return rules.Rule{}, fmt.Errorf("%w: %w", errPermanent, err)
	}
	return rule, nil
}

// window fixes where the replay starts and ends in the stream, and how many events of the
// rule's filter subjects lie between: counted with two throwaway consumers, one at From,
// one just after To.
func (j *job) window(ctx context.Context, stream jetstream.Stream, filters []string) error {
	r := j.r
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	r.EndSeq = info.State.LastSeq
	fromCount, first, err := countFrom(ctx, stream, filters, r.From)
	if err != nil {
		return err
	}
	afterCount, _, err := countFrom(ctx, stream, filters, r.To.Add(time.Nanosecond))
	if err != nil {
		return err
	}
	r.Total = fromCount - min(afterCount, fromCount)
	r.NextSeq = first
	if first == 0 || r.Total == 0 {
		r.NextSeq = r.EndSeq + 1 // nothing in the window
	}
	return nil
}

// countFrom counts the events on filters stored at or after t, and gives the sequence of
// the first (0 if none).
func countFrom(ctx context.Context, stream jetstream.Stream, filters []string, t time.Time) (count, first uint64, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := stream.CreateConsumer(cctx, jetstream.ConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1, InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("counting the window: %w", err)
	}
	defer func() { _ = stream.DeleteConsumer(context.WithoutCancel(cctx), c.CachedInfo().Name) }()
	count = c.CachedInfo().NumPending
	if count == 0 {
		return 0, 0, nil
	}
	msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		return 0, 0, fmt.Errorf("counting the window: %w", err)
	}
	md, err := msg.Metadata()
	if err != nil {
		return 0, 0, err
	}
	return count, md.Sequence.Stream, nil
}

// copy stores a copy of one event on the rule's direct subject, marked with the replay id.
// The message id makes a copy made again after a restart (between two checkpoints) a
// duplicate the stream drops.
func (j *job) copy(ctx context.Context, msg jetstream.Msg, seq uint64) (uint64, error) {
	h := nats.Header{}
	for k, vs := range msg.Headers() {
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			h[k] = vs
		}
	}
	h["ce-"+event.ReplayExtension] = []string{j.r.ID}
	h.Set(event.HeaderMsgID, "jetmesh-replay-"+j.r.ID+"-"+strconv.FormatUint(seq, 10))
	out := &nats.Msg{Subject: bus.DirectSubject(j.r.Rule, "replay", j.r.ID), Header: h, Data: msg.Data()}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := j.rn.js.PublishMsg(pctx, out)
	if err != nil {
		return 0, fmt.Errorf("storing the copy of #%d: %w", seq, err)
	}
	return ack.Sequence, nil
}

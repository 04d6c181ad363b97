package lookup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The id index, off the publish path: each server runs an Indexer that reads the headers
// of EVENTS through a durable consumer and, for every batch (up to indexBatch events or a
// second), writes one message per hash bucket to EVENT_IDS on idx.<bucket>. An entry is
// 16 bytes: the 64-bit FNV-1a hash of the id and the event's stream sequence. A lookup
// reads the one bucket its id hashes to (1/16 of the index, from --since on) and then the
// few events the index has not reached yet (past the indexer's ack floor).
const (
	// IndexerConsumer is the durable consumer the indexers share.
	IndexerConsumer = "jetmesh-indexer"
	indexBuckets    = 16
	indexBatch      = 4096
	entrySize       = 16
)

func idHash(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

func bucketSubject(hash uint64) string {
	return fmt.Sprintf("idx.%x", hash>>60) // the top 4 bits: 16 buckets
}

// Indexer keeps the id index up to date. Any number may run (one per server): the durable
// consumer shares the batches out. A batch is acknowledged only once its entries are
// stored, so a crash re-indexes at worst (a duplicate entry is harmless).
type Indexer struct {
	js  jetstream.JetStream
	log *slog.Logger
}

// NewIndexer returns an indexer; Run it for as long as the server runs.
func NewIndexer(js jetstream.JetStream, log *slog.Logger) *Indexer {
	return &Indexer{js: js, log: log}
}

// IndexerConsumerConfig is the shared consumer: every stored event (the first indexer to
// start indexes what is already there), headers only, one batch in flight per indexer.
func IndexerConsumerConfig(replicas int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: IndexerConsumer, Description: "jetmesh id index: reads event headers into EVENT_IDS",
		FilterSubject: bus.EventsSubjects, HeadersOnly: true, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckAllPolicy, AckWait: time.Minute, MaxAckPending: 4 * indexBatch, Replicas: replicas,
	}
}

// Run indexes until ctx ends, re-binding after errors.
func (ix *Indexer) Run(ctx context.Context, replicas int) {
	wait := time.Second
	for ctx.Err() == nil {
		err := ix.run(ctx, replicas)
		if ctx.Err() != nil {
			return
		}
		ix.log.Warn("indexing event ids stopped; retrying", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (ix *Indexer) run(ctx context.Context, replicas int) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := ix.js.CreateOrUpdateConsumer(cctx, bus.EventsStream, IndexerConsumerConfig(replicas))
	cancel()
	if err != nil {
		return fmt.Errorf("index consumer: %w", err)
	}
	for ctx.Err() == nil {
		// A batch closes at indexBatch events or after a second: the index's lag.
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		batch, err := cons.Fetch(indexBatch, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return err
		}
		buckets := map[string][]byte{}
		var last jetstream.Msg
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			h := m.Headers()
			id := h.Get(event.HeaderMsgID)
			if id == "" {
				id = event.HeaderGet(h, "ce-id")
			}
			hash := idHash(id)
			subject := bucketSubject(hash)
			buckets[subject] = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(buckets[subject], hash), md.Sequence.Stream)
			last = m
		}
		err = batch.Error()
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if last == nil {
			continue
		}
		if err := ix.store(ctx, buckets); err != nil {
			return err
		}
		if err := last.Ack(); err != nil { // acks the whole batch (AckAll)
			return err
		}
	}
	return nil
}

func (ix *Indexer) store(ctx context.Context, buckets map[string][]byte) error {
	futures := make([]jetstream.PubAckFuture, 0, len(buckets))
	for subject, entries := range buckets {
		f, err := ix.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: entries})
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("storing index entries: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// indexed returns the highest stream sequence the index covers: every event at or below
// it has its entry stored. 0 when there is no indexer (yet).
func indexed(ctx context.Context, js jetstream.JetStream) uint64 {
	c, err := js.Consumer(ctx, bus.EventsStream, IndexerConsumer)
	if err != nil {
		return 0
	}
	return c.CachedInfo().AckFloor.Stream
}

// fromIndex returns the stream sequences whose id hashes like id, from index entries
// stored since since (zero: all), and how many entries it read.
func fromIndex(ctx context.Context, js jetstream.JetStream, id string, since time.Time) ([]uint64, uint64, error) {
	hash := idHash(id)
	stream, err := js.Stream(ctx, bus.IndexStream)
	if err != nil {
		return nil, 0, fmt.Errorf("the id index: %w", err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{bucketSubject(hash)}, DeliverPolicy: jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the id index: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the id index: %w", err)
	}
	var (
		seqs    []uint64
		entries uint64
	)
	for remaining := info.NumPending; remaining > 0; {
		batch, err := cons.Fetch(int(min(remaining, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, entries, fmt.Errorf("reading the id index: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if md, err := m.Metadata(); err == nil {
				remaining = md.NumPending
			}
			data := m.Data()
			for i := 0; i+entrySize <= len(data); i += entrySize {
				entries++
				if binary.BigEndian.Uint64(data[i:]) == hash {
					seqs = append(seqs, binary.BigEndian.Uint64(data[i+8:]))
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, entries, fmt.Errorf("reading the id index: %w", err)
		}
		if got == 0 {
			break
		}
	}
	return seqs, entries, nil
}

package rules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SkippedByRestart counts the events a restart of the consumer cur at want's start would
// skip: events matching want's filter that were stored after cur's ack floor (so not yet
// delivered, or delivered and not yet acknowledged) but before want's start. It is zero
// when want starts at or before cur's position (a replay) and when want keeps cur's
// position. An event acknowledged out of order above the ack floor is counted too: the
// count errs on the side of asking.
func SkippedByRestart(ctx context.Context, stream jetstream.Stream, cur *jetstream.ConsumerInfo, want jetstream.ConsumerConfig) (uint64, error) {
	if want.DeliverPolicy != jetstream.DeliverByStartTimePolicy || want.OptStartTime == nil {
		return 0, nil
	}
	fromFloor, err := pendingFrom(ctx, stream, want.FilterSubjects, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: cur.AckFloor.Stream + 1,
	})
	if err != nil {
		return 0, err
	}
	fromStart, err := pendingFrom(ctx, stream, want.FilterSubjects, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: want.OptStartTime,
	})
	if err != nil {
		return 0, err
	}
	if fromStart >= fromFloor {
		return 0, nil
	}
	return fromFloor - fromStart, nil
}

// pendingFrom counts the stored events a consumer with pos's start and these filters
// would deliver, with a throwaway consumer that acks nothing and is deleted at once.
func pendingFrom(ctx context.Context, stream jetstream.Stream, filters []string, pos jetstream.ConsumerConfig) (uint64, error) {
	cfg := pos
	cfg.FilterSubjects = filters
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	cfg.InactiveThreshold = 30 * time.Second // cleaned up by the server if the delete below is lost
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("counting events from a start position: %w", err)
	}
	info := c.CachedInfo()
	if err := stream.DeleteConsumer(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, fmt.Errorf("deleting the counting consumer %s: %w", info.Name, err)
	}
	return info.NumPending, nil
}

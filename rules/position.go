package rules

import (
	"context"

	"github.com/jetmesh/jetmesh/bus"
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
	fromFloor, err := bus.Pending(ctx, stream, want.FilterSubjects, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: cur.AckFloor.Stream + 1,
	})
	if err != nil {
		return 0, err
	}
	fromStart, err := bus.Pending(ctx, stream, want.FilterSubjects, jetstream.ConsumerConfig{
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

package bench

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/internal/keyorder"
	"github.com/jetmesh/jetmesh/rules"
)

// The delivery modes measured beside per-event delivery: each has its own event type
// and rule, so one run measures them all on the same server.
const (
	benchOrderedType = "bench.ordered"
	benchDelayedType = "bench.delayed"
	benchLimitedType = "bench.limited"
	orderedRule      = "bench-ordered"
)

// modeRules are the rules of the modes cfg measures.
func modeRules(cfg Config) []rules.Rule {
	rule := func(name, typ string, d rules.Delivery) rules.Rule {
		return rules.Rule{Name: name, Pattern: []byte(`{"type":["` + typ + `"]}`), Target: rules.Target{Service: "bench", Path: "/"}, Delivery: d}
	}
	var out []rules.Rule
	if cfg.OrderKeys > 0 {
		out = append(out, rule(orderedRule, benchOrderedType, rules.Delivery{MaxConcurrency: cfg.Concurrency, OrderBy: "partitionkey", Partitions: 4}))
	}
	if cfg.Delay > 0 {
		out = append(out, rule("bench-delayed", benchDelayedType, rules.Delivery{MaxConcurrency: cfg.Concurrency}))
	}
	if cfg.RateLimit > 0 {
		out = append(out, rule("bench-limited", benchLimitedType, rules.Delivery{MaxConcurrency: cfg.Concurrency, RateLimit: strconv.Itoa(cfg.RateLimit) + "/s"}))
	}
	return out
}

// orderedFull publishes OrderKeys keys' events at full speed: each publisher owns a share
// of the keys and publishes each key's events in turn, so each key's events are stored in
// the order of their number, which the handler checks.
func (e *env) orderedFull(ctx context.Context, m *measure) error {
	m.order = keyorder.New()
	keys := e.cfg.OrderKeys
	perKey := m.want / keys
	publishers := e.cfg.Publishers
	errs := make([]error, publishers)
	var wg sync.WaitGroup
	for w := range publishers {
		wg.Go(func() { errs[w] = e.publishKeys(ctx, m, w, keys, perKey) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// publishKeys publishes, in batches, the events of publisher w's keys (every
// Publishers-th from w), each key's in the order of their number.
func (e *env) publishKeys(ctx context.Context, m *measure, w, keys, perKey int) error {
	batch := make([]byte, 0, e.cfg.Batch*200)
	count := 0
	flush := func() error {
		if count == 0 {
			return nil
		}
		batch = append(batch, ']')
		err := e.post(ctx, "application/cloudevents-batch+json", batch)
		batch, count = batch[:0], 0
		return err
	}
	for n := 1; n <= perKey; n++ {
		for k := w; k < keys; k += e.cfg.Publishers {
			if count == 0 {
				batch = append(batch, '[')
			} else {
				batch = append(batch, ',')
			}
			key := "key-" + strconv.Itoa(k)
			batch = append(batch, eventJSON(benchOrderedType, m.name+"-"+key+"-"+strconv.Itoa(n), n, time.Now(), `"partitionkey":"`+key+`",`)...)
			if count++; count == e.cfg.Batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// delayedFixed publishes at Rate events each due Delay later; the latency measured is
// from the due time, so it is the lateness.
func (e *env) delayedFixed(ctx context.Context, m *measure) error {
	return pace(ctx, e.cfg.Rate, m.want, 32, func(i int, sent time.Time) error {
		due := sent.Add(e.cfg.Delay)
		at := `"deliverat":"` + due.UTC().Format(time.RFC3339Nano) + `",`
		return e.post(ctx, "application/cloudevents+json", eventJSON(benchDelayedType, m.name+"-"+strconv.Itoa(i), i, due, at))
	})
}

// limitedFull publishes RateLimit×Duration events at once to the rate-limited rule; the
// rate is the handler's, over the middle 80% of the arrivals.
func (e *env) limitedFull(ctx context.Context, m *measure) error {
	m.steady = true
	return e.publishAll(ctx, m, benchLimitedType)
}

package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/delivery"
	"github.com/jetmesh/jetmesh/internal/keyorder"
	"github.com/jetmesh/jetmesh/rules"
)

// keyedHandler checks the order of each key's events (see keyorder), and can fail some.
type keyedHandler struct {
	order   *keyorder.Checker
	fail    func(key string, n int) bool // answer 503 instead
	failing atomic.Bool
	mu      sync.Mutex
	during  map[string]int // per key: events delivered after the first failure
}

func newKeyedHandler() *keyedHandler {
	return &keyedHandler{order: keyorder.New(), during: map[string]int{}}
}

func (h *keyedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var data struct {
		Key string `json:"key"`
		N   int    `json:"n"`
	}
	if err := json.Unmarshal(body, &data); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if h.fail != nil && h.fail(data.Key, data.N) {
		h.failing.Store(true)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if h.failing.Load() {
		h.mu.Lock()
		h.during[data.Key]++
		h.mu.Unlock()
	}
	h.order.Observe(data.Key, data.N)
	w.WriteHeader(http.StatusOK)
}

func (h *keyedHandler) distinct() int {
	d, _, _ := h.order.Counts()
	return d
}

func (h *keyedHandler) violations() int {
	_, _, v := h.order.Counts()
	return v
}

// publishKeyed publishes perKey events for each of keys keys, interleaved, numbered
// from+1.. per key.
func (f *fixture) publishKeyed(t *testing.T, keys, from, perKey int) {
	for n := from + 1; n <= from+perKey; n++ {
		for k := range keys {
			f.publish(t, "order.placed", fmt.Sprintf(`{"key":"k%d","n":%d}`, k, n))
		}
	}
}

const keyedRule = `
name: by-customer
pattern: {type: [order.placed]}
target: {service: orders}
delivery:
  orderBy: data.key
  partitions: 4
  maxConcurrency: 8
  backoff: {initial: 200ms, max: 200ms}
`

func TestOrderByKeyHoldsBackOnlyTheFailingKey(t *testing.T) {
	f := setup(t)
	r := f.rule(t, keyedRule, nil)
	h := newKeyedHandler()
	var failures atomic.Int32
	h.fail = func(key string, n int) bool {
		// k3's first event fails twice; meanwhile the other keys keep going.
		return key == "k3" && n == 1 && failures.Add(1) <= 2
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.start(t, r, srv.URL)
	f.publishKeyed(t, 20, 0, 10)
	waitFor(t, "all 200 events delivered", func() bool { return h.distinct() == 200 })
	if v := h.violations(); v != 0 {
		t.Errorf("%d order violations", v)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if got := failures.Load(); got != 3 {
		t.Errorf("k3's first event was tried %d times, want 3 (two failures, then delivered)", got)
	}
	others := 0
	for k, n := range h.during {
		if k != "k3" {
			others += n
		}
	}
	if others == 0 {
		t.Error("no other key was delivered while k3 was failing: a failing event held back more than its key")
	}
}

func TestOrderByKeyAcrossReplicasHandingOver(t *testing.T) {
	f := setup(t)
	r := f.rule(t, keyedRule, nil)
	h := newKeyedHandler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	// Who is alive, as the sidecars' heartbeats would say.
	var mu sync.Mutex
	live := []string{"a"}
	members := func(self string) delivery.Option {
		return delivery.WithMembers(func() (string, []string) {
			mu.Lock()
			defer mu.Unlock()
			return self, append([]string(nil), live...)
		})
	}
	setLive := func(names ...string) {
		mu.Lock()
		live = names
		mu.Unlock()
	}
	stopA := f.startStoppable(t, r, srv.URL, members("a"))
	f.publishKeyed(t, 50, 0, 4)
	waitFor(t, "the first 200 events", func() bool { return h.distinct() == 200 })

	// b joins: a hands half the partitions over.
	f.startStoppable(t, r, srv.URL, members("b"))
	setLive("a", "b")
	f.publishKeyed(t, 50, 4, 4)
	time.Sleep(100 * time.Millisecond)
	f.publishKeyed(t, 50, 8, 4)
	waitFor(t, "600 events", func() bool { return h.distinct() == 600 })

	// a stops in the middle of a stream of events; b takes everything over.
	go f.publishKeyed(t, 50, 12, 8)
	time.Sleep(50 * time.Millisecond)
	stopA()
	setLive("b")
	waitFor(t, "1,000 events", func() bool { return h.distinct() == 1000 })
	if v := h.violations(); v != 0 {
		t.Errorf("%d order violations", v)
	}
}

// startStoppable is start with a way to stop the deliverer before the test ends.
func (f *fixture) startStoppable(t *testing.T, r rules.Rule, url string, opts ...delivery.Option) (stop func()) {
	t.Helper()
	target := &delivery.HTTPTarget{URL: delivery.JoinURL(url, r.Target.Path), Client: delivery.NewHTTPClient(r.Delivery.MaxConcurrency)}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := delivery.New(f.js, r, target, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/internal/keyorder"
)

// batchHandler takes CloudEvents batches and answers with per-event statuses.
type batchHandler struct {
	mu       sync.Mutex
	seen     map[string]int
	batches  []int
	badType  int
	hold     chan struct{} // when set, requests wait on it
	statusOf func(id string, seen int) string
	// order, when set, checks the order of the events' data n, the way a handler of an
	// ordered rule works: after an event it answers RETRY for, it takes none of the batch
	// (they come again after it).
	order *keyorder.Checker
}

func (h *batchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.hold != nil {
		<-h.hold
	}
	raw, _ := io.ReadAll(r.Body)
	var events []struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	h.mu.Lock()
	if r.Header.Get("Content-Type") != "application/cloudevents-batch+json" || json.Unmarshal(raw, &events) != nil {
		h.badType++
		h.mu.Unlock()
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	h.batches = append(h.batches, len(events))
	var statuses []string
	retrying := false
	for _, e := range events {
		h.seen[e.ID]++
		status := ""
		if h.statusOf != nil {
			status = h.statusOf(e.ID, h.seen[e.ID])
		}
		if status != "" {
			statuses = append(statuses, fmt.Sprintf(`{"id":%q,"status":%q}`, e.ID, status))
		}
		retrying = retrying || status == "RETRY"
		var data struct{ N int }
		if h.order != nil && !retrying && status == "" && json.Unmarshal(e.Data, &data) == nil {
			h.order.Observe("all", data.N)
		}
	}
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"statuses":[%s]}`, strings.Join(statuses, ","))
}

func (h *batchHandler) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[id]
}

func (h *batchHandler) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// TestBatchDelivery: a batch rule POSTs CloudEvents batches; a partly failed batch retries
// only the events the handler listed (each with its own attempts) and dead-letters the
// dropped one; every other event is delivered once.
func TestBatchDelivery(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `name: jobs
pattern: {type: [job.run]}
target: {service: worker}
delivery: {batch: {maxEvents: 10, maxWait: 50ms}, maxAttempts: 3, backoff: {initial: 200ms, max: 1s}}
`)
	h := &batchHandler{seen: map[string]int{}, statusOf: func(id string, seen int) string {
		switch {
		case (id == "job-00003" || id == "job-00007") && seen == 1:
			return "RETRY"
		case id == "job-00005":
			return "DROP"
		}
		return ""
	}}
	handler := httptest.NewServer(h)
	t.Cleanup(handler.Close)
	startSidecar(t, srv, "worker", handler.URL)
	ids := publishEvents(t, srv, "job", "job.run", 50, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	eventually(t, 20*time.Second, "every job handled", func() bool {
		return h.distinct() == 50 && h.count("job-00003") == 2 && h.count("job-00007") == 2
	})
	var dlq []dlqRow
	eventually(t, 10*time.Second, "the dropped job dead-lettered", func() bool {
		dlq = lsDLQ(t, srv, "--rule", "jobs")
		return len(dlq) == 1
	})
	if dlq[0].EventID != "job-00005" || dlq[0].Reason != "delivery_rejected" {
		t.Errorf("DLQ record %+v, want job-00005 delivery_rejected", dlq[0])
	}
	time.Sleep(500 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		want := 1
		if id == "job-00003" || id == "job-00007" {
			want = 2
		}
		if h.seen[id] != want {
			t.Errorf("%s handled %d times, want %d", id, h.seen[id], want)
		}
	}
	multi := 0
	for _, n := range h.batches {
		if n > 10 {
			t.Errorf("a batch of %d events, over maxEvents 10", n)
		}
		if n > 1 {
			multi++
		}
	}
	if multi == 0 || h.badType > 0 {
		t.Errorf("batches %v, %d requests that were not batches", h.batches, h.badType)
	}
	t.Logf("%d requests for %d deliveries: %v", len(h.batches), 52, h.batches)
}

// TestBatchSidecarKilledMidBatch: kill -9 of the sidecar while the handler holds a batch
// loses nothing: another sidecar delivers every event.
func TestBatchSidecarKilledMidBatch(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, "name: jobs\npattern: {type: [job.run]}\ntarget: {service: worker}\ndelivery: {batch: {maxEvents: 20, maxWait: 20ms}, timeout: 5s}\n")
	held := &batchHandler{seen: map[string]int{}, hold: make(chan struct{})}
	first := httptest.NewServer(held)
	t.Cleanup(func() { close(held.hold); first.Close() })
	sc := startSidecar(t, srv, "worker", first.URL)
	ids := publishEvents(t, srv, "job", "job.run", 100, func(int) string { return "{}" })
	time.Sleep(time.Second) // a batch is at the handler, which does not answer
	sc.kill()

	h := &batchHandler{seen: map[string]int{}}
	second := httptest.NewServer(h)
	t.Cleanup(second.Close)
	startSidecar(t, srv, "worker", second.URL)
	eventually(t, 60*time.Second, "every job delivered by the second sidecar", func() bool { return h.distinct() == 100 })
	for _, id := range ids {
		if h.count(id) < 1 {
			t.Errorf("%s lost", id)
		}
	}
}

// TestOrderedBatchDelivery: an ordered batch rule keeps the order through a partly
// failed batch: the event to retry and every later one are sent again, in order, once
// its backoff has passed; a dropped event is dead-lettered in place.
func TestOrderedBatchDelivery(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `name: ledger
pattern: {type: [entry.posted]}
target: {service: ledger}
delivery: {ordered: true, batch: {maxEvents: 10, maxWait: 50ms}, backoff: {initial: 200ms, max: 1s}}
`)
	h := &batchHandler{seen: map[string]int{}, order: keyorder.New(), statusOf: func(id string, seen int) string {
		switch {
		case (id == "entry-00003" || id == "entry-00017") && seen == 1:
			return "RETRY"
		case id == "entry-00025":
			return "DROP"
		}
		return ""
	}}
	handler := httptest.NewServer(h)
	t.Cleanup(handler.Close)
	startSidecar(t, srv, "ledger", handler.URL)
	publishEvents(t, srv, "entry", "entry.posted", 50, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	eventually(t, 20*time.Second, "every entry handled", func() bool { d, _, _ := h.order.Counts(); return d == 49 })
	distinct, _, violations := h.order.Counts()
	if violations != 0 {
		t.Errorf("%d entries arrived after a later one", violations)
	}
	h.mu.Lock()
	sent := 0
	for _, n := range h.batches {
		sent += n
	}
	h.mu.Unlock()
	if sent <= 50 {
		t.Errorf("%d events sent in batches %v: the entries after a failed one must be sent again", sent, h.batches)
	}
	if dlq := lsDLQ(t, srv, "--rule", "ledger"); len(dlq) != 1 || dlq[0].EventID != "entry-00025" {
		t.Errorf("DLQ %+v, want entry-00025 alone", dlq)
	}
	t.Logf("%d entries in order, %d sent in all: batches %v", distinct, sent, h.batches)
}

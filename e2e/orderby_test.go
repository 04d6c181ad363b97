package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/internal/keyorder"
)

// orderHandler is one replica of a service whose events carry {"key", "n"}: it checks each
// key's order in a checker the replicas share and counts what it delivered itself.
type orderHandler struct {
	order     *keyorder.Checker
	delivered atomic.Int64
}

func (h *orderHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var data struct {
		Key string `json:"key"`
		N   int    `json:"n"`
	}
	body, _ := io.ReadAll(r.Body)
	if json.Unmarshal(body, &data) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	time.Sleep(2 * time.Millisecond) // work, so that events are in flight when a replica dies
	h.order.Observe(data.Key, data.N)
	h.delivered.Add(1)
}

// TestOrderByKeyAcrossReplicas: with an orderBy rule and two sidecar replicas, the events
// of each key reach the service in the order they were published, both replicas deliver,
// and a kill -9 of one replica mid-stream (then its restart) loses nothing and breaks no
// key's order.
func TestOrderByKeyAcrossReplicas(t *testing.T) {
	const keys, perKey = 100, 30
	srv := startServer(t, t.TempDir(), anyType)
	applyRules(t, srv, `
name: accounts
pattern: {type: [account.changed]}
target: {service: ledger}
delivery: {orderBy: partitionkey, partitions: 4, maxConcurrency: 16}
`)
	order := keyorder.New()
	handlers := []*orderHandler{{order: order}, {order: order}, {order: order}}
	urls := make([]string, len(handlers))
	for i, h := range handlers {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		urls[i] = s.URL
	}
	first := startSidecar(t, srv, "ledger", urls[0])
	startSidecar(t, srv, "ledger", urls[1])
	waitReplicas(t, srv, "accounts", 2)

	publish := func(from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			var entries []string
			for k := range keys {
				id := fmt.Sprintf("acct-%03d-%03d", k, n)
				entries = append(entries, fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/e2e","type":"account.changed","partitionkey":"acct-%03d","data":{"key":"acct-%03d","n":%d}}`, id, k, k, n))
			}
			code, r, err := post(t, srv.httpURL(), "application/cloudevents-batch+json", nil, "["+strings.Join(entries, ",")+"]")
			if err != nil || code != 200 {
				t.Fatalf("publish: %d %+v %v", code, r, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish(1, 10)
	eventually(t, 60*time.Second, "the first 1,000 events", func() bool { d, _, _ := order.Counts(); return d == keys*10 })
	if handlers[0].delivered.Load() == 0 || handlers[1].delivered.Load() == 0 {
		t.Fatalf("one replica delivered everything (%d and %d): keys are not spread across replicas",
			handlers[0].delivered.Load(), handlers[1].delivered.Load())
	}

	// kill -9 one replica while events flow; start a new one after a while.
	go func() {
		time.Sleep(150 * time.Millisecond)
		first.kill()
	}()
	publish(11, 20)
	startSidecar(t, srv, "ledger", urls[2])
	publish(21, perKey)
	eventually(t, 90*time.Second, "every event delivered", func() bool { d, _, _ := order.Counts(); return d == keys*perKey })
	distinct, repeats, violations := order.Counts()
	t.Logf("%d events of %d keys delivered in order, %d repeated after the kill; per replica %d, %d, %d",
		distinct, keys, repeats, handlers[0].delivered.Load(), handlers[1].delivered.Load(), handlers[2].delivered.Load())
	if violations != 0 {
		t.Errorf("%d events arrived after a later event of their key", violations)
	}
	if handlers[2].delivered.Load() == 0 {
		t.Error("the restarted replica took no partition over")
	}
}

// waitReplicas waits until every sidecar of a rule reports seeing n replicas of it.
func waitReplicas(t *testing.T, srv *serverProc, rule string, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%d replicas seeing each other", n), func() bool {
		out, _, code := srv.cli(t, "", "status", "-o", "json")
		var rep struct {
			Sidecars []struct {
				Replicas map[string]int `json:"replicas"`
			} `json:"sidecars"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Sidecars) != n {
			return false
		}
		for _, sc := range rep.Sidecars {
			if sc.Replicas[rule] != n {
				return false
			}
		}
		return true
	})
}

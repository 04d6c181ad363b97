package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Clients that open connections and send nothing, or send their body a byte a second,
// used to take every in-flight slot of the ingress (and with it the NATS ingress: all
// publishing stopped for 60 s) and, 64 of them, block a sidecar's publish endpoint for
// ever. The attack from the issue, against both.
const (
	idleConns     = 2000
	tricklingPOST = 500
	samples       = 1000
)

// TestHostileClientsCannotStallPublishing: with 2,000 idle connections and 500 trickling
// bodies open against the server and against a sidecar, a normal publisher on each keeps
// at least 99% success and a p99 within 10× the one it had before the attack.
func TestHostileClientsCannotStallPublishing(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*2*(idleConns+tricklingPOST)+1000 {
		t.Fatalf("this test holds %d sockets; the open-file limit is %d", 2*2*(idleConns+tricklingPOST), lim.Cur)
	}
	srv := startServer(t, t.TempDir(), anyType)
	handler := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(handler.Close)
	sc := startSidecar(t, srv, "loadsvc", handler.URL)
	targets := map[string]string{"server": srv.httpURL() + "/v1/events", "sidecar": "http://" + sc.listen + "/v1/events"}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	publish := func(url string, id string) (time.Duration, bool) {
		body := `{"specversion":"1.0","id":"` + id + `","source":"/load","type":"load.tick","data":{"n":1}}`
		began := time.Now()
		res, err := client.Post(url, "application/cloudevents+json", strings.NewReader(body))
		took := time.Since(began)
		if err != nil {
			return took, false
		}
		res.Body.Close()
		return took, res.StatusCode == http.StatusOK
	}
	measure := func(name, url, phase string) (p99 time.Duration, success float64) {
		var lat []time.Duration
		ok := 0
		for i := range samples {
			took, good := publish(url, fmt.Sprintf("%s-%s-%d", name, phase, i))
			lat = append(lat, took)
			if good {
				ok++
			}
		}
		slices.Sort(lat)
		return lat[len(lat)*99/100], float64(ok) / samples
	}

	unloaded := map[string]time.Duration{}
	for name, url := range targets {
		measure(name, url, "warm")
		p99, success := measure(name, url, "before")
		if success != 1 {
			t.Fatalf("%s: %.1f%% success before any attack", name, 100*success)
		}
		unloaded[name] = p99
	}

	ctx, stop := context.WithCancel(context.Background())
	var attackers sync.WaitGroup
	t.Cleanup(func() { stop(); attackers.Wait() })
	for name, url := range targets {
		host := strings.TrimPrefix(strings.TrimSuffix(url, "/v1/events"), "http://")
		opened := attack(t, ctx, &attackers, host)
		t.Logf("%s: %d idle connections and %d trickling bodies open", name, opened.idle, opened.trickling)
	}

	for name, url := range targets {
		p99, success := measure(name, url, "under-attack")
		t.Logf("%s: p99 %v before the attack, %v under it; %.2f%% success", name, unloaded[name], p99, 100*success)
		if success < 0.99 {
			t.Errorf("%s: %.2f%% of publishes succeeded under attack, want ≥ 99%%", name, 100*success)
		}
		if p99 > 10*unloaded[name] {
			t.Errorf("%s: p99 %v under attack, over 10× the unloaded %v", name, p99, unloaded[name])
		}
	}
}

type opened struct{ idle, trickling int }

// attack opens the idle connections and the trickling requests against host and keeps
// them open (one byte a second per trickling body) until ctx ends.
func attack(t *testing.T, ctx context.Context, wg *sync.WaitGroup, host string) opened {
	t.Helper()
	var o opened
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatalf("opening attack connection %d to %s: %v", o.idle+o.trickling, host, err)
		}
		context.AfterFunc(ctx, func() { c.Close() })
		return c
	}
	for range idleConns {
		dial()
		o.idle++
	}
	for range tricklingPOST {
		c := dial()
		head := "POST /v1/events HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 100000\r\n\r\n{"
		if _, err := c.Write([]byte(head)); err != nil {
			t.Fatalf("trickling request: %v", err)
		}
		o.trickling++
		wg.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if _, err := c.Write([]byte(" ")); err != nil {
						return // cut off by the server's body deadline: as it should be
					}
				}
			}
		})
	}
	return o
}

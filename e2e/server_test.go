package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/dlq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type publishResult struct {
	FailedEntryCount int `json:"failedEntryCount"`
	Entries          []struct {
		ID        string `json:"id"`
		ErrorCode string `json:"errorCode"`
	} `json:"entries"`
}

func post(t *testing.T, url, contentType string, header map[string]string, body string) (int, publishResult, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, publishResult{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, publishResult{}, err
	}
	var r publishResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return res.StatusCode, r, fmt.Errorf("response %q: %w", raw, err)
	}
	return res.StatusCode, r, nil
}

func ce(id, typ, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/e2e","type":%q,"data":%s}`, id, typ, data)
}

// readStream returns every message of a stream, in order.
func readStream(t *testing.T, natsURL, stream string) []jetstream.Msg {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	last := st.CachedInfo().State.LastSeq
	// A plain ephemeral consumer, created with a short deadline per attempt. Right after a
	// cluster node dies, JetStream may still place an R1 consumer on it and the create then
	// times out; a fresh attempt gets a fresh placement. (An ordered consumer retries under
	// the same name and can hang forever there.)
	var cons jetstream.Consumer
	for began := time.Now(); ; {
		attempt, cancelAttempt := context.WithTimeout(ctx, 3*time.Second)
		cons, err = st.CreateConsumer(attempt, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy,
			InactiveThreshold: time.Minute, Replicas: 1, MemoryStorage: true})
		cancelAttempt()
		if err == nil {
			break
		}
		if time.Since(began) > 45*time.Second {
			t.Fatalf("consumer on %s: %v", stream, err)
		}
		t.Logf("consumer on %s: %v (retrying)", stream, err)
	}
	var out []jetstream.Msg
	for len(out) > 0 && mustSeq(t, out[len(out)-1]) < last || len(out) == 0 && last > 0 {
		// Ask for no more than remain, or Fetch waits out its deadline for the rest.
		remain := last
		if len(out) > 0 {
			remain = last - mustSeq(t, out[len(out)-1])
		}
		batch, err := cons.Fetch(int(min(remain, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetching %s after %d of %d: %v", stream, len(out), last, err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			t.Fatalf("%s: stuck at %d of %d messages", stream, len(out), last)
		}
	}
	return out
}

func mustSeq(t *testing.T, m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	return md.Sequence.Stream
}

// publishUnderLoad runs four publishers posting batches of 20 events to srv while stop
// runs, until stop returns and the server is gone, and returns the ids it saw accepted.
func publishUnderLoad(t *testing.T, srv *serverProc, stop func()) map[string]bool {
	t.Helper()
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		wg       sync.WaitGroup
		done     atomic.Bool
	)
	for g := range 4 {
		wg.Go(func() {
			for n := 0; !done.Load(); n++ {
				entries := make([]string, 20)
				for i := range entries {
					entries[i] = ce(fmt.Sprintf("load-%d-%d-%d", g, n, i), "load.tick", fmt.Sprintf(`{"g":%d,"n":%d}`, g, n))
				}
				code, r, err := post(t, srv.httpURL(), "application/cloudevents-batch+json", nil, "["+strings.Join(entries, ",")+"]")
				if err != nil {
					return // the server is gone
				}
				if code != 200 {
					continue // not accepted: nothing promised
				}
				mu.Lock()
				for _, e := range r.Entries {
					accepted[e.ID] = true
				}
				mu.Unlock()
			}
		})
	}
	stop()
	done.Store(true)
	wg.Wait()
	t.Logf("accepted %d events under load", len(accepted))
	if len(accepted) < 100 {
		t.Fatalf("only %d events accepted under load; the test proves nothing", len(accepted))
	}
	return accepted
}

// storedIDs counts the events in EVENTS by id.
func storedIDs(t *testing.T, srv *serverProc) map[string]int {
	t.Helper()
	stored := map[string]int{}
	for _, m := range readStream(t, srv.natsURL(), "EVENTS") {
		stored[m.Headers().Get("ce-id")]++
	}
	return stored
}

// TestKillNineKeepsEveryAcceptedEvent publishes over HTTP (single, binary, batch) and the
// CLI, then SIGKILLs the server in the middle of a concurrent publish load, restarts it on
// the same data directory, and checks that every accepted event is there exactly once and
// that every rejected one is in the DLQ and not in EVENTS.
func TestKillNineKeepsEveryAcceptedEvent(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, anyType)
	accepted := map[string]bool{}
	rejected := map[string]bool{}

	// Known publishes: every ingress form, good and bad.
	if code, r, err := post(t, srv.httpURL(), "application/cloudevents+json", nil, ce("s-ok", "orders.created", `{"n":1}`)); err != nil || code != 200 {
		t.Fatalf("structured: %d %+v %v", code, r, err)
	}
	accepted["s-ok"] = true
	if code, _, _ := post(t, srv.httpURL(), "application/cloudevents+json", nil, ce("s-bad", "Orders", `{}`)); code != 400 {
		t.Fatalf("bad structured: %d", code)
	}
	rejected["s-bad"] = true
	bin := map[string]string{"ce-specversion": "1.0", "ce-id": "b-ok", "ce-source": "/e2e", "ce-type": "orders.paid"}
	if code, _, err := post(t, srv.httpURL(), "application/json", bin, `{"paid":true}`); err != nil || code != 200 {
		t.Fatalf("binary: %d %v", code, err)
	}
	accepted["b-ok"] = true
	bin["ce-id"] = "b-bad"
	if code, _, _ := post(t, srv.httpURL(), "application/json", bin, `{"paid":`); code != 400 {
		t.Fatalf("bad binary: %d", code)
	}
	rejected["b-bad"] = true
	batch := []string{ce("batch-1", "a.b", "1"), ce("batch-bad", "a..b", "1"), ce("batch-2", "a.c", `"x"`)}
	if code, r, err := post(t, srv.httpURL(), "application/cloudevents-batch+json", nil, "["+strings.Join(batch, ",")+"]"); err != nil || code != 207 || r.FailedEntryCount != 1 {
		t.Fatalf("batch: %d %+v %v", code, r, err)
	}
	accepted["batch-1"], accepted["batch-2"], rejected["batch-bad"] = true, true, true
	if out, errOut, code := srv.cli(t, "", "publish", "--type", "orders.created", "--source", "/cli", "--id", "cli-ok", "--data", `{"n":2}`); code != 0 || strings.TrimSpace(out) != "cli-ok" {
		t.Fatalf("cli publish: %d %q %q", code, out, errOut)
	}
	accepted["cli-ok"] = true
	if _, errOut, code := srv.cli(t, "", "publish", "--type", "orders.created", "--source", "/cli", "--id", "cli-bad", "--data", `{"n":`); code != 2 || !strings.Contains(errOut, "data: datacontenttype is application/json but data is not valid JSON") {
		t.Fatalf("cli bad publish: exit %d, %q", code, errOut)
	}
	rejected["cli-bad"] = true

	// Load: publishers send batches until the server dies under them.
	loaded := publishUnderLoad(t, srv, func() {
		time.Sleep(1500 * time.Millisecond)
		srv.kill()
	})
	for id := range loaded {
		accepted[id] = true
	}

	srv = startServer(t, dataDir, anyType)
	stored := storedIDs(t, srv)
	for id := range accepted {
		if stored[id] != 1 {
			t.Errorf("accepted event %s stored %d times after kill -9", id, stored[id])
		}
	}
	for id := range rejected {
		if stored[id] != 0 {
			t.Errorf("rejected event %s is in EVENTS", id)
		}
	}
	inDLQ := map[string]bool{}
	for _, m := range readStream(t, srv.natsURL(), "DLQ") {
		rec, err := dlq.Parse(m.Headers(), m.Data())
		if err != nil {
			t.Fatal(err)
		}
		for id := range rejected {
			if rec.Header["ce-id"] != nil && rec.Header["ce-id"][0] == id || bytes.Contains(rec.Body, []byte(`"id":"`+id+`"`)) {
				inDLQ[id] = true
				if rec.Reason == "" || rec.Error == "" {
					t.Errorf("DLQ record of %s has no reason: %+v", id, rec)
				}
			}
		}
	}
	for id := range rejected {
		if !inDLQ[id] {
			t.Errorf("rejected event %s has no DLQ record", id)
		}
	}
}

// TestSIGTERMDrainsUnderLoad stops the server with SIGTERM while publishers are busy: it
// must exit 0, and every event it answered as accepted must be there after a restart.
func TestSIGTERMDrainsUnderLoad(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, anyType)
	accepted := publishUnderLoad(t, srv, func() {
		time.Sleep(time.Second)
		if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-srv.done:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, srv.log)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("still running 20s after SIGTERM")
		}
	})
	for _, want := range []string{"draining", "jetmesh server stopped"} {
		if !strings.Contains(srv.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, srv.log)
		}
	}
	stored := storedIDs(t, startServer(t, dataDir))
	for id := range accepted {
		if stored[id] != 1 {
			t.Errorf("accepted event %s stored %d times after SIGTERM", id, stored[id])
		}
	}
}

func TestConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "jetmesh.yaml")
	// The file asks for a port the flags then override; flags win.
	if err := os.WriteFile(cfgPath, []byte("nats: 127.0.0.1:1\nstreams:\n  eventsMaxAge: 3d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, filepath.Join(dir, "data"), "--config", cfgPath)
	out, _, code := srv.cli(t, "", "streams", "info", "EVENTS", "-o", "json")
	var info struct {
		Config struct {
			MaxAge time.Duration `json:"max_age"`
		} `json:"config"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.Config.MaxAge != 72*time.Hour {
		t.Fatalf("EVENTS max age from the config file: exit %d, %s", code, out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("streams:\n  replicas: 9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := srv.cli(t, "", "server", "--config", bad, "--data", filepath.Join(dir, "d2"))
	if code != 2 || !strings.Contains(errOut, "streams.replicas must be between 1 and 5, got 9") {
		t.Fatalf("bad config: exit %d, %q", code, errOut)
	}
}

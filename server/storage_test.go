package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/ingress"
	"github.com/jetmesh/jetmesh/internal/servertest"
	"github.com/jetmesh/jetmesh/server"
)

// storageCfg is a server that stores any type, on fresh ports.
func storageCfg(t *testing.T, dataDir string) server.Config {
	cfg := servertest.Config(t)
	cfg.DataDir = dataDir
	return cfg
}

func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ Reason string }
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &body)
	return res.StatusCode, body.Reason
}

// eventually polls cond every 50 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

func bigEvent(id string, size int) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"/t","type":"big.blob","data":"` + strings.Repeat("x", size) + `"}`
}

// TestReadyzFollowsStorage: while JetStream refuses to store (its store limit reached),
// /readyz says 503 with the reason and publishes are refused at once rather than each
// waiting out the publish timeout; once space is freed, publishing and readiness come back
// without a restart.
func TestReadyzFollowsStorage(t *testing.T) {
	cfg := storageCfg(t, t.TempDir())
	cfg.MaxStore, cfg.DLQ.MaxBytes = 8<<20, 1<<20
	srv, _ := startWith(t, cfg)
	base := "http://" + srv.HTTPAddr()
	var failed ingress.Response
	for i := 0; ; i++ {
		code, resp := publishHTTP(t, base, bigEvent(fmt.Sprintf("fill-%d", i), 200<<10))
		if code == http.StatusServiceUnavailable {
			failed = resp
			break
		}
		if code != http.StatusOK || i > 200 {
			t.Fatalf("publish %d: %d %+v", i, code, resp)
		}
	}
	t.Logf("store full: %s", failed.Entries[0].ErrorMessage)
	if code, reason := readyz(t, base); code != http.StatusServiceUnavailable || !strings.Contains(reason, "cannot be stored") {
		t.Fatalf("readyz while storage fails: %d %q", code, reason)
	}
	code, resp := publishHTTP(t, base, bigEvent("fast-refusal", 10))
	if code != http.StatusServiceUnavailable || !strings.Contains(resp.Entries[0].ErrorMessage, "events cannot be stored since") {
		t.Fatalf("a publish while storage is known broken: %d %+v, want refused at once with the known reason", code, resp)
	}

	st, err := clientJS(t, srv).Stream(context.Background(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "publishing after space was freed", func() bool {
		code, _ := publishHTTP(t, base, bigEvent(fmt.Sprintf("after-%d", time.Now().UnixNano()), 10))
		return code == http.StatusOK
	})
	if code, reason := readyz(t, base); code != http.StatusOK {
		t.Fatalf("readyz after healing: %d %q", code, reason)
	}
}

// TestDeletedStreamsComeBack: EVENTS and DLQ deleted by hand are recreated by the server,
// and /readyz says 503 until they are.
func TestDeletedStreamsComeBack(t *testing.T) {
	srv, _ := startWith(t, storageCfg(t, t.TempDir()))
	base := "http://" + srv.HTTPAddr()
	js := clientJS(t, srv)
	ctx := context.Background()
	for _, name := range []string{bus.EventsStream, bus.DLQStream} {
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	sawDown := false
	eventually(t, 15*time.Second, "a publish after EVENTS and DLQ were deleted", func() bool {
		if code, _ := readyz(t, base); code == http.StatusServiceUnavailable {
			sawDown = true
		}
		code, _ := publishHTTP(t, base, bigEvent(fmt.Sprintf("back-%d", time.Now().UnixNano()), 10))
		return code == http.StatusOK
	})
	if !sawDown {
		t.Log("readyz was never seen at 503: the streams came back between two polls")
	}
	for _, name := range []string{bus.EventsStream, bus.DLQStream} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	if code, reason := readyz(t, base); code != http.StatusOK {
		t.Fatalf("readyz after the streams came back: %d %q", code, reason)
	}
	if code, _ := publishHTTP(t, base, `{"specversion":"1.0","id":"x","source":"/t","type":"Bad"}`); code != http.StatusBadRequest {
		t.Fatalf("rejection: %d", code)
	}
	if st, _ := js.Stream(ctx, bus.DLQStream); st.CachedInfo().State.Msgs == 0 {
		t.Error("the recreated DLQ got no record")
	}
}

// TestDLQByteCap: the DLQ stream keeps at most dlq.maxBytes, discards the oldest records
// first, and counts them.
func TestDLQByteCap(t *testing.T) {
	cfg := storageCfg(t, t.TempDir())
	cfg.DLQ.MaxBytes = 1 << 20
	srv, _ := startWith(t, cfg)
	base := "http://" + srv.HTTPAddr()
	for i := range 150 {
		body := `{"specversion":"1.0","id":"r-` + fmt.Sprint(i) + `","source":"/t","type":"Refused","data":"` + strings.Repeat("x", 10<<10) + `"}`
		if code, _ := publishHTTP(t, base, body); code != http.StatusBadRequest {
			t.Fatalf("rejection %d: %d", i, code)
		}
	}
	st, err := clientJS(t, srv).Stream(context.Background(), bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	state := st.CachedInfo().State
	if state.Bytes > 1<<20 || state.FirstSeq == 1 || state.LastSeq != 150 {
		t.Fatalf("DLQ state %+v: want at most 1 MiB, the oldest gone, the newest kept", state)
	}
	eventually(t, 10*time.Second, "discards counted", func() bool {
		res, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		want := fmt.Sprintf("jetmesh_dlq_discarded_total %d", state.FirstSeq-1)
		return strings.Contains(string(raw), want)
	})
}

// TestHealsAfterDiskFull: a data directory that fills up (ENOSPC) breaks JetStream's store
// for good (nats-server never clears the write error); once space is freed the server
// restarts its store and publishing resumes without a process restart. Needs a small
// tmpfs, so it runs where the test may mount one (root, as in CI).
func TestHealsAfterDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=24m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	cfg := storageCfg(t, filepath.Join(dir, "data"))
	cfg.MaxStore, cfg.DLQ.MaxBytes = 1<<30, 1<<20 // JetStream's own limit is not what stops it
	srv, _ := servertest.Start(t, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	base := "http://" + srv.HTTPAddr()
	if code, _ := publishHTTP(t, base, bigEvent("before", 10)); code != http.StatusOK {
		t.Fatalf("publish before the disk filled: %d", code)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 256<<10)); err != nil {
			break // ENOSPC
		}
	}
	f.Close()
	eventually(t, 20*time.Second, "publishing to fail on the full disk", func() bool {
		code, _ := publishHTTP(t, base, bigEvent(fmt.Sprintf("full-%d", time.Now().UnixNano()), 64<<10))
		return code == http.StatusServiceUnavailable
	})
	if code, _ := readyz(t, base); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz on a full disk: %d", code)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "publishing after the disk was freed", func() bool {
		code, _ := publishHTTP(t, base, bigEvent(fmt.Sprintf("freed-%d", time.Now().UnixNano()), 10))
		return code == http.StatusOK
	})
	eventually(t, 10*time.Second, "readyz after healing", func() bool { code, _ := readyz(t, base); return code == http.StatusOK })
}

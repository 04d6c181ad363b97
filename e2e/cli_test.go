package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCLI(t *testing.T) {
	srv := startServer(t, t.TempDir(), anyType)

	t.Run("publish prints a fresh id", func(t *testing.T) {
		out, errOut, code := srv.cli(t, "", "publish", "--type", "orders.created", "--source", "/shop", "--data", `{"amount":120}`)
		if id := strings.TrimSpace(out); code != 0 || len(id) != 36 {
			t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
		}
	})
	t.Run("publish from a file and from stdin", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "order.json")
		if err := os.WriteFile(file, []byte(`{"from":"file"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, _, code := srv.cli(t, "", "publish", "--type", "orders.created", "--source", "/f", "--id", "from-file", "--data", "@"+file); code != 0 || strings.TrimSpace(out) != "from-file" {
			t.Fatalf("file: exit %d %q", code, out)
		}
		if out, _, code := srv.cli(t, `{"from":"stdin"}`, "publish", "--type", "orders.created", "--source", "/f", "--id", "from-stdin", "--data", "-"); code != 0 || strings.TrimSpace(out) != "from-stdin" {
			t.Fatalf("stdin: exit %d %q", code, out)
		}
		if _, errOut, code := srv.cli(t, "", "publish", "--type", "a", "--source", "/f", "--data", "@/no/such/file"); code != 2 || !strings.Contains(errOut, "no such file") {
			t.Fatalf("missing file: exit %d %q", code, errOut)
		}
	})
	t.Run("duplicate id is accepted once, with a note", func(t *testing.T) {
		args := []string{"publish", "--type", "orders.created", "--source", "/d", "--id", "dup-cli", "--data", "{}"}
		srv.cli(t, "", args...)
		out, errOut, code := srv.cli(t, "", args...)
		if code != 0 || strings.TrimSpace(out) != "dup-cli" || !strings.Contains(errOut, "duplicate") {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("rejection exits 2 with the server's reason", func(t *testing.T) {
		cases := []struct{ args, want []string }{
			{[]string{"--type", "Orders", "--source", "/s"}, []string{"rejected (invalid_event)", `type: "Orders" has character 'O'`}},
			{[]string{"--type", "a", "--source", "/s", "--time", "yesterday"}, []string{"time: must be an RFC 3339 timestamp"}},
			{[]string{"--type", "a", "--source", "/s", "--data", "{"}, []string{"data: datacontenttype is application/json but data is not valid JSON"}},
			{[]string{"--type", "a", "--source", "/s", "--ext", "Bad-Name=1"}, []string{"rejected (invalid_event)", "extension attribute names"}},
			{[]string{"--type", "a"}, []string{"--type and --source are required"}},
			// The CLI applies exactly the ingress's rules: nothing replaced, lower-cased or let through.
			{[]string{"--type", "a", "--source", "/s", "--ext", "id=X"}, []string{"rejected (invalid_event)", "id: appears more than once"}},
			{[]string{"--type", "a", "--source", "/s", "--ext", "type=T"}, []string{"rejected (invalid_event)", "type: appears more than once"}},
			{[]string{"--type", "a", "--source", "/s", "--ext", "Bad=1"}, []string{"rejected (invalid_event)", "Bad: extension attribute names"}},
			{[]string{"--type", "a", "--source", "/s", "--id", "a\nb"}, []string{"rejected (invalid_event)", "id: must not contain control characters"}},
			{[]string{"--type", "a", "--source", "/s", "--id", "a\xffb"}, []string{"rejected (invalid_event)", "id: is not Unicode text (RFC 8259)"}},
			{[]string{"--type", "orders.créé", "--source", "/s"}, []string{"rejected (invalid_event)", `has character 'é'`}},
		}
		for _, c := range cases {
			_, errOut, code := srv.cli(t, "", append([]string{"publish"}, c.args...)...)
			if code != 2 {
				t.Errorf("%v: exit %d, want 2 (%s)", c.args, code, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("%v: stderr %q lacks %q", c.args, errOut, w)
				}
			}
		}
	})
	t.Run("publish -o json prints the full answer", func(t *testing.T) {
		out, _, code := srv.cli(t, "", "publish", "-o", "json", "--type", "a.b", "--source", "/s", "--id", "json-1")
		var r publishResult
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Entries[0].ID != "json-1" {
			t.Fatalf("exit %d %q", code, out)
		}
	})
	t.Run("streams ls and info", func(t *testing.T) {
		out, _, code := srv.cli(t, "", "streams", "ls")
		if code != 0 || !strings.Contains(out, "EVENTS") || !strings.Contains(out, "DLQ") || !strings.Contains(out, "MESSAGES") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		out, _, code = srv.cli(t, "", "streams", "ls", "-o", "json")
		var rows []struct {
			Name     string `json:"name"`
			Messages uint64 `json:"messages"`
		}
		// EVENTS, DLQ, EVENT_IDS and the seven KV buckets (mesh-rules, mesh-schemas,
		// mesh-principals, mesh-redrives, mesh-replays, mesh-retries, mesh-presence).
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 10 {
			t.Fatalf("exit %d: %s", code, out)
		}
		out, _, code = srv.cli(t, "", "streams", "info", "DLQ")
		if code != 0 || !strings.Contains(out, "dlq.>") || !strings.Contains(out, "336h0m0s") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if _, errOut, code := srv.cli(t, "", "streams", "info", "NOPE"); code != 1 || !strings.Contains(errOut, `stream "NOPE" not found`) {
			t.Fatalf("missing stream: exit %d %q", code, errOut)
		}
	})
	t.Run("tail replays, filters by type pattern, and prints JSON", func(t *testing.T) {
		srv.cli(t, "", "publish", "--type", "billing.invoice.paid", "--source", "/b", "--id", "inv-1", "--subject", "i-1", "--data", `{"total":9}`)
		out, errOut, code := srv.cli(t, "", "tail", "billing.>", "--all", "-n", "1", "-o", "json")
		var ev map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &ev) != nil {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
		if ev["id"] != "inv-1" || ev["type"] != "billing.invoice.paid" || ev["subject"] != "i-1" || ev["data"].(map[string]any)["total"] != 9.0 {
			t.Errorf("event %v", ev)
		}
		out, _, code = srv.cli(t, "", "tail", "billing.*.paid", "--since", "1h", "-n", "1")
		if code != 0 || !strings.Contains(out, "billing.invoice.paid id=inv-1 source=/b subject=i-1 {\"total\":9}") {
			t.Errorf("text tail: exit %d %q", code, out)
		}
		if _, errOut, code := srv.cli(t, "", "tail", "billing.>.x"); code != 2 || !strings.Contains(errOut, "'>' must be the last token") {
			t.Errorf("bad pattern: exit %d %q", code, errOut)
		}
	})
	t.Run("tail follows new events", func(t *testing.T) {
		cmd := exec.Command(binary, "tail", "live.>", "-n", "1")
		cmd.Env = append(os.Environ(), "JETMESH_SERVER="+srv.natsURL())
		out := &lockedBuffer{}
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(15 * time.Second)
		for n := 0; ; n++ {
			// Publish until tail has attached and seen one (it only shows new events).
			srv.cli(t, "", "publish", "--type", "live.tick", "--source", "/l", "--data", "{}")
			select {
			case err := <-done:
				if err != nil || !strings.Contains(out.String(), "live.tick") {
					t.Fatalf("tail: %v %q", err, out)
				}
				return
			case <-deadline:
				_ = cmd.Process.Kill()
				t.Fatal("tail saw nothing in 15s")
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	t.Run("dlq ls and show explain every rejection", func(t *testing.T) {
		srv.cli(t, "", "publish", "--type", "Bad.Type", "--source", "/d", "--id", "dlq-cli", "--data", "{}")
		if code, _, _ := post(t, srv.httpURL(), "application/cloudevents+json", nil, ce("dlq-http", "a", `{}`)[:20]); code != 400 {
			t.Fatalf("malformed publish: %d", code)
		}
		out, _, code := srv.cli(t, "", "dlq", "ls")
		if code != 0 || !strings.Contains(out, "invalid_event") || !strings.Contains(out, "dlq-cli") || !strings.Contains(out, "malformed") {
			t.Fatalf("dlq ls: exit %d\n%s", code, out)
		}
		out, _, code = srv.cli(t, "", "dlq", "ls", "--reason", "invalid_event", "-n", "1", "-o", "json")
		var recs []struct {
			Sequence uint64 `json:"sequence"`
			Reason   string `json:"reason"`
			Field    string `json:"field"`
			EventID  string `json:"eventId"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 1 || recs[0].EventID != "dlq-cli" || recs[0].Field != "type" {
			t.Fatalf("dlq ls -o json: exit %d %s", code, out)
		}
		out, _, code = srv.cli(t, "", "dlq", "show", fmt.Sprint(recs[0].Sequence))
		if code != 0 || !strings.Contains(out, `type: "Bad.Type" has character 'B'`) || !strings.Contains(out, "Event id             dlq-cli") || !strings.Contains(out, "Original body:") {
			t.Fatalf("dlq show: exit %d\n%s", code, out)
		}
		// A rejected body is shown, never played: its escape sequences stay text.
		if code, _, _ := post(t, srv.httpURL(), "text/plain", nil, "\x1b]0;pwned\x07\x1b[2J\u009b31m"); code != 415 {
			t.Fatalf("hostile body: %d", code)
		}
		out, _, _ = srv.cli(t, "", "dlq", "ls", "--reason", "unsupported_media_type", "-n", "1", "-o", "json")
		if json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 1 {
			t.Fatalf("dlq ls: %s", out)
		}
		out, _, _ = srv.cli(t, "", "dlq", "show", fmt.Sprint(recs[0].Sequence))
		if strings.ContainsAny(out, "\x1b\x07\u009b") || !strings.Contains(out, `\u001b]0;pwned`) {
			t.Fatalf("dlq show printed control characters raw:\n%q", out)
		}
		if _, errOut, code := srv.cli(t, "", "dlq", "show", "999999"); code != 1 || !strings.Contains(errOut, "no DLQ record #999999") {
			t.Fatalf("missing record: exit %d %q", code, errOut)
		}
		if _, _, code := srv.cli(t, "", "dlq", "show", "x"); code != 2 {
			t.Fatalf("bad sequence: exit %d", code)
		}
	})
	t.Run("unreachable server exits 1 with a hint", func(t *testing.T) {
		_, errOut, code := srv.cli(t, "", "--server", "nats://127.0.0.1:1", "streams", "ls")
		if code != 1 || !strings.Contains(errOut, "is `jetmesh server` running?") {
			t.Fatalf("exit %d %q", code, errOut)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{"bogus"}, {"streams", "bogus"}, {"publish", "--nope"}, {"-o", "yaml", "streams", "ls"}, {"streams", "info"}} {
			if _, errOut, code := srv.cli(t, "", args...); code != 2 || errOut == "" {
				t.Errorf("%v: exit %d %q", args, code, errOut)
			}
		}
	})
}

// TestHelpTeaches checks every command has a description and an example.
func TestHelpTeaches(t *testing.T) {
	srv := &serverProc{natsAddr: "127.0.0.1:1"}
	for _, path := range [][]string{{}, {"server"}, {"publish"}, {"streams"}, {"streams", "ls"}, {"streams", "info"}, {"tail"}, {"dlq"}, {"dlq", "ls"}, {"dlq", "show"},
		{"schemas"}, {"schemas", "check"}, {"schemas", "push"}, {"rules"}, {"rules", "test-pattern"}, {"rules", "apply"}} {
		out, _, code := srv.cli(t, "", append(path, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "jetmesh") {
			t.Errorf("jetmesh %v --help: exit %d", path, code)
		}
		if len(path) > 0 && !strings.Contains(out, "Examples:") {
			t.Errorf("jetmesh %v --help has no example", path)
		}
	}
}

// TestQuickStart runs the README's quick start script exactly as a new user would.
func TestQuickStart(t *testing.T) {
	cmd := exec.Command("bash", "../scripts/demo.sh")
	cmd.Env = append(os.Environ(), "JETMESH_DEMO_NATS="+freeAddr(t), "JETMESH_DEMO_HTTP="+freeAddr(t),
		"JETMESH_DEMO_SERVICE="+freeAddr(t), "JETMESH_DEMO_SIDECAR="+freeAddr(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"jetmesh server ready", "ok: 4 types, 5 versions", "pushed 5 versions",
		"orders.created id=", "payments.captured id=pay-1", "rejected (schema_invalid): data: does not match orders.created v2",
		"rejected (unknown_type)", "rejected (invalid_event)", "(exit code 2)", "KV_mesh-schemas", "schema_invalid  nats",
		"created   billing-big-orders", "billing-big-orders  billing  /orders    evt.orders.created     ready     1",
		"billing: orders.created", "order o-1, 120.00 EUR", "order o-3, 250.00 EUR", `"id":"o-3"`,
		"billing-big-orders  billing  /orders    evt.orders.created     ready     0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quick start output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "order o-4") {
		t.Errorf("the 9.00 EUR order reached billing, though its rule's pattern does not match:\n%s", out)
	}
}

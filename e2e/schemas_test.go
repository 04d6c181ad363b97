package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyDir copies a catalog so a test can change it.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, what string, code, wantCode int, out string, wants ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d\n%s", what, code, wantCode, out)
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q\n%s", what, w, out)
		}
	}
}

// TestSchemas walks the schema workflow with real processes: check a catalog as CI would,
// push it to a running server, publish valid and invalid events, read the DLQ, and see
// that pushed versions are immutable and breaking versions need --allow-breaking.
func TestSchemas(t *testing.T) {
	srv := startServer(t, t.TempDir())
	run := func(stdin string, args ...string) (string, int) {
		out, errOut, code := srv.cli(t, stdin, args...)
		return out + errOut, code
	}
	const example = "../examples/catalog"

	out, code := run("", "schemas", "check", example)
	expect(t, "check example", code, 0, out, "ok: 4 types, 5 versions")
	out, code = run("", "schemas", "check", "../schemas/testdata/broken")
	expect(t, "check broken", code, 1, out, "stray.json: /: layout:", "gap.type/v3.json: /: version-gap:", "bad.schema/v1.json: /: schema:", "schema check failed: 7 problems")
	out, code = run("", "schemas", "check")
	expect(t, "check without DIR", code, 2, out, "takes DIR")

	breaking := t.TempDir()
	copyDir(t, example, breaking)
	writeFile(t, filepath.Join(breaking, "orders.created", "v3.json"),
		`{"type":"object","properties":{"orderId":{"type":"string","minLength":1},"customerId":{"type":"string"},"total":{"$ref":"../money/v1.json"},"coupon":{"type":"string","maxLength":16}},"required":["orderId","customerId","total","coupon"],"additionalProperties":false}`)
	out, code = run("", "schemas", "check", breaking)
	expect(t, "check breaking", code, 1, out,
		"orders.created/v3.json: /required: required-added: property \"coupon\" is now required",
		"orders.created/v3.json: /properties/coupon/maxLength: max-length-lowered: maxLength lowered from 32 to 16", "--allow-breaking")
	out, code = run("", "schemas", "check", breaking, "--allow-breaking")
	expect(t, "check breaking allowed", code, 0, out, "allowed: ")

	// Nothing registered yet: every type is unknown.
	order := `{"orderId":"o-1","customerId":"c-1","total":{"cents":100,"currency":"EUR"}}`
	out, code = run("", "publish", "--type", "orders.created", "--source", "/e2e", "--data", order)
	expect(t, "publish before push", code, 2, out, "rejected (unknown_type)")

	out, code = run("", "schemas", "diff", example)
	expect(t, "diff before push", code, 0, out, "+ orders.created v2")
	pushed := time.Now()
	out, code = run("", "schemas", "push", example)
	expect(t, "push", code, 0, out, "+ money v1", "+ orders.created v2", "pushed 5 versions")
	for {
		out, code = run("", "publish", "--type", "orders.created", "--source", "/e2e", "--data", order)
		if code == 0 {
			break
		}
		if time.Since(pushed) > 10*time.Second {
			t.Fatalf("pushed schemas not in force after 10s: %s", out)
		}
	}
	t.Logf("pushed schemas in force %v after the push command started", time.Since(pushed).Round(time.Millisecond))
	out, code = run("", "schemas", "push", example)
	expect(t, "push again", code, 0, out, "= orders.created v1  unchanged", "registry already up to date")

	out, code = run("", "publish", "--type", "orders.created", "--source", "/e2e", "--id", "bad-total", "--data", `{"orderId":"o-2","customerId":"c","total":{"cents":-5,"currency":"EUR"}}`)
	expect(t, "invalid data", code, 2, out, "rejected (schema_invalid)", "/total/cents: minimum: got -5, want 0")
	out, code = run("", "publish", "--type", "orders.shipped", "--source", "/e2e", "--id", "unknown-1", "--data", `{}`)
	expect(t, "unknown type", code, 2, out, "rejected (unknown_type)")
	withCoupon := `{"orderId":"o-3","customerId":"c","total":{"cents":1,"currency":"EUR"},"coupon":"X"}`
	out, code = run("", "publish", "--type", "orders.created", "--source", "/e2e", "--id", "v1-coupon", "--dataschema", "v1", "--data", withCoupon)
	expect(t, "dataschema v1", code, 2, out, "rejected (schema_invalid)", "orders.created v1", "coupon")
	out, code = run("", "publish", "--type", "orders.created", "--source", "/e2e", "--dataschema", "https://schemas.example.com/orders.created/v2.json", "--data", withCoupon)
	expect(t, "dataschema v2", code, 0, out)

	out, code = run("", "dlq", "ls", "--reason", "schema_invalid", "-o", "json")
	var recs []struct {
		EventID string `json:"eventId"`
		Reason  string `json:"reason"`
		Error   string `json:"error"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil {
		t.Fatalf("dlq ls: exit %d %s", code, out)
	}
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.EventID] = r.Reason == "schema_invalid" && r.Error != ""
	}
	if !ids["bad-total"] || !ids["v1-coupon"] {
		t.Errorf("DLQ lacks the schema_invalid records: %s", out)
	}
	out, code = run("", "dlq", "ls", "--reason", "unknown_type")
	expect(t, "dlq unknown_type", code, 0, out, "unknown-1")

	// Pushed versions are immutable.
	changed := t.TempDir()
	copyDir(t, example, changed)
	writeFile(t, filepath.Join(changed, "money", "v1.json"), `{"type":"object"}`)
	out, code = run("", "schemas", "push", changed)
	expect(t, "push rewritten v1", code, 1, out, "money/v1.json: /: immutable:", "nothing pushed")
	out, code = run("", "schemas", "check", changed, "--against-server")
	expect(t, "check --against-server", code, 1, out, "immutable")
	out, code = run("", "schemas", "show", "money", "--version", "1")
	expect(t, "show money v1", code, 0, out, `"pattern": "^[A-Z]{3}$"`)

	// A breaking version needs --allow-breaking, and then takes effect.
	out, code = run("", "schemas", "push", breaking)
	expect(t, "push breaking", code, 1, out, "required-added", "nothing pushed")
	out, code = run("", "schemas", "push", breaking, "--allow-breaking")
	expect(t, "push breaking allowed", code, 0, out, "+ orders.created v3", "pushed 1 version")
	out, code = run("", "schemas", "ls")
	expect(t, "ls", code, 0, out, "orders.created       v3      v1,v2,v3")
	out, code = run("", "schemas", "show", "orders.created", "-o", "json")
	var shown struct {
		Version int             `json:"version"`
		Schema  json.RawMessage `json:"schema"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Version != 3 {
		t.Errorf("show -o json: exit %d %s", code, out)
	}
	out, code = run("", "schemas", "show", "orders.nope")
	expect(t, "show unknown", code, 2, out, "not found")
}

// TestSchemasGen generates a catalog entry from a Go struct with the built binary, as a
// Go service would in its own module, and generates again to see it is a no-op.
func TestSchemasGen(t *testing.T) {
	dir := t.TempDir()
	gen := func() string {
		cmd := exec.Command(binary, "schemas", "gen", "--go-type", "./examples/events.OrderCreated", "--type", "orders.created", "--dir", dir)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gen: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := gen(); !strings.Contains(out, "orders.created/v1.json (orders.created v1)") {
		t.Fatalf("first gen: %s", out)
	}
	if out := gen(); !strings.Contains(out, "unchanged: orders.created v1") {
		t.Fatalf("second gen: %s", out)
	}
	out, err := exec.Command(binary, "schemas", "check", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok: 1 types, 1 versions") {
		t.Fatalf("generated catalog does not pass check: %v %s", err, out)
	}
	if entries, _ := os.ReadDir(".."); len(entries) > 0 {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".jetmesh-gen-") {
				t.Errorf("gen left %s behind", e.Name())
			}
		}
	}
}

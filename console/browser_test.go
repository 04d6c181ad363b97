package console_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/servertest"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/jetmesh/jetmesh/schemas"
)

// -screenshots rewrites docs/console/*.png from what the browser shows.
var screenshots = flag.Bool("screenshots", false, "write docs/console/*.png")

// browser starts headless Chromium (Debian's chromium package: scripts/test-deps.sh
// installs it) and records the page's errors. It fails, never skips, without one.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no Chromium on this machine: run ./scripts/test-deps.sh (it installs Debian's chromium package)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("headless", "new"))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	var mu sync.Mutex
	var problems []string
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			// CSP violations, failed loads, and the like.
			if e.Entry.Level == cdplog.EntryLevelError || e.Entry.Level == cdplog.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("%s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, fmt.Sprint(a.Value)+a.Description)
				}
				problems = append(problems, fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " ")))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// bus starts a real server (embedded JetStream, console on) with two rules and events.
func startBus(t *testing.T) (base string, js jetstream.JetStream) {
	t.Helper()
	srv, _ := servertest.Start(t, servertest.Config(t), slog.New(slog.DiscardHandler))
	nc, err := nats.Connect(srv.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ = jetstream.New(nc)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	store, err := rules.OpenStore(cctx, js)
	if err != nil {
		t.Fatal(err)
	}
	var want []rules.Rule
	for _, y := range []string{
		"name: billing\npattern: {type: [orders.created], data: {total: [{numeric: ['>', 100]}]}}\ntarget: {service: billing, path: /orders}\n",
		"name: audit\npattern: {source: [{prefix: /shop}]}\ntarget: {service: audit}\ndelivery: {maxAttempts: 3}\n",
	} {
		rs, err := rules.ParseFile("rules.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rs...)
	}
	if _, err := store.Apply(cctx, want, rules.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	base = "http://" + srv.HTTPAddr()
	// Both rules start at new events: publish only once both consumers exist.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err1 := js.Consumer(cctx, bus.EventsStream, "rule-billing")
		_, err2 := js.Consumer(cctx, bus.EventsStream, "rule-audit")
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rule consumers were not created")
		}
	}
	reg, err := schemas.OpenRegistry(cctx, js)
	if err != nil {
		t.Fatal(err)
	}
	err = reg.Push(cctx, []schemas.Document{
		{Type: "orders.created", Version: 1, Raw: []byte(`{"type":"object","properties":{"total":{"type":"number"}},"required":["total"]}`)},
		{Type: "orders.created", Version: 2, Raw: []byte(`{"type":"object","properties":{"total":{"type":"number"},"coupon":{"type":"string"}},"required":["total","coupon"]}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, base, 5)
	return base, js
}

var published int

func publish(t *testing.T, base string, n int) {
	t.Helper()
	var entries []string
	for range n {
		published++
		entries = append(entries, fmt.Sprintf(`{"specversion":"1.0","id":"o-%d","source":"/shop","type":"orders.created","data":{"total":%d,"coupon":"C"}}`, published, 50+published*20))
	}
	res, err := http.Post(base+"/v1/events", "application/cloudevents-batch+json", strings.NewReader("["+strings.Join(entries, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("publish: %d", res.StatusCode)
	}
}

// waitText waits until the element sel shows want. A click's page load may come in
// between: a read that finds the old page going away is tried again.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	got, err := "", error(nil)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		got, err = chromedp.Run(rctx, chromedp.Text(sel))
		cancel()
		if err == nil && strings.Contains(got, want) {
			return
		}
	}
	t.Fatalf("%s says %q (%v), want %q", sel, got, err, want)
}

func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*screenshots {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "console", name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser: in headless Chromium against a real server, the overview loads
// with the bus's data and stays live (new events show without a reload); the rules page
// shows each rule, its pattern sandbox answers, and Pause and Resume work from the page;
// no page logs an error.
func TestConsoleInBrowser(t *testing.T) {
	base, js := startBus(t)
	ctx, problems := browser(t)
	text := func(sel string) string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return got
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}

	do(chromedp.Navigate(base+"/console/"), chromedp.WaitVisible("#rules"))
	if got := text("#rules"); !strings.Contains(got, "billing") || !strings.Contains(got, "audit") {
		t.Errorf("the overview's rules: %q", got)
	}
	do(chromedp.WaitVisible("#live-state.live"))
	// Live: events published now show up without a reload (no sidecar runs: they wait).
	publish(t, base, 7)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if strings.Contains(text("#problems"), "rule audit: 12 event(s) waiting") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview did not show the new events live: %q", text("#problems"))
		}
	}
	if got := text("#ingress"); !strings.Contains(got, "events accepted") {
		t.Errorf("the ingress panel: %q", got)
	}
	shoot(t, ctx, "overview")

	// Rules: the sandbox, then pause and resume.
	do(chromedp.Navigate(base+"/console/rules"),
		chromedp.WaitVisible("#rule-billing"),
		chromedp.SetValue("#rule-choice", "billing"),
		chromedp.SetValue("#event", `{"specversion":"1.0","id":"x","source":"/shop","type":"orders.created","data":{"total":120}}`),
		chromedp.Click("#sandbox button[type=submit]"),
		chromedp.WaitVisible("#test-result"))
	if got := text("#test-result"); !strings.Contains(got, "Matches billing") {
		t.Errorf("the sandbox said %q for a matching event", got)
	}
	shoot(t, ctx, "rules")
	do(chromedp.Click("#rule-billing button.pause"))
	waitText(t, ctx, "#flash", "Paused billing")
	c, err := js.Consumer(context.Background(), bus.EventsStream, "rule-billing")
	if err != nil || !c.CachedInfo().Paused {
		t.Fatalf("Pause in the page did not pause the consumer: %v", err)
	}
	do(chromedp.Click("#rule-billing button.resume"))
	waitText(t, ctx, "#flash", "Resumed billing")
	if c, err = js.Consumer(context.Background(), bus.EventsStream, "rule-billing"); err != nil || c.CachedInfo().Paused {
		t.Errorf("Resume in the page did not resume the consumer: %v", err)
	}

	// Services and event types.
	do(chromedp.Navigate(base+"/console/services"), chromedp.WaitVisible("#delivery"))
	if got := text("#delivery"); !strings.Contains(got, "billing") {
		t.Errorf("the services page: %q", got)
	}
	shoot(t, ctx, "services")
	do(chromedp.Navigate(base+"/console/types?type=orders.created&v=2&against=1"), chromedp.WaitVisible("#diff"))
	if got := text("#diff"); !strings.Contains(got, "required") || !strings.Contains(got, `+     "coupon"`) {
		t.Errorf("the diff of v1 and v2 does not name the new required property: %q", got)
	}
	if got := text("#types"); !strings.Contains(got, "orders.created") || !strings.Contains(got, "v2") {
		t.Errorf("the types list: %q", got)
	}
	shoot(t, ctx, "types")

	// Publish a test event from the page: it is validated, stored and matched.
	do(chromedp.Navigate(base+"/console/publish"),
		chromedp.SetValue("#ptype", "orders.created"),
		chromedp.SetValue("#pid", "from-console"),
		chromedp.SetValue("#pdata", `{"total": 500, "coupon": "X"}`),
		chromedp.Click("form button[type=submit]"),
		chromedp.WaitVisible("#publish-result"))
	if got := text("#publish-result"); !strings.Contains(got, "Stored as EVENTS") || !strings.Contains(got, "billing") || strings.Contains(got, "audit") {
		t.Errorf("after publishing: %q", got)
	}
	shoot(t, ctx, "publish")
	do(chromedp.Navigate(base+"/console/publish"),
		chromedp.SetValue("#ptype", "orders.created"),
		chromedp.SetValue("#pdata", `{"total": "lots"}`),
		chromedp.Click("form button[type=submit]"),
		chromedp.WaitVisible("#publish-result"))
	if got := text("#publish-result"); !strings.Contains(got, "schema_invalid") {
		t.Errorf("an invalid test event: %q", got)
	}

	// The explorer finds it and says where it is; the live tail shows new events.
	do(chromedp.Navigate(base+"/console/events?id=from-console"), chromedp.WaitVisible("#where"))
	if got := text("#where"); !strings.Contains(got, "billing") || !strings.Contains(got, "waiting") {
		t.Errorf("where the event is: %q", got)
	}
	shoot(t, ctx, "explorer")
	do(chromedp.Navigate(base+"/console/events?tail=orders.>"), chromedp.WaitVisible("#tail-rows"))
	waitText(t, ctx, "#tail-state", "Tailing")
	publish(t, base, 1)
	waitText(t, ctx, "#tail-rows", fmt.Sprintf("o-%d", published))

	// DLQ: the rejected test event, redriven from the page (rejected again: still invalid).
	do(chromedp.Navigate(base+"/console/dlq"), chromedp.WaitVisible("#records"))
	if got := text("#records"); !strings.Contains(got, "schema_invalid") {
		t.Fatalf("the DLQ page: %q", got)
	}
	shoot(t, ctx, "dlq")
	do(chromedp.Click("#records input[type=checkbox]"), chromedp.Click("#redrive"))
	waitText(t, ctx, "#flash", "1 rejected again")
	do(chromedp.Click("#records a"))
	waitText(t, ctx, "main", "redriven from")
	if got := text("main"); !strings.Contains(strings.ToLower(got), "original body") {
		t.Errorf("a DLQ record's page: %q", got)
	}

	// Replays: start one from the page and see it listed.
	do(chromedp.Navigate(base+"/console/replays"),
		chromedp.SetValue("#replay-rule", "audit"),
		chromedp.SetValue("#from", "10m"),
		chromedp.Click("#start button[type=submit]"))
	waitText(t, ctx, "#flash", "Started replay")
	do(chromedp.Navigate(base + "/console/replays"))
	waitText(t, ctx, "#replays", "audit")
	shoot(t, ctx, "replays")

	if p := problems(); len(p) > 0 {
		t.Errorf("the pages logged errors: %v", p)
	}
}

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetmesh/jetmesh/internal/testcerts"
	"github.com/nats-io/nats.go"
)

// authedServer starts `jetmesh server --auth` and returns it with the first admin's
// credentials file.
func authedServer(t *testing.T, extra ...string) (*serverProc, string) {
	t.Helper()
	dir := t.TempDir()
	srv := startServer(t, dir, append([]string{"--auth", anyType}, extra...)...)
	admin := filepath.Join(dir, "auth", "admin.creds")
	st, err := os.Stat(admin)
	if err != nil {
		t.Fatalf("no admin credentials: %v\n%s", err, srv.log)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("admin.creds has mode %v, want 0600", st.Mode().Perm())
	}
	if !strings.Contains(srv.log.String(), admin) {
		t.Errorf("the server did not log where the admin credentials are:\n%s", srv.log)
	}
	return srv, admin
}

// mint runs `creds add` as admin and returns the credentials file and the token.
func mint(t *testing.T, srv *serverProc, admin string, args ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "p.creds")
	stdout, stderr, code := srv.cli(t, "", append([]string{"--creds", admin, "creds", "add", "--out", out}, args...)...)
	if code != 0 {
		t.Fatalf("creds add %v: exit %d %s %s", args, code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	return out, lines[len(lines)-1]
}

// violations connects with a principal's credentials and collects the permission
// violations the server reports on that connection.
type violations struct {
	nc  *nats.Conn
	mu  sync.Mutex
	got []string
}

func connectAs(t *testing.T, srv *serverProc, creds, name string) *violations {
	t.Helper()
	v := &violations{}
	opts := []nats.Option{nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		v.mu.Lock()
		v.got = append(v.got, err.Error())
		v.mu.Unlock()
	})}
	if creds != "" {
		key, err := nats.NkeyOptionFromSeed(creds)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, key, nats.CustomInboxPrefix("_INBOX."+name))
	}
	nc, err := nats.Connect(srv.natsURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	v.nc = nc
	return v
}

// refused waits for the server to report a permission violation naming subject.
func (v *violations) refused(t *testing.T, who, action, subject string) {
	t.Helper()
	_ = v.nc.Flush()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v.mu.Lock()
		for _, e := range v.got {
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, `"`+subject+`"`) {
				v.mu.Unlock()
				return
			}
		}
		seen := append([]string(nil), v.got...)
		v.mu.Unlock()
		if time.Now().After(deadline) {
			t.Errorf("%s could %s (%s): no permission violation; errors seen %q", who, action, subject, seen)
			return
		}
	}
}

func (v *violations) pub(t *testing.T, who, action, subject string) {
	t.Helper()
	_ = v.nc.Publish(subject, []byte("{}"))
	v.refused(t, who, action, subject)
}

func (v *violations) sub(t *testing.T, who, action, subject string) {
	t.Helper()
	if _, err := v.nc.SubscribeSync(subject); err != nil {
		t.Fatal(err)
	}
	v.refused(t, who, action, subject)
}

// TestAccessControl runs every attack the issue lists against `jetmesh server --auth`, as
// anonymous, a publisher, the sidecar of another service and a viewer, and the happy paths
// with credentials: publish (CLI and HTTP), delivery through a sidecar, admin and viewer
// commands; then revokes the sidecar and sees it cut off.
func TestAccessControl(t *testing.T) {
	srv, admin := authedServer(t)
	if strings.Contains(srv.log.String(), "SUA") || strings.Contains(srv.log.String(), "SAA") {
		t.Errorf("the server log shows a seed:\n%s", srv.log)
	}
	shop, shopToken := mint(t, srv, admin, "--role", "publisher", "--name", "shop", "--types", "orders.>")
	billing, _ := mint(t, srv, admin, "--role", "sidecar", "--name", "billing-sc", "--service", "billing")
	ledger, _ := mint(t, srv, admin, "--role", "sidecar", "--name", "ledger-sc", "--service", "ledger")
	viewer, _ := mint(t, srv, admin, "--role", "viewer", "--name", "console")
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesFile, `name: billing-big-orders
pattern: {type: [orders.created]}
target: {service: billing, path: /orders}
---
name: ledger
pattern: {type: [payments.captured]}
target: {service: ledger}
`)
	if out, errOut, code := srv.cli(t, "", "--creds", admin, "rules", "apply", "-f", rulesFile); code != 0 {
		t.Fatalf("rules apply as admin: %d %s %s", code, out, errOut)
	}

	// Happy path: the billing sidecar delivers what the shop publishes, and the event
	// says who published it.
	rec, url := newRecorder(t)
	sc := startSidecar(t, srv, "billing", url, "--creds", billing)
	if out, errOut, code := srv.cli(t, "", "--creds", shop, "publish", "--type", "orders.created", "--source", "/shop", "--id", "o-1", "--data", `{}`); code != 0 {
		t.Fatalf("publish as shop: %d %s %s", code, out, errOut)
	}
	for deadline := time.Now().Add(10 * time.Second); rec.count("o-1") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("o-1 not delivered through the billing sidecar:\n%s", sc.log)
		}
	}
	rec.mu.Lock()
	who := rec.first["o-1"].Get("Ce-Jetmeshprincipal")
	rec.mu.Unlock()
	if who != "shop" {
		t.Errorf("delivered event names principal %q, want shop", who)
	}

	// HTTP: 401 without or with a bad token, 403 for a type the publisher may not use,
	// 200 with its token; a publisher cannot claim to be someone else.
	event := func(id, typ string, ext string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/shop","type":"` + typ + `"` + ext + `}`
	}
	for _, c := range []struct {
		name, token, body string
		want              int
	}{
		{"no token", "", event("h-1", "orders.created", ""), 401},
		{"bad token", "jm_nope", event("h-1", "orders.created", ""), 401},
		{"type not allowed", shopToken, event("h-2", "payments.captured", ""), 403},
		{"claims a principal", shopToken, event("h-3", "orders.created", `,"jetmeshprincipal":"admin"`), 400},
		{"allowed", shopToken, event("h-4", "orders.created", ""), 200},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.httpURL()+"/v1/events", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("HTTP %s: %d, want %d", c.name, res.StatusCode, c.want)
		}
	}

	// Anonymous: refused at connect.
	if nc, err := nats.Connect(srv.natsURL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("an anonymous NATS connection was accepted")
	}
	if _, errOut, code := srv.cli(t, "", "streams", "ls"); code == 0 || !strings.Contains(errOut, "--creds") {
		t.Errorf("anonymous CLI: exit %d %q", code, errOut)
	}

	// The attacks, as each principal that should not be able to.
	attacks := []struct {
		who, creds, name string
		pub              map[string]string // subject → what it would do
		sub              map[string]string
	}{
		{"publisher", shop, "shop", map[string]string{
			"evt.orders.created":                                       "publish around validation",
			"jetmesh.v1.events":                                        "publish as nobody",
			"jetmesh.v1.events.billing-sc":                             "publish as another principal",
			"$JS.API.STREAM.DELETE.EVENTS":                             "delete the EVENTS stream",
			"$KV.mesh-rules.billing-big-orders":                        "rewrite a rule",
			"$JS.API.CONSUMER.MSG.NEXT.EVENTS.rule-billing-big-orders": "pull billing's events",
		}, map[string]string{"evt.>": "read every event", "_INBOX.>": "read every reply", "dlq.>": "read DLQ records"}},
		{"sidecar of another service", ledger, "ledger-sc", map[string]string{
			"$JS.API.CONSUMER.MSG.NEXT.EVENTS.rule-billing-big-orders": "pull billing's events",
			"$JS.API.CONSUMER.INFO.EVENTS.rule-billing-big-orders":     "read billing's consumer",
			"$JS.ACK.EVENTS.rule-billing-big-orders.1.1.1.1.1":         "ack billing's events",
			"dlq.rule.billing-big-orders.delivery_failed":              "write billing's DLQ records",
			"evt.payments.captured":                                    "publish around validation",
			"$KV.mesh-rules.ledger":                                    "rewrite its own rule",
			"$JS.API.STREAM.DELETE.EVENTS":                             "delete the EVENTS stream",
		}, map[string]string{"_INBOX.billing-sc.>": "read the billing sidecar's replies", "jetmesh.v1.events": "answer as the ingress", "evt.>": "read every event"}},
		{"viewer", viewer, "console", map[string]string{
			"$JS.API.STREAM.DELETE.EVENTS":                                   "delete the EVENTS stream",
			"$JS.API.CONSUMER.MSG.NEXT.EVENTS.rule-billing-big-orders":       "pull billing's events",
			"$JS.API.CONSUMER.DELETE.EVENTS.rule-billing-big-orders":         "delete billing's consumer",
			"$KV.mesh-rules.ledger":                                          "rewrite a rule",
			"jetmesh.v1.events.console":                                      "publish",
			"$JS.API.DIRECT.GET.KV_mesh-principals.$KV.mesh-principals.shop": "read the principals",
		}, map[string]string{"jetmesh.v1.events.*": "answer as the ingress", "_INBOX.shop.>": "read the shop's replies"}},
	}
	for _, a := range attacks {
		v := connectAs(t, srv, a.creds, a.name)
		for subject, action := range a.pub {
			v.pub(t, a.who, action, subject)
		}
		for subject, action := range a.sub {
			v.sub(t, a.who, action, subject)
		}
	}

	// The same credentials file works for the standard NATS tools, as a .creds file (the
	// way the nats CLI uses it: nats --creds FILE --inbox-prefix _INBOX.<name>), under the
	// same permissions.
	std, err := nats.Connect(srv.natsURL(), nats.UserCredentials(viewer), nats.CustomInboxPrefix("_INBOX.console"))
	if err != nil {
		t.Fatalf("a standard .creds connection as the viewer: %v", err)
	}
	if _, err := std.Request("$JS.API.STREAM.INFO.EVENTS", nil, 5*time.Second); err != nil {
		t.Errorf("the viewer's stream info through a standard .creds connection: %v", err)
	}
	std.Close()

	// A service publishes through its sidecar's localhost endpoint as its service.
	res, err := http.Post("http://"+sc.listen+"/v1/events", "application/cloudevents+json",
		strings.NewReader(`{"specversion":"1.0","id":"from-billing","source":"/billing","type":"invoices.issued"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("publish through the sidecar: %d", res.StatusCode)
	}
	out, errOut, code := srv.cli(t, "", "--creds", admin, "tail", "invoices.>", "--all", "-n", "1", "-o", "json")
	if code != 0 || !strings.Contains(out, `"jetmeshprincipal":"billing-sc"`) || !strings.Contains(out, `"jetmeshservice":"billing"`) {
		t.Errorf("an event published through the billing sidecar: exit %d %s %s", code, out, errOut)
	}

	// Read-only commands work for the viewer; admin commands for the admin.
	for _, args := range [][]string{{"rules", "ls"}, {"streams", "ls"}, {"dlq", "ls"}, {"schemas", "ls"}, {"tail", "orders.>", "--all", "-n", "1"}} {
		if out, errOut, code := srv.cli(t, "", append([]string{"--creds", viewer}, args...)...); code != 0 {
			t.Errorf("viewer %v: exit %d %s %s", args, code, out, errOut)
		}
	}
	// The operator views work for the viewer; the operator actions are the admin's.
	eventually(t, 15*time.Second, "the billing sidecar in status, as the viewer sees it", func() bool {
		out, _, code := srv.cli(t, "", "--creds", viewer, "status", "-o", "json")
		return code == 0 && strings.Contains(out, `"service": "billing"`)
	})
	for _, args := range [][]string{{"events", "get", "from-billing", "--type", "invoices.issued"}, {"replay", "ls"}} {
		if out, errOut, code := srv.cli(t, "", append([]string{"--creds", viewer}, args...)...); code != 0 {
			t.Errorf("viewer %v: exit %d %s %s", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"replay", "start", "--rule", "ledger", "--from", "1h"}, {"dlq", "redrive"}, {"rules", "pause", "ledger"}} {
		if out, errOut, code := srv.cli(t, "", append([]string{"--creds", viewer}, args...)...); code == 0 {
			t.Errorf("the viewer ran %v: %s %s", args, out, errOut)
		}
		if out, errOut, code := srv.cli(t, "", append([]string{"--creds", admin}, args...)...); code != 0 {
			t.Errorf("admin %v: exit %d %s %s", args, code, out, errOut)
		}
	}
	if out, errOut, code := srv.cli(t, "", "--creds", admin, "rules", "resume", "ledger"); code != 0 {
		t.Errorf("admin rules resume: %d %s %s", code, out, errOut)
	}
	if out, _, code := srv.cli(t, "", "--creds", admin, "creds", "ls"); code != 0 || !strings.Contains(out, "billing-sc") {
		t.Errorf("creds ls: %d %s", code, out)
	}
	if _, errOut, code := srv.cli(t, "", "--creds", viewer, "creds", "add", "--role", "admin", "--name", "evil", "--out", filepath.Join(t.TempDir(), "x")); code == 0 {
		t.Errorf("a viewer minted an admin: %s", errOut)
	}

	// Revocation cuts the live sidecar within 5 s and its key no longer connects.
	revoked := time.Now()
	if out, errOut, code := srv.cli(t, "", "--creds", admin, "creds", "revoke", "billing-sc"); code != 0 {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	for {
		res, err := http.Get("http://" + sc.listen + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Since(revoked) > 5*time.Second {
			t.Fatalf("the revoked sidecar is still connected 5 s later:\n%s", sc.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("revoked sidecar cut off in %v", time.Since(revoked).Round(time.Millisecond))
	key, _ := nats.NkeyOptionFromSeed(billing)
	if nc, err := nats.Connect(srv.natsURL(), key, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("revoked credentials still connect")
	}
	if out, _, code := srv.cli(t, "", "--creds", shop, "publish", "--type", "orders.created", "--source", "/shop", "--id", "after-revoke"); code != 0 {
		t.Fatalf("publish after revoke: %s", out)
	}
	time.Sleep(500 * time.Millisecond)
	if n := rec.count("after-revoke"); n != 0 {
		t.Errorf("the revoked sidecar delivered %d events after revocation", n)
	}
}

// TestTLS: with TLS and access control on, the CLI, a sidecar and HTTP publishers work
// with the CA, plain connections are refused, and a server that verifies clients refuses
// one without a certificate.
func TestTLS(t *testing.T) {
	certs := testcerts.New(t)
	tlsArgs := []string{"--tls-cert", certs.Cert, "--tls-key", certs.Key, "--tls-ca", certs.CA}
	srv, admin := authedServer(t, tlsArgs...)
	withCA := func(args ...string) []string {
		return append([]string{"--tls-ca", certs.CA, "--creds", admin}, args...)
	}

	if out, errOut, code := srv.cli(t, "", withCA("streams", "ls")...); code != 0 {
		t.Fatalf("streams ls over TLS: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := srv.cli(t, "", "--tls-ca=", "--creds", admin, "streams", "ls"); code == 0 {
		t.Errorf("a client without the CA connected: %s", errOut)
	}
	if _, errOut, code := srv.cli(t, "", "--tls-ca", certs.OtherCA, "--creds", admin, "streams", "ls"); code == 0 {
		t.Errorf("a client trusting another CA connected: %s", errOut)
	}
	if nc, err := nats.Connect(srv.natsURL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("a plain NATS connection was accepted")
	}

	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesFile, "name: billing\npattern: {type: [orders.created]}\ntarget: {service: billing}\n")
	if out, errOut, code := srv.cli(t, "", withCA("rules", "apply", "-f", rulesFile)...); code != 0 {
		t.Fatalf("rules apply: %d %s %s", code, out, errOut)
	}
	sidecarCreds, _ := mint(t, srv, admin, "--role", "sidecar", "--name", "billing-sc", "--service", "billing")
	_, token := mint(t, srv, admin, "--role", "publisher", "--name", "shop")
	rec, url := newRecorder(t)
	startSidecar(t, srv, "billing", url, "--tls-ca", certs.CA, "--creds", sidecarCreds)

	req, _ := http.NewRequest(http.MethodPost, srv.httpURL()+"/v1/events",
		strings.NewReader(`{"specversion":"1.0","id":"tls-1","source":"/shop","type":"orders.created"}`))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := srv.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("HTTPS publish: %d", res.StatusCode)
	}
	if res, err := http.Post("http://"+srv.httpAddr+"/v1/events", "application/json", strings.NewReader("{}")); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest { // Go's "client sent an HTTP request to an HTTPS server"
			t.Errorf("the HTTP port answered plain HTTP with %d", res.StatusCode)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); rec.count("tls-1") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("tls-1 not delivered through a TLS sidecar")
		}
	}

	// Client certificates, when the server asks for them.
	strict := startServer(t, t.TempDir(), append(tlsArgs, "--tls-verify-clients", anyType)...)
	_ = strict
	if _, _, code := strict.cli(t, "", "--tls-ca", certs.CA, "streams", "ls"); code == 0 {
		t.Error("a client without a certificate connected to a server that verifies clients")
	}
	if out, errOut, code := strict.cli(t, "", "--tls-ca", certs.CA, "--tls-client-cert", certs.ClientCert, "--tls-client-key", certs.ClientKey, "streams", "ls"); code != 0 {
		t.Errorf("a client with a certificate: %d %s %s", code, out, errOut)
	}
}

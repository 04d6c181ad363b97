package auth_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/nkeys"
)

func rule(name, service string) rules.Rule {
	return rules.Rule{Name: name, Target: rules.Target{Service: service}}
}

// TestPermissions is the permission table of docs/security.md, checked.
func TestPermissions(t *testing.T) {
	rs := []rules.Rule{rule("billing-orders", "billing"), rule("ledger", "ledger")}
	tests := []struct {
		p              auth.Principal
		mayPub, notPub []string
		maySub         []string
	}{
		{auth.Principal{Name: "root", Role: auth.RoleAdmin}, []string{">"}, nil, []string{">"}},
		{auth.Principal{Name: "shop", Role: auth.RolePublisher},
			[]string{"jetmesh.v1.events.shop"},
			[]string{"jetmesh.v1.events", "evt.>", "$JS.API.>"}, []string{"_INBOX.shop.>"}},
		{auth.Principal{Name: "billing-1", Role: auth.RoleSidecar, Service: "billing"},
			[]string{"jetmesh.v1.events.billing-1",
				"$JS.API.CONSUMER.MSG.NEXT.EVENTS.rule-billing-orders", "$JS.API.CONSUMER.INFO.EVENTS.rule-billing-orders",
				"$JS.ACK.EVENTS.rule-billing-orders.>", "$JS.ACK.*.*.EVENTS.rule-billing-orders.>", "dlq.rule.billing-orders.*",
				"$JS.API.STREAM.INFO.KV_mesh-rules"},
			[]string{"$JS.API.CONSUMER.MSG.NEXT.EVENTS.rule-ledger", "dlq.rule.ledger.*", "evt.>", "$KV.mesh-rules.>"},
			[]string{"_INBOX.billing-1.>"}},
		{auth.Principal{Name: "console", Role: auth.RoleViewer},
			[]string{"$JS.API.STREAM.INFO.*", "$JS.API.DIRECT.GET.>"},
			[]string{"jetmesh.v1.events.console", "$JS.API.STREAM.DELETE.*"}, []string{"_INBOX.console.>"}},
	}
	for _, tt := range tests {
		perm := auth.Permissions(&tt.p, rs)
		for _, s := range tt.mayPub {
			if !slices.Contains(perm.Pub.Allow, s) {
				t.Errorf("%s: %s not allowed to publish (allow %v)", tt.p.Name, s, perm.Pub.Allow)
			}
		}
		for _, s := range tt.notPub {
			if slices.Contains(perm.Pub.Allow, s) {
				t.Errorf("%s: %s allowed", tt.p.Name, s)
			}
		}
		if !slices.Equal(perm.Sub.Allow, tt.maySub) {
			t.Errorf("%s: subscribe %v, want %v", tt.p.Name, perm.Sub.Allow, tt.maySub)
		}
	}
	viewer := auth.Permissions(&auth.Principal{Name: "console", Role: auth.RoleViewer}, rs)
	for _, s := range []string{"$JS.API.CONSUMER.MSG.NEXT.EVENTS.rule-billing-orders", "$JS.API.CONSUMER.CREATE.EVENTS.rule-ledger", "$JS.API.CONSUMER.DELETE.EVENTS.rule-ledger", "$JS.API.DIRECT.GET.KV_mesh-principals.>"} {
		if !slices.Contains(viewer.Pub.Deny, s) {
			t.Errorf("viewer: %s not denied", s)
		}
	}
}

func TestPrincipalValidate(t *testing.T) {
	tests := []struct {
		p  auth.Principal
		ok bool
	}{
		{auth.Principal{Name: "shop", Role: auth.RolePublisher, Types: []string{"orders.>"}, Source: "/shop"}, true},
		{auth.Principal{Name: "b", Role: auth.RoleSidecar, Service: "billing"}, true},
		{auth.Principal{Name: "b", Role: auth.RoleSidecar}, false},
		{auth.Principal{Name: "Bad Name", Role: auth.RoleAdmin}, false},
		{auth.Principal{Name: "x", Role: "root"}, false},
		{auth.Principal{Name: "x", Role: auth.RoleViewer, Service: "s"}, false},
		{auth.Principal{Name: "x", Role: auth.RolePublisher, Types: []string{"orders.>.x"}}, false},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("%+v: %v, want ok=%v", tt.p, err, tt.ok)
		}
	}
	p := auth.Principal{Types: []string{"orders.*", "payments.>"}, Source: "/shop"}
	if !p.MayPublishType("orders.created") || p.MayPublishType("orders.created.v2") || !p.MayPublishType("payments.a.b") || p.MayPublishType("users.x") {
		t.Error("MayPublishType")
	}
	if !p.MayPublishSource("/shop") || p.MayPublishSource("/other") {
		t.Error("MayPublishSource")
	}
}

// TestVerifyKey: a connection proves its key only with a signature of the server's nonce
// by that key.
func TestVerifyKey(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	other, _ := nkeys.CreateUser()
	sign := func(k nkeys.KeyPair, nonce string) string {
		sig, _ := k.Sign([]byte(nonce))
		return base64.RawURLEncoding.EncodeToString(sig)
	}
	if got, err := auth.VerifyKey(pub, "n0nce", sign(kp, "n0nce")); err != nil || got != pub {
		t.Fatalf("good signature: %v", err)
	}
	for name, c := range map[string][3]string{
		"no key":         {"", "n0nce", sign(kp, "n0nce")},
		"other's key":    {pub, "n0nce", sign(other, "n0nce")},
		"other nonce":    {pub, "n0nce", sign(kp, "replayed")},
		"no nonce":       {pub, "", sign(kp, "")},
		"not a user key": {"ABCD", "n0nce", sign(kp, "n0nce")},
		"garbage":        {pub, "n0nce", "!!"},
	} {
		if _, err := auth.VerifyKey(c[0], c[1], c[2]); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestMintAndReadCredentials: a minted credentials file names its principal and holds a
// user seed whose public key the principal records; the token's hash is what is stored.
func TestMintAndReadCredentials(t *testing.T) {
	dir := t.TempDir()
	is, err := auth.LoadIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := auth.LoadIssuer(dir)
	if err != nil || again.PublicKey() != is.PublicKey() {
		t.Fatalf("the issuer key changed between loads: %v", err)
	}
	m, err := is.Mint(auth.Principal{Name: "shop", Role: auth.RolePublisher})
	if err != nil {
		t.Fatal(err)
	}
	file := dir + "/shop.creds"
	if err := auth.WriteCreds(file, m.Creds); err != nil {
		t.Fatal(err)
	}
	c, err := auth.ReadCredentials(file)
	if err != nil || c.Name != "shop" {
		t.Fatalf("read back: %+v %v", c, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(m.Creds)
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := kp.PublicKey(); pub != m.Principal.UserKey {
		t.Errorf("credentials key %s, principal records %s", pub, m.Principal.UserKey)
	}
	if auth.HashToken(m.Token) != m.Principal.TokenHash || m.Principal.TokenHash == m.Token {
		t.Error("the stored token hash does not match, or is the token itself")
	}
}

// TestKeySigning: a client that proves a key without naming it (nats --creds) is the
// active principal whose key verifies its signature, and no one else.
func TestKeySigning(t *testing.T) {
	a, _ := nkeys.CreateUser()
	b, _ := nkeys.CreateUser()
	stranger, _ := nkeys.CreateUser()
	apub, _ := a.PublicKey()
	bpub, _ := b.PublicKey()
	snap := map[string][]byte{
		"a": []byte(`{"name":"a","role":"viewer","userKey":"` + apub + `","tokenHash":"x"}`),
		"b": []byte(`{"name":"b","role":"viewer","userKey":"` + bpub + `","tokenHash":"y","revoked":"2026-01-01T00:00:00Z"}`),
	}
	d := auth.NewDirectory()
	d.Apply(snap)
	sign := func(k nkeys.KeyPair) string {
		sig, _ := k.Sign([]byte("n0nce"))
		return base64.RawURLEncoding.EncodeToString(sig)
	}
	if got, err := d.KeySigning("n0nce", sign(a)); err != nil || got != apub {
		t.Errorf("a's signature: %s %v", got, err)
	}
	for name, k := range map[string]nkeys.KeyPair{"revoked": b, "stranger": stranger} {
		if _, err := d.KeySigning("n0nce", sign(k)); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

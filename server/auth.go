package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jetmesh/jetmesh/auth"
	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/internal/kvwatch"
	"github.com/jetmesh/jetmesh/rules"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// internalUser is the server's own in-process connection: the one user that bypasses the
// auth callout (it runs it) and may do everything.
const internalUser = "jetmesh-server"

// authDir is where the issuer key and the first admin's credentials live.
func (s *Server) authDir() string { return filepath.Join(s.cfg.DataDir, "auth") }

// configureAuth makes the embedded nats-server ask jetmesh about every connection: an
// auth callout, answered by the server itself, with the issuer key from the data
// directory. Anonymous connections are refused.
func (s *Server) configureAuth(opts *natsserver.Options) error {
	issuer, err := auth.LoadIssuer(s.authDir())
	if err != nil {
		return fmt.Errorf("access control: %w", err)
	}
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return err
	}
	s.issuer, s.internalPassword = issuer, base64.RawURLEncoding.EncodeToString(pw[:])
	opts.Users = []*natsserver.User{{Username: internalUser, Password: s.internalPassword}}
	opts.AuthCallout = &natsserver.AuthCallout{Issuer: issuer.PublicKey(), Account: auth.GlobalAccount, AuthUsers: []string{internalUser}}
	opts.AlwaysEnableNonce = true // credentials prove their key by signing the nonce
	return nil
}

// startAuth runs access control once the buckets exist: the principal directory, the
// auth callout (following the rules for sidecars' permissions), the credential service,
// and the first admin's credentials.
func (s *Server) startAuth(ctx, runCtx context.Context, nc *nats.Conn, js jetstream.JetStream, wg *sync.WaitGroup) (*auth.Directory, error) {
	log := s.log.With("component", "auth")
	registry, err := auth.OpenRegistry(ctx, js)
	if err != nil {
		return nil, err
	}
	dir := auth.NewDirectory()
	callout := auth.NewCallout(s.issuer, dir, log, s.ns.DisconnectClientByID)
	dir.OnRevoke(func(p auth.Principal) { callout.Kick(p.Name) })
	callout.OnUnknownKey(func() error {
		ctx, cancel := context.WithTimeout(runCtx, 2*time.Second)
		defer cancel()
		snap, err := kvwatch.Read(ctx, js, bus.PrincipalsBucket)
		if err == nil {
			dir.Apply(snap)
		}
		return err
	})
	snap, err := kvwatch.Read(ctx, js, bus.PrincipalsBucket)
	if err != nil {
		return nil, fmt.Errorf("reading principals: %w", err)
	}
	dir.Apply(snap)
	ruleSnap, err := kvwatch.Read(ctx, js, bus.RulesBucket)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	callout.SetRules(decodeRules(ruleSnap))
	wg.Go(func() { dir.Follow(runCtx, js, 30*time.Second, log) })
	wg.Go(func() {
		kvwatch.Keep(runCtx, js, bus.RulesBucket, 30*time.Second, log, func(snap kvwatch.Snapshot) { callout.SetRules(decodeRules(snap)) })
	})
	if err := callout.Listen(runCtx, nc); err != nil {
		return nil, err
	}
	admin := auth.NewAdmin(s.issuer, registry, log)
	if err := admin.Listen(runCtx, nc); err != nil {
		return nil, err
	}
	if err := s.firstAdmin(ctx, admin); err != nil {
		return nil, err
	}
	return dir, nil
}

// firstAdmin writes <data>/auth/admin.creds on the first start with access control on,
// so there is someone to mint the other credentials. Its path is logged, never its
// content.
func (s *Server) firstAdmin(ctx context.Context, admin *auth.Admin) error {
	path := filepath.Join(s.authDir(), "admin.creds")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	name := "admin"
	for i := 2; ; i++ {
		minted, err := admin.Create(ctx, auth.AddRequest{Name: name, Role: auth.RoleAdmin})
		if errors.Is(err, auth.ErrExists) {
			name = fmt.Sprintf("admin-%d", i) // the file was deleted; the old admin stays valid until revoked
			continue
		}
		if err != nil {
			return fmt.Errorf("creating the first admin: %w", err)
		}
		if err := auth.WriteCreds(path, minted.Creds); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		s.log.Info("access control on: admin credentials written; use them with --creds (or JETMESH_CREDS)", "path", path, "principal", name)
		return nil
	}
}

// decodeRules reads the rules bucket the way the reconciler does, skipping invalid ones.
func decodeRules(snap kvwatch.Snapshot) []rules.Rule {
	out := make([]rules.Rule, 0, len(snap))
	for key, raw := range snap {
		if r, err := rules.DecodeStored(key, raw); err == nil {
			out = append(out, r)
		}
	}
	return out
}

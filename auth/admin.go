package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects of the credential service the server runs; only admins may publish to them.
const (
	AddSubject    = "jetmesh.v1.auth.creds.add"
	RevokeSubject = "jetmesh.v1.auth.creds.revoke"
)

// adminQueue is the queue group of the credential service.
const adminQueue = "jetmesh-auth"

// AddRequest asks for a new principal.
type AddRequest struct {
	Name    string   `json:"name"`
	Role    Role     `json:"role"`
	Service string   `json:"service,omitempty"`
	Types   []string `json:"types,omitempty"`
	Source  string   `json:"source,omitempty"`
}

// AddReply carries the new principal's secrets, once.
type AddReply struct {
	Principal *Principal `json:"principal,omitempty"`
	Creds     string     `json:"creds,omitempty"`
	Token     string     `json:"token,omitempty"`
	Error     string     `json:"error,omitempty"`
	// Refused is true when the request itself was wrong (a bad role, a name in use).
	Refused bool `json:"refused,omitempty"`
}

// RevokeRequest names the principal to revoke.
type RevokeRequest struct {
	Name string `json:"name"`
}

// Admin is the server side of `jetmesh creds add` and `creds revoke`: the issuer's seed
// never leaves the server, so minting happens here.
type Admin struct {
	issuer   *Issuer
	registry *Registry
	log      *slog.Logger
}

// NewAdmin returns the credential service.
func NewAdmin(issuer *Issuer, registry *Registry, log *slog.Logger) *Admin {
	return &Admin{issuer: issuer, registry: registry, log: log}
}

// Create mints and stores a principal.
func (a *Admin) Create(ctx context.Context, req AddRequest) (*Minted, error) {
	p := Principal{Name: req.Name, Role: req.Role, Service: req.Service, Types: req.Types, Source: req.Source, Created: time.Now().UTC()}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	m, err := a.issuer.Mint(p)
	if err != nil {
		return nil, err
	}
	if err := a.registry.Create(ctx, m.Principal); err != nil {
		return nil, err
	}
	a.log.Info("principal created", "principal", p.Name, "role", p.Role, "service", p.Service)
	return m, nil
}

// Listen answers add and revoke requests on nc until ctx ends.
func (a *Admin) Listen(ctx context.Context, nc *nats.Conn) error {
	// A queue group: in a cluster every server runs the service, and one must answer.
	add, err := nc.QueueSubscribe(AddSubject, adminQueue, func(m *nats.Msg) {
		var req AddRequest
		reply := AddReply{}
		if err := json.Unmarshal(m.Data, &req); err != nil {
			reply.Error, reply.Refused = "unreadable request: "+err.Error(), true
		} else if minted, err := a.Create(ctx, req); err != nil {
			reply.Error, reply.Refused = err.Error(), errors.Is(err, ErrInvalid) || errors.Is(err, ErrExists)
		} else {
			reply.Principal, reply.Creds, reply.Token = &minted.Principal, string(minted.Creds), minted.Token
		}
		raw, _ := json.Marshal(reply)
		_ = m.Respond(raw)
	})
	if err != nil {
		return fmt.Errorf("credential service: %w", err)
	}
	revoke, err := nc.QueueSubscribe(RevokeSubject, adminQueue, func(m *nats.Msg) {
		var req RevokeRequest
		reply := AddReply{}
		if err := json.Unmarshal(m.Data, &req); err != nil {
			reply.Error, reply.Refused = "unreadable request: "+err.Error(), true
		} else if p, err := a.registry.Revoke(ctx, req.Name, time.Now()); err != nil {
			reply.Error, reply.Refused = err.Error(), errors.Is(err, ErrNotFound)
		} else {
			reply.Principal = &p
			a.log.Info("principal revoked", "principal", p.Name)
		}
		raw, _ := json.Marshal(reply)
		_ = m.Respond(raw)
	})
	if err != nil {
		return fmt.Errorf("credential service: %w", err)
	}
	context.AfterFunc(ctx, func() { _ = add.Unsubscribe(); _ = revoke.Unsubscribe() })
	return nc.Flush()
}

// ReplyError is the credential service's answer when it did not do what was asked.
type ReplyError struct {
	Msg string
	// Refused is true when the request itself was wrong (a bad role, a name in use).
	Refused bool
}

func (e *ReplyError) Error() string { return e.Msg }

// Ask sends req to the credential service on subject (AddSubject or RevokeSubject) over
// nc, whose principal must be an admin, and returns its reply. A refusal or failure of the
// service is a *ReplyError; any other error means no answer was had.
func Ask(ctx context.Context, nc *nats.Conn, subject string, req any) (*AddReply, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg, err := nc.RequestWithContext(ctx, subject, raw)
	if err != nil {
		return nil, err
	}
	var reply AddReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("unreadable answer from the credential service: %w", err)
	}
	if reply.Error != "" {
		return nil, &ReplyError{Msg: reply.Error, Refused: reply.Refused}
	}
	return &reply, nil
}

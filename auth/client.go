package auth

import (
	"fmt"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// Credentials is a client's side of a principal: its credentials file and the name in it.
type Credentials struct {
	File string
	Name string
}

// ReadCredentials reads the principal name from a credentials file.
func ReadCredentials(file string) (*Credentials, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	token, err := jwt.ParseDecoratedJWT(raw)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", file, err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: not a user JWT: %w", file, err)
	}
	if uc.Name == "" {
		return nil, fmt.Errorf("credentials %s: the JWT names no principal (not made by jetmesh creds add?)", file)
	}
	return &Credentials{File: file, Name: uc.Name}, nil
}

// Options are the NATS options of a client with these credentials: its key (proved by
// signing the server's nonce with the seed in the file), and the principal's own inbox
// prefix, the only replies it may receive.
func (c *Credentials) Options() ([]nats.Option, error) {
	key, err := nats.NkeyOptionFromSeed(c.File)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", c.File, err)
	}
	return []nats.Option{key, nats.CustomInboxPrefix(InboxPrefix(c.Name))}, nil
}

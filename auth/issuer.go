package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Issuer signs principals' credentials and the per-connection users the auth callout
// answers with. Its seed lives in the server's data directory (auth/issuer.nk, mode 0600)
// and never leaves the server. It is safe for concurrent use.
type Issuer struct {
	kp  nkeys.KeyPair
	pub string
}

// LoadIssuer reads the issuer seed in dir, creating it on first use.
func LoadIssuer(dir string) (*Issuer, error) {
	path := filepath.Join(dir, "issuer.nk")
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			return nil, err
		}
		if seed, err = kp.Seed(); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("auth directory: %w", err)
		}
		if err := writeSecret(path, seed); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading the issuer key: %w", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return nil, fmt.Errorf("%s is not an account seed: %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	if !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("%s holds a %c key, not an account key", path, pub[0])
	}
	return &Issuer{kp: kp, pub: pub}, nil
}

// PublicKey is the issuer's public key (the callout's configured issuer).
func (is *Issuer) PublicKey() string { return is.pub }

// Minted is what creating a principal yields: the secrets the caller must keep, once.
type Minted struct {
	Principal Principal
	// Creds is a NATS credentials file: the user JWT and its seed.
	Creds []byte
	// Token is the HTTP bearer token.
	Token string
}

// Mint makes the credentials of a new principal: a user key pair and JWT naming it (for
// NATS) and a bearer token (for HTTP). The principal records only their public halves.
func (is *Issuer) Mint(p Principal) (*Minted, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	uc.Name = p.Name
	uc.Tags.Add("role:" + string(p.Role))
	ujwt, err := uc.Encode(is.kp)
	if err != nil {
		return nil, fmt.Errorf("signing the credentials: %w", err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		return nil, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	token := "jm_" + base64.RawURLEncoding.EncodeToString(raw[:])
	p.UserKey, p.TokenHash = upub, HashToken(token)
	return &Minted{Principal: p, Creds: creds, Token: token}, nil
}

// HashToken is how a bearer token is kept and looked up: its SHA-256, in hex. Tokens are
// 256 random bits, so a hash needs no salt or stretching.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ErrBadCredentials: a connection's credentials do not prove a key.
var ErrBadCredentials = errors.New("no valid credentials")

// VerifyKey checks that a connection proved the user key it names by signing the
// server's nonce with its seed, and returns the key. nats-server discards user JWTs
// outside operator mode, so the key is what identifies a principal; the JWT in the
// credentials file tells the client its own name.
func VerifyKey(userKey, nonce, signedNonce string) (string, error) {
	if userKey == "" {
		return "", fmt.Errorf("%w: connect with --creds FILE (the nats CLI: --nkey FILE)", ErrBadCredentials)
	}
	ukp, err := nkeys.FromPublicKey(userKey)
	if err != nil || !nkeys.IsValidPublicUserKey(userKey) {
		return "", fmt.Errorf("%w: %q is not a user key", ErrBadCredentials, userKey)
	}
	sig, err := base64.RawURLEncoding.DecodeString(signedNonce)
	if err != nil {
		sig, err = base64.StdEncoding.DecodeString(signedNonce)
	}
	if err != nil || nonce == "" || ukp.Verify([]byte(nonce), sig) != nil {
		return "", fmt.Errorf("%w: the connection did not prove its key", ErrBadCredentials)
	}
	return userKey, nil
}

// sign signs a claim with the issuer key.
func (is *Issuer) sign(c jwt.Claims) (string, error) { return c.Encode(is.kp) }

// writeSecret writes a file only its owner can read, replacing it atomically.
func writeSecret(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteCreds writes a credentials file (mode 0600).
func WriteCreds(path string, creds []byte) error { return writeSecret(path, creds) }

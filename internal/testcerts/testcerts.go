// Package testcerts makes a throwaway certificate authority and certificates signed by it,
// in-process, for tests of TLS and for `jetmesh bench --secure`: nothing is downloaded or
// read from the machine. Never for production: the CA's key is not kept.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files are PEM files in a test's temporary directory.
type Files struct {
	CA, Cert, Key         string // a server (and route) certificate for 127.0.0.1, ::1 and localhost
	ClientCert, ClientKey string // a client certificate
	OtherCA               string // a CA that signed none of them
}

// New writes a CA, a server certificate and a client certificate into t.TempDir().
func New(t testing.TB) Files {
	t.Helper()
	f, err := Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Generate writes a CA, a server certificate and a client certificate into dir.
func Generate(dir string) (f Files, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("making certificates: %v", r)
		}
	}()
	t := panicky{}
	caKey, caCert, caDER := newCA(t, "jetmesh test CA")
	_, _, otherDER := newCA(t, "unrelated CA")
	f = Files{
		CA: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER), OtherCA: writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherDER),
	}
	f.Cert, f.Key = leaf(t, dir, "server", caKey, caCert, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	f.ClientCert, f.ClientKey = leaf(t, dir, "client", caKey, caCert, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	return f, nil
}

// failer is the part of testing.TB the helpers use; panicky turns a failure into a panic
// that Generate recovers as an error.
type failer interface{ Fatal(args ...any) }

type panicky struct{}

func (panicky) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

func newCA(t failer, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, der
}

func leaf(t failer, dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, usage []x509.ExtKeyUsage) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

func writePEM(t failer, dir, name, kind string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

package testregistry

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Options configures the registry StartWithOptions starts. The zero value is
// the plain HTTP registry without authentication that Start starts.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost,
	// signed by a certificate authority made up at start, whose certificate
	// is written to [Registry.CAFile]. A client trusts the registry only
	// with that file (or with verification off).
	TLS bool
	// Username and Password make the registry ask every request for them,
	// with HTTP basic authentication through distribution's htpasswd access
	// controller. Set both or neither. Distribution takes basic
	// authentication over plain HTTP too, which no real registry should:
	// a test standing for one sets TLS as well.
	Username, Password string
}

// File names under Registry.Dir, next to distribution's docker/ tree.
const (
	caFileName       = "ca.crt"
	htpasswdFileName = "htpasswd"
)

// authRealm is the realm of the registry's basic authentication challenge.
const authRealm = "testregistry"

func (o Options) validate() error {
	if (o.Username == "") != (o.Password == "") {
		return errors.New("a username needs a password and a password a username")
	}
	// The htpasswd format and basic authentication both split at the first
	// colon.
	if strings.Contains(o.Username, ":") {
		return fmt.Errorf("username %q has a colon", o.Username)
	}
	return nil
}

// writeHtpasswd writes an htpasswd file with the one user of o to path.
// The hash has bcrypt's lowest cost: distribution checks it on every request,
// and the default cost would add tens of milliseconds to each.
func writeHtpasswd(path string, o Options) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(o.Password), bcrypt.MinCost)
	if err != nil {
		return fmt.Errorf("hashing the password: %w", err)
	}
	return os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", o.Username, hash), 0o600)
}

// newCertificate makes a certificate authority, writes its certificate as
// PEM to caFile, and returns a server certificate it signed for 127.0.0.1
// and localhost. Both last a day and use ECDSA P-256 keys, which are quick
// to generate.
func newCertificate(caFile string) (tls.Certificate, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	caTemplate := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "testregistry CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// setUp writes the files opts asks for under dir and returns the paths of
// the htpasswd file ("" without authentication) and the CA file ("" without
// TLS), and the server certificate.
func setUp(dir string, opts Options) (htpasswd, caFile string, cert tls.Certificate, err error) {
	if opts.Username != "" {
		htpasswd = filepath.Join(dir, htpasswdFileName)
		if err := writeHtpasswd(htpasswd, opts); err != nil {
			return "", "", tls.Certificate{}, fmt.Errorf("writing %s: %w", htpasswd, err)
		}
	}
	if opts.TLS {
		caFile = filepath.Join(dir, caFileName)
		if cert, err = newCertificate(caFile); err != nil {
			return "", "", tls.Certificate{}, fmt.Errorf("making the TLS certificate: %w", err)
		}
	}
	return htpasswd, caFile, cert, nil
}

// handshakeFilter passes what http.Server logs to w, except its lines about
// failed TLS handshakes: tests provoke those on purpose, with clients that do
// not trust the CA or that speak plain HTTP. What is left, such as a
// handler's panic, is worth seeing.
type handshakeFilter struct{ w io.Writer }

func (f handshakeFilter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("TLS handshake error")) {
		return len(p), nil
	}
	return f.w.Write(p)
}

package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// BindingIssuerCommonName is the common name of the CA that issues binding certificates. Real
// binding certificates are issued by managedidentitysnissuer.login.microsoft.com, and clients
// (MSAL.NET's certificate store lookup) recognise them by that name; the organisation of the
// emulator's CA says it is the emulator's.
const BindingIssuerCommonName = "managedidentitysnissuer.login.microsoft.com"

// authority holds the emulator's key material: the CA of its HTTPS servers and their
// certificate, the CA that issues binding certificates, and the token-signing key.
type authority struct {
	serverCA   *x509.Certificate
	serverCert tls.Certificate

	bindingCA    *x509.Certificate
	bindingKey   crypto.Signer
	bindingPool  *x509.CertPool
	certLifetime time.Duration

	signingKey *rsa.PrivateKey
	kid        string

	mu      sync.RWMutex
	issued  map[string]struct{} // serials (hex) of binding certificates not revoked
	revoked map[string]struct{} // serials (hex) refused at the handshake
}

func newAuthority(certLifetime time.Duration) (*authority, error) {
	now := time.Now()
	a := &authority{
		certLifetime: certLifetime,
		issued:       make(map[string]struct{}),
		revoked:      make(map[string]struct{}),
	}

	// Server CA and the one leaf every HTTPS server presents.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("emulator: generating server CA key: %w", err)
	}
	if a.serverCA, err = selfSigned(caKey, pkix.Name{
		CommonName:   "mtlspop emulator server CA",
		Organization: []string{"mtlspop emulator"},
	}, now, now.Add(365*24*time.Hour)); err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("emulator: generating server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"mtlspop emulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}, a.serverCA, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("emulator: issuing server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, fmt.Errorf("emulator: parsing server certificate: %w", err)
	}
	a.serverCert = tls.Certificate{Certificate: [][]byte{leafDER, a.serverCA.Raw}, PrivateKey: leafKey, Leaf: leaf}

	// Binding-certificate CA. It must outlive every certificate it issues.
	bindingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("emulator: generating binding CA key: %w", err)
	}
	caLife := 365 * 24 * time.Hour
	if certLifetime > 0 {
		caLife += certLifetime
	}
	if a.bindingCA, err = selfSigned(bindingKey, pkix.Name{
		CommonName:   BindingIssuerCommonName,
		Organization: []string{"mtlspop emulator"},
	}, now, now.Add(caLife)); err != nil {
		return nil, err
	}
	a.bindingKey = bindingKey
	a.bindingPool = x509.NewCertPool()
	a.bindingPool.AddCert(a.bindingCA)

	// Token-signing key, named by its RFC 7638 JWK thumbprint.
	if a.signingKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, fmt.Errorf("emulator: generating signing key: %w", err)
	}
	a.kid = jwkThumbprint(&a.signingKey.PublicKey)
	return a, nil
}

func selfSigned(key *ecdsa.PrivateKey, name pkix.Name, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		NotBefore:             notBefore.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("emulator: creating CA %q: %w", name.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// randomSerial returns a positive random 127-bit serial number.
func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("emulator: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func (a *authority) serverCAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.serverCA.Raw})
}

// issueBinding issues a binding certificate for clientID over pub: CN=<clientId>, client
// authentication only, valid from a minute ago for the configured lifetime.
func (a *authority) issueBinding(clientID string, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Minute), now.Add(a.certLifetime)
	if !notBefore.Before(notAfter) {
		notBefore = notAfter.Add(-time.Minute)
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: clientID},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}, a.bindingCA, pub, a.bindingKey)
	if err != nil {
		return nil, fmt.Errorf("issuing binding certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing binding certificate: %w", err)
	}
	a.mu.Lock()
	a.issued[cert.SerialNumber.Text(16)] = struct{}{}
	a.mu.Unlock()
	return cert, nil
}

// revokeAll revokes every binding certificate issued so far.
func (a *authority) revokeAll() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.issued)
	for s := range a.issued {
		a.revoked[s] = struct{}{}
	}
	clear(a.issued)
	return n
}

func (a *authority) isRevoked(c *x509.Certificate) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.revoked[c.SerialNumber.Text(16)]
	return ok
}

type clientCertPolicy int

const (
	clientCertNone    clientCertPolicy = iota // login host
	clientCertAny                             // resource: the token, not the chain, decides
	clientCertBinding                         // mtlsauth: a valid, unrevoked binding certificate
)

type tlsPolicy struct {
	clientAuth clientCertPolicy
	// alsoAccept admits client certificates outside the binding CA on the mtlsauth host: the
	// registered certificates of confidential-client apps.
	alsoAccept func(*x509.Certificate) bool
}

var errRevoked = errors.New("emulator: binding certificate has been revoked")

func (a *authority) serverTLSConfig(p tlsPolicy) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{a.serverCert},
	}
	switch p.clientAuth {
	case clientCertAny:
		cfg.ClientAuth = tls.RequestClientCert
	case clientCertBinding:
		// A client certificate is required and checked here: a binding certificate from the
		// binding CA that is not revoked, or a certificate an app registered. VerifyConnection,
		// unlike VerifyPeerCertificate, also runs when a session is resumed, so a revoked
		// certificate cannot slip back in on a resumption ticket.
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("emulator: no client certificate")
			}
			if p.alsoAccept != nil && p.alsoAccept(cs.PeerCertificates[0]) {
				return nil
			}
			return a.verifyBinding(cs.PeerCertificates)
		}
	}
	return cfg
}

// verifyBinding checks that chain[0] is a binding certificate: issued by the binding CA (with
// chain[1:] as intermediates), valid now, for client authentication, and not revoked. The TLS
// layer runs it for certificates no app registered; the token endpoint runs it again before it
// issues a managed identity's token, because the TLS layer also admits app certificates, which
// anyone can make with any subject.
func (a *authority) verifyBinding(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("emulator: no client certificate")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.bindingPool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("emulator: client certificate not issued by the binding CA: %w", err)
	}
	if a.isRevoked(leaf) {
		return errRevoked
	}
	return nil
}

// publicKeys are the token-signing keys by kid, for pop.StaticKeys.
func (a *authority) publicKeys() map[string]crypto.PublicKey {
	return map[string]crypto.PublicKey{a.kid: &a.signingKey.PublicKey}
}

// jwk is one RSA key of a JWKS.
type jwk struct {
	Kid string `json:"kid"`
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func rsaJWK(kid string, pub *rsa.PublicKey) jwk {
	return jwk{
		Kid: kid, Kty: "RSA", Use: "sig", Alg: "RS256",
		N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// jwkThumbprint is the RFC 7638 thumbprint of an RSA key: SHA-256 over the JSON of its required
// members in lexicographic order.
func jwkThumbprint(pub *rsa.PublicKey) string {
	k := rsaJWK("", pub)
	// Members e, kty, n in that order; json.Marshal of a struct keeps field order.
	b, _ := json.Marshal(struct {
		E   string `json:"e"`
		Kty string `json:"kty"`
		N   string `json:"n"`
	}{k.E, k.Kty, k.N})
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

package confidential

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/token"
)

type credKind uint8

const (
	credCertificate credKind = iota + 1
	credSecret
	credAssertion
	credAssertionFunc
)

// Credential authenticates the application to the token endpoint. Build one with Certificate,
// CertificateFunc, Secret, StaticAssertion or AssertionFunc. Formatting a Credential never
// prints a secret, an assertion or a key.
type Credential struct {
	kind          credKind
	cert          func(context.Context) (*tls.Certificate, error)
	sendX5C       bool
	secret        string
	assertion     string
	assertionFunc func(context.Context, AssertionRequest) (Assertion, error)
}

// AssertionRequest tells an assertion callback what the assertion is for.
type AssertionRequest struct {
	ClientID      string
	TokenEndpoint string // the audience a client-assertion JWT must carry
	// CacheOnly: the acquisition is cache-only (WithCacheOnly). A callback that gets its assertion
	// from a token cache should then not fetch, and fail instead when nothing is cached.
	CacheOnly bool
}

// Assertion is what an assertion callback returns. When BindingCertificate is set (bound FIC),
// the token request goes over mutual TLS with that certificate and the assertion is sent as a
// jwt-pop assertion: the token is then bound to that certificate when PoP is asked for, and a
// Bearer token delivered over mTLS otherwise.
type Assertion struct {
	Assertion          string
	BindingCertificate *tls.Certificate // Leaf set; PrivateKey a crypto.Signer
}

// String describes the assertion without it and without the certificate's private key.
func (a Assertion) String() string {
	s := "confidential.Assertion{" + token.Redacted(a.Assertion)
	if a.BindingCertificate != nil && a.BindingCertificate.Leaf != nil {
		s += ", bound to x5t#S256 " + token.Thumbprint(a.BindingCertificate.Leaf)
	}
	return s + "}"
}

// Format makes every fmt verb print String().
func (a Assertion) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(a.String())) }

// LogValue renders the assertion for log/slog as String() does (slog's JSON handler would
// otherwise encode the fields, the certificate's private key among them).
func (a Assertion) LogValue() slog.Value { return slog.StringValue(a.String()) }

// CertificateOption configures a certificate credential.
type CertificateOption func(*Credential)

// WithX5C sends the certificate chain in the client assertion's x5c header, for apps whose
// registration trusts the issuer and subject rather than one certificate (SN/I).
func WithX5C() CertificateOption { return func(c *Credential) { c.sendX5C = true } }

// Certificate authenticates with a certificate and its private key (any crypto.Signer, so a TPM
// key works): a signed client assertion at the classic endpoint, and the TLS client certificate
// itself on the mTLS endpoint.
func Certificate(cert *tls.Certificate, opts ...CertificateOption) Credential {
	c := Credential{kind: credCertificate, cert: func(context.Context) (*tls.Certificate, error) { return cert, nil }}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// CertificateFunc is Certificate with a certificate fetched on every acquisition, for
// certificates that rotate. Tokens are cached by the certificate's thumbprint, so a rotated
// certificate never gets a token bound to its predecessor.
func CertificateFunc(f func(ctx context.Context) (*tls.Certificate, error), opts ...CertificateOption) Credential {
	c := Credential{kind: credCertificate, cert: f}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Secret authenticates with a client secret (classic endpoint only; it cannot do mTLS).
func Secret(secret string) Credential { return Credential{kind: credSecret, secret: secret} }

// StaticAssertion authenticates with a fixed client assertion (classic endpoint only).
func StaticAssertion(assertion string) Credential {
	return Credential{kind: credAssertion, assertion: assertion}
}

// AssertionFunc authenticates with an assertion produced for each token request, such as a
// federated credential (FIC) from a managed identity. See Assertion for binding certificates.
func AssertionFunc(f func(ctx context.Context, req AssertionRequest) (Assertion, error)) Credential {
	return Credential{kind: credAssertionFunc, assertionFunc: f}
}

// String describes the credential without its secret material.
func (c Credential) String() string {
	switch c.kind {
	case credCertificate:
		return "confidential.Credential{certificate}"
	case credSecret:
		return "confidential.Credential{secret " + token.Redacted(c.secret) + "}"
	case credAssertion:
		return "confidential.Credential{assertion " + token.Redacted(c.assertion) + "}"
	case credAssertionFunc:
		return "confidential.Credential{assertion callback}"
	}
	return "confidential.Credential{invalid}"
}

// Format makes every fmt verb print String().
func (c Credential) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// clientAssertionLifetime is how long a client assertion JWT is valid.
const clientAssertionLifetime = 10 * time.Minute

// clientAssertion builds the classic certificate credential: a JWT for aud (the token
// endpoint), iss = sub = the client id, signed with the certificate's key (PS256 for RSA, ES256
// for P-256), naming the certificate by x5t#S256 (and its chain in x5c when asked).
func clientAssertion(cert *tls.Certificate, clientID, aud string, sendX5C bool, now time.Time) (string, error) {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || cert.Leaf == nil {
		return "", token.Errorf(token.CodeInvalidArgument, "confidential: the certificate needs its Leaf and a crypto.Signer private key")
	}
	header := map[string]any{"typ": "JWT", "x5t#S256": token.ThumbprintDER(cert.Leaf.Raw)}
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		header["alg"] = "PS256"
	case *ecdsa.PublicKey:
		if pub.Curve.Params().BitSize != 256 {
			return "", token.Errorf(token.CodeInvalidArgument, "confidential: ECDSA certificates must use P-256")
		}
		header["alg"] = "ES256"
	default:
		return "", token.Errorf(token.CodeInvalidArgument, "confidential: unsupported certificate key %T", pub)
	}
	if sendX5C {
		chain := make([]string, len(cert.Certificate))
		for i, der := range cert.Certificate {
			chain[i] = base64.StdEncoding.EncodeToString(der)
		}
		header["x5c"] = chain
	}
	claims := map[string]any{
		"aud": aud, "iss": clientID, "sub": clientID, "jti": wire.NewGUID(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(clientAssertionLifetime).Unix(),
	}
	return signJWT(signer, header, claims)
}

// signJWT signs a compact JWS through a crypto.Signer. golang-jwt signs only with key types it
// knows (*rsa.PrivateKey), and a TPM key is not one of them.
func signJWT(signer crypto.Signer, header, claims map[string]any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", token.Wrap(token.CodeInternal, err, "confidential: encoding the assertion header")
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", token.Wrap(token.CodeInternal, err, "confidential: encoding the assertion claims")
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch signer.Public().(type) {
	case *rsa.PublicKey:
		sig, err = signer.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	case *ecdsa.PublicKey:
		var der []byte
		if der, err = signer.Sign(rand.Reader, digest[:], crypto.SHA256); err == nil {
			sig, err = rawECDSA(der)
		}
	}
	if err != nil {
		return "", token.Wrap(token.CodeInternal, err, "confidential: signing the client assertion")
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// rawECDSA converts an ASN.1 ECDSA signature to the JWS form: r and s, 32 bytes each.
func rawECDSA(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}

// leaf makes sure a certificate has its parsed Leaf.
func leaf(cert *tls.Certificate) (*tls.Certificate, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, token.Errorf(token.CodeMtlsCertificateNotProvided, "confidential: no certificate")
	}
	if cert.Leaf != nil {
		return cert, nil
	}
	l, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, token.Wrap(token.CodeInvalidArgument, err, "confidential: the certificate does not parse")
	}
	c := *cert
	c.Leaf = l
	return &c, nil
}

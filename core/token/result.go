package token

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Token types as they appear in token responses and in the Authorization header.
const (
	TypeBearer  = "Bearer"
	TypeMtlsPoP = "mtls_pop"
)

// TokenSource says where a Result came from.
type TokenSource uint8

const (
	// SourceIdentityProvider: the token was fetched from the network for this call.
	SourceIdentityProvider TokenSource = iota
	// SourceCache: the token was served from the cache.
	SourceCache
)

func (s TokenSource) String() string {
	if s == SourceCache {
		return "cache"
	}
	return "identity_provider"
}

// Result is an acquired access token. It is a value: copying it is cheap and the copy shares the
// (immutable) certificate. Callers must not modify the certificate it points to.
//
// Formatting a Result with any fmt verb, or logging it with log/slog, never prints AccessToken.
type Result struct {
	AccessToken string
	TokenType   string    // TypeBearer or TypeMtlsPoP
	ExpiresOn   time.Time // the token is not used past this instant
	RefreshOn   time.Time // zero when the token has no refresh point
	Source      TokenSource
	// BindingCertificate is the certificate the token is bound to (cnf x5t#S256); nil for Bearer.
	BindingCertificate *x509.Certificate

	tlsCert    *tls.Certificate
	thumbprint string
}

// Bind returns a copy of r bound to c, whose Leaf must be set and whose PrivateKey is the signer
// of the binding key. The certificate is shared, not copied.
func (r Result) Bind(c *tls.Certificate) Result {
	r.tlsCert = c
	if c == nil {
		r.BindingCertificate, r.thumbprint = nil, ""
		return r
	}
	r.BindingCertificate = c.Leaf
	r.thumbprint = Thumbprint(c.Leaf)
	return r
}

// TLSCertificate returns the binding certificate with its signer, ready for tls.Config. For a
// Bearer token it returns the zero Certificate.
func (r Result) TLSCertificate() tls.Certificate {
	if r.tlsCert == nil {
		return tls.Certificate{}
	}
	return *r.tlsCert
}

// TLSCertificatePtr returns the shared binding certificate, or nil for a Bearer token. It exists
// so that pooled clients can compare identity without copying.
func (r Result) TLSCertificatePtr() *tls.Certificate { return r.tlsCert }

// Thumbprint is the x5t#S256 of the binding certificate, "" for a Bearer token.
func (r Result) Thumbprint() string { return r.thumbprint }

// IsPoP reports whether the token is an mTLS proof-of-possession token.
func (r Result) IsPoP() bool { return strings.EqualFold(r.TokenType, TypeMtlsPoP) }

// AuthorizationHeader returns the value for the Authorization header: "<token_type> <token>".
// It is the one place that knows the header format.
func (r Result) AuthorizationHeader() string {
	return r.TokenType + " " + r.AccessToken
}

// String describes the result with the access token redacted.
func (r Result) String() string {
	var b strings.Builder
	b.WriteString("token.Result{TokenType: ")
	b.WriteString(r.TokenType)
	b.WriteString(", AccessToken: ")
	b.WriteString(Redacted(r.AccessToken))
	b.WriteString(", ExpiresOn: ")
	b.WriteString(r.ExpiresOn.UTC().Format(time.RFC3339))
	if !r.RefreshOn.IsZero() {
		b.WriteString(", RefreshOn: ")
		b.WriteString(r.RefreshOn.UTC().Format(time.RFC3339))
	}
	b.WriteString(", Source: ")
	b.WriteString(r.Source.String())
	if r.thumbprint != "" {
		b.WriteString(", Thumbprint: ")
		b.WriteString(r.thumbprint)
	}
	b.WriteByte('}')
	return b.String()
}

// Format makes every verb (%v, %+v, %#v, %s, %q, ...) print String(), so no format of a Result
// prints the token.
func (r Result) Format(f fmt.State, verb rune) {
	s := r.String()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = f.Write([]byte(s))
}

// LogValue renders the result for log/slog without the token.
func (r Result) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("token_type", r.TokenType),
		slog.String("access_token", Redacted(r.AccessToken)),
		slog.Time("expires_on", r.ExpiresOn),
		slog.String("token_source", r.Source.String()),
	}
	if r.thumbprint != "" {
		attrs = append(attrs, slog.String("x5t#S256", r.thumbprint))
	}
	return slog.GroupValue(attrs...)
}

// Redacted describes a secret without revealing it: its length only.
func Redacted(secret string) string {
	if secret == "" {
		return "<empty>"
	}
	return "<redacted " + strconv.Itoa(len(secret)) + " bytes>"
}

// Thumbprint returns the RFC 8705 x5t#S256 of a certificate: the unpadded base64url SHA-256 of
// its whole DER encoding. It is also the cache key id of tokens bound to the certificate.
func Thumbprint(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return ThumbprintDER(c.Raw)
}

// ThumbprintDER is Thumbprint over raw certificate DER.
func ThumbprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

package managedidentity

import (
	"context"
	"crypto/sha1" // #nosec G505 -- Service Fabric publishes its endpoint certificate's SHA-1 thumbprint
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode"

	"github.com/mtlspop/mtlspop/core/token"
)

// Service Fabric (reference/msal-dotnet-mtlspop.md §2.2, DESIGN §4): GET $IDENTITY_ENDPOINT (HTTPS)
// with api-version=2020-05-01 and the secret from $IDENTITY_HEADER in the header "secret". The
// cluster decides the identity: only an object id may be passed, as principalId; a client id or
// resource id is user_assigned_managed_identity_not_configurable_at_runtime.
//
// The endpoint's certificate is usually self-signed. It is accepted when it chains to a trusted
// root, or when its SHA-1 thumbprint equals $IDENTITY_SERVER_THUMBPRINT (hex, case-insensitive,
// colons and spaces ignored). Redirects are never followed: the secret must go nowhere else.
const (
	serviceFabricAPIVersion   = "2020-05-01"
	serviceFabricSecretHeader = "secret"
	serviceFabricPrincipalID  = "principalId"
	serviceFabricRevokedToken = "token_sha256_to_refresh"
)

type serviceFabric struct {
	endpoint *url.URL
	secret   string
	pin      []byte // SHA-1 of the endpoint's certificate

	once    sync.Once
	http    *http.Client
	httpErr error
}

func newServiceFabric(getenv func(string) string) (source, error) {
	u, err := endpointURL(envIdentityEndpoint, getenv(envIdentityEndpoint))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return nil, token.Errorf(token.CodeInvalidManagedIdentityURL, "%s must be an https URL on Service Fabric", envIdentityEndpoint)
	}
	pin, err := parseThumbprint(getenv(envServerThumbprint))
	if err != nil {
		return nil, err
	}
	return &serviceFabric{endpoint: u, secret: getenv(envIdentityHeader), pin: pin}, nil
}

// parseThumbprint normalises a SHA-1 thumbprint: colons and white space are dropped, and 40 hex
// digits must remain.
func parseThumbprint(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ':' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha1.Size {
		return nil, token.Errorf(token.CodeInvalidManagedIdentityURL, "%s is not a SHA-1 certificate thumbprint (40 hex digits)", envServerThumbprint)
	}
	return b, nil
}

func (s *serviceFabric) name() string { return string(SourceServiceFabric) }

func (s *serviceFabric) bearer(ctx context.Context, c *Client, resource, claims string) (token.Result, error) {
	q := url.Values{"api-version": {serviceFabricAPIVersion}, "resource": {resource}}
	switch c.id.kind {
	case kindSystem:
	case kindObjectID:
		q.Set(serviceFabricPrincipalID, c.id.value)
	default:
		return token.Result{}, selectorError(token.CodeUserAssignedNotConfigurable, SourceServiceFabric,
			"Service Fabric's cluster configuration decides the identity; a %s cannot be asked for at runtime (an object id can)", kindName(c.id))
	}
	if claims != "" {
		// A claims challenge means the current token was refused: name it so the service does not
		// hand it back from its own cache.
		if cached := c.bearer.Lookup(resource); cached != nil {
			sum := sha256.Sum256([]byte(cached.AccessToken))
			q.Set(serviceFabricRevokedToken, hex.EncodeToString(sum[:]))
		}
	}
	hc, err := s.client(c)
	if err != nil {
		return token.Result{}, err
	}
	endpoint := withQuery(s.endpoint, q)
	w := *c.wire
	w.HTTP = hc
	_, r, err := miCall{source: s.name(), what: "Service Fabric token request", wire: &w,
		newReq: func(ctx context.Context, correlationID string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set(serviceFabricSecretHeader, s.secret)
			req.Header.Set("Accept", "application/json")
			clientHeaders(req.Header, correlationID)
			return req, nil
		}}.token(ctx, c)
	return r, err
}

// client derives, once, the HTTP client for the endpoint from the client's: the same transport
// settings, the certificate check above, no redirects and no kept-alive connections (a token
// is fetched rarely, and nothing is left open when the Client is closed).
func (s *serviceFabric) client(c *Client) (*http.Client, error) {
	s.once.Do(func() { s.http, s.httpErr = s.derive(c.cfg.http, c.cfg.roots) })
	return s.http, s.httpErr
}

func (s *serviceFabric) derive(base *http.Client, roots *x509.CertPool) (*http.Client, error) {
	var tr *http.Transport
	switch t := base.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, token.Errorf(token.CodeInvalidArgument,
			"managedidentity: Service Fabric needs an *http.Transport (from WithHTTPClient) to check its endpoint's certificate")
	}
	if tr.DialTLS != nil || tr.DialTLSContext != nil { //nolint:staticcheck // DialTLS would bypass the check
		return nil, token.Errorf(token.CodeInvalidArgument,
			"managedidentity: Service Fabric cannot check its endpoint's certificate through a custom TLS dialer")
	}
	cfg := &tls.Config{}
	if tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	cfg.InsecureSkipVerify = true // #nosec G402 -- VerifyConnection does the verification: chain or pin
	cfg.VerifyPeerCertificate = nil
	cfg.VerifyConnection = s.verifier(roots)
	cfg.NextProtos = nil // set again by the transport if it speaks HTTP/2 on the new pool
	tr.TLSClientConfig = cfg
	tr.TLSNextProto = nil // a fresh HTTP/2 pool, never a connection made without the check
	tr.DisableKeepAlives = true
	h := *base
	h.Transport = tr
	h.CheckRedirect = noRedirects
	return &h, nil
}

// errThumbprint: the endpoint's certificate is neither trusted nor the pinned one.
var errThumbprint = errors.New("managedidentity: the Service Fabric endpoint's certificate does not chain to a trusted root and does not match " + envServerThumbprint)

func (s *serviceFabric) verifier(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errThumbprint
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName}); err == nil {
			return nil
		}
		sum := sha1.Sum(leaf.Raw) // #nosec G401 -- a thumbprint comparison, as Service Fabric defines it
		if subtle.ConstantTimeCompare(sum[:], s.pin) == 1 {
			return nil
		}
		return errThumbprint
	}
}

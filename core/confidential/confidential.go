// Package confidential acquires app-only tokens for a confidential client (an application with a
// certificate, a secret or a federated assertion), including mTLS proof-of-possession tokens on
// the mtlsauth endpoint and bound federated credentials.
//
//	cc, err := confidential.New("https://login.microsoftonline.com/<tenant>", clientID,
//	    confidential.Certificate(cert))
//	res, err := cc.AcquireTokenForClient(ctx, []string{"https://vault.azure.net/.default"},
//	    confidential.WithMtlsPoP())
//	resp, err := cc.Do(ctx, req, res)
//
// Three paths, chosen by the credential and the options:
//   - classic: a client assertion JWT (or the secret) to <authority>/oauth2/v2.0/token; Bearer;
//   - mTLS PoP with a certificate: the certificate authenticates at the TLS layer of
//     https://[<region>.]mtlsauth.<cloud>/<tenant>/oauth2/v2.0/token, no client assertion, and
//     the token is bound to it;
//   - bound FIC: an assertion callback that returns a binding certificate sends its assertion as
//     a jwt-pop assertion over mTLS with that certificate: a Bearer token over mTLS by default,
//     an mtls_pop token when PoP is asked for.
//
// Tokens are cached by the thumbprint of the certificate actually presented, so a rotated
// certificate never gets a token bound to the old one (MSAL.NET #6117).
package confidential

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mtlspop/mtlspop/core/cache"
	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/mtls"
	"github.com/mtlspop/mtlspop/core/token"
)

// Client assertion types.
const (
	assertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	assertionTypeJWTPoP    = "urn:ietf:params:oauth:client-assertion-type:jwt-pop"
)

// DefaultTimeout bounds an acquisition whose context has no deadline.
const DefaultTimeout = 60 * time.Second

// Option configures New.
type Option interface{ applyClient(*config) }

// AcquireOption configures one AcquireTokenForClient call.
type AcquireOption interface {
	applyAcquire(acquireConfig) acquireConfig
}

type config struct {
	region       string
	mtlsEndpoint string
	roots        *x509.CertPool
	getenv       func(string) string
	logger       *slog.Logger
	retryWait    func(context.Context, time.Duration) error
	timeout      time.Duration
	now          func() time.Time
}

type acquireConfig struct {
	pop       bool
	force     bool
	cacheOnly bool
	claims    string
}

type clientOption func(*config)

func (f clientOption) applyClient(c *config) { f(c) }

// WithRegion sets the Azure region of the mTLS endpoint ("westus3" → westus3.mtlsauth...). An
// explicit region wins over MSAL_FORCE_REGION and REGION_NAME; a region that is not
// alphanumeric is ignored and the global endpoint is used.
func WithRegion(region string) Option { return clientOption(func(c *config) { c.region = region }) }

// WithMtlsEndpoint sets the mTLS token host ("https://host[:port]") instead of deriving it from
// the authority: for private clouds and the local emulator.
func WithMtlsEndpoint(base string) Option {
	return clientOption(func(c *config) { c.mtlsEndpoint = strings.TrimRight(base, "/") })
}

// WithRootCAs sets the trust anchors for the token endpoints and resources (default: the system
// roots plus SSL_CERT_FILE and SSL_CERT_DIR).
func WithRootCAs(pool *x509.CertPool) Option { return clientOption(func(c *config) { c.roots = pool }) }

// WithEnv sets how the client reads environment variables (default os.Getenv).
func WithEnv(getenv func(string) string) Option {
	return clientOption(func(c *config) { c.getenv = getenv })
}

// WithLogger enables structured logging; secrets are never logged.
func WithLogger(l *slog.Logger) Option { return clientOption(func(c *config) { c.logger = l }) }

// WithRetryWait replaces how the client waits between retries (tests).
func WithRetryWait(wait func(ctx context.Context, d time.Duration) error) Option {
	return clientOption(func(c *config) { c.retryWait = wait })
}

// WithTimeout bounds an acquisition whose context has no deadline (default 60 s).
func WithTimeout(d time.Duration) Option { return clientOption(func(c *config) { c.timeout = d }) }

type popOption struct{}

func (popOption) applyAcquire(c acquireConfig) acquireConfig { c.pop = true; return c }

type forceOption struct{}

func (forceOption) applyAcquire(c acquireConfig) acquireConfig { c.force = true; return c }

type cacheOnlyOption struct{}

func (cacheOnlyOption) applyAcquire(c acquireConfig) acquireConfig { c.cacheOnly = true; return c }

type claimsOption string

func (o claimsOption) applyAcquire(c acquireConfig) acquireConfig { c.claims = string(o); return c }

// WithMtlsPoP asks for an mTLS proof-of-possession token bound to the certificate presented on
// the mtlsauth endpoint (the app certificate, or an assertion's binding certificate).
func WithMtlsPoP() AcquireOption { return popOption{} }

// WithForceRefresh skips the token cache.
func WithForceRefresh() AcquireOption { return forceOption{} }

// WithCacheOnly returns a cached token or fails at once with token.CodeNotCached: it sends no
// token request. A certificate or assertion callback still runs, since the certificate picks the
// cache partition; AssertionRequest.CacheOnly asks an assertion callback not to fetch either
// (FromManagedIdentity and FromConfidentialClient honor it).
func WithCacheOnly() AcquireOption { return cacheOnlyOption{} }

// WithClaims sends a claims request; a call with claims always fetches.
func WithClaims(claims string) AcquireOption { return claimsOption(claims) }

// Client acquires app-only tokens. It is safe for concurrent use.
type Client struct {
	clientID string
	auth     authority
	cred     Credential
	cfg      config
	pool     *mtls.Pool
	cache    *cache.Cache
	bearer   *cache.Part // classic Bearer tokens (no certificate at the TLS layer)
	certs    atomic.Pointer[certInfo]
	closed   atomic.Bool
	// mtlsTokenURL is the mTLS token endpoint, resolved once in New (the region included); when
	// the authority has none, mtlsErr says why and mTLS requests fail with it.
	mtlsTokenURL string
	mtlsErr      error
}

// certInfo remembers the last certificate seen, so its thumbprint and cache partitions are
// computed once, not per call.
type certInfo struct {
	in     *tls.Certificate // as the credential returned it
	cert   *tls.Certificate // with Leaf parsed
	thumb  string
	pop    *cache.Part
	bearer *cache.Part // Bearer over mTLS
}

// New returns a client for the application clientID registered in the authority's tenant.
func New(authorityURL, clientID string, cred Credential, opts ...Option) (*Client, error) {
	auth, err := parseAuthority(authorityURL)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(clientID) == "" {
		return nil, token.Errorf(token.CodeInvalidArgument, "confidential: client id is empty")
	}
	switch {
	case cred.kind == 0:
		return nil, token.Errorf(token.CodeInvalidArgument, "confidential: no credential")
	case cred.kind == credSecret && cred.secret == "", cred.kind == credAssertion && cred.assertion == "",
		cred.kind == credCertificate && cred.cert == nil, cred.kind == credAssertionFunc && cred.assertionFunc == nil:
		return nil, token.Errorf(token.CodeInvalidArgument, "confidential: the credential is empty")
	}
	c := &Client{clientID: clientID, auth: auth, cred: cred}
	for _, o := range opts {
		if o != nil {
			o.applyClient(&c.cfg)
		}
	}
	if c.cfg.getenv == nil {
		c.cfg.getenv = os.Getenv
	}
	if c.cfg.timeout <= 0 {
		c.cfg.timeout = DefaultTimeout
	}
	var clock cache.Clock
	if c.cfg.now == nil {
		c.cfg.now = time.Now
	} else {
		clock = cache.FuncClock(c.cfg.now)
	}
	if c.cfg.mtlsEndpoint != "" {
		if u, err := url.Parse(c.cfg.mtlsEndpoint); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, token.Errorf(token.CodeInvalidArgument, "confidential: the mTLS endpoint must be an https URL")
		}
	}
	if c.cfg.roots == nil {
		if c.cfg.roots, err = mtls.Roots(c.cfg.getenv, ""); err != nil {
			return nil, err
		}
	}
	c.mtlsTokenURL, c.mtlsErr = c.resolveMtlsTokenURL()
	c.pool = mtls.NewPool(c.cfg.roots)
	c.cache = cache.New(cache.Options{Clock: clock})
	c.bearer = c.cache.Partition(c.partition(token.TypeBearer, ""))
	return c, nil
}

func (c *Client) partition(tokenType, keyID string) cache.Partition {
	return cache.Partition{Authority: c.auth.base + "/" + c.auth.tenant, Identity: c.clientID, TokenType: tokenType, KeyID: keyID}
}

// info returns the certificate's remembered thumbprint and partitions.
func (c *Client) info(cert *tls.Certificate) (*certInfo, error) {
	last := c.certs.Load()
	if last != nil && (last.in == cert || (len(cert.Certificate) > 0 && bytes.Equal(last.cert.Certificate[0], cert.Certificate[0]))) {
		return last, nil
	}
	full, err := leaf(cert)
	if err != nil {
		return nil, err
	}
	if full.PrivateKey == nil {
		return nil, token.Errorf(token.CodeMtlsCertificateNotProvided, "confidential: the certificate has no private key")
	}
	thumb := token.ThumbprintDER(full.Leaf.Raw)
	ci := &certInfo{in: cert, cert: full, thumb: thumb,
		pop:    c.cache.Partition(c.partition(token.TypeMtlsPoP, thumb)),
		bearer: c.cache.Partition(c.partition(token.TypeBearer, thumb))}
	if last != nil && last.thumb != thumb {
		// The certificate rotated: the old one's tokens and connections go.
		c.cache.Drop(last.pop.Key())
		c.cache.Drop(last.bearer.Key())
		c.pool.Evict(last.cert)
	}
	c.certs.Store(ci)
	return ci, nil
}

// AcquireTokenForClient returns an app-only token for scopes (for example
// "https://vault.azure.net/.default"). See the package documentation for the three paths.
func (c *Client) AcquireTokenForClient(ctx context.Context, scopes []string, opts ...AcquireOption) (token.Result, error) {
	if c.closed.Load() {
		return token.Result{}, token.Errorf(token.CodeClosed, "confidential: the client is closed")
	}
	var o acquireConfig
	for _, opt := range opts {
		if opt != nil {
			o = opt.applyAcquire(o)
		}
	}
	resource, err := scopeKey(scopes)
	if err != nil {
		return token.Result{}, err
	}
	plan, err := c.plan(ctx, o.pop, o.cacheOnly)
	if err != nil {
		return token.Result{}, err
	}
	if !o.force && o.claims == "" {
		// The hit path: no deadline to create, no request to sign.
		if r := plan.part.Lookup(resource); r != nil {
			return *r, nil
		}
	}
	if o.cacheOnly {
		return token.Result{}, token.CacheOnlyMiss("confidential", o.force, o.claims != "")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	return c.fetch(ctx, plan, resource, scopes, o)
}

// fetch is AcquireTokenForClient's network path (a function of its own so that the hit path
// captures nothing in a closure, and allocates nothing).
func (c *Client) fetch(ctx context.Context, plan plan, resource string, scopes []string, o acquireConfig) (token.Result, error) {
	return plan.part.Get(ctx, resource, o.force || o.claims != "", func(ctx context.Context, refresh bool) (token.Result, error) {
		if !refresh {
			return c.request(ctx, plan, scopes, o)
		}
		// A background refresh, hours later: a fresh client assertion or callback result, no
		// claims challenge (it belonged to the call that got it), and never a token for another
		// certificate stored under this one's partition.
		p, err := c.plan(ctx, o.pop, false)
		if err != nil {
			return token.Result{}, err
		}
		if p.part != plan.part {
			return token.Result{}, token.Errorf(token.CodeMtlsCertificateNotProvided,
				"confidential: the certificate changed; the old certificate's token is not refreshed")
		}
		return c.request(ctx, p, scopes, acquireConfig{pop: o.pop})
	})
}

// scopeKey validates scopes and returns their cache key (sorted, space-joined). The usual single
// scope is its own key, so the hit path does not allocate.
func scopeKey(scopes []string) (string, error) {
	if len(scopes) == 0 {
		return "", token.Errorf(token.CodeInvalidArgument, "confidential: no scopes")
	}
	for _, v := range scopes {
		if v == "" || strings.ContainsAny(v, " \t\r\n") {
			return "", token.Errorf(token.CodeInvalidArgument, "confidential: scope %q is empty or has spaces", v)
		}
	}
	if len(scopes) == 1 {
		return scopes[0], nil
	}
	s := slices.Clone(scopes)
	slices.Sort(s)
	return strings.Join(s, " "), nil
}

// plan is how one acquisition authenticates.
type plan struct {
	endpoint      string           // token endpoint URL
	cert          *tls.Certificate // TLS client certificate; nil on the classic endpoint
	assertion     string           // client_assertion, if any
	assertionType string
	secret        string
	signWith      *tls.Certificate // classic certificate credential: sign a client assertion per request
	part          *cache.Part
}

// plan resolves the credential for this call: it runs the certificate or assertion callback,
// picks the endpoint, and refuses combinations that cannot work.
func (c *Client) plan(ctx context.Context, pop, cacheOnly bool) (plan, error) {
	var cert *tls.Certificate
	var p plan
	switch c.cred.kind {
	case credCertificate:
		got, err := c.cred.cert(ctx)
		if err != nil {
			return plan{}, token.Wrap(token.CodeMtlsCertificateNotProvided, err, "confidential: the certificate callback failed")
		}
		if got == nil {
			return plan{}, token.Errorf(token.CodeMtlsCertificateNotProvided, "confidential: the certificate callback returned no certificate")
		}
		cert = got
	case credSecret:
		p.secret = c.cred.secret
	case credAssertion:
		p.assertion, p.assertionType = c.cred.assertion, assertionTypeJWTBearer
	case credAssertionFunc:
		a, err := c.cred.assertionFunc(ctx, AssertionRequest{ClientID: c.clientID, TokenEndpoint: c.auth.tokenURL, CacheOnly: cacheOnly})
		if err != nil {
			var te *token.Error
			if errors.As(err, &te) {
				return plan{}, err // leg 1's own error (a managed identity, another client) keeps its code
			}
			return plan{}, token.Wrap(token.CodeInvalidArgument, err, "confidential: the assertion callback failed")
		}
		if a.Assertion == "" {
			return plan{}, token.Errorf(token.CodeInvalidArgument, "confidential: the assertion callback returned an empty assertion")
		}
		p.assertion, p.assertionType = a.Assertion, assertionTypeJWTBearer
		if a.BindingCertificate != nil {
			cert, p.assertionType = a.BindingCertificate, assertionTypeJWTPoP // bound FIC: implicit mTLS
		}
	}
	if pop && cert == nil {
		return plan{}, token.Errorf(token.CodeMtlsCertificateNotProvided,
			"confidential: mTLS PoP needs a certificate credential or an assertion callback that returns a binding certificate")
	}
	if cert == nil || (c.cred.kind == credCertificate && !pop) {
		// Classic endpoint. A certificate credential signs a client assertion, but only when a
		// request is sent (request): a cache hit costs no signature.
		if cert != nil {
			ci, err := c.info(cert)
			if err != nil {
				return plan{}, err
			}
			p.signWith = ci.cert
		}
		p.endpoint, p.part = c.auth.tokenURL, c.bearer
		return p, nil
	}
	if c.mtlsErr != nil {
		return plan{}, c.mtlsErr
	}
	ci, err := c.info(cert)
	if err != nil {
		return plan{}, err
	}
	p.endpoint, p.cert = c.mtlsTokenURL, ci.cert
	p.part = ci.bearer
	if pop {
		p.part = ci.pop
	}
	return p, nil
}

// resolveMtlsTokenURL derives the mTLS token endpoint: WithMtlsEndpoint, else the authority's
// mtlsauth host with the region (resolved once, as MSAL does).
func (c *Client) resolveMtlsTokenURL() (string, error) {
	base := c.cfg.mtlsEndpoint
	if base == "" {
		region, invalid := resolveRegion(c.cfg.region, c.cfg.getenv)
		if invalid != "" && c.cfg.logger != nil {
			c.cfg.logger.Warn("confidential: ignoring an invalid region; using the global mTLS endpoint", slog.String("region", invalid))
		}
		host, err := c.auth.mtlsHost(region)
		if err != nil {
			return "", err
		}
		base = "https://" + host
	} else if err := c.auth.tenanted(); err != nil {
		return "", err
	}
	return base + "/" + url.PathEscape(c.auth.tenant) + tokenPath, nil
}

// request sends the token request the plan describes.
func (c *Client) request(ctx context.Context, p plan, scopes []string, o acquireConfig) (token.Result, error) {
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {c.clientID},
		"scope":      {strings.Join(scopes, " ")},
	}
	if p.secret != "" {
		form.Set("client_secret", p.secret)
	}
	if p.signWith != nil {
		a, err := clientAssertion(p.signWith, c.clientID, c.auth.tokenURL, c.cred.sendX5C, c.cfg.now())
		if err != nil {
			return token.Result{}, err
		}
		p.assertion, p.assertionType = a, assertionTypeJWTBearer
	}
	if p.assertion != "" {
		form.Set("client_assertion_type", p.assertionType)
		form.Set("client_assertion", p.assertion)
	}
	if p.cert != nil {
		form.Set("client_info", "2")
	}
	if o.pop {
		form.Set("token_type", token.TypeMtlsPoP)
	}
	if o.claims != "" {
		form.Set("claims", o.claims)
	}
	w := &wire.Client{HTTP: c.pool.Client(p.cert), Sleep: c.cfg.retryWait, Logger: c.cfg.logger, Now: c.cfg.now}
	t, err := w.PostToken(ctx, wire.STS, p.endpoint, form, o.pop, "confidential")
	if err != nil {
		return token.Result{}, err
	}
	r := t.Result()
	if o.pop {
		r = r.Bind(p.cert) // a Bearer token over mTLS has no binding certificate, as in MSAL
	}
	return r, nil
}

// Do sends req to a resource with res's token, over mutual TLS with its binding certificate for
// a PoP token. The caller closes the response body.
func (c *Client) Do(ctx context.Context, req *http.Request, res token.Result) (*http.Response, error) {
	if c.closed.Load() {
		return nil, token.Errorf(token.CodeClosed, "confidential: the client is closed")
	}
	return c.pool.Do(ctx, req, res)
}

// Close stops background refreshes and releases connections and cached tokens. Idempotent.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.cache.Close()
	c.pool.Close()
	return nil
}

// String describes the client without secrets.
func (c *Client) String() string {
	return fmt.Sprintf("confidential.Client{%s, tenant %s, %s}", c.clientID, c.auth.tenant, c.cred)
}

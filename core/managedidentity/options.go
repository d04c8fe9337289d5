package managedidentity

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"time"

	"github.com/mtlspop/mtlspop/core/keys"
)

// Option configures New. Options for AcquireToken are a different type (AcquireOption), so
// passing one where the other belongs fails to compile.
type Option interface{ applyClient(*config) }

// AcquireOption configures one AcquireToken call. It works on values, not pointers, so the
// configuration stays on the caller's stack: the cache-hit path must not allocate.
type AcquireOption interface {
	applyAcquire(acquireConfig) acquireConfig
}

type config struct {
	keys      keys.Provider
	http      *http.Client
	roots     *x509.CertPool
	getenv    func(string) string
	logger    *slog.Logger
	retryWait func(context.Context, time.Duration) error
	noRetry   bool
	timeout   time.Duration
	attest    bool
	now       func() time.Time // tests move the clock to cross certificate and token lifetimes
	sources   sourceConfig     // per-source settings (options_sources.go)
}

type acquireConfig struct {
	pop       bool
	force     bool
	cacheOnly bool
	claims    string
}

type clientOption func(*config)

func (f clientOption) applyClient(c *config) { f(c) }

// WithKeyProvider sets where binding keys come from (default: in-memory RSA-2048 keys from
// keys.NewSoftware). A TPM provider makes the key non-exportable.
func WithKeyProvider(p keys.Provider) Option {
	return clientOption(func(c *config) { c.keys = p })
}

// WithAttestation makes every binding key prove, before its certificate is issued, that it lives
// in a TPM (TPM2_Certify, exchanged at the attestation service IMDS names for an attestation
// token that goes with the CSR). It needs a key provider whose keys can attest, such as package
// tpm's. Attestation fails closed: no certificate is minted without it. Attested and
// non-attested keys, certificates and tokens are kept apart.
func WithAttestation() Option {
	return clientOption(func(c *config) { c.attest = true })
}

// WithHTTPClient sets the client for plain managed-identity endpoints (IMDS). The default has no
// proxy, because IMDS is link-local and must never be reached through one. Certificate-bound
// calls use clients the library builds per binding certificate.
func WithHTTPClient(h *http.Client) Option {
	return clientOption(func(c *config) { c.http = h })
}

// WithRootCAs sets the trust anchors for HTTPS endpoints (the mTLS token endpoint, resources).
// The default is the system roots plus the files named by SSL_CERT_FILE and SSL_CERT_DIR, read
// when the client is created.
func WithRootCAs(pool *x509.CertPool) Option {
	return clientOption(func(c *config) { c.roots = pool })
}

// WithEnv sets how the client reads environment variables (default os.Getenv). The C ABI passes
// libc's getenv, so variables a host sets after loading the library are honoured.
func WithEnv(getenv func(string) string) Option {
	return clientOption(func(c *config) { c.getenv = getenv })
}

// WithLogger enables structured logging. Nothing secret is ever logged: no tokens, keys, CSRs or
// response bodies.
func WithLogger(l *slog.Logger) Option {
	return clientOption(func(c *config) { c.logger = l })
}

// WithRetryWait replaces how the client waits between retries. Tests use it to run MSAL's
// multi-second backoffs instantly and to observe them; wait must return ctx.Err() if ctx ends.
func WithRetryWait(wait func(ctx context.Context, d time.Duration) error) Option {
	return clientOption(func(c *config) { c.retryWait = wait })
}

// WithRetryPolicyDisabled turns off the client's retries, for hosts that retry themselves.
func WithRetryPolicyDisabled() Option {
	return clientOption(func(c *config) { c.noRetry = true })
}

// WithTimeout bounds each AcquireToken call whose context has no deadline (default 60 s), so a
// forgotten deadline cannot hang a caller on an unresponsive endpoint.
func WithTimeout(d time.Duration) Option {
	return clientOption(func(c *config) { c.timeout = d })
}

type popOption struct{}

func (popOption) applyAcquire(c acquireConfig) acquireConfig { c.pop = true; return c }

type forceOption struct{}

func (forceOption) applyAcquire(c acquireConfig) acquireConfig { c.force = true; return c }

type cacheOnlyOption struct{}

func (cacheOnlyOption) applyAcquire(c acquireConfig) acquireConfig { c.cacheOnly = true; return c }

type claimsOption string

func (o claimsOption) applyAcquire(c acquireConfig) acquireConfig { c.claims = string(o); return c }

// WithMtlsPoP asks for an mTLS proof-of-possession token bound to a certificate whose key the
// client holds (IMDSv2), instead of a Bearer token.
func WithMtlsPoP() AcquireOption { return popOption{} }

// WithForceRefresh skips the token cache and fetches a new token (the binding certificate is
// still reused while valid).
func WithForceRefresh() AcquireOption { return forceOption{} }

// WithCacheOnly returns a cached token or fails at once with token.CodeNotCached: it never
// fetches, waits or does I/O. It is for callers that must not block, such as an event loop that
// looks for a hit before handing the acquisition to another thread.
func WithCacheOnly() AcquireOption { return cacheOnlyOption{} }

// WithClaims sends a claims request (for example a CAE challenge) with the token request. A call
// with claims always fetches a new token.
func WithClaims(claims string) AcquireOption {
	return claimsOption(claims)
}

// Package managedidentity acquires access tokens for an Azure managed identity: Bearer tokens,
// and mTLS proof-of-possession tokens bound to a certificate whose key never leaves the machine
// (the IMDSv2 flow).
//
//	mi, err := managedidentity.New(managedidentity.SystemAssigned())
//	res, err := mi.AcquireToken(ctx, "https://vault.azure.net", managedidentity.WithMtlsPoP())
//	resp, err := mi.Do(ctx, req, res) // mTLS call presenting the binding certificate
//
// Each managed-identity source lives in its own file. Tokens are cached per client; binding
// certificates are minted once and reused until shortly before they expire.
package managedidentity

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mtlspop/mtlspop/core/cache"
	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/mtls"
	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/version"
)

// DefaultTimeout bounds an AcquireToken call whose context has no deadline.
const DefaultTimeout = 60 * time.Second

// Client acquires tokens for one managed identity. It is safe for concurrent use; create one per
// identity and reuse it, since it holds the token cache and the binding certificate.
type Client struct {
	id           ID
	idKey        string // id.String(), computed once so the cache-hit path does not allocate
	source       source
	sourceName   string
	cfg          config
	wire         *wire.Client // plain HTTP to managed-identity endpoints
	pool         *mtls.Pool   // certificate-bound HTTPS clients
	cache        *cache.Cache
	bearer       *cache.Part // the Bearer partition of this identity, resolved once
	bindings     *bindings
	attestations attestations
	ownHTTP      bool // the IMDS client was created here, so Close releases its connections
	closed       atomic.Bool
	caps         atomic.Pointer[Capabilities] // a host Capabilities found (capabilities.go)
}

// New returns a client for the identity. It reads the environment once, here, to find the
// managed-identity source and its endpoint.
func New(id ID, opts ...Option) (*Client, error) {
	if err := id.validate(); err != nil {
		return nil, err
	}
	c := &Client{id: id, idKey: id.String()}
	for _, o := range opts {
		if o != nil {
			o.applyClient(&c.cfg)
		}
	}
	var clock cache.Clock // nil: the cache's coarse clock, one atomic load on the hit path
	if c.cfg.now == nil {
		c.cfg.now = time.Now
	} else {
		clock = cache.FuncClock(c.cfg.now)
	}
	if c.cfg.getenv == nil {
		c.cfg.getenv = os.Getenv
	}
	if c.cfg.keys == nil {
		c.cfg.keys = keys.NewSoftware()
	}
	if c.cfg.timeout <= 0 {
		c.cfg.timeout = DefaultTimeout
	}
	if c.cfg.http == nil {
		// IMDS is link-local: never send it through a proxy.
		c.cfg.http = &http.Client{Transport: &http.Transport{Proxy: nil}, CheckRedirect: noRedirects}
		c.ownHTTP = true
	}
	if c.cfg.roots == nil {
		roots, err := mtls.Roots(c.cfg.getenv, "")
		if err != nil {
			return nil, err
		}
		c.cfg.roots = roots
	}
	src, err := detectSource(c.cfg.getenv)
	if err != nil {
		return nil, err
	}
	c.source, c.sourceName = src, src.name()
	c.wire = &wire.Client{HTTP: c.cfg.http, Sleep: c.cfg.retryWait, Logger: c.cfg.logger, Now: c.cfg.now}
	c.pool = mtls.NewPool(c.cfg.roots)
	c.attestations.client.HTTP = c.pool.Client(nil) // trusts the same roots as every HTTPS call
	c.cache = cache.New(cache.Options{Clock: clock})
	c.bearer = c.cache.Partition(c.partition(token.TypeBearer, ""))
	c.bindings = newBindings(c.cache, func(b *binding) {
		c.pool.Evict(b.cert)
		c.cache.Drop(b.partition)
	})
	return c, nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// AcquireToken returns a token for resource (an App ID URI or URL; a trailing "/.default" is
// ignored). Without WithMtlsPoP it is a Bearer token from the detected source; with it, an
// mtls_pop token bound to the client's binding certificate (IMDSv2).
//
// A cached token is returned with Source == token.SourceCache and without any I/O.
func (c *Client) AcquireToken(ctx context.Context, resource string, opts ...AcquireOption) (token.Result, error) {
	if c.closed.Load() {
		return token.Result{}, token.Errorf(token.CodeClosed, "managedidentity: the client is closed")
	}
	resource = strings.TrimSuffix(resource, "/.default")
	var o acquireConfig
	for _, opt := range opts {
		if opt != nil {
			o = opt.applyAcquire(o)
		}
	}
	if !o.force && o.claims == "" {
		// The hit path: no I/O, no deadline, no allocation. An invalid resource is never cached,
		// so validating it can wait for a miss.
		if r := c.cached(resource, o.pop); r != nil {
			return *r, nil
		}
	}
	if o.cacheOnly {
		return token.Result{}, token.CacheOnlyMiss("managedidentity", o.force, o.claims != "")
	}
	return c.acquire(ctx, resource, o)
}

// acquire is the network path of AcquireToken.
func (c *Client) acquire(ctx context.Context, resource string, o acquireConfig) (token.Result, error) {
	if strings.TrimSpace(resource) == "" {
		return token.Result{}, token.Errorf(token.CodeInvalidArgument, "managedidentity: resource is empty")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	if o.pop {
		return c.acquirePoP(ctx, resource, o)
	}
	return c.acquireBearer(ctx, resource, o)
}

// cached is the allocation-free hit path: an atomic load for the binding, and the partition's
// lock-free lookup.
func (c *Client) cached(resource string, pop bool) *token.Result {
	part := c.bearer
	if pop {
		b := c.bindings.current()
		if b == nil {
			return nil
		}
		part = b.part
	}
	return part.Lookup(resource)
}

// partition names the cache partition of this identity's tokens of a type, bound to keyID.
func (c *Client) partition(tokenType, keyID string) cache.Partition {
	return cache.Partition{Authority: c.sourceName, Identity: c.idKey, TokenType: tokenType, KeyID: keyID}
}

func (c *Client) acquireBearer(ctx context.Context, resource string, o acquireConfig) (token.Result, error) {
	return c.bearer.Get(ctx, resource, o.force || o.claims != "", func(ctx context.Context, refresh bool) (token.Result, error) {
		return c.source.bearer(ctx, c, resource, claimsOf(o, refresh))
	})
}

// claimsOf is the claims a fetch sends: a claims challenge belongs to the call that got it, not
// to the background refreshes of the token it fetched.
func claimsOf(o acquireConfig, refresh bool) string {
	if refresh {
		return ""
	}
	return o.claims
}

// Do sends req to a resource with res's token: "Authorization: <token_type> <token>", and, for a
// PoP token, over mutual TLS presenting the binding certificate (pooled per certificate). The
// caller closes the response body.
func (c *Client) Do(ctx context.Context, req *http.Request, res token.Result) (*http.Response, error) {
	if c.closed.Load() {
		return nil, token.Errorf(token.CodeClosed, "managedidentity: the client is closed")
	}
	return c.pool.Do(ctx, req, res)
}

// Close stops the client's background refreshes and waits for them, and releases its
// connections and cached tokens. Calls after Close return an error with token.CodeClosed. Close
// is idempotent.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.bindings.close()
	c.cache.Close()
	c.pool.Close()
	if c.ownHTTP {
		c.cfg.http.CloseIdleConnections()
	}
	return nil
}

// Stats reports the client's cache: tokens held, fetches in flight, background refreshes.
func (c *Client) Stats() cache.Stats { return c.cache.Stats() }

// String describes the client without secrets.
func (c *Client) String() string {
	return fmt.Sprintf("managedidentity.Client{%s, source %s}", c.idKey, c.sourceName)
}

// clientHeaders are the library-identification headers MSAL sends.
func clientHeaders(h http.Header, correlationID string) {
	h.Set("x-client-SKU", version.SKU)
	h.Set("x-client-Ver", version.Version)
	h.Set("x-ms-client-request-id", correlationID)
}

func (c *Client) log(ctx context.Context, msg string, attrs ...slog.Attr) {
	if c.cfg.logger != nil {
		c.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "managedidentity: "+msg, attrs...)
	}
}

func (c *Client) policy(p wire.Policy) wire.Policy {
	if c.cfg.noRetry {
		return wire.NoRetry
	}
	return p
}

// Package cache stores access tokens by everything that makes them interchangeable, and fetches a
// missing token through a caller-supplied function.
//
// This is the foundation's simple, correct cache: a map behind a read-write lock. Tokens are
// served until five minutes before they expire. The lock-free cache with coalescing and
// background refresh replaces the internals without changing this API.
package cache

import (
	"context"
	"sync"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// ExpiryBuffer: a cached token is not served in its last five minutes, so a caller never gets a
// token that expires in flight (MSAL's AccessTokenExpirationBuffer).
const ExpiryBuffer = 5 * time.Minute

// Key identifies interchangeable tokens. Bearer and PoP tokens differ in TokenType, and a PoP
// token's KeyID is the x5t#S256 of its binding certificate, so a token bound to a rotated
// certificate can never be found under the new certificate's key.
type Key struct {
	Authority  string // tenant or managed-identity source
	Identity   string // client id, or the managed identity's selector
	Resource   string // resource or space-joined scopes
	TokenType  string
	KeyID      string // x5t#S256 of the binding certificate; "" for Bearer
	Attested   bool   // the binding key was attested
	ClaimsHash string // SHA-256 of the claims request, "" without claims
}

// Fetch obtains a fresh token from the network.
type Fetch func(ctx context.Context) (token.Result, error)

// Cache is safe for concurrent use.
type Cache struct {
	mu      sync.RWMutex
	entries map[Key]token.Result
	now     func() time.Time
}

// New returns an empty cache reading time from now (nil: time.Now).
func New(now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{entries: make(map[Key]token.Result), now: now}
}

// Get returns the cached token for k (Source = token.SourceCache) or, on a miss or when force is
// set, calls fetch and caches its result (Source = token.SourceIdentityProvider).
func (c *Cache) Get(ctx context.Context, k Key, force bool, fetch Fetch) (token.Result, error) {
	if !force {
		if r, ok := c.Peek(k); ok {
			return r, nil
		}
	}
	r, err := fetch(ctx)
	if err != nil {
		return token.Result{}, err
	}
	r.Source = token.SourceIdentityProvider
	c.mu.Lock()
	c.entries[k] = r
	c.mu.Unlock()
	return r, nil
}

// Peek returns the cached token for k if it is still servable, without fetching.
func (c *Cache) Peek(k Key) (token.Result, bool) {
	c.mu.RLock()
	r, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !c.now().Add(ExpiryBuffer).Before(r.ExpiresOn) {
		return token.Result{}, false
	}
	r.Source = token.SourceCache
	return r, true
}

// Len is the number of cached entries, expired ones included.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Close drops every entry.
func (c *Cache) Close() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

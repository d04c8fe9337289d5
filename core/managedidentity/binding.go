package managedidentity

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"time"

	"github.com/mtlspop/mtlspop/core/cache"
)

// binding is an issued binding certificate with its key and what the token leg needs. It is
// immutable once published.
type binding struct {
	cert       *tls.Certificate // Leaf set; PrivateKey is the binding key's signer
	thumbprint string           // x5t#S256, the cache key id of tokens bound to it
	clientID   string           // canonical client id from issuecredential
	tenantID   string
	tokenURL   string          // <mtls_authentication_endpoint>/<tenant>/oauth2/v2.0/token
	renewAt    int64           // Unix ns of NotAfter − min(24h, lifetime/2)
	partition  cache.Partition // where tokens bound to this certificate are cached
	part       *cache.Part
}

// renewPoint is when a certificate stops being reused: min(24 h, half its lifetime) before it
// expires. NotAfter is always read from the certificate; no lifetime is assumed.
func renewPoint(notBefore, notAfter time.Time) time.Time {
	margin := min(24*time.Hour, notAfter.Sub(notBefore)/2)
	return notAfter.Add(-margin)
}

// bindings holds the client's current binding certificate. Readers take it with one atomic
// load; minting runs once for all callers that need a certificate (cache.Group), and a caller
// whose context ends stops waiting without canceling the mint the others wait for.
type bindings struct {
	cache  *cache.Cache
	cur    atomic.Pointer[binding]
	group  *cache.Group[struct{}, *binding]
	minted atomic.Bool // a certificate was minted before, so the next mint replaces it
	// retire releases what a replaced or evicted binding held (connections, cached tokens).
	retire func(*binding)
}

func newBindings(c *cache.Cache, retire func(*binding)) *bindings {
	return &bindings{cache: c, group: cache.NewGroup[struct{}, *binding](cache.DefaultFetchTimeout), retire: retire}
}

// current returns the binding if it is still within its reuse window.
func (bs *bindings) current() *binding {
	b := bs.cur.Load()
	if b == nil || bs.cache.Now() >= b.renewAt {
		return nil
	}
	return b
}

// get returns the current binding, or mints one. replacing tells mint that an earlier
// certificate existed, so its key should be rotated.
func (bs *bindings) get(ctx context.Context, mint func(ctx context.Context, replacing bool) (*binding, error)) (*binding, error) {
	if b := bs.current(); b != nil {
		return b, nil
	}
	return bs.group.Do(ctx, struct{}{}, func(ctx context.Context) (*binding, error) {
		if b := bs.current(); b != nil {
			return b, nil // minted by a call that finished just before this one started
		}
		b, err := mint(ctx, bs.minted.Load())
		if err != nil {
			return nil, err
		}
		bs.minted.Store(true)
		if old := bs.cur.Swap(b); old != nil && bs.retire != nil {
			bs.retire(old)
		}
		return b, nil
	})
}

// evict drops b if it is still current, so the next get mints a new certificate. It reports
// whether b was current.
func (bs *bindings) evict(b *binding) bool {
	if !bs.cur.CompareAndSwap(b, nil) {
		return false
	}
	if bs.retire != nil {
		bs.retire(b)
	}
	return true
}

// close cancels a mint in flight and waits for it.
func (bs *bindings) close() { bs.group.Close() }

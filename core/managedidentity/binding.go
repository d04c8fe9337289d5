package managedidentity

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// binding is an issued binding certificate with its key and what the token leg needs. It is
// immutable once published.
type binding struct {
	cert       *tls.Certificate // Leaf set; PrivateKey is the binding key's signer
	thumbprint string           // x5t#S256, the cache key id of tokens bound to it
	clientID   string           // canonical client id from issuecredential
	tenantID   string
	tokenURL   string    // <mtls_authentication_endpoint>/<tenant>/oauth2/v2.0/token
	renewAt    time.Time // NotAfter − min(24h, lifetime/2)
}

// renewPoint is when a certificate stops being reused: min(24 h, half its lifetime) before it
// expires. NotAfter is always read from the certificate; no lifetime is assumed.
func renewPoint(notBefore, notAfter time.Time) time.Time {
	margin := min(24*time.Hour, notAfter.Sub(notBefore)/2)
	return notAfter.Add(-margin)
}

// bindings holds the client's current binding certificate. Readers take it with one atomic
// load; minting is serialised by a one-slot semaphore that a waiting caller can abandon when its
// context ends (a plain mutex could not be abandoned: MSAL.NET #6053).
type bindings struct {
	cur    atomic.Pointer[binding]
	sem    chan struct{}
	minted bool // guarded by sem: a certificate was minted before, so the next mint replaces it
	now    func() time.Time
	// retire releases what a replaced or evicted binding held (its pooled connections).
	retire func(*binding)
}

// current returns the binding if it is still within its reuse window.
func (bs *bindings) current(now time.Time) *binding {
	b := bs.cur.Load()
	if b == nil || !now.Before(b.renewAt) {
		return nil
	}
	return b
}

// get returns the current binding, or mints one. replacing tells mint that an earlier
// certificate existed, so its key should be rotated.
func (bs *bindings) get(ctx context.Context, mint func(ctx context.Context, replacing bool) (*binding, error)) (*binding, error) {
	if b := bs.current(bs.now()); b != nil {
		return b, nil
	}
	select {
	case bs.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, token.Wrap(token.CodeCanceled, ctx.Err(), "waiting for the binding certificate")
	}
	defer func() { <-bs.sem }()
	if b := bs.current(bs.now()); b != nil {
		return b, nil
	}
	b, err := mint(ctx, bs.minted)
	if err != nil {
		return nil, err
	}
	bs.minted = true
	if old := bs.cur.Swap(b); old != nil && bs.retire != nil {
		bs.retire(old)
	}
	return b, nil
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

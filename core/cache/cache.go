// Package cache stores access tokens and keeps them fresh.
//
// Reading is lock-free and allocation-free: a cache hit is one atomic load of a copy-on-write
// map, one map lookup and one atomic load of the entry's state, compared against a coarse clock.
// Tokens are grouped in partitions — everything that makes tokens interchangeable except the
// resource: authority, identity, token type, the binding certificate's thumbprint and the
// attested flag — so a caller resolves its partition once and then looks tokens up by resource
// alone. Bearer and PoP tokens, and tokens bound to different certificates, live in
// different partitions and can never be returned for one another.
//
// A miss is fetched once however many callers wait (Group). At a token's refresh point (the
// server's refresh_in, else half its lifetime when that exceeds two hours, with jitter) the first
// reader starts one background refresh and every reader keeps getting the cached token; a failed
// refresh keeps the token and is retried with backoff. Tokens are served until five minutes
// before they expire; after that callers wait for the fetch.
//
// Writes (a new partition or resource) copy the map they change, which is cheap for the sizes a
// partition has in practice (one identity's resources) and keeps reads at ~10 ns.
package cache

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// ExpiryBuffer: a cached token is not served in its last five minutes, so a caller never gets a
// token that expires in flight (MSAL's AccessTokenExpirationBuffer).
const ExpiryBuffer = 5 * time.Minute

// Defaults of Options.
const (
	DefaultMaxEntries   = 100_000
	DefaultFetchTimeout = 2 * time.Minute
)

// Refresh backoff after a failed background refresh: 30 s, doubling, at most 5 min.
const (
	refreshBackoffMin = 30 * time.Second
	refreshBackoffMax = 5 * time.Minute
	maxJitter         = 5 * time.Minute
)

// Key identifies interchangeable tokens.
type Key struct {
	Authority string // tenant or managed-identity source
	Identity  string // client id, or the managed identity's selector
	Resource  string // resource or space-joined scopes
	TokenType string
	KeyID     string // x5t#S256 of the binding certificate; "" for Bearer
	Attested  bool   // the binding key was attested
}

// Partition is a Key without its resource.
//
// Claims need no field: a claims request always fetches, and its token replaces the cached one
// (the one the resource just refused), as in MSAL.
type Partition struct {
	Authority string
	Identity  string
	TokenType string
	KeyID     string
	Attested  bool
}

// Partition returns k's partition.
func (k Key) Partition() Partition {
	return Partition{k.Authority, k.Identity, k.TokenType, k.KeyID, k.Attested}
}

// Fetch obtains a fresh token from the network. refresh is false when a caller is waiting for
// it and true for a background refresh, which must not repeat what belonged to the one call that
// stored the function (a claims challenge) and must rebuild anything short-lived (a client
// assertion).
type Fetch func(ctx context.Context, refresh bool) (token.Result, error)

// Options configure a Cache. The zero value is usable.
type Options struct {
	// Clock is the time source; nil uses CoarseClock.
	Clock Clock
	// MaxEntries bounds the number of tokens; past it, expired tokens are dropped first, then
	// the ones closest to expiry. 0 means DefaultMaxEntries.
	MaxEntries int
	// FetchTimeout bounds one fetch (retries included); 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
}

// Cache is safe for concurrent use. Create it with New and release it with Close.
type Cache struct {
	clock  Clock
	coarse bool
	max    int

	parts atomic.Pointer[map[Partition]*Part]
	group *Group[*entry, token.Result]

	mu      sync.Mutex // serialises writers: new partitions and entries, sweeps, Close
	count   int        // entries
	inserts int        // entries created since the last sweep
	closed  bool

	refreshes       atomic.Int64
	refreshFailures atomic.Int64
}

// New returns an empty cache.
func New(opts Options) *Cache {
	c := &Cache{clock: opts.Clock, max: opts.MaxEntries}
	if c.clock == nil {
		c.clock, c.coarse = CoarseClock{}, true
		acquireCoarse()
	}
	if c.max <= 0 {
		c.max = DefaultMaxEntries
	}
	timeout := opts.FetchTimeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	c.group = NewGroup[*entry, token.Result](timeout)
	empty := map[Partition]*Part{}
	c.parts.Store(&empty)
	return c
}

// Now is the cache's current time in Unix nanoseconds: one atomic load with the default clock.
// Callers on the hit path use it instead of time.Now.
func (c *Cache) Now() int64 {
	if c.coarse {
		return coarse.now.Load()
	}
	return c.clock.Now()
}

// Part is one partition of a Cache: the tokens of one (authority, identity, token type, binding
// certificate, attested, claims) by resource. Resolve it once with Cache.Partition and keep it.
type Part struct {
	c       *Cache
	key     Partition
	entries atomic.Pointer[map[string]*entry]
}

type entry struct {
	state      atomic.Pointer[state]
	next       atomic.Int64 // Unix ns of the next background refresh; 0 = none
	refreshing atomic.Bool
	failures   atomic.Int32
	fetch      atomic.Pointer[Fetch] // how to refresh it: the latest caller's fetch
}

// state is an immutable snapshot of an entry's token.
type state struct {
	res        token.Result // Source = token.SourceCache
	serveUntil int64        // ExpiresOn − ExpiryBuffer
	expires    int64
}

// Key returns the partition's key.
func (p *Part) Key() Partition { return p.key }

// Partition returns the partition for p, creating it if needed.
func (c *Cache) Partition(p Partition) *Part {
	if part, ok := (*c.parts.Load())[p]; ok {
		return part
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if part, ok := (*c.parts.Load())[p]; ok {
		return part
	}
	part := &Part{c: c, key: p}
	empty := map[string]*entry{}
	part.entries.Store(&empty)
	if !c.closed {
		c.attachLocked(part)
	}
	return part
}

func (c *Cache) attachLocked(part *Part) {
	m := maps.Clone(*c.parts.Load())
	m[part.key] = part
	c.parts.Store(&m)
}

// Peek is Partition(k.Partition()).Peek(k.Resource), without creating the partition.
func (c *Cache) Peek(k Key) (token.Result, bool) {
	part, ok := (*c.parts.Load())[k.Partition()]
	if !ok {
		return token.Result{}, false
	}
	return part.Peek(k.Resource)
}

// Peek returns the cached token for resource (Source = token.SourceCache) if it may still be
// served, without I/O, locks or allocation. When the token has reached its refresh point, the
// first reader to notice starts one background refresh; every reader still gets the token.
func (p *Part) Peek(resource string) (token.Result, bool) {
	if r := p.Lookup(resource); r != nil {
		return *r, true
	}
	return token.Result{}, false
}

// Lookup is Peek returning the cached result itself: it is shared and immutable, and callers
// must not modify it. It saves a copy of the result on the hottest path.
func (p *Part) Lookup(resource string) *token.Result {
	e := (*p.entries.Load())[resource]
	if e == nil {
		return nil
	}
	s := e.state.Load()
	if s == nil {
		return nil
	}
	now := p.c.Now()
	if now >= s.serveUntil {
		return nil
	}
	if n := e.next.Load(); n != 0 && now >= n {
		p.refresh(e)
	}
	return &s.res
}

// Get returns the cached token for resource or, on a miss or when force is set, the result of
// fetch — run once for all concurrent callers of this entry, and cached. A fetched result has
// Source = token.SourceIdentityProvider. Errors are not cached.
func (p *Part) Get(ctx context.Context, resource string, force bool, fetch Fetch) (token.Result, error) {
	if !force {
		if r, ok := p.Peek(resource); ok {
			return r, nil
		}
	}
	e, err := p.entry(resource)
	if err != nil {
		return token.Result{}, err
	}
	e.fetch.Store(&fetch)
	return p.c.group.Do(ctx, e, func(ctx context.Context) (token.Result, error) {
		if !force {
			// A caller that missed just before the previous call stored its token, and arrived
			// just after that call ended, finds the token here instead of fetching again.
			if r, ok := p.Peek(resource); ok {
				return r, nil
			}
		}
		r, err := fetch(ctx, false)
		if err != nil {
			return token.Result{}, err
		}
		p.store(e, r)
		r.Source = token.SourceIdentityProvider
		return r, nil
	})
}

// entry returns the entry for resource, creating it (copy-on-write) if needed.
func (p *Part) entry(resource string) (*entry, error) {
	if e := (*p.entries.Load())[resource]; e != nil {
		return e, nil
	}
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, token.Errorf(token.CodeClosed, "cache: closed")
	}
	if e := (*p.entries.Load())[resource]; e != nil {
		return e, nil
	}
	if c.count >= c.max || c.inserts >= max(1024, c.count/2) {
		c.sweepLocked(c.Now())
	}
	if _, ok := (*c.parts.Load())[p.key]; !ok {
		c.attachLocked(p) // swept or dropped while a caller held it: count it again
		c.count += len(*p.entries.Load())
	}
	e := &entry{}
	m := maps.Clone(*p.entries.Load())
	m[resource] = e
	p.entries.Store(&m)
	c.count++
	c.inserts++
	return e, nil
}

// store publishes a fetched token and schedules its background refresh.
func (p *Part) store(e *entry, r token.Result) {
	now := p.c.Now()
	expires := r.ExpiresOn.UnixNano()
	r.Source = token.SourceCache
	e.state.Store(&state{res: r, serveUntil: expires - int64(ExpiryBuffer), expires: expires})
	e.failures.Store(0)
	e.next.Store(refreshAt(r, now, expires))
}

// refreshAt is the refresh point with jitter of ±min(5 min, lifetime/10), so the clients of a
// fleet that fetched together do not refresh together; 0 when the token has no refresh point.
func refreshAt(r token.Result, now, expires int64) int64 {
	if r.RefreshOn.IsZero() {
		return 0
	}
	at := r.RefreshOn.UnixNano()
	if j := min(int64(maxJitter), (expires-now)/10); j > 0 {
		at += rand.Int64N(2*j+1) - j
	}
	serveUntil := expires - int64(ExpiryBuffer)
	if at >= serveUntil {
		return 0 // past the point where callers fetch in the foreground anyway
	}
	return max(at, now)
}

// refresh starts one background refresh of e unless one is running.
func (p *Part) refresh(e *entry) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	f := e.fetch.Load()
	if f == nil {
		e.refreshing.Store(false)
		return
	}
	fetch := *f
	started := p.c.group.Go(e, func(ctx context.Context) (token.Result, error) {
		defer e.refreshing.Store(false)
		r, err := fetch(ctx, true)
		if err != nil {
			// Keep serving the cached token; try again later, but never hammer the endpoint.
			n := e.failures.Add(1)
			backoff := min(refreshBackoffMax, refreshBackoffMin<<min(n-1, 10))
			e.next.Store(p.c.Now() + int64(backoff))
			p.c.refreshFailures.Add(1)
			return token.Result{}, err
		}
		p.store(e, r)
		r.Source = token.SourceIdentityProvider
		return r, nil
	})
	if started {
		p.c.refreshes.Add(1)
	} else {
		e.refreshing.Store(false) // a foreground fetch is already running for e
	}
}

// sweepLocked drops entries without a live token (expired, or never fetched) unless a fetch for
// them is running, and empty partitions; past MaxEntries it also drops the tokens closest to expiry.
func (c *Cache) sweepLocked(now int64) {
	type victim struct {
		part     *Part
		resource string
		serve    int64
	}
	var live []victim
	pending := 0
	parts := map[Partition]*Part{}
	for key, part := range *c.parts.Load() {
		kept := map[string]*entry{}
		for res, e := range *part.entries.Load() {
			switch s := e.state.Load(); {
			case s != nil && now < s.expires:
				kept[res] = e
				live = append(live, victim{part, res, s.serveUntil})
			case c.group.Running(e):
				// No live token (none yet, or expired), but a fetch is about to store one
				// here: dropping the entry would lose that token and let the next caller
				// fetch a second time.
				kept[res] = e
				pending++
			}
		}
		part.entries.Store(&kept)
		if len(kept) > 0 {
			parts[key] = part
		}
	}
	// Make room below the bound (called before an insert), with slack so sweeps stay rare.
	if excess := len(live) - c.max*9/10; len(live) >= c.max && excess > 0 {
		slices.SortFunc(live, func(a, b victim) int {
			switch {
			case a.serve < b.serve:
				return -1
			case a.serve > b.serve:
				return 1
			}
			return 0
		})
		touched := map[*Part]map[string]*entry{}
		for _, v := range live[:excess] {
			m, ok := touched[v.part]
			if !ok {
				m = maps.Clone(*v.part.entries.Load())
				touched[v.part] = m
			}
			delete(m, v.resource)
		}
		for part, m := range touched {
			part.entries.Store(&m)
			if len(m) == 0 {
				delete(parts, part.key)
			}
		}
		live = live[excess:]
	}
	c.parts.Store(&parts)
	c.count = len(live) + pending
	c.inserts = 0
}

// Sweep drops expired tokens now (it also happens as entries are added).
func (c *Cache) Sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.sweepLocked(c.Now())
	}
}

// Drop removes a partition and its tokens, for a binding certificate that was replaced.
func (c *Cache) Drop(p Partition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	part, ok := (*c.parts.Load())[p]
	if !ok {
		return
	}
	m := maps.Clone(*c.parts.Load())
	delete(m, p)
	c.parts.Store(&m)
	c.count -= len(*part.entries.Load())
	empty := map[string]*entry{}
	part.entries.Store(&empty)
}

// Stats describes a cache's contents and activity.
type Stats struct {
	Entries         int   // tokens held
	Partitions      int   // partitions held
	InFlight        int   // fetches running now (foreground and background)
	Refreshes       int64 // background refreshes started
	RefreshFailures int64 // background refreshes that failed (the cached token was kept)
}

// Stats returns current counts. It takes the writers' lock; keep it off hot paths.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Entries: c.count, Partitions: len(*c.parts.Load()), InFlight: c.group.InFlight(),
		Refreshes: c.refreshes.Load(), RefreshFailures: c.refreshFailures.Load(),
	}
}

// Close cancels every fetch and refresh in flight, waits for them, and empties the cache. Later
// Gets return an error with token.CodeClosed. Close is idempotent.
func (c *Cache) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.group.Close()
	c.mu.Lock()
	for _, part := range *c.parts.Load() {
		empty := map[string]*entry{}
		part.entries.Store(&empty)
	}
	empty := map[Partition]*Part{}
	c.parts.Store(&empty)
	c.count = 0
	c.mu.Unlock()
	if c.coarse {
		releaseCoarse()
	}
}

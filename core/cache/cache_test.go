package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fetcher counts calls and returns tokens that live lifetime from the clock's time, with a
// refresh point at half of it.
type fetcher struct {
	clock    *ManualClock
	lifetime time.Duration
	calls    atomic.Int32
	refreshs atomic.Int32 // calls with refresh set
	fail     atomic.Bool
	gate     chan struct{} // when non-nil, each call waits for a receive
}

func (f *fetcher) fetch(ctx context.Context, refresh bool) (token.Result, error) {
	n := f.calls.Add(1)
	if refresh {
		f.refreshs.Add(1)
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return token.Result{}, ctx.Err()
		}
	}
	if f.fail.Load() {
		return token.Result{}, token.Errorf(token.CodeServiceNotAvailable, "fetch %d failed", n)
	}
	now := f.clock.Time()
	return token.Result{AccessToken: "token-" + strconv.Itoa(int(n)), TokenType: token.TypeBearer,
		ExpiresOn: now.Add(f.lifetime), RefreshOn: now.Add(f.lifetime / 2)}, nil
}

func newTestCache(t *testing.T, opts Options) (*Cache, *ManualClock) {
	clock := NewManualClock(t0)
	opts.Clock = clock
	c := New(opts)
	t.Cleanup(c.Close)
	return c, clock
}

var bearer = Partition{Authority: "imds", Identity: "system", TokenType: token.TypeBearer}

func TestHitMissAndSources(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: time.Hour}
	part := c.Partition(bearer)
	if c.Partition(bearer) != part {
		t.Fatal("Partition is not stable")
	}
	ctx := context.Background()
	r, err := part.Get(ctx, "r", false, f.fetch)
	if err != nil || r.Source != token.SourceIdentityProvider || r.AccessToken != "token-1" {
		t.Fatal(r, err)
	}
	r, err = part.Get(ctx, "r", false, f.fetch)
	if err != nil || r.Source != token.SourceCache || r.AccessToken != "token-1" || f.calls.Load() != 1 {
		t.Fatal(r, err)
	}
	if r, _ := part.Get(ctx, "r", true, f.fetch); r.AccessToken != "token-2" || r.Source != token.SourceIdentityProvider {
		t.Fatal("force did not fetch", r)
	}
	if r, ok := c.Peek(Key{Authority: "imds", Identity: "system", Resource: "r", TokenType: token.TypeBearer}); !ok || r.AccessToken != "token-2" {
		t.Fatal("Cache.Peek by key")
	}
	if _, ok := part.Peek("other"); ok {
		t.Fatal("hit on an unknown resource")
	}
	// Bearer and PoP, and different certificates, never mix.
	for _, p := range []Partition{
		{Authority: "imds", Identity: "system", TokenType: token.TypeMtlsPoP, KeyID: "A"},
		{Authority: "imds", Identity: "system", TokenType: token.TypeBearer, Attested: true},
		{Authority: "imds", Identity: "uami", TokenType: token.TypeBearer},
	} {
		if _, ok := c.Partition(p).Peek("r"); ok {
			t.Fatalf("partition %+v served another partition's token", p)
		}
	}
}

func TestServedUntilFiveMinutesBeforeExpiry(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: time.Hour} // refresh point at 30 min... disable it:
	part := c.Partition(bearer)
	noRefresh := func(ctx context.Context, refresh bool) (token.Result, error) {
		r, err := f.fetch(ctx, refresh)
		r.RefreshOn = time.Time{}
		return r, err
	}
	if _, err := part.Get(context.Background(), "r", false, noRefresh); err != nil {
		t.Fatal(err)
	}
	clock.Advance(55*time.Minute - time.Second)
	if _, ok := part.Peek("r"); !ok {
		t.Fatal("not served 5 min + 1 s before expiry")
	}
	clock.Advance(time.Second)
	if _, ok := part.Peek("r"); ok {
		t.Fatal("served inside the last five minutes")
	}
	if r, _ := part.Get(context.Background(), "r", false, noRefresh); r.AccessToken != "token-2" || f.calls.Load() != 2 {
		t.Fatal("caller did not wait for a fresh token", r)
	}
}

func TestMissIsFetchedOnceForAllWaiters(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: time.Hour, gate: make(chan struct{})}
	part := c.Partition(bearer)
	const n = 1000
	var wg sync.WaitGroup
	results := make([]token.Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = part.Get(context.Background(), "r", false, f.fetch)
		}(i)
	}
	waitUntil(t, func() bool { return f.calls.Load() == 1 })
	time.Sleep(20 * time.Millisecond) // let stragglers reach the wait
	close(f.gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i].AccessToken != "token-1" {
			t.Fatalf("caller %d: %v %v", i, results[i], errs[i])
		}
	}
	if f.calls.Load() != 1 {
		t.Fatalf("%d fetches for one miss", f.calls.Load())
	}
	// An error is shared too, and not cached.
	f.gate = nil
	f.fail.Store(true)
	shared := make(chan error, 50)
	g := make(chan struct{})
	f2 := &fetcher{clock: clock, lifetime: time.Hour, gate: g}
	f2.fail.Store(true)
	for range 50 {
		go func() { _, err := part.Get(context.Background(), "e", false, f2.fetch); shared <- err }()
	}
	waitUntil(t, func() bool { return f2.calls.Load() == 1 })
	time.Sleep(20 * time.Millisecond)
	close(g)
	for range 50 {
		if err := <-shared; token.CodeOf(err) != token.CodeServiceNotAvailable {
			t.Fatalf("waiter got %v", err)
		}
	}
	if f2.calls.Load() != 1 {
		t.Fatalf("%d fetches for one failing miss", f2.calls.Load())
	}
	f2.fail.Store(false)
	f2.gate = nil
	if _, err := part.Get(context.Background(), "e", false, f2.fetch); err != nil || f2.calls.Load() != 2 {
		t.Fatal("the error was cached", err)
	}
}

func TestCanceledWaiterDoesNotCancelTheFetch(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: time.Hour, gate: make(chan struct{})}
	part := c.Partition(bearer)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := part.Get(ctx, "r", false, f.fetch); first <- err }()
	waitUntil(t, func() bool { return f.calls.Load() == 1 })
	second := make(chan token.Result, 1)
	go func() { r, _ := part.Get(context.Background(), "r", false, f.fetch); second <- r }()
	cancel()
	select {
	case err := <-first:
		if token.CodeOf(err) != token.CodeCanceled {
			t.Fatalf("canceled waiter got %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("canceled waiter kept waiting")
	}
	close(f.gate)
	if r := <-second; r.AccessToken != "token-1" {
		t.Fatalf("the other waiter lost the fetch: %v", r)
	}
	if r, ok := part.Peek("r"); !ok || r.AccessToken != "token-1" || f.calls.Load() != 1 {
		t.Fatal("the fetch's result was not cached")
	}
	// A deadline gives request_timeout.
	f2 := &fetcher{clock: clock, lifetime: time.Hour, gate: make(chan struct{})}
	defer close(f2.gate)
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer dcancel()
	if _, err := part.Get(dctx, "slow", false, f2.fetch); token.CodeOf(err) != token.CodeRequestTimeout {
		t.Fatal(err)
	}
}

func TestBackgroundRefresh(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: 10 * time.Hour} // refresh at 5 h, jitter ±min(5 min, 1 h)
	part := c.Partition(bearer)
	if _, err := part.Get(context.Background(), "r", false, f.fetch); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5*time.Hour - 6*time.Minute)
	if r, _ := part.Peek("r"); r.AccessToken != "token-1" || f.calls.Load() != 1 {
		t.Fatal("refreshed before the refresh point minus the jitter")
	}
	f.gate = make(chan struct{})
	clock.Advance(12 * time.Minute) // past the point plus any jitter
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, ok := part.Peek("r"); !ok || r.AccessToken != "token-1" {
				t.Error("readers did not keep the cached token during the refresh")
			}
		}()
	}
	wg.Wait()
	waitUntil(t, func() bool { return f.calls.Load() == 2 })
	close(f.gate)
	waitUntil(t, func() bool { r, _ := part.Peek("r"); return r.AccessToken == "token-2" })
	if f.calls.Load() != 2 || c.Stats().Refreshes != 1 || f.refreshs.Load() != 1 {
		t.Fatalf("%d fetches, %d refreshes (%d told so): want one background refresh", f.calls.Load(), c.Stats().Refreshes, f.refreshs.Load())
	}
}

func TestFailedRefreshKeepsServingAndBacksOff(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: 10 * time.Hour}
	part := c.Partition(bearer)
	if _, err := part.Get(context.Background(), "r", false, f.fetch); err != nil {
		t.Fatal(err)
	}
	f.fail.Store(true)
	clock.Advance(5*time.Hour + 6*time.Minute)
	if r, ok := part.Peek("r"); !ok || r.AccessToken != "token-1" {
		t.Fatal("token not served while its refresh runs")
	}
	waitUntil(t, func() bool { return c.Stats().RefreshFailures == 1 && !part.refreshing("r") })
	for range 10 {
		if r, ok := part.Peek("r"); !ok || r.AccessToken != "token-1" {
			t.Fatal("failed refresh dropped the cached token")
		}
	}
	if f.calls.Load() != 2 {
		t.Fatalf("retried at once: %d calls", f.calls.Load())
	}
	clock.Advance(29 * time.Second)
	part.Peek("r")
	time.Sleep(10 * time.Millisecond)
	if f.calls.Load() != 2 {
		t.Fatal("retried before the 30 s backoff")
	}
	clock.Advance(2 * time.Second)
	part.Peek("r")
	waitUntil(t, func() bool { return c.Stats().RefreshFailures == 2 && !part.refreshing("r") })
	clock.Advance(59 * time.Second) // the backoff doubled to 60 s
	part.Peek("r")
	time.Sleep(10 * time.Millisecond)
	if f.calls.Load() != 3 {
		t.Fatalf("backoff did not double: %d calls", f.calls.Load())
	}
	f.fail.Store(false)
	clock.Advance(2 * time.Second)
	part.Peek("r")
	waitUntil(t, func() bool { r, _ := part.Peek("r"); return r.AccessToken == "token-4" })
}

func (p *Part) refreshing(resource string) bool {
	e := (*p.entries.Load())[resource]
	return e != nil && e.refreshing.Load()
}

func TestRefreshJitterBounds(t *testing.T) {
	now := t0.UnixNano()
	for _, lifetime := range []time.Duration{24 * time.Hour, 3 * time.Hour} {
		expires := now + int64(lifetime)
		r := token.Result{RefreshOn: t0.Add(lifetime / 2)}
		j := min(maxJitter, lifetime/10)
		lo, hi := r.RefreshOn.Add(-j).UnixNano(), r.RefreshOn.Add(j).UnixNano()
		seen := map[bool]bool{}
		for range 2000 {
			at := refreshAt(r, now, expires)
			if at < lo || at > hi {
				t.Fatalf("lifetime %v: refresh at %v outside ±%v", lifetime, time.Unix(0, at), j)
			}
			seen[at < r.RefreshOn.UnixNano()] = true
		}
		if !seen[true] || !seen[false] {
			t.Fatal("jitter is one-sided")
		}
	}
	if refreshAt(token.Result{}, now, now+int64(time.Hour)) != 0 {
		t.Fatal("a token without a refresh point got one")
	}
}

func TestRotatedCertificateIsNeverServed(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: time.Hour}
	old := Partition{Authority: "imds", Identity: "system", TokenType: token.TypeMtlsPoP, KeyID: "thumb-A"}
	if _, err := c.Partition(old).Get(context.Background(), "r", false, f.fetch); err != nil {
		t.Fatal(err)
	}
	rotated := old
	rotated.KeyID = "thumb-B"
	if _, ok := c.Partition(rotated).Peek("r"); ok {
		t.Fatal("a token bound to the old certificate was found under the new one")
	}
	held := c.Partition(old)
	c.Drop(old)
	if _, ok := held.Peek("r"); ok {
		t.Fatal("a dropped partition still serves")
	}
	if s := c.Stats(); s.Entries != 0 || s.Partitions != 1 { // only the rotated certificate's, empty
		t.Fatalf("after dropping the old certificate's partition: %+v", s)
	}
}

// A sweep keeps an entry whose token expired while a fetch for it is running: the fetch stores
// its token there, and nobody fetches twice.
func TestSweepKeepsAnEntryBeingFetched(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: time.Hour}
	part := c.Partition(bearer)
	noRefresh := func(ctx context.Context, refresh bool) (token.Result, error) {
		r, err := f.fetch(ctx, refresh)
		r.RefreshOn = time.Time{}
		return r, err
	}
	if _, err := part.Get(context.Background(), "r", false, noRefresh); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	f.gate = make(chan struct{})
	done := make(chan error, 1)
	go func() { _, err := part.Get(context.Background(), "r", false, noRefresh); done <- err }()
	waitUntil(t, func() bool { return f.calls.Load() == 2 })
	c.Sweep()
	close(f.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, ok := part.Peek("r"); !ok || r.AccessToken != "token-2" {
		t.Fatal("the sweep dropped the entry, and the running fetch's token with it")
	}
	if _, err := part.Get(context.Background(), "r", false, noRefresh); err != nil || f.calls.Load() != 2 {
		t.Fatalf("%d fetches, want 2: %v", f.calls.Load(), err)
	}
}

func TestSizeIsBoundedAndExpiredEntriesAreDropped(t *testing.T) {
	c, clock := newTestCache(t, Options{MaxEntries: 100})
	f := &fetcher{clock: clock, lifetime: time.Hour}
	part := c.Partition(bearer)
	for i := range 1000 {
		clock.Advance(time.Millisecond) // later tokens expire later
		if _, err := part.Get(context.Background(), strconv.Itoa(i), false, f.fetch); err != nil {
			t.Fatal(err)
		}
		if n := c.Stats().Entries; n > 100 {
			t.Fatalf("%d entries past a bound of 100", n)
		}
	}
	if _, ok := part.Peek("999"); !ok {
		t.Fatal("the newest entry was evicted")
	}
	if _, ok := part.Peek("0"); ok {
		t.Fatal("the entry closest to expiry survived")
	}
	clock.Advance(2 * time.Hour)
	c.Sweep()
	if s := c.Stats(); s.Entries != 0 || s.Partitions != 0 {
		t.Fatalf("expired entries kept: %+v", s)
	}
	// A partition held by a caller keeps working after a sweep removed it.
	if _, err := part.Get(context.Background(), "again", false, f.fetch); err != nil || c.Stats().Entries != 1 {
		t.Fatal("a swept partition did not come back", err, c.Stats())
	}
}

func TestCloseStopsRefreshesWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	c := New(Options{}) // the coarse clock: its ticker must stop with the last cache
	f := &fetcher{clock: NewManualClock(time.Now()), lifetime: time.Hour, gate: make(chan struct{})}
	part := c.Partition(bearer)
	done := make(chan error, 1)
	go func() { _, err := part.Get(context.Background(), "r", false, f.fetch); done <- err }()
	waitUntil(t, func() bool { return f.calls.Load() == 1 })
	c.Close()
	c.Close()
	if err := <-done; err == nil {
		t.Fatal("a fetch in flight survived Close")
	}
	if _, err := part.Get(context.Background(), "r", false, f.fetch); token.CodeOf(err) != token.CodeClosed {
		t.Fatalf("Get after Close: %v", err)
	}
	waitUntil(t, func() bool { return runtime.NumGoroutine() <= before })
}

func TestHitDoesNotAllocate(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	f := &fetcher{clock: clock, lifetime: time.Hour}
	part := c.Partition(bearer)
	if _, err := part.Get(context.Background(), "r", false, f.fetch); err != nil {
		t.Fatal(err)
	}
	resource := string([]byte("r"))
	if n := testing.AllocsPerRun(1000, func() { part.Peek(resource) }); n != 0 {
		t.Fatalf("%v allocations per hit", n)
	}
}

// TestConcurrentEverything runs hits, misses, forced fetches, refreshes, drops and a final Close
// at once; run with -race.
func TestConcurrentEverything(t *testing.T) {
	c, clock := newTestCache(t, Options{MaxEntries: 50})
	f := &fetcher{clock: clock, lifetime: 3 * time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				p := Partition{Authority: "a", Identity: "i", TokenType: token.TypeMtlsPoP, KeyID: strconv.Itoa(i % 3)}
				part := c.Partition(p)
				res := fmt.Sprint((i + w) % 20)
				switch i % 7 {
				case 0:
					_, _ = part.Get(ctx, res, true, f.fetch)
				case 1:
					c.Drop(p)
				case 2:
					clock.Advance(time.Minute)
				default:
					_, _ = part.Get(ctx, res, false, f.fetch)
					part.Peek(res)
				}
			}
		}()
	}
	wg.Wait()
	c.Close()
	if _, err := c.Partition(bearer).Get(context.Background(), "x", false, f.fetch); !errors.Is(err, token.CodeClosed) {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

package managedidentity_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// coldCallers runs n concurrent first acquisitions and returns their results.
func coldCallers(t testing.TB, c *managedidentity.Client, resource string, n int, opts ...managedidentity.AcquireOption) []token.Result {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	results := make([]token.Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i], errs[i] = c.AcquireToken(context.Background(), resource, opts...)
		}(i)
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	return results
}

func TestThousandColdCallersOneRequestPerStage(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	emu.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{Delay: 50 * time.Millisecond, Count: 1})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	results := coldCallers(t, c, emu.Config().ResourceID, 1000, popOpt)
	for _, r := range results {
		if r.AccessToken != results[0].AccessToken || r.Thumbprint() != results[0].Thumbprint() {
			t.Fatal("callers got different tokens")
		}
	}
	for _, ep := range []emulator.Endpoint{emulator.EndpointPlatformMetadata, emulator.EndpointIssueCredential, emulator.EndpointToken} {
		if n := emu.Requests(ep); n != 1 {
			t.Fatalf("%s received %d requests from 1,000 cold callers, want 1", ep, n)
		}
	}
	// Bearer: one IMDS request for 1,000 callers too.
	coldCallers(t, c, emu.Config().ResourceID, 1000)
	if n := emu.Requests(emulator.EndpointIMDSToken); n != 1 {
		t.Fatalf("IMDS received %d requests from 1,000 cold Bearer callers", n)
	}
}

func TestCanceledCallerDoesNotCancelTheMint(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	emu.InjectFault(emulator.EndpointIssueCredential, emulator.Fault{Delay: 300 * time.Millisecond, Count: 1})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	other := make(chan error, 1)
	go func() {
		time.Sleep(10 * time.Millisecond)
		_, err := c.AcquireToken(context.Background(), "api://r", popOpt)
		other <- err
	}()
	_, err := c.AcquireToken(ctx, "api://r", popOpt)
	wantCode(t, err, token.CodeRequestTimeout)
	if err := <-other; err != nil {
		t.Fatalf("the patient caller failed: %v", err)
	}
	if emu.Requests(emulator.EndpointIssueCredential) != 1 {
		t.Fatalf("%d mints: the first caller's timeout restarted the mint", emu.Requests(emulator.EndpointIssueCredential))
	}
}

func TestBackgroundRefreshKeepsServingAndFailuresKeepTheToken(t *testing.T) {
	emu := startEmulator(t, emulator.Config{TokenLifetime: 10 * time.Hour, RefreshIn: 2 * time.Hour})
	var mu sync.Mutex
	offset := time.Duration(0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	advance := func(d time.Duration) { mu.Lock(); offset += d; mu.Unlock() }
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithClock(clock))
	ctx := context.Background()
	first, err := c.AcquireToken(ctx, "api://r", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	if d := first.RefreshOn.Sub(clock()); d < 2*time.Hour-time.Minute || d > 2*time.Hour {
		t.Fatalf("refresh_in not honoured: RefreshOn in %v", d)
	}
	// Past the refresh point (+ the largest jitter) the token is still served, and one refresh
	// fails in the background without losing it.
	emu.InjectFault(emulator.EndpointToken, emulator.Fault{Status: 503, Header: map[string][]string{"Retry-After": {"1"}}, Count: 1})
	advance(2*time.Hour + 6*time.Minute)
	for range 50 {
		r, err := c.AcquireToken(ctx, "api://r", popOpt)
		if err != nil || r.AccessToken != first.AccessToken || r.Source != token.SourceCache {
			t.Fatalf("not served during a failing refresh: %v %v", r, err)
		}
	}
	waitFor(t, func() bool { s := c.Stats(); return s.RefreshFailures == 1 && s.InFlight == 0 })
	if r, _ := c.AcquireToken(ctx, "api://r", popOpt); r.AccessToken != first.AccessToken {
		t.Fatal("a failed refresh dropped the token")
	}
	// After the backoff the next reader refreshes, and the new token replaces the old.
	advance(31 * time.Second)
	if r, _ := c.AcquireToken(ctx, "api://r", popOpt); r.AccessToken != first.AccessToken {
		t.Fatal("the old token was not served while the new one is fetched")
	}
	waitFor(t, func() bool {
		r, _ := c.AcquireToken(ctx, "api://r", popOpt)
		return r.AccessToken != first.AccessToken
	})
	if s := c.Stats(); s.Refreshes != 2 || emu.Requests(emulator.EndpointToken) != 3 {
		t.Fatalf("stats %+v, %d token requests", s, emu.Requests(emulator.EndpointToken))
	}
}

func TestCloseStopsRefreshesAndLeaksNoGoroutines(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	before := runtime.NumGoroutine()
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	if _, err := c.AcquireToken(context.Background(), "api://r", popOpt); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireToken(context.Background(), "api://r"); err != nil {
		t.Fatal(err)
	}
	// A fetch stuck in flight is canceled by Close.
	emu.InjectFault(emulator.EndpointToken, emulator.Fault{Delay: time.Minute})
	stuck := make(chan error, 1)
	go func() {
		_, err := c.AcquireToken(context.Background(), "api://other", popOpt)
		stuck <- err
	}()
	waitFor(t, func() bool { return c.Stats().InFlight == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stuck:
		if err == nil {
			t.Fatal("a fetch survived Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the fetch in flight")
	}
	emu.ClearFaults()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestConcurrentHitsMissesRotationAndClose mixes every path under -race: cached hits, forced
// fetches, Bearer and PoP, certificate rotation forced by revocation, and Close in the middle.
// Whatever a caller gets must be coherent: a PoP token always comes with the certificate it is
// bound to.
func TestConcurrentHitsMissesRotationAndClose(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var opts []managedidentity.AcquireOption
				if (i+w)%2 == 0 {
					opts = append(opts, popOpt)
				}
				if i%17 == 0 {
					opts = append(opts, managedidentity.WithForceRefresh())
				}
				r, err := c.AcquireToken(ctx, []string{"api://a", "api://b", "api://c"}[i%3], opts...)
				if err != nil {
					if token.CodeOf(err) == token.CodeClosed || ctx.Err() != nil {
						return
					}
					continue // a fetch racing a revocation may fail; the next call recovers
				}
				if r.IsPoP() {
					claims := verify(t, emu, r, []string{"api://a", "api://b", "api://c"}[i%3])
					if claims.X5tS256 != r.Thumbprint() {
						t.Errorf("PoP token bound to %s returned with certificate %s", claims.X5tS256, r.Thumbprint())
						return
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	emu.RevokeBindingCertificates()
	time.Sleep(200 * time.Millisecond)
	_ = c.Close()
	wg.Wait()
	if _, err := c.AcquireToken(context.Background(), "api://a"); token.CodeOf(err) != token.CodeClosed {
		t.Fatal(err)
	}
}

// A cache-only acquisition answers from the cache or fails with not_cached, and never sends a
// request: not to IMDS, not to mint a binding certificate.
func TestCacheOnly(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	resource := emu.Config().ResourceID
	only := managedidentity.WithCacheOnly()
	for _, opts := range [][]managedidentity.AcquireOption{{only}, {only, popOpt}} {
		if _, err := c.AcquireToken(context.Background(), resource, opts...); err == nil {
			t.Fatal("a cache-only acquisition of an empty cache succeeded")
		} else {
			wantCode(t, err, token.CodeNotCached)
		}
	}
	for _, ep := range []emulator.Endpoint{emulator.EndpointIMDSToken, emulator.EndpointPlatformMetadata, emulator.EndpointIssueCredential, emulator.EndpointToken} {
		if n := emu.Requests(ep); n != 0 {
			t.Fatalf("cache-only misses sent %d requests to %s", n, ep)
		}
	}
	bearer, err := c.AcquireToken(context.Background(), resource)
	if err != nil {
		t.Fatal(err)
	}
	hit, err := c.AcquireToken(context.Background(), resource, only)
	if err != nil || hit.Source != token.SourceCache || hit.AccessToken != bearer.AccessToken {
		t.Fatalf("cache-only hit: %v, %v", hit, err)
	}
	// A Bearer token does not answer for a PoP one.
	_, err = c.AcquireToken(context.Background(), resource, only, popOpt)
	wantCode(t, err, token.CodeNotCached)
	if _, err := c.AcquireToken(context.Background(), resource, popOpt); err != nil {
		t.Fatal(err)
	}
	if hit, err := c.AcquireToken(context.Background(), resource, only, popOpt); err != nil || !hit.IsPoP() || hit.Source != token.SourceCache {
		t.Fatalf("cache-only PoP hit: %v, %v", hit, err)
	}
	// Forcing a refresh or sending claims always fetches: not a cache-only acquisition.
	_, err = c.AcquireToken(context.Background(), resource, only, managedidentity.WithForceRefresh())
	wantCode(t, err, token.CodeInvalidArgument)
	_, err = c.AcquireToken(context.Background(), resource, only, managedidentity.WithClaims(`{"access_token":{}}`))
	wantCode(t, err, token.CodeInvalidArgument)
	if n := emu.Requests(emulator.EndpointIMDSToken) + emu.Requests(emulator.EndpointToken); n != 2 {
		t.Fatalf("%d token requests, want the 2 of the two fetching acquisitions", n)
	}
}

// A cache hit allocates nothing, Bearer or PoP (the benchmarks measure the time; this keeps the
// allocation count from regressing unnoticed).
func TestCacheHitsDoNotAllocate(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	ctx := context.Background()
	for _, opts := range [][]managedidentity.AcquireOption{nil, {popOpt}} {
		if _, err := c.AcquireToken(ctx, "api://r", opts...); err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(100, func() {
			if r, err := c.AcquireToken(ctx, "api://r", opts...); err != nil || r.Source != token.SourceCache {
				t.Fatalf("not a hit: %v", err)
			}
		})
		if n != 0 {
			t.Errorf("options %v: %v allocations per cache hit", opts, n)
		}
	}
}

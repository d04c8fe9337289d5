package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	msal "github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
)

const resource = "api://mtlspop-emulator"

// appService is a loopback App Service managed-identity endpoint for MSAL Go, which only leaves
// the hard-coded IMDS address through the App Service (and other env-var) sources.
func appService(b *testing.B) {
	const secret = "bench-secret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-IDENTITY-HEADER") != secret || r.URL.Query().Get("api-version") != "2019-08-01" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"access_token": "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcGk6Ly9tdGxzcG9wLWVtdWxhdG9yIn0.c2ln",
			"expires_on":   strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10),
			"resource":     r.URL.Query().Get("resource"),
			"token_type":   "Bearer",
			"client_id":    emulator.DefaultSystemAssignedClientID,
		})
	}))
	b.Cleanup(srv.Close)
	b.Setenv("IDENTITY_ENDPOINT", srv.URL)
	b.Setenv("IDENTITY_HEADER", secret)
}

func msalClient(b *testing.B) msal.Client {
	appService(b)
	c, err := msal.New(msal.SystemAssigned())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.AcquireToken(context.Background(), resource); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkMSALGoCacheHit is MSAL Go's managed-identity AcquireToken on a cached token.
func BenchmarkMSALGoCacheHit(b *testing.B) {
	c := msalClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireToken(ctx, resource); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMSALGoCacheHitParallel(b *testing.B) {
	c := msalClient(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := c.AcquireToken(ctx, resource); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// ours is libmtlspop's managed-identity client on the emulator's IMDS, with one token cached.
// The source does not matter to a cache hit, which does no I/O.
func ours(b *testing.B, opts ...managedidentity.AcquireOption) *managedidentity.Client {
	emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = emu.Close() })
	env := emu.Env()
	c, err := managedidentity.New(managedidentity.SystemAssigned(),
		managedidentity.WithEnv(func(k string) string { return env[k] }), managedidentity.WithRootCAs(emu.RootCAs()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	if _, err := c.AcquireToken(context.Background(), resource, opts...); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkMtlspopCacheHit is libmtlspop's AcquireToken on a cached Bearer token, the same call
// as BenchmarkMSALGoCacheHit.
func BenchmarkMtlspopCacheHit(b *testing.B) {
	c := ours(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireToken(ctx, resource); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMtlspopCacheHitParallel(b *testing.B) {
	c := ours(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := c.AcquireToken(ctx, resource); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMtlspopPoPCacheHit is the same with an mTLS PoP token (MSAL Go has none to compare).
func BenchmarkMtlspopPoPCacheHit(b *testing.B) {
	pop := managedidentity.WithMtlsPoP()
	c := ours(b, pop)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireToken(ctx, resource, pop); err != nil {
			b.Fatal(err)
		}
	}
}

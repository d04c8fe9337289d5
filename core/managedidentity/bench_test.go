package managedidentity_test

import (
	"context"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
)

// BenchmarkColdPoPAcquire is a first acquisition on loopback: getplatformmetadata, an RSA-2048
// key, the CSR, issuecredential, and the token leg over a new mTLS connection.
func BenchmarkColdPoPAcquire(b *testing.B) {
	emu := startEmulator(b, emulator.Config{})
	resource := emu.Config().ResourceID
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := clientFor(b, emu, managedidentity.SystemAssigned(), nil)
		b.StartTimer()
		if _, err := c.AcquireToken(context.Background(), resource, popOpt); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = c.Close()
		b.StartTimer()
	}
}

// BenchmarkWarmCertPoPAcquire is a network acquisition with the binding certificate cached: the
// token leg only, on a pooled connection.
func BenchmarkWarmCertPoPAcquire(b *testing.B) {
	emu := startEmulator(b, emulator.Config{})
	c := clientFor(b, emu, managedidentity.SystemAssigned(), nil)
	resource := emu.Config().ResourceID
	if _, err := c.AcquireToken(context.Background(), resource, popOpt); err != nil {
		b.Fatal(err)
	}
	force := managedidentity.WithForceRefresh()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireToken(context.Background(), resource, popOpt, force); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPoPCacheHit is AcquireToken on a fresh cached entry.
func BenchmarkPoPCacheHit(b *testing.B) {
	emu := startEmulator(b, emulator.Config{})
	c := clientFor(b, emu, managedidentity.SystemAssigned(), nil)
	resource := emu.Config().ResourceID
	ctx := context.Background()
	if _, err := c.AcquireToken(ctx, resource, popOpt); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireToken(ctx, resource, popOpt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdCoalesced starts 1,000 callers at once on a new client and reports the most
// requests any stage of the IMDSv2 flow (getplatformmetadata, issuecredential, token) received
// per round: 1 means every miss was coalesced.
func BenchmarkColdCoalesced(b *testing.B) {
	emu := startEmulator(b, emulator.Config{})
	resource := emu.Config().ResourceID
	worst := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := clientFor(b, emu, managedidentity.SystemAssigned(), nil)
		before := map[emulator.Endpoint]int{}
		stages := []emulator.Endpoint{emulator.EndpointPlatformMetadata, emulator.EndpointIssueCredential, emulator.EndpointToken}
		for _, ep := range stages {
			before[ep] = emu.Requests(ep)
		}
		b.StartTimer()
		coldCallers(b, c, resource, 1000, popOpt)
		b.StopTimer()
		for _, ep := range stages {
			worst = max(worst, emu.Requests(ep)-before[ep])
		}
		_ = c.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(worst), "requests/stage")
}

// BenchmarkBearerCacheHit is AcquireToken on a fresh cached Bearer entry.
func BenchmarkBearerCacheHit(b *testing.B) {
	emu := startEmulator(b, emulator.Config{})
	c := clientFor(b, emu, managedidentity.SystemAssigned(), nil)
	resource := emu.Config().ResourceID
	ctx := context.Background()
	if _, err := c.AcquireToken(ctx, resource); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireToken(ctx, resource); err != nil {
			b.Fatal(err)
		}
	}
}

package confidential_test

import (
	"context"
	"testing"

	"github.com/mtlspop/mtlspop/core/confidential"
	"github.com/mtlspop/mtlspop/core/emulator"
)

// BenchmarkConfidentialPoPCacheHit is AcquireTokenForClient on a cached mTLS PoP token of a
// certificate credential: no signature, no request, no allocation.
func BenchmarkConfidentialPoPCacheHit(b *testing.B) {
	emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	app := emu.App()
	c, err := confidential.New(emu.AuthorityURL(), app.ClientID, confidential.Certificate(app.Certificate),
		confidential.WithMtlsEndpoint(emu.MTLSAuthURL()), confidential.WithRootCAs(emu.RootCAs()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, pop := context.Background(), confidential.WithMtlsPoP()
	if _, err := c.AcquireTokenForClient(ctx, scopes, pop); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireTokenForClient(ctx, scopes, pop); err != nil {
			b.Fatal(err)
		}
	}
}

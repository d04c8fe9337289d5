package cache

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

type filledCache struct {
	c   *Cache
	p   *Part
	res string
}

// fills memoizes filled caches across benchmark runs (-count): building a million entries takes
// seconds, and the caches are read-only once built.
var fills sync.Map // int → *filledCache

// filled returns a cache of n tokens in partitions of at most 1,000 resources (one identity's
// resources; a large cache is many identities or tenants), and a partition and resource to hit.
func filled(b *testing.B, n int) (*Cache, *Part, string) {
	b.Helper()
	if f, ok := fills.Load(n); ok {
		fc := f.(*filledCache)
		return fc.c, fc.p, fc.res
	}
	c := New(Options{MaxEntries: 2 * n})
	res := token.Result{AccessToken: "t", TokenType: token.TypeMtlsPoP, ExpiresOn: time.Now().Add(24 * time.Hour)}
	fetch := func(context.Context, bool) (token.Result, error) { return res, nil }
	var hitPart *Part
	hitRes := ""
	for i := 0; i < n; i++ {
		p := c.Partition(Partition{Authority: "tenant-" + strconv.Itoa(i/1000), Identity: "client", TokenType: token.TypeMtlsPoP, KeyID: "x5t"})
		r := "https://resource-" + strconv.Itoa(i%1000) + ".example.com"
		if _, err := p.Get(context.Background(), r, false, fetch); err != nil {
			b.Fatal(err)
		}
		if i == n/2 {
			hitPart, hitRes = p, string([]byte(r)) // a caller's own string, not the map's
		}
	}
	fills.Store(n, &filledCache{c, hitPart, hitRes})
	return c, hitPart, hitRes
}

// BenchmarkHit is a cache hit through a resolved partition: what the clients do per call.
func BenchmarkHit(b *testing.B) {
	_, p, r := filled(b, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := p.Peek(r); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkHitParallel is the same hit from every core at once; ns/op is wall time per hit.
func BenchmarkHitParallel(b *testing.B) {
	_, p, r := filled(b, 10)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := p.Peek(r); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

func BenchmarkHitEntries(b *testing.B) {
	for _, n := range []int{10, 10_000, 1_000_000} {
		_, p, r := filled(b, n) // once per size, not once per round
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok := p.Peek(r); !ok {
					b.Fatal("miss")
				}
			}
		})
	}
}

// BenchmarkHitByKey looks a token up by its full key, partition lookup included (a caller that
// does not keep its partition).
func BenchmarkHitByKey(b *testing.B) {
	c, _, _ := filled(b, 10)
	k := Key{Authority: "tenant-0", Identity: "client", Resource: "https://resource-5.example.com", TokenType: token.TypeMtlsPoP, KeyID: "x5t"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := c.Peek(k); !ok {
			b.Fatal("miss")
		}
	}
}

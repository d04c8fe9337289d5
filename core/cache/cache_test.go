package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

func TestGetCachesUntilFiveMinutesBeforeExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := New(func() time.Time { return now })
	calls := 0
	fetch := func(context.Context) (token.Result, error) {
		calls++
		return token.Result{AccessToken: "t", ExpiresOn: now.Add(time.Hour)}, nil
	}
	k := Key{Identity: "i", Resource: "r", TokenType: token.TypeBearer}
	ctx := context.Background()
	r, err := c.Get(ctx, k, false, fetch)
	if err != nil || r.Source != token.SourceIdentityProvider || calls != 1 {
		t.Fatal(r, err)
	}
	if r, _ := c.Get(ctx, k, false, fetch); r.Source != token.SourceCache || calls != 1 {
		t.Fatal("miss on a fresh entry")
	}
	if _, _ = c.Get(ctx, k, true, fetch); calls != 2 {
		t.Fatal("force did not fetch")
	}
	if _, ok := c.Peek(Key{Identity: "i", Resource: "r", TokenType: token.TypeMtlsPoP}); ok {
		t.Fatal("a PoP key found a Bearer entry")
	}
	now = now.Add(55*time.Minute + time.Second) // inside the 5-minute buffer
	if _, ok := c.Peek(k); ok {
		t.Fatal("served a token in its last five minutes")
	}
	boom := errors.New("boom")
	if _, err := c.Get(ctx, Key{Resource: "x"}, false, func(context.Context) (token.Result, error) { return token.Result{}, boom }); err != boom {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatalf("errors must not be cached: %d entries", c.Len())
	}
	c.Close()
	if c.Len() != 0 {
		t.Fatal("Close kept entries")
	}
}

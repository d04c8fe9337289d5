package attest

import (
	"encoding/base64"
	"testing"
	"time"
)

func jwtWith(payload string) string {
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
}

func TestTokenExpiry(t *testing.T) {
	for _, tc := range []struct {
		jwt  string
		want int64 // 0: error
	}{
		{jwtWith(`{"exp":1795560000}`), 1795560000},
		{jwtWith(`{"exp":1795560000.5}`), 1795560000},
		{jwtWith(`{"exp":"1795560000"}`), 1795560000}, // a numeric string is tolerated
		{jwtWith(`{}`), 0},
		{jwtWith(`{"exp":-1}`), 0},
		{jwtWith(`[]`), 0},
		{"a.b", 0},
		{"a.!!!.c", 0},
	} {
		got, err := tokenExpiry(tc.jwt)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%q: expiry %v, want an error", tc.jwt, got)
			}
			continue
		}
		if err != nil || !got.Equal(time.Unix(tc.want, 0)) {
			t.Errorf("%q: %v, %v; want %d", tc.jwt, got, err, tc.want)
		}
	}
}

func FuzzTokenExpiry(f *testing.F) {
	f.Add(jwtWith(`{"exp":1795560000}`))
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		if exp, err := tokenExpiry(s); err == nil && exp.Unix() <= 0 {
			t.Fatalf("accepted a non-positive exp from %q", s)
		}
	})
}

package attest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/attest"
)

// VerifyToken is what a relying party (IMDS's issuecredential, the emulator) runs on an
// attestation token: one negative case per check, each changing one thing of a valid token.
func TestVerifyTokenRefuses(t *testing.T) {
	const issuer = "https://attest.example"
	key := mustECDSA()
	now := time.Unix(1_800_000_000, 0)
	thumb, _ := attest.KeyThumbprint(fixtureRSA.Public())
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": issuer, "iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(),
			"exp": now.Add(time.Hour).Unix(), attest.ClaimKeyThumbprint: thumb, attest.ClaimAKTrust: string(attest.TrustAllowList),
		}
	}
	sign := func(c jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	got, err := attest.VerifyToken(sign(valid()), &key.PublicKey, issuer, now)
	if err != nil || got.KeyThumbprint != thumb || got.AKTrust != attest.TrustAllowList || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("valid token: %+v, %v", got, err)
	}

	for _, tc := range []struct {
		name   string
		claims func(c jwt.MapClaims)
		tok    func(c jwt.MapClaims) string
		want   string
	}{
		{name: "expired", want: "expired",
			claims: func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }},
		{name: "expired less than the leeway ago is accepted", want: "",
			claims: func(c jwt.MapClaims) { c["exp"] = now.Add(-30 * time.Second).Unix() }},
		{name: "no exp", want: "exp",
			claims: func(c jwt.MapClaims) { delete(c, "exp") }},
		{name: "wrong issuer", want: "issuer",
			claims: func(c jwt.MapClaims) { c["iss"] = "https://someone-else.example" }},
		{name: "no issuer", want: "iss",
			claims: func(c jwt.MapClaims) { delete(c, "iss") }},
		{name: "not yet valid", want: "not valid yet",
			claims: func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() }},
		{name: "issued in the future", want: "used before issued",
			claims: func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Minute).Unix() }},
		{name: "names no key", want: attest.ClaimKeyThumbprint,
			claims: func(c jwt.MapClaims) { delete(c, attest.ClaimKeyThumbprint) }},
		{name: "signed by another key", want: "signature",
			tok: func(c jwt.MapClaims) string {
				s, _ := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(mustECDSA())
				return s
			}},
		{name: "alg none", want: "signing method",
			tok: func(c jwt.MapClaims) string {
				s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
				return s
			}},
		{name: "HS256 (a symmetric algorithm)", want: "signing method",
			tok: func(c jwt.MapClaims) string {
				s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte("secret"))
				return s
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			if tc.claims != nil {
				tc.claims(c)
			}
			tok := ""
			if tc.tok != nil {
				tok = tc.tok(c)
			} else {
				tok = sign(c)
			}
			_, err := attest.VerifyToken(tok, &key.PublicKey, issuer, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("VerifyToken = %v; want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyToken = %v; want an error about %q", err, tc.want)
			}
		})
	}
}

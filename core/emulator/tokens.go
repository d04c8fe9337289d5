package emulator

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/token"
)

// grant is what an access token says: who, for which audience, bound to which certificate.
type grant struct {
	aud      string
	id       Identity
	bound    *x509.Certificate // nil for a Bearer token
	lifetime time.Duration     // 0 = Config.TokenLifetime; < 0 = already expired
}

type minted struct {
	token   string
	issued  time.Time
	expires time.Time
}

// mint signs an RS256 access token shaped like an Entra app-only token for a managed identity.
func (e *Emulator) mint(g grant) (minted, error) {
	lifetime := g.lifetime
	if lifetime == 0 {
		lifetime = e.cfg.TokenLifetime
	}
	now := time.Now().Truncate(time.Second)
	issued, expires := now, now.Add(lifetime)
	if lifetime < 0 {
		issued = expires.Add(-time.Hour)
	}
	claims := jwt.MapClaims{
		"iss":   e.Issuer(),
		"aud":   g.aud,
		"sub":   g.id.ObjectID,
		"oid":   g.id.ObjectID,
		"tid":   e.cfg.TenantID,
		"appid": g.id.ClientID,
		"azp":   g.id.ClientID,
		"idtyp": "app",
		"iat":   issued.Unix(),
		"nbf":   issued.Unix(),
		"exp":   expires.Unix(),
		"jti":   wire.NewGUID(),
	}
	if g.id.ResourceID != "" {
		claims["xms_mirid"] = g.id.ResourceID
	}
	if g.bound != nil {
		claims["cnf"] = map[string]string{"x5t#S256": token.Thumbprint(g.bound)}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = e.ca.kid
	s, err := t.SignedString(e.ca.signingKey)
	if err != nil {
		return minted{}, fmt.Errorf("emulator: signing token: %w", err)
	}
	return minted{token: s, issued: issued, expires: expires}, nil
}

// MintToken returns a signed access token for the system-assigned identity as the token
// endpoint would issue it: audience aud, bound to the certificate (cnf x5t#S256) when bound is
// not nil. lifetime 0 means Config.TokenLifetime; a negative lifetime gives a token that has
// already expired. It is a test helper: nothing is counted or recorded.
func (e *Emulator) MintToken(aud string, bound *x509.Certificate, lifetime time.Duration) (string, error) {
	m, err := e.mint(grant{aud: aud, id: e.cfg.SystemAssigned, bound: bound, lifetime: lifetime})
	return m.token, err
}

// expiresIn is the whole seconds left until exp, as a server reports a token's expires_in.
func expiresIn(exp time.Time) int64 {
	return max(0, int64(time.Until(exp)/time.Second))
}

// refreshIn applies the Config.RefreshIn rule.
func (e *Emulator) refreshIn() (int64, bool) {
	switch r := e.cfg.RefreshIn; {
	case r > 0:
		return max(1, int64(r/time.Second)), true
	case r == 0 && e.cfg.TokenLifetime > 2*time.Hour:
		return int64(e.cfg.TokenLifetime / 2 / time.Second), true
	}
	return 0, false
}

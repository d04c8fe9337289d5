package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims of an attestation token, besides iss, iat, nbf, exp and jti.
const (
	// ClaimKeyThumbprint is KeyThumbprint of the attested key.
	ClaimKeyThumbprint = "key_spki_s256"
	// ClaimAKTrust is the Trust that vouched for the attestation key.
	ClaimAKTrust = "ak_trust"
	// ClaimAKName is the base64url Name of the attestation key.
	ClaimAKName = "ak_name"
	// ClaimTPMCertify describes the certified key as MAA's policy sees a tpm_certify key:
	// {"name": base64url Name, "name_alg": TPM_ALG_ID, "obj_attr": TPMA_OBJECT, "auth_policy":
	// base64url}.
	ClaimTPMCertify = "tpm_certify"
	// ClaimAttestationType is "tpm", as in MAA's x-ms-attestation-type.
	ClaimAttestationType = "x-ms-attestation-type"
)

// TokenClaims are the verified claims of an attestation token.
type TokenClaims struct {
	Issuer        string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	KeyThumbprint string
	AKTrust       Trust
}

// VerifyToken verifies an attestation token signed by key (RS256 or PS256 for an RSA key,
// ES256 for P-256), issued by issuer, unexpired at now, naming a key; and returns its claims.
func VerifyToken(tok string, key crypto.PublicKey, issuer string, now time.Time) (*TokenClaims, error) {
	var methods []string
	switch key.(type) {
	case *rsa.PublicKey:
		methods = []string{"RS256", "PS256"}
	case *ecdsa.PublicKey:
		methods = []string{"ES256"}
	default:
		return nil, fmt.Errorf("attest: unsupported token key %T", key)
	}
	if now.IsZero() {
		now = time.Now()
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(time.Minute),
	).ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return key, nil })
	if err != nil {
		return nil, fmt.Errorf("attest: attestation token: %w", err)
	}
	out := &TokenClaims{Issuer: issuer}
	exp, _ := claims.GetExpirationTime()
	out.ExpiresAt = exp.Time
	if iat, _ := claims.GetIssuedAt(); iat != nil {
		out.IssuedAt = iat.Time
	}
	thumb, _ := claims[ClaimKeyThumbprint].(string)
	if thumb == "" {
		return nil, errors.New("attest: attestation token names no key (" + ClaimKeyThumbprint + ")")
	}
	out.KeyThumbprint = thumb
	if t, ok := claims[ClaimAKTrust].(string); ok {
		out.AKTrust = Trust(t)
	}
	return out, nil
}

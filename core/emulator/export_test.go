package emulator

import (
	"crypto"
	"crypto/x509"

	"github.com/golang-jwt/jwt/v5"
)

// IssueBindingCertificateForTest issues a binding certificate for any client id, so tests can
// present a certificate from the emulator's binding CA whose CN is not a known identity.
func (e *Emulator) IssueBindingCertificateForTest(clientID string, pub crypto.PublicKey) (*x509.Certificate, error) {
	return e.ca.issueBinding(clientID, pub)
}

// SignForTest signs claims (RS256) with the emulator's token-signing key, the key of its access
// and attestation tokens, so tests can make tokens the emulator signed but whose claims it never
// issues: another issuer, an exp in the past.
func (e *Emulator) SignForTest(claims jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = e.ca.kid
	return t.SignedString(e.ca.signingKey)
}

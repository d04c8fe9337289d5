package managedidentity

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/token"
)

// Key attestation for IMDSv2: before a binding certificate is minted for a key, the key proves
// to the attestation service named by getplatformmetadata that it lives in a TPM, and the
// service's token travels with the CSR. MSAL.NET does this with a closed Windows DLL for
// KeyGuard keys; here any key that implements attest.Attestable (a TPM key) can.
//
// It fails closed: when attestation was asked for, a key that cannot attest, or a service that
// refuses, is an error with token.CodeAttestationFailed — never a silent non-attested mint
// (MSAL.NET #6079).

// attestationMargin: an attestation token is reused until five minutes before it expires.
const attestationMargin = 5 * time.Minute

// attestations caches attestation tokens by service endpoint and attested key, as MSAL.NET
// does, so re-minting a certificate for the same key does not attest again.
type attestations struct {
	client attest.Client
	mu     sync.Mutex
	tokens map[string]attestationToken
}

type attestationToken struct {
	jwt       string
	expiresOn time.Time
}

// token returns an attestation token for key from the service at endpoint.
func (a *attestations) token(ctx context.Context, endpoint string, key keys.Key, now time.Time) (string, error) {
	at, ok := key.(attest.Attestable)
	if !ok {
		return "", token.Errorf(token.CodeAttestationFailed,
			"attestation was requested, but the binding key (%s) cannot be attested; use a TPM key provider", key.Strength())
	}
	thumb, err := attest.KeyThumbprint(key.Public())
	if err != nil {
		return "", token.Wrap(token.CodeAttestationFailed, err, "attestation: the binding key's public key")
	}
	id := strings.ToLower(strings.TrimRight(endpoint, "/")) + "|" + thumb
	a.mu.Lock()
	cached, hit := a.tokens[id]
	a.mu.Unlock()
	if hit && now.Add(attestationMargin).Before(cached.expiresOn) {
		return cached.jwt, nil
	}
	jwt, expiresOn, err := a.client.Token(ctx, endpoint, at)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	if a.tokens == nil {
		a.tokens = make(map[string]attestationToken)
	}
	a.tokens[id] = attestationToken{jwt, expiresOn}
	a.mu.Unlock()
	return jwt, nil
}

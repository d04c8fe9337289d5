package pop

import (
	"context"
	"crypto"
	"maps"
)

// KeySet gives the public key that signed a token, by the token's kid header.
//
// It is one method so that a fixed map (StaticKeys), a live JWKS endpoint (JWKS) and the
// emulator's keys all plug into a Verifier the same way. Implementations must be safe for
// concurrent use. Key should return a *token.Error: CodeInvalidToken when kid is unknown,
// CodeNetwork when the keys could not be obtained. Any other error is treated as an unknown key,
// and its text is dropped, because kid comes from the token and must not reach error messages.
type KeySet interface {
	Key(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// StaticKeys returns a KeySet over a fixed map of kid to public key (*rsa.PublicKey or
// *ecdsa.PublicKey), for servers that are given their issuer's keys in configuration and for
// tests. The map is copied, so the caller may reuse it.
func StaticKeys(keys map[string]crypto.PublicKey) KeySet {
	return staticKeys(maps.Clone(keys))
}

type staticKeys map[string]crypto.PublicKey

func (s staticKeys) Key(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s[kid]; ok && k != nil {
		return k, nil
	}
	return nil, invalid(msgUnknownKey)
}

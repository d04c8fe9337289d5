// Package keys provides binding keys — the private keys that access tokens are bound to through
// their certificates — and builds the certificate signing requests that get those certificates
// issued.
//
// A Provider hands out one key per slot (an identity, kept apart by attestation), and keeps
// returning that key until the certificate bound to it is replaced. The software provider keeps
// RSA-2048 keys in memory; the TPM provider (package tpm) implements the same interface with
// non-exportable keys.
package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"sync"

	"github.com/mtlspop/mtlspop/core/token"
)

// Strength says how well a key is protected.
type Strength string

const (
	// StrengthSoftware: the key lives in process memory.
	StrengthSoftware Strength = "software"
	// StrengthTPM: the key was generated in a TPM and cannot leave it.
	StrengthTPM Strength = "tpm"
)

// Key is a binding key. It is a crypto.Signer, so crypto/tls and crypto/x509 can use it directly
// (tls.Certificate.PrivateKey = key) without the private key ever being copied.
type Key interface {
	crypto.Signer
	Strength() Strength
}

// Provider hands out binding keys. Implementations must be safe for concurrent use.
type Provider interface {
	// Key returns the key for slot, creating it on first use. Later calls return the same key
	// until Rotate is called for the slot.
	Key(ctx context.Context, slot string) (Key, error)
	// Rotate discards the slot's key so the next Key call creates a fresh one. Callers rotate
	// when the certificate bound to the key is replaced or was refused.
	Rotate(ctx context.Context, slot string) error
}

// RSABits is the size of software keys: IMDSv2 accepts RSA-2048 only.
const RSABits = 2048

// Software is a Provider of in-memory RSA-2048 keys. The zero value is not usable; call
// NewSoftware.
type Software struct {
	mu   sync.Mutex
	keys map[string]*softwareKey
}

// NewSoftware returns a provider of in-memory RSA-2048 keys.
func NewSoftware() *Software {
	return &Software{keys: make(map[string]*softwareKey)}
}

// Key returns the slot's key, generating an RSA-2048 key on first use. Generation happens under
// the provider's lock, so concurrent first calls for a slot produce one key.
func (s *Software) Key(ctx context.Context, slot string) (Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, token.Wrap(token.CodeCanceled, err, "creating binding key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[slot]; ok {
		return k, nil
	}
	pk, err := rsa.GenerateKey(rand.Reader, RSABits)
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "generating RSA key")
	}
	k := &softwareKey{pk: pk}
	s.keys[slot] = k
	return k, nil
}

// Rotate forgets the slot's key.
func (s *Software) Rotate(_ context.Context, slot string) error {
	s.mu.Lock()
	delete(s.keys, slot)
	s.mu.Unlock()
	return nil
}

// softwareKey wraps the RSA key so the private key is reachable only through Sign: nothing that
// holds a Key can marshal the private key by accident.
type softwareKey struct{ pk *rsa.PrivateKey }

func (k *softwareKey) Public() crypto.PublicKey { return &k.pk.PublicKey }

func (k *softwareKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.pk.Sign(r, digest, opts)
}

func (k *softwareKey) Strength() Strength { return StrengthSoftware }

func (k *softwareKey) String() string { return "keys.softwareKey{RSA-2048, private key redacted}" }

// CertificateStore is an optional Provider extension for providers whose keys outlive the
// process (a TPM's persisted key blobs): it keeps the certificate issued for a slot's key, so a
// restarted process reuses both instead of minting again. Callers find it by type assertion and
// must still check that a loaded certificate is valid and certifies the slot's current key.
type CertificateStore interface {
	// StoreCertificate records the certificate issued for the slot's current key.
	StoreCertificate(ctx context.Context, slot string, rec CertificateRecord) error
	// LoadCertificate returns the slot's recorded certificate; ok=false when there is none.
	LoadCertificate(ctx context.Context, slot string) (rec CertificateRecord, ok bool, err error)
}

// CertificateRecord is an issued binding certificate and what the token leg needs besides it.
type CertificateRecord struct {
	DER      []byte `json:"der"`
	ClientID string `json:"client_id"`
	TenantID string `json:"tenant_id"`
	Endpoint string `json:"mtls_authentication_endpoint"`
}

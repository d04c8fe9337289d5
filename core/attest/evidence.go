// Package attest proves that a binding key lives in a TPM, and checks such proofs.
//
// The proof is TPM2_Certify: an attestation key (AK) — a restricted signing key of the same TPM,
// which signs only structures the TPM itself generated — signs a TPMS_ATTEST that names the
// binding key (its Name covers the key's public area, attributes included) and carries the
// verifier's challenge. Evidence holds the raw TPM structures; Verify performs every check of
// reference/tpm-attestation.md §3.4; Client runs the attestation service protocol (modelled on
// Microsoft Azure Attestation's TPM protocol) and returns the service's attestation token, a
// JWT that names the attested key, for IMDSv2's issuecredential.
//
// The package never talks to a TPM itself. Keys that can be attested implement Attestable
// (package tpm's keys do), so the managed-identity flow finds attestation by type assertion on
// the binding key, and a software key simply lacks it.
package attest

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
)

// Evidence is a TPM2_Certify of a key by an attestation key, as raw TPM structures in their
// TPM wire encoding. On the wire (JSON) each member is standard base64.
type Evidence struct {
	// KeyPublic is the certified key's TPMT_PUBLIC.
	KeyPublic []byte `json:"key_public"`
	// Attest is the TPMS_ATTEST the AK signed, byte for byte as the TPM returned it.
	Attest []byte `json:"certify_info"`
	// Signature is the AK's TPMT_SIGNATURE over Attest.
	Signature []byte `json:"signature"`
	// AKPublic is the attestation key's TPMT_PUBLIC.
	AKPublic []byte `json:"ak_public"`
	// EKCertificate is the DER of the TPM's endorsement-key certificate; empty when the TPM
	// has none.
	EKCertificate []byte `json:"ek_certificate,omitempty"`
}

// Identity is what an attester presents before it is challenged: its AK, and the certificate
// of the TPM's endorsement key when there is one.
type Identity struct {
	AKPublic      []byte // TPMT_PUBLIC
	EKCertificate []byte // DER; nil when the TPM has none
}

// Credential is a TPM2_MakeCredential result: a secret only the TPM holding both the
// endorsement key it was encrypted to and the AK it names can recover, with
// TPM2_ActivateCredential. It proves the AK lives in the TPM the EK certificate is for.
type Credential struct {
	IDObject        []byte `json:"id_object"`        // TPM2B_ID_OBJECT contents
	EncryptedSecret []byte `json:"encrypted_secret"` // TPM2B_ENCRYPTED_SECRET contents
}

// Attestable is a key whose residence in a TPM can be proven. Package tpm's keys implement
// it; the managed-identity flow discovers it by type assertion on a keys.Key.
type Attestable interface {
	// Public returns the key's public key (as crypto.Signer does).
	Public() crypto.PublicKey
	// AttestationIdentity returns the AK (created on first use) and the EK certificate.
	AttestationIdentity(ctx context.Context) (Identity, error)
	// Certify runs TPM2_Certify of the key by the AK with qualifyingData as the TPMS_ATTEST's
	// extraData. qualifyingData must be at most 32 bytes (a digest or a challenge).
	Certify(ctx context.Context, qualifyingData []byte) (*Evidence, error)
}

// CredentialActivator is implemented by attestable keys whose TPM can answer a credential
// activation challenge with its endorsement key (TPM2_ActivateCredential).
type CredentialActivator interface {
	ActivateCredential(ctx context.Context, c Credential) (secret []byte, err error)
}

// KeyThumbprint is base64url (no padding) of the SHA-256 of the key's DER SubjectPublicKeyInfo.
// An attestation token names the key it attests by this value (claim ClaimKeyThumbprint), and
// a relying party compares it with the thumbprint of the key in a CSR or certificate.
func KeyThumbprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("attest: encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

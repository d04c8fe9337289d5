package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/token"
)

// bindingTemplate is the public template of a binding key: an unrestricted signing key that
// cannot leave this TPM (fixedTPM, fixedParent), whose secret the TPM generated
// (sensitiveDataOrigin), usable with its empty auth value (userWithAuth, noDA) and not for
// decryption. The scheme is NULL so each TPM2_Sign picks RSASSA or RSAPSS (or the ECDSA hash).
func bindingTemplate(alg Algorithm) tpm2.TPMTPublic {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		SignEncrypt:         true,
	}
	if alg == ECCP256 {
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgECC,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				CurveID: tpm2.TPMECCNistP256,
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
		}
	}
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgRSA,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: attrs,
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			KeyBits: 2048,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
	}
}

// bindingAttributes reports whether a key has what a binding key needs.
func bindingAttributes(a tpm2.TPMAObject) bool {
	return a.FixedTPM && a.FixedParent && a.SensitiveDataOrigin && a.SignEncrypt && !a.Restricted && !a.Decrypt
}

// Key is a binding key in the TPM. It implements keys.Key (a crypto.Signer over TPM2_Sign),
// attest.Attestable and attest.CredentialActivator. Its methods are safe for concurrent use.
type Key struct {
	p          *Provider
	slot       string
	alg        Algorithm
	public     crypto.PublicKey
	publicArea []byte // TPMT_PUBLIC
	private    []byte // TPM2B_PRIVATE contents, wrapped by the SRK
	pssOK      bool   // set once, before the key is shared

	// Under the provider's TPM lock.
	handle   tpm2.TPMHandle
	name     tpm2.TPM2BName
	loaded   bool
	released bool
}

var _ keys.Key = (*Key)(nil)

func newKey(p *Provider, slot string, alg Algorithm, publicArea, private []byte) (*Key, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](publicArea)
	if err != nil {
		return nil, fmt.Errorf("key public area: %w", err)
	}
	pk, err := tpm2.Pub(*pub)
	if err != nil {
		return nil, fmt.Errorf("key public key: %w", err)
	}
	switch pk.(type) {
	case *rsa.PublicKey:
		if alg != RSA2048 {
			return nil, errors.New("key is RSA, expected " + string(alg))
		}
	case *ecdsa.PublicKey:
		if alg != ECCP256 {
			return nil, errors.New("key is ECC, expected " + string(alg))
		}
	}
	return &Key{p: p, slot: slot, alg: alg, public: pk, publicArea: publicArea, private: private}, nil
}

// Public returns the *rsa.PublicKey or *ecdsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.public }

// Strength is keys.StrengthTPM.
func (k *Key) Strength() keys.Strength { return keys.StrengthTPM }

// Algorithm is the key's algorithm.
func (k *Key) Algorithm() Algorithm { return k.alg }

// PublicArea returns the key's TPMT_PUBLIC (what its TPM Name is computed over).
func (k *Key) PublicArea() []byte { return append([]byte(nil), k.publicArea...) }

// PSSSupported reports whether the key can make RSA-PSS signatures with salt = hash length
// (always false for ECC keys). An RSA key without it cannot sign TLS 1.3 handshakes or the
// IMDSv2 CSR; in TLS 1.2 it works with SupportedSignatureAlgorithms and MaxVersion TLS 1.2.
func (k *Key) PSSSupported() bool { return k.alg == RSA2048 && k.pssOK }

// SupportedSignatureAlgorithms lists the TLS signature schemes the key can make, for
// tls.Certificate.SupportedSignatureAlgorithms: SHA-256 and SHA-384 only (many TPMs lack
// SHA-512), and no RSA-PSS when the TPM salts PSS wrongly (see PSSSupported).
func (k *Key) SupportedSignatureAlgorithms() []tls.SignatureScheme {
	switch {
	case k.alg == ECCP256:
		return []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384}
	case k.pssOK:
		return []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384}
	}
	return []tls.SignatureScheme{tls.PKCS1WithSHA256, tls.PKCS1WithSHA384}
}

func (k *Key) String() string {
	return fmt.Sprintf("tpm.Key{%s, slot %q, private key in the TPM}", k.alg, k.slot)
}

func tpmHash(h crypto.Hash) (tpm2.TPMIAlgHash, bool) {
	switch h {
	case crypto.SHA1:
		return tpm2.TPMAlgSHA1, true
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, true
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, true
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, true
	}
	return 0, false
}

// Sign signs digest with TPM2_Sign, as crypto.Signer: PKCS#1 v1.5 for a crypto.Hash, RSA-PSS
// for *rsa.PSSOptions (salt length auto, equal to the hash, or the hash size), ECDSA as DER
// SEQUENCE{r, s}. rand is unused (the TPM has its own). It waits at most Config.SignTimeout for
// the TPM.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	alg, ok := tpmHash(h)
	if !ok {
		return nil, token.Errorf(token.CodeInvalidArgument, "tpm: cannot sign with hash %v", h)
	}
	if len(digest) != h.Size() {
		return nil, token.Errorf(token.CodeInvalidArgument, "tpm: digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	scheme := tpm2.TPMAlgECDSA
	if k.alg == RSA2048 {
		scheme = tpm2.TPMAlgRSASSA
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			scheme = tpm2.TPMAlgRSAPSS
			switch pss.SaltLength {
			case rsa.PSSSaltLengthAuto:
				// Any salt verifies; a max-salt TPM is fine here.
			case rsa.PSSSaltLengthEqualsHash, h.Size():
				if !k.pssOK {
					return nil, token.Wrap(token.CodeTPM, ErrPSSUnsupported, "tpm: RSA-PSS signature requested")
				}
			default:
				return nil, token.Errorf(token.CodeInvalidArgument, "tpm: RSA-PSS salt length %d is not supported (the TPM uses the hash length)", pss.SaltLength)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.p.cfg.SignTimeout)
	defer cancel()
	if err := k.p.acquire(ctx); err != nil {
		return nil, err
	}
	sig, err := k.signLocked(digest, scheme, alg)
	k.p.release()
	if err != nil {
		return nil, err
	}
	return encodeSignature(sig)
}

// signLocked runs TPM2_Sign; the caller holds the TPM lock.
func (k *Key) signLocked(digest []byte, scheme tpm2.TPMAlgID, hash tpm2.TPMIAlgHash) (*tpm2.TPMTSignature, error) {
	if err := k.p.load(k); err != nil {
		return nil, err
	}
	rsp, err := tpm2.Sign{
		KeyHandle: tpm2.NamedHandle{Handle: k.handle, Name: k.name},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  scheme,
			Details: tpm2.NewTPMUSigScheme(scheme, &tpm2.TPMSSchemeHash{HashAlg: hash}),
		},
		// A NULL ticket: the digest was not hashed by the TPM, which is fine for an
		// unrestricted key.
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck},
	}.Execute(k.p.counter)
	if err != nil {
		return nil, token.Wrap(token.CodeTPM, err, "tpm: TPM2_Sign")
	}
	return &rsp.Signature, nil
}

func encodeSignature(sig *tpm2.TPMTSignature) ([]byte, error) {
	switch sig.SigAlg {
	case tpm2.TPMAlgRSASSA:
		s, err := sig.Signature.RSASSA()
		if err != nil {
			return nil, token.Wrap(token.CodeTPM, err, "tpm: RSASSA signature")
		}
		return s.Sig.Buffer, nil
	case tpm2.TPMAlgRSAPSS:
		s, err := sig.Signature.RSAPSS()
		if err != nil {
			return nil, token.Wrap(token.CodeTPM, err, "tpm: RSAPSS signature")
		}
		return s.Sig.Buffer, nil
	case tpm2.TPMAlgECDSA:
		s, err := sig.Signature.ECDSA()
		if err != nil {
			return nil, token.Wrap(token.CodeTPM, err, "tpm: ECDSA signature")
		}
		der, err := asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(s.SignatureR.Buffer), new(big.Int).SetBytes(s.SignatureS.Buffer),
		})
		if err != nil {
			return nil, token.Wrap(token.CodeTPM, err, "tpm: encoding ECDSA signature")
		}
		return der, nil
	}
	return nil, token.Errorf(token.CodeTPM, "tpm: unexpected signature scheme 0x%04x", uint16(sig.SigAlg))
}

// selfTest signs once with a new key, the first time this provider uses an RSA key: TLS 1.3
// and X.509 need RSA-PSS with salt = hash length, but the TPM 2.0 spec before 1.38's errata let
// TPMs use the maximum salt, and some hardware still does. A key on such a TPM is restricted to
// PKCS#1 v1.5 (PSSSupported false) and says so in the log, instead of failing inside a
// handshake. The caller holds the TPM lock.
func (p *Provider) selfTest(k *Key) error {
	if k.alg != RSA2048 || p.pss != pssUntested {
		return nil
	}
	digest := make([]byte, sha256.Size)
	if _, err := rand.Read(digest); err != nil {
		return err
	}
	sig, err := k.signLocked(digest, tpm2.TPMAlgRSAPSS, tpm2.TPMAlgSHA256)
	if err != nil {
		return err
	}
	raw, err := encodeSignature(sig)
	if err != nil {
		return err
	}
	state, err := classifyPSS(k.public.(*rsa.PublicKey), digest, raw)
	if err != nil {
		return err
	}
	p.pss = state
	if state == pssMaxSalt {
		p.log.Warn("this TPM signs RSA-PSS with the maximum salt length: RSA keys are limited to PKCS#1 v1.5 " +
			"(TLS 1.2 only) and cannot sign the IMDSv2 CSR; use an ECC key where the peer accepts one")
	}
	return nil
}

// classifyPSS tells a salt = hash length PSS signature from a maximum-salt one.
func classifyPSS(pub *rsa.PublicKey, digest, sig []byte) (pssState, error) {
	switch {
	case rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil:
		return pssHashLength, nil
	case rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil:
		return pssMaxSalt, nil
	}
	return pssUntested, errors.New("the TPM's RSA-PSS signature does not verify")
}

package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// Check names one verification step. Every failure Verify reports is a *CheckError whose Check
// says which step failed; compare with errors.Is against the Err* values.
type Check string

// The checks, in the order Verify performs them.
const (
	CheckMalformed     Check = "malformed_evidence" // a structure does not decode, or has trailing bytes
	CheckUntrustedAK   Check = "untrusted_ak"       // the AK is not on the allow-list nor proven by an EK certificate
	CheckAKAttributes  Check = "ak_not_restricted"  // the AK is not a restricted, fixed, TPM-generated signing key
	CheckSignature     Check = "bad_signature"      // the AK's signature over TPMS_ATTEST does not verify
	CheckMagic         Check = "bad_magic"          // TPMS_ATTEST.magic is not TPM_GENERATED_VALUE
	CheckType          Check = "wrong_attest_type"  // TPMS_ATTEST.type is not TPM_ST_ATTEST_CERTIFY
	CheckNonce         Check = "wrong_nonce"        // extraData is not the challenge
	CheckName          Check = "name_mismatch"      // the certified Name is not the Name of KeyPublic
	CheckKeyAttributes Check = "exportable_key"     // the key is not fixedTPM|fixedParent|sensitiveDataOrigin|sign, !restricted, !decrypt
	CheckKeyAlgorithm  Check = "weak_key"           // RSA < 2048, an unsupported curve or a name hash below SHA-256
	CheckKeyMismatch   Check = "key_mismatch"       // the expected public key (the CSR's) is not the certified key
)

// CheckError is a failed verification step.
type CheckError struct {
	Check  Check
	Detail string
}

func (e *CheckError) Error() string {
	if e.Detail == "" {
		return "attest: " + string(e.Check)
	}
	return "attest: " + string(e.Check) + ": " + e.Detail
}

// Is makes errors.Is(err, ErrNonce) true for any *CheckError of the same Check.
func (e *CheckError) Is(target error) bool {
	t, ok := target.(*CheckError)
	return ok && t.Check == e.Check
}

// One sentinel per check, for errors.Is.
var (
	ErrMalformed     = &CheckError{Check: CheckMalformed}
	ErrUntrustedAK   = &CheckError{Check: CheckUntrustedAK}
	ErrAKAttributes  = &CheckError{Check: CheckAKAttributes}
	ErrSignature     = &CheckError{Check: CheckSignature}
	ErrMagic         = &CheckError{Check: CheckMagic}
	ErrType          = &CheckError{Check: CheckType}
	ErrNonce         = &CheckError{Check: CheckNonce}
	ErrName          = &CheckError{Check: CheckName}
	ErrKeyAttributes = &CheckError{Check: CheckKeyAttributes}
	ErrKeyAlgorithm  = &CheckError{Check: CheckKeyAlgorithm}
	ErrKeyMismatch   = &CheckError{Check: CheckKeyMismatch}
)

func fail(c Check, format string, args ...any) error {
	return &CheckError{Check: c, Detail: fmt.Sprintf(format, args...)}
}

// Trust says why an AK was trusted.
type Trust string

const (
	TrustAllowList     Trust = "allow-list"     // its public area is on VerifyOptions.TrustedAKs
	TrustEKCertificate Trust = "ek-certificate" // credential activation tied it to an EK certificate under EKRoots
	TrustAny           Trust = "any"            // VerifyOptions.TrustAnyAK (labs and demos only)
)

// VerifyOptions says what Verify expects. Challenge is required, and at least one way of
// trusting the AK must be given.
type VerifyOptions struct {
	// Challenge is the verifier's fresh, single-use challenge; the TPMS_ATTEST's extraData
	// must equal it.
	Challenge []byte
	// PublicKey, when set, must equal the certified key: pass the CSR's public key so the
	// certificate is issued only for the attested key.
	PublicKey crypto.PublicKey
	// TrustedAKs is an allow-list of AK public areas (TPMT_PUBLIC, as in Evidence.AKPublic),
	// compared by Name.
	TrustedAKs [][]byte
	// EKRoots trusts an AK whose Evidence.EKCertificate chains to one of these roots, once the
	// caller has completed credential activation for that AK (ActivatedAKName).
	EKRoots *x509.CertPool
	// ActivatedAKName is the Name of the AK for which the caller issued a credential
	// (MakeCredential) encrypted to Evidence.EKCertificate's key and got the secret back.
	ActivatedAKName []byte
	// TrustAnyAK accepts any AK that passes the attribute checks. It proves only that the key
	// is in *a* TPM the attester controls: for labs, demos and tests.
	TrustAnyAK bool
	// Now is the time for certificate validity; zero means time.Now().
	Now time.Time
}

// Result is what a successful Verify established.
type Result struct {
	PublicKey  crypto.PublicKey  // the certified key
	KeyName    []byte            // its TPM Name
	NameAlg    uint16            // TPM_ALG_ID of its name algorithm
	Attributes uint32            // its TPMA_OBJECT bits
	AuthPolicy []byte            // its authPolicy (empty for keys used with their auth value)
	AKName     []byte            // the attestation key's Name
	Trust      Trust             // why the AK was trusted
	EK         *x509.Certificate // the EK certificate, when Trust is TrustEKCertificate
}

// TPMA_OBJECT bits checked here (TPM 2.0 Part 2 §8.3).
const (
	attrFixedTPM            = 1 << 1
	attrFixedParent         = 1 << 4
	attrSensitiveDataOrigin = 1 << 5
	attrRestricted          = 1 << 16
	attrDecrypt             = 1 << 17
	attrSign                = 1 << 18
)

// Verify checks ev against opts, in this order (reference/tpm-attestation.md §3.4): the AK is
// trusted and is a restricted, non-decrypting, fixedTPM/fixedParent/sensitiveDataOrigin signing
// key; its signature over the raw TPMS_ATTEST verifies; magic is 0xFF544347 and type is
// TPM_ST_ATTEST_CERTIFY; extraData equals the challenge; the certified Name equals the Name of
// KeyPublic; the key is fixedTPM, fixedParent, sensitiveDataOrigin and sign, and neither
// restricted nor decrypt; its algorithm is RSA ≥ 2048 or ECC P-256/384/521 with a name hash of
// at least SHA-256; and it equals opts.PublicKey when given. It never panics on hostile input.
func Verify(ev *Evidence, opts VerifyOptions) (*Result, error) {
	if ev == nil {
		return nil, fail(CheckMalformed, "no evidence")
	}
	ak, akName, err := parsePublic(ev.AKPublic, "AK public area")
	if err != nil {
		return nil, err
	}
	key, keyName, err := parsePublic(ev.KeyPublic, "key public area")
	if err != nil {
		return nil, err
	}
	res := &Result{KeyName: keyName, AKName: akName, NameAlg: uint16(key.NameAlg),
		Attributes: attributes(key), AuthPolicy: bytes.Clone(key.AuthPolicy.Buffer)}

	// (a) AK trust, then the AK's attributes.
	if res.Trust, res.EK, err = trustAK(ev, akName, opts); err != nil {
		return nil, err
	}
	if a := attributes(ak); a&attrRestricted == 0 || a&attrSign == 0 || a&attrDecrypt != 0 ||
		a&attrFixedTPM == 0 || a&attrFixedParent == 0 || a&attrSensitiveDataOrigin == 0 {
		return nil, fail(CheckAKAttributes, "AK attributes 0x%08x: need restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin and not decrypt", a)
	}

	// (b) The AK's signature over the exact TPMS_ATTEST bytes.
	if err := verifySignature(ak, ev.Attest, ev.Signature); err != nil {
		return nil, err
	}

	// (c) magic and type, read from the signed bytes before anything else is parsed.
	if len(ev.Attest) < 6 {
		return nil, fail(CheckMalformed, "TPMS_ATTEST is %d bytes", len(ev.Attest))
	}
	if m := binary.BigEndian.Uint32(ev.Attest[0:4]); m != uint32(tpm2.TPMGeneratedValue) {
		return nil, fail(CheckMagic, "magic is 0x%08x, want 0x%08x", m, uint32(tpm2.TPMGeneratedValue))
	}
	if t := binary.BigEndian.Uint16(ev.Attest[4:6]); t != uint16(tpm2.TPMSTAttestCertify) {
		return nil, fail(CheckType, "type is 0x%04x, want TPM_ST_ATTEST_CERTIFY (0x8017)", t)
	}
	att, err := decodeExact[tpm2.TPMSAttest](ev.Attest, "TPMS_ATTEST")
	if err != nil {
		return nil, err
	}
	certified, err := att.Attested.Certify()
	if err != nil {
		return nil, fail(CheckMalformed, "TPMS_ATTEST has no certify info")
	}

	// (d) Freshness: extraData is the challenge.
	if len(opts.Challenge) == 0 {
		return nil, fail(CheckNonce, "the verifier gave no challenge")
	}
	if subtle.ConstantTimeCompare(att.ExtraData.Buffer, opts.Challenge) != 1 {
		return nil, fail(CheckNonce, "extraData does not equal the challenge")
	}

	// (e) The certified object is the key whose public area was sent.
	if !bytes.Equal(certified.Name.Buffer, keyName) {
		return nil, fail(CheckName, "certified Name %x is not the Name of the key public area %x", certified.Name.Buffer, keyName)
	}

	// (f) Non-exportable, TPM-generated, an unrestricted signing key.
	a := res.Attributes
	var missing []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{{attrFixedTPM, "fixedTPM"}, {attrFixedParent, "fixedParent"}, {attrSensitiveDataOrigin, "sensitiveDataOrigin"}, {attrSign, "sign"}} {
		if a&f.bit == 0 {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fail(CheckKeyAttributes, "key attributes 0x%08x lack %v", a, missing)
	}
	if a&attrRestricted != 0 || a&attrDecrypt != 0 {
		return nil, fail(CheckKeyAttributes, "key attributes 0x%08x: a binding key must be neither restricted nor decrypt", a)
	}

	// (g) Algorithm policy.
	pub, err := keyPolicy(key)
	if err != nil {
		return nil, err
	}
	res.PublicKey = pub

	// (h) The key the caller is about to certify is the attested one.
	if opts.PublicKey != nil {
		eq, ok := opts.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !eq.Equal(pub) {
			return nil, fail(CheckKeyMismatch, "the expected public key is not the certified key")
		}
	}
	return res, nil
}

// decodeExact decodes a TPM structure and insists that re-encoding it gives the same bytes, so
// nothing trails it and what is hashed (a Name, a signature) is exactly what was parsed.
func decodeExact[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](raw []byte, what string) (out *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fail(CheckMalformed, "%s does not decode", what)
		}
	}()
	if len(raw) == 0 {
		return nil, fail(CheckMalformed, "%s is empty", what)
	}
	v, err := tpm2.Unmarshal[T, P](raw)
	if err != nil {
		return nil, fail(CheckMalformed, "%s does not decode: %v", what, err)
	}
	if !bytes.Equal(tpm2.Marshal(*v), raw) {
		return nil, fail(CheckMalformed, "%s has trailing or non-canonical bytes", what)
	}
	return v, nil
}

// parsePublic decodes a TPMT_PUBLIC and computes its Name over the raw bytes.
func parsePublic(raw []byte, what string) (*tpm2.TPMTPublic, []byte, error) {
	p, err := decodeExact[tpm2.TPMTPublic](raw, what)
	if err != nil {
		return nil, nil, err
	}
	name, err := Name(raw)
	if err != nil {
		return nil, nil, fail(CheckMalformed, "%s: %v", what, err)
	}
	return p, name, nil
}

// Name computes the TPM Name of a TPMT_PUBLIC: its nameAlg (2 bytes) followed by the nameAlg
// digest of the whole encoded structure.
func Name(publicArea []byte) ([]byte, error) {
	if len(publicArea) < 4 {
		return nil, errors.New("public area too short")
	}
	alg := tpm2.TPMIAlgHash(binary.BigEndian.Uint16(publicArea[2:4]))
	h, err := nameHash(alg)
	if err != nil {
		return nil, err
	}
	d := h.New()
	d.Write(publicArea)
	return d.Sum(binary.BigEndian.AppendUint16(nil, uint16(alg))), nil
}

func nameHash(alg tpm2.TPMIAlgHash) (crypto.Hash, error) {
	switch alg {
	case tpm2.TPMAlgSHA256:
		return crypto.SHA256, nil
	case tpm2.TPMAlgSHA384:
		return crypto.SHA384, nil
	case tpm2.TPMAlgSHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("name algorithm 0x%04x is not SHA-256, SHA-384 or SHA-512", uint16(alg))
}

func attributes(p *tpm2.TPMTPublic) uint32 {
	var b bytes.Buffer
	// TPMA_OBJECT is a big-endian uint32 on the wire.
	b.Write(tpm2.Marshal(p.ObjectAttributes))
	if b.Len() != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b.Bytes())
}

func trustAK(ev *Evidence, akName []byte, opts VerifyOptions) (Trust, *x509.Certificate, error) {
	for _, t := range opts.TrustedAKs {
		if n, err := Name(t); err == nil && bytes.Equal(n, akName) {
			return TrustAllowList, nil, nil
		}
	}
	if opts.EKRoots != nil && len(ev.EKCertificate) > 0 {
		ek, err := VerifyEKCertificate(ev.EKCertificate, opts.EKRoots, opts.Now)
		if err != nil {
			return "", nil, fail(CheckUntrustedAK, "%v", err)
		}
		if len(opts.ActivatedAKName) == 0 || !bytes.Equal(opts.ActivatedAKName, akName) {
			return "", nil, fail(CheckUntrustedAK, "no credential activation ties this AK to the EK certificate")
		}
		return TrustEKCertificate, ek, nil
	}
	if opts.TrustAnyAK {
		return TrustAny, nil, nil
	}
	return "", nil, fail(CheckUntrustedAK, "AK %x is not on the allow-list and no EK certificate chain vouches for it", akName)
}

// oidSubjectAltName: EK certificates carry the TPM's manufacturer, model and version in a
// critical subjectAltName holding only a directoryName, which crypto/x509 leaves "unhandled".
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// VerifyEKCertificate parses an EK certificate (trailing NV padding is ignored) and verifies
// its chain to roots at now (zero: time.Now()).
func VerifyEKCertificate(der []byte, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil {
		return nil, fmt.Errorf("EK certificate does not parse: %w", err)
	}
	cert, err := x509.ParseCertificate(der[:len(der)-len(rest)])
	if err != nil {
		return nil, fmt.Errorf("EK certificate does not parse: %w", err)
	}
	c := *cert
	c.UnhandledCriticalExtensions = nil
	for _, o := range cert.UnhandledCriticalExtensions {
		if !o.Equal(oidSubjectAltName) {
			c.UnhandledCriticalExtensions = append(c.UnhandledCriticalExtensions, o)
		}
	}
	if now.IsZero() {
		now = time.Now()
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("EK certificate does not chain to a trusted root: %w", err)
	}
	return cert, nil
}

func verifySignature(ak *tpm2.TPMTPublic, attest, sigBytes []byte) error {
	sig, err := decodeExact[tpm2.TPMTSignature](sigBytes, "TPMT_SIGNATURE")
	if err != nil {
		return err
	}
	pub, err := tpm2.Pub(*ak)
	if err != nil {
		return fail(CheckMalformed, "AK public key: %v", err)
	}
	var hashAlg tpm2.TPMIAlgHash
	var check func(h crypto.Hash, digest []byte) bool
	switch sig.SigAlg {
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fail(CheckSignature, "RSA signature from a non-RSA AK")
		}
		var s *tpm2.TPMSSignatureRSA
		if sig.SigAlg == tpm2.TPMAlgRSASSA {
			s, err = sig.Signature.RSASSA()
		} else {
			s, err = sig.Signature.RSAPSS()
		}
		if err != nil {
			return fail(CheckMalformed, "TPMT_SIGNATURE: %v", err)
		}
		hashAlg = s.Hash
		pss := sig.SigAlg == tpm2.TPMAlgRSAPSS
		check = func(h crypto.Hash, d []byte) bool {
			if pss {
				return rsa.VerifyPSS(k, h, d, s.Sig.Buffer, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
			}
			return rsa.VerifyPKCS1v15(k, h, d, s.Sig.Buffer) == nil
		}
	case tpm2.TPMAlgECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fail(CheckSignature, "ECDSA signature from a non-ECC AK")
		}
		s, err := sig.Signature.ECDSA()
		if err != nil {
			return fail(CheckMalformed, "TPMT_SIGNATURE: %v", err)
		}
		hashAlg = s.Hash
		r, ss := new(big.Int).SetBytes(s.SignatureR.Buffer), new(big.Int).SetBytes(s.SignatureS.Buffer)
		check = func(_ crypto.Hash, d []byte) bool { return ecdsa.Verify(k, d, r, ss) }
	default:
		return fail(CheckSignature, "signature scheme 0x%04x is not RSASSA, RSAPSS or ECDSA", uint16(sig.SigAlg))
	}
	h, err := nameHash(hashAlg)
	if err != nil {
		return fail(CheckSignature, "signature hash: %v", err)
	}
	d := h.New()
	d.Write(attest)
	if !check(h, d.Sum(nil)) {
		return fail(CheckSignature, "the AK's signature over TPMS_ATTEST does not verify")
	}
	return nil
}

func keyPolicy(key *tpm2.TPMTPublic) (crypto.PublicKey, error) {
	if _, err := nameHash(key.NameAlg); err != nil {
		return nil, fail(CheckKeyAlgorithm, "%v", err)
	}
	pub, err := tpm2.Pub(*key)
	if err != nil {
		return nil, fail(CheckKeyAlgorithm, "key: %v", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fail(CheckKeyAlgorithm, "RSA key of %d bits; need at least 2048", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.X.Sign() == 0 && k.Y.Sign() == 0 || !onCurve(k) {
			return nil, fail(CheckKeyAlgorithm, "ECC point is not on the curve")
		}
	default:
		return nil, fail(CheckKeyAlgorithm, "unsupported key type %T", pub)
	}
	return pub, nil
}

// onCurve validates an ECDSA public key by round-tripping it through crypto/ecdh's checks.
func onCurve(k *ecdsa.PublicKey) bool {
	_, err := k.ECDH()
	return err == nil
}

// MakeCredential is the verifier's half of credential activation: it encrypts a fresh 32-byte
// secret to the endorsement key in ekCert (RSA-2048 or ECC P-256, with the TCG default EK
// template) for the AK whose public area is akPublic. Only the TPM that holds both keys can
// return the secret (TPM2_ActivateCredential).
func MakeCredential(ekCert *x509.Certificate, akPublic []byte) (Credential, []byte, error) {
	akName, err := Name(akPublic)
	if err != nil {
		return Credential{}, nil, fmt.Errorf("attest: AK public area: %w", err)
	}
	ek, err := EKPublicArea(ekCert.PublicKey)
	if err != nil {
		return Credential{}, nil, err
	}
	kem, err := tpm2.ImportEncapsulationKey(ek)
	if err != nil {
		return Credential{}, nil, fmt.Errorf("attest: EK key: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Credential{}, nil, err
	}
	id, enc, err := tpm2.CreateCredential(rand.Reader, kem, akName, secret)
	if err != nil {
		return Credential{}, nil, fmt.Errorf("attest: making credential: %w", err)
	}
	return Credential{IDObject: id, EncryptedSecret: enc}, secret, nil
}

// EKPublicArea returns the TPMT_PUBLIC of the endorsement key with public key pub, created
// from the TCG default (low-range) template: RSA-2048 or ECC P-256.
func EKPublicArea(pub crypto.PublicKey) (*tpm2.TPMTPublic, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 || k.E != 65537 {
			return nil, errors.New("attest: RSA EK must be RSA-2048 with exponent 65537")
		}
		t := tpm2.RSAEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.FillBytes(make([]byte, 256))})
		return &t, nil
	case *ecdsa.PublicKey:
		if k.Curve.Params().Name != "P-256" {
			return nil, errors.New("attest: ECC EK must be on P-256")
		}
		t := tpm2.ECCEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: k.X.FillBytes(make([]byte, 32))},
			Y: tpm2.TPM2BECCParameter{Buffer: k.Y.FillBytes(make([]byte, 32))},
		})
		return &t, nil
	}
	return nil, fmt.Errorf("attest: unsupported EK key type %T", pub)
}

package attest_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/attest"
)

// fixture builds TPM2_Certify evidence in software: an "AK" whose private key the test holds
// can sign any TPMS_ATTEST, so each negative test changes exactly one thing and re-signs. (A
// real AK is restricted and would refuse; that is why Verify insists on AK trust.)
type fixture struct {
	akKey  *ecdsa.PrivateKey
	akPub  tpm2.TPMTPublic
	key    crypto.Signer
	keyPub tpm2.TPMTPublic
	attest tpm2.TPMSAttest
	// certifiedPub, when set, is the public area whose Name the attestation certifies
	// (instead of keyPub).
	certifiedPub *tpm2.TPMTPublic
	challenge    []byte
}

func akTemplate(k *ecdsa.PublicKey) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			UserWithAuth: true, NoDA: true, Restricted: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: eccPoint(k),
	}
}

func eccPoint(k *ecdsa.PublicKey) tpm2.TPMUPublicID {
	return tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: k.X.FillBytes(make([]byte, 32))},
		Y: tpm2.TPM2BECCParameter{Buffer: k.Y.FillBytes(make([]byte, 32))},
	})
}

func bindingAttrs() tpm2.TPMAObject {
	return tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, NoDA: true, SignEncrypt: true}
}

func rsaKeyPublic(k *rsa.PublicKey) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgRSA,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: bindingAttrs(),
		Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{KeyBits: tpm2.TPMKeyBits(k.N.BitLen())}),
		Unique:           tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.Bytes()}),
	}
}

var (
	fixtureAK  = mustECDSA()
	fixtureRSA = mustRSA(2048)
)

func mustECDSA() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func newFixture() *fixture {
	f := &fixture{akKey: fixtureAK, key: fixtureRSA, challenge: []byte("0123456789abcdef0123456789abcdef")}
	f.akPub = akTemplate(&fixtureAK.PublicKey)
	f.keyPub = rsaKeyPublic(&fixtureRSA.PublicKey)
	f.attest = tpm2.TPMSAttest{
		Magic:     tpm2.TPMGeneratedValue,
		Type:      tpm2.TPMSTAttestCertify,
		ExtraData: tpm2.TPM2BData{Buffer: f.challenge},
		ClockInfo: tpm2.TPMSClockInfo{Clock: 1000, Safe: true},
	}
	return f
}

func name(t testing.TB, p tpm2.TPMTPublic) []byte {
	t.Helper()
	n, err := attest.Name(tpm2.Marshal(p))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// evidence signs the attestation as it stands (unless attested is already set, filling in
// the certify info and qualified signer) and returns the evidence.
func (f *fixture) evidence(t testing.TB) *attest.Evidence {
	t.Helper()
	certified := f.keyPub
	if f.certifiedPub != nil {
		certified = *f.certifiedPub
	}
	a := f.attest
	a.QualifiedSigner = tpm2.TPM2BName{Buffer: name(t, f.akPub)}
	if a.Type == tpm2.TPMSTAttestCertify {
		n := name(t, certified)
		a.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestCertify, &tpm2.TPMSCertifyInfo{
			Name: tpm2.TPM2BName{Buffer: n}, QualifiedName: tpm2.TPM2BName{Buffer: n}})
	} else if a.Type == tpm2.TPMSTAttestQuote {
		a.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{PCRDigest: tpm2.TPM2BDigest{Buffer: make([]byte, 32)}})
	}
	raw := tpm2.Marshal(a)
	return &attest.Evidence{
		KeyPublic: tpm2.Marshal(f.keyPub),
		Attest:    raw,
		Signature: f.sign(t, raw),
		AKPublic:  tpm2.Marshal(f.akPub),
	}
}

func (f *fixture) sign(t testing.TB, raw []byte) []byte {
	t.Helper()
	d := sha256.Sum256(raw)
	r, s, err := ecdsa.Sign(rand.Reader, f.akKey, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return tpm2.Marshal(tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()},
		}),
	})
}

// opts trusts the fixture's AK by allow-list and expects its challenge and key.
func (f *fixture) opts() attest.VerifyOptions {
	return attest.VerifyOptions{
		Challenge:  f.challenge,
		PublicKey:  f.key.Public(),
		TrustedAKs: [][]byte{tpm2.Marshal(f.akPub)},
	}
}

// softAttestable is a software attest.Attestable built from a fixture: a test double for the
// client's protocol tests (a static value satisfies the interface as a TPM key does).
type softAttestable struct {
	t *testing.T
	f *fixture
}

func (s softAttestable) Public() crypto.PublicKey { return s.f.key.Public() }

func (s softAttestable) AttestationIdentity(context.Context) (attest.Identity, error) {
	return attest.Identity{AKPublic: tpm2.Marshal(s.f.akPub)}, nil
}

func (s softAttestable) Certify(_ context.Context, qd []byte) (*attest.Evidence, error) {
	s.f.attest.ExtraData = tpm2.TPM2BData{Buffer: qd}
	return s.f.evidence(s.t), nil
}

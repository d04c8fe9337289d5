package attest_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/attest"
)

func TestVerifyHappyPath(t *testing.T) {
	f := newFixture()
	res, err := attest.Verify(f.evidence(t), f.opts())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Trust != attest.TrustAllowList || !bytes.Equal(res.KeyName, name(t, f.keyPub)) ||
		!bytes.Equal(res.AKName, name(t, f.akPub)) || res.NameAlg != uint16(tpm2.TPMAlgSHA256) {
		t.Errorf("Result = %+v", res)
	}
	if res.Attributes != 0x40472 { // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|sign
		t.Errorf("Attributes = 0x%x", res.Attributes)
	}
	if !fixtureRSA.PublicKey.Equal(res.PublicKey) {
		t.Error("Result.PublicKey is not the certified key")
	}
	// Without the optional CSR key the same evidence verifies too.
	o := f.opts()
	o.PublicKey = nil
	if _, err := attest.Verify(f.evidence(t), o); err != nil {
		t.Errorf("without PublicKey: %v", err)
	}
	// TrustAnyAK stands in for the allow-list.
	o.TrustedAKs, o.TrustAnyAK = nil, true
	if res, err := attest.Verify(f.evidence(t), o); err != nil || res.Trust != attest.TrustAny {
		t.Errorf("TrustAnyAK: %v, %v", res, err)
	}
}

// One negative test per check: each changes one thing and expects that check's error.
func TestVerifyRefuses(t *testing.T) {
	other := mustRSA(2048)
	tests := []struct {
		name   string
		mutate func(f *fixture, o *attest.VerifyOptions)
		tamper func(ev *attest.Evidence)
		want   error
	}{
		{name: "wrong nonce", want: attest.ErrNonce,
			mutate: func(f *fixture, o *attest.VerifyOptions) { o.Challenge = []byte("another challenge, same length!!") }},
		{name: "no challenge", want: attest.ErrNonce,
			mutate: func(f *fixture, o *attest.VerifyOptions) { o.Challenge = nil }},
		{name: "wrong magic", want: attest.ErrMagic,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.attest.Magic = 0xdeadbeef }},
		{name: "wrong type (a quote)", want: attest.ErrType,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.attest.Type = tpm2.TPMSTAttestQuote }},
		{name: "forged signature", want: attest.ErrSignature,
			tamper: func(ev *attest.Evidence) { ev.Attest[len(ev.Attest)-1] ^= 1 }},
		{name: "signature by another key", want: attest.ErrSignature,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.akKey = mustECDSA() }},
		{name: "unrestricted AK", want: attest.ErrAKAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				f.akPub.ObjectAttributes.Restricted = false
				o.TrustedAKs = [][]byte{tpm2.Marshal(f.akPub)}
			}},
		{name: "decrypting AK", want: attest.ErrAKAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				f.akPub.ObjectAttributes.Decrypt = true
				o.TrustedAKs = [][]byte{tpm2.Marshal(f.akPub)}
			}},
		{name: "AK not fixedTPM (duplicable to another TPM)", want: attest.ErrAKAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				f.akPub.ObjectAttributes.FixedTPM = false
				o.TrustedAKs = [][]byte{tpm2.Marshal(f.akPub)}
			}},
		{name: "AK not fixedParent", want: attest.ErrAKAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				f.akPub.ObjectAttributes.FixedParent = false
				o.TrustedAKs = [][]byte{tpm2.Marshal(f.akPub)}
			}},
		{name: "AK imported (no sensitiveDataOrigin)", want: attest.ErrAKAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				f.akPub.ObjectAttributes.SensitiveDataOrigin = false
				o.TrustedAKs = [][]byte{tpm2.Marshal(f.akPub)}
			}},
		{name: "AK that cannot sign", want: attest.ErrAKAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				f.akPub.ObjectAttributes.SignEncrypt = false
				o.TrustedAKs = [][]byte{tpm2.Marshal(f.akPub)}
			}},
		{name: "decrypting key", want: attest.ErrKeyAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.keyPub.ObjectAttributes.Decrypt = true }},
		{name: "exportable key (no fixedTPM)", want: attest.ErrKeyAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.keyPub.ObjectAttributes.FixedTPM = false }},
		{name: "exportable key (no fixedParent)", want: attest.ErrKeyAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.keyPub.ObjectAttributes.FixedParent = false }},
		{name: "imported key (no sensitiveDataOrigin)", want: attest.ErrKeyAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.keyPub.ObjectAttributes.SensitiveDataOrigin = false }},
		{name: "not a signing key", want: attest.ErrKeyAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.keyPub.ObjectAttributes.SignEncrypt = false }},
		{name: "restricted key", want: attest.ErrKeyAttributes,
			mutate: func(f *fixture, o *attest.VerifyOptions) { f.keyPub.ObjectAttributes.Restricted = true }},
		{name: "Name mismatch", want: attest.ErrName,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				p := rsaKeyPublic(&other.PublicKey)
				f.certifiedPub = &p
			}},
		{name: "key public area swapped for an exportable twin", want: attest.ErrName,
			tamper: func(ev *attest.Evidence) {
				p, _ := tpm2.Unmarshal[tpm2.TPMTPublic](ev.KeyPublic)
				p.ObjectAttributes.FixedTPM = false
				ev.KeyPublic = tpm2.Marshal(*p)
			}},
		{name: "CSR key is not the certified key", want: attest.ErrKeyMismatch,
			mutate: func(f *fixture, o *attest.VerifyOptions) { o.PublicKey = other.Public() }},
		{name: "untrusted AK", want: attest.ErrUntrustedAK,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				o.TrustedAKs = [][]byte{tpm2.Marshal(akTemplate(&mustECDSA().PublicKey))}
			}},
		{name: "no trust configured", want: attest.ErrUntrustedAK,
			mutate: func(f *fixture, o *attest.VerifyOptions) { o.TrustedAKs = nil }},
		{name: "weak key", want: attest.ErrKeyAlgorithm,
			mutate: func(f *fixture, o *attest.VerifyOptions) {
				small := mustRSA(1024)
				f.keyPub = rsaKeyPublic(&small.PublicKey)
				o.PublicKey = nil
			}},
		{name: "trailing bytes after the key's TPMT_PUBLIC", want: attest.ErrMalformed,
			tamper: func(ev *attest.Evidence) { ev.KeyPublic = append(ev.KeyPublic, 0) }},
		{name: "garbage signature", want: attest.ErrMalformed,
			tamper: func(ev *attest.Evidence) { ev.Signature = []byte{0, 0x18} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			o := f.opts()
			if tc.mutate != nil {
				tc.mutate(f, &o)
			}
			ev := f.evidence(t)
			if tc.tamper != nil {
				tc.tamper(ev)
			}
			_, err := attest.Verify(ev, o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			var ce *attest.CheckError
			if !errors.As(err, &ce) || ce.Detail == "" {
				t.Errorf("error %v carries no detail", err)
			}
		})
	}
}

func TestVerifyNilAndEmpty(t *testing.T) {
	if _, err := attest.Verify(nil, attest.VerifyOptions{}); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("nil evidence: %v", err)
	}
	if _, err := attest.Verify(&attest.Evidence{}, attest.VerifyOptions{}); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("empty evidence: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture()
	ev := fx.evidence(f)
	o := fx.opts()
	f.Add(ev.KeyPublic, ev.Attest, ev.Signature, ev.AKPublic)
	f.Add([]byte{}, []byte{0xff, 0x54, 0x43, 0x47, 0x80, 0x17}, []byte{0, 0x18, 0, 0x0b}, []byte{0, 0x23, 0, 0x0b})
	f.Fuzz(func(t *testing.T, keyPub, att, sig, akPub []byte) {
		res, err := attest.Verify(&attest.Evidence{KeyPublic: keyPub, Attest: att, Signature: sig, AKPublic: akPub}, o)
		if err == nil && res.PublicKey == nil {
			t.Fatal("success without a public key")
		}
		var ce *attest.CheckError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

func TestKeyThumbprint(t *testing.T) {
	a, err := attest.KeyThumbprint(fixtureRSA.Public())
	if err != nil || len(a) != 43 {
		t.Fatalf("KeyThumbprint = %q, %v", a, err)
	}
	b, _ := attest.KeyThumbprint(mustECDSA().Public())
	if a == b {
		t.Error("different keys, same thumbprint")
	}
	if _, err := attest.KeyThumbprint(struct{}{}); err == nil {
		t.Error("thumbprint of a non-key")
	}
}

package tpm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2/transport/simulator"
)

// A TPM that salts PSS with the maximum length (222 bytes for RSA-2048/SHA-256) is told from
// a conforming one by the load-time self-test. Go's rsa.SignPSS with PSSSaltLengthAuto signs
// with the maximum salt, exactly like such TPMs.
func TestClassifyPSS(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("self-test"))
	for _, tc := range []struct {
		salt int
		want pssState
	}{
		{rsa.PSSSaltLengthEqualsHash, pssHashLength},
		{rsa.PSSSaltLengthAuto, pssMaxSalt},
	} {
		sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: tc.salt})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := classifyPSS(&key.PublicKey, d[:], sig); err != nil || got != tc.want {
			t.Errorf("salt %d: classifyPSS = %v, %v; want %v", tc.salt, got, err, tc.want)
		}
	}
	if _, err := classifyPSS(&key.PublicKey, d[:], make([]byte, 256)); err == nil {
		t.Error("a garbage signature was classified")
	}
}

// On a max-salt TPM an RSA key refuses strict PSS with a clear error instead of producing a
// signature TLS 1.3 would reject, and offers only PKCS#1 v1.5 schemes to crypto/tls.
func TestMaxSaltKeyIsRestricted(t *testing.T) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	p, err := Open(context.Background(), Config{Transport: sim, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.pss = pssMaxSalt // as if the self-test had found a maximum-salt TPM
	k, err := p.TPMKey(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if k.PSSSupported() {
		t.Fatal("PSSSupported() = true on a max-salt TPM")
	}
	d := sha256.Sum256([]byte("x"))
	for _, salt := range []int{rsa.PSSSaltLengthEqualsHash, sha256.Size} {
		if _, err := k.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: salt, Hash: crypto.SHA256}); !errors.Is(err, ErrPSSUnsupported) {
			t.Errorf("PSS salt %d on a max-salt TPM: err = %v, want ErrPSSUnsupported", salt, err)
		}
	}
	if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Errorf("PKCS#1 v1.5: %v", err)
	}
	if _, err := k.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}); err != nil {
		t.Errorf("PSS with salt auto (any salt verifies): %v", err)
	}
	algs := k.SupportedSignatureAlgorithms()
	if slices.Contains(algs, tls.PSSWithSHA256) || !slices.Contains(algs, tls.PKCS1WithSHA256) {
		t.Errorf("SupportedSignatureAlgorithms = %v, want PKCS#1 only", algs)
	}
}

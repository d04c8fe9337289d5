package attest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/tpm"
)

var ctx = context.Background()

func openSimulator(t testing.TB) transport.TPMCloser {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("opening the TPM simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func openKey(t testing.TB, tr transport.TPM, cfg tpm.Config) (*tpm.Provider, *tpm.Key) {
	t.Helper()
	cfg.Transport = tr
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	p, err := tpm.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	k, err := p.TPMKey(ctx, "slot")
	if err != nil {
		t.Fatal(err)
	}
	return p, k
}

var timeZero time.Time

// diff is what was sent between two Provider.Commands snapshots.
func diff(before, after map[tpm2.TPMCC]uint64) map[tpm2.TPMCC]uint64 {
	d := map[tpm2.TPMCC]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func named(m map[tpm2.TPMCC]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		out[tpm.CommandName(k)] = v
	}
	return out
}

// A real TPM2_Certify from the simulator verifies, for RSA and ECC binding keys.
func TestCertifyVerifiesWithSimulator(t *testing.T) {
	sim := openSimulator(t)
	for _, alg := range []tpm.Algorithm{tpm.RSA2048, tpm.ECCP256} {
		t.Run(string(alg), func(t *testing.T) {
			ct := tpm.NewCountingTransport(sim)
			_, k := openKey(t, ct, tpm.Config{Algorithm: alg})
			ct.Reset()
			id, err := k.AttestationIdentity(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("AttestationIdentity (creates the AK): %v", named(ct.Counts()))
			if id.EKCertificate != nil {
				t.Errorf("the simulator has no EK certificate, got %d bytes", len(id.EKCertificate))
			}
			challenge := make([]byte, 32)
			rand.Read(challenge)
			ct.Reset()
			ev, err := k.Certify(ctx, challenge)
			if err != nil {
				t.Fatal(err)
			}
			if n := ct.Count(tpm2.TPMCCCertify); n != 1 {
				t.Errorf("Certify sent %d TPM2_Certify", n)
			}
			t.Logf("Certify: %v", named(ct.Counts()))
			if !bytes.Equal(ev.AKPublic, id.AKPublic) {
				t.Error("evidence names another AK than AttestationIdentity")
			}
			opts := attest.VerifyOptions{Challenge: challenge, PublicKey: k.Public(), TrustedAKs: [][]byte{id.AKPublic}}
			res, err := attest.Verify(ev, opts)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Trust != attest.TrustAllowList {
				t.Errorf("Trust = %v", res.Trust)
			}
			// The same evidence against another challenge is stale.
			opts.Challenge = bytes.Repeat([]byte{1}, 32)
			if _, err := attest.Verify(ev, opts); !errors.Is(err, attest.ErrNonce) {
				t.Errorf("stale evidence: %v", err)
			}
			if _, err := k.Certify(ctx, make([]byte, 33)); !errors.Is(err, token.CodeInvalidArgument) {
				t.Errorf("33-byte qualifying data: %v", err)
			}
		})
	}
}

// The AK persists with the state directory: a reopened provider presents the same AK.
func TestAttestationKeyPersists(t *testing.T) {
	sim := openSimulator(t)
	dir := t.TempDir()
	p1, k1 := openKey(t, sim, tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
	id1, err := k1.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p1.Close()
	_, k2 := openKey(t, sim, tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
	id2, err := k2.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id1.AKPublic, id2.AKPublic) {
		t.Error("reopened provider created a new AK")
	}
	if fi, err := os.Stat(dir + "/ak.json"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ak.json: %v, %v", fi, err)
	}
}

// ekFixture makes the simulator's RSA EK and a CA-issued EK certificate for it (with the
// critical directoryName-only subjectAltName real EK certificates carry).
type ekFixture struct {
	cert  *x509.Certificate
	der   []byte
	roots *x509.CertPool
}

func newEKFixture(t testing.TB, tr transport.TPM) *ekFixture {
	return newEKFixtureFor(t, tr, tpm2.RSAEKTemplate)
}

// newEKFixtureFor is newEKFixture for the EK of another TCG template (tpm2.ECCEKTemplate).
func newEKFixtureFor(t testing.TB, tr transport.TPM, template tpm2.TPMTPublic) *ekFixture {
	t.Helper()
	ek, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(template)}.Execute(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: ek.ObjectHandle}.Execute(tr)
	pubArea, err := ek.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	ekPub, err := tpm2.Pub(*pubArea)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test TPM manufacturer CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	// subjectAltName: directoryName { tcg-at-tpmManufacturer "id:53494D00" }.
	dn, _ := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 1}, Value: "id:53494D00"}}})
	san, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dn}})
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:        x509.KeyUsageKeyEncipherment,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: san}},
	}, ca, ekPub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &ekFixture{cert: cert, der: der, roots: roots}
}

// Credential activation ties the AK to the EK certificate: the TPM returns the secret only for
// the AK the credential names, and Verify then trusts the AK through the EK chain.
func TestEKCredentialActivation(t *testing.T) {
	sim := openSimulator(t)
	ek := newEKFixture(t, sim)
	ct := tpm.NewCountingTransport(sim)
	_, k := openKey(t, ct, tpm.Config{EKCertificate: append(ek.der, 0xff, 0xff)}) // NV padding is tolerated
	id, err := k.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := attest.VerifyEKCertificate(id.EKCertificate, ek.roots, time.Time{})
	if err != nil {
		t.Fatalf("VerifyEKCertificate: %v", err)
	}
	cred, secret, err := attest.MakeCredential(cert, id.AKPublic)
	if err != nil {
		t.Fatal(err)
	}
	ct.Reset()
	got, err := k.ActivateCredential(ctx, cred)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	t.Logf("ActivateCredential: %v", named(ct.Counts()))
	if !bytes.Equal(got, secret) {
		t.Fatal("activated secret differs")
	}
	challenge := bytes.Repeat([]byte{7}, 32)
	ev, err := k.Certify(ctx, challenge)
	if err != nil {
		t.Fatal(err)
	}
	akName, _ := attest.Name(id.AKPublic)
	opts := attest.VerifyOptions{Challenge: challenge, PublicKey: k.Public(), EKRoots: ek.roots, ActivatedAKName: akName}
	if res, err := attest.Verify(ev, opts); err != nil || res.Trust != attest.TrustEKCertificate || res.EK == nil {
		t.Fatalf("Verify with EK trust = %+v, %v", res, err)
	}
	// Without activation the EK chain alone does not vouch for the AK.
	o := opts
	o.ActivatedAKName = nil
	if _, err := attest.Verify(ev, o); !errors.Is(err, attest.ErrUntrustedAK) {
		t.Errorf("without activation: %v", err)
	}
	// An EK certificate from another CA is not trusted.
	o = opts
	o.EKRoots = x509.NewCertPool()
	if _, err := attest.Verify(ev, o); !errors.Is(err, attest.ErrUntrustedAK) {
		t.Errorf("foreign EK root: %v", err)
	}
	// A credential made for another AK cannot be activated with this one.
	otherAK := tpm2.Marshal(akTemplate(&mustECDSA().PublicKey))
	cred2, _, err := attest.MakeCredential(cert, otherAK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.ActivateCredential(ctx, cred2); err == nil {
		t.Error("activated a credential made for another AK")
	}
}

// An EK certificate given in Config keeps the NV padding it was copied with; it is trimmed
// like one read from NV, so the identity carries only the certificate and activation derives the
// EK from the certificate's algorithm. With an ECC EK, an untrimmed certificate did not parse,
// activation silently used the RSA EK template, and the credential could not be recovered.
func TestPaddedECCEKCertificate(t *testing.T) {
	sim := openSimulator(t)
	ek := newEKFixtureFor(t, sim, tpm2.ECCEKTemplate)
	padded := append(append([]byte(nil), ek.der...), make([]byte, 64)...)
	_, k := openKey(t, sim, tpm.Config{EKCertificate: padded, Algorithm: tpm.ECCP256})
	id, err := k.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id.EKCertificate, ek.der) {
		t.Fatalf("identity carries %d bytes of EK certificate; want the %d-byte certificate without padding", len(id.EKCertificate), len(ek.der))
	}
	cred, secret, err := attest.MakeCredential(ek.cert, id.AKPublic)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.ActivateCredential(ctx, cred)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ActivateCredential with an ECC EK = %x, %v", got, err)
	}
	ev, err := k.Certify(ctx, bytes.Repeat([]byte{3}, 32))
	if err != nil || !bytes.Equal(ev.EKCertificate, ek.der) {
		t.Fatalf("evidence EK certificate is not the trimmed one: %v", err)
	}

	// Something that is not a certificate at all is refused when the provider opens.
	if _, err := tpm.Open(ctx, tpm.Config{Transport: sim, StateDir: t.TempDir(), EKCertificate: []byte("not DER")}); !errors.Is(err, token.CodeInvalidArgument) {
		t.Errorf("Open with a junk EK certificate: %v", err)
	}
}

// emulatorClient trusts the emulator's HTTPS hosts.
func emulatorClient(e *emulator.Emulator) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.RootCAs()}}}
}

func startEmulator(t testing.TB, cfg emulator.Config) *emulator.Emulator {
	t.Helper()
	e, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// claims decodes a JWT's payload without verifying it.
func claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The client runs init → challenge → certify → token against the emulator's service over
// HTTPS, with allow-list trust and with EK trust (credential activation).
func TestClientTokenWithEmulator(t *testing.T) {
	sim := openSimulator(t)
	ek := newEKFixture(t, sim)
	ct := tpm.NewCountingTransport(sim)
	_, k := openKey(t, ct, tpm.Config{EKCertificate: ek.der})
	id, err := k.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	thumb, _ := attest.KeyThumbprint(k.Public())

	for _, tc := range []struct {
		name  string
		cfg   emulator.Config
		trust attest.Trust
	}{
		{"allow-list", emulator.Config{AttestationTrustedAKs: [][]byte{id.AKPublic}}, attest.TrustAllowList},
		{"ek-certificate", emulator.Config{AttestationEKRoots: ek.roots}, attest.TrustEKCertificate},
		{"any", emulator.Config{AttestationTrustAnyAK: true, AttestationTokenLifetime: time.Hour}, attest.TrustAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmulator(t, tc.cfg)
			c := &attest.Client{HTTP: emulatorClient(e)}
			ct.Reset()
			jwt, exp, err := c.Token(ctx, e.AttestationURL(), k)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			t.Logf("Token (%s): %v", tc.name, named(ct.Counts()))
			m := claims(t, jwt)
			if m[attest.ClaimKeyThumbprint] != thumb || m[attest.ClaimAKTrust] != string(tc.trust) || m["iss"] != e.AttestationURL() {
				t.Errorf("claims = %v", m)
			}
			lifetime := tc.cfg.AttestationTokenLifetime
			if lifetime == 0 {
				lifetime = emulator.DefaultAttestationTokenLifetime
			}
			if d := time.Until(exp) - lifetime; d > time.Minute || d < -time.Minute {
				t.Errorf("expiresOn = %v, want about %v from now", exp, lifetime)
			}
			// The token verifies with the emulator's key.
			kid := header(t, jwt)["kid"].(string)
			pub, err := e.Keys().Key(ctx, kid)
			if err != nil {
				t.Fatal(err)
			}
			tc, err := attest.VerifyToken(jwt, pub, e.AttestationURL(), time.Now())
			if err != nil || tc.KeyThumbprint != thumb {
				t.Errorf("VerifyToken = %+v, %v", tc, err)
			}
			if _, err := attest.VerifyToken(jwt, pub, "https://someone-else", time.Now()); err == nil {
				t.Error("VerifyToken accepted another issuer")
			}
			if _, err := attest.VerifyToken(jwt, pub, e.AttestationURL(), exp.Add(time.Hour)); err == nil {
				t.Error("VerifyToken accepted an expired token")
			}
		})
	}

	t.Run("untrusted AK fails closed", func(t *testing.T) {
		e := startEmulator(t, emulator.Config{AttestationTrustedAKs: [][]byte{tpm2.Marshal(akTemplate(&mustECDSA().PublicKey))}})
		_, _, err := (&attest.Client{HTTP: emulatorClient(e)}).Token(ctx, e.AttestationURL(), k)
		var te *token.Error
		if !errors.As(err, &te) || te.Code != token.CodeAttestationFailed || te.Status != http.StatusBadRequest ||
			!strings.Contains(te.Message, "untrusted_ak") {
			t.Fatalf("err = %v", err)
		}
	})
}

func header(t testing.TB, jwt string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

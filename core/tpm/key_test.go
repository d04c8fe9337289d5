package tpm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/tpm"
)

var ctx = context.Background()

func TestRSASignPKCS1AndPSS(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{})
	k, err := p.Key(ctx, "slot")
	if err != nil {
		t.Fatal(err)
	}
	if k.Strength() != keys.StrengthTPM {
		t.Errorf("Strength() = %q", k.Strength())
	}
	pub, ok := k.Public().(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 2048 {
		t.Fatalf("Public() = %T, want an RSA-2048 key", k.Public())
	}
	if !k.(*tpm.Key).PSSSupported() {
		t.Fatal("the simulator salts PSS with the hash length; PSSSupported() = false")
	}
	d256 := sha256.Sum256([]byte("message"))
	d384 := sha512.Sum384([]byte("message"))

	sig, err := k.Sign(rand.Reader, d256[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d256[:], sig); err != nil {
		t.Errorf("PKCS#1 v1.5 SHA-256: %v", err)
	}
	sig, err = k.Sign(rand.Reader, d384[:], crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA384, d384[:], sig); err != nil {
		t.Errorf("PKCS#1 v1.5 SHA-384: %v", err)
	}
	for _, salt := range []int{rsa.PSSSaltLengthEqualsHash, sha256.Size, rsa.PSSSaltLengthAuto} {
		sig, err := k.Sign(rand.Reader, d256[:], &rsa.PSSOptions{SaltLength: salt, Hash: crypto.SHA256})
		if err != nil {
			t.Fatalf("PSS salt %d: %v", salt, err)
		}
		// Strict, as TLS 1.3 and crypto/x509 verify.
		if err := rsa.VerifyPSS(pub, crypto.SHA256, d256[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Errorf("PSS salt %d: %v", salt, err)
		}
	}
	if _, err := k.Sign(rand.Reader, d256[:], &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA256}); err == nil {
		t.Error("PSS with salt 20 succeeded; the TPM cannot honour it")
	}
	if _, err := k.Sign(rand.Reader, d256[:16], crypto.SHA256); !errors.Is(err, token.CodeInvalidArgument) {
		t.Errorf("short digest: err = %v, want invalid_argument", err)
	}
	if _, err := k.Sign(rand.Reader, d256[:], crypto.MD5); !errors.Is(err, token.CodeInvalidArgument) {
		t.Errorf("MD5: err = %v, want invalid_argument", err)
	}
}

func TestECDSASign(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{Algorithm: tpm.ECCP256})
	k, err := p.Key(ctx, "slot")
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve.Params().Name != "P-256" {
		t.Fatalf("Public() = %T, want a P-256 key", k.Public())
	}
	d256 := sha256.Sum256([]byte("message"))
	d384 := sha512.Sum384([]byte("message"))
	for _, tc := range []struct {
		h crypto.Hash
		d []byte
	}{{crypto.SHA256, d256[:]}, {crypto.SHA384, d384[:]}} {
		sig, err := k.Sign(rand.Reader, tc.d, tc.h)
		if err != nil {
			t.Fatalf("%v: %v", tc.h, err)
		}
		if !ecdsa.VerifyASN1(pub, tc.d, sig) {
			t.Errorf("%v: ECDSA signature does not verify", tc.h)
		}
	}
	if k.(*tpm.Key).PSSSupported() {
		t.Error("PSSSupported() = true for an ECC key")
	}
}

func TestIMDSCSRWithTPMKey(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{})
	k, err := p.Key(ctx, "slot")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := keys.IMDSCSR(k, "client-id", "tenant-id", keys.CUID{VMID: "vm"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := keys.ParseIMDSCSR(csr)
	if err != nil {
		t.Fatalf("ParseIMDSCSR: %v", err)
	}
	if !req.PublicKey.Equal(k.Public()) || req.ClientID != "client-id" || req.TenantID != "tenant-id" {
		t.Errorf("parsed CSR = %+v", req)
	}
}

func TestReopenReusesPersistedKey(t *testing.T) {
	sim := openSimulator(t)
	dir := filepath.Join(t.TempDir(), "state")
	ct := tpm.NewCountingTransport(sim)

	p1, err := tpm.Open(ctx, tpm.Config{Transport: ct, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	k1, err := p1.Key(ctx, "system#att=1")
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	cert := ca.issue(t, k1)
	rec := keys.CertificateRecord{DER: cert.Certificate[0], ClientID: "c", TenantID: "t", Endpoint: "https://mtls.example"}
	if err := p1.StoreCertificate(ctx, "system#att=1", rec); err != nil {
		t.Fatal(err)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}

	// Files: directory 0700, files 0600.
	for _, d := range []string{dir, filepath.Join(dir, "keys")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, err %v; want 0700", d, fi.Mode().Perm(), err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "keys", "*"))
	if len(files) != 2 {
		t.Errorf("state files = %v, want a key and a certificate record", files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}

	// The injected transport is still open; a second provider reuses key and certificate.
	ct.Reset()
	p2 := openProvider(t, ct, tpm.Config{StateDir: dir})
	k2, err := p2.Key(ctx, "system#att=1")
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().(*rsa.PublicKey).Equal(k1.Public()) {
		t.Error("reopened provider created a new key instead of loading the persisted one")
	}
	if n := ct.Count(tpm2.TPMCCCreate); n != 0 {
		t.Errorf("reopening sent %d TPM2_Create, want 0", n)
	}
	t.Logf("open + load persisted RSA key: %v", named(ct.Counts()))
	got, ok, err := p2.LoadCertificate(ctx, "system#att=1")
	if err != nil || !ok || string(got.DER) != string(rec.DER) || got.Endpoint != rec.Endpoint {
		t.Errorf("LoadCertificate = %+v, %v, %v", got, ok, err)
	}
	// The old provider's key is unusable.
	d := sha256.Sum256(nil)
	if _, err := k1.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, token.CodeClosed) {
		t.Errorf("Sign on a closed provider's key: %v, want client_closed", err)
	}
}

func TestRotateGivesNewKey(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{Algorithm: tpm.ECCP256})
	k1, err := p.Key(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Key(ctx, "s")
	if err != nil || again != k1 {
		t.Fatalf("second Key call = %v, %v; want the same key", again, err)
	}
	ca := newTestCA(t)
	if err := p.StoreCertificate(ctx, "s", keys.CertificateRecord{DER: ca.issue(t, k1).Certificate[0]}); err != nil {
		t.Fatal(err)
	}
	if err := p.Rotate(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := p.LoadCertificate(ctx, "s"); ok || err != nil {
		t.Errorf("certificate record survived Rotate (ok=%v, err=%v)", ok, err)
	}
	k2, err := p.Key(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if k2.Public().(*ecdsa.PublicKey).Equal(k1.Public()) {
		t.Error("Rotate then Key returned the same key")
	}
	d := sha256.Sum256(nil)
	if _, err := k1.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, tpm.ErrKeyReleased) {
		t.Errorf("Sign with a rotated key: %v, want ErrKeyReleased", err)
	}
	if _, err := k2.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Errorf("Sign with the new key: %v", err)
	}
	// Slots are independent.
	other, err := p.Key(ctx, "other")
	if err != nil || other.Public().(*ecdsa.PublicKey).Equal(k2.Public()) {
		t.Errorf("another slot: %v, %v", other, err)
	}
	if err := p.Rotate(ctx, "never-used"); err != nil {
		t.Errorf("Rotate of an empty slot: %v", err)
	}
}

func TestCertificateStore(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{Algorithm: tpm.ECCP256})
	if _, ok, err := p.LoadCertificate(ctx, "s"); ok || err != nil {
		t.Fatalf("LoadCertificate of an empty slot = %v, %v", ok, err)
	}
	k, err := p.Key(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	other, err := p.Key(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	rec := keys.CertificateRecord{DER: ca.issue(t, k).Certificate[0], ClientID: "c", TenantID: "t", Endpoint: "https://e"}
	if err := p.StoreCertificate(ctx, "s", rec); err != nil {
		t.Fatal(err)
	}
	got, ok, err := p.LoadCertificate(ctx, "s")
	if err != nil || !ok || string(got.DER) != string(rec.DER) || got.ClientID != "c" || got.TenantID != "t" || got.Endpoint != "https://e" {
		t.Errorf("round trip = %+v, %v, %v", got, ok, err)
	}
	// A certificate for another key is refused.
	if err := p.StoreCertificate(ctx, "s", keys.CertificateRecord{DER: ca.issue(t, other).Certificate[0]}); !errors.Is(err, token.CodeInvalidArgument) {
		t.Errorf("storing another key's certificate: %v", err)
	}
	if err := p.StoreCertificate(ctx, "s", keys.CertificateRecord{DER: []byte("junk")}); !errors.Is(err, token.CodeInvalidArgument) {
		t.Errorf("storing junk: %v", err)
	}
	var _ keys.CertificateStore = p
}

func TestCloseAndClosedErrors(t *testing.T) {
	sim := openSimulator(t)
	p, err := tpm.Open(ctx, tpm.Config{Transport: sim, StateDir: t.TempDir(), Algorithm: tpm.ECCP256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Key(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Key(ctx, "s"); !errors.Is(err, tpm.ErrClosed) || !errors.Is(err, token.CodeClosed) {
		t.Errorf("Key after Close: %v", err)
	}
	if err := p.Rotate(ctx, "s"); !errors.Is(err, token.CodeClosed) {
		t.Errorf("Rotate after Close: %v", err)
	}
	// The injected transport is still open, and Close flushed the key it loaded.
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTTransient) << 24, PropertyCount: 16}.Execute(sim)
	if err != nil {
		t.Fatalf("the injected transport was closed: %v", err)
	}
	if h, _ := rsp.CapabilityData.Data.Handles(); len(h.Handle) != 0 {
		t.Errorf("transient handles left after Close: %v", h.Handle)
	}
}

func TestCanceledContext(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{Algorithm: tpm.ECCP256})
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Key(c, "s"); !errors.Is(err, token.CodeCanceled) || !errors.Is(err, context.Canceled) {
		t.Errorf("Key with a canceled context: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  tpm.Config
		code token.Code
	}{
		{"bad algorithm", tpm.Config{Algorithm: "dsa"}, token.CodeInvalidArgument},
		{"bad SRK handle", tpm.Config{SRKHandle: 0x80000001}, token.CodeInvalidArgument},
		{"not a device", tpm.Config{Device: "/dev/null/nope"}, token.CodeTPM},
		{"regular file", tpm.Config{Device: "/etc/hostname"}, token.CodeTPM},
		{"unknown scheme", tpm.Config{Device: "unix:///tmp/sock"}, token.CodeTPM},
		{"nothing listening", tpm.Config{Device: "tcp://127.0.0.1:1"}, token.CodeTPM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.StateDir = t.TempDir()
			p, err := tpm.Open(ctx, tc.cfg)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.code) {
				t.Errorf("err = %v, want code %s", err, tc.code)
			}
		})
	}
}

func TestCorruptStateFileIsReplaced(t *testing.T) {
	sim := openSimulator(t)
	dir := t.TempDir()
	p := openProvider(t, sim, tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
	k1, err := p.Key(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "keys", "*.json"))
	if len(files) != 1 {
		t.Fatalf("files = %v", files)
	}
	if err := os.WriteFile(files[0], []byte(`{"version":1,"slot":"s","algorithm":"ecc-p256","public":"AAAA","private":"AAAA"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p2 := openProvider(t, sim, tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
	k2, err := p2.Key(ctx, "s")
	if err != nil {
		t.Fatalf("Key with a corrupt state file: %v", err)
	}
	if k2.Public().(*ecdsa.PublicKey).Equal(k1.Public()) {
		t.Error("corrupt state file loaded the old key")
	}
	// Switching the algorithm replaces the slot's key.
	p2.Close()
	p3 := openProvider(t, sim, tpm.Config{StateDir: dir, Algorithm: tpm.RSA2048})
	k3, err := p3.Key(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k3.Public().(*rsa.PublicKey); !ok {
		t.Errorf("after switching to RSA the key is %T", k3.Public())
	}
}

func TestCountingTransport(t *testing.T) {
	ct := tpm.NewCountingTransport(openSimulator(t))
	for range 3 {
		if _, err := (tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTManufacturer), PropertyCount: 1}).Execute(ct); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := (tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(0x80ffffff)}).Execute(ct); err == nil {
		t.Fatal("ReadPublic of a bad handle succeeded")
	}
	if got := ct.Count(tpm2.TPMCCGetCapability); got != 3 {
		t.Errorf("GetCapability count = %d, want 3", got)
	}
	if got := ct.Count(tpm2.TPMCCReadPublic); got != 1 {
		t.Errorf("ReadPublic count (failed commands count too) = %d, want 1", got)
	}
	if got := ct.Total(); got != 4 {
		t.Errorf("Total = %d, want 4", got)
	}
	if tpm.CommandName(tpm2.TPMCCSign) != "TPM2_Sign" || tpm.CommandName(0x1234) != "TPM_CC(0x1234)" {
		t.Error("CommandName")
	}
	ct.Reset()
	if ct.Total() != 0 {
		t.Error("Reset did not reset")
	}
}

// named renders command counts with command names, for logs.
func named(m map[tpm2.TPMCC]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[tpm.CommandName(k)] = v
	}
	return out
}

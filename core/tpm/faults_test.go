package tpm_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// faultyTransport fails the next n commands with code cc, either with a transport error (err)
// or with a TPM response carrying rc, without sending them to the TPM.
type faultyTransport struct {
	next transport.TPM

	mu  sync.Mutex
	cc  tpm2.TPMCC
	n   int
	err error
	rc  tpm2.TPMRC
}

func (f *faultyTransport) failNext(cc tpm2.TPMCC, n int, err error, rc tpm2.TPMRC) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cc, f.n, f.err, f.rc = cc, n, err, rc
}

func (f *faultyTransport) Send(cmd []byte) ([]byte, error) {
	f.mu.Lock()
	fail := f.n > 0 && len(cmd) >= 10 && tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10])) == f.cc
	if fail {
		f.n--
	}
	err, rc := f.err, f.rc
	f.mu.Unlock()
	if !fail {
		return f.next.Send(cmd)
	}
	if err != nil {
		return nil, err
	}
	// A response header alone: tag TPM_ST_NO_SESSIONS, size 10, the response code.
	rsp := make([]byte, 10)
	binary.BigEndian.PutUint16(rsp[0:2], uint16(tpm2.TPMSTNoSessions))
	binary.BigEndian.PutUint32(rsp[2:6], 10)
	binary.BigEndian.PutUint32(rsp[6:10], uint32(rc))
	return rsp, nil
}

// A persisted key whose TPM2_Load fails for a reason that says nothing about the blob — the TCP
// link dropped, the TPM asks for a retry or is self-testing, its object memory is full — keeps
// its files: the error is a tpm_error, and the next Key call loads the same key and finds the
// same certificate. Only a blob the TPM rejects is replaced.
func TestTransientLoadFailureKeepsKeyFiles(t *testing.T) {
	sim := openSimulator(t)
	dir := t.TempDir()
	p1 := openProvider(t, sim, tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
	k1, err := p1.Key(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	rec := keys.CertificateRecord{DER: newTestCA(t).issue(t, k1).Certificate[0], Endpoint: "https://e"}
	if err := p1.StoreCertificate(ctx, "s", rec); err != nil {
		t.Fatal(err)
	}
	p1.Close()

	for _, tc := range []struct {
		name string
		err  error
		rc   tpm2.TPMRC
	}{
		{"transport error", errors.New("tcp tpm: reading response: i/o timeout"), 0},
		{"TPM_RC_RETRY", nil, tpm2.TPMRCRetry},
		{"TPM_RC_TESTING", nil, tpm2.TPMRCTesting},
		{"TPM_RC_OBJECT_MEMORY", nil, tpm2.TPMRCObjectMemory},
		{"TPM_RC_HANDLE on the parent", nil, tpm2.TPMRCHandle + 0x100}, // handle 1: the SRK
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &faultyTransport{next: sim}
			p := openProvider(t, ft, tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
			ft.failNext(tpm2.TPMCCLoad, 1, tc.err, tc.rc)
			_, err := p.Key(ctx, "s")
			var te *token.Error
			if !errors.As(err, &te) || te.Code != token.CodeTPM || !te.Retryable {
				t.Fatalf("Key with a failing TPM2_Load: %v; want a retryable tpm_error", err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "keys", "*.json"))
			if len(files) != 2 {
				t.Fatalf("state files after a transient failure = %v; want the key and its certificate record", files)
			}
			k, err := p.Key(ctx, "s")
			if err != nil {
				t.Fatalf("Key once the TPM answers again: %v", err)
			}
			if !k.Public().(*ecdsa.PublicKey).Equal(k1.Public()) {
				t.Fatal("a new key was created after a transient failure")
			}
			if n := p.Commands()[tpm2.TPMCCCreate]; n != 0 {
				t.Errorf("sent %d TPM2_Create; want the persisted key loaded", n)
			}
			if got, ok, err := p.LoadCertificate(ctx, "s"); !ok || err != nil || string(got.DER) != string(rec.DER) {
				t.Errorf("certificate record after a transient failure: %v, %v", ok, err)
			}
			p.Close()
		})
	}

	// A blob wrapped by another SRK or tampered with fails the TPM's integrity check
	// (TPM_RC_INTEGRITY on inPrivate): that key can never load, so it is replaced.
	t.Run("TPM_RC_INTEGRITY replaces the key", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(dir, "keys", "*.json"))
		var keyFile string
		for _, f := range files {
			if !strings.HasSuffix(f, ".cert.json") {
				keyFile = f
			}
		}
		b, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		var kf map[string]json.RawMessage
		if err := json.Unmarshal(b, &kf); err != nil {
			t.Fatal(err)
		}
		var priv []byte
		if err := json.Unmarshal(kf["private"], &priv); err != nil {
			t.Fatal(err)
		}
		priv[len(priv)-1] ^= 0xff // in the encrypted sensitive area, which the integrity HMAC covers
		if kf["private"], err = json.Marshal(priv); err != nil {
			t.Fatal(err)
		}
		if b, err = json.Marshal(kf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		p := openProvider(t, sim, tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
		k, err := p.Key(ctx, "s")
		if err != nil {
			t.Fatalf("Key with a tampered blob: %v", err)
		}
		if k.Public().(*ecdsa.PublicKey).Equal(k1.Public()) {
			t.Fatal("the tampered blob loaded")
		}
		if _, ok, _ := p.LoadCertificate(ctx, "s"); ok {
			t.Error("the old key's certificate record survived its replacement")
		}
	})
}

// An existing state directory is never chmodded: one that other users may write is refused
// with a typed error and left as it was; one that is merely readable is used as it is.
// Directories Open creates are 0700.
func TestStateDirPermissions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dir, keys os.FileMode // keys 0: no keys subdirectory yet
	}{
		{"world-writable like /tmp", 0o777 | os.ModeSticky, 0},
		{"group-writable", 0o770, 0},
		{"group-writable keys subdirectory", 0o700, 0o770},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			mkdir(t, dir, tc.dir)
			if tc.keys != 0 {
				mkdir(t, filepath.Join(dir, "keys"), tc.keys)
			}
			_, err := tpm.Open(ctx, tpm.Config{Device: "tcp://127.0.0.1:1", StateDir: dir})
			if !errors.Is(err, tpm.ErrUnsafeStateDir) || !errors.Is(err, token.CodeInvalidArgument) {
				t.Fatalf("Open = %v; want invalid_argument wrapping ErrUnsafeStateDir", err)
			}
			if fi, _ := os.Stat(dir); fi.Mode()&(os.ModePerm|os.ModeSticky) != tc.dir {
				t.Errorf("Open changed the mode of %s to %v", dir, fi.Mode())
			}
		})
	}

	t.Run("owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root can give a directory to another user")
		}
		dir := filepath.Join(t.TempDir(), "state")
		mkdir(t, dir, 0o700)
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := tpm.Open(ctx, tpm.Config{Device: "tcp://127.0.0.1:1", StateDir: dir})
		if !errors.Is(err, tpm.ErrUnsafeStateDir) || !errors.Is(err, token.CodeInvalidArgument) {
			t.Fatalf("Open = %v; want invalid_argument wrapping ErrUnsafeStateDir", err)
		}
	})

	t.Run("existing private directory is used unchanged", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		mkdir(t, dir, 0o755)
		openProvider(t, openSimulator(t), tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
			t.Errorf("mode of the existing directory changed to %v", fi.Mode())
		}
		if fi, _ := os.Stat(filepath.Join(dir, "keys")); fi.Mode().Perm() != 0o700 {
			t.Errorf("created keys directory has mode %v; want 0700", fi.Mode())
		}
	})

}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// loadedSessions counts the sessions the TPM holds (loaded and context-saved).
func loadedSessions(t *testing.T, tr transport.TPM) int {
	t.Helper()
	n := 0
	for _, ht := range []tpm2.TPMHT{tpm2.TPMHTHMACSession, tpm2.TPMHTPolicySession} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(ht) << 24, PropertyCount: 64}.Execute(tr)
		if err != nil {
			t.Fatal(err)
		}
		h, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			t.Fatal(err)
		}
		n += len(h.Handle)
	}
	return n
}

// A failed credential activation leaves no session in the TPM: the EK policy session is flushed
// whether TPM2_PolicySecret fails (go-tpm's just-in-time Policy session leaked it), the
// activation itself fails, or it succeeds.
func TestActivateCredentialFlushesPolicySession(t *testing.T) {
	sim := openSimulator(t)
	ft := &faultyTransport{next: sim}
	p := openProvider(t, ft, tpm.Config{Algorithm: tpm.ECCP256})
	k, err := p.TPMKey(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cred, secret := credentialForAK(t, sim, id.AKPublic)
	if n := loadedSessions(t, sim); n != 0 {
		t.Fatalf("%d sessions before the test", n)
	}

	for _, rc := range []tpm2.TPMRC{tpm2.TPMRCRetry, tpm2.TPMRCBadAuth + 0x100} {
		ft.failNext(tpm2.TPMCCPolicySecret, 1, nil, rc)
		if _, err := k.ActivateCredential(ctx, cred); !errors.Is(err, token.CodeTPM) {
			t.Fatalf("ActivateCredential with PolicySecret failing (%v): %v", rc, err)
		}
		if n := loadedSessions(t, sim); n != 0 {
			t.Fatalf("PolicySecret failed with %v: %d sessions left in the TPM", rc, n)
		}
	}

	if _, err := k.ActivateCredential(ctx, attest.Credential{IDObject: []byte{0, 1}, EncryptedSecret: []byte{0, 1}}); err == nil {
		t.Fatal("a garbage credential was activated")
	}
	if n := loadedSessions(t, sim); n != 0 {
		t.Fatalf("after a failed TPM2_ActivateCredential: %d sessions left", n)
	}

	got, err := k.ActivateCredential(ctx, cred)
	if err != nil || string(got) != string(secret) {
		t.Fatalf("ActivateCredential = %x, %v", got, err)
	}
	if n := loadedSessions(t, sim); n != 0 {
		t.Fatalf("after a successful activation: %d sessions left", n)
	}
}

// credentialForAK makes a credential for the AK, encrypted to the simulator's RSA EK (the TCG
// default template, which ActivateCredential uses when there is no EK certificate).
func credentialForAK(t *testing.T, tr transport.TPM, akPublic []byte) (attest.Credential, []byte) {
	t.Helper()
	ek, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tpm2.RSAEKTemplate)}.Execute(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: ek.ObjectHandle}.Execute(tr)
	ekPub, err := ek.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	kem, err := tpm2.ImportEncapsulationKey(ekPub)
	if err != nil {
		t.Fatal(err)
	}
	akName, err := attest.Name(akPublic)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	idObject, encSecret, err := tpm2.CreateCredential(rand.Reader, kem, akName, secret)
	if err != nil {
		t.Fatal(err)
	}
	return attest.Credential{IDObject: idObject, EncryptedSecret: encSecret}, secret
}

// The provider gives its attestation identity without a binding key: no slot is created for
// it, and the keys it later creates are certified by that same AK.
func TestProviderAttestationIdentity(t *testing.T) {
	dir := t.TempDir()
	p := openProvider(t, openSimulator(t), tpm.Config{StateDir: dir, Algorithm: tpm.ECCP256})
	id, err := p.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.AKPublic) == 0 {
		t.Fatal("no AK public area")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "keys", "*")); len(files) != 0 {
		t.Errorf("AttestationIdentity created binding-key files %v", files)
	}
	k, err := p.TPMKey(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	kid, err := k.AttestationIdentity(ctx)
	if err != nil || string(kid.AKPublic) != string(id.AKPublic) {
		t.Fatalf("key's AttestationIdentity differs: %v", err)
	}
	ev, err := k.Certify(ctx, []byte("challenge"))
	if err != nil || string(ev.AKPublic) != string(id.AKPublic) {
		t.Fatalf("Certify by another AK: %v", err)
	}
}

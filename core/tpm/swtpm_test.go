package tpm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// TestSWTPM runs the provider against swtpm over TCP (ci/tpm.sh starts it and sets
// MTLSPOP_SWTPM=tcp://127.0.0.1:2321): create, sign, TLS 1.3 and 1.2 handshakes, the IMDSv2 CSR,
// reopening with the persisted blob, and rotation. swtpm serves one connection at a time, so
// each provider is closed before the next opens.
func TestSWTPM(t *testing.T) {
	dev := swtpmDevice(t)
	for _, alg := range []tpm.Algorithm{tpm.RSA2048, tpm.ECCP256} {
		t.Run(string(alg), func(t *testing.T) {
			dir := t.TempDir()
			start := time.Now()
			p, err := tpm.Open(ctx, tpm.Config{Device: dev, StateDir: dir, Algorithm: alg})
			if err != nil {
				t.Fatalf("Open(%s): %v", dev, err)
			}
			k, err := p.TPMKey(ctx, "swtpm")
			if err != nil {
				p.Close()
				t.Fatal(err)
			}
			t.Logf("open + create %s key: %v in %v", alg, named(p.Commands()), time.Since(start).Round(time.Millisecond))
			d := sha256.Sum256([]byte("swtpm"))
			sent := delta(p.Commands)
			start = time.Now()
			if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
				t.Fatal(err)
			}
			t.Logf("one signature: %v in %v", named(sent()), time.Since(start).Round(time.Microsecond))
			if alg == tpm.RSA2048 {
				if !k.PSSSupported() {
					t.Error("swtpm (libtpms ≥ 0.7.2) salts PSS with the hash length; PSSSupported() = false")
				}
				csr, err := keys.IMDSCSR(k, "client", "tenant", keys.CUID{VMID: "vm"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := keys.ParseIMDSCSR(csr); err != nil {
					t.Errorf("IMDSv2 CSR signed by swtpm: %v", err)
				}
			}
			ca := newTestCA(t)
			cert := ca.issue(t, k)
			for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
				t.Run(fmt.Sprint(tls.VersionName(v)), func(t *testing.T) { handshakes(t, p.Commands, ca, cert, v) })
			}
			pub := k.Public()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}

			p2, err := tpm.Open(ctx, tpm.Config{Device: dev, StateDir: dir, Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			defer p2.Close()
			k2, err := p2.Key(ctx, "swtpm")
			if err != nil {
				t.Fatal(err)
			}
			if !k2.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Error("reopened provider did not reuse the persisted key")
			}
			if err := p2.Rotate(ctx, "swtpm"); err != nil {
				t.Fatal(err)
			}
			k3, err := p2.Key(ctx, "swtpm")
			if err != nil {
				t.Fatal(err)
			}
			if k3.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Error("Rotate kept the key")
			}
		})
	}
}

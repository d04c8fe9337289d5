package tpm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// The simulator, like swtpm and many TPMs without a resource manager, holds three transient
// objects. More binding keys than that still work: idle keys are flushed when room is needed
// and reload from their blobs on next use.
func TestMoreKeysThanObjectSlots(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{Algorithm: tpm.ECCP256})
	var ks []keys.Key
	for i := range 5 {
		k, err := p.Key(ctx, fmt.Sprint("slot", i))
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		ks = append(ks, k)
	}
	d := sha256.Sum256([]byte("x"))
	for round := range 2 {
		for i, k := range ks {
			sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("round %d key %d: %v", round, i, err)
			}
			if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d[:], sig) {
				t.Fatalf("round %d key %d: bad signature", round, i)
			}
		}
	}
	// Certify needs the key, the SRK and the AK at once.
	if _, err := ks[0].(*tpm.Key).Certify(ctx, d[:]); err != nil {
		t.Fatalf("Certify with every slot in use: %v", err)
	}
}

// Concurrent signers share the one connection safely; the race detector watches.
func TestConcurrentUse(t *testing.T) {
	p := openProvider(t, openSimulator(t), tpm.Config{Algorithm: tpm.ECCP256})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := p.TPMKey(ctx, fmt.Sprint("slot", g%2))
			if err != nil {
				errs <- err
				return
			}
			for i := range 10 {
				d := sha256.Sum256([]byte{byte(g), byte(i)})
				if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					errs <- err
					return
				}
			}
			if g == 0 {
				if _, err := k.Certify(ctx, []byte("challenge")); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := p.Commands()[tpm2.TPMCCSign]; n != 80 {
		t.Errorf("TPM2_Sign count = %d, want 80", n)
	}
}

// BenchmarkSign measures one TPM2_Sign through the provider on the simulator (simulators are
// orders of magnitude faster than hardware TPMs; the point is the command count per signature).
func BenchmarkSign(b *testing.B) {
	sim := openSimulator(b)
	for _, alg := range []tpm.Algorithm{tpm.ECCP256, tpm.RSA2048} {
		b.Run(string(alg), func(b *testing.B) {
			p := openProvider(b, sim, tpm.Config{Algorithm: alg})
			k, err := p.Key(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			d := sha256.Sum256([]byte("bench"))
			before := p.Commands()
			b.ResetTimer()
			for b.Loop() {
				if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
			after := p.Commands()
			var n uint64
			for cc, v := range after {
				n += v - before[cc]
			}
			b.ReportMetric(float64(n)/float64(b.N), "tpm-cmds/op")
			p.Close()
		})
	}
}

package managedidentity_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// These tests run the IMDSv2 flow with binding keys in the in-process TPM simulator (cgo, test
// files only; the library itself stays cgo-free). The simulator is a process singleton, so
// these tests do not run in parallel.

func openTPM(t *testing.T) transport.TPMCloser {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("opening the TPM simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func openProvider(t *testing.T, tr transport.TPM, dir string) *tpm.Provider {
	t.Helper()
	p, err := tpm.Open(context.Background(), tpm.Config{Transport: tr, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// attestingEmulator requires attestation from the provider's attestation key (allow-list).
func attestingEmulator(t *testing.T, p *tpm.Provider) *emulator.Emulator {
	t.Helper()
	k, err := p.TPMKey(context.Background(), "identity-probe")
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.AttestationIdentity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return startEmulator(t, emulator.Config{RequireAttestation: true, AttestationTrustedAKs: [][]byte{id.AKPublic}})
}

func TestAttestedTPMKeyGetsAPoPToken(t *testing.T) {
	sim := openTPM(t)
	counter := tpm.NewCountingTransport(sim)
	p := openProvider(t, counter, t.TempDir())
	emu := attestingEmulator(t, p)
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p), managedidentity.WithAttestation())
	ctx := context.Background()
	res, err := c.AcquireToken(ctx, emu.Config().ResourceID, popOpt)
	if err != nil {
		t.Fatal(err)
	}
	// The certificate certifies the TPM key, and the key never left the TPM.
	key, err := p.Key(ctx, emulator.DefaultSystemAssignedClientID) // a different slot: a different key
	if err != nil {
		t.Fatal(err)
	}
	signer := res.TLSCertificate().PrivateKey.(keys.Key)
	if signer.Strength() != keys.StrengthTPM || !sameKey(res.BindingCertificate.PublicKey, signer.Public()) || sameKey(key.Public(), signer.Public()) {
		t.Fatal("the binding certificate does not certify this identity's TPM key")
	}
	var body struct {
		AttestationToken string `json:"attestation_token"`
	}
	if err := json.Unmarshal(emu.LastRequest(emulator.EndpointIssueCredential).Body, &body); err != nil || strings.Count(body.AttestationToken, ".") != 2 {
		t.Fatalf("issuecredential carried no attestation token: %v", err)
	}
	if status, _ := callResource(t, c, emu.ResourceURL(), res); status != http.StatusOK {
		t.Fatalf("resource answered %d", status)
	}

	// TPM commands: none on a cache hit; one TPM2_Sign per new TLS connection, none on reuse.
	counter.Reset()
	for range 100 {
		if _, err := c.AcquireToken(ctx, emu.Config().ResourceID, popOpt); err != nil {
			t.Fatal(err)
		}
	}
	if n := counter.Total(); n != 0 {
		t.Fatalf("%d TPM commands on 100 cache hits", n)
	}
	for range 3 {
		if status, _ := callResource(t, c, emu.ResourceURL(), res); status != http.StatusOK {
			t.Fatal(status)
		}
	}
	if n, total := counter.Count(tpm2.TPMCCSign), counter.Total(); n != 0 || total != 0 {
		t.Fatalf("%d signs / %d commands calling the resource on a kept-alive connection", n, total)
	}
	_ = c.Close() // a new client: new connections, one handshake signature each
	c2 := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p), managedidentity.WithAttestation())
	counter.Reset()
	if _, err := c2.AcquireToken(ctx, "api://second", popOpt); err != nil { // reuses the stored certificate
		t.Fatal(err)
	}
	if n := counter.Count(tpm2.TPMCCSign); n != 1 {
		t.Fatalf("%d TPM2_Sign for one new mTLS connection, want 1", n)
	}
	if emu.Requests(emulator.EndpointIssueCredential) != 1 {
		t.Fatal("the persisted certificate was not reused")
	}
}

func TestAttestationFailsClosed(t *testing.T) {
	sim := openTPM(t)
	p := openProvider(t, sim, t.TempDir())
	emu := attestingEmulator(t, p)
	ctx := context.Background()

	// A key that cannot attest: an error before any CSR is sent.
	soft := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithAttestation())
	_, err := soft.AcquireToken(ctx, "api://r", popOpt)
	wantCode(t, err, token.CodeAttestationFailed)
	if emu.Requests(emulator.EndpointIssueCredential) != 0 {
		t.Fatal("a CSR was sent without attestation")
	}
	// The attestation service refuses: no silent non-attested mint either.
	emu.InjectFault(emulator.EndpointAttest, emulator.Fault{Status: 500, Count: 1})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p), managedidentity.WithAttestation())
	_, err = c.AcquireToken(ctx, "api://r", popOpt)
	wantCode(t, err, token.CodeAttestationFailed)
	if emu.Requests(emulator.EndpointIssueCredential) != 0 {
		t.Fatal("a CSR was sent after the attestation service failed")
	}
	// Without WithAttestation, a host that requires it refuses the CSR.
	plain := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p))
	_, err = plain.AcquireToken(ctx, "api://r", popOpt)
	if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != http.StatusBadRequest || !strings.Contains(te.Message, "Attestation Token is missing") {
		t.Fatalf("%+v", te)
	}
	// Attested and non-attested keys live in different slots, so they are different keys.
	if _, err := c.AcquireToken(ctx, "api://r", popOpt); err != nil {
		t.Fatal(err)
	}
	att, _ := p.Key(ctx, "system_assigned_managed_identity#att=1")
	non, _ := p.Key(ctx, "system_assigned_managed_identity#att=0")
	if sameKey(att.Public(), non.Public()) {
		t.Fatal("attested and non-attested slots share a key")
	}
	var _ attest.Attestable = att.(*tpm.Key)
}

func TestTPMKeyAndCertificateSurviveARestart(t *testing.T) {
	sim := openTPM(t)
	dir := t.TempDir()
	p1, err := tpm.Open(context.Background(), tpm.Config{Transport: sim, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	emu := startEmulator(t, emulator.Config{})
	c1 := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p1))
	first, err := c1.AcquireToken(context.Background(), emu.Config().ResourceID, popOpt)
	if err != nil {
		t.Fatal(err)
	}
	_ = c1.Close()
	_ = p1.Close()

	// "A restarted process": a new provider on the same TPM and state directory, a new client.
	p2 := openProvider(t, sim, dir)
	c2 := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p2))
	second, err := c2.AcquireToken(context.Background(), emu.Config().ResourceID, popOpt)
	if err != nil {
		t.Fatal(err)
	}
	if second.Thumbprint() != first.Thumbprint() {
		t.Fatal("the restarted process minted a new certificate instead of reusing the stored one")
	}
	if m, i := emu.Requests(emulator.EndpointPlatformMetadata), emu.Requests(emulator.EndpointIssueCredential); m != 1 || i != 1 {
		t.Fatalf("getplatformmetadata %d, issuecredential %d: want one mint in all", m, i)
	}
	if status, _ := callResource(t, c2, emu.ResourceURL(), second); status != http.StatusOK {
		t.Fatalf("the reloaded key could not call the resource: %d", status)
	}
}

// BenchmarkTPMPoPCacheHit is AcquireToken on a cached PoP token whose key is in the TPM
// (simulator). It reports the TPM commands a cache hit costs (0: the hot path never touches the
// TPM) and the TPM2_Sign commands a new mTLS connection to the resource costs (1).
func BenchmarkTPMPoPCacheHit(b *testing.B) {
	sim, err := simulator.OpenSimulator()
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	counter := tpm.NewCountingTransport(sim)
	p, err := tpm.Open(context.Background(), tpm.Config{Transport: counter, StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	emu := startEmulator(b, emulator.Config{})
	ctx, resource := context.Background(), emu.Config().ResourceID
	c := clientFor(b, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p))
	res, err := c.AcquireToken(ctx, resource, popOpt)
	if err != nil {
		b.Fatal(err)
	}
	// Signs per new connection: each client's pool opens a new connection to the resource.
	const conns = 3
	counter.Reset()
	for range conns {
		other := clientFor(b, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p))
		if status, _ := callResource(b, other, emu.ResourceURL(), res); status != http.StatusOK {
			b.Fatal(status)
		}
		_ = other.Close()
	}
	signsPerConn := float64(counter.Count(tpm2.TPMCCSign)) / conns
	counter.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.AcquireToken(ctx, resource, popOpt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(counter.Total())/float64(b.N), "tpm_commands/op")
	b.ReportMetric(signsPerConn, "tpm_signs/new_connection")
}

// Capabilities with attestation look at the key mint would use (the attested slot): probing
// creates no key of its own. A key that cannot attest is reported as no PoP, since every mint
// would fail.
func TestCapabilitiesWithAttestation(t *testing.T) {
	sim := openTPM(t)
	dir := t.TempDir()
	p := openProvider(t, sim, dir)
	emu := attestingEmulator(t, p)
	ctx := context.Background()
	keyFiles := func() int {
		n := 0
		entries, _ := os.ReadDir(filepath.Join(dir, "keys"))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".json") && !strings.HasSuffix(e.Name(), ".cert.json") {
				n++
			}
		}
		return n
	}
	before := keyFiles()
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithKeyProvider(p), managedidentity.WithAttestation())
	caps, err := c.Capabilities(ctx)
	if err != nil || !caps.PoP() || caps.BindingStrength != keys.StrengthTPM {
		t.Fatalf("%+v %v", caps, err)
	}
	if _, err := c.AcquireToken(ctx, emu.Config().ResourceID, popOpt); err != nil {
		t.Fatal(err)
	}
	if n := keyFiles() - before; n != 1 {
		t.Fatalf("Capabilities and one mint made %d TPM keys, want 1 (the probe used another slot)", n)
	}
	soft := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithAttestation())
	if caps, err := soft.Capabilities(ctx); err != nil || caps.PoP() || !caps.IMDSv2 {
		t.Fatalf("software keys with attestation: %+v %v", caps, err)
	}
}

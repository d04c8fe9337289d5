package attest_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// TestSWTPMAttestation attests a swtpm-resident binding key to the emulator (allow-list trust,
// and EK-certificate trust with credential activation when ci/tpm.sh provisioned swtpm's EK
// certificate and exported its CA as MTLSPOP_SWTPM_EK_ROOTS), then gets a binding certificate
// from issuecredential with attestation required.
func TestSWTPMAttestation(t *testing.T) {
	dev := os.Getenv("MTLSPOP_SWTPM")
	if dev == "" {
		t.Skip("MTLSPOP_SWTPM is not set: swtpm integration tests run from ci/tpm.sh test, which starts swtpm")
	}
	p, err := tpm.Open(ctx, tpm.Config{Device: dev, StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Open(%s): %v", dev, err)
	}
	defer p.Close()
	k, err := p.TPMKey(ctx, "swtpm#att=1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.AttestationIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("allow-list", func(t *testing.T) {
		e := startEmulator(t, emulator.Config{RequireAttestation: true, AttestationTrustedAKs: [][]byte{id.AKPublic}})
		issueWithAttestation(t, p, k, e, attest.TrustAllowList)
	})

	t.Run("ek-certificate", func(t *testing.T) {
		rootsFile := os.Getenv("MTLSPOP_SWTPM_EK_ROOTS")
		if rootsFile == "" {
			t.Skip("MTLSPOP_SWTPM_EK_ROOTS is not set: ci/tpm.sh provisions swtpm's EK certificate and exports its CA")
		}
		pem, err := os.ReadFile(rootsFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatalf("%s holds no PEM certificates", rootsFile)
		}
		if len(id.EKCertificate) == 0 {
			t.Fatal("swtpm has no EK certificate in NV 0x01C00002 (run swtpm_setup --create-ek-cert)")
		}
		if _, err := attest.VerifyEKCertificate(id.EKCertificate, roots, timeZero); err != nil {
			t.Fatalf("swtpm's EK certificate: %v", err)
		}
		e := startEmulator(t, emulator.Config{RequireAttestation: true, AttestationEKRoots: roots})
		issueWithAttestation(t, p, k, e, attest.TrustEKCertificate)
	})
}

// issueWithAttestation runs the attested half of IMDSv2 by hand: attestation token, CSR,
// issuecredential; and checks the certificate is for the TPM key.
func issueWithAttestation(t *testing.T, p *tpm.Provider, k *tpm.Key, e *emulator.Emulator, trust attest.Trust) {
	t.Helper()
	sent := p.Commands()
	tok, _, err := (&attest.Client{HTTP: emulatorClient(e)}).Token(ctx, e.AttestationURL(), k)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	t.Logf("attestation (%s): %v", trust, named(diff(sent, p.Commands())))
	if got := claims(t, tok)[attest.ClaimAKTrust]; got != string(trust) {
		t.Errorf("ak_trust = %v, want %s", got, trust)
	}
	csr, err := keys.IMDSCSR(k, emulator.DefaultSystemAssignedClientID, emulator.DefaultTenantID, keys.CUID{VMID: emulator.DefaultVMID})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"csr": csr, "attestation_token": tok})
	req, _ := http.NewRequest(http.MethodPost, e.IMDSURL()+"/metadata/identity/issuecredential?"+url.Values{"cred-api-version": {"2.0"}}.Encode(), bytes.NewReader(body))
	req.Header.Set("Metadata", "true")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Certificate string `json:"certificate"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("issuecredential: %d, %v", resp.StatusCode, err)
	}
	der, _ := base64.StdEncoding.DecodeString(out.Certificate)
	cert, err := x509.ParseCertificate(der)
	if err != nil || !k.Public().(*rsa.PublicKey).Equal(cert.PublicKey) {
		t.Fatalf("binding certificate is not for the swtpm key: %v", err)
	}
}

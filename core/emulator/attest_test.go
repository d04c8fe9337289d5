package emulator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-tpm/tpm2/transport/simulator"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// tpmKeys opens the in-process TPM simulator (cgo, test files only) and returns a provider of
// RSA binding keys and the AK public area. The simulator is a process singleton: tests that
// use it run one after another.
func tpmKeys(t *testing.T) (*tpm.Provider, []byte) {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	if err != nil {
		t.Fatalf("TPM simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	p, err := tpm.Open(context.Background(), tpm.Config{Transport: sim, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	k, err := p.TPMKey(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.AttestationIdentity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p, id.AKPublic
}

func postJSON(t *testing.T, e *emulator.Emulator, path string, v any) response {
	t.Helper()
	b, _ := json.Marshal(v)
	return do(t, tlsClient(e, nil), newRequest(t, http.MethodPost, e.AttestationURL()+path, bytes.NewReader(b),
		map[string]string{"Content-Type": "application/json"}))
}

// The protocol by hand over real HTTPS: init hands out a single-use challenge, attest verifies
// TPM2_Certify evidence and returns an RS256 JWT naming the key, verifiable with /certs.
func TestAttestationRoundTrip(t *testing.T) {
	p, akPub := tpmKeys(t)
	e := start(t, emulator.Config{AttestationTrustedAKs: [][]byte{akPub}})
	if !strings.HasPrefix(e.AttestationURL(), "https://127.0.0.1:") || !strings.HasSuffix(e.AttestationURL(), "/attestation") {
		t.Fatalf("AttestationURL = %q", e.AttestationURL())
	}
	k, _ := p.TPMKey(context.Background(), "a")
	spki, _ := x509.MarshalPKIXPublicKey(k.Public())

	r := postJSON(t, e, attest.InitPath, attest.InitRequest{AKPublic: akPub})
	if r.status != http.StatusOK {
		t.Fatalf("init: %d %s", r.status, r.body)
	}
	var init attest.InitResponse
	if err := json.Unmarshal(r.body, &init); err != nil {
		t.Fatal(err)
	}
	if len(init.Challenge) != 32 || init.ServiceContext == "" || init.Credential != nil || init.ExpiresIn != 300 {
		t.Fatalf("init = %+v", init)
	}
	ev, err := k.Certify(context.Background(), init.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	req := attest.AttestRequest{ServiceContext: init.ServiceContext, Evidence: *ev, PublicKey: spki}
	r = postJSON(t, e, attest.AttestPath, req)
	if r.status != http.StatusOK {
		t.Fatalf("attest: %d %s", r.status, r.body)
	}
	var out attest.AttestResponse
	json.Unmarshal(r.body, &out)

	// The token verifies with the key the service publishes at /certs.
	certs := do(t, tlsClient(e, nil), newRequest(t, http.MethodGet, e.AttestationURL()+"/certs", nil, nil))
	var set struct {
		Keys []struct{ Kid, N, E string }
	}
	json.Unmarshal(certs.body, &set)
	if len(set.Keys) != 1 {
		t.Fatalf("certs = %s", certs.body)
	}
	pub, err := e.Keys().Key(context.Background(), set.Keys[0].Kid)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := attest.VerifyToken(out.Token, pub, e.AttestationURL(), time.Now())
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	thumb, _ := attest.KeyThumbprint(k.Public())
	if claims.KeyThumbprint != thumb || claims.AKTrust != attest.TrustAllowList {
		t.Errorf("claims = %+v", claims)
	}
	if d := claims.ExpiresAt.Sub(claims.IssuedAt); d != emulator.DefaultAttestationTokenLifetime {
		t.Errorf("lifetime = %v", d)
	}

	// The challenge is single-use.
	wantError(t, postJSON(t, e, attest.AttestPath, req), http.StatusBadRequest, "invalid_request",
		"service_context is unknown, used or expired; start again with init")
	if n := e.Requests(emulator.EndpointAttest); n != 2 {
		t.Errorf("attest requests = %d", n)
	}

	// Evidence for the wrong challenge fails Verify's nonce check.
	r = postJSON(t, e, attest.InitPath, attest.InitRequest{AKPublic: akPub})
	json.Unmarshal(r.body, &init)
	req.ServiceContext = init.ServiceContext
	r = postJSON(t, e, attest.AttestPath, req)
	wantError(t, r, http.StatusBadRequest, "attestation_failed", "")
	if d := r.json(t)["error_description"].(string); !strings.HasPrefix(d, string(attest.CheckNonce)) {
		t.Errorf("error_description = %q", d)
	}

	// Evidence from another AK than the one the challenge was issued to.
	other := attest.InitRequest{AKPublic: append([]byte(nil), akPub...)}
	other.AKPublic[len(other.AKPublic)-1] ^= 1
	r = postJSON(t, e, attest.InitPath, other)
	json.Unmarshal(r.body, &init)
	ev, _ = k.Certify(context.Background(), init.Challenge)
	wantError(t, postJSON(t, e, attest.AttestPath, attest.AttestRequest{ServiceContext: init.ServiceContext, Evidence: *ev}),
		http.StatusBadRequest, "attestation_failed", "the evidence is not from the attestation key the challenge was issued to")

	// A public_key that is not the certified key.
	r = postJSON(t, e, attest.InitPath, attest.InitRequest{AKPublic: akPub})
	json.Unmarshal(r.body, &init)
	ev, _ = k.Certify(context.Background(), init.Challenge)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherSPKI, _ := x509.MarshalPKIXPublicKey(&otherKey.PublicKey)
	r = postJSON(t, e, attest.AttestPath, attest.AttestRequest{ServiceContext: init.ServiceContext, Evidence: *ev, PublicKey: otherSPKI})
	wantError(t, r, http.StatusBadRequest, "attestation_failed", "")
	if d := r.json(t)["error_description"].(string); !strings.HasPrefix(d, string(attest.CheckKeyMismatch)) {
		t.Errorf("error_description = %q", d)
	}
}

func TestAttestationRequestErrors(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	c := tlsClient(e, nil)
	jsonHeader := map[string]string{"Content-Type": "application/json"}
	wantError(t, do(t, c, newRequest(t, http.MethodGet, e.AttestationURL()+attest.InitPath, nil, nil)),
		http.StatusMethodNotAllowed, "invalid_request", "")
	wantError(t, do(t, c, newRequest(t, http.MethodPost, e.AttestationURL()+attest.InitPath, strings.NewReader("{"), jsonHeader)),
		http.StatusBadRequest, "invalid_request", "request body is not valid JSON")
	wantError(t, do(t, c, newRequest(t, http.MethodPost, e.AttestationURL()+attest.InitPath, strings.NewReader("{}"), nil)),
		http.StatusBadRequest, "invalid_request", "Content-Type must be application/json")
	wantError(t, postJSON(t, e, attest.InitPath, attest.InitRequest{AKPublic: []byte{1, 2}}),
		http.StatusBadRequest, "invalid_request", "ak_public is not a TPMT_PUBLIC")
	wantError(t, postJSON(t, e, attest.AttestPath, attest.AttestRequest{ServiceContext: "nope"}),
		http.StatusBadRequest, "invalid_request", "service_context is unknown, used or expired; start again with init")
	// The login host still serves its own paths.
	r := do(t, c, newRequest(t, http.MethodGet, e.JWKSURL(), nil, nil))
	if r.status != http.StatusOK {
		t.Errorf("JWKS through the attestation mux: %d", r.status)
	}
}

func TestRequireAttestationNeedsTrust(t *testing.T) {
	t.Parallel()
	if e, err := emulator.Start(emulator.Config{RequireAttestation: true}); err == nil {
		e.Close()
		t.Fatal("Start accepted RequireAttestation with no way to trust an AK")
	}
	if e, err := emulator.Start(emulator.Config{AttestationTokenLifetime: -time.Second}); err == nil {
		e.Close()
		t.Fatal("Start accepted a negative AttestationTokenLifetime")
	}
}

// With RequireAttestation, issuecredential wants an attestation token from this emulator that
// attests the CSR's key; without it (the default) the token is not needed.
func TestIssueCredentialRequiresAttestation(t *testing.T) {
	p, akPub := tpmKeys(t)
	e := start(t, emulator.Config{RequireAttestation: true, AttestationTrustedAKs: [][]byte{akPub}, AttestationTokenLifetime: time.Hour})
	ctx := context.Background()
	keyA, _ := p.TPMKey(ctx, "a")
	keyB, err := p.TPMKey(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	client := &attest.Client{HTTP: tlsClient(e, nil)}
	tokA, _, err := client.Token(ctx, e.AttestationURL(), keyA)
	if err != nil {
		t.Fatal(err)
	}
	tokB, _, err := client.Token(ctx, e.AttestationURL(), keyB)
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed tokens for keyA that the emulator did not sign, or that it signed (with the
	// key that signs its attestation tokens) for another issuer or with an exp in the past.
	forger, _ := rsa.GenerateKey(rand.Reader, 2048)
	thumbA, _ := attest.KeyThumbprint(keyA.Public())
	claimsFor := func(iss string, iat, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "iat": iat.Unix(), "exp": exp.Unix(), attest.ClaimKeyThumbprint: thumbA}
	}
	forge := func(key *rsa.PrivateKey, iss string, exp time.Time) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsFor(iss, time.Now(), exp)).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	emulatorSigned := func(claims jwt.MapClaims) string {
		s, err := e.SignForTest(claims)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()

	csr, err := keys.IMDSCSR(keyA, emulator.DefaultSystemAssignedClientID, emulator.DefaultTenantID, keys.CUID{VMID: emulator.DefaultVMID})
	if err != nil {
		t.Fatal(err)
	}
	body := func(tok string) []byte {
		b, _ := json.Marshal(map[string]string{"csr": csr, "attestation_token": tok})
		return b
	}
	for _, tc := range []struct {
		name, token, desc string
		reason            string // with desc "": what the "not valid" description must name
	}{
		{"missing", "", "Attestation Token is missing / empty in the issue credential request", ""},
		{"not a JWT", "garbage", "", "malformed"},
		{"signed by someone else", forge(forger, e.AttestationURL(), time.Now().Add(time.Hour)), "", "signature is invalid"},
		// The emulator's access tokens are signed with the same key; the issuer tells them apart.
		{"signed by the emulator for another issuer", emulatorSigned(claimsFor(e.Issuer(), now, now.Add(time.Hour))), "", "invalid issuer"},
		// Past exp by more than the minute of leeway VerifyToken allows.
		{"expired", emulatorSigned(claimsFor(e.AttestationURL(), now.Add(-time.Hour), now.Add(-2*time.Minute))), "", "expired"},
		{"for the key of another CSR", tokB, "Attestation Token attests a different key than the csr's", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postIssueCredential(t, e, v2Query(), body(tc.token), nil)
			wantError(t, r, http.StatusBadRequest, "invalid_request", tc.desc)
			if d := r.json(t)["error_description"].(string); tc.desc == "" &&
				(!strings.HasPrefix(d, "Attestation Token is not valid: ") || !strings.Contains(d, tc.reason)) {
				t.Errorf("error_description = %q, want it to name %q", d, tc.reason)
			}
		})
	}
	// Control: the same emulator-signed claims with the right issuer and a future exp are
	// accepted, so the two cases above fail for their issuer and exp alone.
	if r := postIssueCredential(t, e, v2Query(), body(emulatorSigned(claimsFor(e.AttestationURL(), now, now.Add(time.Hour)))), nil); r.status != http.StatusOK {
		t.Fatalf("emulator-signed control token: %d %s", r.status, r.body)
	}

	r := postIssueCredential(t, e, v2Query(), body(tokA), nil)
	if r.status != http.StatusOK {
		t.Fatalf("issuecredential with a valid token: %d %s", r.status, r.body)
	}
	var out issued
	json.Unmarshal(r.body, &out)
	der, _ := base64.StdEncoding.DecodeString(out.Certificate)
	cert, err := x509.ParseCertificate(der)
	if err != nil || !keyA.Public().(*rsa.PublicKey).Equal(cert.PublicKey) {
		t.Fatalf("issued certificate %v is not for the attested TPM key (%v)", cert, err)
	}
}

package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/internal/wire"
)

// The attestation service, on the login host under attestationURL() — the attestationEndpoint
// getplatformmetadata advertises. It speaks package attest's protocol (modelled on Microsoft
// Azure Attestation's TPM protocol):
//
//	POST {endpoint}/attest/tpm/init   {ak_public, ek_certificate?} → {challenge, service_context, credential?, expires_in}
//	POST {endpoint}/attest/tpm        {service_context, evidence, public_key, activation_secret?} → {token}
//	GET  {endpoint}/certs             the token-signing keys (JWKS)
//
// It verifies evidence with attest.Verify — every check of reference/tpm-attestation.md §3.4 —
// and answers with an RS256 attestation JWT signed by the emulator's token-signing key, whose
// attest.ClaimKeyThumbprint names the attested key. issuecredential checks that token when
// Config.RequireAttestation is set.

// Attestation endpoints, for fault injection and request records.
const (
	EndpointAttestInit  Endpoint = "attest_init"  // login POST /attestation/attest/tpm/init
	EndpointAttest      Endpoint = "attest"       // login POST /attestation/attest/tpm
	EndpointAttestCerts Endpoint = "attest_certs" // login GET  /attestation/certs
)

const (
	// DefaultAttestationTokenLifetime is the lifetime of attestation tokens when
	// Config.AttestationTokenLifetime is zero (MAA's default is 8 hours too).
	DefaultAttestationTokenLifetime = 8 * time.Hour

	attestationPath   = "/attestation"
	challengeTTL      = 5 * time.Minute
	maxPendingAttests = 1024
)

// attestationDefaults fills in and checks the attestation settings of Config.
func (c Config) attestationDefaults() (Config, error) {
	if c.AttestationTokenLifetime == 0 {
		c.AttestationTokenLifetime = DefaultAttestationTokenLifetime
	}
	if c.AttestationTokenLifetime < 0 {
		return c, errors.New("emulator: AttestationTokenLifetime must not be negative")
	}
	c.AttestationTrustedAKs = append([][]byte(nil), c.AttestationTrustedAKs...)
	if c.RequireAttestation && len(c.AttestationTrustedAKs) == 0 && c.AttestationEKRoots == nil && !c.AttestationTrustAnyAK {
		return c, errors.New("emulator: RequireAttestation needs a way to trust attestation keys: " +
			"AttestationTrustedAKs, AttestationEKRoots or AttestationTrustAnyAK")
	}
	return c, nil
}

// attestations holds the challenges handed out and not yet used.
type attestations struct {
	mu      sync.Mutex
	pending map[string]*pendingAttestation // by service_context
}

type pendingAttestation struct {
	challenge []byte
	akName    []byte
	ekCert    []byte
	secret    []byte // the credential's secret; nil when no activation was asked for
	expires   time.Time
}

// withAttestation serves the attestation service under attestationPath and everything else
// with the login host's handler.
func (e *Emulator) withAttestation(login http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(attestationPath+attest.InitPath, e.endpoint(EndpointAttestInit, e.attestInit))
	mux.Handle(attestationPath+attest.AttestPath, e.endpoint(EndpointAttest, e.attestTPM))
	mux.Handle(attestationPath+"/certs", e.endpoint(EndpointAttestCerts, e.attestCerts))
	mux.Handle("/", login)
	return mux
}

// AttestationURL is the attestation service's endpoint, as getplatformmetadata advertises it
// in attestationEndpoint: "https://127.0.0.1:port/attestation".
func (e *Emulator) AttestationURL() string { return e.attestationURL() }

// attestationPreamble checks method and content type; ok is false when it has already answered.
func attestationPreamble(w http.ResponseWriter, r *http.Request, x *exchange, v any) bool {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, x, http.MethodPost)
		return false
	}
	if x.tooLarge {
		writeError(w, x, http.StatusRequestEntityTooLarge, "invalid_request", "request body is too large")
		return false
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "Content-Type must be application/json")
		return false
	}
	if err := json.Unmarshal(x.body, v); err != nil {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "request body is not valid JSON")
		return false
	}
	return true
}

func (e *Emulator) attestInit(w http.ResponseWriter, r *http.Request, x *exchange) {
	var req attest.InitRequest
	if !attestationPreamble(w, r, x, &req) {
		return
	}
	akName, err := attest.Name(req.AKPublic)
	if err != nil {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "ak_public is not a TPMT_PUBLIC")
		return
	}
	p := &pendingAttestation{akName: akName, expires: time.Now().Add(challengeTTL), challenge: make([]byte, 32)}
	_, _ = rand.Read(p.challenge)
	out := attest.InitResponse{Challenge: p.challenge, ExpiresIn: int64(challengeTTL / time.Second)}

	// An AK the allow-list does not name may still be trusted through the TPM's EK
	// certificate: then it must prove it shares the TPM with that EK (credential activation).
	if e.cfg.AttestationEKRoots != nil && len(req.EKCertificate) > 0 && !e.akAllowListed(akName) {
		ek, err := attest.VerifyEKCertificate(req.EKCertificate, e.cfg.AttestationEKRoots, time.Time{})
		if err != nil {
			writeError(w, x, http.StatusBadRequest, "attestation_failed", "untrusted_ak: "+err.Error())
			return
		}
		cred, secret, err := attest.MakeCredential(ek, req.AKPublic)
		if err != nil {
			writeError(w, x, http.StatusBadRequest, "attestation_failed", "untrusted_ak: "+err.Error())
			return
		}
		p.ekCert, p.secret, out.Credential = req.EKCertificate, secret, &cred
	}

	ctxID := make([]byte, 32)
	_, _ = rand.Read(ctxID)
	out.ServiceContext = base64.RawURLEncoding.EncodeToString(ctxID)
	if !e.att.put(out.ServiceContext, p) {
		writeError(w, x, http.StatusServiceUnavailable, "temporarily_unavailable", "too many attestations in progress")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) akAllowListed(akName []byte) bool {
	for _, pub := range e.cfg.AttestationTrustedAKs {
		if n, err := attest.Name(pub); err == nil && subtle.ConstantTimeCompare(n, akName) == 1 {
			return true
		}
	}
	return false
}

func (a *attestations) put(id string, p *pendingAttestation) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = make(map[string]*pendingAttestation)
	}
	now := time.Now()
	for k, v := range a.pending {
		if now.After(v.expires) {
			delete(a.pending, k)
		}
	}
	if len(a.pending) >= maxPendingAttests {
		return false
	}
	a.pending[id] = p
	return true
}

// take removes and returns the pending attestation: a challenge is good for one attempt.
func (a *attestations) take(id string) *pendingAttestation {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pending[id]
	delete(a.pending, id)
	if p == nil || time.Now().After(p.expires) {
		return nil
	}
	return p
}

func (e *Emulator) attestTPM(w http.ResponseWriter, r *http.Request, x *exchange) {
	var req attest.AttestRequest
	if !attestationPreamble(w, r, x, &req) {
		return
	}
	p := e.att.take(req.ServiceContext)
	if p == nil {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "service_context is unknown, used or expired; start again with init")
		return
	}
	if n, err := attest.Name(req.Evidence.AKPublic); err != nil || subtle.ConstantTimeCompare(n, p.akName) != 1 {
		writeError(w, x, http.StatusBadRequest, "attestation_failed", "the evidence is not from the attestation key the challenge was issued to")
		return
	}
	opts := attest.VerifyOptions{
		Challenge:  p.challenge,
		TrustedAKs: e.cfg.AttestationTrustedAKs,
		TrustAnyAK: e.cfg.AttestationTrustAnyAK,
	}
	if p.secret != nil {
		if subtle.ConstantTimeCompare(req.ActivationSecret, p.secret) != 1 {
			writeError(w, x, http.StatusBadRequest, "attestation_failed", "untrusted_ak: credential activation failed")
			return
		}
		if subtle.ConstantTimeCompare(req.Evidence.EKCertificate, p.ekCert) != 1 {
			writeError(w, x, http.StatusBadRequest, "attestation_failed", "untrusted_ak: the EK certificate changed since init")
			return
		}
		opts.EKRoots, opts.ActivatedAKName = e.cfg.AttestationEKRoots, p.akName
	}
	if len(req.PublicKey) > 0 {
		pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
		if err != nil {
			writeError(w, x, http.StatusBadRequest, "invalid_request", "public_key is not a DER SubjectPublicKeyInfo")
			return
		}
		opts.PublicKey = pub
	}
	res, err := attest.Verify(&req.Evidence, opts)
	if err != nil {
		writeError(w, x, http.StatusBadRequest, "attestation_failed", strings.TrimPrefix(err.Error(), "attest: "))
		return
	}
	tok, err := e.mintAttestationToken(res)
	if err != nil {
		writeError(w, x, http.StatusInternalServerError, "server_error", "signing the attestation token failed")
		return
	}
	e.log.Info("key attested", slog.String("ak_trust", string(res.Trust)))
	writeJSON(w, http.StatusOK, attest.AttestResponse{Token: tok})
}

func (e *Emulator) attestCerts(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, x, http.MethodGet)
		return
	}
	writeJSON(w, http.StatusOK, e.signingKeys())
}

// mintAttestationToken signs the attestation JWT: who vouched for the AK, and which key was
// attested (by SPKI thumbprint, and as MAA's policy sees a tpm_certify key object).
func (e *Emulator) mintAttestationToken(res *attest.Result) (string, error) {
	thumb, err := attest.KeyThumbprint(res.PublicKey)
	if err != nil {
		return "", err
	}
	now := time.Now().Truncate(time.Second)
	b64 := base64.RawURLEncoding.EncodeToString
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss":                       e.attestationURL(),
		"iat":                       now.Unix(),
		"nbf":                       now.Unix(),
		"exp":                       now.Add(e.cfg.AttestationTokenLifetime).Unix(),
		"jti":                       wire.NewGUID(),
		"x-ms-ver":                  "1.0",
		attest.ClaimAttestationType: "tpm",
		attest.ClaimKeyThumbprint:   thumb,
		attest.ClaimAKTrust:         string(res.Trust),
		attest.ClaimAKName:          b64(res.AKName),
		attest.ClaimTPMCertify: map[string]any{
			"name":        b64(res.KeyName),
			"name_alg":    res.NameAlg,
			"obj_attr":    res.Attributes,
			"auth_policy": b64(res.AuthPolicy),
		},
	})
	t.Header["kid"] = e.ca.kid
	t.Header["jku"] = e.attestationURL() + "/certs"
	return t.SignedString(e.ca.signingKey)
}

// checkAttestationToken is issuecredential's check when Config.RequireAttestation is set: the
// token must be one of this emulator's attestation tokens, unexpired, and attest the CSR's key.
// It returns the error description to answer with, or "" when the request may proceed.
func (e *Emulator) checkAttestationToken(tok string, csrKey any) string {
	if !e.cfg.RequireAttestation {
		return ""
	}
	if tok == "" {
		return "Attestation Token is missing / empty in the issue credential request"
	}
	claims, err := attest.VerifyToken(tok, &e.ca.signingKey.PublicKey, e.attestationURL(), time.Now())
	if err != nil {
		return "Attestation Token is not valid: " + strings.TrimPrefix(err.Error(), "attest: ")
	}
	thumb, err := attest.KeyThumbprint(csrKey)
	if err != nil || subtle.ConstantTimeCompare([]byte(thumb), []byte(claims.KeyThumbprint)) != 1 {
		return "Attestation Token attests a different key than the csr's"
	}
	return ""
}

package attest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/token"
)

// The attestation service protocol, modelled on Microsoft Azure Attestation's TPM protocol
// (reference/tpm-attestation.md §4.1: init → challenge → signed request → JWT report), reduced
// to what key attestation needs. Bodies are JSON; binary members are standard base64.
//
//  1. POST {endpoint}/attest/tpm/init   InitRequest  → InitResponse
//     The attester names its AK (and EK certificate). The service answers with a fresh
//     single-use challenge, an opaque service_context for step 2, and — when it trusts AKs
//     through EK certificates — a credential encrypted to the EK for the AK.
//  2. POST {endpoint}/attest/tpm        AttestRequest → AttestResponse
//     The attester sends TPM2_Certify evidence whose qualifying data is the challenge, the
//     attested key's SubjectPublicKeyInfo, and the activated credential's secret. The service
//     runs Verify and answers with an attestation token: a JWT naming the key by
//     ClaimKeyThumbprint, with exp.
//
// Errors are {"error": code, "error_description": text} with a 4xx or 5xx status.
const (
	InitPath   = "/attest/tpm/init"
	AttestPath = "/attest/tpm"
)

// InitRequest opens an attestation.
type InitRequest struct {
	AKPublic      []byte `json:"ak_public"`                // TPMT_PUBLIC
	EKCertificate []byte `json:"ek_certificate,omitempty"` // DER
}

// InitResponse is the service's challenge.
type InitResponse struct {
	Challenge      []byte      `json:"challenge"`            // the qualifying data for TPM2_Certify
	ServiceContext string      `json:"service_context"`      // opaque, echoed in AttestRequest
	Credential     *Credential `json:"credential,omitempty"` // activate it and send the secret back
	ExpiresIn      int64       `json:"expires_in"`           // seconds the challenge stays valid
}

// AttestRequest carries the evidence.
type AttestRequest struct {
	ServiceContext   string   `json:"service_context"`
	Evidence         Evidence `json:"evidence"`
	PublicKey        []byte   `json:"public_key"`                  // DER SubjectPublicKeyInfo of the certified key
	ActivationSecret []byte   `json:"activation_secret,omitempty"` // TPM2_ActivateCredential's output
}

// AttestResponse is the attestation token.
type AttestResponse struct {
	Token string `json:"token"`
}

// Challenge bounds: a TPM2B_DATA holds at most sizeof(TPMT_HA) — 34 bytes on a SHA-256-only TPM.
const (
	minChallenge = 16
	maxChallenge = 32
	maxBody      = 64 << 10
)

const sourceAttestation = "attestation"

// Client obtains attestation tokens. The zero value is usable.
type Client struct {
	// HTTP is the client for the service; nil means http.DefaultClient. It must trust the
	// service's certificate.
	HTTP *http.Client
}

// Token attests key to the service at endpoint (an https URL, IMDSv2's attestationEndpoint) and
// returns the attestation token and its expiry (the token's exp claim). Every failure is a
// *token.Error with code attestation_failed (canceled when ctx ends), so a caller can fail
// closed: there is no partial result.
func (c *Client) Token(ctx context.Context, endpoint string, key Attestable) (string, time.Time, error) {
	if key == nil {
		return "", time.Time{}, attErr(nil, 0, "no key to attest")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", time.Time{}, attErr(nil, 0, "attestation endpoint is not an https URL")
	}
	base := strings.TrimRight(endpoint, "/")
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", time.Time{}, attErr(err, 0, "encoding the key's public key")
	}

	id, err := key.AttestationIdentity(ctx)
	if err != nil {
		return "", time.Time{}, attErr(err, 0, "reading the attestation key")
	}
	var init InitResponse
	if err := c.post(ctx, base+InitPath, "challenge request", InitRequest{AKPublic: id.AKPublic, EKCertificate: id.EKCertificate}, &init); err != nil {
		return "", time.Time{}, err
	}
	if n := len(init.Challenge); n < minChallenge || n > maxChallenge || init.ServiceContext == "" {
		return "", time.Time{}, attErr(nil, 0, "the service's challenge is malformed")
	}

	req := AttestRequest{ServiceContext: init.ServiceContext, PublicKey: spki}
	if init.Credential != nil {
		act, ok := key.(CredentialActivator)
		if !ok {
			return "", time.Time{}, attErr(nil, 0, "the service asked for credential activation, which this key cannot do")
		}
		if req.ActivationSecret, err = act.ActivateCredential(ctx, *init.Credential); err != nil {
			return "", time.Time{}, attErr(err, 0, "activating the service's credential")
		}
	}
	ev, err := key.Certify(ctx, init.Challenge)
	if err != nil {
		return "", time.Time{}, attErr(err, 0, "certifying the key")
	}
	req.Evidence = *ev

	var out AttestResponse
	if err := c.post(ctx, base+AttestPath, "evidence submission", req, &out); err != nil {
		return "", time.Time{}, err
	}
	exp, err := tokenExpiry(out.Token)
	if err != nil {
		return "", time.Time{}, attErr(err, 0, "the service's attestation token is malformed")
	}
	return out.Token, exp, nil
}

// post sends one JSON request and decodes the JSON answer into out. It goes through
// internal/wire like every other HTTP call of the library — one attempt (attestation answers
// are single-use: a challenge must not be fetched twice), the body read under the size limit
// before the attempt's context ends — and a refusal becomes an error through wire.StatusError,
// which keeps only the server's error code, a capped and sanitised description and its
// correlation id, never the body.
func (c *Client) post(ctx context.Context, u, what string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return attErr(err, 0, "encoding request")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	w := &wire.Client{HTTP: hc, MaxBody: maxBody}
	resp, err := w.Do(ctx, wire.NoRetry, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		return req, nil
	})
	if err != nil {
		var te *token.Error
		if errors.As(err, &te) && te.Code == token.CodeResponseTooLarge {
			return &token.Error{Code: token.CodeResponseTooLarge, Source: sourceAttestation, Status: te.Status,
				Message: "attestation: the attestation service's answer to the " + what + " exceeds the size limit"}
		}
		return attErr(err, 0, "calling the attestation service (%s)", what)
	}
	if resp.Status != http.StatusOK {
		return wire.StatusError(token.CodeAttestationFailed, sourceAttestation, "attestation: the "+what, resp)
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return attErr(nil, resp.Status, "the attestation service's answer to the %s is not JSON", what)
	}
	return nil
}

func attErr(cause error, status int, format string, args ...any) *token.Error {
	code := token.CodeAttestationFailed
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		code = token.CodeCanceled
	}
	return &token.Error{Code: code, Source: sourceAttestation, Status: status,
		Message: "attestation: " + fmt.Sprintf(format, args...), Err: cause}
}

// tokenExpiry reads exp from a JWT without verifying it: the client only needs to know how long
// to reuse the token; its recipient verifies it.
func tokenExpiry(jwt string) (time.Time, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a JWS compact serialization")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, errors.New("payload is not base64url")
	}
	var c struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Exp == nil {
		return time.Time{}, errors.New("no exp claim")
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, errors.New("exp is not a time")
	}
	return time.Unix(int64(f), 0), nil
}

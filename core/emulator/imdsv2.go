package emulator

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/keys"
)

// IMDSv2 (reference/msal-dotnet-mtlspop.md §1.2, §1.6): getplatformmetadata and issuecredential,
// both with cred-api-version=2.0 and the v2 selector spellings (mi_res_id, not msi_res_id).

// attestationURL is where the emulator's attestation service lives, on the login host (attest.go).
func (e *Emulator) attestationURL() string { return e.login.base + "/attestation" }

// v2Preamble runs the checks both IMDSv2 calls share and returns the selected identity; ok is
// false when it has already answered.
func (e *Emulator) v2Preamble(w http.ResponseWriter, r *http.Request, x *exchange, method string) (id Identity, userAssigned, ok bool) {
	if e.cfg.DisableIMDSv2 {
		writeError(w, x, http.StatusNotFound, "not_found", "IMDSv2 is not available on this host")
		return Identity{}, false, false
	}
	if r.Method != method {
		methodNotAllowed(w, x, method)
		return Identity{}, false, false
	}
	if !hasMetadataHeader(r) {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return Identity{}, false, false
	}
	q := r.URL.Query()
	if desc := checkVersion(q, wire.CredAPIVersionParam, wire.CredAPIVersion); desc != "" {
		writeError(w, x, http.StatusBadRequest, "invalid_request", desc)
		return Identity{}, false, false
	}
	id, userAssigned, desc := e.selectIdentity(q, wire.IMDSv2ResourceIDParam, wire.IMDSv1ResourceIDParam)
	if desc != "" {
		writeError(w, x, http.StatusBadRequest, "invalid_request", desc)
		return Identity{}, false, false
	}
	return id, userAssigned, true
}

func (e *Emulator) platformMetadata(w http.ResponseWriter, r *http.Request, x *exchange) {
	id, _, ok := e.v2Preamble(w, r, x, http.MethodGet)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, wire.PlatformMetadata{
		CUID:                e.cfg.CUID,
		ClientID:            id.ClientID,
		TenantID:            e.cfg.TenantID,
		AttestationEndpoint: e.attestationURL(),
	})
}

func (e *Emulator) issueCredential(w http.ResponseWriter, r *http.Request, x *exchange) {
	id, userAssigned, ok := e.v2Preamble(w, r, x, http.MethodPost)
	if !ok {
		return
	}
	if x.tooLarge {
		writeError(w, x, http.StatusRequestEntityTooLarge, "invalid_request", "request body is too large")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "Content-Type must be application/json")
		return
	}
	var req wire.IssueCredentialRequest
	if err := json.Unmarshal(x.body, &req); err != nil {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "request body is not valid JSON")
		return
	}
	if req.CSR == "" {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "csr is missing / empty in the issue credential request")
		return
	}
	csr, err := keys.ParseIMDSCSR(req.CSR)
	if err != nil {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "invalid csr: "+err.Error())
		return
	}
	switch {
	case !strings.EqualFold(csr.ClientID, id.ClientID):
		writeError(w, x, http.StatusBadRequest, "invalid_request", "csr subject CN does not match the identity's client id")
		return
	case !strings.EqualFold(csr.TenantID, e.cfg.TenantID):
		writeError(w, x, http.StatusBadRequest, "invalid_request", "csr subject DC does not match the tenant id")
		return
	case csr.CUID != e.cfg.CUID:
		writeError(w, x, http.StatusBadRequest, "invalid_request", "csr cuId does not match this compute unit")
		return
	}
	if desc := e.checkAttestationToken(req.AttestationToken, csr.PublicKey); desc != "" { // attest.go
		writeError(w, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	cert, err := e.ca.issueBinding(id.ClientID, csr.PublicKey)
	if err != nil {
		writeError(w, x, http.StatusInternalServerError, "server_error", "certificate issuance failed")
		return
	}
	identityType := "SystemAssigned"
	if userAssigned {
		identityType = "UserAssigned"
	}
	e.log.Info("binding certificate issued",
		slog.String("client_id", id.ClientID),
		slog.String("serial", cert.SerialNumber.Text(16)),
		slog.Time("not_after", cert.NotAfter),
		slog.Bool("attestation_token_present", req.AttestationToken != ""))
	writeJSON(w, http.StatusOK, wire.IssuedCredential{
		ClientID:                   id.ClientID,
		TenantID:                   e.cfg.TenantID,
		Certificate:                base64.StdEncoding.EncodeToString(cert.Raw),
		IdentityType:               identityType,
		MTLSAuthenticationEndpoint: e.MTLSAuthURL(),
	})
}

package emulator

import (
	"net/http"

	"github.com/mtlspop/mtlspop/core/internal/wire"
)

// App Service (reference/msal-dotnet-mtlspop.md §2.2): GET IDENTITY_ENDPOINT with
// api-version=2019-08-01, resource=, the secret in X-IDENTITY-HEADER, and at most one of
// client_id, mi_res_id (not msi_res_id) or object_id.
const (
	appServicePath       = "/msi/token"
	appServiceAPIVersion = "2019-08-01"
)

// appServiceResponse is App Service's token answer: expires_on as a string of epoch seconds.
type appServiceResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

func (e *Emulator) appServiceToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, x, http.MethodGet)
		return
	}
	secret := r.Header.Get("X-IDENTITY-HEADER")
	switch {
	case secret == "":
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", "Required header X-IDENTITY-HEADER not specified")
		return
	case !secretMatches(secret, e.src.secret):
		writeMIError(w, r, x, http.StatusUnauthorized, "unauthorized_client", "X-IDENTITY-HEADER does not match IDENTITY_HEADER")
		return
	}
	q := r.URL.Query()
	if desc := checkVersions(q, "api-version", appServiceAPIVersion); desc != "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	resource := singleResource(q)
	if resource == "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", "Required parameter resource not specified")
		return
	}
	id, _, desc := e.selectIdentity(q, wire.IMDSv2ResourceIDParam, wire.IMDSv1ResourceIDParam)
	if desc != "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	m, err := e.mint(grant{aud: resource, id: id})
	if err != nil {
		writeMIError(w, r, x, http.StatusInternalServerError, "server_error", "token signing failed")
		return
	}
	writeJSON(w, http.StatusOK, appServiceResponse{AccessToken: m.token, ExpiresOn: epoch(m.expires),
		Resource: resource, TokenType: "Bearer", ClientID: id.ClientID})
}

package emulator

import (
	"net/http"
	"strings"
)

// Azure Machine Learning (reference/msal-dotnet-mtlspop.md §2.2): GET MSI_ENDPOINT with the 2017
// API: api-version=2017-09-01, resource=, the secret in "secret", and the identity as "clientid"
// (no underscore; the system-assigned identity's is DEFAULT_IDENTITY_CLIENT_ID). The other
// selector spellings are refused, so a client that sends them is caught.
const (
	machineLearningPath       = "/MSI/auth"
	machineLearningAPIVersion = "2017-09-01"
)

// machineLearningResponse is the 2017 API's answer: numbers as strings.
type machineLearningResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

func (e *Emulator) machineLearningToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, x, http.MethodGet)
		return
	}
	secret := r.Header.Get("secret")
	switch {
	case secret == "":
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", "Required header secret not specified")
		return
	case !secretMatches(secret, e.src.secret):
		writeMIError(w, r, x, http.StatusUnauthorized, "unauthorized_client", "secret does not match MSI_SECRET")
		return
	}
	q := r.URL.Query()
	if desc := checkVersions(q, "api-version", machineLearningAPIVersion); desc != "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	if desc := refuseParams(q, "client_id", "mi_res_id", "msi_res_id", "object_id", "principalId"); desc != "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", desc+"; the 2017 API names an identity by clientid")
		return
	}
	resource := singleResource(q)
	if resource == "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", "Required parameter resource not specified")
		return
	}
	id := e.cfg.SystemAssigned
	if v, ok := q["clientid"]; ok {
		var found bool
		if len(v) != 1 || strings.TrimSpace(v[0]) == "" {
			found = false
		} else {
			id, found = e.identityByClientID(v[0])
		}
		if !found {
			writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", "Identity not found")
			return
		}
	}
	m, err := e.mint(grant{aud: resource, id: id})
	if err != nil {
		writeMIError(w, r, x, http.StatusInternalServerError, "server_error", "token signing failed")
		return
	}
	writeJSON(w, http.StatusOK, machineLearningResponse{AccessToken: m.token, ExpiresOn: epoch(m.expires),
		Resource: resource, TokenType: "Bearer", ClientID: id.ClientID})
}

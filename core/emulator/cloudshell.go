package emulator

import (
	"net/http"
	"strconv"
)

// Cloud Shell (reference/msal-dotnet-mtlspop.md §2.2): POST MSI_ENDPOINT with "Metadata: true" and
// a form body resource=<resource>; no api-version, and no user-assigned identities. Errors are
// nested: {"error":{"code","message"}}.
const cloudShellPath = "/oauth2/token"

// cloudShellResponse is Cloud Shell's answer (numbers as strings).
type cloudShellResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
}

func (e *Emulator) cloudShellToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeNestedError(w, r, x, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed; use POST")
		return
	}
	if !hasMetadataHeader(r) {
		writeNestedError(w, r, x, http.StatusBadRequest, "BadRequest", "Required metadata header not specified")
		return
	}
	if !x.isForm || x.formErr != nil {
		writeNestedError(w, r, x, http.StatusBadRequest, "BadRequest", "the body must be application/x-www-form-urlencoded")
		return
	}
	for _, v := range []map[string][]string{r.URL.Query(), x.form} {
		if desc := refuseParams(v, "client_id", "clientid", "mi_res_id", "msi_res_id", "object_id", "principalId"); desc != "" {
			writeNestedError(w, r, x, http.StatusBadRequest, "BadRequest", desc+"; Cloud Shell has no user-assigned identities")
			return
		}
	}
	resource := singleResource(x.form)
	if resource == "" {
		writeNestedError(w, r, x, http.StatusBadRequest, "BadRequest", "Required form field resource not specified")
		return
	}
	id := e.cfg.SystemAssigned
	m, err := e.mint(grant{aud: resource, id: id})
	if err != nil {
		writeNestedError(w, r, x, http.StatusInternalServerError, "InternalServerError", "token signing failed")
		return
	}
	writeJSON(w, http.StatusOK, cloudShellResponse{AccessToken: m.token, ExpiresIn: strconv.FormatInt(expiresIn(m.expires), 10),
		ExpiresOn: epoch(m.expires), NotBefore: epoch(m.issued), Resource: resource, TokenType: "Bearer"})
}

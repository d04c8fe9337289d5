package emulator

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mtlspop/mtlspop/core/internal/wire"
)

// IMDS v1 (reference/msal-dotnet-mtlspop.md §2.2): GET /metadata/identity/oauth2/token with
// api-version=2018-02-01, resource=, and at most one of client_id, msi_res_id, object_id.

// imdsHandler routes the IMDS host: v1 token, and the two IMDSv2 calls.
func (e *Emulator) imdsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(wire.IMDSTokenPath, e.endpoint(EndpointIMDSToken, e.imdsToken))
	mux.Handle(wire.PlatformMetadataPath, e.endpoint(EndpointPlatformMetadata, e.platformMetadata))
	mux.Handle(wire.IssueCredentialPath, e.endpoint(EndpointIssueCredential, e.issueCredential))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", IMDSServerHeader)
		writeJSON(w, http.StatusNotFound, oauthError{Error: "not_found", Description: "no such IMDS endpoint"})
	})
	return mux
}

// imdsV1Response is the IMDS token response. IMDS sends every number as a string.
type imdsV1Response struct {
	AccessToken  string `json:"access_token"`
	ClientID     string `json:"client_id"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	ExtExpiresIn string `json:"ext_expires_in"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
}

func (e *Emulator) imdsToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, x, http.MethodGet)
		return
	}
	q := r.URL.Query()
	if !hasMetadataHeader(r) {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	if desc := checkVersion(q, "api-version", wire.IMDSAPIVersion); desc != "" {
		writeError(w, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	id, _, desc := e.selectIdentity(q, wire.IMDSv1ResourceIDParam, wire.IMDSv2ResourceIDParam)
	if desc != "" {
		writeError(w, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	resource := q.Get("resource")
	if resource == "" || len(q["resource"]) > 1 {
		writeError(w, x, http.StatusBadRequest, "invalid_request", "Required audience parameter not specified")
		return
	}
	m, err := e.mint(grant{aud: resource, id: id})
	if err != nil {
		writeError(w, x, http.StatusInternalServerError, "server_error", "token signing failed")
		return
	}
	in := strconv.FormatInt(expiresIn(m.expires), 10)
	writeJSON(w, http.StatusOK, imdsV1Response{
		AccessToken:  m.token,
		ClientID:     id.ClientID,
		ExpiresIn:    in,
		ExpiresOn:    strconv.FormatInt(m.expires.Unix(), 10),
		ExtExpiresIn: in,
		NotBefore:    strconv.FormatInt(m.issued.Unix(), 10),
		Resource:     resource,
		TokenType:    "Bearer",
	})
}

func hasMetadataHeader(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Metadata")), "true")
}

// checkVersion returns an error description unless the query carries exactly name=want.
func checkVersion(q url.Values, name, want string) string {
	switch v := q[name]; {
	case len(v) == 0 || v[0] == "":
		return "Required parameter " + name + " not specified"
	case len(v) > 1 || v[0] != want:
		return name + " " + strconv.Quote(v[0]) + " is not supported; use " + want
	}
	return ""
}

// selectIdentity resolves the identity a request names. No selector means the system-assigned
// identity; client_id, object_id or the resource-id parameter (msi_res_id on IMDS v1, mi_res_id
// on IMDSv2; wrongResourceSel is the other spelling, refused so that a client using the wrong
// one is caught) name a user-assigned identity. It returns an error description on failure.
func (e *Emulator) selectIdentity(q url.Values, resourceSel, wrongResourceSel string) (id Identity, userAssigned bool, desc string) {
	if _, ok := q[wrongResourceSel]; ok {
		return Identity{}, false, wrongResourceSel + " is not supported by this endpoint; use " + resourceSel
	}
	var name, value string
	for _, n := range []string{"client_id", resourceSel, "object_id"} {
		vs, ok := q[n]
		if !ok {
			continue
		}
		if name != "" || len(vs) > 1 {
			return Identity{}, false, "Only one of client_id, " + resourceSel + " or object_id may be specified"
		}
		name, value = n, vs[0]
	}
	if name == "" {
		return e.cfg.SystemAssigned, false, ""
	}
	for _, u := range e.cfg.UserAssigned {
		var have string
		switch name {
		case "client_id":
			have = u.ClientID
		case "object_id":
			have = u.ObjectID
		default:
			have = u.ResourceID
		}
		if have != "" && strings.EqualFold(have, value) {
			return u, true, ""
		}
	}
	return Identity{}, false, "Identity not found"
}

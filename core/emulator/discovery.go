package emulator

import (
	"net/http"
	"strings"
)

// The login host: the tenant's OpenID configuration and its token-signing keys. No client
// certificate is asked for.
const (
	openIDConfigPattern = "/{tenant}/v2.0/.well-known/openid-configuration"
	jwksPattern         = "/{tenant}/discovery/v2.0/keys"
)

func (e *Emulator) loginHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(openIDConfigPattern, e.endpoint(EndpointOpenIDConfiguration, e.openIDConfiguration))
	mux.Handle(jwksPattern, e.endpoint(EndpointJWKS, e.jwks))
	mux.Handle(stsTokenPattern, e.endpoint(EndpointAuthorityToken, e.loginToken)) // confidential clients
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, oauthError{Error: "not_found", Description: "no such endpoint on the login host"})
	})
	return mux
}

type mtlsAliases struct {
	TokenEndpoint string `json:"token_endpoint"`
}

type openIDConfiguration struct {
	Issuer                                 string      `json:"issuer"`
	JWKSURI                                string      `json:"jwks_uri"`
	TokenEndpoint                          string      `json:"token_endpoint"`
	MTLSEndpointAliases                    mtlsAliases `json:"mtls_endpoint_aliases"`
	TLSClientCertificateBoundAccessTokens  bool        `json:"tls_client_certificate_bound_access_tokens"`
	TokenEndpointAuthMethodsSupported      []string    `json:"token_endpoint_auth_methods_supported"`
	GrantTypesSupported                    []string    `json:"grant_types_supported"`
	IDTokenSigningAlgValuesSupported       []string    `json:"id_token_signing_alg_values_supported"`
	SubjectTypesSupported                  []string    `json:"subject_types_supported"`
	ResponseTypesSupported                 []string    `json:"response_types_supported"`
	TenantRegionScope                      *string     `json:"tenant_region_scope"`
	CloudInstanceName                      string      `json:"cloud_instance_name"`
	RequestURIParameterSupported           bool        `json:"request_uri_parameter_supported"`
	AuthorizationResponseIssParamSupported bool        `json:"authorization_response_iss_parameter_supported"`
}

// loginPreamble checks the method and the tenant of a login-host request; ok is false when it
// has already answered.
func (e *Emulator) loginPreamble(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, x, http.MethodGet)
		return false
	}
	if tenant := r.PathValue("tenant"); !strings.EqualFold(tenant, e.cfg.TenantID) {
		writeError(w, x, http.StatusBadRequest, "invalid_tenant", "tenant "+short(tenant)+" not found")
		return false
	}
	return true
}

func (e *Emulator) openIDConfiguration(w http.ResponseWriter, r *http.Request, x *exchange) {
	if !e.loginPreamble(w, r, x) {
		return
	}
	writeJSON(w, http.StatusOK, openIDConfiguration{
		Issuer:                                e.Issuer(),
		JWKSURI:                               e.JWKSURL(),
		TokenEndpoint:                         e.AuthorityURL() + "/oauth2/v2.0/token",
		MTLSEndpointAliases:                   mtlsAliases{TokenEndpoint: e.MTLSAuthURL() + "/" + e.cfg.TenantID + "/oauth2/v2.0/token"},
		TLSClientCertificateBoundAccessTokens: true,
		TokenEndpointAuthMethodsSupported:     []string{"tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"},
		GrantTypesSupported:                   []string{"client_credentials"},
		IDTokenSigningAlgValuesSupported:      []string{"RS256"},
		SubjectTypesSupported:                 []string{"pairwise"},
		ResponseTypesSupported:                []string{"code", "id_token", "code id_token", "id_token token"},
		CloudInstanceName:                     "mtlspop-emulator",
	})
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// signingKeys is the JWKS of the token-signing key, served by the login host and, since
// attestation tokens are signed with the same key, by the attestation service.
func (e *Emulator) signingKeys() jwkSet {
	return jwkSet{Keys: []jwk{rsaJWK(e.ca.kid, &e.ca.signingKey.PublicKey)}}
}

func (e *Emulator) jwks(w http.ResponseWriter, r *http.Request, x *exchange) {
	if !e.loginPreamble(w, r, x) {
		return
	}
	writeJSON(w, http.StatusOK, e.signingKeys())
}

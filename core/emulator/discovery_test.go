package emulator_test

import (
	"net/http"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestOpenIDConfiguration(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	r := do(t, tlsClient(e, nil), newRequest(t, http.MethodGet, e.OpenIDConfigurationURL(), nil, nil))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	aliases, _ := m["mtls_endpoint_aliases"].(map[string]any)
	if m["issuer"] != e.Issuer() || m["jwks_uri"] != e.JWKSURL() || m["tls_client_certificate_bound_access_tokens"] != true ||
		aliases == nil || aliases["token_endpoint"] != e.MTLSAuthURL()+"/"+e.TenantID()+"/oauth2/v2.0/token" ||
		m["token_endpoint"] != e.AuthorityURL()+"/oauth2/v2.0/token" {
		t.Errorf("openid-configuration = %s", r.body)
	}
	if e.Issuer() != e.AuthorityURL()+"/v2.0" {
		t.Errorf("Issuer = %s", e.Issuer())
	}
}

func TestJWKSVerifiesIssuedTokens(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	keySet := fetchJWKS(t, e)
	if len(keySet) != 1 {
		t.Fatalf("JWKS has %d keys", len(keySet))
	}
	for kid, k := range keySet {
		if k.N.BitLen() != 2048 || k.E != 65537 {
			t.Errorf("key %s: %d bits, e=%d", kid, k.N.BitLen(), k.E)
		}
	}
	tok, err := e.MintToken("api://x", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	verifyToken(t, e, tok, "api://x")
	// Tokens of another emulator do not verify with these keys.
	other := start(t, emulator.Config{})
	otherTok, _ := other.MintToken("api://x", nil, 0)
	if k, ok := keySet[kidOf(t, otherTok)]; ok {
		t.Fatalf("another emulator's kid is in this JWKS: %v", k)
	}
}

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	base := e.AuthorityURL()[:len(e.AuthorityURL())-len(e.TenantID())]
	for _, u := range []string{
		base + "other-tenant/discovery/v2.0/keys",
		base + "other-tenant/v2.0/.well-known/openid-configuration",
	} {
		r := do(t, tlsClient(e, nil), newRequest(t, http.MethodGet, u, nil, nil))
		wantError(t, r, http.StatusBadRequest, "invalid_tenant", `tenant "other-tenant" not found`)
	}
	r := do(t, tlsClient(e, nil), newRequest(t, http.MethodPost, e.JWKSURL(), nil, nil))
	wantError(t, r, http.StatusMethodNotAllowed, "invalid_request", "")
	r = do(t, tlsClient(e, nil), newRequest(t, http.MethodGet, base+"nothing", nil, nil))
	wantError(t, r, http.StatusNotFound, "not_found", "")
}

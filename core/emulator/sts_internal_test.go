package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The token endpoint's managed-identity branch checks revocation itself: a revoked binding
// certificate that the TLS layer admitted anyway (because an app registered it) gets no token.
// The request is served in process with a fabricated TLS state, since no registration made
// before Start can name a certificate of a CA that Start creates.
func TestManagedIdentityTokenRefusesRevokedBinding(t *testing.T) {
	t.Parallel()
	e, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.issueBinding(DefaultSystemAssignedClientID, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	post := func() *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultSystemAssignedClientID},
			"scope": {DefaultResourceID + "/.default"}, "token_type": {"mtls_pop"}}
		r := httptest.NewRequest(http.MethodPost, e.MTLSAuthURL()+"/"+e.TenantID()+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
		w := httptest.NewRecorder()
		e.stsHandler().ServeHTTP(w, r)
		return w
	}
	if w := post(); w.Code != http.StatusOK {
		t.Fatalf("before revocation: %d %s", w.Code, w.Body)
	}
	e.RevokeBindingCertificates()
	w := post()
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"invalid_client"`) ||
		!strings.Contains(w.Body.String(), "the client certificate has been revoked") {
		t.Fatalf("after revocation: %d %s", w.Code, w.Body)
	}
}

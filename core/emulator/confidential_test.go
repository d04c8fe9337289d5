package emulator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/token"
)

const (
	jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	jwtPoP    = "urn:ietf:params:oauth:client-assertion-type:jwt-pop"
)

// postLogin posts form to the classic token endpoint on the login host (no client certificate).
func postLogin(t *testing.T, e *emulator.Emulator, form url.Values) response {
	t.Helper()
	req := newRequest(t, http.MethodPost, e.AuthorityURL()+"/oauth2/v2.0/token", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	return do(t, tlsClient(e, nil), req)
}

// appAssertion signs a client assertion with the default app's certificate.
func appAssertion(t *testing.T, e *emulator.Emulator, claims jwt.MapClaims) string {
	t.Helper()
	app := e.App()
	tok := jwt.NewWithClaims(jwt.SigningMethodPS256, claims)
	tok.Header["x5t#S256"] = token.Thumbprint(app.Certificate.Leaf)
	s, err := tok.SignedString(app.Certificate.PrivateKey.(*rsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConfidentialClientAuthentication(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	app := e.App()
	scope := graphResource + "/.default"
	form := func(kv ...string) url.Values {
		f := tokenForm(app.ClientID, scope, "")
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	good := jwt.MapClaims{"aud": e.AuthorityURL() + "/oauth2/v2.0/token", "iss": app.ClientID, "sub": app.ClientID,
		"exp": time.Now().Add(5 * time.Minute).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	if r := postLogin(t, e, form("client_secret", app.Secret)); r.status != http.StatusOK {
		t.Fatalf("secret: %d %s", r.status, r.body)
	}
	if r := postLogin(t, e, form("client_assertion_type", jwtBearer, "client_assertion", appAssertion(t, e, good))); r.status != http.StatusOK {
		t.Fatalf("client assertion: %d %s", r.status, r.body)
	}
	mi, _ := e.MintToken(emulator.TokenExchangeAudience, nil, time.Hour) // a Bearer leg 1 (FIC)
	if r := postLogin(t, e, form("client_assertion_type", jwtBearer, "client_assertion", mi)); r.status != http.StatusOK {
		t.Fatalf("federated credential: %d %s", r.status, r.body)
	}
	other, _ := binding(t, e, v2Query())
	bound, _ := e.MintToken(emulator.TokenExchangeAudience, other.Leaf, time.Hour)
	for name, tc := range map[string]struct {
		form   url.Values
		status int
		code   string
		desc   string
	}{
		"wrong secret":       {form("client_secret", "nope"), 401, "invalid_client", "invalid client secret"},
		"no credential":      {form(), 401, "invalid_client", "no client credential"},
		"expired assertion":  {form("client_assertion_type", jwtBearer, "client_assertion", appAssertion(t, e, with("exp", time.Now().Add(-time.Hour).Unix()))), 401, "invalid_client", "expired"},
		"wrong audience":     {form("client_assertion_type", jwtBearer, "client_assertion", appAssertion(t, e, with("aud", "https://elsewhere/"))), 401, "invalid_client", "wrong audience"},
		"wrong issuer":       {form("client_assertion_type", jwtBearer, "client_assertion", appAssertion(t, e, with("iss", "someone"))), 401, "invalid_client", "iss and sub"},
		"garbage assertion":  {form("client_assertion_type", jwtBearer, "client_assertion", "a.b.c"), 401, "invalid_client", "federated credential is not valid"},
		"jwt-pop on login":   {form("client_assertion_type", jwtPoP, "client_assertion", mi), 400, "invalid_request", "needs the mTLS endpoint"},
		"bound FIC, no mTLS": {form("client_assertion_type", jwtBearer, "client_assertion", bound), 400, "invalid_request", "bound to a certificate"},
		"unknown type":       {form("client_assertion_type", "urn:x", "client_assertion", mi), 400, "invalid_request", "not supported"},
		"pop on login":       {form("client_secret", app.Secret, "token_type", "mtls_pop"), 400, "invalid_request", "mTLS endpoint"},
		"unknown app":        {tokenForm("nobody", scope, ""), 401, "invalid_client", "not found"},
	} {
		r := postLogin(t, e, tc.form)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.code) || !strings.Contains(string(r.body), tc.desc) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

func TestConfidentialClientOverMTLS(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	app := e.App()
	scope := graphResource + "/.default"
	// The app's registered certificate authenticates at the TLS layer.
	r := postToken(t, e, app.Certificate, e.TenantID(), tokenForm(app.ClientID, scope, "mtls_pop"))
	if r.status != http.StatusOK {
		t.Fatalf("app certificate: %d %s", r.status, r.body)
	}
	if got := verifyToken(t, e, r.json(t)["access_token"].(string), graphResource)["cnf"]; got == nil {
		t.Fatal("PoP token without cnf")
	}
	// A bound leg-1 token as a jwt-pop assertion, over mTLS with its certificate.
	mi, _ := binding(t, e, v2Query())
	leg1, _ := e.MintToken(emulator.TokenExchangeAudience, mi.Leaf, time.Hour)
	f := tokenForm(app.ClientID, scope, "mtls_pop")
	f.Set("client_assertion_type", jwtPoP)
	f.Set("client_assertion", leg1)
	if r := postToken(t, e, mi, e.TenantID(), f); r.status != http.StatusOK {
		t.Fatalf("jwt-pop: %d %s", r.status, r.body)
	}
	// ...but not over another certificate.
	another, _ := binding(t, e, v2Query())
	if r := postToken(t, e, another, e.TenantID(), f); r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "different certificate") {
		t.Fatalf("jwt-pop over the wrong certificate: %d %s", r.status, r.body)
	}
	// A managed identity's binding certificate cannot act as the app without an assertion.
	if r := postToken(t, e, mi, e.TenantID(), tokenForm(app.ClientID, scope, "")); r.status != http.StatusUnauthorized {
		t.Fatalf("binding certificate as app credential: %d %s", r.status, r.body)
	}
}

// An app may register an EC certificate and authenticate with ES256 client assertions it signs.
func TestConfidentialClientES256Assertion(t *testing.T) {
	t.Parallel()
	const appID = "6b1f0c3e-8a2d-4f57-b9e1-0c4d2a7f3e58"
	ecCert := selfSignedClientCert(t, "es256 app") // P-256
	e := start(t, emulator.Config{Apps: []emulator.App{{ClientID: appID, ObjectID: "es256-object", Certificates: []*x509.Certificate{ecCert.Leaf}}}})
	claims := jwt.MapClaims{"aud": e.AuthorityURL() + "/oauth2/v2.0/token", "iss": appID, "sub": appID,
		"exp": time.Now().Add(5 * time.Minute).Unix()}
	sign := func(key *ecdsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
		tok.Header["x5t#S256"] = token.Thumbprint(ecCert.Leaf)
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	form := func(assertion string) url.Values {
		f := tokenForm(appID, graphResource+"/.default", "")
		f.Set("client_assertion_type", jwtBearer)
		f.Set("client_assertion", assertion)
		return f
	}

	r := postLogin(t, e, form(sign(ecCert.PrivateKey.(*ecdsa.PrivateKey))))
	if r.status != http.StatusOK {
		t.Fatalf("ES256 assertion: %d %s", r.status, r.body)
	}
	if c := verifyToken(t, e, r.json(t)["access_token"].(string), graphResource); c["azp"] != appID || c["sub"] != "es256-object" {
		t.Errorf("claims = %v", c)
	}

	// Same header and claims, signed by a key that is not the certificate's.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r = postLogin(t, e, form(sign(other)))
	wantError(t, r, http.StatusUnauthorized, "invalid_client", "")
	if d, _ := r.json(t)["error_description"].(string); !strings.Contains(d, `"bad signature"`) {
		t.Errorf("error_description = %q", d)
	}
	// A valid signature with one bit changed.
	good := sign(ecCert.PrivateKey.(*ecdsa.PrivateKey))
	signed, sig := good[:strings.LastIndexByte(good, '.')], good[strings.LastIndexByte(good, '.')+1:]
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	r = postLogin(t, e, form(signed+"."+base64.RawURLEncoding.EncodeToString(raw)))
	wantError(t, r, http.StatusUnauthorized, "invalid_client", "")
	if d, _ := r.json(t)["error_description"].(string); !strings.Contains(d, `"bad signature"`) {
		t.Errorf("tampered signature: error_description = %q", d)
	}

	// The same EC certificate also authenticates the app at the TLS layer of the mTLS host.
	if r := postToken(t, e, ecCert, e.TenantID(), tokenForm(appID, graphResource+"/.default", "mtls_pop")); r.status != http.StatusOK {
		t.Fatalf("EC certificate over mTLS: %d %s", r.status, r.body)
	}
}

// A federated credential can only name this emulator as its issuer: the emulator has no keys to
// verify anyone else's tokens, so Start refuses a foreign issuer instead of never matching.
func TestFederatedCredentialForeignIssuer(t *testing.T) {
	t.Parallel()
	e, err := emulator.Start(emulator.Config{Apps: []emulator.App{{ClientID: "c", ObjectID: "o",
		Federated: []emulator.FederatedCredential{{Issuer: "https://token.actions.githubusercontent.com", Subject: "repo:x/y:ref:refs/heads/main"}}}}})
	if err == nil {
		e.Close()
		t.Fatal("Start accepted a federated credential from another issuer")
	}
	if !strings.Contains(err.Error(), "token.actions.githubusercontent.com") || !strings.Contains(err.Error(), "leave Issuer empty") {
		t.Errorf("error = %v", err)
	}
}

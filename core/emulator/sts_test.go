package emulator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/token"
)

func TestTokenMtlsPoP(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	for _, tc := range []struct {
		name, clientID, objectID string
		query                    url.Values
	}{
		{"system-assigned", emulator.DefaultSystemAssignedClientID, emulator.DefaultSystemAssignedObjectID, v2Query()},
		{"user-assigned", emulator.DefaultUserAssignedClientID, emulator.DefaultUserAssignedObjectID, v2Query("client_id", emulator.DefaultUserAssignedClientID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, out := binding(t, e, tc.query)
			r := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop"))
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := r.json(t)
			if m["token_type"] != "mtls_pop" {
				t.Errorf("token_type = %v", m["token_type"])
			}
			// ESTS sends numbers as numbers.
			about := func(v any) bool { f, ok := v.(float64); return ok && f >= 86395 && f <= 86399 } // whole seconds left when it answered
			if !about(m["expires_in"]) || !about(m["ext_expires_in"]) || m["refresh_in"] != float64(43200) {
				t.Errorf("expires_in/ext_expires_in/refresh_in = %v/%v/%v", m["expires_in"], m["ext_expires_in"], m["refresh_in"])
			}
			if got := r.header.Get("client-request-id"); got != testCorrelationID {
				t.Errorf("client-request-id = %q", got)
			}
			c := verifyToken(t, e, m["access_token"].(string), graphResource)
			cnf, _ := c["cnf"].(map[string]any)
			if cnf == nil || cnf["x5t#S256"] != token.Thumbprint(cert.Leaf) {
				t.Errorf("cnf = %v, want x5t#S256 %s", c["cnf"], token.Thumbprint(cert.Leaf))
			}
			if c["appid"] != tc.clientID || c["azp"] != tc.clientID || c["oid"] != tc.objectID || c["sub"] != tc.objectID ||
				c["tid"] != emulator.DefaultTenantID || c["idtyp"] != "app" {
				t.Errorf("claims = %v", c)
			}
			rec := e.LastRequest(emulator.EndpointToken)
			if rec == nil || rec.Form.Get("token_type") != "mtls_pop" || rec.Header.Get("client-request-id") != testCorrelationID ||
				rec.ClientCertificate == nil || !rec.ClientCertificate.Equal(cert.Leaf) || rec.Method != http.MethodPost ||
				rec.Path != "/"+emulator.DefaultTenantID+"/oauth2/v2.0/token" {
				t.Errorf("LastRequest = %+v", rec)
			}
		})
	}
}

func TestTokenBearerOverMTLS(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	cert, out := binding(t, e, v2Query())
	for _, tt := range []string{"", "bearer"} {
		r := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, emulator.DefaultResourceID+"/.default", tt))
		if r.status != http.StatusOK {
			t.Fatalf("token_type %q: status %d: %s", tt, r.status, r.body)
		}
		m := r.json(t)
		if m["token_type"] != "Bearer" {
			t.Errorf("token_type = %v", m["token_type"])
		}
		if c := verifyToken(t, e, m["access_token"].(string), emulator.DefaultResourceID); c["cnf"] != nil {
			t.Errorf("Bearer token has cnf %v", c["cnf"])
		}
	}
}

func TestTokenRefreshIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		cfg       emulator.Config
		refreshIn any
	}{
		{"default half of 24h", emulator.Config{}, float64(43200)},
		{"explicit", emulator.Config{RefreshIn: 90 * time.Second}, float64(90)},
		{"never", emulator.Config{RefreshIn: -1}, nil},
		{"short lifetime", emulator.Config{TokenLifetime: time.Hour}, nil},
		{"lifetime just over 2h", emulator.Config{TokenLifetime: 2*time.Hour + 2*time.Second}, float64(3601)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tc.cfg)
			cert, out := binding(t, e, v2Query())
			m := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop")).json(t)
			if m["refresh_in"] != tc.refreshIn {
				t.Errorf("refresh_in = %v, want %v", m["refresh_in"], tc.refreshIn)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	sysCert, out := binding(t, e, v2Query())
	sys, tenant := out.ClientID, out.TenantID
	scope := graphResource + "/.default"
	// A certificate from the binding CA whose CN is no known identity.
	strangerKey := newKey(t)
	strangerLeaf, err := e.IssueBindingCertificateForTest("99999999-9999-9999-9999-999999999999", strangerKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	stranger := &tls.Certificate{Certificate: [][]byte{strangerLeaf.Raw}, PrivateKey: strangerKey, Leaf: strangerLeaf}

	with := func(f url.Values, k, v string) url.Values {
		f = url.Values(http.Header(f).Clone())
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	base := tokenForm(sys, scope, "mtls_pop")
	tests := []struct {
		name   string
		cert   *tls.Certificate
		tenant string
		form   url.Values
		status int
		code   string
		aadsts float64
	}{
		{"wrong grant type", sysCert, tenant, with(base, "grant_type", "password"), 400, "unsupported_grant_type", 70003},
		{"missing grant type", sysCert, tenant, with(base, "grant_type", ""), 400, "invalid_request", 900144},
		{"missing client id", sysCert, tenant, with(base, "client_id", ""), 400, "invalid_request", 900144},
		{"missing scope", sysCert, tenant, with(base, "scope", ""), 400, "invalid_request", 900144},
		{"client id of another identity", sysCert, tenant, with(base, "client_id", emulator.DefaultUserAssignedClientID), 401, "invalid_client", 700027},
		{"unknown client id", sysCert, tenant, with(base, "client_id", "88888888-8888-8888-8888-888888888888"), 401, "invalid_client", 700016},
		{"certificate of an unknown identity", stranger, tenant, with(base, "client_id", "99999999-9999-9999-9999-999999999999"), 401, "invalid_client", 700016},
		{"scope without .default", sysCert, tenant, with(base, "scope", graphResource), 400, "invalid_scope", 1002012},
		{"scope that is only .default", sysCert, tenant, with(base, "scope", "/.default"), 400, "invalid_scope", 1002012},
		{"two scopes", sysCert, tenant, with(base, "scope", scope+" "+emulator.DefaultResourceID+"/.default"), 400, "invalid_scope", 1002012},
		{"claims not JSON", sysCert, tenant, with(base, "claims", "{not json"), 400, "invalid_request", 70011},
		{"claims not an object", sysCert, tenant, with(base, "claims", "[1]"), 400, "invalid_request", 70011},
		{"unknown token type", sysCert, tenant, with(base, "token_type", "pop"), 400, "invalid_request", 70011},
		{"wrong tenant", sysCert, "11111111-1111-1111-1111-111111111111", base, 400, "invalid_request", 90002},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postToken(t, e, tc.cert, tc.tenant, tc.form)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r.body)
			}
			m := r.json(t)
			codes, _ := m["error_codes"].([]any)
			if m["error"] != tc.code || len(codes) != 1 || codes[0] != tc.aadsts {
				t.Errorf("error = %v, error_codes = %v; want %s [%v]", m["error"], m["error_codes"], tc.code, tc.aadsts)
			}
			if m["correlation_id"] != testCorrelationID {
				t.Errorf("correlation_id = %v", m["correlation_id"])
			}
			desc, _ := m["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, testCorrelationID) {
				t.Errorf("error_description = %q", desc)
			}
			for _, k := range []string{"timestamp", "trace_id"} {
				if s, _ := m[k].(string); s == "" {
					t.Errorf("%s missing", k)
				}
			}
		})
	}
	t.Run("valid claims accepted", func(t *testing.T) {
		r := postToken(t, e, sysCert, tenant, with(base, "claims", `{"access_token":{"xms_cc":{"values":["cp1"]}}}`))
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("GET", func(t *testing.T) {
		req := newRequest(t, http.MethodGet, e.MTLSAuthURL()+"/"+tenant+"/oauth2/v2.0/token", nil, nil)
		if r := do(t, tlsClient(e, sysCert), req); r.status != http.StatusMethodNotAllowed {
			t.Errorf("status = %d", r.status)
		}
	})
	t.Run("JSON body", func(t *testing.T) {
		req := newRequest(t, http.MethodPost, e.MTLSAuthURL()+"/"+tenant+"/oauth2/v2.0/token",
			strings.NewReader(`{"grant_type":"client_credentials"}`), map[string]string{"Content-Type": "application/json"})
		r := do(t, tlsClient(e, sysCert), req)
		if r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_request" {
			t.Errorf("status = %d: %s", r.status, r.body)
		}
	})
}

func TestTokenHandshakeRefused(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	form := tokenForm(emulator.DefaultSystemAssignedClientID, graphResource+"/.default", "mtls_pop")

	t.Run("no client certificate", func(t *testing.T) {
		if _, err := tryPostToken(e, nil, e.TenantID(), form); err == nil {
			t.Fatal("request without a client certificate succeeded")
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		other := start(t, emulator.Config{})
		cert, _ := binding(t, other, v2Query())
		if _, err := tryPostToken(e, cert, e.TenantID(), form); err == nil {
			t.Fatal("certificate of another emulator accepted")
		}
	})
	t.Run("revoked", func(t *testing.T) {
		cert, _ := binding(t, e, v2Query())
		if r := postToken(t, e, cert, e.TenantID(), form); r.status != http.StatusOK {
			t.Fatalf("before revocation: %d %s", r.status, r.body)
		}
		e.RevokeBindingCertificates()
		_, err := tryPostToken(e, cert, e.TenantID(), form)
		if err == nil {
			t.Fatal("revoked certificate accepted")
		}
		if !strings.Contains(err.Error(), "tls: ") {
			t.Errorf("error = %v, want a TLS alert", err)
		}
		t.Logf("revoked: %v", err)
		fresh, _ := binding(t, e, v2Query())
		if r := postToken(t, e, fresh, e.TenantID(), form); r.status != http.StatusOK {
			t.Fatalf("certificate issued after revocation: %d %s", r.status, r.body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		old := start(t, emulator.Config{CertLifetime: -time.Hour})
		cert, _ := binding(t, old, v2Query())
		if !cert.Leaf.NotAfter.Before(time.Now()) || !cert.Leaf.NotBefore.Before(cert.Leaf.NotAfter) {
			t.Fatalf("validity %v..%v", cert.Leaf.NotBefore, cert.Leaf.NotAfter)
		}
		if _, err := tryPostToken(old, cert, old.TenantID(), form); err == nil {
			t.Fatal("expired certificate accepted")
		}
	})
}

// A revocation must also hold for clients that keep connections alive and resume TLS sessions:
// the open connection is cut, and a resumed session is checked again.
func TestRevocationCutsKeptAliveAndResumedSessions(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	form := tokenForm(emulator.DefaultSystemAssignedClientID, graphResource+"/.default", "mtls_pop")
	cert, _ := binding(t, e, v2Query())
	cfg := &tls.Config{RootCAs: e.RootCAs(), Certificates: []tls.Certificate{*cert}, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer client.CloseIdleConnections()
	post := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, e.MTLSAuthURL()+"/"+e.TenantID()+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return client.Do(req)
	}
	for i := 0; i < 2; i++ { // the second request reuses the connection; a ticket is now cached
		resp, err := post()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("before revocation: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	e.RevokeBindingCertificates()
	var err error
	for i := 0; i < 3; i++ { // a request racing the cut may fail with EOF first
		resp, perr := post()
		if perr == nil {
			resp.Body.Close()
			t.Fatalf("revoked certificate accepted on attempt %d: %d", i, resp.StatusCode)
		}
		if err = perr; strings.Contains(err.Error(), "tls: ") {
			break
		}
	}
	if !strings.Contains(err.Error(), "tls: ") {
		t.Fatalf("err = %v, want a TLS alert", err)
	}
}

// selfSignedClientCert makes a certificate anyone could make: self-signed, client
// authentication, with the given CN.
func selfSignedClientCert(t *testing.T, cn string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// The mTLS host admits app certificates at the TLS layer, and an app certificate is
// self-made: one whose CN is a managed identity's client id must not get that identity's token.
func TestTokenManagedIdentityNeedsBindingCertificate(t *testing.T) {
	t.Parallel()
	const appID = "0d6f3a55-2d1c-4b8e-9a57-3f1e2c7b9d10"
	forged := selfSignedClientCert(t, emulator.DefaultSystemAssignedClientID)
	e := start(t, emulator.Config{Apps: []emulator.App{{ClientID: appID, ObjectID: "app-object", Certificates: []*x509.Certificate{forged.Leaf}}}})
	scope := graphResource + "/.default"

	// The TLS layer admits it, and it authenticates as the app that registered it...
	if r := postToken(t, e, forged, e.TenantID(), tokenForm(appID, scope, "mtls_pop")); r.status != http.StatusOK {
		t.Fatalf("as its own app: %d %s", r.status, r.body)
	}
	// ...but not as the managed identity its CN names.
	for _, tt := range []string{"mtls_pop", ""} {
		r := postToken(t, e, forged, e.TenantID(), tokenForm(emulator.DefaultSystemAssignedClientID, scope, tt))
		wantError(t, r, http.StatusUnauthorized, "invalid_client", "")
		if d, _ := r.json(t)["error_description"].(string); !strings.HasPrefix(d, "AADSTS700027: the client certificate is not a binding certificate") {
			t.Errorf("token_type %q: error_description = %q", tt, d)
		}
	}
	// A real binding certificate still gets the identity's token.
	cert, out := binding(t, e, v2Query())
	if r := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, scope, "mtls_pop")); r.status != http.StatusOK {
		t.Fatalf("binding certificate: %d %s", r.status, r.body)
	}
}

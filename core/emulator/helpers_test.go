package emulator_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
)

// start starts an emulator that the test closes when it ends.
func start(t *testing.T, cfg emulator.Config) *emulator.Emulator {
	t.Helper()
	e, err := emulator.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// plainClient talks to IMDS. Keep-alives are off so that every request has its own
// connection: no idle goroutines outlive a test, and no transport retries a dropped request.
func plainClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// tlsClient talks to the emulator's HTTPS hosts, presenting cert when it is not nil.
func tlsClient(e *emulator.Emulator, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.RootCAs(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func newRequest(t *testing.T, method, u string, body io.Reader, header map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

var metadata = map[string]string{"Metadata": "true"}

// imdsGet sends a GET to IMDS path with query and the Metadata header.
func imdsGet(t *testing.T, e *emulator.Emulator, path string, query url.Values) response {
	t.Helper()
	return do(t, plainClient(), newRequest(t, http.MethodGet, e.IMDSURL()+path+"?"+query.Encode(), nil, metadata))
}

const (
	v1TokenPath       = "/metadata/identity/oauth2/token"
	platformPath      = "/metadata/identity/getplatformmetadata"
	issueCredPath     = "/metadata/identity/issuecredential"
	graphResource     = "https://graph.microsoft.com"
	testCorrelationID = "7d2c0b0e-7a43-4d4e-9b7b-2a3c4d5e6f70"
)

func v1Query(kv ...string) url.Values {
	q := url.Values{"api-version": {"2018-02-01"}, "resource": {graphResource}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func v2Query(kv ...string) url.Values {
	q := url.Values{"cred-api-version": {"2.0"}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// newKey returns a fresh software binding key.
func newKey(t *testing.T) keys.Key {
	t.Helper()
	k, err := keys.NewSoftware().Key(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type issued struct {
	ClientID     string `json:"client_id"`
	TenantID     string `json:"tenant_id"`
	Certificate  string `json:"certificate"`
	IdentityType string `json:"identity_type"`
	Endpoint     string `json:"mtls_authentication_endpoint"`
}

// postIssueCredential posts body to issuecredential with the given query.
func postIssueCredential(t *testing.T, e *emulator.Emulator, q url.Values, body []byte, header map[string]string) response {
	t.Helper()
	if header == nil {
		header = map[string]string{"Metadata": "true", "Content-Type": "application/json; charset=utf-8"}
	}
	return do(t, plainClient(), newRequest(t, http.MethodPost, e.IMDSURL()+issueCredPath+"?"+q.Encode(), bytes.NewReader(body), header))
}

func csrBody(t *testing.T, key crypto.Signer, clientID, tenantID string, cuid keys.CUID) []byte {
	t.Helper()
	csr, err := keys.IMDSCSR(key, clientID, tenantID, cuid)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"csr": csr})
	return b
}

// binding runs the IMDSv2 flow for the identity that q selects (getplatformmetadata, CSR,
// issuecredential) and returns the binding certificate with its key, and the response.
func binding(t *testing.T, e *emulator.Emulator, q url.Values) (*tls.Certificate, issued) {
	t.Helper()
	pm := imdsGet(t, e, platformPath, q)
	if pm.status != http.StatusOK {
		t.Fatalf("getplatformmetadata: %d %s", pm.status, pm.body)
	}
	var meta struct {
		CUID     keys.CUID `json:"cuId"`
		ClientID string    `json:"clientId"`
		TenantID string    `json:"tenantId"`
	}
	if err := json.Unmarshal(pm.body, &meta); err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	resp := postIssueCredential(t, e, q, csrBody(t, key, meta.ClientID, meta.TenantID, meta.CUID), nil)
	if resp.status != http.StatusOK {
		t.Fatalf("issuecredential: %d %s", resp.status, resp.body)
	}
	var out issued
	if err := json.Unmarshal(resp.body, &out); err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(out.Certificate)
	if err != nil {
		t.Fatalf("certificate is not standard base64: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, out
}

// tokenForm is the form MSAL sends to the mTLS token endpoint.
func tokenForm(clientID, scope, tokenType string) url.Values {
	f := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {scope}}
	if tokenType != "" {
		f.Set("token_type", tokenType)
	}
	return f
}

// postToken posts form to the token endpoint over mTLS with cert.
func postToken(t *testing.T, e *emulator.Emulator, cert *tls.Certificate, tenant string, form url.Values) response {
	t.Helper()
	resp, err := tryPostToken(e, cert, tenant, form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	return resp
}

func tryPostToken(e *emulator.Emulator, cert *tls.Certificate, tenant string, form url.Values) (response, error) {
	req, err := http.NewRequest(http.MethodPost, e.MTLSAuthURL()+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", testCorrelationID)
	req.Header.Set("return-client-request-id", "true")
	resp, err := tlsClient(e, cert).Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// jwksCache holds each emulator's fetched JWKS so verifyToken fetches once per emulator.
var jwksCache sync.Map // *emulator.Emulator -> map[string]*rsa.PublicKey

// fetchJWKS fetches the emulator's JWKS over HTTPS and decodes its RSA keys.
func fetchJWKS(t *testing.T, e *emulator.Emulator) map[string]*rsa.PublicKey {
	t.Helper()
	if k, ok := jwksCache.Load(e); ok {
		return k.(map[string]*rsa.PublicKey)
	}
	resp := do(t, tlsClient(e, nil), newRequest(t, http.MethodGet, e.JWKSURL(), nil, nil))
	if resp.status != http.StatusOK {
		t.Fatalf("jwks: %d %s", resp.status, resp.body)
	}
	var set struct {
		Keys []struct{ Kid, Kty, Use, Alg, N, E string }
	}
	if err := json.Unmarshal(resp.body, &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Use != "sig" || k.Alg != "RS256" || k.Kid == "" {
			t.Fatalf("unexpected JWK %+v", k)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		eb, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("JWK n/e are not base64url: %v %v", err1, err2)
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}
	}
	jwksCache.Store(e, out)
	return out
}

// verifyToken checks tok's signature with the keys from the emulator's JWKS, its issuer and
// audience, and returns its claims.
func verifyToken(t *testing.T, e *emulator.Emulator, tok, aud string) jwt.MapClaims {
	t.Helper()
	keySet := fetchJWKS(t, e)
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		k, ok := keySet[kid]
		if !ok {
			return nil, jwt.ErrTokenUnverifiable
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(e.Issuer()), jwt.WithAudience(aud),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return claims
}

func wantError(t *testing.T, r response, status int, code, desc string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	m := r.json(t)
	if m["error"] != code {
		t.Errorf("error = %v, want %q", m["error"], code)
	}
	if desc != "" && m["error_description"] != desc {
		t.Errorf("error_description = %q, want %q", m["error_description"], desc)
	}
}

// waitFor polls cond until it holds, failing the test after five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

package pop

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// newResourceServer is a real HTTPS resource behind Middleware. It asks for (but does not
// verify) client certificates, as an mtls_pop resource does, and echoes the claims it got.
func newResourceServer(t *testing.T, v *Verifier) *httptest.Server {
	t.Helper()
	h := Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := FromContext(r.Context())
		if !ok {
			http.Error(w, "no claims in context", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"sub": c.Subject, "type": c.TokenType, "x5t": c.X5tS256})
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// clientFor returns an HTTPS client of srv that presents cert (none when nil).
func clientFor(srv *httptest.Server, cert *tls.Certificate) *http.Client {
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: tr}
}

type response struct {
	status    int
	challenge string
	body      map[string]string
	raw       string
}

func call(t *testing.T, c *http.Client, url string, authz ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range authz {
		req.Header.Add("Authorization", a)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]string
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", raw, err)
	}
	if resp.StatusCode != http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q", cc)
		}
	}
	return response{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body, string(raw)}
}

func TestMiddleware(t *testing.T) {
	cert := validTestCert(t)
	other := validTestCert(t)
	expired := newTestCert(t, cert.leaf.NotBefore.Add(-48*time.Hour), cert.leaf.NotBefore)
	bound := signRS256(t, testClaims(cert.leaf))
	boundExpired := signRS256(t, testClaims(expired.leaf))
	unbound := signRS256(t, testClaims(nil))
	v := newTestVerifier()
	srv := newResourceServer(t, v)

	tests := []struct {
		name          string
		cert          *tls.Certificate
		authz         []string
		wantStatus    int
		wantChallenge string
		wantBody      map[string]string
	}{
		{
			name: "valid", cert: &cert.tls, authz: []string{"mtls_pop " + bound}, wantStatus: 200,
			wantBody: map[string]string{"sub": "subject-1", "type": "mtls_pop", "x5t": token.Thumbprint(cert.leaf)},
		},
		{
			name: "other certificate", cert: &other.tls, authz: []string{"mtls_pop " + bound}, wantStatus: 401,
			wantChallenge: `mtls_pop error="invalid_token", error_description="token is bound to a different certificate"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": "token is bound to a different certificate"},
		},
		{
			name: "no certificate", authz: []string{"mtls_pop " + bound}, wantStatus: 401,
			wantChallenge: `mtls_pop error="invalid_token", error_description="token is certificate-bound but no client certificate was presented"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": "token is certificate-bound but no client certificate was presented"},
		},
		{
			name: "expired certificate", cert: &expired.tls, authz: []string{"mtls_pop " + boundExpired}, wantStatus: 401,
			wantChallenge: `mtls_pop error="invalid_token", error_description="client certificate expired"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": "client certificate expired"},
		},
		{
			name: "bearer scheme answered in kind", cert: &cert.tls, authz: []string{"Bearer " + unbound}, wantStatus: 401,
			wantChallenge: `Bearer error="invalid_token", error_description="unbound bearer tokens are not accepted"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": "unbound bearer tokens are not accepted"},
		},
		{
			name: "no credentials", cert: &cert.tls, wantStatus: 401,
			wantChallenge: `mtls_pop`,
			wantBody:      map[string]string{"error_description": "missing authorization header"},
		},
		{
			name: "unknown scheme", cert: &cert.tls, authz: []string{"Basic dXNlcjpwYXNz"}, wantStatus: 401,
			wantChallenge: `mtls_pop error="invalid_token", error_description="unsupported authorization scheme: want mtls_pop or bearer"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": "unsupported authorization scheme: want mtls_pop or bearer"},
		},
		{
			name: "scheme only", cert: &cert.tls, authz: []string{"mtls_pop"}, wantStatus: 401,
			wantChallenge: `mtls_pop error="invalid_token", error_description="empty token"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": "empty token"},
		},
		{
			name: "no scheme; quotes in the message are escaped", cert: &cert.tls, authz: []string{bound}, wantStatus: 401,
			wantChallenge: `mtls_pop error="invalid_token", error_description="malformed authorization header: want \"<scheme> <token>\" with one space"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": `malformed authorization header: want "<scheme> <token>" with one space`},
		},
		{
			name: "two authorization headers", cert: &cert.tls, authz: []string{"mtls_pop " + bound, "Bearer " + unbound}, wantStatus: 401,
			wantChallenge: `mtls_pop error="invalid_token", error_description="multiple authorization headers"`,
			wantBody:      map[string]string{"error": "invalid_token", "error_description": "multiple authorization headers"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, clientFor(srv, tt.cert), srv.URL, tt.authz...)
			if got.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", got.status, tt.wantStatus, got.raw)
			}
			if got.challenge != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %s\n                  want %s", got.challenge, tt.wantChallenge)
			}
			if len(got.body) != len(tt.wantBody) {
				t.Errorf("body = %v, want %v", got.body, tt.wantBody)
			}
			for k, want := range tt.wantBody {
				if got.body[k] != want {
					t.Errorf("body[%q] = %q, want %q", k, got.body[k], want)
				}
			}
			for _, tok := range []string{bound, boundExpired, unbound} {
				assertNoTokenText(t, got.challenge+got.raw, tok)
			}
		})
	}
}

func TestMiddlewareAllowUnbound(t *testing.T) {
	v := newTestVerifier()
	v.AllowUnbound = true
	srv := newResourceServer(t, v)
	got := call(t, clientFor(srv, nil), srv.URL, "Bearer "+signRS256(t, testClaims(nil)))
	if got.status != 200 || got.body["type"] != "Bearer" || got.body["x5t"] != "" {
		t.Fatalf("got %d %v", got.status, got.body)
	}
}

// A JWKS outage is the server's problem: 503, no challenge, so clients keep their tokens.
func TestMiddlewareJWKSUnavailable(t *testing.T) {
	jwks := newJWKSServer(t)
	jwks.set(func(s *jwksServer) { s.status = http.StatusInternalServerError })
	srv := newResourceServer(t, &Verifier{Keys: jwks.newJWKS(nil), Audiences: []string{testAud}})
	cert := validTestCert(t)
	got := call(t, clientFor(srv, &cert.tls), srv.URL, "mtls_pop "+signRS256(t, testClaims(cert.leaf)))
	if got.status != http.StatusServiceUnavailable || got.challenge != "" {
		t.Fatalf("status %d, challenge %q", got.status, got.challenge)
	}
	if got.body["error"] != "temporarily_unavailable" || got.body["error_description"] != "jwks endpoint answered http 500" {
		t.Errorf("body = %v", got.body)
	}
}

func TestFromContextEmpty(t *testing.T) {
	if c, ok := FromContext(context.Background()); ok || c != nil {
		t.Fatalf("FromContext on a bare context = %v, %v", c, ok)
	}
}

package confidential_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/confidential"
	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/pop"
	"github.com/mtlspop/mtlspop/core/token"
)

const resource = emulator.DefaultResourceID

var scopes = []string{resource + "/.default"}

func start(t *testing.T, cfg emulator.Config) *emulator.Emulator {
	t.Helper()
	emu, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// client is a confidential client of emu's tenant. The emulator's mTLS host is not a
// "login." host, so it is named explicitly, as a private cloud's would be.
func client(t *testing.T, emu *emulator.Emulator, clientID string, cred confidential.Credential, opts ...confidential.Option) *confidential.Client {
	t.Helper()
	base := []confidential.Option{confidential.WithMtlsEndpoint(emu.MTLSAuthURL()), confidential.WithRootCAs(emu.RootCAs()),
		confidential.WithRetryWait(func(ctx context.Context, _ time.Duration) error { return ctx.Err() })}
	c, err := confidential.New(emu.AuthorityURL(), clientID, cred, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func miClient(t *testing.T, emu *emulator.Emulator) *managedidentity.Client {
	t.Helper()
	env := emu.Env()
	mi, err := managedidentity.New(managedidentity.SystemAssigned(),
		managedidentity.WithEnv(func(k string) string { return env[k] }), managedidentity.WithRootCAs(emu.RootCAs()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mi.Close() })
	return mi
}

func verify(t *testing.T, emu *emulator.Emulator, r token.Result, cert *x509.Certificate) *pop.Claims {
	t.Helper()
	v := pop.Verifier{Keys: emu.Keys(), Issuer: emu.Issuer(), Audiences: []string{resource}, AllowUnbound: !r.IsPoP()}
	claims, err := v.Verify(context.Background(), r.AuthorizationHeader(), cert)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return claims
}

func wantCode(t *testing.T, err error, code token.Code) *token.Error {
	t.Helper()
	var te *token.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
	return te
}

func call(t *testing.T, c *confidential.Client, url string, r token.Result) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := c.Do(context.Background(), req, r)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// formOf decodes the last request's client assertion (header and claims).
func assertionOf(t *testing.T, emu *emulator.Emulator, ep emulator.Endpoint) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(emu.LastRequest(ep).Form.Get("client_assertion"), ".")
	if len(parts) != 3 {
		t.Fatal("no client assertion JWT was sent")
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatal("client assertion is not a JWT")
		}
	}
	return header, claims
}

func TestClassicCertificateAssertion(t *testing.T) {
	emu := start(t, emulator.Config{})
	app := emu.App()
	c := client(t, emu, app.ClientID, confidential.Certificate(app.Certificate, confidential.WithX5C()))
	r, err := c.AcquireTokenForClient(context.Background(), scopes)
	if err != nil {
		t.Fatal(err)
	}
	if r.TokenType != token.TypeBearer || r.BindingCertificate != nil || verify(t, emu, r, nil).ClientID != app.ClientID {
		t.Fatalf("result %v", r)
	}
	h, claims := assertionOf(t, emu, emulator.EndpointAuthorityToken)
	if h["alg"] != "PS256" || h["x5t#S256"] != token.Thumbprint(app.Certificate.Leaf) || h["x5c"] == nil ||
		claims["aud"] != emu.AuthorityURL()+"/oauth2/v2.0/token" || claims["iss"] != app.ClientID || claims["sub"] != app.ClientID {
		t.Fatalf("assertion header %v claims %v", h, claims)
	}
	if f := emu.LastRequest(emulator.EndpointAuthorityToken).Form; f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || f.Has("token_type") {
		t.Fatalf("form %v", f)
	}
	again, _ := c.AcquireTokenForClient(context.Background(), scopes)
	if again.Source != token.SourceCache || emu.Requests(emulator.EndpointAuthorityToken) != 1 {
		t.Fatal("second call not served from the cache")
	}
}

func TestSecretAndStaticAssertion(t *testing.T) {
	emu := start(t, emulator.Config{})
	app := emu.App()
	r, err := client(t, emu, app.ClientID, confidential.Secret(app.Secret)).AcquireTokenForClient(context.Background(), scopes)
	if err != nil || verify(t, emu, r, nil).ClientID != app.ClientID {
		t.Fatal(r, err)
	}
	if emu.LastRequest(emulator.EndpointAuthorityToken).Form.Get("client_secret") != app.Secret {
		t.Fatal("secret not sent")
	}
	// A static assertion the app signed itself (ES256 would need an EC cert; PS256 here).
	key := app.Certificate.PrivateKey.(*rsa.PrivateKey)
	tok := jwt.NewWithClaims(jwt.SigningMethodPS256, jwt.MapClaims{"aud": emu.AuthorityURL() + "/oauth2/v2.0/token",
		"iss": app.ClientID, "sub": app.ClientID, "exp": time.Now().Add(5 * time.Minute).Unix(), "jti": "x"})
	tok.Header["x5t#S256"] = token.Thumbprint(app.Certificate.Leaf)
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, emu, app.ClientID, confidential.StaticAssertion(signed)).AcquireTokenForClient(context.Background(), scopes); err != nil {
		t.Fatal(err)
	}
}

func TestMtlsPoPWithTheAppCertificate(t *testing.T) {
	emu := start(t, emulator.Config{ResourceRequirePoP: true})
	app := emu.App()
	c := client(t, emu, app.ClientID, confidential.Certificate(app.Certificate))
	r, err := c.AcquireTokenForClient(context.Background(), scopes, confidential.WithMtlsPoP())
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsPoP() || r.Thumbprint() != token.Thumbprint(app.Certificate.Leaf) || verify(t, emu, r, app.Certificate.Leaf).X5tS256 != r.Thumbprint() {
		t.Fatalf("result %v", r)
	}
	leg := emu.LastRequest(emulator.EndpointToken)
	if leg.Form.Has("client_assertion") || leg.Form.Get("token_type") != "mtls_pop" || !leg.ClientCertificate.Equal(app.Certificate.Leaf) {
		t.Fatalf("mTLS request %v", leg.Form)
	}
	if call(t, c, emu.ResourceURL(), r) != 200 {
		t.Fatal("the resource refused the bound token")
	}
	// Bearer and PoP tokens of one app are cached apart.
	b, err := c.AcquireTokenForClient(context.Background(), scopes)
	if err != nil || b.IsPoP() || b.AccessToken == r.AccessToken {
		t.Fatal("the Bearer request was served the PoP token", err)
	}
}

func TestBoundFIC(t *testing.T) {
	emu := start(t, emulator.Config{ResourceRequirePoP: true})
	app := emu.App()
	mi := miClient(t, emu)
	c := client(t, emu, app.ClientID, confidential.AssertionFunc(confidential.FromManagedIdentity(mi, true)))
	// Without PoP: a Bearer token, delivered over mTLS with the leg-1 certificate (implicit mTLS).
	bearer, err := c.AcquireTokenForClient(context.Background(), scopes)
	if err != nil {
		t.Fatal(err)
	}
	leg2 := emu.LastRequest(emulator.EndpointToken)
	if bearer.IsPoP() || bearer.BindingCertificate != nil || leg2.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-pop" || leg2.Form.Has("token_type") {
		t.Fatalf("bearer-over-mTLS result %v form %v", bearer, leg2.Form)
	}
	// With PoP: bound to leg 1's certificate, whose key the managed identity holds.
	r, err := c.AcquireTokenForClient(context.Background(), scopes, confidential.WithMtlsPoP())
	if err != nil {
		t.Fatal(err)
	}
	leg1, _ := mi.AcquireToken(context.Background(), confidential.TokenExchangeAudience, managedidentity.WithMtlsPoP())
	if !r.IsPoP() || r.Thumbprint() != leg1.Thumbprint() || verify(t, emu, r, leg1.BindingCertificate).ClientID != app.ClientID {
		t.Fatalf("final token %v, leg 1 %v", r, leg1)
	}
	if call(t, c, emu.ResourceURL(), r) != 200 {
		t.Fatal("the resource refused the final token over its binding certificate")
	}
	other := selfSigned(t)
	if call(t, c, emu.ResourceURL(), r.Bind(other)) != 401 {
		t.Fatal("the resource accepted the final token over another certificate")
	}
}

func TestTwoLegFromAConfidentialClient(t *testing.T) {
	// App A authenticates with its certificate and gets a PoP token for the exchange audience;
	// app B trusts A's tokens as its federated credential and exchanges one for a token of its own.
	certA := selfSigned(t)
	const appA, appB = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"
	emu := start(t, emulator.Config{ResourceRequirePoP: true, Apps: []emulator.App{
		{ClientID: appA, ObjectID: "object-a", Certificates: []*x509.Certificate{certA.Leaf}},
		{ClientID: appB, ObjectID: "object-b", Federated: []emulator.FederatedCredential{{Subject: "object-a"}}},
		{ClientID: "cccccccc-0000-0000-0000-000000000003", ObjectID: "object-c", Federated: []emulator.FederatedCredential{{Subject: "someone-else"}}},
	}})
	a := client(t, emu, appA, confidential.Certificate(certA))
	b := client(t, emu, appB, confidential.AssertionFunc(confidential.FromConfidentialClient(a, true)))
	r, err := b.AcquireTokenForClient(context.Background(), scopes, confidential.WithMtlsPoP())
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsPoP() || r.Thumbprint() != token.Thumbprint(certA.Leaf) || verify(t, emu, r, certA.Leaf).ClientID != appB {
		t.Fatalf("final token %v", r)
	}
	if call(t, b, emu.ResourceURL(), r) != 200 || call(t, b, emu.ResourceURL(), r.Bind(selfSigned(t))) != 401 {
		t.Fatal("the resource must accept the final token only over its binding certificate")
	}
	// An app whose federated credential names another subject refuses A's token.
	c := client(t, emu, "cccccccc-0000-0000-0000-000000000003", confidential.AssertionFunc(confidential.FromConfidentialClient(a, true)))
	_, err = c.AcquireTokenForClient(context.Background(), scopes, confidential.WithMtlsPoP())
	if te := wantCode(t, err, token.CodeInvalidClient); !strings.Contains(te.Message, "federated") {
		t.Fatalf("refused for the wrong reason: %v", te)
	}
	// A Bearer leg 1 works on the classic endpoint (no certificate to bind).
	bb := client(t, emu, appB, confidential.AssertionFunc(confidential.FromConfidentialClient(a, false)))
	bearer, err := bb.AcquireTokenForClient(context.Background(), scopes)
	if err != nil || bearer.IsPoP() || emu.Requests(emulator.EndpointAuthorityToken) == 0 {
		t.Fatalf("bearer two-leg: %v %v", bearer, err)
	}
}

func TestErrorCodes(t *testing.T) {
	emu := start(t, emulator.Config{})
	app := emu.App()
	ctx := context.Background()
	pop := confidential.WithMtlsPoP()
	for name, cred := range map[string]confidential.Credential{
		"secret":           confidential.Secret(app.Secret),
		"static assertion": confidential.StaticAssertion("x.y.z"),
		"callback, no cert": confidential.AssertionFunc(func(context.Context, confidential.AssertionRequest) (confidential.Assertion, error) {
			return confidential.Assertion{Assertion: "x.y.z"}, nil
		}),
	} {
		_, err := client(t, emu, app.ClientID, cred).AcquireTokenForClient(ctx, scopes, pop)
		wantCode(t, err, token.CodeMtlsCertificateNotProvided)
		if strings.Contains(err.Error(), app.Secret) {
			t.Fatalf("%s: the error leaks the secret", name)
		}
	}
	if emu.Requests(emulator.EndpointToken)+emu.Requests(emulator.EndpointAuthorityToken) != 0 {
		t.Fatal("a request was sent for an mTLS call without a certificate")
	}
	// A leg 1 that fails keeps its own code; a callback's plain error is an invalid argument.
	failing := func(err error) confidential.Credential {
		return confidential.AssertionFunc(func(context.Context, confidential.AssertionRequest) (confidential.Assertion, error) {
			return confidential.Assertion{}, err
		})
	}
	_, err := client(t, emu, app.ClientID, failing(token.Errorf(token.CodeManagedIdentityUnreachable, "leg 1 down"))).AcquireTokenForClient(ctx, scopes)
	wantCode(t, err, token.CodeManagedIdentityUnreachable)
	_, err = client(t, emu, app.ClientID, failing(errors.New("no assertion today"))).AcquireTokenForClient(ctx, scopes)
	wantCode(t, err, token.CodeInvalidArgument)
	// Wrong secret, unregistered certificate, forged assertion: invalid_client from the STS.
	_, err = client(t, emu, app.ClientID, confidential.Secret("wrong")).AcquireTokenForClient(ctx, scopes)
	wantCode(t, err, token.CodeInvalidClient)
	_, err = client(t, emu, app.ClientID, confidential.Certificate(selfSigned(t))).AcquireTokenForClient(ctx, scopes)
	wantCode(t, err, token.CodeInvalidClient)
	_, err = client(t, emu, app.ClientID, confidential.Certificate(selfSigned(t))).AcquireTokenForClient(ctx, scopes, pop)
	if te := wantCode(t, err, token.CodeNetwork); te == nil { // refused at the TLS handshake
		t.Fatal("unregistered certificate accepted at the TLS layer")
	}
	_, err = client(t, emu, "no-such-app", confidential.Secret("x")).AcquireTokenForClient(ctx, scopes)
	wantCode(t, err, token.CodeInvalidClient)
	// An authority must be tenanted for mTLS; retired sovereign hosts and non-login hosts have no
	// mtlsauth endpoint; a bad authority or arguments are refused before any request.
	for authority, code := range map[string]token.Code{
		"https://login.microsoftonline.com/common":        token.CodeMissingTenantedAuthority,
		"https://login.microsoftonline.com/organizations": token.CodeMissingTenantedAuthority,
		"https://login.usgovcloudapi.net/contoso":         token.CodeMtlsPopNotSupportedForEnv,
		"https://login.chinacloudapi.cn/contoso":          token.CodeMtlsPopNotSupportedForEnv,
		"https://sts.contoso.example/contoso":             token.CodeMtlsPopNotSupportedForEnv,
	} {
		c, err := confidential.New(authority, app.ClientID, confidential.Certificate(app.Certificate))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.AcquireTokenForClient(ctx, scopes, pop)
		wantCode(t, err, code)
		_ = c.Close()
	}
	for _, bad := range []struct {
		authority, clientID string
		cred                confidential.Credential
	}{
		{"http://login.microsoftonline.com/t", "c", confidential.Secret("s")},
		{"https://login.microsoftonline.com", "c", confidential.Secret("s")},
		{"https://login.microsoftonline.com/t", "", confidential.Secret("s")},
		{"https://login.microsoftonline.com/t", "c", confidential.Secret("")},
		{"https://login.microsoftonline.com/t", "c", confidential.Credential{}},
	} {
		if _, err := confidential.New(bad.authority, bad.clientID, bad.cred); token.CodeOf(err) != token.CodeInvalidArgument {
			t.Fatalf("New(%q, %q): %v", bad.authority, bad.clientID, err)
		}
	}
	c := client(t, emu, app.ClientID, confidential.Secret(app.Secret))
	for _, s := range [][]string{nil, {""}, {"a b"}} {
		if _, err := c.AcquireTokenForClient(ctx, s); token.CodeOf(err) != token.CodeInvalidArgument {
			t.Fatalf("scopes %q: %v", s, err)
		}
	}
	_ = c.Close()
	if _, err := c.AcquireTokenForClient(ctx, scopes); token.CodeOf(err) != token.CodeClosed {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %+v %s", confidential.Secret(app.Secret), c, confidential.StaticAssertion("secret.assertion.value")); strings.Contains(s, app.Secret) || strings.Contains(s, "secret.assertion") {
		t.Fatalf("formatting leaks a secret: %s", s)
	}
	// An assertion (a leg-1 token, with its certificate and key): not in fmt, not in slog JSON.
	a := confidential.Assertion{Assertion: "leg1.access.token", BindingCertificate: app.Certificate}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("assertion", "a", a)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", a, a, a, a), logged.String()} {
		if strings.Contains(s, "leg1.access.token") || strings.Contains(s, `"D"`) || !strings.Contains(s, token.Thumbprint(app.Certificate.Leaf)) {
			t.Fatalf("an assertion is shown with its secrets (or without its certificate): %s", s)
		}
	}
}

func TestBoundFICAfterRotationNeverServesAStaleToken(t *testing.T) {
	// MSAL.NET #6117: after the binding certificate rotates, a token bound to the old one must not
	// be served — for PoP and for Bearer-over-mTLS alike.
	emu := start(t, emulator.Config{})
	app := emu.App()
	mi := miClient(t, emu)
	c := client(t, emu, app.ClientID, confidential.AssertionFunc(confidential.FromManagedIdentity(mi, true)))
	ctx, pop := context.Background(), confidential.WithMtlsPoP()
	first, err := c.AcquireTokenForClient(ctx, scopes, pop)
	if err != nil {
		t.Fatal(err)
	}
	firstBearer, err := c.AcquireTokenForClient(ctx, scopes)
	if err != nil {
		t.Fatal(err)
	}
	// The managed identity's certificate is revoked; its next network call mints a new one.
	emu.RevokeBindingCertificates()
	if _, err := mi.AcquireToken(ctx, "api://other", managedidentity.WithMtlsPoP(), managedidentity.WithForceRefresh()); err != nil {
		t.Fatal(err)
	}
	second, err := c.AcquireTokenForClient(ctx, scopes, pop)
	if err != nil {
		t.Fatal(err)
	}
	leg1, _ := mi.AcquireToken(ctx, confidential.TokenExchangeAudience, managedidentity.WithMtlsPoP())
	if second.Source != token.SourceIdentityProvider || second.Thumbprint() == first.Thumbprint() || second.Thumbprint() != leg1.Thumbprint() {
		t.Fatalf("after rotation: %v (leg 1 now %s)", second, leg1.Thumbprint())
	}
	secondBearer, err := c.AcquireTokenForClient(ctx, scopes)
	if err != nil || secondBearer.Source != token.SourceIdentityProvider || secondBearer.AccessToken == firstBearer.AccessToken {
		t.Fatalf("a Bearer token obtained over the old certificate was served: %v %v", secondBearer, err)
	}
}

func TestCertificateFuncRotation(t *testing.T) {
	c1, c2 := selfSigned(t), selfSigned(t)
	emu := start(t, emulator.Config{Apps: []emulator.App{{ClientID: "c", ObjectID: "o", Certificates: []*x509.Certificate{c1.Leaf, c2.Leaf}}}})
	var current atomic.Pointer[tls.Certificate]
	current.Store(c1)
	c := client(t, emu, "c", confidential.CertificateFunc(func(context.Context) (*tls.Certificate, error) { return current.Load(), nil }))
	ctx, pop := context.Background(), confidential.WithMtlsPoP()
	first, err := c.AcquireTokenForClient(ctx, scopes, pop)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.AcquireTokenForClient(ctx, scopes, pop); again.Source != token.SourceCache {
		t.Fatal("same certificate, but no cache hit")
	}
	current.Store(c2)
	second, err := c.AcquireTokenForClient(ctx, scopes, pop)
	if err != nil {
		t.Fatal(err)
	}
	if second.Source != token.SourceIdentityProvider || second.Thumbprint() != token.Thumbprint(c2.Leaf) || first.Thumbprint() == second.Thumbprint() {
		t.Fatalf("after rotation: %v", second)
	}
	if claims := verify(t, emu, second, c2.Leaf); claims.X5tS256 != token.Thumbprint(c2.Leaf) {
		t.Fatal("new token not bound to the new certificate")
	}
}

func selfSigned(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key), Leaf: leaf}
}

// A cache-only acquisition sends no token request, and passes cache-only on to leg 1 of a FIC, so
// a cold leg 1 is not fetched either.
func TestCacheOnly(t *testing.T) {
	emu := start(t, emulator.Config{})
	app := emu.App()
	only := confidential.WithCacheOnly()
	c := client(t, emu, app.ClientID, confidential.Certificate(app.Certificate))
	_, err := c.AcquireTokenForClient(context.Background(), scopes, only, confidential.WithMtlsPoP())
	wantCode(t, err, token.CodeNotCached)
	if n := emu.Requests(emulator.EndpointToken) + emu.Requests(emulator.EndpointAuthorityToken); n != 0 {
		t.Fatalf("a cache-only miss sent %d token requests", n)
	}
	r, err := c.AcquireTokenForClient(context.Background(), scopes, confidential.WithMtlsPoP())
	if err != nil {
		t.Fatal(err)
	}
	hit, err := c.AcquireTokenForClient(context.Background(), scopes, only, confidential.WithMtlsPoP())
	if err != nil || hit.Source != token.SourceCache || hit.AccessToken != r.AccessToken {
		t.Fatalf("cache-only hit: %v, %v", hit, err)
	}
	_, err = c.AcquireTokenForClient(context.Background(), scopes, only) // Bearer: not cached
	wantCode(t, err, token.CodeNotCached)
	_, err = c.AcquireTokenForClient(context.Background(), scopes, only, confidential.WithForceRefresh())
	wantCode(t, err, token.CodeInvalidArgument)

	// Two-leg FIC: nothing cached anywhere, so nothing is fetched on either leg.
	mi := miClient(t, emu)
	f := client(t, emu, app.ClientID, confidential.AssertionFunc(confidential.FromManagedIdentity(mi, true)))
	before := emu.Requests(emulator.EndpointToken)
	_, err = f.AcquireTokenForClient(context.Background(), scopes, only, confidential.WithMtlsPoP())
	wantCode(t, err, token.CodeNotCached)
	if emu.Requests(emulator.EndpointIssueCredential) != 0 || emu.Requests(emulator.EndpointToken) != before {
		t.Fatal("a cache-only FIC acquisition fetched leg 1")
	}
	r, err = f.AcquireTokenForClient(context.Background(), scopes, confidential.WithMtlsPoP())
	if err != nil {
		t.Fatal(err)
	}
	hit, err = f.AcquireTokenForClient(context.Background(), scopes, only, confidential.WithMtlsPoP())
	if err != nil || hit.Source != token.SourceCache || hit.AccessToken != r.AccessToken {
		t.Fatalf("cache-only FIC hit: %v, %v", hit, err)
	}
}

// However many callers shared the first fetch, a background refresh runs the assertion callback
// again (a fresh assertion), and does not resend the claims challenge of the call that stored it.
func TestRefreshGetsAFreshAssertion(t *testing.T) {
	emu := start(t, emulator.Config{TokenLifetime: 10 * time.Hour, RefreshIn: 2 * time.Hour})
	var mu sync.Mutex
	offset := time.Duration(0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	mi := miClient(t, emu)
	leg1 := confidential.FromManagedIdentity(mi, true)
	var callbacks atomic.Int32
	c := client(t, emu, emu.App().ClientID, confidential.AssertionFunc(func(ctx context.Context, req confidential.AssertionRequest) (confidential.Assertion, error) {
		callbacks.Add(1)
		return leg1(ctx, req)
	}), confidential.WithClock(clock))
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.AcquireTokenForClient(ctx, scopes, confidential.WithMtlsPoP()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	claims := `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
	if _, err := c.AcquireTokenForClient(ctx, scopes, confidential.WithMtlsPoP(), confidential.WithClaims(claims)); err != nil {
		t.Fatal(err)
	}
	before, requests := callbacks.Load(), emu.Requests(emulator.EndpointToken)
	mu.Lock()
	offset += 2*time.Hour + 6*time.Minute // past the refresh point and any jitter
	mu.Unlock()
	if _, err := c.AcquireTokenForClient(ctx, scopes, confidential.WithMtlsPoP()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for emu.Requests(emulator.EndpointToken) == requests && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// One run picks the partition of the call that found the token due; one is the refresh's.
	if n := callbacks.Load() - before; n != 2 {
		t.Fatalf("the assertion callback ran %d times for a call and its refresh, want 2", n)
	}
	if last := emu.LastRequest(emulator.EndpointToken); last.Form.Has("claims") {
		t.Fatalf("the refresh resent the claims challenge %q", last.Form.Get("claims"))
	}
}

// A cache hit allocates nothing on every credential path (a benchmark measures the time; this
// keeps the allocation count from regressing unnoticed).
func TestCacheHitsDoNotAllocate(t *testing.T) {
	emu := start(t, emulator.Config{})
	app := emu.App()
	mi := miClient(t, emu)
	cases := []struct {
		name string
		c    *confidential.Client
		opts []confidential.AcquireOption
	}{
		{"certificate, mTLS PoP", client(t, emu, app.ClientID, confidential.Certificate(app.Certificate)), []confidential.AcquireOption{confidential.WithMtlsPoP()}},
		{"certificate, classic", client(t, emu, app.ClientID, confidential.Certificate(app.Certificate)), nil},
		{"secret", client(t, emu, app.ClientID, confidential.Secret(app.Secret)), nil},
		{"bound FIC", client(t, emu, app.ClientID, confidential.AssertionFunc(confidential.FromManagedIdentity(mi, true))), []confidential.AcquireOption{confidential.WithMtlsPoP()}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		if _, err := tc.c.AcquireTokenForClient(ctx, scopes, tc.opts...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n := testing.AllocsPerRun(100, func() {
			if r, err := tc.c.AcquireTokenForClient(ctx, scopes, tc.opts...); err != nil || r.Source != token.SourceCache {
				t.Fatalf("%s: not a hit: %v", tc.name, err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per cache hit", tc.name, n)
		}
	}
}

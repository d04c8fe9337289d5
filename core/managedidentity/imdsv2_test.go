package managedidentity_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

var popOpt = managedidentity.WithMtlsPoP()

func TestPoPFromIMDSv2ForEveryIdentity(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	resource := emu.Config().ResourceID
	for _, tc := range identities(emu) {
		t.Run(tc.name, func(t *testing.T) {
			c := clientFor(t, emu, tc.id, nil)
			res, err := c.AcquireToken(context.Background(), resource, popOpt)
			if err != nil {
				t.Fatal(err)
			}
			if res.TokenType != token.TypeMtlsPoP || res.Source != token.SourceIdentityProvider {
				t.Fatalf("result %v", res)
			}
			cert := res.BindingCertificate
			if cert == nil || cert.Subject.CommonName != tc.clientID || res.Thumbprint() != token.Thumbprint(cert) {
				t.Fatalf("binding certificate %v", cert)
			}
			if tc := res.TLSCertificate(); tc.PrivateKey == nil || tc.Leaf != cert || !bytes.Equal(tc.Certificate[0], cert.Raw) {
				t.Fatal("TLSCertificate does not carry the certificate and its signer")
			}
			// Every IMDSv2 call names the identity with the v2 spelling.
			for _, ep := range []emulator.Endpoint{emulator.EndpointPlatformMetadata, emulator.EndpointIssueCredential} {
				q := emu.LastRequest(ep).Query
				if q.Get("cred-api-version") != "2.0" || q.Get("msi_res_id") != "" {
					t.Fatalf("%s query %v", ep, q)
				}
				if tc.v2Query[0] != "" && q.Get(tc.v2Query[0]) != tc.v2Query[1] {
					t.Fatalf("%s query %v, want %s=%s", ep, q, tc.v2Query[0], tc.v2Query[1])
				}
				if h := emu.LastRequest(ep).Header; h.Get("Metadata") != "true" || h.Get("x-ms-client-request-id") == "" {
					t.Fatalf("%s headers %v", ep, h)
				}
			}
			// The token leg: canonical client id, scope, token_type, over mTLS with the binding cert.
			leg := emu.LastRequest(emulator.EndpointToken)
			if leg.Form.Get("grant_type") != "client_credentials" || leg.Form.Get("client_id") != tc.clientID ||
				leg.Form.Get("scope") != resource+"/.default" || leg.Form.Get("token_type") != "mtls_pop" ||
				leg.Form.Has("client_assertion") || leg.ClientCertificate == nil || !leg.ClientCertificate.Equal(cert) {
				t.Fatalf("token request form %v", leg.Form)
			}
			if leg.Header.Get("client-request-id") == "" || leg.Header.Get("x-ms-lib-capability") != "retry-after, h429" {
				t.Fatalf("token request headers %v", leg.Header)
			}
			claims := verify(t, emu, res, resource)
			if claims.X5tS256 != res.Thumbprint() || claims.ClientID != tc.clientID {
				t.Fatalf("cnf %q client %q", claims.X5tS256, claims.ClientID)
			}
			if status, body := callResource(t, c, emu.ResourceURL(), res); status != 200 || !strings.Contains(body, res.Thumbprint()) {
				t.Fatalf("resource answered %d %s", status, body)
			}
			again, err := c.AcquireToken(context.Background(), resource, popOpt)
			if err != nil || again.Source != token.SourceCache || again.AccessToken != res.AccessToken || again.Thumbprint() != res.Thumbprint() {
				t.Fatalf("second acquisition %v %v", again, err)
			}
		})
	}
}

func TestBearerAndPoPNeverMix(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	ctx, r := context.Background(), emu.Config().ResourceID
	bearer, err := c.AcquireToken(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	bound, err := c.AcquireToken(ctx, r, popOpt)
	if err != nil {
		t.Fatal(err)
	}
	if bound.Source != token.SourceIdentityProvider || bound.AccessToken == bearer.AccessToken || !bound.IsPoP() {
		t.Fatal("PoP request was served the Bearer token")
	}
	b2, _ := c.AcquireToken(ctx, r)
	p2, _ := c.AcquireToken(ctx, r, popOpt)
	if b2.AccessToken != bearer.AccessToken || p2.AccessToken != bound.AccessToken || b2.IsPoP() || !p2.IsPoP() {
		t.Fatal("cached entries mixed")
	}
}

func TestBindingCertificateReusedAcrossResources(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	a, err := c.AcquireToken(context.Background(), "api://one", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.AcquireToken(context.Background(), "https://two.example/", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	if a.Thumbprint() != b.Thumbprint() || a.AccessToken == b.AccessToken {
		t.Fatal("second resource did not reuse the binding certificate")
	}
	if emu.LastRequest(emulator.EndpointToken).Form.Get("scope") != "https://two.example/.default" {
		t.Fatalf("scope %q", emu.LastRequest(emulator.EndpointToken).Form.Get("scope"))
	}
	// One mint (getplatformmetadata + issuecredential), two token legs.
	if m, i, tk := emu.Requests(emulator.EndpointPlatformMetadata), emu.Requests(emulator.EndpointIssueCredential), emu.Requests(emulator.EndpointToken); m != 1 || i != 1 || tk != 2 {
		t.Fatalf("metadata %d issue %d token %d", m, i, tk)
	}
}

func TestBindingCertificateRenewal(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	var mu sync.Mutex
	offset := time.Duration(0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithClock(clock))
	first, err := c.AcquireToken(context.Background(), "api://r", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	cert := first.BindingCertificate
	// Reused until NotAfter − min(24h, lifetime/2): one minute before that point, still reused.
	renewAt := cert.NotAfter.Add(-min(24*time.Hour, cert.NotAfter.Sub(cert.NotBefore)/2))
	mu.Lock()
	offset = time.Until(renewAt) - time.Minute
	mu.Unlock()
	mid, err := c.AcquireToken(context.Background(), "api://other", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	if mid.Thumbprint() != first.Thumbprint() || emu.Requests(emulator.EndpointIssueCredential) != 1 {
		t.Fatal("certificate renewed before its renewal point")
	}
	mu.Lock()
	offset = time.Until(renewAt) + time.Minute
	mu.Unlock()
	renewed, err := c.AcquireToken(context.Background(), "api://r", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Thumbprint() == first.Thumbprint() || emu.Requests(emulator.EndpointIssueCredential) != 2 {
		t.Fatal("certificate not renewed after its renewal point")
	}
	if !sameKey(renewed.BindingCertificate.PublicKey, renewed.TLSCertificate().PrivateKey.(crypto.Signer).Public()) {
		t.Fatal("renewed certificate does not match its key")
	}
	if sameKey(first.BindingCertificate.PublicKey, renewed.BindingCertificate.PublicKey) {
		t.Fatal("renewal kept the old key; a new certificate gets a new key")
	}
	// The token bound to the old certificate is not served for the new one.
	if renewed.AccessToken == first.AccessToken || renewed.Source != token.SourceIdentityProvider {
		t.Fatal("token bound to the rotated certificate was served")
	}
}

func TestRemintOnceOnInvalidClient(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	invalid := emulator.Fault{Status: 401, Body: `{"error":"invalid_client","error_description":"AADSTS700027: certificate revoked"}`}
	invalid.Count = 1
	emu.InjectFault(emulator.EndpointToken, invalid)
	res, err := c.AcquireToken(context.Background(), "api://r", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	if i, tk := emu.Requests(emulator.EndpointIssueCredential), emu.Requests(emulator.EndpointToken); i != 2 || tk != 2 {
		t.Fatalf("issuecredential %d token %d, want 2 and 2", i, tk)
	}
	if leg := emu.LastRequest(emulator.EndpointToken); !leg.ClientCertificate.Equal(res.BindingCertificate) {
		t.Fatal("result not bound to the re-minted certificate")
	}
	// A refusal that persists: one re-mint, then a clear error.
	invalid.Count = 0
	emu.InjectFault(emulator.EndpointToken, invalid)
	_, err = c.AcquireToken(context.Background(), "api://r", popOpt, managedidentity.WithForceRefresh())
	te := wantCode(t, err, token.CodeInvalidClient)
	if te.Status != 401 || !strings.Contains(te.Message, "newly minted") || !strings.Contains(te.Message, "AADSTS700027") {
		t.Fatalf("error %q", te)
	}
	if i, tk := emu.Requests(emulator.EndpointIssueCredential), emu.Requests(emulator.EndpointToken); i != 3 || tk != 4 {
		t.Fatalf("issuecredential %d token %d, want 3 and 4", i, tk)
	}
}

func TestRemintOnTLSRefusal(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	first, err := c.AcquireToken(context.Background(), emu.Config().ResourceID, popOpt)
	if err != nil {
		t.Fatal(err)
	}
	emu.RevokeBindingCertificates()
	res, err := c.AcquireToken(context.Background(), emu.Config().ResourceID, popOpt, managedidentity.WithForceRefresh())
	if err != nil {
		t.Fatal(err)
	}
	if res.Thumbprint() == first.Thumbprint() || emu.Requests(emulator.EndpointIssueCredential) != 2 {
		t.Fatal("TLS refusal did not lead to a new certificate")
	}
	if status, body := callResource(t, c, emu.ResourceURL(), res); status != 200 {
		t.Fatalf("new token refused: %d %s", status, body)
	}
}

func TestIMDSv1OnlyHostRefusesPoPAtOnce(t *testing.T) {
	emu := startEmulator(t, emulator.Config{DisableIMDSv2: true})
	w := &waits{}
	c := clientFor(t, emu, managedidentity.SystemAssigned(), w)
	_, err := c.AcquireToken(context.Background(), "api://r", popOpt)
	te := wantCode(t, err, token.CodeMtlsPopNotSupportedInIMDSv1)
	if te.Status != 404 || emu.Requests(emulator.EndpointPlatformMetadata) != 1 || len(w.take()) != 0 {
		t.Fatalf("%+v, %d requests", te, emu.Requests(emulator.EndpointPlatformMetadata))
	}
	// Bearer still works on such a host.
	if _, err := c.AcquireToken(context.Background(), "api://r"); err != nil {
		t.Fatal(err)
	}
}

func TestPlatformMetadataMustComeFromIMDS(t *testing.T) {
	for name, server := range map[string]string{"other server": "nginx/1.25", "no server header": ""} {
		t.Run(name, func(t *testing.T) {
			emu := startEmulator(t, emulator.Config{})
			emu.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{ServerHeader: ptr(server)})
			_, err := clientFor(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(context.Background(), "api://r", popOpt)
			wantCode(t, err, token.CodeManagedIdentityRequestFailed)
			if emu.Requests(emulator.EndpointIssueCredential) != 0 {
				t.Fatal("sent a CSR to something that is not IMDS")
			}
		})
	}
}

func TestBadAnswersOnEveryIMDSv2Leg(t *testing.T) {
	cases := []struct {
		name  string
		ep    emulator.Endpoint
		fault emulator.Fault
		code  token.Code
	}{
		{"metadata malformed", emulator.EndpointPlatformMetadata, emulator.Fault{Malformed: true}, token.CodeManagedIdentityRequestFailed},
		{"metadata oversize", emulator.EndpointPlatformMetadata, emulator.Fault{Oversize: true}, token.CodeResponseTooLarge},
		{"metadata missing fields", emulator.EndpointPlatformMetadata, emulator.Fault{Status: 200, Body: `{"clientId":"c","tenantId":"t","attestationEndpoint":"https://a"}`}, token.CodeManagedIdentityRequestFailed},
		{"metadata 400", emulator.EndpointPlatformMetadata, emulator.Fault{Status: 400}, token.CodeManagedIdentityRequestFailed},
		{"issue malformed", emulator.EndpointIssueCredential, emulator.Fault{Malformed: true}, token.CodeManagedIdentityRequestFailed},
		{"issue oversize", emulator.EndpointIssueCredential, emulator.Fault{Oversize: true}, token.CodeResponseTooLarge},
		{"issue missing fields", emulator.EndpointIssueCredential, emulator.Fault{Status: 200, Body: `{"client_id":"c","tenant_id":"t","certificate":"AA=="}`}, token.CodeManagedIdentityRequestFailed},
		{"issue bad certificate", emulator.EndpointIssueCredential, emulator.Fault{Status: 200, Body: credential("bm90IGEgY2VydGlmaWNhdGU=", "https://127.0.0.1:1")}, token.CodeInvalidCertificate},
		{"issue certificate not base64", emulator.EndpointIssueCredential, emulator.Fault{Status: 200, Body: credential("%%%", "https://127.0.0.1:1")}, token.CodeInvalidCertificate},
		{"issue 400", emulator.EndpointIssueCredential, emulator.Fault{Status: 400}, token.CodeManagedIdentityRequestFailed},
		{"token malformed", emulator.EndpointToken, emulator.Fault{Malformed: true}, token.CodeInvalidTokenResponse},
		{"token oversize", emulator.EndpointToken, emulator.Fault{Oversize: true}, token.CodeResponseTooLarge},
		{"token type mismatch", emulator.EndpointToken, emulator.Fault{Status: 200, Body: `{"access_token":"SECRET-abc","token_type":"Bearer","expires_in":3600}`}, token.CodeTokenTypeMismatch},
		{"token type missing", emulator.EndpointToken, emulator.Fault{Status: 200, Body: `{"access_token":"SECRET-abc","expires_in":3600}`}, token.CodeTokenTypeMissing},
		{"token other oauth error", emulator.EndpointToken, emulator.Fault{Status: 400, Body: `{"error":"invalid_resource","error_description":"AADSTS500011"}`}, token.CodeSTSError},
		{"token 5xx after one retry", emulator.EndpointToken, emulator.Fault{Status: 503}, token.CodeServiceNotAvailable},
		{"token connection dropped", emulator.EndpointToken, emulator.Fault{DropConnection: true}, token.CodeNetwork},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := startEmulator(t, emulator.Config{})
			emu.InjectFault(tc.ep, tc.fault)
			_, err := clientFor(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(context.Background(), "api://r", popOpt)
			te := wantCode(t, err, tc.code)
			if strings.Contains(te.Error(), "SECRET") || te.Source != "imdsv2" {
				t.Fatalf("error %q (source %q)", te, te.Source)
			}
		})
	}
}

// credential is an issuecredential answer with the given certificate and endpoint.
func credential(cert, endpoint string) string {
	return fmt.Sprintf(`{"client_id":"c","tenant_id":"t","certificate":%q,"identity_type":"SystemAssigned","mtls_authentication_endpoint":%q}`, cert, endpoint)
}

func TestIssuedCertificateMustCertifyOurKey(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	foreign := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	der := base64.StdEncoding.EncodeToString(foreign.Certificate[0])
	emu.InjectFault(emulator.EndpointIssueCredential, emulator.Fault{Status: 200, Body: credential(der, emu.MTLSAuthURL()), Count: 1})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	_, err := c.AcquireToken(context.Background(), "api://r", popOpt)
	if te := wantCode(t, err, token.CodeInvalidCertificate); !strings.Contains(te.Message, "another key") {
		t.Fatal(te)
	}
	// The fault was used up: the next acquisition mints a certificate for our key.
	if _, err := c.AcquireToken(context.Background(), "api://r", popOpt); err != nil {
		t.Fatal(err)
	}
}

func sameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func TestStolenTokenAndExpiredCertificateRefusedByResource(t *testing.T) {
	emu := startEmulator(t, emulator.Config{ResourceRequirePoP: true})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	res, err := c.AcquireToken(context.Background(), emu.Config().ResourceID, popOpt)
	if err != nil {
		t.Fatal(err)
	}
	other := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if status, body := callResource(t, c, emu.ResourceURL(), res.Bind(other)); status != 401 || !strings.Contains(body, "invalid_token") {
		t.Fatalf("stolen token: %d %s", status, body)
	}
	expired := selfSigned(t, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	tok, err := emu.MintToken(emu.Config().ResourceID, expired.Leaf, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stale := token.Result{AccessToken: tok, TokenType: token.TypeMtlsPoP, ExpiresOn: time.Now().Add(time.Hour)}.Bind(expired)
	if status, body := callResource(t, c, emu.ResourceURL(), stale); status != 401 {
		t.Fatalf("expired certificate: %d %s", status, body)
	}
	bearer, err := c.AcquireToken(context.Background(), emu.Config().ResourceID)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := callResource(t, c, emu.ResourceURL(), bearer); status != 401 {
		t.Fatalf("unbound Bearer token accepted by a PoP-only resource: %d", status)
	}
}

func TestTokenLegRetries(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	w := &waits{}
	c := clientFor(t, emu, managedidentity.SystemAssigned(), w)
	emu.InjectFault(emulator.EndpointIssueCredential, emulator.Fault{Status: 500, Count: 1})
	emu.InjectFault(emulator.EndpointToken, emulator.Fault{Status: 500, Count: 1})
	if _, err := c.AcquireToken(context.Background(), "api://r", popOpt); err != nil {
		t.Fatal(err)
	}
	if got := w.take(); len(got) != 2 || got[0] != time.Second || got[1] != time.Second {
		t.Fatalf("waits %v", got)
	}
	// Retry-After on a 5xx from the token endpoint means no retry.
	emu.InjectFault(emulator.EndpointToken, emulator.Fault{Status: 503, Header: http.Header{"Retry-After": {"30"}}, Count: 1})
	before := emu.Requests(emulator.EndpointToken)
	_, err := c.AcquireToken(context.Background(), "api://r", popOpt, managedidentity.WithForceRefresh())
	if te := wantCode(t, err, token.CodeServiceNotAvailable); te.Status != 503 || emu.Requests(emulator.EndpointToken)-before != 1 {
		t.Fatalf("%+v after %d requests", te, emu.Requests(emulator.EndpointToken)-before)
	}
}

// A claims challenge always fetches, and its token replaces the cached one (the one the resource
// refused); the background refresh of that token does not repeat the challenge.
func TestClaimsAndForceRefreshFetch(t *testing.T) {
	emu := startEmulator(t, emulator.Config{TokenLifetime: 10 * time.Hour, RefreshIn: 2 * time.Hour})
	var mu sync.Mutex
	offset := time.Duration(0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithClock(clock))
	ctx := context.Background()
	if _, err := c.AcquireToken(ctx, "api://r", popOpt); err != nil {
		t.Fatal(err)
	}
	claims := `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	var res token.Result
	for i := 0; i < 2; i++ {
		var err error
		res, err = c.AcquireToken(ctx, "api://r", popOpt, managedidentity.WithClaims(claims))
		if err != nil || res.Source != token.SourceIdentityProvider {
			t.Fatalf("claims call %d: %v %v", i, res, err)
		}
		if emu.LastRequest(emulator.EndpointToken).Form.Get("claims") != claims {
			t.Fatal("claims not sent")
		}
	}
	if again, _ := c.AcquireToken(ctx, "api://r", popOpt); again.AccessToken != res.AccessToken || again.Source != token.SourceCache {
		t.Fatal("the claims token did not replace the cached one")
	}
	mu.Lock()
	offset += 2*time.Hour + 6*time.Minute // past the refresh point and any jitter
	mu.Unlock()
	if _, err := c.AcquireToken(ctx, "api://r", popOpt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return c.Stats().Refreshes == 1 && c.Stats().InFlight == 0 })
	if n := emu.Requests(emulator.EndpointToken); n != 4 || emu.LastRequest(emulator.EndpointToken).Form.Has("claims") {
		t.Fatalf("%d token requests; the refresh sent claims %q", n, emu.LastRequest(emulator.EndpointToken).Form.Get("claims"))
	}
	res, err := c.AcquireToken(ctx, "api://r", popOpt, managedidentity.WithForceRefresh())
	if err != nil || res.Source != token.SourceIdentityProvider || emu.Requests(emulator.EndpointToken) != 5 {
		t.Fatalf("force refresh: %v %v (%d token requests)", res, err, emu.Requests(emulator.EndpointToken))
	}
	// A forced refresh replaces the cached entry.
	if again, _ := c.AcquireToken(ctx, "api://r", popOpt); again.AccessToken != res.AccessToken || again.Source != token.SourceCache {
		t.Fatal("forced token not cached")
	}
}

func TestConcurrentColdCallersMintOnce(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	var wg sync.WaitGroup
	thumbs := make([]string, 32)
	errs := make([]error, 32)
	for i := range thumbs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := c.AcquireToken(context.Background(), "api://r", popOpt)
			thumbs[i], errs[i] = res.Thumbprint(), err
		}(i)
	}
	wg.Wait()
	for i := range thumbs {
		if errs[i] != nil || thumbs[i] != thumbs[0] {
			t.Fatalf("caller %d: %v %q", i, errs[i], thumbs[i])
		}
	}
	if emu.Requests(emulator.EndpointIssueCredential) != 1 {
		t.Fatalf("%d certificates minted for concurrent callers", emu.Requests(emulator.EndpointIssueCredential))
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil, managedidentity.WithLogger(logger))
	res, err := c.AcquireToken(context.Background(), "api://r", popOpt)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("acquired", "result", res)
	printed := fmt.Sprintf("%v %+v %#v %s %q %v", res, res, res, res, res, &res) + logs.String() + c.String()
	for _, secret := range []string{res.AccessToken, res.AccessToken[len(res.AccessToken)-20:], "PRIVATE KEY"} {
		if strings.Contains(printed, secret) {
			t.Fatalf("output contains a secret: %s", printed)
		}
	}
	if !strings.Contains(printed, "redacted") || !strings.Contains(logs.String(), "minted binding certificate") {
		t.Fatalf("expected redaction markers and logs, got %s", printed)
	}
	if strings.Contains(logs.String(), "csr") && strings.Contains(logs.String(), "MII") {
		t.Fatal("a CSR was logged")
	}
	// The issued certificate is public; its key is not reachable through formatting either.
	if s := fmt.Sprintf("%v", res.TLSCertificate().PrivateKey); strings.Contains(s, "PRIVATE") || strings.Contains(s, "D:") {
		t.Fatalf("key formats as %s", s)
	}
}

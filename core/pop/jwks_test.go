package pop

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/token"
)

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]any{
		"kty": "EC", "kid": kid, "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(b[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(b[33:]),
	}
}

// jwksServer is a real HTTPS JWKS endpoint whose answer the test controls.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	keys     []map[string]any
	status   int
	body     []byte        // when set, served instead of keys
	gate     chan struct{} // when set, each request waits for it (or for the client to leave)
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		gate, status, body, keys := s.gate, s.status, s.body, s.keys
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if body == nil {
			body, _ = json.Marshal(map[string]any{"keys": keys})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *jwksServer) newJWKS(clock *fakeClock) *JWKS {
	j := NewJWKS(s.URL+"/keys", s.Client())
	if clock != nil {
		j.now = clock.Now
	}
	return j
}

func TestJWKSVerifyEndToEnd(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey), ecJWK("ec1", &k.ec.PublicKey))
	v := &Verifier{Keys: srv.newJWKS(nil), Issuer: testIssuer, Audiences: []string{testAud}}
	cert := validTestCert(t)
	for _, tok := range []string{
		signRS256(t, testClaims(cert.leaf)),
		sign(t, jwt.SigningMethodES256, "ec1", k.ec, testClaims(cert.leaf)),
		sign(t, jwt.SigningMethodPS256, "rsa1", k.rsa, testClaims(cert.leaf)),
	} {
		if _, err := v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (keys are cached)", n)
	}
}

// A token's kid is chosen by whoever sends it, so unknown kids must not turn into one JWKS
// request each.
func TestJWKSUnknownKidRateLimit(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey))
	clock := newFakeClock()
	j := srv.newJWKS(clock)
	ctx := context.Background()

	if _, err := j.Key(ctx, "rsa1"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		_, err := j.Key(ctx, "random-"+string(rune('a'+i%26)))
		assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, "unknown signing key", "")
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d JWKS requests within the interval, want 1", n)
	}

	// The issuer rotates in a new key. Within the interval it is not fetched yet...
	srv.set(func(s *jwksServer) { s.keys = append(s.keys, rsaJWK("rsa2", &k.otherRSA.PublicKey)) })
	clock.Advance(JWKSMinRefetchInterval - time.Second)
	if _, err := j.Key(ctx, "rsa2"); !errors.Is(err, token.CodeInvalidToken) {
		t.Fatalf("rsa2 before the interval: %v", err)
	}
	// ...after it, one request picks it up, and further unknown kids are limited again.
	clock.Advance(2 * time.Second)
	if _, err := j.Key(ctx, "rsa2"); err != nil {
		t.Fatalf("rsa2 after the interval: %v", err)
	}
	for range 20 {
		_, _ = j.Key(ctx, "nope")
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d JWKS requests, want 2", n)
	}
	if _, err := j.Key(ctx, "rsa1"); err != nil {
		t.Fatalf("rsa1 still cached: %v", err)
	}
}

func TestJWKSConcurrentCallersShareOneFetch(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey))
	gate := make(chan struct{})
	srv.set(func(s *jwksServer) { s.gate = gate })
	j := srv.newJWKS(nil)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			_, err := j.Key(context.Background(), "rsa1")
			errs <- err
		})
	}
	// Let every goroutine reach the wait before the server answers.
	for srv.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("%d JWKS requests, want 1", n)
	}
}

func TestJWKSFetchFailures(t *testing.T) {
	k := testKeys()
	huge := append([]byte(`{"keys":[`), []byte(strings.Repeat(" ", MaxJWKSBytes))...)
	huge = append(huge, "]}"...)
	tests := []struct {
		name   string
		status int
		body   []byte
		want   string
		also   token.Code
	}{
		{"not found", http.StatusNotFound, []byte(`{"error":"nope"}`), "jwks endpoint answered http 404", ""},
		{"server error", http.StatusInternalServerError, nil, "jwks endpoint answered http 500", ""},
		{"oversize", http.StatusOK, huge, "jwks response too large", token.CodeResponseTooLarge},
		{"not json", http.StatusOK, []byte("<html>"), "jwks response is not a json key set", ""},
		{"no keys member", http.StatusOK, []byte(`{"kid":"x"}`), "jwks response has no keys member", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey))
			srv.set(func(s *jwksServer) { s.status, s.body = tt.status, tt.body })
			j := srv.newJWKS(nil)
			_, err := j.Key(context.Background(), "rsa1")
			assertRefused(t, err, token.CodeNetwork, http.StatusServiceUnavailable, tt.want, "")
			if tt.also != "" && !errors.Is(err, tt.also) {
				t.Errorf("errors.Is(err, %q) = false: %v", tt.also, err)
			}
			var te *token.Error
			if errors.As(err, &te) && !te.Retryable {
				t.Error("JWKS failure not marked retryable")
			}
			// Within the interval the failure is reported again without a new request.
			_, err = j.Key(context.Background(), "rsa1")
			assertRefused(t, err, token.CodeNetwork, http.StatusServiceUnavailable, tt.want, "")
			if n := srv.requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

// Through Verify, a JWKS outage is 503/network_error, not 401: the token may be fine.
func TestVerifyJWKSUnavailable(t *testing.T) {
	srv := newJWKSServer(t)
	srv.set(func(s *jwksServer) { s.status = http.StatusBadGateway })
	v := &Verifier{Keys: srv.newJWKS(nil), Audiences: []string{testAud}}
	cert := validTestCert(t)
	tok := signRS256(t, testClaims(cert.leaf))
	_, err := v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
	assertRefused(t, err, token.CodeNetwork, http.StatusServiceUnavailable, "jwks endpoint answered http 502", tok)
}

func TestJWKSStaleKeys(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey))
	clock := newFakeClock()
	j := srv.newJWKS(clock)
	ctx := context.Background()
	if _, err := j.Key(ctx, "rsa1"); err != nil {
		t.Fatal(err)
	}
	// After JWKSMaxAge the set is fetched again, so withdrawn keys stop working.
	srv.set(func(s *jwksServer) { s.keys = []map[string]any{rsaJWK("rsa2", &k.otherRSA.PublicKey)} })
	clock.Advance(JWKSMaxAge)
	if _, err := j.Key(ctx, "rsa1"); !errors.Is(err, token.CodeInvalidToken) {
		t.Fatalf("withdrawn key after max age: err = %v", err)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	// When the refetch fails, the keys fetched before stay in use.
	srv.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	clock.Advance(JWKSMaxAge)
	if _, err := j.Key(ctx, "rsa2"); err != nil {
		t.Fatalf("stale key during an outage: %v", err)
	}
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	_, err := j.Key(ctx, "rsa9")
	assertRefused(t, err, token.CodeNetwork, http.StatusServiceUnavailable, "jwks endpoint answered http 503", "")
}

func TestJWKSContextCanceled(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey))
	gate := make(chan struct{})
	srv.set(func(s *jwksServer) { s.gate = gate })
	t.Cleanup(func() { close(gate) }) // runs before srv.Close
	j := srv.newJWKS(nil)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := j.Key(ctx, "rsa1")
	if time.Since(start) > 5*time.Second {
		t.Errorf("Key returned after %v, past the deadline", time.Since(start))
	}
	assertRefused(t, err, token.CodeCanceled, http.StatusServiceUnavailable, "verification canceled", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause lost: %v", err)
	}
}

// The fetch started by a caller that gave up still completes for the others.
func TestJWKSFetchOutlivesCaller(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey))
	gate := make(chan struct{})
	srv.set(func(s *jwksServer) { s.gate = gate })
	j := srv.newJWKS(nil)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := j.Key(ctx, "rsa1"); done <- err }()
	for srv.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, token.CodeCanceled) {
		t.Fatalf("canceled caller: %v", err)
	}
	close(gate)
	if _, err := j.Key(context.Background(), "rsa1"); err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestJWKSURLMustBeHTTPS(t *testing.T) {
	_, err := NewJWKS("http://keys.example.invalid/keys", nil).Key(context.Background(), "rsa1")
	assertRefused(t, err, token.CodeNetwork, http.StatusServiceUnavailable, "jwks url must use https", "")
	_, err = NewJWKS("not a url", nil).Key(context.Background(), "rsa1")
	assertRefused(t, err, token.CodeNetwork, http.StatusServiceUnavailable, "invalid jwks url", "")

	// Plain HTTP on loopback is allowed, for local development and the emulator.
	k := testKeys()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK("rsa1", &k.rsa.PublicKey)}})
	}))
	defer srv.Close()
	if _, err := NewJWKS(srv.URL, nil).Key(context.Background(), "rsa1"); err != nil {
		t.Fatalf("loopback http: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	k := testKeys()
	doc := func(keys ...any) []byte {
		if keys == nil {
			keys = []any{}
		}
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	with := func(m map[string]any, key string, v any) map[string]any {
		c := make(map[string]any, len(m))
		for k, x := range m {
			c[k] = x
		}
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
		return c
	}
	r, e := rsaJWK("r", &k.rsa.PublicKey), ecJWK("e", &k.ec.PublicKey)
	tests := []struct {
		name string
		body []byte
		want []string
	}{
		{"rsa and ec", doc(r, e), []string{"e", "r"}},
		{"empty set", doc(), []string{}},
		{"use enc skipped", doc(with(r, "use", "enc"), e), []string{"e"}},
		{"no kid skipped", doc(with(r, "kid", nil), e), []string{"e"}},
		{"weak rsa skipped", doc(rsaJWK("w", &k.weakRSA.PublicKey), e), []string{"e"}},
		{"even exponent skipped", doc(with(r, "e", "Ag"), e), []string{"e"}},
		{"bad base64 skipped", doc(with(r, "n", "!!"), e), []string{"e"}},
		{"P-384 skipped", doc(with(e, "crv", "P-384"), r), []string{"r"}},
		{"point off the curve skipped", doc(with(e, "y", r["n"].(string)[:43]), r), []string{"r"}},
		{"OKP skipped", doc(map[string]any{"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AA"}, r), []string{"r"}},
		{"wrong member types skipped", doc(map[string]any{"kty": 1, "kid": "x"}, "junk", r), []string{"r"}},
		{"duplicate kid: first wins", doc(r, with(e, "kid", "r")), []string{"r"}},
		{"padded base64 tolerated", doc(with(r, "e", r["e"].(string)+"="), e), []string{"e", "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseJWKS(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(func(yield func(string) bool) {
				for kid := range keys {
					if !yield(kid) {
						return
					}
				}
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("kids = %v, want %v", got, tt.want)
			}
		})
	}
	keys, _ := parseJWKS(doc(r, with(e, "kid", "r")))
	if _, ok := keys["r"].(*rsa.PublicKey); !ok {
		t.Errorf("duplicate kid replaced the first key with %T", keys["r"])
	}
	for _, bad := range []string{``, `null`, `[]`, `{"keys":{}}`, `{"keys":null}`} {
		if _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("parseJWKS(%q) accepted it", bad)
		}
		// Given in configuration, a document that is not a key set is the server's mistake.
		_, err := ParseJWKS([]byte(bad))
		var te *token.Error
		if !errors.As(err, &te) || te.Code != token.CodeInvalidArgument || !strings.HasPrefix(te.Message, "jwks ") {
			t.Errorf("ParseJWKS(%q) = %v, want invalid_argument", bad, err)
		}
	}
}

// ParseJWKS feeds StaticKeys: a configured key set verifies tokens as a fetched one does, and
// keeps the same keys.
func TestParseJWKSStaticKeys(t *testing.T) {
	k := testKeys()
	doc, _ := json.Marshal(map[string]any{"keys": []any{
		rsaJWK("rsa1", &k.rsa.PublicKey), ecJWK("ec1", &k.ec.PublicKey), rsaJWK("weak", &k.weakRSA.PublicKey),
	}})
	keys, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys["weak"] != nil {
		t.Fatalf("keys = %v, want rsa1 and ec1 only", keys)
	}
	v := &Verifier{Keys: StaticKeys(keys), Issuer: testIssuer, Audiences: []string{testAud}}
	cert := validTestCert(t)
	if _, err := v.Verify(context.Background(), "mtls_pop "+signRS256(t, testClaims(cert.leaf)), cert.leaf); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestCheckJWKSURL(t *testing.T) {
	for _, ok := range []string{"https://login.example/keys", "http://127.0.0.1:8080/keys", "http://localhost/k", "http://[::1]:1/k"} {
		if err := CheckJWKSURL(ok); err != nil {
			t.Errorf("CheckJWKSURL(%q) = %v", ok, err)
		}
	}
	for _, tc := range []struct{ url, msg string }{
		{"http://keys.example/keys", "jwks url must use https"},
		{"ftp://keys.example/keys", "jwks url must use https"},
		{"http://127.0.0.1.example/keys", "jwks url must use https"},
		{"not a url", "invalid jwks url"},
		{"https:///keys", "invalid jwks url"},
		{"%zz", "invalid jwks url"},
		{"", "invalid jwks url"},
	} {
		assertRefused(t, CheckJWKSURL(tc.url), token.CodeInvalidArgument, http.StatusInternalServerError, tc.msg, "")
	}
}

// A redirect must not take the fetch where the URL check would not have let it go: off https,
// or to plain http on another host. The https endpoint here redirects to a plain-http one on
// loopback that serves a valid key set, so only the redirect policy stands in the way.
func TestJWKSRedirectOffHTTPSRefused(t *testing.T) {
	k := testKeys()
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainHits.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK("rsa1", &k.rsa.PublicKey)}})
	}))
	defer plain.Close()
	good := newJWKSServer(t, rsaJWK("rsa1", &k.rsa.PublicKey))
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http":
			http.Redirect(w, r, plain.URL+"/keys", http.StatusFound)
		case "/to-remote-http":
			http.Redirect(w, r, "http://keys.example.invalid/keys", http.StatusFound)
		case "/to-https":
			http.Redirect(w, r, good.URL+"/keys", http.StatusFound)
		}
	}))
	defer redirector.Close()
	// One client that trusts both test servers' certificates.
	tr := redirector.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs.AddCert(good.Certificate())
	client := &http.Client{Transport: tr}

	for _, path := range []string{"/to-http", "/to-remote-http"} {
		_, err := NewJWKS(redirector.URL+path, client).Key(context.Background(), "rsa1")
		assertRefused(t, err, token.CodeNetwork, http.StatusServiceUnavailable, "jwks redirect to a url that is not https refused", "")
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("the plain-http endpoint was fetched %d times", n)
	}
	if _, err := NewJWKS(redirector.URL+"/to-https", client).Key(context.Background(), "rsa1"); err != nil {
		t.Fatalf("https to https redirect: %v", err)
	}
	// The caller's own redirect policy still applies, and its client is not modified.
	calls := 0
	client.CheckRedirect = func(*http.Request, []*http.Request) error { calls++; return errors.New("no redirects here") }
	if _, err := NewJWKS(redirector.URL+"/to-https", client).Key(context.Background(), "rsa1"); err == nil || calls != 1 {
		t.Fatalf("caller's CheckRedirect: err %v, called %d times", err, calls)
	}
}

// FuzzParseJWKS: a JWKS body is untrusted input too (a compromised or misconfigured
// endpoint); parsing must never panic and every key it returns must be usable.
func FuzzParseJWKS(f *testing.F) {
	k := testKeys()
	good, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK("r", &k.rsa.PublicKey), ecJWK("e", &k.ec.PublicKey)}})
	f.Add(good)
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"a","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			return
		}
		for kid, pub := range keys {
			switch p := pub.(type) {
			case *rsa.PublicKey:
				if p.N.BitLen() < minRSABits || p.E < 3 {
					t.Fatalf("kid %q: weak RSA key accepted", kid)
				}
			case *ecdsa.PublicKey:
			default:
				t.Fatalf("kid %q: unexpected key type %T", kid, pub)
			}
		}
	})
}

var _ KeySet = (*JWKS)(nil)

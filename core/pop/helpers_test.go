package pop

import (
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
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/token"
)

const (
	testIssuer = "https://login.test/tenant-1/v2.0"
	testAud    = "api://resource-1"
)

// testKeyMaterial is generated once per test binary: RSA key generation is slow enough to
// matter under -race and in fuzzing.
type testKeyMaterial struct {
	rsa, otherRSA *rsa.PrivateKey
	ec            *ecdsa.PrivateKey
	ec384         *ecdsa.PrivateKey
	weakRSA       *rsa.PrivateKey
}

var testKeys = sync.OnceValue(func() *testKeyMaterial {
	must := func(k any, err error) any {
		if err != nil {
			panic(err)
		}
		return k
	}
	return &testKeyMaterial{
		rsa:      must(rsa.GenerateKey(rand.Reader, 2048)).(*rsa.PrivateKey),
		otherRSA: must(rsa.GenerateKey(rand.Reader, 2048)).(*rsa.PrivateKey),
		ec:       must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).(*ecdsa.PrivateKey),
		ec384:    must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)).(*ecdsa.PrivateKey),
		weakRSA:  must(rsa.GenerateKey(rand.Reader, 1024)).(*rsa.PrivateKey),
	}
})

// staticTestKeys is the issuer's key set as most tests see it.
func staticTestKeys() KeySet {
	k := testKeys()
	return StaticKeys(map[string]crypto.PublicKey{
		"rsa1":  &k.rsa.PublicKey,
		"ec1":   &k.ec.PublicKey,
		"ec384": &k.ec384.PublicKey,
		"weak":  &k.weakRSA.PublicKey,
	})
}

func newTestVerifier() *Verifier {
	return &Verifier{Keys: staticTestKeys(), Issuer: testIssuer, Audiences: []string{testAud}}
}

// testCert is a self-signed client certificate, the kind IMDSv2 or a confidential client
// presents. Chain verification is not this package's business, so self-signed is enough.
type testCert struct {
	leaf *x509.Certificate
	tls  tls.Certificate
}

func newTestCert(t testing.TB, notBefore, notAfter time.Time) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "client-1"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{leaf: leaf, tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}
}

func validTestCert(t testing.TB) testCert {
	return newTestCert(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// testClaims are the claims the STS would put in a token for the test resource; bound to
// cert when it is non-nil.
func testClaims(cert *x509.Certificate) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": testIssuer,
		"aud": testAud,
		"sub": "subject-1",
		"oid": "object-1",
		"tid": "tenant-1",
		"azp": "client-1",
		"exp": now.Add(time.Hour).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"iat": now.Add(-time.Minute).Unix(),
	}
	if cert != nil {
		c["cnf"] = map[string]any{"x5t#S256": token.Thumbprint(cert)}
	}
	return c
}

// sign signs claims like an issuer would; kid "" leaves the header without one.
func sign(t testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signRS256(t testing.TB, claims jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodRS256, "rsa1", testKeys().rsa, claims)
}

// rawJWT assembles a token from a literal header and claims with an arbitrary signature, for
// headers the jwt package will not produce.
func rawJWT(t testing.TB, header map[string]any, claims jwt.MapClaims, sig string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "." + sig
}

// assertRefused checks err is exactly the refusal we expect and leaks nothing of tok.
func assertRefused(t *testing.T, err error, wantCode token.Code, wantStatus int, wantMsg, tok string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refusal %q", wantMsg)
	}
	if !errors.Is(err, wantCode) {
		t.Errorf("errors.Is(err, %q) = false; err = %v", wantCode, err)
	}
	var te *token.Error
	if !errors.As(err, &te) {
		t.Fatalf("error is %T, want *token.Error", err)
	}
	if te.Status != wantStatus {
		t.Errorf("Status = %d, want %d", te.Status, wantStatus)
	}
	if te.Message != wantMsg {
		t.Errorf("Message = %q, want %q", te.Message, wantMsg)
	}
	assertNoTokenText(t, err.Error(), tok)
}

// assertNoTokenText checks that s contains neither tok nor any of its JWS segments.
func assertNoTokenText(t *testing.T, s, tok string) {
	t.Helper()
	if tok == "" {
		return
	}
	parts := append([]string{tok}, strings.Split(tok, ".")...)
	for _, p := range parts {
		if len(p) >= 8 && strings.Contains(s, p) {
			t.Errorf("%q contains token text %q", s, p)
		}
	}
}

// fakeClock is a settable clock, safe for the goroutine JWKS fetches run on.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// errKeySet is a caller-written KeySet that fails with an error of its own.
type errKeySet struct{ err error }

func (e errKeySet) Key(context.Context, string) (crypto.PublicKey, error) { return nil, e.err }

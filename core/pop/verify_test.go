package pop

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/token"
)

func TestVerifyBoundToken(t *testing.T) {
	cert := validTestCert(t)
	tok := signRS256(t, testClaims(cert.leaf))
	c, err := newTestVerifier().Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.TokenType != token.TypeMtlsPoP || c.X5tS256 != token.Thumbprint(cert.leaf) {
		t.Errorf("TokenType, X5tS256 = %q, %q", c.TokenType, c.X5tS256)
	}
	if c.Issuer != testIssuer || c.Subject != "subject-1" || c.ObjectID != "object-1" ||
		c.TenantID != "tenant-1" || c.ClientID != "client-1" || !slices.Equal(c.Audience, []string{testAud}) {
		t.Errorf("claims = %+v", c)
	}
	if c.ExpiresAt.IsZero() || c.NotBefore.IsZero() || c.IssuedAt.IsZero() || c.Raw["sub"] != "subject-1" {
		t.Errorf("times or raw missing: %+v", c)
	}
}

// The scheme is matched without regard to case (RFC 9110 §11.1), and every accepted algorithm
// and both forms of aud verify.
func TestVerifyAccepts(t *testing.T) {
	cert := validTestCert(t)
	k := testKeys()
	arrayAud := testClaims(cert.leaf)
	arrayAud["aud"] = []string{"api://other", testAud}
	v1 := testClaims(cert.leaf)
	delete(v1, "azp")
	v1["appid"] = "client-v1"
	noTimes := testClaims(cert.leaf)
	delete(noTimes, "nbf")
	delete(noTimes, "iat")
	tests := []struct {
		name, header string
		wantClient   string
	}{
		{"lowercase scheme", "mtls_pop " + signRS256(t, testClaims(cert.leaf)), "client-1"},
		{"uppercase scheme", "MTLS_POP " + signRS256(t, testClaims(cert.leaf)), "client-1"},
		{"PS256", "mtls_pop " + sign(t, jwt.SigningMethodPS256, "rsa1", k.rsa, testClaims(cert.leaf)), "client-1"},
		{"ES256", "mtls_pop " + sign(t, jwt.SigningMethodES256, "ec1", k.ec, testClaims(cert.leaf)), "client-1"},
		{"aud array", "mtls_pop " + signRS256(t, arrayAud), "client-1"},
		{"v1 appid", "mtls_pop " + signRS256(t, v1), "client-v1"},
		{"no nbf or iat", "mtls_pop " + signRS256(t, noTimes), "client-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newTestVerifier().Verify(context.Background(), tt.header, cert.leaf)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.ClientID != tt.wantClient {
				t.Errorf("ClientID = %q, want %q", c.ClientID, tt.wantClient)
			}
		})
	}
}

func TestVerifyRefusals(t *testing.T) {
	cert := validTestCert(t)
	other := validTestCert(t)
	expiredCert := newTestCert(t, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	futureCert := newTestCert(t, time.Now().Add(time.Hour), time.Now().Add(48*time.Hour))
	k := testKeys()
	now := time.Now()

	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := testClaims(cert.leaf)
		mod(c)
		return c
	}
	bound := signRS256(t, testClaims(cert.leaf))
	unbound := signRS256(t, testClaims(nil))
	hmacKey, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	validSig := bound[strings.LastIndexByte(bound, '.')+1:]

	tests := []struct {
		name   string
		header string
		cert   *x509.Certificate
		mod    func(*Verifier)
		want   string
	}{
		// Binding (RFC 8705 §3).
		{name: "cnf mismatch", header: "mtls_pop " + bound, cert: other.leaf,
			want: "token is bound to a different certificate"},
		{name: "no client certificate", header: "mtls_pop " + bound,
			want: "token is certificate-bound but no client certificate was presented"},
		{name: "expired client certificate", header: "mtls_pop " + signRS256(t, testClaims(expiredCert.leaf)),
			cert: expiredCert.leaf, want: "client certificate expired"},
		{name: "client certificate not yet valid", header: "mtls_pop " + signRS256(t, testClaims(futureCert.leaf)),
			cert: futureCert.leaf, want: "client certificate not yet valid"},
		{name: "mtls_pop without cnf", header: "mtls_pop " + unbound, cert: cert.leaf,
			want: "mtls_pop token has no cnf claim"},
		{name: "mtls_pop without cnf even with AllowUnbound", header: "mtls_pop " + unbound, cert: cert.leaf,
			mod: func(v *Verifier) { v.AllowUnbound = true }, want: "mtls_pop token has no cnf claim"},
		{name: "bearer without cnf", header: "Bearer " + unbound,
			want: "unbound bearer tokens are not accepted"},
		{name: "bearer with cnf checks binding", header: "Bearer " + bound, cert: other.leaf,
			mod: func(v *Verifier) { v.AllowUnbound = true }, want: "token is bound to a different certificate"},
		{name: "bearer with cnf needs a certificate", header: "Bearer " + bound,
			mod: func(v *Verifier) { v.AllowUnbound = true }, want: "token is certificate-bound but no client certificate was presented"},
		{name: "cnf not an object", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["cnf"] = "x" })),
			cert: cert.leaf, want: "cnf claim is not an object"},
		{name: "cnf with jkt only", header: "Bearer " + signRS256(t, with(func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": "abc"} })),
			cert: cert.leaf, mod: func(v *Verifier) { v.AllowUnbound = true }, want: "cnf claim has no x5t#S256 member"},
		{name: "x5t not a string", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["cnf"] = map[string]any{"x5t#S256": 5} })),
			cert: cert.leaf, want: "cnf x5t#S256 is not a non-empty string"},

		// Time.
		{name: "expired token", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })),
			cert: cert.leaf, want: "token expired"},
		{name: "expired beyond leeway", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })),
			cert: cert.leaf, mod: func(v *Verifier) { v.Leeway = time.Minute }, want: "token expired"},
		{name: "no exp", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { delete(c, "exp") })),
			cert: cert.leaf, want: "token has no exp claim"},
		{name: "exp a string", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })),
			cert: cert.leaf, want: "exp claim is not a number"},
		{name: "nbf in future", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })),
			cert: cert.leaf, want: "token not yet valid (nbf)"},
		{name: "iat in future", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })),
			cert: cert.leaf, want: "token issued in the future (iat)"},

		// Issuer and audience.
		{name: "wrong aud", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["aud"] = "api://other" })),
			cert: cert.leaf, want: "token audience not accepted"},
		{name: "wrong aud array", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} })),
			cert: cert.leaf, want: "token audience not accepted"},
		{name: "no aud", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { delete(c, "aud") })),
			cert: cert.leaf, want: "token has no aud claim"},
		{name: "aud null", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["aud"] = nil })),
			cert: cert.leaf, want: "aud claim is not a string or an array of strings"},
		{name: "aud array with a number", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["aud"] = []any{testAud, 1} })),
			cert: cert.leaf, want: "aud claim is not a string or an array of strings"},
		{name: "aud a number", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["aud"] = 7 })),
			cert: cert.leaf, want: "aud claim is not a string or an array of strings"},
		{name: "wrong iss", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test/" })),
			cert: cert.leaf, want: "token issuer not accepted"},
		{name: "no iss", header: "mtls_pop " + signRS256(t, with(func(c jwt.MapClaims) { delete(c, "iss") })),
			cert: cert.leaf, want: "token has no iss claim"},

		// Signature and keys.
		{name: "unknown kid", header: "mtls_pop " + sign(t, jwt.SigningMethodRS256, "rsa9", k.rsa, testClaims(cert.leaf)),
			cert: cert.leaf, want: "unknown signing key"},
		{name: "no kid", header: "mtls_pop " + sign(t, jwt.SigningMethodRS256, "", k.rsa, testClaims(cert.leaf)),
			cert: cert.leaf, want: "token header has no kid"},
		{name: "bad signature", header: "mtls_pop " + sign(t, jwt.SigningMethodRS256, "rsa1", k.otherRSA, testClaims(cert.leaf)),
			cert: cert.leaf, want: "invalid signature"},
		{name: "claims swapped under a valid signature", header: "mtls_pop " + rawJWT(t, map[string]any{"alg": "RS256", "kid": "rsa1"},
			with(func(c jwt.MapClaims) { c["sub"] = "admin" }), validSig), cert: cert.leaf, want: "invalid signature"},
		{name: "alg none", header: "mtls_pop " + sign(t, jwt.SigningMethodNone, "rsa1", jwt.UnsafeAllowNoneSignatureType, testClaims(cert.leaf)),
			cert: cert.leaf, want: "signing algorithm not allowed"},
		{name: "HS256 keyed with the public key", header: "mtls_pop " + sign(t, jwt.SigningMethodHS256, "rsa1", hmacKey, testClaims(cert.leaf)),
			cert: cert.leaf, want: "signing algorithm not allowed"},
		{name: "RS512", header: "mtls_pop " + sign(t, jwt.SigningMethodRS512, "rsa1", k.rsa, testClaims(cert.leaf)),
			cert: cert.leaf, want: "signing algorithm not allowed"},
		{name: "unknown alg", header: "mtls_pop " + rawJWT(t, map[string]any{"alg": "XX256", "kid": "rsa1"}, testClaims(cert.leaf), validSig),
			cert: cert.leaf, want: "signing algorithm not allowed"},
		{name: "no alg", header: "mtls_pop " + rawJWT(t, map[string]any{"kid": "rsa1"}, testClaims(cert.leaf), validSig),
			cert: cert.leaf, want: "signing algorithm not allowed"},
		{name: "crit header", header: "mtls_pop " + func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, testClaims(cert.leaf))
			tok.Header["kid"], tok.Header["crit"] = "rsa1", []string{"exp"}
			s, _ := tok.SignedString(k.rsa)
			return s
		}(), cert: cert.leaf, want: "token header has critical parameters"},
		{name: "ES256 token naming an RSA key", header: "mtls_pop " + sign(t, jwt.SigningMethodES256, "rsa1", k.ec, testClaims(cert.leaf)),
			cert: cert.leaf, want: "signing key does not match the token algorithm"},
		{name: "RS256 token naming an EC key", header: "mtls_pop " + sign(t, jwt.SigningMethodRS256, "ec1", k.rsa, testClaims(cert.leaf)),
			cert: cert.leaf, want: "signing key does not match the token algorithm"},
		{name: "ES256 with a P-384 key", header: "mtls_pop " + rawJWT(t, map[string]any{"alg": "ES256", "kid": "ec384"}, testClaims(cert.leaf), validSig),
			cert: cert.leaf, want: "signing key does not match the token algorithm"},
		{name: "RSA key under 2048 bits", header: "mtls_pop " + sign(t, jwt.SigningMethodRS256, "weak", k.weakRSA, testClaims(cert.leaf)),
			cert: cert.leaf, want: "signing key does not match the token algorithm"},
		{name: "custom KeySet error text is dropped", header: "mtls_pop " + bound, cert: cert.leaf,
			mod:  func(v *Verifier) { v.Keys = errKeySet{errors.New("no key rsa1 for " + bound)} },
			want: "unknown signing key"},
		{name: "not a JWT", header: "mtls_pop abc.def", cert: cert.leaf, want: "malformed token"},
		{name: "padded base64 segments", header: "mtls_pop " + strings.Replace(bound, ".", "=.", 1), cert: cert.leaf,
			want: "token contains characters not allowed in an access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier()
			if tt.mod != nil {
				tt.mod(v)
			}
			_, tok, _ := strings.Cut(tt.header, " ")
			c, err := v.Verify(context.Background(), tt.header, tt.cert)
			if c != nil {
				t.Errorf("claims returned with a refusal: %+v", c)
			}
			assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, tt.want, tok)
		})
	}
}

func TestVerifyHeaderForms(t *testing.T) {
	cert := validTestCert(t)
	tok := signRS256(t, testClaims(cert.leaf))
	tests := []struct {
		name, header, want string
	}{
		{"missing", "", "missing authorization header"},
		{"no scheme", tok, `malformed authorization header: want "<scheme> <token>" with one space`},
		{"unknown scheme", "DPoP " + tok, "unsupported authorization scheme: want mtls_pop or bearer"},
		{"basic", "Basic dXNlcjpwYXNz", "unsupported authorization scheme: want mtls_pop or bearer"},
		{"scheme only", "mtls_pop", "empty token"},
		{"scheme and space", "mtls_pop ", "empty token"},
		{"two spaces", "mtls_pop  " + tok, `malformed authorization header: want "<scheme> <token>" with one space`},
		{"tab", "mtls_pop\t" + tok, `malformed authorization header: want "<scheme> <token>" with one space`},
		{"leading space", " mtls_pop " + tok, `malformed authorization header: want "<scheme> <token>" with one space`},
		{"trailing space", "mtls_pop " + tok + " ", `malformed authorization header: want "<scheme> <token>" with one space`},
		{"two tokens", "mtls_pop " + tok + " " + tok, `malformed authorization header: want "<scheme> <token>" with one space`},
		{"control character", "mtls_pop " + tok + "\r\nX-Evil: 1", `malformed authorization header: want "<scheme> <token>" with one space`},
		{"non-ascii", "mtls_pop " + tok + "é", "token contains characters not allowed in an access token"},
		{"only padding", "mtls_pop ===", "token contains characters not allowed in an access token"},
		{"oversize", "mtls_pop " + tok + strings.Repeat("A", MaxAuthorizationBytes), "authorization header too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTestVerifier().Verify(context.Background(), tt.header, cert.leaf)
			assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, tt.want, tok)
		})
	}
}

func TestVerifyUnboundBearer(t *testing.T) {
	tok := signRS256(t, testClaims(nil))
	v := newTestVerifier()
	_, err := v.Verify(context.Background(), "Bearer "+tok, nil)
	assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, "unbound bearer tokens are not accepted", tok)

	v.AllowUnbound = true
	c, err := v.Verify(context.Background(), "bearer "+tok, nil)
	if err != nil {
		t.Fatalf("AllowUnbound: %v", err)
	}
	if c.TokenType != token.TypeBearer || c.X5tS256 != "" {
		t.Errorf("TokenType, X5tS256 = %q, %q", c.TokenType, c.X5tS256)
	}
	// A certificate on the connection changes nothing for an unbound token.
	if _, err := v.Verify(context.Background(), "Bearer "+tok, validTestCert(t).leaf); err != nil {
		t.Errorf("with a certificate: %v", err)
	}
}

// A bound token presented as Bearer is still bound: the scheme is the client's choice, the cnf
// claim the issuer's.
func TestVerifyBearerWithCnf(t *testing.T) {
	cert := validTestCert(t)
	tok := signRS256(t, testClaims(cert.leaf))
	for _, allow := range []bool{false, true} {
		v := newTestVerifier()
		v.AllowUnbound = allow
		c, err := v.Verify(context.Background(), "Bearer "+tok, cert.leaf)
		if err != nil {
			t.Fatalf("AllowUnbound=%v: %v", allow, err)
		}
		if c.TokenType != token.TypeBearer || c.X5tS256 != token.Thumbprint(cert.leaf) {
			t.Errorf("TokenType, X5tS256 = %q, %q", c.TokenType, c.X5tS256)
		}
		_, err = v.Verify(context.Background(), "Bearer "+tok, validTestCert(t).leaf)
		assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, "token is bound to a different certificate", tok)
	}
}

func TestVerifyLeeway(t *testing.T) {
	cert := newTestCert(t, time.Now().Add(-48*time.Hour), time.Now().Add(-30*time.Second))
	c := testClaims(cert.leaf)
	c["exp"] = time.Now().Add(-30 * time.Second).Unix()
	c["nbf"] = time.Now().Add(30 * time.Second).Unix()
	c["iat"] = time.Now().Add(30 * time.Second).Unix()
	tok := signRS256(t, c)
	v := newTestVerifier()
	v.Leeway = 2 * time.Minute
	if _, err := v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	// The clock is injectable: an hour later the leeway no longer covers exp.
	v.Now = func() time.Time { return time.Now().Add(time.Hour) }
	_, err := v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
	assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, "token expired", tok)
}

func TestVerifyMisconfigured(t *testing.T) {
	cert := validTestCert(t)
	tok := signRS256(t, testClaims(cert.leaf))
	v := newTestVerifier()
	v.Audiences = nil
	_, err := v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
	assertRefused(t, err, token.CodeInvalidArgument, http.StatusInternalServerError, "verifier has no accepted audiences", tok)

	v = newTestVerifier()
	v.Keys = nil
	_, err = v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
	assertRefused(t, err, token.CodeInvalidArgument, http.StatusInternalServerError, "verifier has no key set", tok)

	// An empty string in Audiences matches nothing, not even an empty aud.
	v = newTestVerifier()
	v.Audiences = []string{""}
	for aud, want := range map[any]string{"": "token has no aud claim", "x": "token audience not accepted"} {
		c := testClaims(cert.leaf)
		c["aud"] = aud
		tok = signRS256(t, c)
		_, err = v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
		assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, want, tok)
	}
	c := testClaims(cert.leaf)
	c["aud"] = []any{"", "x"}
	tok = signRS256(t, c)
	_, err = v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
	assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, "token audience not accepted", tok)
}

func TestVerifyKeySetContextError(t *testing.T) {
	cert := validTestCert(t)
	tok := signRS256(t, testClaims(cert.leaf))
	v := newTestVerifier()
	v.Keys = errKeySet{context.DeadlineExceeded}
	_, err := v.Verify(context.Background(), "mtls_pop "+tok, cert.leaf)
	assertRefused(t, err, token.CodeCanceled, http.StatusServiceUnavailable, "verification canceled", tok)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause lost: %v", err)
	}
}

func TestStaticKeysCopiesMap(t *testing.T) {
	m := map[string]crypto.PublicKey{"rsa1": &testKeys().rsa.PublicKey}
	ks := StaticKeys(m)
	delete(m, "rsa1")
	if _, err := ks.Key(context.Background(), "rsa1"); err != nil {
		t.Fatalf("key lost after caller changed the map: %v", err)
	}
	_, err := ks.Key(context.Background(), "nope")
	assertRefused(t, err, token.CodeInvalidToken, http.StatusUnauthorized, "unknown signing key", "")
}

// FuzzVerify feeds arbitrary Authorization values to Verify: it must never panic, must fail
// with a *token.Error, and must never echo the token.
func FuzzVerify(f *testing.F) {
	cert := validTestCert(f)
	k := testKeys()
	good := signRS256(f, testClaims(cert.leaf))
	for _, s := range []string{
		"mtls_pop " + good,
		"Bearer " + good,
		"mtls_pop " + sign(f, jwt.SigningMethodES256, "ec1", k.ec, testClaims(cert.leaf)),
		"mtls_pop " + sign(f, jwt.SigningMethodNone, "rsa1", jwt.UnsafeAllowNoneSignatureType, testClaims(cert.leaf)),
		"mtls_pop " + good[:len(good)/2],
		"", "mtls_pop", "mtls_pop ", "Bearer a.b.c", "mtls_pop e30.e30.", "mtls_pop  x", "Basic Zm9vOmJhcg==",
	} {
		f.Add(s)
	}
	v := newTestVerifier()
	v.AllowUnbound = true
	f.Fuzz(func(t *testing.T, header string) {
		c, err := v.Verify(context.Background(), header, cert.leaf)
		if err == nil {
			if c == nil || c.X5tS256 != token.Thumbprint(cert.leaf) && c.X5tS256 != "" {
				t.Fatalf("accepted with claims %+v", c)
			}
			return
		}
		var te *token.Error
		if !errors.As(err, &te) {
			t.Fatalf("error %T is not *token.Error", err)
		}
		if _, tok, ok := strings.Cut(header, " "); ok && len(tok) >= 24 && strings.Contains(err.Error(), tok) {
			t.Fatalf("error %q echoes the token", err)
		}
	})
}

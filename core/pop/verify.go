package pop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mtlspop/mtlspop/core/token"
)

// allowedAlgs are the JWS algorithms a token may be signed with: what Entra and the emulator
// use. Everything else is refused before any key is looked up: "none" and the HMAC family
// above all, since an HMAC "verified" with a public key is the classic JWT forgery.
var allowedAlgs = []string{"RS256", "PS256", "ES256"}

// Verifier checks access tokens presented to a resource. Its fields are read, never written,
// by Verify, so one Verifier may serve any number of concurrent requests; do not change the
// fields while it is in use.
type Verifier struct {
	// Keys gives the issuer's signing keys; required.
	Keys KeySet
	// Issuer, if non-empty, must equal the token's iss exactly.
	Issuer string
	// Audiences lists the aud values this resource answers to; the token's aud (a string or
	// an array) must contain one of them. Required: a Verifier with no audience would accept
	// tokens minted for any other resource of the same issuer, so it refuses every token.
	Audiences []string
	// AllowUnbound accepts tokens without a cnf claim when they come with the Bearer scheme,
	// for resources that serve PoP and classic clients side by side. A token that has a cnf
	// claim is bound, and its binding is checked whatever the scheme.
	AllowUnbound bool
	// Leeway is the clock skew tolerated when comparing the current time with exp, nbf, iat
	// and the client certificate's validity period.
	Leeway time.Duration
	// Now returns the current time; nil means time.Now. It exists for tests.
	Now func() time.Time
}

// Claims is what a verified token says about its caller.
type Claims struct {
	Issuer   string
	Subject  string
	ObjectID string // oid: the caller's object id in the tenant
	TenantID string // tid
	ClientID string // azp (v2 tokens) or appid (v1 tokens)
	Audience []string

	ExpiresAt time.Time
	NotBefore time.Time // zero when the token has no nbf
	IssuedAt  time.Time // zero when the token has no iat

	// TokenType is the scheme the token was presented with: token.TypeMtlsPoP or
	// token.TypeBearer.
	TokenType string
	// X5tS256 is the token's cnf.x5t#S256, which Verify has matched against the client
	// certificate; "" for an unbound token.
	X5tS256 string
	// Raw holds every claim of the token as decoded from JSON, for claims not surfaced above
	// (roles, scp, ...). Callers must not modify it.
	Raw map[string]any
}

// Messages of token refusals, one per check.
const (
	msgMisconfiguredKeys      = "verifier has no key set"
	msgMisconfiguredAudiences = "verifier has no accepted audiences"
	msgMalformedToken         = "malformed token"
	msgAlgNotAllowed          = "signing algorithm not allowed"
	msgNoKid                  = "token header has no kid"
	msgCrit                   = "token header has critical parameters"
	msgKeyMismatch            = "signing key does not match the token algorithm"
	msgBadSignature           = "invalid signature"
	msgNoExp                  = "token has no exp claim"
	msgBadExp                 = "exp claim is not a number"
	msgExpired                = "token expired"
	msgBadNbf                 = "nbf claim is not a number"
	msgNotYetValid            = "token not yet valid (nbf)"
	msgBadIat                 = "iat claim is not a number"
	msgIssuedInFuture         = "token issued in the future (iat)"
	msgBadIss                 = "iss claim is not a string"
	msgNoIss                  = "token has no iss claim"
	msgWrongIss               = "token issuer not accepted"
	msgBadAud                 = "aud claim is not a string or an array of strings"
	msgNoAud                  = "token has no aud claim"
	msgWrongAud               = "token audience not accepted"
	msgBadCnf                 = "cnf claim is not an object"
	msgNoX5t                  = "cnf claim has no x5t#S256 member"
	msgBadX5t                 = "cnf x5t#S256 is not a non-empty string"
	msgNoClientCert           = "token is certificate-bound but no client certificate was presented"
	msgCertMismatch           = "token is bound to a different certificate"
	msgCertExpired            = "client certificate expired"
	msgCertNotYetValid        = "client certificate not yet valid"
	msgPoPUnbound             = "mtls_pop token has no cnf claim"
	msgUnboundRefused         = "unbound bearer tokens are not accepted"
)

// Verify checks the Authorization header value of a request and the client certificate of its
// TLS connection (nil when the client presented none), and returns the token's claims.
//
// The checks, in order: the header is "<mtls_pop|Bearer> <token>"; the token is a JWT signed
// with RS256, PS256 or ES256 by the key its kid names; exp is present and not passed, nbf and
// iat are not in the future; iss and aud are accepted; and then the binding (RFC 8705 §3): a
// token with cnf.x5t#S256 is accepted only from a connection whose client certificate has that
// thumbprint and is within its validity period, whatever the scheme says, because the scheme
// is chosen by the client and the cnf claim by the issuer. A token without cnf is accepted only
// with the Bearer scheme and AllowUnbound.
//
// Errors are *token.Error, see the package documentation.
func (v *Verifier) Verify(ctx context.Context, authorization string, clientCert *x509.Certificate) (*Claims, error) {
	scheme, raw, err := parseAuthorization(authorization)
	if err != nil {
		return nil, err
	}
	if v.Keys == nil {
		return nil, misconfigured(msgMisconfiguredKeys)
	}
	if len(v.Audiences) == 0 {
		return nil, misconfigured(msgMisconfiguredAudiences)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}

	// Claims validation is done below rather than by jwt's validator, so each failure gets its
	// own message and the checks run in a fixed order. Strict decoding refuses non-canonical
	// base64, so a token has exactly one encoding.
	parser := jwt.NewParser(jwt.WithValidMethods(allowedAlgs), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	mc := jwt.MapClaims{}
	tok, err := parser.ParseWithClaims(raw, mc, func(t *jwt.Token) (any, error) { return v.key(ctx, t) })
	if err != nil {
		return nil, parseError(tok, err)
	}

	c := &Claims{TokenType: scheme, Raw: mc}
	if err := v.checkClaims(mc, now(), c); err != nil {
		return nil, err
	}
	if c.X5tS256, err = confirmation(mc); err != nil {
		return nil, err
	}
	if err := v.checkBinding(scheme, c.X5tS256, clientCert, now()); err != nil {
		return nil, err
	}
	return c, nil
}

// key is the jwt.Keyfunc: it runs after the algorithm check, so a token with a refused alg
// never causes a key lookup, let alone a JWKS fetch.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: a recipient that does not understand a critical extension must refuse.
	if _, ok := t.Header["crit"]; ok {
		return nil, invalid(msgCrit)
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, invalid(msgNoKid)
	}
	k, err := v.Keys.Key(ctx, kid)
	if err != nil {
		return nil, keyLookupError(err)
	}
	// The jwt package checks the Go type of the key but not the curve or the size, so an ES256
	// token could otherwise be checked against a P-384 key, or an RS256 token against a
	// 512-bit one.
	switch pub := k.(type) {
	case *rsa.PublicKey:
		if t.Method.Alg() == "ES256" || pub.N == nil || pub.N.BitLen() < minRSABits || pub.N.BitLen() > maxRSABits {
			return nil, invalid(msgKeyMismatch)
		}
	case *ecdsa.PublicKey:
		if t.Method.Alg() != "ES256" || pub.Curve != elliptic.P256() {
			return nil, invalid(msgKeyMismatch)
		}
	default:
		return nil, invalid(msgKeyMismatch)
	}
	return k, nil
}

// parseError maps a jwt parse failure to a refusal. Errors produced by key (all *token.Error)
// pass through; jwt's own errors are mapped by sentinel, never by their text, which may quote
// parts of the token.
func parseError(t *jwt.Token, err error) error {
	var te *token.Error
	switch {
	case errors.As(err, &te):
		return te
	case t != nil && t.Method != nil && !slices.Contains(allowedAlgs, t.Method.Alg()):
		return invalid(msgAlgNotAllowed)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid(msgMalformedToken)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The only path left here: alg missing or unknown to the jwt package.
		return invalid(msgAlgNotAllowed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid(msgBadSignature)
	}
	return invalid(msgMalformedToken)
}

// checkClaims validates the registered claims and copies them into c.
func (v *Verifier) checkClaims(mc jwt.MapClaims, now time.Time, c *Claims) error {
	exp, err := mc.GetExpirationTime()
	switch {
	case err != nil:
		return invalid(msgBadExp)
	case exp == nil:
		return invalid(msgNoExp)
	case !now.Before(exp.Add(v.Leeway)):
		return invalid(msgExpired)
	}
	c.ExpiresAt = exp.Time

	nbf, err := mc.GetNotBefore()
	switch {
	case err != nil:
		return invalid(msgBadNbf)
	case nbf != nil && now.Before(nbf.Add(-v.Leeway)):
		return invalid(msgNotYetValid)
	case nbf != nil:
		c.NotBefore = nbf.Time
	}

	iat, err := mc.GetIssuedAt()
	switch {
	case err != nil:
		return invalid(msgBadIat)
	case iat != nil && now.Before(iat.Add(-v.Leeway)):
		return invalid(msgIssuedInFuture)
	case iat != nil:
		c.IssuedAt = iat.Time
	}

	iss, err := mc.GetIssuer()
	switch {
	case err != nil:
		return invalid(msgBadIss)
	case v.Issuer != "" && iss == "":
		return invalid(msgNoIss)
	case v.Issuer != "" && iss != v.Issuer:
		return invalid(msgWrongIss)
	}
	c.Issuer = iss

	aud, err := audience(mc)
	switch {
	case err != nil:
		return invalid(msgBadAud)
	case len(aud) == 0:
		return invalid(msgNoAud)
	case !slices.ContainsFunc(aud, func(a string) bool { return a != "" && slices.Contains(v.Audiences, a) }):
		return invalid(msgWrongAud)
	}
	c.Audience = aud

	c.Subject = stringClaim(mc, "sub")
	c.ObjectID = stringClaim(mc, "oid")
	c.TenantID = stringClaim(mc, "tid")
	if c.ClientID = stringClaim(mc, "azp"); c.ClientID == "" {
		c.ClientID = stringClaim(mc, "appid")
	}
	return nil
}

// audience reads aud, a string or an array of strings (RFC 7519 §4.1.3). It is stricter than
// jwt.MapClaims.GetAudience, which reads an aud of any other type as absent.
func audience(mc jwt.MapClaims) ([]string, error) {
	switch a := mc["aud"].(type) {
	case nil:
		if _, present := mc["aud"]; present {
			return nil, errBadAudience
		}
		return nil, nil
	case string:
		if a == "" {
			return nil, nil
		}
		return []string{a}, nil
	case []any:
		out := make([]string, 0, len(a))
		for _, v := range a {
			s, ok := v.(string)
			if !ok {
				return nil, errBadAudience
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errBadAudience
}

var errBadAudience = errors.New("bad aud")

func stringClaim(mc jwt.MapClaims, name string) string {
	s, _ := mc[name].(string)
	return s
}

// confirmation returns cnf.x5t#S256, or "" when the token has no cnf claim. A cnf claim that
// does not carry x5t#S256 binds the token some other way (a DPoP key, say) that this package
// cannot check, so the token is refused rather than treated as unbound.
func confirmation(mc jwt.MapClaims) (string, error) {
	v, ok := mc["cnf"]
	if !ok {
		return "", nil
	}
	cnf, ok := v.(map[string]any)
	if !ok {
		return "", invalid(msgBadCnf)
	}
	x, ok := cnf["x5t#S256"]
	if !ok {
		return "", invalid(msgNoX5t)
	}
	x5t, ok := x.(string)
	if !ok || x5t == "" {
		return "", invalid(msgBadX5t)
	}
	return x5t, nil
}

// checkBinding applies RFC 8705 §3 to the verified token.
func (v *Verifier) checkBinding(scheme, x5t string, cert *x509.Certificate, now time.Time) error {
	if x5t == "" {
		switch {
		case scheme == token.TypeMtlsPoP:
			return invalid(msgPoPUnbound)
		case !v.AllowUnbound:
			return invalid(msgUnboundRefused)
		}
		return nil
	}
	if cert == nil || len(cert.Raw) == 0 {
		return invalid(msgNoClientCert)
	}
	// The thumbprint is public, so constant time is not needed for secrecy; it costs nothing
	// and keeps the comparison free of questions.
	if subtle.ConstantTimeCompare([]byte(token.ThumbprintDER(cert.Raw)), []byte(x5t)) != 1 {
		return invalid(msgCertMismatch)
	}
	// A server that only requests client certificates (the usual set-up for mtls_pop, where
	// the certificate is self-issued or from a CA the resource does not know) has not checked
	// the validity period in the handshake, so it is checked here.
	switch {
	case now.After(cert.NotAfter.Add(v.Leeway)):
		return invalid(msgCertExpired)
	case now.Before(cert.NotBefore.Add(-v.Leeway)):
		return invalid(msgCertNotYetValid)
	}
	return nil
}

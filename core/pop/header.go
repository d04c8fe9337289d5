package pop

import (
	"strings"

	"github.com/mtlspop/mtlspop/core/token"
)

// MaxAuthorizationBytes caps the Authorization header Verify accepts. Real access tokens are a
// few KiB; anything bigger is refused before it is decoded, so a client cannot make the server
// base64-decode and JSON-parse megabytes per request.
const MaxAuthorizationBytes = 16 << 10

// Messages of header refusals. They are constants so no message can ever echo the header.
const (
	msgMissingHeader   = "missing authorization header"
	msgHeaderTooLarge  = "authorization header too large"
	msgMalformedHeader = `malformed authorization header: want "<scheme> <token>" with one space`
	msgUnknownScheme   = "unsupported authorization scheme: want mtls_pop or bearer"
	msgEmptyToken      = "empty token"
	msgTokenSyntax     = "token contains characters not allowed in an access token"
)

// parseAuthorization splits "<scheme> <token>" and returns the canonical scheme
// (token.TypeMtlsPoP or token.TypeBearer) and the token.
//
// It is strict on purpose: exactly one space, a known scheme (case-insensitive, RFC 9110
// §11.1), and a token made only of RFC 6750 b64token characters. A lenient parser would let
// header-splitting tricks or stray whitespace through to the JWT decoder, and gains nothing:
// every client we know of sends the exact form.
func parseAuthorization(h string) (scheme, tok string, err error) {
	if h == "" {
		return "", "", invalid(msgMissingHeader)
	}
	if len(h) > MaxAuthorizationBytes {
		return "", "", invalid(msgHeaderTooLarge)
	}
	sp := strings.IndexByte(h, ' ')
	if sp < 0 {
		if canonicalScheme(h) != "" {
			return "", "", invalid(msgEmptyToken)
		}
		return "", "", invalid(msgMalformedHeader)
	}
	scheme, tok = canonicalScheme(h[:sp]), h[sp+1:]
	switch {
	case sp == 0:
		return "", "", invalid(msgMalformedHeader)
	case scheme == "":
		return "", "", invalid(msgUnknownScheme)
	case tok == "":
		return "", "", invalid(msgEmptyToken)
	case strings.ContainsAny(tok, " \t"):
		return "", "", invalid(msgMalformedHeader)
	case !isB64Token(tok):
		return "", "", invalid(msgTokenSyntax)
	}
	return scheme, tok, nil
}

// canonicalScheme maps an Authorization scheme to the spelling used everywhere else in
// libmtlspop, or "" when it is not one this package accepts.
func canonicalScheme(s string) string {
	switch {
	case strings.EqualFold(s, token.TypeMtlsPoP):
		return token.TypeMtlsPoP
	case strings.EqualFold(s, token.TypeBearer):
		return token.TypeBearer
	}
	return ""
}

// isB64Token reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

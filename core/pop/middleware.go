package pop

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/mtlspop/mtlspop/core/token"
)

type claimsKey struct{}

// FromContext returns the claims Middleware stored for the request, and whether there were any.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware verifies every request with v before passing it on, and stores the claims in the
// request's context (read them with FromContext).
//
// The client certificate is r.TLS.PeerCertificates[0], so the server must ask for one:
// tls.RequestClientCert at least. If TLS terminates in a proxy in front of the server, the
// certificate never reaches it, and every bound token is refused: verify in the proxy, or
// call Verify yourself with the certificate the proxy forwards over a channel you trust.
//
// A refused request gets 401 with an RFC 6750 challenge in the scheme the client used
// (mtls_pop when it used none we know):
//
//	WWW-Authenticate: mtls_pop error="invalid_token", error_description="token expired"
//
// and the same two fields as a JSON body. A request without credentials gets a challenge with
// no error code, as RFC 6750 §3.1 asks. When the keys cannot be fetched the answer is 503, with
// no challenge, so clients keep their tokens and retry.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var cert *x509.Certificate
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				cert = r.TLS.PeerCertificates[0]
			}
			values := r.Header.Values("Authorization")
			authz := ""
			if len(values) > 0 {
				authz = values[0]
			}
			scheme, _, _ := strings.Cut(authz, " ")
			scheme = canonicalScheme(scheme)
			if scheme == "" {
				scheme = token.TypeMtlsPoP
			}

			var (
				claims *Claims
				err    error
			)
			switch {
			case len(values) > 1:
				// Two headers would leave it to chance which token is checked and which
				// one a later layer reads.
				err = invalid("multiple authorization headers")
			default:
				claims, err = v.Verify(r.Context(), authz, cert)
			}
			if err != nil {
				writeRefusal(w, scheme, authz == "" && len(values) <= 1, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}

type refusalBody struct {
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description"`
}

// writeRefusal answers a request Verify refused. Only the error's Message is sent: it is
// written by this package and never holds token text, while the wrapped cause (a transport
// error, say) is for the server's logs, not for the client.
func writeRefusal(w http.ResponseWriter, scheme string, noCredentials bool, err error) {
	var te *token.Error
	if !errors.As(err, &te) {
		te = &token.Error{Code: token.CodeInternal, Status: http.StatusInternalServerError, Message: "internal error"}
	}
	status := te.Status
	if status == 0 {
		status = http.StatusUnauthorized
	}
	body := refusalBody{ErrorDescription: te.Message}
	h := w.Header()
	switch {
	case status == http.StatusUnauthorized && noCredentials:
		h.Set("WWW-Authenticate", scheme)
	case status == http.StatusUnauthorized:
		body.Error = "invalid_token"
		h.Set("WWW-Authenticate", scheme+` error="invalid_token", error_description=`+quote(te.Message))
	case status == http.StatusServiceUnavailable:
		body.Error = "temporarily_unavailable"
	default:
		body.Error = "server_error"
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// quote makes an RFC 9110 quoted-string. Messages are this package's own constants, but
// quoting properly keeps the header well-formed whatever they become.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

package emulator

import (
	"net/http"
	"strings"

	"github.com/mtlspop/mtlspop/core/pop"
)

// The sample resource: every path is protected by pop.Middleware. It asks for any TLS client
// certificate (the chain is not checked: whether the token is bound to that certificate is the
// token's job), accepts tokens for Config.ResourceID or its own URL, and with
// Config.ResourceRequirePoP refuses tokens that are not bound. Its answer says who called and
// echoes the request's method, body length and ResourceEchoHeader; a body over the emulator's
// request limit is refused with 413, since its length could not be reported.

// ResourceMessage is the "message" of the sample resource's answer.
const ResourceMessage = "hello from the mtlspop emulator resource"

// ResourceEchoHeader is the request header the sample resource echoes in "echo", so that tests
// of a client's call API can see which headers reached the resource.
const ResourceEchoHeader = "X-Mtlspop-Echo"

type resourceResponse struct {
	Message   string `json:"message"`
	Subject   string `json:"subject"`
	ClientID  string `json:"client_id"`
	TokenType string `json:"token_type"`
	X5tS256   string `json:"x5t#S256"`
	// What the request carried, so tests of a client's call API can check that it forwards the
	// method, headers and body it was given.
	Method    string `json:"method"`
	BodyBytes int    `json:"body_bytes"`
	Echo      string `json:"echo,omitempty"` // the ResourceEchoHeader values, joined by ", "
}

func (e *Emulator) resourceHandler() http.Handler {
	return e.endpoint(EndpointResource, func(w http.ResponseWriter, r *http.Request, x *exchange) {
		// Built per request so the answer can see this request's exchange (its body).
		pop.Middleware(e.verifier)(e.resourceAnswer(x)).ServeHTTP(w, r)
	})
}

// resourceAnswer is what the resource answers once the middleware has verified the token.
func (e *Emulator) resourceAnswer(x *exchange) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := pop.FromContext(r.Context())
		if !ok {
			// Unreachable with a working middleware; refuse rather than answer unauthenticated.
			writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_token", Description: "no verified token"})
			return
		}
		if x.tooLarge {
			// endpoint kept only the first maxRequestBody bytes; body_bytes would be wrong.
			writeError(w, x, http.StatusRequestEntityTooLarge, "invalid_request", "request body is too large")
			return
		}
		writeJSON(w, http.StatusOK, resourceResponse{
			Message:   ResourceMessage,
			Subject:   c.Subject,
			ClientID:  c.ClientID,
			TokenType: c.TokenType,
			X5tS256:   c.X5tS256,
			Method:    r.Method,
			BodyBytes: len(x.body),
			Echo:      strings.Join(r.Header.Values(ResourceEchoHeader), ", "),
		})
	})
}

package emulator

import (
	"net/http"

	"github.com/mtlspop/mtlspop/core/pop"
)

// The sample resource: every path is protected by pop.Middleware. It asks for any TLS client
// certificate (the chain is not checked: whether the token is bound to that certificate is the
// token's job), accepts tokens for Config.ResourceID or its own URL, and with
// Config.ResourceRequirePoP refuses tokens that are not bound.

// ResourceMessage is the "message" of the sample resource's answer.
const ResourceMessage = "hello from the mtlspop emulator resource"

type resourceResponse struct {
	Message   string `json:"message"`
	Subject   string `json:"subject"`
	ClientID  string `json:"client_id"`
	TokenType string `json:"token_type"`
	X5tS256   string `json:"x5t#S256"`
}

func (e *Emulator) resourceHandler() http.Handler {
	protected := pop.Middleware(e.verifier)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := pop.FromContext(r.Context())
		if !ok {
			// Unreachable with a working middleware; refuse rather than answer unauthenticated.
			writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_token", Description: "no verified token"})
			return
		}
		writeJSON(w, http.StatusOK, resourceResponse{
			Message:   ResourceMessage,
			Subject:   c.Subject,
			ClientID:  c.ClientID,
			TokenType: c.TokenType,
			X5tS256:   c.X5tS256,
		})
	}))
	return e.endpoint(EndpointResource, func(w http.ResponseWriter, r *http.Request, _ *exchange) {
		protected.ServeHTTP(w, r)
	})
}

package pop

import (
	"context"
	"errors"
	"net/http"

	"github.com/mtlspop/mtlspop/core/token"
)

// invalid is the one way this package refuses a token. Keeping it in one place keeps every
// refusal the same shape: CodeInvalidToken, Status 401, a fixed lowercase message. Callers only
// ever pass constant strings, so no part of the token can reach the message.
func invalid(msg string) *token.Error {
	return &token.Error{Code: token.CodeInvalidToken, Status: http.StatusUnauthorized, Message: msg}
}

// unavailable reports a failure that is not the token's fault (the key set could not be
// fetched). It is 503, not 401: a 401 invalid_token tells a client to discard its token, which
// would turn a JWKS outage into a storm of token requests.
func unavailable(err error, msg string) *token.Error {
	return &token.Error{
		Code:      token.CodeNetwork,
		Status:    http.StatusServiceUnavailable,
		Message:   msg,
		Retryable: true,
		Err:       err,
	}
}

// canceled reports that the caller's context ended before the check could finish.
func canceled(err error) *token.Error {
	return &token.Error{
		Code:    token.CodeCanceled,
		Status:  http.StatusServiceUnavailable,
		Message: "verification canceled",
		Err:     err,
	}
}

// misconfigured reports a Verifier that cannot accept any token. It is the server's bug, not
// the client's, hence 500 rather than 401.
func misconfigured(msg string) *token.Error {
	return &token.Error{Code: token.CodeInvalidArgument, Status: http.StatusInternalServerError, Message: msg}
}

// keyLookupError turns what a KeySet returned into the error Verify reports. A *token.Error
// passes through unchanged (JWKS returns only those). Context errors become CodeCanceled. Any
// other error from a caller-provided KeySet is taken to mean "no such key": its text is not
// kept, because a KeySet is free to mention the kid, which is part of the token.
func keyLookupError(err error) *token.Error {
	var te *token.Error
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return canceled(err)
	}
	return invalid(msgUnknownKey)
}

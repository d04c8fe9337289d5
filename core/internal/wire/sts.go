package wire

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/version"
)

// PostToken sends a token request (an OAuth form) to a token endpoint under policy — the IMDSv2
// token leg and the confidential client's requests alike — and returns the parsed token with
// its canonical token_type checked against wantPoP. Errors are *token.Error carrying source and
// the request's correlation id: invalid_client (which callers may answer with a new
// certificate), service_not_available for 5xx after the retry, sts_error for any other OAuth
// error, and the parser's codes for an unusable answer.
func (c *Client) PostToken(ctx context.Context, policy Policy, endpoint string, form url.Values, wantPoP bool, source string) (Token, error) {
	body := form.Encode()
	correlationID := NewGUID()
	resp, err := c.Do(ctx, policy, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("client-request-id", correlationID)
		req.Header.Set("return-client-request-id", "true")
		req.Header.Set("x-client-SKU", version.SKU)
		req.Header.Set("x-client-Ver", version.Version)
		req.Header.Set("x-ms-lib-capability", "retry-after, h429")
		return req, nil
	})
	if err != nil {
		return Token{}, Annotate(err, source, correlationID)
	}
	if resp.Status != http.StatusOK {
		code := token.CodeSTSError
		switch {
		case ParseError(resp.Body).Code == "invalid_client":
			code = token.CodeInvalidClient
		case resp.Status >= 500:
			code = token.CodeServiceNotAvailable
		}
		return Token{}, Annotate(StatusError(code, source, "token request", resp), source, correlationID)
	}
	t, err := ParseToken(resp.Body, c.now(), FromSTS)
	if err == nil {
		t.TokenType, err = CheckTokenType(wantPoP, t.TokenType)
	}
	if err != nil {
		return Token{}, Annotate(err, source, correlationID)
	}
	return t, nil
}

// Result is the token as a token.Result (not yet bound to a certificate).
func (t Token) Result() token.Result {
	return token.Result{AccessToken: t.AccessToken, TokenType: t.TokenType, ExpiresOn: t.ExpiresOn, RefreshOn: t.RefreshOn}
}

// Annotate fills the source and correlation id of a *token.Error that lacks them.
func Annotate(err error, source, correlationID string) error {
	if e, ok := err.(*token.Error); ok {
		if e.Source == "" {
			e.Source = source
		}
		if e.CorrelationID == "" {
			e.CorrelationID = correlationID
		}
	}
	return err
}

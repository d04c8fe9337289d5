package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mtlspop/mtlspop/core/token"
)

// Flavor says who answered, which decides the error codes of a bad answer.
type Flavor uint8

const (
	// FromManagedIdentity: an IMDS v1 or other managed-identity endpoint.
	FromManagedIdentity Flavor = iota
	// FromSTS: a token endpoint (the IMDSv2 token leg, confidential clients).
	FromSTS
)

// Token is a parsed, validated token response.
type Token struct {
	AccessToken string
	TokenType   string // as sent by the server; see CheckTokenType
	ExpiresOn   time.Time
	RefreshOn   time.Time // zero when the token gets no proactive refresh
	// Echoed identity fields (managed-identity sources), used to check that the identity served
	// is the one asked for.
	ClientID string
	Resource string
	MsiResID string
	ObjectID string
}

// epochThreshold separates absolute expires_on values from relative ones (2001-01-01, as MSAL).
const epochThreshold = 978307200

// halfLifeThreshold: tokens living longer than this get a refresh point at half their lifetime
// when the server sends no refresh_in.
const halfLifeThreshold = 2 * time.Hour

// maxLifetime rejects absurd expiries that would overflow or pin a token for decades.
const maxLifetime = 10 * 365 * 24 * time.Hour

type tokenJSON struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	ExpiresOn   json.RawMessage `json:"expires_on"`
	RefreshIn   json.RawMessage `json:"refresh_in"`
	Error       json.RawMessage `json:"error"`
	ClientID    string          `json:"client_id"`
	Resource    string          `json:"resource"`
	MsiResID    string          `json:"msi_res_id"`
	MiResID     string          `json:"mi_res_id"`
	ObjectID    string          `json:"object_id"`
}

// ParseToken parses a successful token response received at now. It enforces what every later
// step relies on: a JSON object, no "error" member (a 2xx with an error is still a failure), a
// non-empty access_token and an expiry in the future. Expiry comes from expires_in, else
// expires_on; each may be a number or a numeric string, and expires_on may also be an absolute
// epoch or a date string. The refresh point is the server's refresh_in, else half the lifetime
// when the lifetime exceeds two hours.
func ParseToken(body []byte, now time.Time, f Flavor) (Token, error) {
	parseCode, invalidCode := token.CodeManagedIdentityParseFailure, token.CodeInvalidManagedIdentityResp
	if f == FromSTS {
		parseCode, invalidCode = token.CodeInvalidTokenResponse, token.CodeInvalidTokenResponse
	}
	var j tokenJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return Token{}, token.Errorf(parseCode, "token response is not a JSON object")
	}
	if len(j.Error) != 0 && string(j.Error) != "null" {
		e := ParseError(body)
		return Token{}, token.Errorf(invalidCode, "token response carries an error: %s", e.Summary())
	}
	if j.AccessToken == "" {
		return Token{}, token.Errorf(invalidCode, "token response has no access_token")
	}
	expires, err := expiry(j.ExpiresIn, j.ExpiresOn, now)
	if err != nil {
		return Token{}, token.Errorf(invalidCode, "token response: %s", err)
	}
	t := Token{
		AccessToken: j.AccessToken, TokenType: j.TokenType, ExpiresOn: expires,
		ClientID: j.ClientID, Resource: j.Resource, MsiResID: j.MsiResID, ObjectID: j.ObjectID,
	}
	if t.MsiResID == "" {
		t.MsiResID = j.MiResID
	}
	t.RefreshOn = refreshPoint(j.RefreshIn, now, expires)
	return t, nil
}

type parseErr string

func (e parseErr) Error() string { return string(e) }

func expiry(expiresIn, expiresOn json.RawMessage, now time.Time) (time.Time, error) {
	var at time.Time
	switch {
	case len(expiresIn) != 0 && string(expiresIn) != "null":
		secs, ok := number(expiresIn)
		if !ok {
			return time.Time{}, parseErr("expires_in is not a number")
		}
		if secs <= 0 {
			return time.Time{}, parseErr("expires_in is not positive")
		}
		if secs > maxLifetime.Seconds() {
			return time.Time{}, parseErr("expires_in is too large")
		}
		at = now.Add(time.Duration(secs * float64(time.Second)))
	case len(expiresOn) != 0 && string(expiresOn) != "null":
		var err error
		if at, err = expiresOnTime(expiresOn, now); err != nil {
			return time.Time{}, err
		}
	default:
		return time.Time{}, parseErr("no expires_in or expires_on")
	}
	if !at.After(now) {
		return time.Time{}, parseErr("token expired on arrival")
	}
	if at.Sub(now) > maxLifetime {
		return time.Time{}, parseErr("expiry is too far in the future")
	}
	return at, nil
}

// Date forms seen in expires_on: App Service's 2017 API, .NET's invariant culture, RFC 3339.
var expiresOnLayouts = []string{
	"01/02/2006 15:04:05 -07:00",
	"1/2/2006 3:04:05 PM -07:00",
	"01/02/2006 15:04:05",
	"2006-01-02 15:04:05",
	time.RFC3339,
}

func expiresOnTime(raw json.RawMessage, now time.Time) (time.Time, error) {
	if secs, ok := number(raw); ok {
		if secs >= epochThreshold {
			if secs > float64(now.Unix())+maxLifetime.Seconds() {
				return time.Time{}, parseErr("expires_on is too far in the future")
			}
			return time.Unix(int64(secs), 0), nil
		}
		if secs <= 0 {
			return time.Time{}, parseErr("expires_on is not positive")
		}
		return now.Add(time.Duration(secs * float64(time.Second))), nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, parseErr("expires_on is neither a number nor a string")
	}
	s = strings.TrimSpace(s)
	for _, layout := range expiresOnLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, parseErr("expires_on is not a number or a known date format")
}

func refreshPoint(refreshIn json.RawMessage, now, expires time.Time) time.Time {
	lifetime := expires.Sub(now)
	if len(refreshIn) != 0 && string(refreshIn) != "null" {
		if secs, ok := number(refreshIn); ok && secs > 0 {
			if d := time.Duration(secs * float64(time.Second)); d < lifetime {
				return now.Add(d)
			}
		}
	}
	if lifetime > halfLifeThreshold {
		return now.Add(lifetime / 2)
	}
	return time.Time{}
}

// number accepts a JSON number or a string holding one.
func number(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		raw = []byte(strings.TrimSpace(s))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != f { // NaN
		return 0, false
	}
	return f, true
}

// CheckTokenType compares the response's token_type with the requested scheme and returns the
// canonical spelling (token.TypeBearer or token.TypeMtlsPoP). A PoP request must get mtls_pop
// back (missing: token_type_missing; other: token_type_mismatch). A Bearer request accepts a
// missing token_type, as IMDS and older managed-identity endpoints may omit it.
func CheckTokenType(wantPoP bool, got string) (string, error) {
	switch {
	case wantPoP && got == "":
		return "", token.Errorf(token.CodeTokenTypeMissing, "asked for an mtls_pop token; the response has no token_type")
	case wantPoP && !strings.EqualFold(got, token.TypeMtlsPoP):
		return "", token.Errorf(token.CodeTokenTypeMismatch, "asked for an mtls_pop token, got token_type %q", clean(got, 32))
	case wantPoP:
		return token.TypeMtlsPoP, nil
	case got == "" || strings.EqualFold(got, token.TypeBearer):
		return token.TypeBearer, nil
	default:
		return "", token.Errorf(token.CodeTokenTypeMismatch, "asked for a Bearer token, got token_type %q", clean(got, 32))
	}
}

// ErrorBody is a parsed error response, in any of the shapes the endpoints use: OAuth/ESTS
// ({"error","error_description","correlation_id","error_codes"}), managed identity
// ({"error","error_description","message","correlationId"}) and Cloud Shell's nested
// ({"error":{"code","message"}}).
type ErrorBody struct {
	Code          string
	Description   string
	CorrelationID string
}

// ParseError extracts what it can from an error body; an unparsable body gives the zero value.
func ParseError(body []byte) ErrorBody {
	var j struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		Message          string          `json:"message"`
		CorrelationID    string          `json:"correlation_id"`
		CorrelationIDMI  string          `json:"correlationId"`
	}
	if json.Unmarshal(body, &j) != nil {
		return ErrorBody{}
	}
	e := ErrorBody{Description: j.ErrorDescription, CorrelationID: j.CorrelationID}
	if e.CorrelationID == "" {
		e.CorrelationID = j.CorrelationIDMI
	}
	if e.Description == "" {
		e.Description = j.Message
	}
	var code string
	var nested struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	switch {
	case json.Unmarshal(j.Error, &code) == nil:
		e.Code = code
	case json.Unmarshal(j.Error, &nested) == nil:
		e.Code = nested.Code
		if e.Description == "" {
			e.Description = nested.Message
		}
	}
	e.Code, e.Description, e.CorrelationID = clean(e.Code, 64), clean(e.Description, 300), clean(e.CorrelationID, 64)
	return e
}

// Summary is "code: description" for error messages.
func (e ErrorBody) Summary() string {
	switch {
	case e.Code == "" && e.Description == "":
		return "no error details"
	case e.Description == "":
		return e.Code
	case e.Code == "":
		return e.Description
	}
	return e.Code + ": " + e.Description
}

// StatusError builds the *token.Error for a non-2xx response: the given code, the status, the
// server's error code and description, and its correlation id. The body itself is never copied
// into the error beyond those fields.
func StatusError(code token.Code, source, what string, resp *Response) *token.Error {
	body := ParseError(resp.Body)
	e := &token.Error{
		Code:          code,
		Message:       what + " failed: " + body.Summary(),
		Status:        resp.Status,
		CorrelationID: body.CorrelationID,
		Source:        source,
	}
	switch resp.Status {
	case 404, 408, 429, 500, 503, 504:
		e.Retryable = true
	}
	return e
}

// clean trims server-provided text to n bytes and drops control characters, so an error message
// can't be used to forge log lines.
func clean(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

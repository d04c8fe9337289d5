package wire

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestParseTokenExpiryForms(t *testing.T) {
	abs := now.Add(3 * time.Hour).Unix()
	cases := []struct {
		name      string
		body      string
		expires   time.Time
		refreshOn time.Time
	}{
		{"expires_in number", `{"access_token":"a","expires_in":3600}`, now.Add(time.Hour), time.Time{}},
		{"expires_in string", `{"access_token":"a","expires_in":"3600"}`, now.Add(time.Hour), time.Time{}},
		{"expires_on absolute number", `{"access_token":"a","expires_on":` + itoa(abs) + `}`, time.Unix(abs, 0), now.Add(90 * time.Minute)},
		{"expires_on absolute string", `{"access_token":"a","expires_on":"` + itoa(abs) + `"}`, time.Unix(abs, 0), now.Add(90 * time.Minute)},
		{"expires_on relative", `{"access_token":"a","expires_on":600}`, now.Add(10 * time.Minute), time.Time{}},
		{"expires_on app service 2017", `{"access_token":"a","expires_on":"11/23/2026 15:00:00 +00:00"}`, now.Add(3 * time.Hour), now.Add(90 * time.Minute)},
		{"expires_on date", `{"access_token":"a","expires_on":"2026-11-23 13:00:00"}`, now.Add(time.Hour), time.Time{}},
		{"expires_on rfc3339", `{"access_token":"a","expires_on":"2026-11-23T13:00:00Z"}`, now.Add(time.Hour), time.Time{}},
		{"expires_in wins over expires_on", `{"access_token":"a","expires_in":60,"expires_on":"1"}`, now.Add(time.Minute), time.Time{}},
		{"half-life over 2h", `{"access_token":"a","expires_in":86400}`, now.Add(24 * time.Hour), now.Add(12 * time.Hour)},
		{"exactly 2h gets none", `{"access_token":"a","expires_in":7200}`, now.Add(2 * time.Hour), time.Time{}},
		{"refresh_in honoured", `{"access_token":"a","expires_in":3600,"refresh_in":600}`, now.Add(time.Hour), now.Add(10 * time.Minute)},
		{"refresh_in string", `{"access_token":"a","expires_in":86400,"refresh_in":"600"}`, now.Add(24 * time.Hour), now.Add(10 * time.Minute)},
		{"refresh_in past expiry ignored", `{"access_token":"a","expires_in":3600,"refresh_in":7200}`, now.Add(time.Hour), time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseToken([]byte(tc.body), now, FromManagedIdentity)
			if err != nil {
				t.Fatal(err)
			}
			if !tok.ExpiresOn.Equal(tc.expires) || !tok.RefreshOn.Equal(tc.refreshOn) {
				t.Fatalf("expires %v refresh %v, want %v %v", tok.ExpiresOn, tok.RefreshOn, tc.expires, tc.refreshOn)
			}
		})
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestParseTokenRejects(t *testing.T) {
	past := itoa(now.Add(-time.Hour).Unix())
	cases := map[string]string{
		"not json":           `nope`,
		"array":              `[]`,
		"no token":           `{"expires_in":3600}`,
		"empty token":        `{"access_token":"","expires_in":3600}`,
		"no expiry":          `{"access_token":"a"}`,
		"expires_in zero":    `{"access_token":"a","expires_in":0}`,
		"expires_in neg":     `{"access_token":"a","expires_in":-5}`,
		"expires_in text":    `{"access_token":"a","expires_in":"soon"}`,
		"expires_in bool":    `{"access_token":"a","expires_in":true}`,
		"expires_on past":    `{"access_token":"a","expires_on":` + past + `}`,
		"expires_on garbage": `{"access_token":"a","expires_on":"tomorrow"}`,
		"expires_on huge":    `{"access_token":"a","expires_on":99999999999999}`,
		"expires_in huge":    `{"access_token":"a","expires_in":1e300}`,
		"2xx with error":     `{"access_token":"a","expires_in":60,"error":"invalid_client"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseToken([]byte(body), now, FromManagedIdentity)
			var te *token.Error
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want *token.Error", err)
			}
			if te.Code != token.CodeManagedIdentityParseFailure && te.Code != token.CodeInvalidManagedIdentityResp {
				t.Fatalf("code %s", te.Code)
			}
			_, err = ParseToken([]byte(body), now, FromSTS)
			if !errors.Is(err, token.CodeInvalidTokenResponse) {
				t.Fatalf("sts flavor: %v", err)
			}
		})
	}
}

func TestParseTokenNeverLeaksTheToken(t *testing.T) {
	secret := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig"
	for _, body := range []string{
		`{"access_token":"` + secret + `"}`,
		`{"access_token":"` + secret + `","expires_in":"x"}`,
		`{"access_token":"` + secret + `","expires_in":60,"error":"boom"}`,
	} {
		_, err := ParseToken([]byte(body), now, FromSTS)
		if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Fatalf("error leaks token or is nil: %v", err)
		}
	}
}

func TestCheckTokenType(t *testing.T) {
	cases := []struct {
		pop  bool
		got  string
		want string
		code token.Code
	}{
		{true, "mtls_pop", token.TypeMtlsPoP, ""},
		{true, "MTLS_POP", token.TypeMtlsPoP, ""},
		{true, "", "", token.CodeTokenTypeMissing},
		{true, "Bearer", "", token.CodeTokenTypeMismatch},
		{false, "bearer", token.TypeBearer, ""},
		{false, "", token.TypeBearer, ""},
		{false, "mtls_pop", "", token.CodeTokenTypeMismatch},
		{false, "pop", "", token.CodeTokenTypeMismatch},
	}
	for _, tc := range cases {
		got, err := CheckTokenType(tc.pop, tc.got)
		if got != tc.want || token.CodeOf(err) != tc.code {
			t.Errorf("CheckTokenType(%v, %q) = %q, %v", tc.pop, tc.got, got, err)
		}
	}
}

func TestParseErrorShapes(t *testing.T) {
	cases := map[string]ErrorBody{
		`{"error":"invalid_client","error_description":"AADSTS700027: bad","correlation_id":"c1"}`: {"invalid_client", "AADSTS700027: bad", "c1"},
		`{"error":"invalid_request","message":"Identity not found","correlationId":"c2"}`:          {"invalid_request", "Identity not found", "c2"},
		`{"error":{"code":"NotFound","message":"no such identity"}}`:                               {"NotFound", "no such identity", ""},
		`not json`: {},
		`{"error":"bad\nline","error_description":"` + strings.Repeat("d", 500) + `"}`: {"bad line", strings.Repeat("d", 300), ""},
	}
	for in, want := range cases {
		if got := ParseError([]byte(in)); got != want {
			t.Errorf("ParseError(%.40q) = %+v, want %+v", in, got, want)
		}
	}
	e := StatusError(token.CodeManagedIdentityRequestFailed, "imds", "IMDS token request",
		&Response{Status: 400, Body: []byte(`{"error":"invalid_request","error_description":"Identity not found","correlation_id":"abc"}`)})
	if e.Status != 400 || e.CorrelationID != "abc" || e.Retryable ||
		e.Error() != "mtlspop: managed_identity_request_failed: IMDS token request failed: invalid_request: Identity not found (status 400)" {
		t.Fatalf("%+v / %s", e, e)
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add([]byte(`{"access_token":"a","expires_in":3600,"refresh_in":"60","token_type":"mtls_pop"}`))
	f.Add([]byte(`{"access_token":"a","expires_on":"11/23/2026 15:00:00 +00:00"}`))
	f.Add([]byte(`{"error":{"code":"x"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := ParseToken(body, now, FromManagedIdentity)
		if err != nil {
			return
		}
		if tok.AccessToken == "" || !tok.ExpiresOn.After(now) || (!tok.RefreshOn.IsZero() && !tok.RefreshOn.Before(tok.ExpiresOn)) {
			t.Fatalf("accepted an unusable token: %+v", tok)
		}
		_ = ParseError(body)
	})
}

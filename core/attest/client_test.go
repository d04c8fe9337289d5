package attest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/token"
)

// A software attester (a test double satisfying attest.Attestable) drives the protocol
// against the emulator.
func TestClientWithSoftwareAttester(t *testing.T) {
	f := newFixture()
	e := startEmulator(t, emulator.Config{AttestationTrustedAKs: [][]byte{f.opts().TrustedAKs[0]}})
	jwt, exp, err := (&attest.Client{HTTP: emulatorClient(e)}).Token(ctx, e.AttestationURL()+"/", softAttestable{t, f})
	if err != nil {
		t.Fatal(err)
	}
	thumb, _ := attest.KeyThumbprint(f.key.Public())
	if claims(t, jwt)[attest.ClaimKeyThumbprint] != thumb || exp.Before(time.Now()) {
		t.Errorf("token claims %v, exp %v", claims(t, jwt), exp)
	}
	if n := e.Requests(emulator.EndpointAttestInit); n != 1 {
		t.Errorf("init requests = %d", n)
	}
}

func TestClientErrors(t *testing.T) {
	f := newFixture()
	e := startEmulator(t, emulator.Config{AttestationTrustAnyAK: true})
	c := &attest.Client{HTTP: emulatorClient(e)}
	code := func(err error) token.Code { return token.CodeOf(err) }

	if _, _, err := c.Token(ctx, "http://127.0.0.1:1/attestation", softAttestable{t, f}); code(err) != token.CodeAttestationFailed {
		t.Errorf("http endpoint: %v", err)
	}
	if _, _, err := c.Token(ctx, e.AttestationURL(), nil); code(err) != token.CodeAttestationFailed {
		t.Errorf("nil key: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.Token(canceled, e.AttestationURL(), softAttestable{t, f}); code(err) != token.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	// A service fault surfaces as attestation_failed with the status.
	e.InjectFault(emulator.EndpointAttest, emulator.Fault{Status: http.StatusServiceUnavailable, Count: 1})
	if _, _, err := c.Token(ctx, e.AttestationURL(), softAttestable{t, f}); code(err) != token.CodeAttestationFailed {
		t.Errorf("503: %v", err)
	}

	// Malformed service answers.
	for _, tc := range []struct {
		name, init, att string
	}{
		{"short challenge", `{"challenge":"AAAA","service_context":"x"}`, ``},
		{"no service context", `{"challenge":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}`, ``},
		{"not json", `<html>`, ``},
		{"token without exp", `{"challenge":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=","service_context":"x"}`, `{"token":"eyJhbGciOiJub25lIn0.e30.x"}`},
		{"credential for a key that cannot activate", `{"challenge":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=","service_context":"x","credential":{"id_object":"AA==","encrypted_secret":"AA=="}}`, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, attest.InitPath) {
					w.Write([]byte(tc.init))
					return
				}
				w.Write([]byte(tc.att))
			}))
			defer srv.Close()
			_, _, err := (&attest.Client{HTTP: srv.Client()}).Token(ctx, srv.URL, softAttestable{t, f})
			if code(err) != token.CodeAttestationFailed {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// A refusal's body is server-controlled: only the error code and a capped, sanitised
// description reach the error (through internal/wire's parser), never kilobytes of text or
// control characters that could forge log lines; and an oversized answer is refused whole.
func TestClientErrorBodyIsSanitised(t *testing.T) {
	f := newFixture()
	long := strings.Repeat("A", 40<<10)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		code   token.Code
	}{
		{"long description", http.StatusBadRequest, `{"error":"attestation_failed","error_description":"untrusted_ak: \u001b[31mforged\nlog line ` + long + `","correlation_id":"c-1"}`, token.CodeAttestationFailed},
		{"long plain-text body", http.StatusInternalServerError, long, token.CodeAttestationFailed},
		{"answer over the size limit", http.StatusBadRequest, `{"error":"x","error_description":"` + strings.Repeat("B", 70<<10) + `"}`, token.CodeResponseTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, _, err := (&attest.Client{HTTP: srv.Client()}).Token(ctx, srv.URL, softAttestable{t, f})
			var te *token.Error
			if !errors.As(err, &te) || te.Code != tc.code || te.Status != tc.status || te.Source != "attestation" {
				t.Fatalf("err = %.300v; want %s with status %d", err, tc.code, tc.status)
			}
			if len(te.Message) > 512 || len(err.Error()) > 1024 {
				t.Errorf("error message is %d bytes: the body leaked into it", len(te.Message))
			}
			if strings.ContainsAny(te.Message, "\x1b\n\r") {
				t.Errorf("control characters from the body in %q", te.Message)
			}
			if tc.code == token.CodeAttestationFailed && tc.status == http.StatusBadRequest &&
				(!strings.Contains(te.Message, "untrusted_ak") || te.CorrelationID != "c-1") {
				t.Errorf("the server's code and description were lost: %q (correlation id %q)", te.Message, te.CorrelationID)
			}
		})
	}
}

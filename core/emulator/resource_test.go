package emulator_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/token"
)

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	head, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	kid, _ := h["kid"].(string)
	return kid
}

func callResource(t *testing.T, e *emulator.Emulator, cert *tls.Certificate, path, authorization string) response {
	t.Helper()
	req := newRequest(t, http.MethodGet, e.ResourceURL()+path, nil, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return do(t, tlsClient(e, cert), req)
}

// popToken runs the whole IMDSv2 flow and returns the binding certificate and a token for aud.
func popToken(t *testing.T, e *emulator.Emulator, aud, tokenType string) (*tls.Certificate, string) {
	t.Helper()
	cert, out := binding(t, e, v2Query())
	r := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, aud+"/.default", tokenType))
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	return cert, r.json(t)["access_token"].(string)
}

func TestResource(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	cert, tok := popToken(t, e, emulator.DefaultResourceID, "mtls_pop")
	other, _ := binding(t, e, v2Query())

	t.Run("bound token with its certificate", func(t *testing.T) {
		r := callResource(t, e, cert, "api/anything", "mtls_pop "+tok)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		m := r.json(t)
		want := map[string]any{
			"message": emulator.ResourceMessage, "subject": emulator.DefaultSystemAssignedObjectID,
			"client_id": emulator.DefaultSystemAssignedClientID, "token_type": "mtls_pop", "x5t#S256": token.Thumbprint(cert.Leaf),
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
	})
	t.Run("bound token with another certificate", func(t *testing.T) {
		if r := callResource(t, e, other, "", "mtls_pop "+tok); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("bound token without a certificate", func(t *testing.T) {
		if r := callResource(t, e, nil, "", "mtls_pop "+tok); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("no token", func(t *testing.T) {
		r := callResource(t, e, cert, "", "")
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("unbound bearer token accepted", func(t *testing.T) {
		r := imdsGet(t, e, v1TokenPath, v1Query("resource", emulator.DefaultResourceID))
		bearer := r.json(t)["access_token"].(string)
		res := callResource(t, e, nil, "", "Bearer "+bearer)
		if res.status != http.StatusOK || res.json(t)["token_type"] != "Bearer" {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
	})
	t.Run("audience is the resource URL", func(t *testing.T) {
		for _, aud := range []string{e.ResourceURL(), strings.TrimSuffix(e.ResourceURL(), "/")} {
			tk, err := e.MintToken(aud, cert.Leaf, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if r := callResource(t, e, cert, "", "mtls_pop "+tk); r.status != http.StatusOK {
				t.Errorf("aud %s: status %d: %s", aud, r.status, r.body)
			}
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		tk, _ := e.MintToken("api://someone-else", cert.Leaf, time.Hour)
		if r := callResource(t, e, cert, "", "mtls_pop "+tk); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		tk, _ := e.MintToken(emulator.DefaultResourceID, cert.Leaf, -time.Hour)
		if r := callResource(t, e, cert, "", "mtls_pop "+tk); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("token of another emulator", func(t *testing.T) {
		other := start(t, emulator.Config{})
		tk, _ := other.MintToken(emulator.DefaultResourceID, cert.Leaf, time.Hour)
		if r := callResource(t, e, cert, "", "mtls_pop "+tk); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	if n := e.Requests(emulator.EndpointResource); n < 9 {
		t.Errorf("Requests(resource) = %d", n)
	}
}

func TestResourceRequirePoP(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{ResourceRequirePoP: true})
	cert, bearer := popToken(t, e, emulator.DefaultResourceID, "")
	if r := callResource(t, e, cert, "", "Bearer "+bearer); r.status != http.StatusUnauthorized {
		t.Fatalf("unbound bearer: status %d: %s", r.status, r.body)
	}
	_, bound := popToken(t, e, emulator.DefaultResourceID, "mtls_pop")
	if r := callResource(t, e, cert, "", "mtls_pop "+bound); r.status != http.StatusUnauthorized {
		t.Fatalf("token bound to another certificate: status %d: %s", r.status, r.body)
	}
	cert2, bound2 := popToken(t, e, emulator.DefaultResourceID, "mtls_pop")
	if r := callResource(t, e, cert2, "", "mtls_pop "+bound2); r.status != http.StatusOK {
		t.Fatalf("bound token: status %d: %s", r.status, r.body)
	}
}

// The resource reports the method, body length and echo header it received, so tests of a
// client's call API can check what was forwarded.
func TestResourceEchoesRequest(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	cert, tok := popToken(t, e, emulator.DefaultResourceID, "mtls_pop")
	send := func(method string, body []byte, header map[string]string) response {
		t.Helper()
		req := newRequest(t, method, e.ResourceURL()+"api/echo", bytes.NewReader(body), header)
		req.Header.Set("Authorization", "mtls_pop "+tok)
		return do(t, tlsClient(e, cert), req)
	}

	r := send(http.MethodPut, []byte(`{"hello":"world"}`), map[string]string{emulator.ResourceEchoHeader: "abc 123"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	want := map[string]any{
		"method": http.MethodPut, "body_bytes": float64(len(`{"hello":"world"}`)), "echo": "abc 123",
		// The fields the resource answered with before still say who called.
		"message": emulator.ResourceMessage, "client_id": emulator.DefaultSystemAssignedClientID, "token_type": "mtls_pop",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}

	r = send(http.MethodGet, nil, nil)
	m = r.json(t)
	if r.status != http.StatusOK || m["method"] != http.MethodGet || m["body_bytes"] != float64(0) {
		t.Errorf("GET: %d %s", r.status, r.body)
	}
	if _, has := m["echo"]; has {
		t.Errorf("echo without the header: %s", r.body)
	}

	// Repeated headers arrive as one value, in order.
	req := newRequest(t, http.MethodDelete, e.ResourceURL(), nil, nil)
	req.Header.Set("Authorization", "mtls_pop "+tok)
	req.Header.Add(emulator.ResourceEchoHeader, "one")
	req.Header.Add(emulator.ResourceEchoHeader, "two")
	if r := do(t, tlsClient(e, cert), req); r.json(t)["echo"] != "one, two" || r.json(t)["method"] != http.MethodDelete {
		t.Errorf("repeated header: %s", r.body)
	}

	// A body larger than the emulator reads cannot be counted: refused rather than miscounted.
	if r := send(http.MethodPost, make([]byte, 64<<10+1), nil); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %s", r.status, r.body)
	}
	if r := send(http.MethodPost, make([]byte, 64<<10), nil); r.status != http.StatusOK || r.json(t)["body_bytes"] != float64(64<<10) {
		t.Errorf("body at the limit: %d %s", r.status, r.body)
	}
}

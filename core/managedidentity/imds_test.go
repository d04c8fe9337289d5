package managedidentity_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// identities returns every way to name the emulator's identities, with the IMDS v1 selector each
// must produce and the client id the token must carry.
func identities(emu *emulator.Emulator) []struct {
	name     string
	id       managedidentity.ID
	v1Query  [2]string // selector name and value on IMDS v1
	v2Query  [2]string // selector name and value on IMDSv2
	clientID string
} {
	cfg := emu.Config()
	u := cfg.UserAssigned[0]
	return []struct {
		name     string
		id       managedidentity.ID
		v1Query  [2]string
		v2Query  [2]string
		clientID string
	}{
		{"system-assigned", managedidentity.SystemAssigned(), [2]string{}, [2]string{}, cfg.SystemAssigned.ClientID},
		{"client id", managedidentity.UserAssignedClientID(u.ClientID), [2]string{"client_id", u.ClientID}, [2]string{"client_id", u.ClientID}, u.ClientID},
		{"resource id", managedidentity.UserAssignedResourceID(u.ResourceID), [2]string{"msi_res_id", u.ResourceID}, [2]string{"mi_res_id", u.ResourceID}, u.ClientID},
		{"object id", managedidentity.UserAssignedObjectID(u.ObjectID), [2]string{"object_id", u.ObjectID}, [2]string{"object_id", u.ObjectID}, u.ClientID},
	}
}

func TestBearerFromIMDSv1ForEveryIdentity(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	resource := emu.Config().ResourceID
	for _, tc := range identities(emu) {
		t.Run(tc.name, func(t *testing.T) {
			c := clientFor(t, emu, tc.id, nil)
			before := emu.Requests(emulator.EndpointIMDSToken)
			res, err := c.AcquireToken(context.Background(), resource+"/.default")
			if err != nil {
				t.Fatal(err)
			}
			if res.TokenType != token.TypeBearer || res.Source != token.SourceIdentityProvider || res.BindingCertificate != nil || res.Thumbprint() != "" {
				t.Fatalf("unexpected result %v", res)
			}
			rec := emu.LastRequest(emulator.EndpointIMDSToken)
			q := rec.Query
			if q.Get("api-version") != "2018-02-01" || q.Get("resource") != resource || rec.Header.Get("Metadata") != "true" ||
				rec.Header.Get("x-ms-client-request-id") == "" || rec.Header.Get("x-client-SKU") == "" {
				t.Fatalf("request %v %v", q, rec.Header)
			}
			for _, sel := range []string{"client_id", "msi_res_id", "mi_res_id", "object_id"} {
				want := ""
				if sel == tc.v1Query[0] {
					want = tc.v1Query[1]
				}
				if q.Get(sel) != want {
					t.Fatalf("selector %s = %q, want %q", sel, q.Get(sel), want)
				}
			}
			if claims := verify(t, emu, res, resource); claims.ClientID != tc.clientID || claims.X5tS256 != "" {
				t.Fatalf("token for %s, cnf %q", claims.ClientID, claims.X5tS256)
			}
			again, err := c.AcquireToken(context.Background(), resource)
			if err != nil || again.Source != token.SourceCache || again.AccessToken != res.AccessToken {
				t.Fatalf("second call: %v %v", again, err)
			}
			if n := emu.Requests(emulator.EndpointIMDSToken) - before; n != 1 {
				t.Fatalf("IMDS saw %d requests, want 1", n)
			}
		})
	}
}

func TestBearerErrors(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	resource := emu.Config().ResourceID
	ctx := context.Background()

	t.Run("unknown identity is a 400, not retried", func(t *testing.T) {
		w := &waits{}
		c := clientFor(t, emu, managedidentity.UserAssignedClientID("00000000-dead-beef-0000-000000000000"), w)
		_, err := c.AcquireToken(ctx, resource)
		te := wantCode(t, err, token.CodeManagedIdentityRequestFailed)
		if te.Status != 400 || te.Source != "imds" || te.CorrelationID == "" || len(w.take()) != 0 {
			t.Fatalf("%+v", te)
		}
	})
	t.Run("malformed body", func(t *testing.T) {
		emu.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Malformed: true, Count: 1})
		_, err := clientFor(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, resource)
		wantCode(t, err, token.CodeManagedIdentityParseFailure)
	})
	t.Run("oversize body", func(t *testing.T) {
		emu.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Oversize: true, Count: 1})
		_, err := clientFor(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, resource)
		wantCode(t, err, token.CodeResponseTooLarge)
	})
	t.Run("a PoP token_type on a Bearer request", func(t *testing.T) {
		emu.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Status: 200, Count: 1,
			Body: `{"access_token":"x.y.z","token_type":"mtls_pop","expires_in":"3600"}`})
		_, err := clientFor(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, resource)
		wantCode(t, err, token.CodeTokenTypeMismatch)
	})
	t.Run("unreachable IMDS", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c, err := managedidentity.New(managedidentity.SystemAssigned(),
			managedidentity.WithEnv(func(k string) string {
				if k == "AZURE_POD_IDENTITY_AUTHORITY_HOST" {
					return "http://" + addr
				}
				return ""
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.AcquireToken(ctx, resource)
		if te := wantCode(t, err, token.CodeManagedIdentityUnreachable); !te.Retryable {
			t.Fatal("unreachable should be retryable")
		}
	})
}

func TestIMDSRetriesWithInjectedDelays(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	resource := emu.Config().ResourceID
	cases := []struct {
		name     string
		fault    emulator.Fault
		waits    []time.Duration
		attempts int
		code     token.Code
	}{
		{"503 twice then ok", emulator.Fault{Status: 503, Count: 2}, []time.Duration{time.Second, 2 * time.Second}, 3, ""},
		{"404 until exhausted", emulator.Fault{Status: 404}, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, 4, token.CodeManagedIdentityRequestFailed},
		{"410 every 10s", emulator.Fault{Status: 410, Count: 2}, []time.Duration{10 * time.Second, 10 * time.Second}, 3, ""},
		{"429 once", emulator.Fault{Status: 429, Count: 1}, []time.Duration{time.Second}, 2, ""},
		{"400 never", emulator.Fault{Status: 400, Count: 1}, nil, 1, token.CodeManagedIdentityRequestFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer emu.ClearFaults()
			w := &waits{}
			c := clientFor(t, emu, managedidentity.SystemAssigned(), w)
			emu.InjectFault(emulator.EndpointIMDSToken, tc.fault)
			before := emu.Requests(emulator.EndpointIMDSToken)
			_, err := c.AcquireToken(context.Background(), resource)
			if tc.code == "" && err != nil {
				t.Fatal(err)
			}
			if tc.code != "" {
				wantCode(t, err, tc.code)
			}
			got := w.take()
			if n := emu.Requests(emulator.EndpointIMDSToken) - before; n != tc.attempts || len(got) != len(tc.waits) {
				t.Fatalf("attempts %d waits %v, want %d %v", n, got, tc.attempts, tc.waits)
			}
			for i := range got {
				if got[i] != tc.waits[i] {
					t.Fatalf("waits %v, want %v", got, tc.waits)
				}
			}
		})
	}
}

func TestCancellationDuringRetryWait(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	emu.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Status: 503})
	env := emu.Env()
	// Real waits (1 s, 2 s, 4 s): only the context can end this early.
	c, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.AcquireToken(ctx, "api://x")
	wantCode(t, err, token.CodeCanceled)
	if el := time.Since(start); el > 800*time.Millisecond {
		t.Fatalf("took %v after cancel", el)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer dcancel()
	_, err = c.AcquireToken(dctx, "api://x")
	wantCode(t, err, token.CodeRequestTimeout)
	// The client's own default timeout bounds a context without a deadline.
	short, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(func(k string) string { return env[k] }),
		managedidentity.WithTimeout(150*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	start = time.Now()
	_, err = short.AcquireToken(context.Background(), "api://x")
	wantCode(t, err, token.CodeRequestTimeout)
	if el := time.Since(start); el > 800*time.Millisecond {
		t.Fatalf("WithTimeout not honoured: %v", el)
	}
}

func TestRetryPolicyDisabled(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	emu.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Status: 503})
	w := &waits{}
	c := clientFor(t, emu, managedidentity.SystemAssigned(), w, managedidentity.WithRetryPolicyDisabled())
	_, err := c.AcquireToken(context.Background(), "api://x")
	if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != 503 || !te.Retryable {
		t.Fatalf("%+v", te)
	}
	if emu.Requests(emulator.EndpointIMDSToken) != 1 || len(w.take()) != 0 {
		t.Fatal("retried with retries disabled")
	}
}

func TestClientArgumentErrors(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	for _, id := range []managedidentity.ID{
		managedidentity.UserAssignedClientID(""), managedidentity.UserAssignedResourceID(""), managedidentity.UserAssignedObjectID(""),
	} {
		if _, err := managedidentity.New(id); token.CodeOf(err) != token.CodeInvalidManagedIdentityID {
			t.Fatalf("New(%v) err = %v", id, err)
		}
	}
	for _, bad := range []string{"ftp://x", "not a url", "http://", "://"} {
		_, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(func(k string) string {
			if k == "AZURE_POD_IDENTITY_AUTHORITY_HOST" {
				return bad
			}
			return ""
		}))
		if token.CodeOf(err) != token.CodeInvalidManagedIdentityURL {
			t.Fatalf("endpoint %q: err = %v", bad, err)
		}
	}
	c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
	for _, r := range []string{"", "   ", "/.default"} {
		if _, err := c.AcquireToken(context.Background(), r); token.CodeOf(err) != token.CodeInvalidArgument {
			t.Fatalf("resource %q: err = %v", r, err)
		}
	}
	res, err := c.AcquireToken(context.Background(), emu.Config().ResourceID, managedidentity.WithMtlsPoP())
	if err != nil {
		t.Fatal(err)
	}
	// Tokens are never sent over cleartext.
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := c.Do(context.Background(), req, res); token.CodeOf(err) != token.CodeInvalidArgument {
		t.Fatalf("http Do: %v", err)
	}
	// A PoP token without its certificate cannot be used.
	req, _ = http.NewRequest(http.MethodGet, emu.ResourceURL(), nil)
	if _, err := c.Do(context.Background(), req, res.Bind(nil)); token.CodeOf(err) != token.CodeMtlsCertificateNotProvided {
		t.Fatalf("certless PoP Do: %v", err)
	}
	if err := c.Close(); err != nil || c.Close() != nil {
		t.Fatal("Close not idempotent")
	}
	if _, err := c.AcquireToken(context.Background(), "api://x"); token.CodeOf(err) != token.CodeClosed {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := c.Do(context.Background(), req, res); token.CodeOf(err) != token.CodeClosed {
		t.Fatalf("Do after Close: %v", err)
	}
}

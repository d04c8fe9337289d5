package managedidentity_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// sfClient is a client for emu with env changed by edit.
func sfClient(t *testing.T, emu *emulator.Emulator, id managedidentity.ID, edit func(map[string]string), opts ...managedidentity.Option) (*managedidentity.Client, error) {
	t.Helper()
	env := emu.Env()
	if edit != nil {
		edit(env)
	}
	c, err := managedidentity.New(id, append([]managedidentity.Option{
		managedidentity.WithEnv(func(k string) string { return env[k] }),
		managedidentity.WithRootCAs(emu.RootCAs()),
		managedidentity.WithRetryWait((&waits{}).wait),
	}, opts...)...)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

func TestServiceFabricIdentities(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceServiceFabric, emulator.Config{})
	u := emu.Config().UserAssigned[0]
	sys := emu.Config().SystemAssigned

	t.Run("system-assigned", func(t *testing.T) {
		c := sourceClient(t, emu, managedidentity.SystemAssigned(), nil)
		if c.Source() != managedidentity.SourceServiceFabric {
			t.Fatal(c.Source())
		}
		acquireOK(t, emu, c, sys.ClientID)
		rec := emu.LastRequest(emulator.EndpointServiceFabric)
		if rec.Method != http.MethodGet || rec.Query.Get("api-version") != "2020-05-01" || rec.Query.Get("resource") != emu.Config().ResourceID ||
			rec.Header.Get("secret") != emu.Env()["IDENTITY_HEADER"] {
			t.Fatalf("request %s %v %v", rec.Method, rec.Query, rec.Header)
		}
		onlySelector(t, rec.Query, "", "")
	})
	t.Run("object id as principalId", func(t *testing.T) {
		acquireOK(t, emu, sourceClient(t, emu, managedidentity.UserAssignedObjectID(u.ObjectID), nil), u.ClientID)
		onlySelector(t, emu.LastRequest(emulator.EndpointServiceFabric).Query, "principalId", u.ObjectID)
	})
	for _, id := range []managedidentity.ID{managedidentity.UserAssignedClientID(u.ClientID), managedidentity.UserAssignedResourceID(u.ResourceID)} {
		t.Run("refused "+id.String(), func(t *testing.T) {
			before := emu.Requests(emulator.EndpointServiceFabric)
			_, err := sourceClient(t, emu, id, nil).AcquireToken(context.Background(), emu.Config().ResourceID)
			if te := wantCode(t, err, token.CodeUserAssignedNotConfigurable); te.Source != "servicefabric" {
				t.Fatalf("%+v", te)
			}
			if emu.Requests(emulator.EndpointServiceFabric) != before {
				t.Fatal("a refused selector was sent")
			}
		})
	}
	t.Run("unknown principal: nested error body", func(t *testing.T) {
		_, err := sourceClient(t, emu, managedidentity.UserAssignedObjectID("00000000-0000-0000-0000-00000000dead"), nil).
			AcquireToken(context.Background(), emu.Config().ResourceID)
		if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != 400 || te.CorrelationID == "" {
			t.Fatalf("%+v", te)
		}
		wantMessage(t, err, "ManagedIdentityNotFound: No managed identity with this principalId")
	})
	t.Run("claims name the refused token", func(t *testing.T) {
		c := sourceClient(t, emu, managedidentity.SystemAssigned(), nil)
		first := acquireOK(t, emu, c, sys.ClientID)
		if _, err := c.AcquireToken(context.Background(), emu.Config().ResourceID, managedidentity.WithClaims(`{"access_token":{"nbf":{"essential":true,"value":"1"}}}`)); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(first.AccessToken))
		if got := emu.LastRequest(emulator.EndpointServiceFabric).Query.Get("token_sha256_to_refresh"); got != hex.EncodeToString(sum[:]) {
			t.Fatalf("token_sha256_to_refresh = %q", got)
		}
	})
}

func TestServiceFabricServerCertificate(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceServiceFabric, emulator.Config{})
	sys := emu.Config().SystemAssigned
	ctx := context.Background()
	resource := emu.Config().ResourceID
	block, _ := pem.Decode(emu.ServiceFabricCertificatePEM())
	sfCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("AB", 20)

	t.Run("pinned thumbprint, normalised", func(t *testing.T) {
		c, err := sfClient(t, emu, managedidentity.SystemAssigned(), func(env map[string]string) {
			tp := strings.ToLower(env["IDENTITY_SERVER_THUMBPRINT"])
			var parts []string
			for i := 0; i < len(tp); i += 2 {
				parts = append(parts, tp[i:i+2])
			}
			env["IDENTITY_SERVER_THUMBPRINT"] = " " + strings.Join(parts, ":") + "\n"
		})
		if err != nil {
			t.Fatal(err)
		}
		acquireOK(t, emu, c, sys.ClientID)
	})
	t.Run("wrong thumbprint refused", func(t *testing.T) {
		before := emu.Requests(emulator.EndpointServiceFabric)
		c, err := sfClient(t, emu, managedidentity.SystemAssigned(), func(env map[string]string) { env["IDENTITY_SERVER_THUMBPRINT"] = wrong })
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.AcquireToken(ctx, resource)
		wantCode(t, err, token.CodeManagedIdentityUnreachable)
		wantMessage(t, err, "IDENTITY_SERVER_THUMBPRINT")
		if emu.Requests(emulator.EndpointServiceFabric) != before {
			t.Fatal("the secret reached a server whose certificate was refused")
		}
	})
	t.Run("trusted chain accepted without the pin", func(t *testing.T) {
		roots := emu.RootCAs()
		roots.AddCert(sfCert)
		c, err := sfClient(t, emu, managedidentity.SystemAssigned(), func(env map[string]string) { env["IDENTITY_SERVER_THUMBPRINT"] = wrong },
			managedidentity.WithRootCAs(roots))
		if err != nil {
			t.Fatal(err)
		}
		acquireOK(t, emu, c, sys.ClientID)
	})
	t.Run("redirects refused", func(t *testing.T) {
		var hits atomic.Int32
		elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
		defer elsewhere.Close()
		emu.InjectFault(emulator.EndpointServiceFabric, emulator.Fault{Status: http.StatusTemporaryRedirect, Count: 1,
			Header: http.Header{"Location": {elsewhere.URL + "/steal"}}})
		defer emu.ClearFaults()
		c, err := sfClient(t, emu, managedidentity.SystemAssigned(), nil,
			managedidentity.WithHTTPClient(&http.Client{})) // follows redirects; the derived client must not
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.AcquireToken(ctx, resource)
		if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != http.StatusTemporaryRedirect {
			t.Fatalf("%+v", te)
		}
		if hits.Load() != 0 {
			t.Fatal("redirect followed")
		}
	})
	t.Run("bad configuration", func(t *testing.T) {
		for name, edit := range map[string]func(map[string]string){
			"thumbprint not hex":   func(env map[string]string) { env["IDENTITY_SERVER_THUMBPRINT"] = strings.Repeat("zz", 20) },
			"thumbprint too short": func(env map[string]string) { env["IDENTITY_SERVER_THUMBPRINT"] = "ABCDEF" },
			"plain http endpoint": func(env map[string]string) {
				env["IDENTITY_ENDPOINT"] = strings.Replace(env["IDENTITY_ENDPOINT"], "https:", "http:", 1)
			},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := sfClient(t, emu, managedidentity.SystemAssigned(), edit)
				wantCode(t, err, token.CodeInvalidManagedIdentityURL)
			})
		}
	})
}

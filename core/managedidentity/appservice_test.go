package managedidentity_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

func TestAppServiceEveryIdentity(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceAppService, emulator.Config{})
	u := emu.Config().UserAssigned[0]
	sys := emu.Config().SystemAssigned
	for _, tc := range []struct {
		name      string
		id        managedidentity.ID
		sel, val  string
		wantActor string
	}{
		{"system-assigned", managedidentity.SystemAssigned(), "", "", sys.ClientID},
		{"client id", managedidentity.UserAssignedClientID(u.ClientID), "client_id", u.ClientID, u.ClientID},
		{"resource id", managedidentity.UserAssignedResourceID(u.ResourceID), "mi_res_id", u.ResourceID, u.ClientID},
		{"object id", managedidentity.UserAssignedObjectID(u.ObjectID), "object_id", u.ObjectID, u.ClientID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sourceClient(t, emu, tc.id, nil)
			if c.Source() != managedidentity.SourceAppService {
				t.Fatalf("source %s", c.Source())
			}
			acquireOK(t, emu, c, tc.wantActor)
			rec := emu.LastRequest(emulator.EndpointAppService)
			if rec.Method != http.MethodGet || rec.Query.Get("api-version") != "2019-08-01" ||
				rec.Query.Get("resource") != emu.Config().ResourceID ||
				rec.Header.Get("X-IDENTITY-HEADER") != emu.Env()["IDENTITY_HEADER"] || rec.Header.Get("x-ms-client-request-id") == "" {
				t.Fatalf("request %s %v %v", rec.Method, rec.Query, rec.Header)
			}
			onlySelector(t, rec.Query, tc.sel, tc.val)
		})
	}
}

func TestAppServiceErrors(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceAppService, emulator.Config{})
	ctx := context.Background()
	resource := emu.Config().ResourceID

	t.Run("unknown identity", func(t *testing.T) {
		_, err := sourceClient(t, emu, managedidentity.UserAssignedClientID("00000000-0000-0000-0000-00000000dead"), nil).AcquireToken(ctx, resource)
		te := wantCode(t, err, token.CodeManagedIdentityRequestFailed)
		if te.Status != 400 || te.Source != "appservice" || te.CorrelationID == "" {
			t.Fatalf("%+v", te)
		}
		wantMessage(t, err, "invalid_request", "Identity not found")
	})
	t.Run("wrong secret", func(t *testing.T) {
		env := emu.Env()
		env["IDENTITY_HEADER"] = "not-the-secret"
		c, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(func(k string) string { return env[k] }))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.AcquireToken(ctx, resource)
		if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != 401 {
			t.Fatalf("%+v", te)
		}
	})
	t.Run("App Service error body", func(t *testing.T) {
		emu.InjectFault(emulator.EndpointAppService, emulator.Fault{Status: 500, Count: 4,
			Body: `{"statusCode":500,"message":"An unexpected error occured while fetching the AAD Token.","correlationId":"7f3b-corr"}`})
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, resource)
		te := wantCode(t, err, token.CodeManagedIdentityRequestFailed)
		if te.Status != 500 || te.CorrelationID != "7f3b-corr" || !te.Retryable {
			t.Fatalf("%+v", te)
		}
		wantMessage(t, err, "unexpected error occured while fetching the AAD Token")
	})
	t.Run("PoP is for IMDSv2 only", func(t *testing.T) {
		before := emu.Requests(emulator.EndpointAppService)
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, resource, managedidentity.WithMtlsPoP())
		if te := wantCode(t, err, token.CodeMtlsPopNotSupportedForEnv); te.Source != "appservice" {
			t.Fatalf("%+v", te)
		}
		if emu.Requests(emulator.EndpointAppService) != before || emu.Requests(emulator.EndpointPlatformMetadata) != 0 {
			t.Fatal("a PoP request on App Service sent a request")
		}
	})
	t.Run("endpoint is not a URL", func(t *testing.T) {
		env := map[string]string{"IDENTITY_ENDPOINT": "127.0.0.1:80/msi", "IDENTITY_HEADER": "x"}
		_, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(func(k string) string { return env[k] }))
		wantCode(t, err, token.CodeInvalidManagedIdentityURL)
	})
}

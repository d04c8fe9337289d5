package managedidentity_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

func TestCloudShell(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceCloudShell, emulator.Config{})
	u := emu.Config().UserAssigned[0]
	ctx := context.Background()
	resource := emu.Config().ResourceID

	t.Run("system-assigned", func(t *testing.T) {
		c := sourceClient(t, emu, managedidentity.SystemAssigned(), nil)
		if c.Source() != managedidentity.SourceCloudShell {
			t.Fatal(c.Source())
		}
		acquireOK(t, emu, c, emu.Config().SystemAssigned.ClientID)
		rec := emu.LastRequest(emulator.EndpointCloudShell)
		if rec.Method != http.MethodPost || len(rec.Query) != 0 || rec.Header.Get("Metadata") != "true" ||
			rec.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || len(rec.Form) != 1 || rec.Form.Get("resource") != resource {
			t.Fatalf("request %s %v %v %v", rec.Method, rec.Query, rec.Header, rec.Form)
		}
	})
	for _, id := range []managedidentity.ID{managedidentity.UserAssignedClientID(u.ClientID),
		managedidentity.UserAssignedResourceID(u.ResourceID), managedidentity.UserAssignedObjectID(u.ObjectID)} {
		t.Run("refused "+id.String(), func(t *testing.T) {
			before := emu.Requests(emulator.EndpointCloudShell)
			_, err := sourceClient(t, emu, id, nil).AcquireToken(ctx, resource)
			if te := wantCode(t, err, token.CodeUserAssignedNotSupported); te.Source != "cloudshell" {
				t.Fatalf("%+v", te)
			}
			if emu.Requests(emulator.EndpointCloudShell) != before {
				t.Fatal("a user-assigned request was sent")
			}
		})
	}
	t.Run("nested error body", func(t *testing.T) {
		emu.InjectFault(emulator.EndpointCloudShell, emulator.Fault{Status: 400, Count: 1,
			Body: `{"error":{"code":"BadRequest","message":"resource is not a valid audience"}}`})
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, resource)
		if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != 400 {
			t.Fatalf("%+v", te)
		}
		wantMessage(t, err, "BadRequest: resource is not a valid audience")
	})
	t.Run("PoP refused", func(t *testing.T) {
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, resource, managedidentity.WithMtlsPoP())
		wantCode(t, err, token.CodeMtlsPopNotSupportedForEnv)
	})
}

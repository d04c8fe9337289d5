package managedidentity_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

func TestMachineLearningIdentities(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceMachineLearning, emulator.Config{})
	u := emu.Config().UserAssigned[0]
	sys := emu.Config().SystemAssigned
	env := emu.Env()
	if env["DEFAULT_IDENTITY_CLIENT_ID"] != sys.ClientID {
		t.Fatalf("env %v", env)
	}
	for _, tc := range []struct {
		name  string
		id    managedidentity.ID
		val   string
		actor string
	}{
		{"system-assigned sends DEFAULT_IDENTITY_CLIENT_ID", managedidentity.SystemAssigned(), sys.ClientID, sys.ClientID},
		{"client id", managedidentity.UserAssignedClientID(u.ClientID), u.ClientID, u.ClientID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sourceClient(t, emu, tc.id, nil)
			if c.Source() != managedidentity.SourceMachineLearning {
				t.Fatal(c.Source())
			}
			acquireOK(t, emu, c, tc.actor)
			rec := emu.LastRequest(emulator.EndpointMachineLearning)
			if rec.Method != http.MethodGet || rec.Query.Get("api-version") != "2017-09-01" || rec.Query.Get("resource") != emu.Config().ResourceID ||
				rec.Header.Get("secret") != env["MSI_SECRET"] || rec.Header.Get("Metadata") != "true" {
				t.Fatalf("request %s %v %v", rec.Method, rec.Query, rec.Header)
			}
			onlySelector(t, rec.Query, "clientid", tc.val)
		})
	}
	for _, id := range []managedidentity.ID{managedidentity.UserAssignedResourceID(u.ResourceID), managedidentity.UserAssignedObjectID(u.ObjectID)} {
		t.Run("refused "+id.String(), func(t *testing.T) {
			before := emu.Requests(emulator.EndpointMachineLearning)
			_, err := sourceClient(t, emu, id, nil).AcquireToken(context.Background(), emu.Config().ResourceID)
			if te := wantCode(t, err, token.CodeInvalidManagedIdentityID); te.Source != "machinelearning" {
				t.Fatalf("%+v", te)
			}
			if emu.Requests(emulator.EndpointMachineLearning) != before {
				t.Fatal("a refused selector was sent")
			}
		})
	}
}

// TestEnvSourceExpiryForms: every expires_on form MSAL accepts, through a real source.
func TestEnvSourceExpiryForms(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceMachineLearning, emulator.Config{})
	now := time.Now()
	at := now.Add(3 * time.Hour).UTC().Truncate(time.Second)
	for name, expires := range map[string]string{
		"epoch number":        `"expires_on":` + strconv.FormatInt(at.Unix(), 10),
		"epoch string":        `"expires_on":"` + strconv.FormatInt(at.Unix(), 10) + `"`,
		"relative seconds":    `"expires_on":"10800"`,
		"expires_in":          `"expires_in":10800`,
		"2017 API date":       `"expires_on":"` + at.Format("01/02/2006 15:04:05 -07:00") + `"`,
		".NET invariant date": `"expires_on":"` + at.Format("1/2/2006 3:04:05 PM -07:00") + `"`,
		"RFC 3339":            `"expires_on":"` + at.Format(time.RFC3339) + `"`,
	} {
		t.Run(name, func(t *testing.T) {
			emu.InjectFault(emulator.EndpointMachineLearning, emulator.Fault{Status: 200, Count: 1,
				Body: `{"access_token":"a.b.c","token_type":"Bearer",` + expires + `}`})
			res, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(context.Background(), emu.Config().ResourceID)
			if err != nil {
				t.Fatal(err)
			}
			if d := res.ExpiresOn.Sub(at); d < -5*time.Second || d > 5*time.Second {
				t.Fatalf("expires %v, want %v", res.ExpiresOn, at)
			}
			if res.RefreshOn.IsZero() {
				t.Fatal("a 3 h token gets a refresh point")
			}
		})
	}
	t.Run("malformed", func(t *testing.T) {
		emu.InjectFault(emulator.EndpointMachineLearning, emulator.Fault{Malformed: true, Count: 1})
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(context.Background(), emu.Config().ResourceID)
		if te := wantCode(t, err, token.CodeManagedIdentityParseFailure); te.Source != "machinelearning" {
			t.Fatalf("%+v", te)
		}
	})
	t.Run("200 carrying an error", func(t *testing.T) {
		emu.InjectFault(emulator.EndpointMachineLearning, emulator.Fault{Status: 200, Count: 1, Body: `{"error":"invalid_resource","error_description":"AADSTS500011"}`})
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(context.Background(), emu.Config().ResourceID)
		wantCode(t, err, token.CodeInvalidManagedIdentityResp)
		wantMessage(t, err, "invalid_resource: AADSTS500011")
	})
}

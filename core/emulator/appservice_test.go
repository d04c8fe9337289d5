package emulator_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestAppServiceEndpoint(t *testing.T) {
	e := start(t, emulator.Config{Source: emulator.SourceAppService})
	u := e.Config().UserAssigned[0]
	c := plainClient()
	secret := map[string]string{"X-IDENTITY-HEADER": e.Env()["IDENTITY_HEADER"]}

	for _, sel := range [][2]string{{}, {"client_id", u.ClientID}, {"mi_res_id", u.ResourceID}, {"object_id", u.ObjectID}} {
		want := e.Config().SystemAssigned.ClientID
		if sel[0] != "" {
			want = u.ClientID
		}
		m := tokenFor(t, e, sourceGet(t, e, c, sourceQuery("2019-08-01", sel[0], sel[1]), secret), want)
		if m["client_id"] != want || m["token_type"] != "Bearer" || m["resource"] != graphResource {
			t.Fatalf("answer %v", m)
		}
		if _, ok := m["expires_on"].(string); !ok {
			t.Fatalf("expires_on %v is not App Service's string", m["expires_on"])
		}
	}
	t.Run("checks", func(t *testing.T) {
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2019-08-01"), nil), 400, "invalid_request", "X-IDENTITY-HEADER")
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2019-08-01"), map[string]string{"X-IDENTITY-HEADER": "guess"}), 401, "unauthorized_client", "does not match")
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2017-09-01"), secret), 400, "invalid_request", "api-version")
		wantMIError(t, sourceGet(t, e, c, sourceQuery(""), secret), 400, "invalid_request", "api-version")
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2019-08-01", "msi_res_id", u.ResourceID), secret), 400, "invalid_request", "msi_res_id is not supported")
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2019-08-01", "client_id", "nobody"), secret), 400, "invalid_request", "Identity not found")
		q := sourceQuery("2019-08-01")
		q.Del("resource")
		wantMIError(t, sourceGet(t, e, c, q, secret), 400, "invalid_request", "resource")
		r := do(t, c, newRequest(t, http.MethodPost, e.SourceURL(), strings.NewReader("resource=x"), secret))
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("POST: %d", r.status)
		}
	})
	rec := e.LastRequest(emulator.EndpointAppService)
	if rec == nil || rec.Method != http.MethodPost || e.Requests(emulator.EndpointAppService) != 12 {
		t.Fatalf("records: %d, last %+v", e.Requests(emulator.EndpointAppService), rec)
	}
}

package emulator_test

import (
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestMachineLearningEndpoint(t *testing.T) {
	e := start(t, emulator.Config{Source: emulator.SourceMachineLearning})
	u := e.Config().UserAssigned[0]
	sys := e.Config().SystemAssigned
	c := plainClient()
	secret := map[string]string{"secret": e.Env()["MSI_SECRET"]}

	tokenFor(t, e, sourceGet(t, e, c, sourceQuery("2017-09-01"), secret), sys.ClientID)
	tokenFor(t, e, sourceGet(t, e, c, sourceQuery("2017-09-01", "clientid", e.Env()["DEFAULT_IDENTITY_CLIENT_ID"]), secret), sys.ClientID)
	m := tokenFor(t, e, sourceGet(t, e, c, sourceQuery("2017-09-01", "clientid", u.ClientID), secret), u.ClientID)
	if _, ok := m["expires_on"].(string); !ok || m["client_id"] != u.ClientID {
		t.Fatalf("answer %v", m)
	}
	wantMIError(t, sourceGet(t, e, c, sourceQuery("2017-09-01"), nil), 400, "invalid_request", "secret")
	wantMIError(t, sourceGet(t, e, c, sourceQuery("2017-09-01"), map[string]string{"secret": "guess"}), 401, "unauthorized_client", "MSI_SECRET")
	wantMIError(t, sourceGet(t, e, c, sourceQuery("2019-08-01"), secret), 400, "invalid_request", "api-version")
	for _, sel := range []string{"client_id", "mi_res_id", "msi_res_id", "object_id"} {
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2017-09-01", sel, u.ClientID), secret), 400, "invalid_request", "clientid")
	}
	wantMIError(t, sourceGet(t, e, c, sourceQuery("2017-09-01", "clientid", "nobody"), secret), 400, "invalid_request", "Identity not found")
}

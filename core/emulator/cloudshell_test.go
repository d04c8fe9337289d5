package emulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestCloudShellEndpoint(t *testing.T) {
	e := start(t, emulator.Config{Source: emulator.SourceCloudShell})
	c := plainClient()
	post := func(form url.Values, header map[string]string) response {
		h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		for k, v := range header {
			h[k] = v
		}
		return do(t, c, newRequest(t, http.MethodPost, e.SourceURL(), strings.NewReader(form.Encode()), h))
	}
	m := tokenFor(t, e, post(url.Values{"resource": {graphResource}}, metadata), e.Config().SystemAssigned.ClientID)
	if m["expires_in"] == nil || m["expires_on"] == nil || m["token_type"] != "Bearer" {
		t.Fatalf("answer %v", m)
	}
	rec := e.LastRequest(emulator.EndpointCloudShell)
	if rec.Form.Get("resource") != graphResource {
		t.Fatalf("record %+v", rec)
	}
	wantNestedError(t, post(url.Values{"resource": {graphResource}}, nil), 400, "BadRequest", "metadata")
	wantNestedError(t, post(url.Values{}, metadata), 400, "BadRequest", "resource")
	wantNestedError(t, post(url.Values{"resource": {graphResource}, "client_id": {"x"}}, metadata), 400, "BadRequest", "no user-assigned")
	wantNestedError(t, sourceGet(t, e, c, sourceQuery(""), metadata), 405, "MethodNotAllowed", "POST")
	r := do(t, c, newRequest(t, http.MethodPost, e.SourceURL(), strings.NewReader(`{"resource":"x"}`),
		map[string]string{"Metadata": "true", "Content-Type": "application/json"}))
	wantNestedError(t, r, 400, "BadRequest", "form")
}

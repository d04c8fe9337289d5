package emulator_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestIMDSv1TokenSelectors(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	tests := []struct {
		name     string
		query    url.Values
		clientID string
		objectID string
		mirid    string
	}{
		{"system-assigned", v1Query(), emulator.DefaultSystemAssignedClientID, emulator.DefaultSystemAssignedObjectID, emulator.DefaultSystemAssignedResourceID},
		{"client_id", v1Query("client_id", emulator.DefaultUserAssignedClientID), emulator.DefaultUserAssignedClientID, emulator.DefaultUserAssignedObjectID, emulator.DefaultUserAssignedResourceID},
		{"msi_res_id", v1Query("msi_res_id", emulator.DefaultUserAssignedResourceID), emulator.DefaultUserAssignedClientID, emulator.DefaultUserAssignedObjectID, emulator.DefaultUserAssignedResourceID},
		{"object_id", v1Query("object_id", emulator.DefaultUserAssignedObjectID), emulator.DefaultUserAssignedClientID, emulator.DefaultUserAssignedObjectID, emulator.DefaultUserAssignedResourceID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Unix()
			r := imdsGet(t, e, v1TokenPath, tc.query)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := r.header.Get("Server"); got != emulator.IMDSServerHeader {
				t.Errorf("Server = %q", got)
			}
			m := r.json(t)
			// IMDS sends every number as a string.
			for _, k := range []string{"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"} {
				if _, ok := m[k].(string); !ok {
					t.Errorf("%s = %#v, want a string", k, m[k])
				}
			}
			// Whole seconds left at response time: 86399 for a token minted this second, less if
			// a loaded machine took a second or two to answer.
			for _, k := range []string{"expires_in", "ext_expires_in"} {
				if v, err := strconv.Atoi(m[k].(string)); err != nil || v < 86395 || v > 86399 {
					t.Errorf("%s = %v, want about 86399", k, m[k])
				}
			}
			expOn, _ := strconv.ParseInt(m["expires_on"].(string), 10, 64)
			if expOn < before+86399 || expOn > time.Now().Unix()+86400 {
				t.Errorf("expires_on = %d", expOn)
			}
			if m["token_type"] != "Bearer" || m["resource"] != graphResource || m["client_id"] != tc.clientID {
				t.Errorf("token_type/resource/client_id = %v/%v/%v", m["token_type"], m["resource"], m["client_id"])
			}
			c := verifyToken(t, e, m["access_token"].(string), graphResource)
			if _, bound := c["cnf"]; bound {
				t.Error("IMDS v1 token has a cnf claim")
			}
			want := map[string]any{
				"sub": tc.objectID, "oid": tc.objectID, "tid": emulator.DefaultTenantID, "appid": tc.clientID,
				"azp": tc.clientID, "idtyp": "app", "xms_mirid": tc.mirid,
			}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			if exp, _ := c.GetExpirationTime(); exp == nil || exp.Unix() != expOn {
				t.Errorf("exp = %v, expires_on = %d", exp, expOn)
			}
		})
	}
}

func TestIMDSv1TokenErrors(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	noRes := v1Query()
	noRes.Del("resource")
	noVersion := v1Query()
	noVersion.Del("api-version")
	twoSelectors := v1Query("client_id", emulator.DefaultUserAssignedClientID, "object_id", emulator.DefaultUserAssignedObjectID)
	tests := []struct {
		name   string
		query  url.Values
		header map[string]string
		status int
		desc   string
	}{
		{"no metadata header", v1Query(), nil, 400, "Required metadata header not specified"},
		{"metadata false", v1Query(), map[string]string{"Metadata": "false"}, 400, "Required metadata header not specified"},
		{"missing resource", noRes, metadata, 400, "Required audience parameter not specified"},
		{"missing api-version", noVersion, metadata, 400, "Required parameter api-version not specified"},
		{"wrong api-version", v1Query("api-version", "2019-08-01"), metadata, 400, `api-version "2019-08-01" is not supported; use 2018-02-01`},
		{"v2 spelling mi_res_id", v1Query("mi_res_id", emulator.DefaultUserAssignedResourceID), metadata, 400, "mi_res_id is not supported by this endpoint; use msi_res_id"},
		{"two selectors", twoSelectors, metadata, 400, "Only one of client_id, msi_res_id or object_id may be specified"},
		{"unknown client id", v1Query("client_id", "00000000-0000-0000-0000-000000000001"), metadata, 400, "Identity not found"},
		{"unknown resource id", v1Query("msi_res_id", "/subscriptions/x/nope"), metadata, 400, "Identity not found"},
		{"unknown object id", v1Query("object_id", "00000000-0000-0000-0000-000000000002"), metadata, 400, "Identity not found"},
		{"system client id as selector", v1Query("client_id", emulator.DefaultSystemAssignedClientID), metadata, 400, "Identity not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, plainClient(), newRequest(t, http.MethodGet, e.IMDSURL()+v1TokenPath+"?"+tc.query.Encode(), nil, tc.header))
			wantError(t, r, tc.status, "invalid_request", tc.desc)
		})
	}
	t.Run("POST", func(t *testing.T) {
		r := do(t, plainClient(), newRequest(t, http.MethodPost, e.IMDSURL()+v1TokenPath+"?"+v1Query().Encode(), nil, metadata))
		wantError(t, r, http.StatusMethodNotAllowed, "invalid_request", "")
	})
	t.Run("unknown path", func(t *testing.T) {
		r := do(t, plainClient(), newRequest(t, http.MethodGet, e.IMDSURL()+"/metadata/instance", nil, metadata))
		wantError(t, r, http.StatusNotFound, "not_found", "")
	})
}

func TestIMDSv1NoUserAssigned(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{UserAssigned: []emulator.Identity{}})
	r := imdsGet(t, e, v1TokenPath, v1Query("client_id", emulator.DefaultUserAssignedClientID))
	wantError(t, r, 400, "invalid_request", "Identity not found")
	if r := imdsGet(t, e, v1TokenPath, v1Query()); r.status != http.StatusOK {
		t.Fatalf("system-assigned: %d %s", r.status, r.body)
	}
}

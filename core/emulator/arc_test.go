package emulator_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
)

// arcChallenge asks for a challenge and returns the key file's path and contents.
func arcChallenge(t *testing.T, e *emulator.Emulator, q map[string][]string) (string, string) {
	t.Helper()
	r := sourceGet(t, e, plainClient(), q, metadata)
	wantMIError(t, r, 401, "unauthorized", "WWW-Authenticate")
	path, ok := strings.CutPrefix(r.header.Get("WWW-Authenticate"), "Basic realm=")
	if !ok || filepath.Dir(path) != e.ArcKeyDirectory() || !strings.HasSuffix(path, ".key") {
		t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 || len(b) > 4096 {
		t.Fatalf("key file %v, %d bytes", fi.Mode(), len(b))
	}
	return path, string(b)
}

func TestArcEndpoint(t *testing.T) {
	e := start(t, emulator.Config{Source: emulator.SourceAzureArc})
	u := e.Config().UserAssigned[0]
	sys := e.Config().SystemAssigned
	env := e.Env()
	if env["IMDS_ENDPOINT"] == "" || !strings.HasPrefix(env["IDENTITY_ENDPOINT"], env["IMDS_ENDPOINT"]+"/metadata/identity/oauth2/token") {
		t.Fatalf("env %v", env)
	}
	c := plainClient()
	for _, tc := range []struct {
		sel, val, want, echo string
	}{
		{"", "", sys.ClientID, ""},
		{"client_id", u.ClientID, u.ClientID, ""},
		{"msi_res_id", u.ResourceID, u.ClientID, u.ResourceID},
		{"object_id", u.ObjectID, u.ClientID, u.ObjectID},
		{"mi_res_id", u.ResourceID, sys.ClientID, ""}, // not Arc's spelling: ignored, as the agent does
	} {
		t.Run("selector "+tc.sel, func(t *testing.T) {
			q := sourceQuery("2020-06-01", tc.sel, tc.val)
			path, secret := arcChallenge(t, e, q)
			m := tokenFor(t, e, sourceGet(t, e, c, q, map[string]string{"Metadata": "true", "Authorization": "Basic " + secret}), tc.want)
			if m["client_id"] != tc.want || m["expires_in"] == nil {
				t.Fatalf("answer %v", m)
			}
			if tc.echo != "" && m[tc.sel] != tc.echo {
				t.Fatalf("no echo of %s in %v", tc.sel, m)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatal("a used key file is left behind")
			}
			// Each secret is good once.
			wantMIError(t, sourceGet(t, e, c, q, map[string]string{"Metadata": "true", "Authorization": "Basic " + secret}), 401, "unauthorized", "")
		})
	}
	t.Run("checks", func(t *testing.T) {
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2020-06-01"), nil), 400, "invalid_request", "metadata")
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2018-02-01"), metadata), 400, "invalid_request", "api-version")
		wantMIError(t, sourceGet(t, e, c, sourceQuery("2020-06-01"), map[string]string{"Metadata": "true", "Authorization": "Basic guess"}), 401, "unauthorized", "")
		r := do(t, c, newRequest(t, http.MethodPost, e.SourceURL(), nil, metadata))
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("POST: %d", r.status)
		}
	})
	t.Run("old agent ignores selectors", func(t *testing.T) {
		old := start(t, emulator.Config{Source: emulator.SourceAzureArc, ArcIgnoreUserAssigned: true})
		q := sourceQuery("2020-06-01", "client_id", u.ClientID)
		_, secret := arcChallenge(t, old, q)
		m := tokenFor(t, old, sourceGet(t, old, c, q, map[string]string{"Metadata": "true", "Authorization": "Basic " + secret}), sys.ClientID)
		if m["client_id"] != sys.ClientID {
			t.Fatalf("answer %v", m)
		}
	})
	t.Run("configured directory", func(t *testing.T) {
		base := t.TempDir()
		dir := filepath.Join(base, "var", "opt", "azcmagent", "tokens")
		e, err := emulator.Start(emulator.Config{Source: emulator.SourceAzureArc, ArcKeyDirectory: dir})
		if err != nil {
			t.Fatal(err)
		}
		if e.ArcKeyDirectory() != dir {
			t.Fatal(e.ArcKeyDirectory())
		}
		arcChallenge(t, e, sourceQuery("2020-06-01"))
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(base, "var")); err == nil {
			t.Fatal("created directories left behind")
		}
	})
}

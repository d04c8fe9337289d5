package emulator_test

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestSourceEnv(t *testing.T) {
	want := map[emulator.Source][]string{
		emulator.SourceIMDS:            {"AZURE_POD_IDENTITY_AUTHORITY_HOST"},
		emulator.SourceAppService:      {"IDENTITY_ENDPOINT", "IDENTITY_HEADER"},
		emulator.SourceServiceFabric:   {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT"},
		emulator.SourceMachineLearning: {"MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID"},
		emulator.SourceCloudShell:      {"MSI_ENDPOINT"},
		emulator.SourceAzureArc:        {"IDENTITY_ENDPOINT", "IMDS_ENDPOINT"},
	}
	for _, src := range emulator.Sources() {
		t.Run(string(src), func(t *testing.T) {
			e := start(t, emulator.Config{Source: src})
			env := e.Env()
			if len(env) != len(want[src])+1 || env["SSL_CERT_FILE"] == "" {
				t.Fatalf("env %v", env)
			}
			for _, k := range want[src] {
				if env[k] == "" {
					t.Fatalf("%s missing from %v", k, env)
				}
			}
			if e.Source() != src || (src == emulator.SourceIMDS) != (e.SourceURL() == "") {
				t.Fatalf("Source %s, SourceURL %q", e.Source(), e.SourceURL())
			}
			for _, k := range []string{"IDENTITY_ENDPOINT", "MSI_ENDPOINT"} {
				if v := env[k]; v != "" && v != e.SourceURL() {
					t.Fatalf("%s = %s, SourceURL %s", k, v, e.SourceURL())
				}
			}
		})
	}
}

func TestSourceConfigErrors(t *testing.T) {
	for name, cfg := range map[string]emulator.Config{
		"unknown source":      {Source: "vm"},
		"key dir without Arc": {Source: emulator.SourceAppService, ArcKeyDirectory: t.TempDir()},
		"'=' in key dir":      {Source: emulator.SourceAzureArc, ArcKeyDirectory: t.TempDir() + "/a=b"},
	} {
		t.Run(name, func(t *testing.T) {
			if e, err := emulator.Start(cfg); err == nil {
				e.Close()
				t.Fatal("started")
			}
		})
	}
}

// sourceGet sends a GET to the emulated source's endpoint.
func sourceGet(t *testing.T, e *emulator.Emulator, c *http.Client, q url.Values, header map[string]string) response {
	t.Helper()
	return do(t, c, newRequest(t, http.MethodGet, e.SourceURL()+"?"+q.Encode(), nil, header))
}

func sourceQuery(apiVersion string, kv ...string) url.Values {
	q := url.Values{"resource": {graphResource}}
	if apiVersion != "" {
		q.Set("api-version", apiVersion)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

// wantMIError checks an error answer in the managed-identity shape (error, error_description,
// message, correlationId).
func wantMIError(t *testing.T, r response, status int, code, descPart string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	m := r.json(t)
	desc, _ := m["error_description"].(string)
	if m["error"] != code || m["message"] != desc || !strings.Contains(desc, descPart) {
		t.Fatalf("body %s, want %s / %q", r.body, code, descPart)
	}
}

// wantNestedError checks an error answer in the nested shape {"error":{"code","message"}}.
func wantNestedError(t *testing.T, r response, status int, code, msgPart string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	inner, _ := r.json(t)["error"].(map[string]any)
	msg, _ := inner["message"].(string)
	if inner["code"] != code || !strings.Contains(msg, msgPart) {
		t.Fatalf("body %s, want %s / %q", r.body, code, msgPart)
	}
}

func tokenFor(t *testing.T, e *emulator.Emulator, r response, clientID string) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	tok, _ := m["access_token"].(string)
	if claims := verifyToken(t, e, tok, graphResource); claims["appid"] != clientID {
		t.Fatalf("token for %v, want %s", claims["appid"], clientID)
	}
	return m
}

func TestSourceCloseRemovesFiles(t *testing.T) {
	e, err := emulator.Start(emulator.Config{Source: emulator.SourceAzureArc})
	if err != nil {
		t.Fatal(err)
	}
	dir := e.ArcKeyDirectory()
	r := sourceGet(t, e, plainClient(), sourceQuery("2020-06-01"), metadata)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status %d", r.status)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("key directory %s left behind: %v", dir, err)
	}
}

// TestIMDSTrailingSlash: msal-node asks IMDS for ".../oauth2/token/"; IMDS answers it.
func TestIMDSTrailingSlash(t *testing.T) {
	e := start(t, emulator.Config{})
	r := imdsGet(t, e, v1TokenPath+"/", v1Query())
	if r.status != http.StatusOK || e.Requests(emulator.EndpointIMDSToken) != 1 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if r := imdsGet(t, e, "/metadata/identity/other/", v1Query()); r.status != http.StatusNotFound {
		t.Fatalf("unknown path: %d", r.status)
	}
}

package managedidentity_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// TestDetectionOrder is MSAL.NET's table (reference §2.1): the first match wins.
func TestDetectionOrder(t *testing.T) {
	const (
		ep = "http://127.0.0.1:1/token"
		sf = "https://127.0.0.1:1/token"
		tp = "0123456789ABCDEF0123456789ABCDEF01234567"
	)
	himds := filepath.Join(t.TempDir(), "himds")
	if err := os.WriteFile(himds, nil, 0o700); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"IDENTITY_ENDPOINT": sf, "IDENTITY_HEADER": "h", "IDENTITY_SERVER_THUMBPRINT": tp,
		"MSI_ENDPOINT": ep, "MSI_SECRET": "s", "IMDS_ENDPOINT": "http://127.0.0.1:1"}
	without := func(keys ...string) map[string]string {
		m := map[string]string{}
		for k, v := range all {
			m[k] = v
		}
		for _, k := range keys {
			delete(m, k)
		}
		return m
	}
	cases := []struct {
		name  string
		env   map[string]string
		himds bool
		want  managedidentity.Source
	}{
		{"everything set: Service Fabric", all, true, managedidentity.SourceServiceFabric},
		{"no thumbprint: App Service", without("IDENTITY_SERVER_THUMBPRINT"), true, managedidentity.SourceAppService},
		{"App Service beats Machine Learning and Arc", map[string]string{"IDENTITY_ENDPOINT": ep, "IDENTITY_HEADER": "h", "MSI_ENDPOINT": ep, "MSI_SECRET": "s", "IMDS_ENDPOINT": ep}, false, managedidentity.SourceAppService},
		{"no IDENTITY_HEADER: Machine Learning", without("IDENTITY_HEADER"), true, managedidentity.SourceMachineLearning},
		{"MSI_ENDPOINT alone: Cloud Shell", map[string]string{"MSI_ENDPOINT": ep}, true, managedidentity.SourceCloudShell},
		{"MSI_SECRET alone is nothing", map[string]string{"MSI_SECRET": "s"}, false, managedidentity.SourceIMDS},
		{"Cloud Shell beats Arc", map[string]string{"MSI_ENDPOINT": ep, "IDENTITY_ENDPOINT": ep, "IMDS_ENDPOINT": ep}, false, managedidentity.SourceCloudShell},
		{"IDENTITY_ENDPOINT + IMDS_ENDPOINT: Arc", map[string]string{"IDENTITY_ENDPOINT": ep, "IMDS_ENDPOINT": ep}, false, managedidentity.SourceAzureArc},
		{"himds binary: Arc", map[string]string{}, true, managedidentity.SourceAzureArc},
		{"IDENTITY_ENDPOINT alone: IMDS", map[string]string{"IDENTITY_ENDPOINT": ep}, false, managedidentity.SourceIMDS},
		{"IDENTITY_HEADER + thumbprint without endpoint: IMDS", map[string]string{"IDENTITY_HEADER": "h", "IDENTITY_SERVER_THUMBPRINT": tp}, false, managedidentity.SourceIMDS},
		{"nothing: IMDS", map[string]string{}, false, managedidentity.SourceIMDS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.himds {
				managedidentity.SetHimdsPath(t, himds)
			} else {
				managedidentity.SetHimdsPath(t, filepath.Join(t.TempDir(), "no-himds"))
			}
			getenv := func(k string) string { return tc.env[k] }
			if got := managedidentity.DetectSource(getenv); got != tc.want {
				t.Fatalf("DetectSource = %s, want %s", got, tc.want)
			}
			c, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(getenv))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Source() != tc.want {
				t.Fatalf("Client.Source = %s, want %s", c.Source(), tc.want)
			}
		})
	}
}

func TestInvalidSourceEndpoints(t *testing.T) {
	managedidentity.SetHimdsPath(t, "")
	for name, env := range map[string]map[string]string{
		"App Service":      {"IDENTITY_ENDPOINT": "not a url", "IDENTITY_HEADER": "h"},
		"Machine Learning": {"MSI_ENDPOINT": "ftp://127.0.0.1/x", "MSI_SECRET": "s"},
		"Cloud Shell":      {"MSI_ENDPOINT": "//127.0.0.1/x"},
		"Arc":              {"IDENTITY_ENDPOINT": "http://user:pw@127.0.0.1/x", "IMDS_ENDPOINT": "http://127.0.0.1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(func(k string) string { return env[k] }))
			wantCode(t, err, token.CodeInvalidManagedIdentityURL)
		})
	}
	if managedidentity.DetectSource(nil) == "" {
		t.Fatal("DetectSource(nil) reads the process environment")
	}
}

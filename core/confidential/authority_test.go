package confidential

import (
	"testing"

	"github.com/mtlspop/mtlspop/core/token"
)

func TestMtlsHost(t *testing.T) {
	cases := []struct {
		authority, region, host string
		code                    token.Code
	}{
		{"https://login.microsoftonline.com/contoso", "", "mtlsauth.microsoft.com", ""},
		{"https://login.microsoftonline.com/contoso", "westus3", "westus3.mtlsauth.microsoft.com", ""},
		{"https://LOGIN.microsoftonline.com:443/contoso", "", "mtlsauth.microsoft.com", ""}, // the port is not part of the host
		{"https://login.chinacloudapi.cn:443/contoso", "", "", token.CodeMtlsPopNotSupportedForEnv},
		{"https://login.windows.net/contoso/v2.0", "", "mtlsauth.microsoft.com", ""},
		{"https://sts.windows.net/contoso", "eastus", "eastus.mtlsauth.microsoft.com", ""},
		{"https://login.microsoftonline.us/contoso", "", "mtlsauth.microsoftonline.us", ""},
		{"https://login.partner.microsoftonline.cn/contoso", "chinanorth", "chinanorth.mtlsauth.partner.microsoftonline.cn", ""},
		{"https://login.private.example/contoso", "", "mtlsauth.private.example", ""},
		{"https://login.microsoftonline.com/common", "", "", token.CodeMissingTenantedAuthority},
		{"https://login.microsoftonline.com/Organizations", "", "", token.CodeMissingTenantedAuthority},
		{"https://login.usgovcloudapi.net/contoso", "", "", token.CodeMtlsPopNotSupportedForEnv},
		{"https://login.chinacloudapi.cn/contoso", "", "", token.CodeMtlsPopNotSupportedForEnv},
		{"https://adfs.contoso.example/adfs", "", "", token.CodeMtlsPopNotSupportedForEnv},
	}
	for _, tc := range cases {
		a, err := parseAuthority(tc.authority)
		if err != nil {
			t.Fatalf("%s: %v", tc.authority, err)
		}
		host, err := a.mtlsHost(tc.region)
		if host != tc.host || token.CodeOf(err) != tc.code {
			t.Errorf("%s region %q: %q %v, want %q %s", tc.authority, tc.region, host, err, tc.host, tc.code)
		}
	}
	for _, bad := range []string{"http://login.microsoftonline.com/t", "https://login.microsoftonline.com", "https://login.microsoftonline.com/t/oauth2", "https://h/t?x=1", "://"} {
		if _, err := parseAuthority(bad); token.CodeOf(err) != token.CodeInvalidArgument {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestResolveRegion(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		explicit string
		env      map[string]string
		region   string
		invalid  string
	}{
		{"", nil, "", ""},               // global endpoint
		{"westus3", nil, "westus3", ""}, // explicit
		{"WestUS3", nil, "westus3", ""}, // normalised
		{"", map[string]string{"REGION_NAME": "eastus"}, "eastus", ""},
		{"", map[string]string{"MSAL_FORCE_REGION": "northeurope", "REGION_NAME": "eastus"}, "northeurope", ""},
		{"westus3", map[string]string{"MSAL_FORCE_REGION": "northeurope", "REGION_NAME": "eastus"}, "westus3", ""}, // explicit skips the environment
		{"west us", nil, "", "west us"}, // invalid → global
		{"", map[string]string{"REGION_NAME": "east-us.evil"}, "", "east-us.evil"},
	}
	for _, tc := range cases {
		region, invalid := resolveRegion(tc.explicit, env(tc.env))
		if region != tc.region || invalid != tc.invalid {
			t.Errorf("explicit %q env %v: %q %q, want %q %q", tc.explicit, tc.env, region, invalid, tc.region, tc.invalid)
		}
	}
}

func FuzzParseAuthority(f *testing.F) {
	f.Add("https://login.microsoftonline.com/contoso")
	f.Add("https://x/")
	f.Fuzz(func(t *testing.T, raw string) {
		a, err := parseAuthority(raw)
		if err != nil {
			return
		}
		if a.tenant == "" || a.host == "" {
			t.Fatalf("accepted %q without a tenant or host", raw)
		}
		_, _ = a.mtlsHost("r")
	})
}

package confidential

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/mtlspop/mtlspop/core/token"
)

// The mtlsauth endpoint (reference/msal-dotnet-mtlspop.md §3.1–§3.2): the certificate
// authenticates at the TLS layer, so the token endpoint lives on a host that asks for client
// certificates: the authority host with its leading "login" replaced by "mtlsauth", prefixed
// by the region when there is one.
const (
	regionEnvForce = "MSAL_FORCE_REGION"
	regionEnvName  = "REGION_NAME"
	publicMtlsHost = "mtlsauth.microsoft.com"
	tokenPath      = "/oauth2/v2.0/token"
)

// publicHosts are the public cloud's authority aliases; all map to mtlsauth.microsoft.com.
var publicHosts = map[string]bool{
	"login.microsoftonline.com": true,
	"login.windows.net":         true,
	"login.microsoft.com":       true,
	"sts.windows.net":           true,
}

// legacySovereign are retired sovereign-cloud hosts that have no mtlsauth endpoint, with the
// host to use instead.
var legacySovereign = map[string]string{
	"login.usgovcloudapi.net": "login.microsoftonline.us",
	"login.chinacloudapi.cn":  "login.partner.microsoftonline.cn",
}

var validRegion = regexp.MustCompile(`^[a-zA-Z0-9]+$`)

// authority is a parsed, tenanted-or-not authority URL.
type authority struct {
	base     string // scheme://host[:port]
	host     string // lower-case host name, without the port: what the mtlsauth mapping looks up
	tenant   string
	tokenURL string // the classic token endpoint, built once: the cache-hit path reads it
}

func parseAuthority(raw string) (authority, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return authority{}, token.Errorf(token.CodeInvalidArgument, "confidential: authority must be an https URL such as https://login.microsoftonline.com/<tenant>")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) == 0 || parts[0] == "" || len(parts) > 2 || (len(parts) == 2 && parts[1] != "v2.0") {
		return authority{}, token.Errorf(token.CodeInvalidArgument, "confidential: authority must name a tenant: https://<host>/<tenant>")
	}
	a := authority{base: "https://" + u.Host, host: strings.ToLower(u.Hostname()), tenant: parts[0]}
	a.tokenURL = a.base + "/" + url.PathEscape(a.tenant) + tokenPath
	return a, nil
}

// tenanted refuses the multi-tenant aliases: an mTLS PoP token is issued in one tenant.
func (a authority) tenanted() error {
	switch strings.ToLower(a.tenant) {
	case "common", "organizations":
		return token.Errorf(token.CodeMissingTenantedAuthority,
			"confidential: mTLS needs a tenanted authority, not /%s", a.tenant)
	}
	return nil
}

// mtlsHost returns the mtlsauth host for the authority, with the region prefix if any.
func (a authority) mtlsHost(region string) (string, error) {
	if err := a.tenanted(); err != nil {
		return "", err
	}
	host := a.host
	if instead, ok := legacySovereign[host]; ok {
		return "", token.Errorf(token.CodeMtlsPopNotSupportedForEnv,
			"confidential: %s has no mTLS endpoint; use https://%s as the authority", host, instead)
	}
	var m string
	switch {
	case publicHosts[host]:
		m = publicMtlsHost
	case strings.HasPrefix(host, "login."):
		m = "mtlsauth." + strings.TrimPrefix(host, "login.")
	default:
		return "", token.Errorf(token.CodeMtlsPopNotSupportedForEnv,
			"confidential: cannot derive an mTLS endpoint from authority host %s (it does not start with \"login.\"); set one with WithMtlsEndpoint", host)
	}
	if region != "" {
		m = region + "." + m
	}
	return m, nil
}

// resolveRegion picks the region: the explicit option, else MSAL_FORCE_REGION, else REGION_NAME.
// An explicit region skips the environment entirely. A region that is not alphanumeric is
// ignored (the global endpoint is used), as MSAL does, and reported through invalid.
func resolveRegion(explicit string, getenv func(string) string) (region, invalid string) {
	candidates := []string{explicit}
	if explicit == "" {
		candidates = []string{getenv(regionEnvForce), getenv(regionEnvName)}
	}
	for _, r := range candidates {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !validRegion.MatchString(r) {
			return "", r
		}
		return strings.ToLower(r), ""
	}
	return "", ""
}

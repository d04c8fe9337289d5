package managedidentity

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/token"
)

// Azure Arc (reference/msal-dotnet-mtlspop.md §2.2, DESIGN §4 — MSAL Go 1.9's rules): GET
// $IDENTITY_ENDPOINT (default http://127.0.0.1:40342/metadata/identity/oauth2/token) with
// api-version=2020-06-01 and "Metadata: true". The agent answers the first request with 401 and
// "WWW-Authenticate: Basic realm=<path>", naming a file only local administrators can read. The
// path must be exactly <platform directory>/<name>.key and the file at most 4096 bytes; its
// contents go back as "Authorization: Basic <contents>". They are a secret: never logged, never
// put in an error.
//
// A user-assigned identity is named by client_id, msi_res_id or object_id. Older agents ignore
// the selector and answer for the system-assigned identity, so the answer must echo the identity
// asked for, or the token is refused.
const (
	arcDefaultEndpoint = "http://127.0.0.1:40342/metadata/identity/oauth2/token"
	arcAPIVersion      = "2020-06-01"
	arcResourceID      = "msi_res_id"
	arcChallenge       = "Basic realm="
	arcKeyExtension    = ".key"
	arcMaxKeyBytes     = 4096
	arcLinuxKeyDir     = "/var/opt/azcmagent/tokens"
)

type arc struct {
	endpoint *url.URL
}

func newArc(getenv func(string) string) (source, error) {
	raw := getenv(envIdentityEndpoint)
	if raw == "" {
		raw = arcDefaultEndpoint // found through the himds binary
	}
	u, err := endpointURL(envIdentityEndpoint, raw)
	if err != nil {
		return nil, err
	}
	return &arc{endpoint: u}, nil
}

func (s *arc) name() string { return string(SourceAzureArc) }

// arcKeyDir is the one directory a challenge may name. WithArcKeyDirectory (Go only, for tests)
// replaces it; the environment never does.
func arcKeyDir(c *Client) (string, error) {
	if d := c.cfg.sources.arcKeyDir; d != "" {
		return filepath.Clean(d), nil
	}
	switch runtime.GOOS {
	case "linux":
		return arcLinuxKeyDir, nil
	case "windows":
		if pd := os.Getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "AzureConnectedMachineAgent", "Tokens"), nil
		}
	}
	return "", token.Errorf(token.CodeManagedIdentityRequestFailed, "Azure Arc is supported on Linux and Windows only")
}

func (s *arc) bearer(ctx context.Context, c *Client, resource, _ string) (token.Result, error) {
	q := url.Values{"api-version": {arcAPIVersion}, "resource": {resource}}
	if name, value := c.id.selector(arcResourceID); name != "" {
		q.Set(name, value)
	}
	endpoint := withQuery(s.endpoint, q)
	call := func(authorization string) miCall {
		return miCall{source: s.name(), what: "Azure Arc token request",
			newReq: func(ctx context.Context, correlationID string) (*http.Request, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
				if err != nil {
					return nil, err
				}
				req.Header.Set("Metadata", "true")
				if authorization != "" {
					req.Header.Set("Authorization", "Basic "+authorization)
				}
				clientHeaders(req.Header, correlationID)
				return req, nil
			}}
	}
	correlationID := wire.NewGUID()
	resp, err := call("").fetch(ctx, c, correlationID)
	if err != nil {
		return token.Result{}, err
	}
	switch {
	case resp.Status == http.StatusUnauthorized:
	case resp.Status >= 200 && resp.Status <= 299:
		return token.Result{}, arcError(correlationID, resp.Status, "the agent answered without the 401 challenge it must send first")
	default:
		return token.Result{}, call("").statusError(resp, correlationID)
	}
	dir, err := arcKeyDir(c)
	if err != nil {
		return token.Result{}, wire.Annotate(err, s.name(), correlationID)
	}
	secret, err := arcSecret(resp.Header.Get("WWW-Authenticate"), dir)
	if err != nil {
		return token.Result{}, wire.Annotate(err, s.name(), correlationID)
	}
	second := call(secret)
	resp, err = second.fetch(ctx, c, correlationID)
	if err != nil {
		return token.Result{}, err
	}
	t, r, err := second.parse(c, resp, correlationID)
	if err != nil {
		return token.Result{}, err
	}
	if !arcEchoed(c.id, t) {
		e := selectorError(token.CodeUserAssignedNotSupported, SourceAzureArc,
			"Azure Arc did not confirm the requested user-assigned identity (%s) in its answer; an agent without user-assigned support answers for the system-assigned identity, so the token is refused", kindName(c.id))
		return token.Result{}, wire.Annotate(e, s.name(), correlationID)
	}
	return r, nil
}

func arcError(correlationID string, status int, format string, args ...any) *token.Error {
	e := token.Errorf(token.CodeManagedIdentityRequestFailed, "Azure Arc: "+format, args...)
	e.Source, e.CorrelationID, e.Status = string(SourceAzureArc), correlationID, status
	return e
}

// arcSecret checks the challenge and reads the key file it names. Only the path (which is not
// secret) can appear in an error.
func arcSecret(challenge, dir string) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", token.Errorf(token.CodeManagedIdentityRequestFailed, "Azure Arc challenge: "+format, args...)
	}
	challenge = strings.TrimSpace(challenge)
	if challenge == "" {
		return fail("the 401 answer has no WWW-Authenticate header")
	}
	if len(challenge) < len(arcChallenge) || !strings.EqualFold(challenge[:len(arcChallenge)], arcChallenge) {
		return fail("WWW-Authenticate is not %q<path>", arcChallenge)
	}
	path := strings.TrimSpace(challenge[len(arcChallenge):])
	if len(path) >= 2 && path[0] == '"' && path[len(path)-1] == '"' {
		path = path[1 : len(path)-1]
	}
	shown := quotePath(path)
	base := filepath.Base(path)
	if !strings.HasSuffix(base, arcKeyExtension) || len(base) == len(arcKeyExtension) {
		return fail("the key file %s does not have the %s extension", shown, arcKeyExtension)
	}
	if strings.ContainsRune(path, 0) || filepath.Dir(path) != dir || filepath.Join(dir, base) != path {
		return fail("the key file %s is not directly in %s", shown, dir)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail("cannot read the key file %s: %s", shown, errorKind(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("the key file %s is not a regular file", shown)
	}
	if fi.Size() > arcMaxKeyBytes {
		return fail("the key file %s is larger than %d bytes", shown, arcMaxKeyBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail("cannot read the key file %s: %s", shown, errorKind(err))
	}
	defer f.Close()
	if opened, err := f.Stat(); err != nil || !os.SameFile(fi, opened) {
		return fail("the key file %s changed while it was opened", shown)
	}
	b, err := io.ReadAll(io.LimitReader(f, arcMaxKeyBytes+1))
	if err != nil {
		return fail("cannot read the key file %s: %s", shown, errorKind(err))
	}
	if len(b) > arcMaxKeyBytes {
		return fail("the key file %s is larger than %d bytes", shown, arcMaxKeyBytes)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return fail("the key file %s is empty", shown)
	}
	for i := 0; i < len(secret); i++ {
		if secret[i] < 0x20 || secret[i] == 0x7f {
			return fail("the key file %s holds characters a header cannot carry", shown)
		}
	}
	return secret, nil
}

// errorKind describes a file error without the text of the error, which repeats the path.
func errorKind(err error) string {
	switch {
	case os.IsNotExist(err):
		return "it does not exist"
	case os.IsPermission(err):
		return "permission denied"
	}
	return "I/O error"
}

// quotePath shows a server-chosen path safely in a message: quoted, and at most 256 bytes.
func quotePath(p string) string {
	if len(p) > 256 {
		p = p[:256] + "…"
	}
	return strconv.Quote(p)
}

// arcEchoed reports whether the answer is for the identity asked for: nothing to check for the
// system-assigned identity; otherwise the selector's value must come back (either spelling of
// the resource id; case-insensitive, as ids are GUIDs and ARM paths).
func arcEchoed(id ID, t wire.Token) bool {
	var echoed string
	switch id.kind {
	case kindSystem:
		return true
	case kindClientID:
		echoed = t.ClientID
	case kindResourceID:
		echoed = t.MsiResID
	case kindObjectID:
		echoed = t.ObjectID
	}
	return echoed != "" && strings.EqualFold(echoed, id.value)
}

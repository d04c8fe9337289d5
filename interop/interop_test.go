package interop

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	msal "github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/pop"
)

// binary is the CLI whose emulator the clients talk to: $MTLSPOP_INTEROP_EMULATOR (ci/interop.sh
// passes build/mtlspop), else one built for the run.
var binary string

func TestMain(m *testing.M) {
	binary = os.Getenv("MTLSPOP_INTEROP_EMULATOR")
	var tmp string
	if binary == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "mtlspop-interop"); err != nil {
			panic(err)
		}
		binary = filepath.Join(tmp, "mtlspop")
		if out, err := exec.Command("go", "build", "-o", binary, "../cmd/mtlspop").CombinedOutput(); err != nil {
			panic(string(out))
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// emu is a running `mtlspop emulator --source X` and what it printed.
type emu struct {
	Source     emulator.Source   `json:"source"`
	Env        map[string]string `json:"env"`
	URLs       map[string]string `json:"urls"`
	Identities struct {
		SystemAssigned identityJSON   `json:"system_assigned"`
		UserAssigned   []identityJSON `json:"user_assigned"`
	} `json:"identities"`
	ServiceFabric *struct {
		CertificatePEM string `json:"certificate_pem"`
	} `json:"service_fabric"`

	keys pop.KeySet
}

type identityJSON struct {
	ClientID   string `json:"client_id"`
	ObjectID   string `json:"object_id"`
	ResourceID string `json:"resource_id"`
}

// start runs the emulator until the test ends (closing its stdin stops it).
func start(t *testing.T, args ...string) *emu {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"emulator"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("emulator did not exit when its stdin closed")
		}
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("emulator printed no ready line: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	var e emu
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	// The signing keys, from the emulator's JWKS over its HTTPS login host.
	ca, err := os.ReadFile(e.Env["SSL_CERT_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	e.keys = pop.NewJWKS(e.URLs["jwks"], &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}})
	return &e
}

// sourceVars are every variable that announces a managed-identity source. Each case clears them
// all, so nothing from the caller's environment leaks into it.
var sourceVars = []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT",
	"MSI_SECRET", "IMDS_ENDPOINT", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_POD_IDENTITY_AUTHORITY_HOST"}

// arcPlatformDir is the one directory MSAL's clients read Azure Arc key files from.
const arcPlatformDir = "/var/opt/azcmagent/tokens"

// identity is one way to name an identity: kind is "" (system-assigned), client_id, resource_id
// or object_id.
type identity struct{ kind, value, clientID string }

func (i identity) String() string {
	if i.kind == "" {
		return "system"
	}
	return i.kind
}

func identities(e *emu, kinds ...string) []identity {
	u := e.Identities.UserAssigned[0]
	all := map[string]identity{
		"":            {"", "", e.Identities.SystemAssigned.ClientID},
		"client_id":   {"client_id", u.ClientID, u.ClientID},
		"resource_id": {"resource_id", u.ResourceID, u.ClientID},
		"object_id":   {"object_id", u.ObjectID, u.ClientID},
	}
	var out []identity
	for _, k := range kinds {
		out = append(out, all[k])
	}
	return out
}

var everyKind = []string{"", "client_id", "resource_id", "object_id"}

// startFor starts an emulator for src. Azure Arc writes its key files into the platform
// directory, which MSAL's clients insist on: that needs root, and no real agent on the machine.
func startFor(t *testing.T, src emulator.Source, extra ...string) *emu {
	t.Helper()
	args := append([]string{"--source", string(src)}, extra...)
	if src == emulator.SourceAzureArc {
		if os.Geteuid() != 0 {
			t.Skip("SKIP: MSAL reads Azure Arc key files only from " + arcPlatformDir + ", which only root can write")
		}
		if _, err := os.Stat("/opt/azcmagent/bin/himds"); err == nil {
			t.Skip("SKIP: a real Azure Arc agent is installed; not writing into its directory")
		}
		args = append(args, "--arc-key-dir", arcPlatformDir)
	}
	e := start(t, args...)
	if e.Source != src {
		t.Fatalf("emulator source %q, want %q", e.Source, src)
	}
	return e
}

// resourceFor is a resource unique to the case: MSAL Go's token cache is one per process.
func resourceFor(t *testing.T) string {
	return "api://mtlspop-interop/" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

// checkToken verifies tok as a resource would and that it is for want.
func checkToken(t *testing.T, e *emu, tok, aud, want string) {
	t.Helper()
	v := &pop.Verifier{Keys: e.keys, Issuer: e.URLs["issuer"], Audiences: []string{aud}, AllowUnbound: true}
	claims, err := v.Verify(context.Background(), "Bearer "+tok, nil)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if claims.ClientID != want {
		t.Fatalf("token for %s, want %s", claims.ClientID, want)
	}
}

// TestMSALGo: MSAL Go's managedidentity client against every source it supports. Identities
// MSAL Go itself refuses on a source (Service Fabric, Cloud Shell: none; Machine Learning: client
// id only) are not asked for.
func TestMSALGo(t *testing.T) {
	cases := []struct {
		src   emulator.Source
		kinds []string
	}{
		{emulator.SourceIMDS, everyKind},
		{emulator.SourceAppService, everyKind},
		{emulator.SourceServiceFabric, []string{""}},
		{emulator.SourceMachineLearning, []string{"", "client_id"}},
		{emulator.SourceCloudShell, []string{""}},
		{emulator.SourceAzureArc, everyKind},
	}
	for _, tc := range cases {
		t.Run(string(tc.src), func(t *testing.T) {
			emu := startFor(t, tc.src)
			for _, id := range identities(emu, tc.kinds...) {
				t.Run(id.String(), func(t *testing.T) {
					tok, err := msalGo(t, emu, id, resourceFor(t))
					if err != nil {
						t.Fatal(err)
					}
					checkToken(t, emu, tok, resourceFor(t), id.clientID)
				})
			}
		})
	}
	t.Run("arc old agent: fails closed", func(t *testing.T) {
		emu := startFor(t, emulator.SourceAzureArc, "--arc-ignore-user-assigned")
		if _, err := msalGo(t, emu, identities(emu, "client_id")[0], resourceFor(t)); err == nil || !strings.Contains(err.Error(), "did not confirm") {
			t.Fatalf("err = %v", err)
		}
	})
}

func msalGo(t *testing.T, emu *emu, id identity, resource string) (string, error) {
	t.Helper()
	for _, k := range sourceVars {
		t.Setenv(k, "")
	}
	for k, v := range emu.Env {
		if k != "SSL_CERT_FILE" {
			t.Setenv(k, v)
		}
	}
	var mid msal.ID = msal.SystemAssigned()
	switch id.kind {
	case "client_id":
		mid = msal.UserAssignedClientID(id.value)
	case "resource_id":
		mid = msal.UserAssignedResourceID(id.value)
	case "object_id":
		mid = msal.UserAssignedObjectID(id.value)
	}
	var opts []msal.ClientOption
	if emu.Source == emulator.SourceIMDS {
		// MSAL Go always calls 169.254.169.254; its WithHTTPClient option is how it is pointed
		// at another IMDS. The requests themselves are MSAL's.
		imds := strings.TrimPrefix(emu.URLs["imds"], "http://")
		opts = append(opts, msal.WithHTTPClient(&http.Client{Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == "169.254.169.254:80" {
					addr = imds
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}))
	}
	c, err := msal.New(mid, opts...)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.AcquireToken(ctx, resource)
	return res.AccessToken, err
}

// driver runs one of the Node or Python scripts in a clean environment: the emulator's variables
// and the case's, nothing inherited that could point elsewhere.
type driver struct {
	name string
	cmd  []string
	env  []string
	// sources maps each emulator source to the name the client reports detecting; nil when the
	// client prints none.
	sources map[emulator.Source]string
	// arcRefusal is the error code the client reports when an old Azure Arc agent answers a
	// user-assigned request with the system-assigned identity. Every client must refuse that
	// token with its own check ("did not confirm"), not merely fail somehow: a crashed emulator
	// or an unreachable endpoint would fail too.
	arcRefusal string
}

// arcNotConfirmed is in every MSAL client's message for the Arc refusal (MSAL Go, msal-node and
// MSAL Python word it alike).
const arcNotConfirmed = "did not confirm the requested user-assigned managed identity"

func nodeDriver(t *testing.T) driver {
	modules := os.Getenv("MTLSPOP_INTEROP_NODE_MODULES")
	node, err := exec.LookPath("node")
	if modules == "" || err != nil {
		t.Skip("SKIP: msal-node is not installed (ci/interop.sh test installs it into build/interop/node)")
	}
	script, _ := filepath.Abs("node/acquire.cjs")
	return driver{name: "msal-node", cmd: []string{node, script}, env: []string{"MTLSPOP_INTEROP_NODE_MODULES=" + modules},
		// msal-node's ManagedIdentitySourceNames.
		sources: map[emulator.Source]string{
			emulator.SourceIMDS:            "DefaultToImds",
			emulator.SourceAppService:      "AppService",
			emulator.SourceServiceFabric:   "ServiceFabric",
			emulator.SourceMachineLearning: "MachineLearning",
			emulator.SourceCloudShell:      "CloudShell",
			emulator.SourceAzureArc:        "AzureArc",
		},
		arcRefusal: "user_assigned_managed_identity_not_confirmed"}
}

func pythonDriver(t *testing.T) driver {
	py := os.Getenv("MTLSPOP_INTEROP_PYTHON")
	if py == "" {
		t.Skip("SKIP: MSAL Python is not installed (ci/interop.sh test installs it into build/interop/python)")
	}
	script, _ := filepath.Abs("python/acquire.py")
	// acquire.py reports an exception MSAL raises by its class name.
	return driver{name: "msal-python", cmd: []string{py, script}, arcRefusal: "ManagedIdentityError"}
}

type driverResult struct {
	Source      string `json:"source"` // msal-node only
	AccessToken string `json:"access_token"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (d driver) acquire(t *testing.T, emu *emu, id identity, resource string) driverResult {
	t.Helper()
	env := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "NO_PROXY=127.0.0.1,localhost",
		"MTLSPOP_INTEROP_RESOURCE=" + resource}, d.env...)
	if id.kind != "" {
		env = append(env, "MTLSPOP_INTEROP_ID="+id.kind+"="+id.value)
	}
	for k, v := range emu.Env {
		env = append(env, k+"="+v)
	}
	if emu.ServiceFabric != nil {
		pem := []byte(emu.ServiceFabric.CertificatePEM)
		// msal-node does not pin IDENTITY_SERVER_THUMBPRINT; it needs the certificate trusted.
		f := filepath.Join(t.TempDir(), "servicefabric.pem")
		if err := os.WriteFile(f, pem, 0o644); err != nil {
			t.Fatal(err)
		}
		env = append(env, "NODE_EXTRA_CA_CERTS="+f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cmd[0], d.cmd[1:]...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var r driverResult
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("%s printed %q (%v); stderr: %s", d.name, out, err, stderr.String())
	}
	if err != nil && r.Error == "" {
		t.Fatalf("%s failed: %v; stderr: %s", d.name, err, stderr.String())
	}
	return r
}

// driverCases are the sources and identities msal-node and MSAL Python support. Cloud Shell is
// not a ManagedIdentityClient source in MSAL Python.
func runDriver(t *testing.T, d driver, cases map[emulator.Source][]string, skip map[emulator.Source]string) {
	for _, src := range emulator.Sources() {
		t.Run(string(src), func(t *testing.T) {
			if why, ok := skip[src]; ok {
				t.Skip("SKIP: " + why)
			}
			emu := startFor(t, src)
			for _, id := range identities(emu, cases[src]...) {
				t.Run(id.String(), func(t *testing.T) {
					r := d.acquire(t, emu, id, resourceFor(t))
					if r.Error != "" {
						t.Fatalf("%s: %s: %s", d.name, r.Error, r.Description)
					}
					if want, ok := d.sources[src]; ok && r.Source != want {
						t.Fatalf("%s detected source %q, want %q", d.name, r.Source, want)
					}
					checkToken(t, emu, r.AccessToken, resourceFor(t), id.clientID)
				})
			}
		})
	}
	t.Run("arc old agent: fails closed", func(t *testing.T) {
		emu := startFor(t, emulator.SourceAzureArc, "--arc-ignore-user-assigned")
		r := d.acquire(t, emu, identities(emu, "client_id")[0], resourceFor(t))
		if r.Error == "" {
			t.Fatal("a token for the wrong identity was accepted")
		}
		if r.Error != d.arcRefusal || !strings.Contains(r.Description, arcNotConfirmed) {
			t.Fatalf("%s failed with %s: %s; want its refusal of the unconfirmed identity (%s: ...%s...)",
				d.name, r.Error, r.Description, d.arcRefusal, arcNotConfirmed)
		}
		if want, ok := d.sources[emulator.SourceAzureArc]; ok && r.Source != want {
			t.Fatalf("%s detected source %q, want %q", d.name, r.Source, want)
		}
	})
}

func TestMSALNode(t *testing.T) {
	runDriver(t, nodeDriver(t), map[emulator.Source][]string{
		emulator.SourceIMDS:            everyKind,
		emulator.SourceAppService:      everyKind,
		emulator.SourceServiceFabric:   {""},
		emulator.SourceMachineLearning: {"", "client_id"},
		emulator.SourceCloudShell:      {""},
		emulator.SourceAzureArc:        everyKind,
	}, nil)
}

func TestMSALPython(t *testing.T) {
	runDriver(t, pythonDriver(t), map[emulator.Source][]string{
		emulator.SourceIMDS:            everyKind,
		emulator.SourceAppService:      everyKind,
		emulator.SourceServiceFabric:   {""},
		emulator.SourceMachineLearning: {"", "client_id"},
		emulator.SourceAzureArc:        everyKind,
	}, map[emulator.Source]string{
		emulator.SourceCloudShell: "MSAL Python serves Cloud Shell through PublicClientApplication, not ManagedIdentityClient",
	})
}

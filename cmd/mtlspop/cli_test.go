package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// These tests run the real binary as a user would: `mtlspop emulator` in one process, `mtlspop
// token` and `mtlspop call` in others, talking over loopback sockets.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mtlspop-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mtlspop")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type emulatorProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	info  emulatorInfo
}

func startEmulatorProc(t *testing.T, args ...string) *emulatorProc {
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
	p := &emulatorProc{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { p.stop(t) })
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("emulator printed no ready line: %v", err)
	}
	if err := json.Unmarshal(line, &p.info); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	return p
}

// stop closes stdin, which must make the emulator exit on its own.
func (p *emulatorProc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("emulator exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		t.Error("emulator did not exit when stdin closed")
	}
}

// run runs the CLI with the emulator's environment (and nothing inherited that could point
// elsewhere), returning stdout, stderr and the exit code.
func (p *emulatorProc) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range p.info.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestTokenPoPCnfMatchesPrintedCertificate(t *testing.T) {
	emu := startEmulatorProc(t)
	if emu.info.Env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == "" || emu.info.Env["SSL_CERT_FILE"] == "" || emu.info.URLs["resource"] == "" {
		t.Fatalf("ready line lacks env or urls: %+v", emu.info)
	}
	stdout, stderr, code := emu.run(t, "token", "--resource", emu.info.URLs["resource_id"], "--mtls-pop")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var tok tokenJSON
	if err := json.Unmarshal([]byte(stdout), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "mtls_pop" || tok.TokenSource != "identity_provider" || tok.BindingCertificatePEM == nil || tok.ExpiresOn <= time.Now().Unix() {
		t.Fatalf("%s", stdout)
	}
	block, _ := pem.Decode([]byte(*tok.BindingCertificatePEM))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("binding_certificate_pem is not a PEM certificate")
	}
	sum := sha256.Sum256(block.Bytes)
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if got := cnf(t, tok.AccessToken); got != want || *tok.Thumbprint != want {
		t.Fatalf("cnf.x5t#S256 %q, thumbprint %q, SHA-256 of the printed certificate %q", got, *tok.Thumbprint, want)
	}
}

func cnf(t *testing.T, jwt string) string {
	t.Helper()
	got, err := cnfThumbprint(jwt)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestTokenBearerAndUserAssigned(t *testing.T) {
	emu := startEmulatorProc(t)
	uami := emu.info.Identities.UserAssigned[0]
	for _, args := range [][]string{
		{},
		{"--client-id", uami.ClientID},
		{"--resource-id", uami.ResourceID},
		{"--object-id", uami.ObjectID},
	} {
		for _, pop := range []bool{false, true} {
			a := append([]string{"token", "--resource", "api://x"}, args...)
			if pop {
				a = append(a, "--mtls-pop")
			}
			stdout, stderr, code := emu.run(t, a...)
			if code != 0 {
				t.Fatalf("%v: exit %d %s", a, code, stderr)
			}
			var tok tokenJSON
			if err := json.Unmarshal([]byte(stdout), &tok); err != nil {
				t.Fatal(err)
			}
			if pop != (tok.TokenType == "mtls_pop") || pop != (tok.BindingCertificatePEM != nil) {
				t.Fatalf("%v: %s", a, stdout)
			}
		}
	}
}

func TestCallResource(t *testing.T) {
	emu := startEmulatorProc(t, "--require-pop")
	stdout, stderr, code := emu.run(t, "call", emu.info.URLs["resource"], "--resource", emu.info.URLs["resource_id"])
	if code != 0 || !strings.Contains(stdout, "hello from the mtlspop emulator resource") {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	// A Bearer token at a resource that requires PoP: the 401 is reported as an error.
	_, stderr, code = emu.run(t, "call", "--bearer", emu.info.URLs["resource"], "--resource", emu.info.URLs["resource_id"])
	if code != 1 || !strings.Contains(stderr, `"status":401`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestCLIErrors(t *testing.T) {
	emu := startEmulatorProc(t)
	v1 := startEmulatorProc(t, "--imds-v1-only")
	cases := []struct {
		p    *emulatorProc
		args []string
		exit int
		code string
	}{
		{emu, []string{"token"}, 2, "invalid_argument"},
		{emu, []string{"token", "--resource", "r", "--client-id", "a", "--object-id", "b"}, 2, "invalid_argument"},
		{emu, []string{"token", "--resource", "r", "--client-id", "no-such-identity"}, 1, "managed_identity_request_failed"},
		{v1, []string{"token", "--resource", "r", "--mtls-pop"}, 1, "mtls_pop_token_not_supported_in_imds_v1"},
		{emu, []string{"call", "http://insecure.example/"}, 2, "invalid_argument"},
		{emu, []string{"call"}, 2, "invalid_argument"},
		{emu, []string{"call", emu.info.URLs["resource"], "-H", "no-colon"}, 2, "invalid_argument"},
	}
	for _, tc := range cases {
		stdout, stderr, exit := tc.p.run(t, tc.args...)
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if exit != tc.exit || json.Unmarshal([]byte(stderr), &e) != nil || e.Error.Code != tc.code || stdout != "" {
			t.Errorf("%v: exit %d stdout %q stderr %q, want exit %d code %s", tc.args, exit, stdout, stderr, tc.exit, tc.code)
		}
	}
	if _, _, exit := emu.run(t, "no-such-command"); exit != 2 {
		t.Errorf("unknown command exit %d", exit)
	}
}

func TestDemoRunsEveryStep(t *testing.T) {
	cmd := exec.Command(binary, "demo", "--tpm-device", "")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "All steps behaved as expected.") || !strings.Contains(string(out), "HTTP 401") {
		t.Fatalf("demo: %v\n%s", err, out)
	}
}

func TestEmulatorAttestationFlags(t *testing.T) {
	cmd := exec.Command(binary, "emulator", "--require-attestation")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "needs --attestation-ek-roots") {
		t.Fatalf("require-attestation without trust: %v %s", err, out)
	}
}

func TestConfidentialClientAndFIC(t *testing.T) {
	emu := startEmulatorProc(t)
	app := emu.info.App
	scope := emu.info.URLs["resource_id"] + "/.default"
	base := []string{"--authority", app.Authority, "--client-id", app.ClientID, "--scope", scope}
	for _, tc := range []struct {
		args []string
		typ  string
	}{
		{append([]string{"token", "--cert", app.CertFile, "--key", app.KeyFile}, base...), "Bearer"},
		{append([]string{"token", "--cert", app.CertFile, "--key", app.KeyFile, "--mtls-pop", "--mtls-endpoint", app.MTLSEndpoint}, base...), "mtls_pop"},
		{[]string{"fic", "--authority", app.Authority, "--app-id", app.ClientID, "--scope", scope, "--mtls-endpoint", app.MTLSEndpoint, "--mtls-pop"}, "mtls_pop"},
		{[]string{"fic", "--authority", app.Authority, "--app-id", app.ClientID, "--scope", scope, "--bearer-leg1"}, "Bearer"},
	} {
		stdout, stderr, code := emu.run(t, tc.args...)
		var tok tokenJSON
		if code != 0 || json.Unmarshal([]byte(stdout), &tok) != nil || tok.TokenType != tc.typ {
			t.Fatalf("%v: exit %d %s %s", tc.args, code, stdout, stderr)
		}
		if tc.typ == "mtls_pop" {
			block, _ := pem.Decode([]byte(*tok.BindingCertificatePEM))
			sum := sha256.Sum256(block.Bytes)
			if cnf(t, tok.AccessToken) != base64.RawURLEncoding.EncodeToString(sum[:]) {
				t.Fatalf("%v: cnf does not match the printed certificate", tc.args)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"token", "--tenant", "common", "--client-id", "x", "--secret", "y", "--scope", "s", "--mtls-pop"}, "mtls_certificate_not_provided"},
		{[]string{"token", "--authority", app.Authority, "--client-id", app.ClientID, "--secret", "wrong", "--scope", scope}, "invalid_client"},
		{[]string{"token", "--tenant", "t", "--client-id", "x", "--cert", app.CertFile, "--scope", "s"}, "invalid_argument"},
		{[]string{"token", "--tenant", "t", "--client-id", "x", "--secret", "y", "--resource", "r"}, "invalid_argument"},
		{[]string{"fic", "--app-id", app.ClientID}, "invalid_argument"},
	} {
		_, stderr, code := emu.run(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, `"code":"`+tc.code+`"`) {
			t.Errorf("%v: exit %d %s, want %s", tc.args, code, stderr, tc.code)
		}
	}
}

// `call` tells flags that take a value from boolean ones by asking its FlagSet, so a boolean
// flag before the URL (here --attest) does not swallow it: the call gets as far as attesting
// the (software, hence unattestable) key instead of stopping at "give exactly one URL".
func TestCallBooleanFlagBeforeURL(t *testing.T) {
	emu := startEmulatorProc(t)
	_, stderr, code := emu.run(t, "call", "--attest", emu.info.URLs["resource"], "--resource", emu.info.URLs["resource_id"])
	if code != 1 || !strings.Contains(stderr, `"code":"attestation_failed"`) {
		t.Fatalf("call --attest URL: exit %d %s", code, stderr)
	}

	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	var ids identityFlags
	ids.register(fs)
	fs.Bool("bearer", false, "")
	fs.String("resource", "", "")
	fs.String("X", "GET", "")
	got := reorder(fs, []string{"--attest", "https://r.example/x", "--resource", "api://r", "-X", "POST", "--bearer", "-h"})
	want := []string{"--attest", "--resource", "api://r", "-X", "POST", "--bearer", "-h", "https://r.example/x"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("reorder = %q, want %q", got, want)
	}
}

// A flag that does not apply to the mode the other flags chose is refused with exit 2 and a
// message naming it, instead of being accepted and ignored.
func TestFlagsThatDoNotApplyAreRefused(t *testing.T) {
	emu := startEmulatorProc(t)
	url := emu.info.URLs["resource"]
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"token", "--resource", "r", "--region", "westus"}, "--region"},
		{[]string{"token", "--resource", "r", "--mtls-endpoint", "https://m.example", "--mtls-pop"}, "--mtls-endpoint"},
		{[]string{"token", "--resource", "r", "--authority", "https://login.example/t"}, "--authority"},
		{[]string{"token", "--resource", "r", "--attest"}, "--attest"},
		{[]string{"token", "--resource", "r", "--key", "tpm"}, "--key"},
		{[]string{"token", "--resource", "r", "--tpm-state-dir", "/tmp/x"}, "--tpm-state-dir"},
		{[]string{"token", "--tenant", "t", "--client-id", "c", "--secret", "s", "--scope", "s", "--object-id", "o"}, "--object-id"},
		{[]string{"call", "--bearer", "--attest", url}, "--attest"},
		{[]string{"fic", "--app-id", "a", "--scope", "s", "--secret", "y"}, "--secret"},
		{[]string{"fic", "--app-id", "a", "--scope", "s", "--cert", "c.pem"}, "--cert"},
		{[]string{"fic", "--app-id", "a", "--scope", "s", "--bearer-leg1", "--attest"}, "--attest"},
		{[]string{"source", "--client-id", "c"}, "--client-id"},
		{[]string{"source", "--key", "tpm"}, "--key"},
		{[]string{"source", "--timeout", "5s"}, "--timeout"},
	} {
		stdout, stderr, code := emu.run(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, `"code":"invalid_argument"`) || !strings.Contains(stderr, tc.flag+" does not apply") {
			t.Errorf("%v: exit %d stdout %q stderr %s; want exit 2 naming %s", tc.args, code, stdout, stderr, tc.flag)
		}
	}
	// The default, spelled out, is not refused.
	if _, stderr, code := emu.run(t, "token", "--resource", "r", "--key", "software"); code != 0 {
		t.Errorf("token --key software (Bearer): exit %d %s", code, stderr)
	}
}

// --secret-file (or MTLSPOP_CLIENT_SECRET) keeps the secret out of the process list; --secret
// still works and its help says why not to use it.
func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envClientSecret, "")
	if s, err := (&appFlags{secretFile: file}).clientSecret(); err != nil || s != "s3cret" {
		t.Errorf("--secret-file: %q, %v", s, err)
	}
	if s, err := (&appFlags{secret: "argv"}).clientSecret(); err != nil || s != "argv" {
		t.Errorf("--secret: %q, %v", s, err)
	}
	for _, f := range []appFlags{{secret: "a", secretFile: file}, {secretFile: empty}, {secretFile: filepath.Join(dir, "missing")}} {
		if _, err := f.clientSecret(); token.CodeOf(err) != token.CodeInvalidArgument {
			t.Errorf("%+v: %v; want invalid_argument", f, err)
		}
	}
	t.Setenv(envClientSecret, "from-env")
	if s, err := (&appFlags{}).clientSecret(); err != nil || s != "from-env" {
		t.Errorf("%s: %q, %v", envClientSecret, s, err)
	}

	// End to end: the secret from the file reaches the token endpoint (the emulator's app has a
	// certificate, not a secret, so it answers invalid_client).
	emu := startEmulatorProc(t)
	app := emu.info.App
	scope := emu.info.URLs["resource_id"] + "/.default"
	base := []string{"token", "--authority", app.Authority, "--client-id", app.ClientID, "--scope", scope}
	if _, stderr, code := emu.run(t, append(base, "--secret-file", file)...); code != 1 || !strings.Contains(stderr, `"code":"invalid_client"`) {
		t.Errorf("--secret-file: exit %d %s", code, stderr)
	}
	if _, stderr, code := emu.run(t, append(base, "--secret-file", empty)...); code != 2 || !strings.Contains(stderr, "is empty") {
		t.Errorf("empty --secret-file: exit %d %s", code, stderr)
	}
	if _, stderr, _ := emu.run(t, "token", "-h"); !strings.Contains(stderr, "-secret-file") || !strings.Contains(stderr, "process list") {
		t.Errorf("token -h does not document --secret-file and the risk of --secret:\n%s", stderr)
	}
}

// The demo uses /dev/tpmrm0 only when this user can open it, and says why it skips the TPM
// step otherwise; a device given explicitly is used as given.
func TestDemoTPMDevice(t *testing.T) {
	denied := func(string) error { return &os.PathError{Op: "open", Path: "/dev/tpmrm0", Err: fs.ErrPermission} }
	missing := func(string) error { return &os.PathError{Op: "open", Path: "/dev/tpmrm0", Err: fs.ErrNotExist} }
	ok := func(string) error { return nil }
	for _, tc := range []struct {
		value    string
		given    bool
		canOpen  func(string) error
		device   string
		skipWith string
	}{
		{"", false, ok, "/dev/tpmrm0", ""},
		{"", false, denied, "", "cannot be opened"},
		{"", false, missing, "", "no /dev/tpmrm0"},
		{"/dev/tpmrm0", true, denied, "/dev/tpmrm0", ""},
		{"tcp://127.0.0.1:2321", true, missing, "tcp://127.0.0.1:2321", ""},
		{"", true, ok, "", `--tpm-device ""`},
	} {
		dev, skip := demoTPMDevice(tc.value, tc.given, tc.canOpen)
		if dev != tc.device || (tc.skipWith == "") != (skip == "") || !strings.Contains(skip, tc.skipWith) {
			t.Errorf("demoTPMDevice(%q, %v) = %q, %q; want %q, %q", tc.value, tc.given, dev, skip, tc.device, tc.skipWith)
		}
	}
}

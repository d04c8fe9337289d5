package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

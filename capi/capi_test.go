package main

// Go tests of the C ABI's Go side: argument parsing, the status mapping (checked against the
// header), error normalisation, logging, and the client and verifier against an in-process
// emulator. The C side (handle table, fork guard, ABI abuse, valgrind) is tested from C by
// ci/capi.sh test, which builds capi/ctest.

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

func wantArgError(t *testing.T, err error, msg string) {
	t.Helper()
	var te *token.Error
	if !errors.As(err, &te) || te.Code != token.CodeInvalidArgument {
		t.Fatalf("err = %v, want invalid_argument", err)
	}
	if !strings.Contains(te.Message, msg) {
		t.Fatalf("message %q lacks %q", te.Message, msg)
	}
}

func TestParseClientConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, msg string }{
		{``, "unexpected end of JSON"},
		{`x`, "config is not valid JSON: invalid character"},
		{`[1]`, "config must be a JSON object"},
		{`{}{}`, "unexpected data after the JSON object"},
		{`{"a":1,"a":2}`, `config: duplicate key "a"`},
		{`{"mtlspop":true}`, `config: unknown key "mtlspop"`},
		{`{"mtls_pop":1}`, "config.mtls_pop must be true or false"},
		{`{"mtls_pop":null}`, "config.mtls_pop must be true or false"},
		{`{"kind":"confidential_client"}`, `config.kind "confidential_client" is not supported`},
		{`{"kind":7}`, "config.kind must be a string"},
		{`{"identity":[]}`, "config.identity must be a JSON object"},
		{`{"identity":{}}`, "config.identity.type is required"},
		{`{"identity":{"type":"system","id":"x"}}`, "must be absent"},
		{`{"identity":{"type":"client_id"}}`, `config.identity.id is required for type "client_id"`},
		{`{"identity":{"type":"object_id","id":""}}`, "config.identity.id must not be empty"},
		{`{"identity":{"type":"user","id":"x"}}`, `config.identity.type "user" is not one of`},
		{`{"identity":{"type":"system","colour":1}}`, `config.identity: unknown key "colour"`},
		{`{"key":{"provider":"hsm"}}`, `config.key.provider "hsm" is not one of "software", "tpm"`},
		{`{"key":{"provider":"software","device":"/dev/tpmrm0"}}`, `config.key.device and config.key.state_dir need "provider": "tpm"`},
		{`{"key":{"provider":"tpm","attest":"yes"}}`, "config.key.attest must be true or false"},
		{`{"key":{"kind":"tpm"}}`, `config.key: unknown key "kind"`},
		{`{"endpoints":{"imds":""}}`, "config.endpoints.imds must not be empty"},
		{`{"endpoints":{"token":"x"}}`, `config.endpoints: unknown key "token"`},
		{`{"ca_file":""}`, "config.ca_file must not be empty"},
		{`{"timeout_ms":0}`, "config.timeout_ms must be an integer from 1 to 86400000"},
		{`{"timeout_ms":86400001}`, "config.timeout_ms"},
		{`{"timeout_ms":1e3}`, "config.timeout_ms"},
		{`{"timeout_ms":"1000"}`, "config.timeout_ms"},
		{`{"log_level":"trace"}`, `config.log_level "trace" is not one of`},
		{"{\"ca_file\":\"\xff\"}", "config is not valid UTF-8"},
	} {
		_, err := parseClientConfig(tc.config, true)
		wantArgError(t, err, tc.msg)
	}
}

func TestTPMProviderThatCannotOpen(t *testing.T) {
	_, err := newClient(`{"key":{"provider":"tpm","device":"tcp://127.0.0.1:1","state_dir":"`+t.TempDir()+`"}}`, true)
	if token.CodeOf(err) != token.CodeTPM {
		t.Fatalf("err = %v, want %s", err, token.CodeTPM)
	}
	tpms.mu.Lock()
	defer tpms.mu.Unlock()
	if len(tpms.m) != 0 {
		t.Fatal("a provider that failed to open was kept")
	}
}

// TestTPMOpenIsBounded: a TPM that accepts the connection but never answers holds up client
// creation no longer than the client's timeout_ms, and, while its open is still pending, does
// not block the creation of clients on other TPMs (no global lock is held during the I/O).
// When the open finally fails, nothing is left behind.
func TestTPMOpenIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var connsMu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c) // held open, never answered
			connsMu.Unlock()
		}
	}()
	unblock := func() {
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
	}
	defer unblock()

	within := func(d time.Duration, what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		start := time.Now()
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(d):
			t.Fatalf("%s: still blocked after %v", what, d)
		}
		t.Logf("%s took %v", what, time.Since(start).Round(time.Millisecond))
	}
	dir := t.TempDir()
	hung := `{"timeout_ms":300,"key":{"provider":"tpm","device":"tcp://` + ln.Addr().String() + `","state_dir":"` + dir + `"}}`
	within(5*time.Second, "client on a TPM that never answers", func() {
		if _, err := newClient(hung, true); token.CodeOf(err) != token.CodeRequestTimeout {
			t.Errorf("err = %v, want %s", err, token.CodeRequestTimeout)
		}
	})
	// The first open is still pending; another device's client is not held up by it.
	within(5*time.Second, "client on another TPM meanwhile", func() {
		_, err := newClient(`{"key":{"provider":"tpm","device":"tcp://127.0.0.1:1","state_dir":"`+t.TempDir()+`"}}`, true)
		if token.CodeOf(err) != token.CodeTPM {
			t.Errorf("err = %v, want %s", err, token.CodeTPM)
		}
	})
	// A second client of the hung TPM waits for the same open, bounded the same way.
	within(5*time.Second, "second client on the hung TPM", func() {
		if _, err := newClient(hung, true); token.CodeOf(err) != token.CodeRequestTimeout {
			t.Errorf("err = %v, want %s", err, token.CodeRequestTimeout)
		}
	})
	unblock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tpms.mu.Lock()
		n := len(tpms.m)
		tpms.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d TPM entries left after the pending open failed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSWTPMClientConfig runs the C ABI's TPM configuration against swtpm (ci/tpm.sh starts it and
// sets MTLSPOP_SWTPM): two clients share one TPM connection, and attestation works end to end.
func TestSWTPMClientConfig(t *testing.T) {
	device := os.Getenv("MTLSPOP_SWTPM")
	if device == "" {
		t.Skip("MTLSPOP_SWTPM is not set: swtpm tests run from ci/tpm.sh test, which starts swtpm")
	}
	emu, err := emulator.Start(emulator.Config{RequireAttestation: true, AttestationTrustAnyAK: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	dir := t.TempDir()
	config := fmt.Sprintf(`{"mtls_pop":true,"log_level":"off","ca_file":%q,"endpoints":{"imds":%q},
		"key":{"provider":"tpm","device":%q,"state_dir":%q,"attest":true}}`, emu.Env()["SSL_CERT_FILE"], emu.IMDSURL(), device, dir)
	a, err := newClient(config, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newClient(config, true)
	if err != nil {
		t.Fatal(err)
	}
	tpms.mu.Lock()
	shared := len(tpms.m) == 1
	tpms.mu.Unlock()
	if !shared {
		t.Fatal("two clients on one TPM opened two connections")
	}
	res, err := a.tc.(miBackend).AcquireToken(context.Background(), emu.Config().ResourceID, managedidentity.WithMtlsPoP())
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := res.TLSCertificate().PrivateKey.(keys.Key); !ok || k.Strength() != keys.StrengthTPM {
		t.Fatal("the binding key is not a TPM key")
	}
	a.close()
	b.close()
	tpms.mu.Lock()
	defer tpms.mu.Unlock()
	if len(tpms.m) != 0 {
		t.Fatal("the TPM connection outlived its last client")
	}
}

func TestParseClientConfig(t *testing.T) {
	cfg, err := parseClientConfig("", false)
	if err != nil || !cfg.id.IsSystemAssigned() || cfg.pop || cfg.timeout != managedidentity.DefaultTimeout || cfg.logLevel != slog.LevelInfo {
		t.Fatalf("NULL config: %+v, %v", cfg, err)
	}
	cfg, err = parseClientConfig(` {"kind":"managed_identity","identity":{"type":"resource_id","id":"/subscriptions/x"},
		"mtls_pop":true,"key":{"provider":"software"},"endpoints":{"imds":"http://127.0.0.1:1"},
		"ca_file":"/tmp/ca.pem","timeout_ms":1500,"log_level":"off"} `, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.id.String() != "resource_id=/subscriptions/x" || !cfg.pop || cfg.imds != "http://127.0.0.1:1" ||
		cfg.caFile != "/tmp/ca.pem" || cfg.timeout != 1500*time.Millisecond || cfg.logLevel != levelOff {
		t.Fatalf("%+v", cfg)
	}
}

func TestParseAcquireOptions(t *testing.T) {
	o, err := parseAcquireOptions(`{}`, true)
	if err != nil || !o.pop || o.force || len(o.mi) != 1 || len(o.cc) != 1 {
		t.Fatalf("%+v %v", o, err)
	}
	o, err = parseAcquireOptions(`{"mtls_pop":false,"force_refresh":true,"claims":"{\"a\":1}","timeout_ms":5}`, true)
	if err != nil || o.pop || !o.force || o.claims != `{"a":1}` || o.timeout != 5*time.Millisecond || len(o.mi) != 2 || len(o.cc) != 2 {
		t.Fatalf("%+v %v", o, err)
	}
	o, err = parseAcquireOptions(`{"cache_only":true}`, false)
	if err != nil || !o.cacheOnly || o.pop || len(o.mi) != 1 || len(o.cc) != 1 {
		t.Fatalf("%+v %v", o, err)
	}
	for _, tc := range []struct{ opts, msg string }{
		{`{"force":true}`, `options: unknown key "force"`},
		{`{"cache_only":1}`, "options.cache_only must be true or false"},
		{`{"claims":{}}`, "options.claims must be a string"},
		{`{"timeout_ms":-1}`, "options.timeout_ms"},
		{`[]`, "options must be a JSON object"},
	} {
		_, err := parseAcquireOptions(tc.opts, false)
		wantArgError(t, err, tc.msg)
	}
}

func TestParseCallRequest(t *testing.T) {
	r, err := parseCallRequest(`{"url":"https://h/p","method":"PUT","headers":{"A":"1","B":["2","3"]},"body_base64":"AAE=","timeout_ms":9}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.method != "PUT" || r.url != "https://h/p" || r.header.Get("A") != "1" || len(r.header.Values("B")) != 2 ||
		string(r.body) != "\x00\x01" || r.timeout != 9*time.Millisecond {
		t.Fatalf("%+v", r)
	}
	r, err = parseCallRequest(`{"url":"https://h/"," body":"x"}`)
	wantArgError(t, err, `request: unknown key " body"`)
	for _, tc := range []struct{ req, msg string }{
		{`{}`, "request.url is required"},
		{`{"url":"http://h/"}`, "request.url must be an https URL"},
		{`{"url":"https:///x"}`, "request.url must be an https URL"},
		{`{"url":"https://h/","body":"a","body_base64":"YQ=="}`, "give body or body_base64, not both"},
		{`{"url":"https://h/","body_base64":"%%"}`, "request.body_base64 is not standard base64"},
		{`{"url":"https://h/","headers":{"A B":"1"}}`, "is not a valid header name"},
		{`{"url":"https://h/","headers":{"A":"1\r\nB: 2"}}`, "contains a line break or NUL"},
		{`{"url":"https://h/","headers":{"A":[1]}}`, "request.headers.A must be a string or an array of strings"},
		{`{"url":"https://h/","method":""}`, "request.method must not be empty"},
	} {
		_, err := parseCallRequest(tc.req)
		wantArgError(t, err, tc.msg)
	}
}

// TestVerifierConfig: a key source that cannot work is a configuration error when the config
// is read (MTLSPOP_E_INVALID_ARG), not a network error of each verification.
func TestVerifierConfig(t *testing.T) {
	const aud = `"audiences":["api://x"]`
	for _, tc := range []struct{ config, msg string }{
		{`{` + aud + `,"jwks_url":"http://jwks.example/keys"}`, "config.jwks_url: jwks url must use https"},
		{`{` + aud + `,"jwks_url":"ftp://jwks.example/keys"}`, "config.jwks_url: jwks url must use https"},
		{`{` + aud + `,"jwks_url":"not a url"}`, "config.jwks_url: invalid jwks url"},
		{`{` + aud + `,"jwks_url":"https:///keys"}`, "config.jwks_url: invalid jwks url"},
		{`{` + aud + `,"jwks":{"keys":5}}`, "config.jwks must be a JSON Web Key Set"},
		{`{` + aud + `,"jwks":{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}}`, "config.jwks has no usable key"},
		{`{` + aud + `,"jwks":{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}}`, "config.jwks has no usable key"},
		{`{` + aud + `,"jwks":{"keys":[],"keys":[]}}`, `config.jwks: duplicate key "keys"`},
	} {
		_, err := newVerifier(tc.config)
		wantArgError(t, err, tc.msg)
		if _, err := verify(tc.config, "Bearer x", ""); statusOf(token.CodeOf(err)) != statusInvalidArg {
			t.Errorf("verify with %s: %v, want MTLSPOP_E_INVALID_ARG", tc.config, err)
		}
	}
	for _, ok := range []string{
		`{` + aud + `,"jwks_url":"https://login.example/keys"}`,
		`{` + aud + `,"jwks_url":"http://127.0.0.1:1/keys"}`, // loopback: local development
		`{` + aud + `,"jwks":{"keys":[]}}`,                   // refuses every token, on purpose
	} {
		if _, err := newVerifier(ok); err != nil {
			t.Errorf("newVerifier(%s): %v", ok, err)
		}
	}
}

// TestMemoBounds: the per-client memo tables, never evicted, keep only short strings, and never
// claims challenges (each differs); anything else is parsed per call and still works.
func TestMemoBounds(t *testing.T) {
	cl, err := newClient(`{"log_level":"off"}`, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	memoized := func(data string) bool {
		m := cl.opts.Load()
		if m == nil {
			return false
		}
		_, ok := (*m)[data]
		return ok
	}
	short := `{"mtls_pop":true}`
	long := `{"mtls_pop":true` + strings.Repeat(" ", maxMemoKey) + `}`
	claims := `{"claims":"{\"access_token\":{\"nbf\":{\"essential\":true,\"value\":\"1\"}}}"}`
	for _, data := range []string{short, long, claims} {
		o, err := cl.options(data, true)
		if err != nil || !o.pop && data != claims {
			t.Fatalf("options(%.20q): %+v %v", data, o, err)
		}
	}
	if !memoized(short) || memoized(long) || memoized(claims) {
		t.Fatalf("memoized: short %v (want true), long %v, claims %v (want false)", memoized(short), memoized(long), memoized(claims))
	}

	longRes := "api://" + strings.Repeat("r", maxMemoKey)
	e, err := cl.entry(longRes)
	if err != nil || e.kept || e.resource != longRes {
		t.Fatalf("long resource: kept %v, %v", e != nil && e.kept, err)
	}
	if m := cl.names.Load(); m != nil && (*m)[longRes] != nil {
		t.Fatal("a long resource was interned")
	}
	if e, err := cl.entry("api://short"); err != nil || !e.kept {
		t.Fatalf("short resource not interned: %v", err)
	}
}

// TestStatusesMatchHeader checks statusByCode against include/mtlspop.h, which lists under each
// status the code strings it stands for: every listed code maps to its status, and every mapped
// code is listed.
func TestStatusesMatchHeader(t *testing.T) {
	h, err := os.ReadFile(filepath.Join("..", "include", "mtlspop.h"))
	if err != nil {
		t.Fatal(err)
	}
	enum := string(h)
	enum = enum[strings.Index(enum, "typedef enum mtlspop_status {"):]
	enum = enum[:strings.Index(enum, "} mtlspop_status;")]
	entry := regexp.MustCompile(`(?m)^\s+(MTLSPOP_[A-Z_]+)\s*=\s*(-?\d+)`)
	quoted := regexp.MustCompile(`"([a-z0-9_]+)"`)
	idx := entry.FindAllStringSubmatchIndex(enum, -1)
	listed := map[token.Code]int{}
	for i, m := range idx {
		end := len(enum)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		status, _ := strconv.Atoi(enum[m[4]:m[5]])
		for _, q := range quoted.FindAllStringSubmatch(enum[m[0]:end], -1) {
			listed[token.Code(q[1])] = status
		}
	}
	if len(listed) < 30 {
		t.Fatalf("parsed only %d codes from the header", len(listed))
	}
	for code, status := range listed {
		if got := statusOf(code); got != status {
			t.Errorf("header lists %q under %d, statusOf says %d", code, status, got)
		}
	}
	for code := range statusByCode {
		if _, ok := listed[code]; !ok {
			t.Errorf("code %q is mapped but not listed in the header", code)
		}
	}
	if statusOf("some_new_code") != statusIdentity {
		t.Error("an unknown code must count as MTLSPOP_E_IDENTITY, as the header says")
	}
}

func TestAsError(t *testing.T) {
	shared := &token.Error{Code: token.CodeNetwork, Message: "dial failed"}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if e := asError(shared, canceled); e.Code != token.CodeCanceled || e.Message != "dial failed" || shared.Code != token.CodeNetwork {
		t.Fatalf("canceled ctx: %+v (shared %+v)", e, shared)
	}
	expired, cancel2 := context.WithTimeout(context.Background(), -time.Second)
	defer cancel2()
	if e := asError(shared, expired); e.Code != token.CodeRequestTimeout {
		t.Fatalf("expired ctx: %+v", e)
	}
	if e := asError(shared, context.Background()); e != shared {
		t.Fatal("an error needing no change must be passed through")
	}
	coreDeadline := token.Wrap(token.CodeCanceled, context.DeadlineExceeded, "waiting")
	if e := asError(coreDeadline, context.Background()); e.Code != token.CodeRequestTimeout {
		t.Fatalf("core deadline: %+v", e)
	}
	if e := asError(context.Canceled, nil); e.Code != token.CodeCanceled {
		t.Fatalf("bare context error: %+v", e)
	}
	if e := asError(io.EOF, nil); e.Code != token.CodeInternal || !errors.Is(e, io.EOF) {
		t.Fatalf("foreign error: %+v", e)
	}
	if e := panicError("secret value"); strings.Contains(e.Error(), "secret") {
		t.Fatalf("a panic's value may carry anything and must not be echoed: %v", e)
	}
}

func TestLogHandler(t *testing.T) {
	h := newLogHandler(slog.LevelInfo)
	if h.Enabled(context.Background(), slog.LevelError) {
		t.Fatal("enabled without a callback")
	}
	fields := map[string]any{}
	g := h.WithAttrs([]slog.Attr{slog.String("source", "imdsv2")}).WithGroup("req").(*logHandler)
	for _, a := range g.attrs {
		addAttr(fields, "", a)
	}
	addAttr(fields, g.prefix, slog.Group("http", slog.Int("status", 200), slog.Duration("took", time.Second)))
	addAttr(fields, g.prefix, slog.Any("err", errors.New("boom")))
	want := map[string]any{"source": "imdsv2", "req.http.status": int64(200), "req.http.took": "1s", "req.err": "boom"}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("fields[%q] = %#v, want %#v (all: %v)", k, fields[k], v, fields)
		}
	}
	for l, want := range map[slog.Level]int{slog.LevelDebug - 4: logDebug, slog.LevelDebug: logDebug, slog.LevelInfo: logInfo,
		slog.LevelWarn: logWarn, slog.LevelError: logError, slog.LevelError + 4: logError} {
		if cLevel(l) != want {
			t.Errorf("cLevel(%v) = %d, want %d", l, cLevel(l), want)
		}
	}
}

// TestClientAndVerify drives the Go side of a client and the verifier against an in-process
// emulator: a cache hit shares the C image, freeing releases everything, verification checks the
// binding.
func TestClientAndVerify(t *testing.T) {
	emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for k, v := range emu.Env() { // through libc: the client reads the live environment
		t.Setenv(k, v)
	}
	clients, images := liveClients.Load(), liveImages.Load()
	cl, err := newClient(`{"mtls_pop":true,"log_level":"off"}`, true)
	if err != nil {
		t.Fatal(err)
	}
	resource := emu.Config().ResourceID
	ctx := context.Background()
	a, src, err := cl.acquire(ctx, resource, cl.defOpts)
	if err != nil || src != token.SourceIdentityProvider {
		t.Fatalf("acquire: %v %v", src, err)
	}
	b, src, err := cl.acquire(ctx, resource, cl.defOpts)
	if err != nil || src != token.SourceCache || a != b {
		t.Fatalf("cache hit: same image %v, %v %v", a == b, src, err)
	}
	if n := atomic.LoadInt64(refs(a)); n != 3 { // the entry's and two callers'
		t.Fatalf("refs = %d", n)
	}
	r, ok := resultOf(uintptr(a.go_ref))
	if !ok || !r.IsPoP() || r.BindingCertificate == nil {
		t.Fatalf("tokenRef: %v %v", ok, r)
	}
	releaseImage(a)
	releaseImage(b)

	// The verifier, with the key set fetched and inline.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, emu.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	authz := "mtls_pop " + r.AccessToken
	certPEM := certificatePEM(r)
	cfg := `{"issuer":"` + emu.Issuer() + `","audiences":["` + resource + `"],"jwks_url":"` + emu.JWKSURL() + `","ca_file":"` + caFile + `"}`
	v, err := verify(cfg, authz, certPEM)
	if err != nil || v.claims.X5tS256 != r.Thumbprint() || !strings.Contains(string(v.json), `"cnf"`) {
		t.Fatalf("verify: %v %v", v, err)
	}
	if _, err := verify(cfg, authz, ""); token.CodeOf(err) != token.CodeInvalidToken {
		t.Fatalf("no certificate: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: mtlsClientConfig(emu)}}
	resp, err := hc.Get(emu.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := verify(`{"audiences":["`+resource+`"],"jwks":`+string(jwks)+`}`, authz, certPEM); err != nil {
		t.Fatalf("inline jwks: %v", err)
	}

	// Freeing the client releases the images; the async path still completes after close.
	cl.close()
	cl.close() // idempotent
	if _, _, err := cl.acquire(ctx, resource, cl.defOpts); token.CodeOf(err) != token.CodeClosed {
		t.Fatalf("after close: %v", err)
	}
	if liveClients.Load() != clients || liveImages.Load() != images {
		t.Fatalf("live clients %d (was %d), images %d (was %d)", liveClients.Load(), clients, liveImages.Load(), images)
	}
}

func certificatePEM(r token.Result) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.BindingCertificate.Raw}))
}

func mtlsClientConfig(emu *emulator.Emulator) *tls.Config {
	return &tls.Config{RootCAs: emu.RootCAs(), MinVersion: tls.VersionTLS12}
}

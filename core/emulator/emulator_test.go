package emulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	c := e.Config()
	if c.TenantID != emulator.DefaultTenantID || e.TenantID() != emulator.DefaultTenantID ||
		c.SystemAssigned.ClientID != emulator.DefaultSystemAssignedClientID ||
		len(c.UserAssigned) != 1 || c.UserAssigned[0].ResourceID != emulator.DefaultUserAssignedResourceID ||
		c.CUID != (keys.CUID{VMID: emulator.DefaultVMID}) || c.CertLifetime != emulator.DefaultCertLifetime ||
		c.TokenLifetime != emulator.DefaultTokenLifetime || c.ResourceID != emulator.DefaultResourceID || c.Logger == nil {
		t.Errorf("Config() = %+v", c)
	}
	for name, u := range map[string]string{"imds": e.IMDSURL(), "mtlsauth": e.MTLSAuthURL(), "resource": e.ResourceURL()} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") && !strings.HasPrefix(u, "https://127.0.0.1:") {
			t.Errorf("%s URL %s", name, u)
		}
	}
	if !strings.HasPrefix(e.MTLSAuthURL(), "https://") || !strings.HasPrefix(e.IMDSURL(), "http://") ||
		!strings.HasSuffix(e.ResourceURL(), "/") || !strings.HasSuffix(e.AuthorityURL(), "/"+emulator.DefaultTenantID) {
		t.Errorf("URLs: %s %s %s %s", e.IMDSURL(), e.MTLSAuthURL(), e.ResourceURL(), e.AuthorityURL())
	}
	// Config returns a copy.
	c.UserAssigned[0].ClientID = "changed"
	if e.Config().UserAssigned[0].ClientID != emulator.DefaultUserAssignedClientID {
		t.Error("Config shares its slice")
	}
}

func TestCustomConfig(t *testing.T) {
	t.Parallel()
	ua := emulator.Identity{ClientID: "c1", ObjectID: "o1", ResourceID: "/subscriptions/s/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one"}
	cfg := emulator.Config{
		TenantID:       "tenant-x",
		SystemAssigned: emulator.Identity{ClientID: "sys-c", ObjectID: "sys-o"},
		UserAssigned:   []emulator.Identity{ua},
		CUID:           keys.CUID{VMSSID: "scale-set"},
		TokenLifetime:  time.Hour,
	}
	e := start(t, cfg)
	cert, out := binding(t, e, v2Query("mi_res_id", ua.ResourceID))
	if out.ClientID != "c1" || out.TenantID != "tenant-x" || cert.Leaf.Subject.CommonName != "c1" {
		t.Errorf("issued = %+v", out)
	}
	r := postToken(t, e, cert, "tenant-x", tokenForm("c1", "api://x/.default", "mtls_pop"))
	m := r.json(t)
	if m["expires_in"] != float64(3599) || m["refresh_in"] != nil {
		t.Errorf("token response = %s", r.body)
	}
	c := verifyToken(t, e, m["access_token"].(string), "api://x")
	if c["tid"] != "tenant-x" || c["xms_mirid"] != ua.ResourceID || c["oid"] != "o1" {
		t.Errorf("claims = %v", c)
	}
	// The system-assigned identity has no resource id: no xms_mirid.
	v1 := imdsGet(t, e, v1TokenPath, v1Query())
	if c := verifyToken(t, e, v1.json(t)["access_token"].(string), graphResource); c["xms_mirid"] != nil || c["appid"] != "sys-c" {
		t.Errorf("claims = %v", c)
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]emulator.Config{
		"user-assigned without object id": {UserAssigned: []emulator.Identity{{ClientID: "c"}}},
		"duplicate client id":             {UserAssigned: []emulator.Identity{{ClientID: emulator.DefaultSystemAssignedClientID, ObjectID: "o"}}},
		"negative token lifetime":         {TokenLifetime: -time.Second},
		"tenant with a slash":             {TenantID: "a/b"},
		"address in use":                  {Addr: "256.0.0.1:0"},
	} {
		if e, err := emulator.Start(cfg); err == nil {
			e.Close()
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	e, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	env := e.Env()
	if env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] != e.IMDSURL() {
		t.Errorf("env = %v", env)
	}
	file := env["SSL_CERT_FILE"]
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, e.CACertPEM()) {
		t.Error("SSL_CERT_FILE does not hold the CA")
	}
	if again := e.Env()["SSL_CERT_FILE"]; again != file {
		t.Errorf("second Env wrote %s, first %s", again, file)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("CA file still there after Close: %v", err)
	}
	if _, ok := e.Env()["SSL_CERT_FILE"]; ok {
		t.Error("Env after Close wrote a file")
	}
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	e, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	imds := e.IMDSURL()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := e.Close(); err != nil {
		t.Errorf("third Close: %v", err)
	}
	if _, err := plainClient().Get(imds + v1TokenPath); err == nil {
		t.Error("IMDS still answers after Close")
	}
	// Methods without I/O still work after Close.
	_ = e.Requests(emulator.EndpointIMDSToken)
	e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Status: 500})
	e.ClearFaults()
}

// TestNoGoroutineLeak is not parallel: it counts the process's goroutines.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	e, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cert, tok := popToken(t, e, emulator.DefaultResourceID, "mtls_pop")
	if r := callResource(t, e, cert, "", "mtls_pop "+tok); r.status != http.StatusOK {
		t.Fatalf("resource: %d", r.status)
	}
	fetchJWKS(t, e)
	e.Env()
	// Leave a request hanging in a delay, and keep-alive connections open, across Close.
	e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Delay: time.Minute})
	hanging := newRequest(t, http.MethodGet, e.IMDSURL()+v1TokenPath+"?"+v1Query().Encode(), nil, metadata)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = plainClient().Do(hanging)
	}()
	keepAlive := &http.Client{Timeout: 10 * time.Second}
	if resp, err := keepAlive.Get(e.IMDSURL() + platformPath); err == nil {
		resp.Body.Close()
	}
	waitFor(t, func() bool { return e.Requests(emulator.EndpointIMDSToken) == 1 })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	keepAlive.CloseIdleConnections()

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	cert, out := binding(t, e, v2Query())
	const workers, rounds = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := plainClient()
			mtls := tlsClient(e, cert)
			for i := range rounds {
				req, _ := http.NewRequest(http.MethodGet, e.IMDSURL()+v1TokenPath+"?"+v1Query().Encode(), nil)
				req.Header.Set("Metadata", "true")
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 503 {
					errs <- fmt.Errorf("imds status %d", resp.StatusCode)
				}
				form := tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop")
				req, _ = http.NewRequest(http.MethodPost, e.MTLSAuthURL()+"/"+out.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err = mtls.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("token status %d", resp.StatusCode)
				}
				// Controls race against the traffic.
				switch (w + i) % 4 {
				case 0:
					e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Status: 503, Count: 1})
				case 1:
					e.ClearFaults()
				case 2:
					_ = e.LastRequest(emulator.EndpointToken)
				case 3:
					_ = e.Requests(emulator.EndpointIMDSToken)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.Requests(emulator.EndpointToken); n != workers*rounds {
		t.Errorf("Requests(token) = %d, want %d", n, workers*rounds)
	}
	if n := e.Requests(emulator.EndpointIMDSToken); n != workers*rounds {
		t.Errorf("Requests(imds) = %d, want %d", n, workers*rounds)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a slog handler.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoggingHasNoSecrets(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := start(t, emulator.Config{Logger: logger})

	v1 := imdsGet(t, e, v1TokenPath, v1Query()).json(t)["access_token"].(string)
	key := newKey(t)
	csr := csrBody(t, key, emulator.DefaultSystemAssignedClientID, emulator.DefaultTenantID, keys.CUID{VMID: emulator.DefaultVMID})
	issuedResp := postIssueCredential(t, e, v2Query(), csr, nil)
	cert, out := binding(t, e, v2Query())
	pop := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop")).json(t)["access_token"].(string)
	callResource(t, e, cert, "", "mtls_pop "+pop)
	callResource(t, e, nil, "", "mtls_pop "+pop)                                                      // refused: logged as a 401
	_, _ = tryPostToken(e, nil, out.TenantID, tokenForm(out.ClientID, graphResource+"/.default", "")) // handshake refused

	logs := buf.String()
	var csrField struct{ CSR string }
	_ = json.Unmarshal(csr, &csrField)
	var issuedField struct{ Certificate string }
	_ = json.Unmarshal(issuedResp.body, &issuedField)
	for name, secret := range map[string]string{
		"IMDS token": v1, "PoP token": pop, "CSR": csrField.CSR[:64], "certificate": issuedField.Certificate[:64],
		"token signature": pop[strings.LastIndex(pop, ".")+1:],
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains the %s", name)
		}
	}
	for _, want := range []string{`"endpoint":"imds_token"`, `"endpoint":"issuecredential"`, `"endpoint":"token"`, `"endpoint":"resource"`, "binding certificate issued"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

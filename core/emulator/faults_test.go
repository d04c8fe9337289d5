package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestFaultStatus(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Status: 503, Header: http.Header{"Retry-After": {"7"}}})
	r := imdsGet(t, e, v1TokenPath, v1Query())
	wantError(t, r, 503, "temporarily_unavailable", "injected fault: HTTP 503 Service Unavailable")
	if r.header.Get("Retry-After") != "7" || r.header.Get("Server") != emulator.IMDSServerHeader {
		t.Errorf("headers = %v", r.header)
	}

	e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Status: 410, Body: "gone away"})
	r = imdsGet(t, e, v1TokenPath, v1Query())
	if r.status != 410 || string(r.body) != "gone away" {
		t.Errorf("custom body: %d %q", r.status, r.body)
	}

	e.ClearFaults()
	if r := imdsGet(t, e, v1TokenPath, v1Query()); r.status != http.StatusOK {
		t.Errorf("after ClearFaults: %d", r.status)
	}
	if n := e.Requests(emulator.EndpointIMDSToken); n != 3 {
		t.Errorf("Requests = %d, want 3 (faulted requests count)", n)
	}
}

func TestFaultStatusOnTokenEndpoint(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	cert, out := binding(t, e, v2Query())
	e.InjectFault(emulator.EndpointToken, emulator.Fault{Status: 500, Count: 1})
	r := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop"))
	if r.status != 500 {
		t.Fatalf("status %d", r.status)
	}
	m := r.json(t)
	if m["error"] != "server_error" || m["correlation_id"] != testCorrelationID || m["error_codes"] == nil || m["trace_id"] == nil {
		t.Errorf("body = %s", r.body)
	}
	if r.header.Get("client-request-id") != testCorrelationID {
		t.Errorf("client-request-id = %q", r.header.Get("client-request-id"))
	}
	// The form was recorded although the fault answered.
	if rec := e.LastRequest(emulator.EndpointToken); rec == nil || rec.Form.Get("client_id") != out.ClientID {
		t.Errorf("LastRequest = %+v", rec)
	}
	if r := postToken(t, e, cert, out.TenantID, tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop")); r.status != http.StatusOK {
		t.Errorf("after Count ran out: %d %s", r.status, r.body)
	}
}

func TestFaultCount(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	e.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{Status: 404, Count: 2})
	for i, want := range []int{404, 404, 200, 200} {
		if r := imdsGet(t, e, platformPath, v2Query()); r.status != want {
			t.Errorf("request %d: status %d, want %d", i, r.status, want)
		}
	}
	if n := e.Requests(emulator.EndpointPlatformMetadata); n != 4 {
		t.Errorf("Requests = %d", n)
	}
	// A fault replaces the one before.
	e.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{Status: 500})
	e.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{Status: 502, Count: 1})
	if r := imdsGet(t, e, platformPath, v2Query()); r.status != 502 {
		t.Errorf("status %d, want 502", r.status)
	}
	if r := imdsGet(t, e, platformPath, v2Query()); r.status != 200 {
		t.Errorf("status %d, want 200", r.status)
	}
}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Delay: 150 * time.Millisecond, Count: 1})
	begin := time.Now()
	if r := imdsGet(t, e, v1TokenPath, v1Query()); r.status != http.StatusOK {
		t.Fatalf("delayed request: %d %s", r.status, r.body)
	}
	if d := time.Since(begin); d < 150*time.Millisecond {
		t.Errorf("answered after %v, before the delay", d)
	}

	// The delay honours the request's context: a caller that gives up is not kept waiting, and
	// the server does not hold the handler for the whole delay.
	e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := newRequest(t, http.MethodGet, e.IMDSURL()+v1TokenPath+"?"+v1Query().Encode(), nil, metadata).WithContext(ctx)
	begin = time.Now()
	_, err := plainClient().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("waited %v", d)
	}
	if n := e.Requests(emulator.EndpointIMDSToken); n != 2 {
		t.Errorf("Requests = %d", n)
	}
	// Close must not wait out the minute either.
	begin = time.Now()
	inFlight := newRequest(t, http.MethodGet, e.IMDSURL()+v1TokenPath+"?"+v1Query().Encode(), nil, metadata)
	done := make(chan error, 1)
	go func() {
		_, err := plainClient().Do(inFlight)
		done <- err
	}()
	waitFor(t, func() bool { return e.Requests(emulator.EndpointIMDSToken) == 3 })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-done; err == nil {
		t.Error("request in flight at Close got an answer")
	}
}

func TestFaultMalformedAndOversize(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	e.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{Malformed: true})
	r := imdsGet(t, e, platformPath, v2Query())
	if r.status != 200 || json.Valid(r.body) || len(r.body) == 0 {
		t.Errorf("malformed: %d %q", r.status, r.body)
	}
	if r.header.Get("Server") != emulator.IMDSServerHeader {
		t.Errorf("Server = %q", r.header.Get("Server"))
	}

	e.InjectFault(emulator.EndpointJWKS, emulator.Fault{Oversize: true})
	r = do(t, tlsClient(e, nil), newRequest(t, http.MethodGet, e.JWKSURL(), nil, nil))
	if r.status != 200 || len(r.body) != emulator.OversizeBytes {
		t.Errorf("oversize: %d, %d bytes", r.status, len(r.body))
	}
	if n := e.Requests(emulator.EndpointJWKS); n != 1 {
		t.Errorf("Requests(jwks) = %d", n)
	}
}

func TestFaultDropConnection(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	e.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{DropConnection: true, Count: 1})
	_, err := plainClient().Do(newRequest(t, http.MethodGet, e.IMDSURL()+v1TokenPath+"?"+v1Query().Encode(), nil, metadata))
	if err == nil {
		t.Fatal("dropped request got an answer")
	}
	if r := imdsGet(t, e, v1TokenPath, v1Query()); r.status != 200 {
		t.Errorf("after the drop: %d", r.status)
	}

	// Over TLS too: the resource and the mTLS token endpoint.
	e.InjectFault(emulator.EndpointResource, emulator.Fault{DropConnection: true})
	if _, err := tlsClient(e, nil).Get(e.ResourceURL()); err == nil {
		t.Error("dropped resource request got an answer")
	}
	cert, out := binding(t, e, v2Query())
	e.InjectFault(emulator.EndpointToken, emulator.Fault{DropConnection: true})
	if _, err := tryPostToken(e, cert, out.TenantID, tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop")); err == nil {
		t.Error("dropped token request got an answer")
	}
	if e.Requests(emulator.EndpointToken) != 1 || e.Requests(emulator.EndpointResource) != 1 {
		t.Errorf("Requests = %d, %d", e.Requests(emulator.EndpointToken), e.Requests(emulator.EndpointResource))
	}
}

func TestFaultServerHeader(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	none, nginx := "", "nginx/1.25"
	e.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{ServerHeader: &none})
	r := imdsGet(t, e, platformPath, v2Query())
	if _, ok := r.header["Server"]; ok || r.status != 200 {
		t.Errorf("status %d, Server = %q, want none", r.status, r.header.Get("Server"))
	}
	if r.json(t)["clientId"] != emulator.DefaultSystemAssignedClientID {
		t.Errorf("body = %s", r.body)
	}
	e.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{ServerHeader: &nginx})
	nginx = "changed after InjectFault"
	if r := imdsGet(t, e, platformPath, v2Query()); r.header.Get("Server") != "nginx/1.25" {
		t.Errorf("Server = %q", r.header.Get("Server"))
	}
}

func TestFaultOnEveryEndpoint(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	cert, out := binding(t, e, v2Query())
	calls := map[emulator.Endpoint]func() *http.Response{
		emulator.EndpointIMDSToken: func() *http.Response {
			return get(t, plainClient(), e.IMDSURL()+v1TokenPath+"?"+v1Query().Encode(), metadata)
		},
		emulator.EndpointPlatformMetadata: func() *http.Response {
			return get(t, plainClient(), e.IMDSURL()+platformPath+"?"+v2Query().Encode(), metadata)
		},
		emulator.EndpointIssueCredential: func() *http.Response {
			resp, err := plainClient().Do(newRequest(t, http.MethodPost, e.IMDSURL()+issueCredPath+"?"+v2Query().Encode(), strings.NewReader("{}"), metadata))
			if err != nil {
				t.Fatal(err)
			}
			return resp
		},
		emulator.EndpointToken: func() *http.Response {
			req := newRequest(t, http.MethodPost, e.MTLSAuthURL()+"/"+out.TenantID+"/oauth2/v2.0/token",
				strings.NewReader(tokenForm(out.ClientID, graphResource+"/.default", "mtls_pop").Encode()),
				map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			resp, err := tlsClient(e, cert).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		},
		emulator.EndpointResource:            func() *http.Response { return get(t, tlsClient(e, cert), e.ResourceURL(), nil) },
		emulator.EndpointJWKS:                func() *http.Response { return get(t, tlsClient(e, nil), e.JWKSURL(), nil) },
		emulator.EndpointOpenIDConfiguration: func() *http.Response { return get(t, tlsClient(e, nil), e.OpenIDConfigurationURL(), nil) },
	}
	for ep, call := range calls {
		e.InjectFault(ep, emulator.Fault{Status: 429, Header: http.Header{"Retry-After": {"1"}}, Count: 1})
		resp := call()
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("%s: status %d, Retry-After %q", ep, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if rec := e.LastRequest(ep); rec == nil {
			t.Errorf("%s: not recorded", ep)
		}
	}
}

func get(t *testing.T, c *http.Client, u string, header map[string]string) *http.Response {
	t.Helper()
	resp, err := c.Do(newRequest(t, http.MethodGet, u, nil, header))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestLastRequest(t *testing.T) {
	t.Parallel()
	e := start(t, emulator.Config{})
	if e.LastRequest(emulator.EndpointIMDSToken) != nil || e.Requests(emulator.EndpointIMDSToken) != 0 {
		t.Fatal("records before any request")
	}
	req := newRequest(t, http.MethodGet, e.IMDSURL()+v1TokenPath+"?"+v1Query("client_id", emulator.DefaultUserAssignedClientID).Encode(), nil,
		map[string]string{"Metadata": "true", "x-ms-client-request-id": testCorrelationID})
	do(t, plainClient(), req)
	rec := e.LastRequest(emulator.EndpointIMDSToken)
	if rec.Method != http.MethodGet || rec.Path != v1TokenPath || rec.Query.Get("client_id") != emulator.DefaultUserAssignedClientID ||
		rec.Query.Get("api-version") != "2018-02-01" || rec.Header.Get("Metadata") != "true" ||
		rec.Header.Get("X-Ms-Client-Request-Id") != testCorrelationID || rec.ClientCertificate != nil {
		t.Errorf("LastRequest = %+v", rec)
	}
	// The record is a copy: changing it changes nothing inside the emulator.
	rec.Query.Set("client_id", "changed")
	rec.Header.Set("Metadata", "changed")
	if again := e.LastRequest(emulator.EndpointIMDSToken); again.Query.Get("client_id") != emulator.DefaultUserAssignedClientID || again.Header.Get("Metadata") != "true" {
		t.Errorf("record was shared: %+v", again)
	}
}

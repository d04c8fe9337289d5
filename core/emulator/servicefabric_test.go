package emulator_test

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
)

func TestServiceFabricEndpoint(t *testing.T) {
	e := start(t, emulator.Config{Source: emulator.SourceServiceFabric})
	u := e.Config().UserAssigned[0]
	env := e.Env()
	if !strings.HasPrefix(e.SourceURL(), "https://127.0.0.1:") || env["IDENTITY_SERVER_THUMBPRINT"] != e.ServiceFabricThumbprint() {
		t.Fatalf("url %s env %v", e.SourceURL(), env)
	}
	// The certificate is self-signed: trust comes from the thumbprint alone.
	var seen string
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // checked below, as clients pin it
		VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha1.Sum(cs.PeerCertificates[0].Raw)
			seen = strings.ToUpper(hex.EncodeToString(sum[:]))
			return nil
		}}}}
	secret := map[string]string{"secret": env["IDENTITY_HEADER"]}
	tokenFor(t, e, sourceGet(t, e, c, sourceQuery("2020-05-01"), secret), e.Config().SystemAssigned.ClientID)
	if seen != e.ServiceFabricThumbprint() {
		t.Fatalf("served certificate %s, thumbprint %s", seen, e.ServiceFabricThumbprint())
	}
	m := tokenFor(t, e, sourceGet(t, e, c, sourceQuery("2019-07-01-preview", "principalId", u.ObjectID), secret), u.ClientID)
	if _, ok := m["expires_on"].(float64); !ok {
		t.Fatalf("expires_on %v is not a number", m["expires_on"])
	}
	if _, err := tlsClient(e, nil).Get(e.SourceURL()); err == nil {
		t.Fatal("the certificate chains to the emulator's CA; it must be self-signed")
	}
	wantNestedError(t, sourceGet(t, e, c, sourceQuery("2020-05-01"), nil), 401, "SecretHeaderNotFound", "Secret")
	wantNestedError(t, sourceGet(t, e, c, sourceQuery("2020-05-01"), map[string]string{"secret": "guess"}), 401, "InvalidSecret", "")
	wantNestedError(t, sourceGet(t, e, c, sourceQuery("2019-08-01"), secret), 400, "InvalidApiVersion", "api-version")
	for _, sel := range []string{"client_id", "mi_res_id", "object_id"} {
		wantNestedError(t, sourceGet(t, e, c, sourceQuery("2020-05-01", sel, u.ObjectID), secret), 400, "ArgumentInvalid", "principalId")
	}
	wantNestedError(t, sourceGet(t, e, c, sourceQuery("2020-05-01", "principalId", "nobody"), secret), 400, "ManagedIdentityNotFound", "")
	q := sourceQuery("2020-05-01")
	q.Del("resource")
	wantNestedError(t, sourceGet(t, e, c, q, secret), 400, "ArgumentNullOrEmpty", "resource")
}

package managedidentity_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// sourceEndpoint is the emulator endpoint each source's token requests go to.
var sourceEndpoint = map[emulator.Source]emulator.Endpoint{
	emulator.SourceIMDS:            emulator.EndpointIMDSToken,
	emulator.SourceAppService:      emulator.EndpointAppService,
	emulator.SourceServiceFabric:   emulator.EndpointServiceFabric,
	emulator.SourceMachineLearning: emulator.EndpointMachineLearning,
	emulator.SourceCloudShell:      emulator.EndpointCloudShell,
	emulator.SourceAzureArc:        emulator.EndpointArc,
}

// envSources are the sources announced by environment variables.
var envSources = []emulator.Source{emulator.SourceAppService, emulator.SourceServiceFabric,
	emulator.SourceMachineLearning, emulator.SourceCloudShell, emulator.SourceAzureArc}

func sourceEmulator(t testing.TB, src emulator.Source, cfg emulator.Config) *emulator.Emulator {
	t.Helper()
	cfg.Source = src
	return startEmulator(t, cfg)
}

// sourceClient is clientFor, with the emulated Arc agent's key directory accepted.
func sourceClient(t testing.TB, emu *emulator.Emulator, id managedidentity.ID, w *waits, opts ...managedidentity.Option) *managedidentity.Client {
	t.Helper()
	if dir := emu.ArcKeyDirectory(); dir != "" {
		opts = append([]managedidentity.Option{managedidentity.WithArcKeyDirectory(dir)}, opts...)
	}
	return clientFor(t, emu, id, w, opts...)
}

// acquireOK gets a Bearer token and checks it is a real token from the emulator for clientID.
func acquireOK(t testing.TB, emu *emulator.Emulator, c *managedidentity.Client, clientID string) token.Result {
	t.Helper()
	resource := emu.Config().ResourceID
	res, err := c.AcquireToken(context.Background(), resource)
	if err != nil {
		t.Fatal(err)
	}
	if res.TokenType != token.TypeBearer || res.Source != token.SourceIdentityProvider || res.BindingCertificate != nil {
		t.Fatalf("unexpected result %v", res)
	}
	if claims := verify(t, emu, res, resource); claims.ClientID != clientID {
		t.Fatalf("token for %s, want %s", claims.ClientID, clientID)
	}
	return res
}

// onlySelector checks that of every selector spelling only name (or none, when name is "") is
// in the query, with value.
func onlySelector(t testing.TB, q map[string][]string, name, value string) {
	t.Helper()
	for _, sel := range []string{"client_id", "clientid", "msi_res_id", "mi_res_id", "object_id", "principalId", "principal_id"} {
		got, ok := q[sel]
		switch {
		case sel == name && (len(got) != 1 || got[0] != value):
			t.Fatalf("selector %s = %q, want %q", sel, got, value)
		case sel != name && ok:
			t.Fatalf("unexpected selector %s=%q (query %v)", sel, got, q)
		}
	}
}

func wantMessage(t testing.TB, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

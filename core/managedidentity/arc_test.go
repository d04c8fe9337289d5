package managedidentity_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

func TestAzureArcEveryIdentity(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceAzureArc, emulator.Config{})
	u := emu.Config().UserAssigned[0]
	sys := emu.Config().SystemAssigned
	for _, tc := range []struct {
		name     string
		id       managedidentity.ID
		sel, val string
		actor    string
	}{
		{"system-assigned", managedidentity.SystemAssigned(), "", "", sys.ClientID},
		{"client id", managedidentity.UserAssignedClientID(u.ClientID), "client_id", u.ClientID, u.ClientID},
		{"resource id", managedidentity.UserAssignedResourceID(u.ResourceID), "msi_res_id", u.ResourceID, u.ClientID},
		{"object id", managedidentity.UserAssignedObjectID(u.ObjectID), "object_id", u.ObjectID, u.ClientID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			c := sourceClient(t, emu, tc.id, nil, managedidentity.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
			if c.Source() != managedidentity.SourceAzureArc {
				t.Fatal(c.Source())
			}
			before := emu.Requests(emulator.EndpointArc)
			acquireOK(t, emu, c, tc.actor)
			if n := emu.Requests(emulator.EndpointArc) - before; n != 2 {
				t.Fatalf("%d requests, want the challenge and the authorized one", n)
			}
			rec := emu.LastRequest(emulator.EndpointArc)
			secret, ok := strings.CutPrefix(rec.Header.Get("Authorization"), "Basic ")
			if rec.Method != http.MethodGet || rec.Query.Get("api-version") != "2020-06-01" || rec.Query.Get("resource") != emu.Config().ResourceID ||
				rec.Header.Get("Metadata") != "true" || !ok || len(secret) < 32 {
				t.Fatalf("request %s %v %v", rec.Method, rec.Query, rec.Header)
			}
			onlySelector(t, rec.Query, tc.sel, tc.val)
			if strings.Contains(logs.String(), secret) {
				t.Fatal("the key file's contents were logged")
			}
			if files, _ := filepath.Glob(filepath.Join(emu.ArcKeyDirectory(), "*.key")); len(files) != 0 {
				t.Fatalf("used key files left behind: %v", files)
			}
		})
	}
}

// TestAzureArcChallengeRules: the client reads a key file only if the challenge names it exactly
// in the platform directory, with the .key extension, as a regular file of at most 4096 bytes.
func TestAzureArcChallengeRules(t *testing.T) {
	emu := sourceEmulator(t, emulator.SourceAzureArc, emulator.Config{})
	dir := emu.ArcKeyDirectory()
	parent := filepath.Dir(dir)
	write := func(t *testing.T, path string, size int) {
		t.Helper()
		if err := os.WriteFile(path, bytes.Repeat([]byte("s"), size), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	outside := filepath.Join(t.TempDir(), "outside.key")
	write(t, outside, 32)
	inParent := filepath.Join(parent, "mtlspop-arc-test-"+filepath.Base(t.TempDir())+".key")
	write(t, inParent, 32)
	write(t, filepath.Join(dir, "wrong.txt"), 32)
	write(t, filepath.Join(dir, "big.key"), 4097)
	write(t, filepath.Join(dir, "max.key"), 4096)
	if err := os.Symlink(outside, filepath.Join(dir, "link.key")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "link.key")) })
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "sub")) })

	cases := []struct {
		name   string
		header http.Header // of the injected 401; nil: none
		want   []string
		status int
	}{
		{"missing challenge header", nil, []string{"no WWW-Authenticate header"}, 0},
		{"not Basic realm", http.Header{"Www-Authenticate": {`Bearer realm="x"`}}, []string{"is not"}, 0},
		{"path outside the directory", http.Header{"Www-Authenticate": {"Basic realm=" + outside}}, []string{"is not directly in " + dir}, 0},
		{"../ traversal", http.Header{"Www-Authenticate": {"Basic realm=" + dir + "/../" + filepath.Base(inParent)}}, []string{"is not directly in"}, 0},
		{"../ traversal back into the directory", http.Header{"Www-Authenticate": {"Basic realm=" + dir + "/sub/../max.key"}}, []string{"is not directly in"}, 0},
		{"relative path", http.Header{"Www-Authenticate": {"Basic realm=max.key"}}, []string{"is not directly in"}, 0},
		{"wrong extension", http.Header{"Www-Authenticate": {"Basic realm=" + filepath.Join(dir, "wrong.txt")}}, []string{"does not have the .key extension"}, 0},
		{"only an extension", http.Header{"Www-Authenticate": {"Basic realm=" + dir + "/.key"}}, []string{".key extension"}, 0},
		{"oversize file", http.Header{"Www-Authenticate": {"Basic realm=" + filepath.Join(dir, "big.key")}}, []string{"larger than 4096 bytes"}, 0},
		{"missing file", http.Header{"Www-Authenticate": {"Basic realm=" + filepath.Join(dir, "nothere.key")}}, []string{"does not exist"}, 0},
		{"symlink", http.Header{"Www-Authenticate": {"Basic realm=" + filepath.Join(dir, "link.key")}}, []string{"not a regular file"}, 0},
		// A well-formed challenge naming a 4096-byte file: the client sends it, and the agent,
		// which never handed it out, refuses it.
		{"4096 bytes is allowed", http.Header{"Www-Authenticate": {"Basic realm=" + filepath.Join(dir, "max.key")}}, nil, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer emu.ClearFaults()
			emu.InjectFault(emulator.EndpointArc, emulator.Fault{Status: 401, Count: 1, Header: tc.header})
			before := emu.Requests(emulator.EndpointArc)
			_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(context.Background(), emu.Config().ResourceID)
			te := wantCode(t, err, token.CodeManagedIdentityRequestFailed)
			if te.Source != "arc" || te.CorrelationID == "" || te.Status != tc.status {
				t.Fatalf("%+v", te)
			}
			wantMessage(t, err, tc.want...)
			if strings.Contains(err.Error(), "ssss") {
				t.Fatal("an error shows the key file's contents")
			}
			sent := emu.Requests(emulator.EndpointArc) - before
			if want := map[bool]int{true: 2, false: 1}[tc.status == 401]; sent != want {
				t.Fatalf("%d requests, want %d", sent, want)
			}
		})
	}
}

func TestAzureArcRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("the platform directory is the default", func(t *testing.T) {
		emu := sourceEmulator(t, emulator.SourceAzureArc, emulator.Config{})
		// Without WithArcKeyDirectory the client accepts only /var/opt/azcmagent/tokens (or
		// Windows' directory); the emulator's own directory is refused.
		_, err := clientFor(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, emu.Config().ResourceID)
		wantCode(t, err, token.CodeManagedIdentityRequestFailed)
		wantMessage(t, err, "Azure Arc")
	})
	t.Run("identity not echoed by an old agent", func(t *testing.T) {
		emu := sourceEmulator(t, emulator.SourceAzureArc, emulator.Config{ArcIgnoreUserAssigned: true})
		u := emu.Config().UserAssigned[0]
		for _, id := range []managedidentity.ID{managedidentity.UserAssignedClientID(u.ClientID),
			managedidentity.UserAssignedResourceID(u.ResourceID), managedidentity.UserAssignedObjectID(u.ObjectID)} {
			_, err := sourceClient(t, emu, id, nil).AcquireToken(ctx, emu.Config().ResourceID)
			if te := wantCode(t, err, token.CodeUserAssignedNotSupported); te.Source != "arc" {
				t.Fatalf("%+v", te)
			}
		}
		acquireOK(t, emu, sourceClient(t, emu, managedidentity.SystemAssigned(), nil), emu.Config().SystemAssigned.ClientID)
	})
	t.Run("an answer without the challenge", func(t *testing.T) {
		emu := sourceEmulator(t, emulator.SourceAzureArc, emulator.Config{})
		emu.InjectFault(emulator.EndpointArc, emulator.Fault{Status: 200, Count: 1, Body: `{"access_token":"a.b.c","expires_in":"3600","token_type":"Bearer"}`})
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, emu.Config().ResourceID)
		wantCode(t, err, token.CodeManagedIdentityRequestFailed)
		wantMessage(t, err, "without the 401 challenge")
	})
	t.Run("PoP refused", func(t *testing.T) {
		emu := sourceEmulator(t, emulator.SourceAzureArc, emulator.Config{})
		_, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).AcquireToken(ctx, emu.Config().ResourceID, managedidentity.WithMtlsPoP())
		wantCode(t, err, token.CodeMtlsPopNotSupportedForEnv)
	})
}

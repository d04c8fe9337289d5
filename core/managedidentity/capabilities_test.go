package managedidentity_test

import (
	"context"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

func TestCapabilities(t *testing.T) {
	ctx := context.Background()
	t.Run("IMDSv2 host", func(t *testing.T) {
		emu := startEmulator(t, emulator.Config{})
		c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
		caps, err := c.Capabilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if caps != (managedidentity.Capabilities{Source: managedidentity.SourceIMDS, IMDSv1: true, IMDSv2: true, BindingStrength: keys.StrengthSoftware}) || !caps.PoP() {
			t.Fatalf("%+v", caps)
		}
		rec := emu.LastRequest(emulator.EndpointPlatformMetadata)
		if rec.Header.Get("Metadata") != "" || rec.Header.Get("x-ms-client-request-id") == "" || rec.Query.Get("cred-api-version") != "2.0" {
			t.Fatalf("probe %v %v", rec.Query, rec.Header)
		}
		// Found once, remembered: no more probes.
		n := emu.Requests(emulator.EndpointPlatformMetadata)
		if again, err := c.Capabilities(ctx); err != nil || again != caps || emu.Requests(emulator.EndpointPlatformMetadata) != n {
			t.Fatalf("%+v %v", again, err)
		}
	})
	t.Run("IMDS v1 host", func(t *testing.T) {
		emu := startEmulator(t, emulator.Config{DisableIMDSv2: true})
		u := emu.Config().UserAssigned[0]
		caps, err := clientFor(t, emu, managedidentity.UserAssignedResourceID(u.ResourceID), nil).Capabilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if caps != (managedidentity.Capabilities{Source: managedidentity.SourceIMDS, IMDSv1: true}) || caps.PoP() {
			t.Fatalf("%+v", caps)
		}
		rec := emu.LastRequest(emulator.EndpointIMDSToken)
		if rec.Header.Get("Metadata") != "" || rec.Query.Get("api-version") != "2018-02-01" || rec.Query.Get("msi_res_id") != u.ResourceID {
			t.Fatalf("probe %v %v", rec.Query, rec.Header)
		}
		if emu.Requests(emulator.EndpointPlatformMetadata) != 1 {
			t.Fatal("v2 is probed first")
		}
	})
	t.Run("environment source: no probe", func(t *testing.T) {
		emu := sourceEmulator(t, emulator.SourceAppService, emulator.Config{})
		caps, err := sourceClient(t, emu, managedidentity.SystemAssigned(), nil).Capabilities(ctx)
		if err != nil || caps != (managedidentity.Capabilities{Source: managedidentity.SourceAppService}) {
			t.Fatalf("%+v %v", caps, err)
		}
		if emu.Requests(emulator.EndpointPlatformMetadata)+emu.Requests(emulator.EndpointIMDSToken)+emu.Requests(emulator.EndpointAppService) != 0 {
			t.Fatal("an environment source was probed")
		}
	})
	t.Run("caller's deadline, and no negative caching", func(t *testing.T) {
		emu := startEmulator(t, emulator.Config{})
		c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
		emu.InjectFault(emulator.EndpointPlatformMetadata, emulator.Fault{Delay: time.Minute})
		emu.InjectFault(emulator.EndpointIMDSToken, emulator.Fault{Delay: time.Minute})
		short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Capabilities(short)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("the probe outlived the caller's deadline: %v", d)
		}
		wantCode(t, err, token.CodeManagedIdentityAllUnavailable)
		emu.ClearFaults()
		caps, err := c.Capabilities(ctx)
		if err != nil || !caps.IMDSv2 {
			t.Fatalf("a slow IMDS was remembered as absent: %+v %v", caps, err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		emu := startEmulator(t, emulator.Config{})
		c := clientFor(t, emu, managedidentity.SystemAssigned(), nil)
		c.Close()
		_, err := c.Capabilities(ctx)
		wantCode(t, err, token.CodeClosed)
	})
}

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mtlspop/mtlspop/core/emulator"
)

// TestExampleRuns runs the README example against an in-process emulator.
func TestExampleRuns(t *testing.T) {
	emu, err := emulator.Start(emulator.Config{ResourceRequirePoP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var info emulatorInfo
	info.Env = emu.Env()
	info.URLs = map[string]string{"resource": emu.ResourceURL(), "resource_id": emu.Config().ResourceID}
	a := emu.App()
	info.App.ClientID, info.App.CertFile, info.App.KeyFile = a.ClientID, a.CertFile, a.KeyFile
	info.App.Authority, info.App.MTLSEndpoint = emu.AuthorityURL(), emu.MTLSAuthURL()
	var out bytes.Buffer
	if err := run(context.Background(), info, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Count(got, "200 OK over mTLS") != 2 || !strings.Contains(got, "two-leg:  mtls_pop") {
		t.Fatalf("output:\n%s", got)
	}
}

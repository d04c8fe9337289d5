package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// arcPlatformDir is the only directory unmodified clients (the CLI among them) accept an Azure
// Arc key file from.
const arcPlatformDir = "/var/opt/azcmagent/tokens"

// arcArgs are the emulator flags that let the CLI run against the Arc emulator: the emulator must
// write its key files to the platform directory, which needs root, and must not meet a real agent.
func arcArgs(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the CLI accepts Azure Arc key files only from " + arcPlatformDir + ", which only root can write")
	}
	if _, err := os.Stat("/opt/azcmagent/bin/himds"); err == nil {
		t.Skip("a real Azure Arc agent is installed here; not writing into its directory")
	}
	return []string{"--arc-key-dir", arcPlatformDir}
}

// TestTokenFromEverySource: `mtlspop emulator --source X` plus `mtlspop token` with the printed
// environment returns a token, for every source.
func TestTokenFromEverySource(t *testing.T) {
	for _, src := range []string{"imds", "appservice", "servicefabric", "machinelearning", "cloudshell", "arc"} {
		t.Run(src, func(t *testing.T) {
			args := []string{"--source", src}
			if src == "arc" {
				args = append(args, arcArgs(t)...)
			}
			emu := startEmulatorProc(t, args...)
			if emu.info.Source != src || (src != "imds" && emu.info.URLs["source"] == "") {
				t.Fatalf("info %+v", emu.info)
			}
			stdout, stderr, exit := emu.run(t, "source")
			if exit != 0 || strings.TrimSpace(stdout) != `{"source":"`+src+`"}` {
				t.Fatalf("source: exit %d %s %s", exit, stdout, stderr)
			}
			stdout, stderr, exit = emu.run(t, "token", "--resource", emu.info.URLs["resource_id"])
			if exit != 0 {
				t.Fatalf("token: exit %d %s", exit, stderr)
			}
			var tok tokenJSON
			if err := json.Unmarshal([]byte(stdout), &tok); err != nil || tok.TokenType != "Bearer" || strings.Count(tok.AccessToken, ".") != 2 {
				t.Fatalf("token %s (%v)", stdout, err)
			}
			if src != "imds" {
				_, stderr, exit = emu.run(t, "token", "--resource", emu.info.URLs["resource_id"], "--mtls-pop")
				if exit != 1 || !strings.Contains(stderr, "mtls_pop_not_supported_for_environment") {
					t.Fatalf("PoP on %s: exit %d %s", src, exit, stderr)
				}
			}
		})
	}
}

func TestSourceProbe(t *testing.T) {
	emu := startEmulatorProc(t)
	stdout, stderr, exit := emu.run(t, "source", "--probe", "--timeout", "10s")
	if exit != 0 {
		t.Fatalf("exit %d %s", exit, stderr)
	}
	var got sourceJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.Source != "imds" || got.IMDSv2 == nil || !*got.IMDSv2 ||
		got.BindingStrength != "software" || got.MtlsPoP == nil || !*got.MtlsPoP {
		t.Fatalf("%s (%v)", stdout, err)
	}
	if _, stderr, exit := emu.run(t, "emulator", "--source", "vm"); exit != 2 || !strings.Contains(stderr, "invalid_argument") {
		t.Fatalf("unknown source: exit %d %s", exit, stderr)
	}
}

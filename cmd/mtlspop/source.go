package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"

	"github.com/mtlspop/mtlspop/core/managedidentity"
)

// sourceJSON is what `mtlspop source` prints. The probe fields are present only with --probe.
type sourceJSON struct {
	Source          string `json:"source"`
	IMDSv1          *bool  `json:"imds_v1,omitempty"`
	IMDSv2          *bool  `json:"imds_v2,omitempty"`
	BindingStrength string `json:"binding_strength,omitempty"`
	MtlsPoP         *bool  `json:"mtls_pop,omitempty"`
}

// cmdSource prints the source the environment selects (no I/O), or, with --probe, what the host
// offers (managedidentity.Client.Capabilities: IMDS is probed when no variable names a source).
func cmdSource(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("source", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ids identityFlags
	ids.register(fs)
	probe := fs.Bool("probe", false, "probe IMDS (v2, then v1) and report what the host offers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		return fail(stderr, usageError("source: no positional arguments are taken"))
	}
	if !*probe {
		// Without --probe only the environment is read: no client is built that could use them.
		if err := ids.rejectAll(givenFlags(fs), "source: without --probe", "only --probe builds a client (detection alone reads just the environment)"); err != nil {
			return fail(stderr, err)
		}
	}
	out := sourceJSON{Source: string(managedidentity.DetectSource(os.Getenv))}
	if *probe {
		ctx, cancel := context.WithTimeout(context.Background(), ids.timeout)
		defer cancel()
		mi, closer, err := ids.client(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		defer closer.Close()
		caps, err := mi.Capabilities(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		pop := caps.PoP()
		out = sourceJSON{Source: string(caps.Source), IMDSv1: &caps.IMDSv1, IMDSv2: &caps.IMDSv2,
			BindingStrength: string(caps.BindingStrength), MtlsPoP: &pop}
	}
	_ = json.NewEncoder(stdout).Encode(out)
	return 0
}

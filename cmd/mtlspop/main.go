// Command mtlspop acquires certificate-bound access tokens, calls resources with them, and runs
// the local identity-platform emulator.
//
//	mtlspop token --resource R [--mtls-pop] [--client-id|--resource-id|--object-id ID]
//	mtlspop call URL [--resource R] [--bearer] [-X METHOD] [-H 'Name: value'] [-d BODY]
//	mtlspop emulator [--addr 127.0.0.1:0] [--source imds|appservice|arc|cloudshell|servicefabric|machinelearning]
//	mtlspop source [--probe] [--client-id|--resource-id|--object-id ID]
//	mtlspop demo
//	mtlspop version
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/version"
)

const usage = `usage: mtlspop <command> [flags]

commands:
  token     acquire an access token and print it as JSON (managed identity, or --tenant for an app)
  fic       two-leg federated credential: this managed identity's token exchanged by an app
  call      call a resource over mTLS with a freshly bound token
  emulator  run the local identity-platform emulator (--source picks the managed-identity source)
  source    print the managed-identity source this environment selects (--probe: what it offers)
  demo      walk through the mTLS PoP flow against an in-process emulator
  version   print the version

Run "mtlspop <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "token":
		return cmdToken(args[1:], stdout, stderr)
	case "fic":
		return cmdFIC(args[1:], stdout, stderr)
	case "call":
		return cmdCall(args[1:], stdout, stderr)
	case "emulator":
		return cmdEmulator(args[1:], stdin, stdout, stderr)
	case "source":
		return cmdSource(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mtlspop: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// fail prints {"error":{"code","message","status"}} to stderr and returns the exit status: 2 for
// invalid arguments, 1 otherwise.
func fail(stderr io.Writer, err error) int {
	var te *token.Error
	if !errors.As(err, &te) {
		te = &token.Error{Code: token.CodeInternal, Message: err.Error()}
	}
	msg := te.Message
	if te.Err != nil {
		msg = te.Error()
	}
	out := map[string]any{"error": map[string]any{
		"code": te.Code, "message": msg, "status": te.Status, "correlation_id": te.CorrelationID,
	}}
	_ = json.NewEncoder(stderr).Encode(out)
	if te.Code == token.CodeInvalidArgument {
		return 2
	}
	return 1
}

func usageError(format string, args ...any) error {
	return token.Errorf(token.CodeInvalidArgument, format, args...)
}

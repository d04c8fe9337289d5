// Command confidential runs the three flows of MSAL.NET's mTLS PoP guides against the
// emulator: a confidential client's mTLS PoP token (vanilla), calling the resource with the
// binding certificate, and the two-leg FIC exchange (leg 1: the managed identity's bound token;
// leg 2: the app presenting it).
//
//	build/mtlspop emulator > emu.json &
//	go run ./examples/go/confidential emu.json
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/mtlspop/mtlspop/core/confidential"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// emulatorInfo is the part of `mtlspop emulator`'s line this example reads.
type emulatorInfo struct {
	Env  map[string]string `json:"env"`
	URLs map[string]string `json:"urls"`
	App  struct {
		ClientID     string `json:"client_id"`
		CertFile     string `json:"cert_file"`
		KeyFile      string `json:"key_file"`
		Authority    string `json:"authority"`
		MTLSEndpoint string `json:"mtls_endpoint"`
	} `json:"app"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: confidential emu.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var info emulatorInfo
	if err := json.Unmarshal(b, &info); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := run(context.Background(), info, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, info emulatorInfo, out io.Writer) error {
	getenv := func(k string) string { return info.Env[k] } // the emulator's env, not the process's
	scopes := []string{info.URLs["resource_id"] + "/.default"}

	// 1. Vanilla: the app's certificate authenticates at the TLS layer; the token is bound to it.
	cert, err := tls.LoadX509KeyPair(info.App.CertFile, info.App.KeyFile)
	if err != nil {
		return err
	}
	app, err := confidential.New(info.App.Authority, info.App.ClientID, confidential.Certificate(&cert),
		confidential.WithMtlsEndpoint(info.App.MTLSEndpoint), confidential.WithEnv(getenv))
	if err != nil {
		return err
	}
	defer app.Close()
	res, err := app.AcquireTokenForClient(ctx, scopes, confidential.WithMtlsPoP())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "vanilla:  %s token bound to the app certificate %s\n", res.TokenType, res.Thumbprint())

	// 2. Call the resource over mTLS with the binding certificate.
	if err := call(ctx, app, info.URLs["resource"], res, out); err != nil {
		return err
	}

	// 3. Two-leg FIC: leg 1 is the managed identity's PoP token for api://AzureADTokenExchange,
	// leg 2 the app exchanging it (a jwt-pop assertion over mTLS with leg 1's certificate).
	mi, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithEnv(getenv))
	if err != nil {
		return err
	}
	defer mi.Close()
	leg2, err := confidential.New(info.App.Authority, info.App.ClientID,
		confidential.AssertionFunc(confidential.FromManagedIdentity(mi, true)),
		confidential.WithMtlsEndpoint(info.App.MTLSEndpoint), confidential.WithEnv(getenv))
	if err != nil {
		return err
	}
	defer leg2.Close()
	fic, err := leg2.AcquireTokenForClient(ctx, scopes, confidential.WithMtlsPoP())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "two-leg:  %s token bound to the managed identity's certificate %s\n", fic.TokenType, fic.Thumbprint())
	return call(ctx, leg2, info.URLs["resource"], fic, out)
}

func call(ctx context.Context, c *confidential.Client, url string, res token.Result, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(ctx, req, res)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the resource answered %s", resp.Status)
	}
	fmt.Fprintf(out, "resource: %s over mTLS with the binding certificate\n", resp.Status)
	return nil
}

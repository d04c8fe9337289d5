package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"

	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// tokenJSON is what `mtlspop token` prints. Absent values are null.
type tokenJSON struct {
	AccessToken           string  `json:"access_token"`
	TokenType             string  `json:"token_type"`
	ExpiresOn             int64   `json:"expires_on"`
	RefreshOn             *int64  `json:"refresh_on"`
	TokenSource           string  `json:"token_source"`
	BindingCertificatePEM *string `json:"binding_certificate_pem"`
	Thumbprint            *string `json:"binding_certificate_thumbprint"`
	BindingKey            *string `json:"binding_key"` // "software" or "tpm": where the binding key lives
}

func resultJSON(r token.Result) tokenJSON {
	out := tokenJSON{AccessToken: r.AccessToken, TokenType: r.TokenType, ExpiresOn: r.ExpiresOn.Unix(), TokenSource: r.Source.String()}
	if !r.RefreshOn.IsZero() {
		v := r.RefreshOn.Unix()
		out.RefreshOn = &v
	}
	if r.BindingCertificate != nil {
		p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.BindingCertificate.Raw}))
		t := r.Thumbprint()
		out.BindingCertificatePEM, out.Thumbprint = &p, &t
		if k, ok := r.TLSCertificate().PrivateKey.(keys.Key); ok {
			strength := string(k.Strength())
			out.BindingKey = &strength
		}
	}
	return out
}

func cmdToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ids identityFlags
	ids.register(fs)
	var app appFlags
	app.register(fs)
	resource := fs.String("resource", "", "managed identity: resource (App ID URI or URL) the token is for (required)")
	pop := fs.Bool("mtls-pop", false, "acquire an mTLS proof-of-possession token bound to a certificate")
	force := fs.Bool("force-refresh", false, "skip the token cache")
	claims := fs.String("claims", "", "claims request JSON (e.g. a CAE challenge)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		return fail(stderr, usageError("token: no positional arguments are taken"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), ids.timeout)
	defer cancel()
	given := givenFlags(fs)
	if app.isApp() {
		if *resource != "" {
			return fail(stderr, usageError("token: a confidential client takes --scope, not --resource"))
		}
		return cmdTokenConfidential(ctx, given, &app, &ids, *pop, *force, *claims, stdout, stderr)
	}
	if *resource == "" {
		return fail(stderr, usageError("token: --resource is required"))
	}
	if err := rejectGiven(given, "token: for a managed identity",
		"it configures a confidential client (add --tenant and --cert/--key or --secret-file, and --scope)",
		"authority", "region", "mtls-endpoint"); err != nil {
		return fail(stderr, err)
	}
	if !*pop {
		if err := ids.rejectPoPOnly(given, "token: without --mtls-pop"); err != nil {
			return fail(stderr, err)
		}
	}
	mi, closer, err := ids.client(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	defer closer.Close()
	var opts []managedidentity.AcquireOption
	if *pop {
		opts = append(opts, managedidentity.WithMtlsPoP())
	}
	if *force {
		opts = append(opts, managedidentity.WithForceRefresh())
	}
	if *claims != "" {
		opts = append(opts, managedidentity.WithClaims(*claims))
	}
	res, err := mi.AcquireToken(ctx, *resource, opts...)
	if err != nil {
		return fail(stderr, err)
	}
	return printResult(stdout, res)
}

func printResult(stdout io.Writer, res token.Result) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(resultJSON(res))
	return 0
}

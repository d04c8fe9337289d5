package main

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/mtlspop/mtlspop/core/confidential"
	"github.com/mtlspop/mtlspop/core/token"
)

// appFlags are the confidential-client flags of `mtlspop token` (with --tenant) and `mtlspop fic`.
type appFlags struct {
	tenant, authority, cert, secret, secretFile, region, mtlsEndpoint string
	scopes                                                            scopeFlags
}

// envClientSecret holds a client secret for the CLI: unlike --secret it does not show in the
// process list.
const envClientSecret = "MTLSPOP_CLIENT_SECRET"

// maxSecretFile bounds what --secret-file reads: a client secret is a few dozen bytes, and a
// path such as /dev/zero must not make the CLI read forever.
const maxSecretFile = 64 << 10

type scopeFlags []string

func (s *scopeFlags) String() string     { return strings.Join(*s, " ") }
func (s *scopeFlags) Set(v string) error { *s = append(*s, v); return nil }

func (f *appFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tenant, "tenant", "", "confidential client: the tenant (with --client-id as the app); switches token to a confidential client")
	fs.StringVar(&f.authority, "authority", "https://login.microsoftonline.com", "confidential client: the authority host, or a full authority URL with its tenant")
	fs.StringVar(&f.cert, "cert", "", "confidential client: certificate PEM file (with --key as its private key PEM file)")
	fs.StringVar(&f.secretFile, "secret-file", "", "confidential client: file holding the client secret (classic endpoint only); or set "+envClientSecret)
	fs.StringVar(&f.secret, "secret", "", "confidential client: client secret (classic endpoint only). Other local users can read it in the process list (ps, /proc): prefer --secret-file or "+envClientSecret)
	fs.StringVar(&f.region, "region", "", "confidential client: Azure region of the mTLS endpoint (default: MSAL_FORCE_REGION, REGION_NAME, else global)")
	fs.StringVar(&f.mtlsEndpoint, "mtls-endpoint", "", "confidential client: the mTLS token host, instead of deriving it from the authority (private clouds, the emulator)")
	fs.Var(&f.scopes, "scope", "confidential client: scope to request, e.g. https://vault.azure.net/.default (repeatable)")
}

// isApp reports whether the flags ask for a confidential client rather than a managed identity.
func (f *appFlags) isApp() bool {
	return f.tenant != "" || f.cert != "" || f.secret != "" || f.secretFile != "" || len(f.scopes) > 0
}

// clientSecret is the secret from --secret or --secret-file (one at most), else from
// MTLSPOP_CLIENT_SECRET; "" when there is none. A secret file's trailing newline is dropped.
func (f *appFlags) clientSecret() (string, error) {
	switch {
	case f.secret != "" && f.secretFile != "":
		return "", usageError("give --secret-file or --secret, not both")
	case f.secret != "":
		return f.secret, nil
	case f.secretFile != "":
		file, err := os.Open(f.secretFile)
		if err != nil {
			return "", token.Wrap(token.CodeInvalidArgument, err, "reading --secret-file")
		}
		defer file.Close()
		b, err := io.ReadAll(io.LimitReader(file, maxSecretFile+1))
		if err != nil {
			return "", token.Wrap(token.CodeInvalidArgument, err, "reading --secret-file")
		}
		if len(b) > maxSecretFile {
			return "", usageError("--secret-file %s is larger than %d bytes; it should hold only the secret", f.secretFile, maxSecretFile)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", usageError("--secret-file %s is empty", f.secretFile)
		}
		return s, nil
	}
	return os.Getenv(envClientSecret), nil
}

// authorityURL is --authority with --tenant appended, unless --authority already names a tenant.
func (f *appFlags) authorityURL() (string, error) {
	u, err := url.Parse(f.authority)
	if err != nil || u.Host == "" {
		return "", usageError("--authority %q is not a URL", f.authority)
	}
	if strings.Trim(u.Path, "/") != "" {
		return f.authority, nil
	}
	if f.tenant == "" {
		return "", usageError("give --tenant, or an --authority URL that names the tenant")
	}
	return strings.TrimRight(f.authority, "/") + "/" + f.tenant, nil
}

// client builds the confidential client: cred is the credential (a certificate, a secret, or a
// caller's assertion callback).
func (f *appFlags) client(clientID, keyFile string, cred *confidential.Credential) (*confidential.Client, error) {
	if clientID == "" {
		return nil, usageError("a confidential client needs --client-id (the app's id)")
	}
	authority, err := f.authorityURL()
	if err != nil {
		return nil, err
	}
	if cred == nil {
		if f.cert != "" && (f.secret != "" || f.secretFile != "") {
			return nil, usageError("give --cert and --key, or a client secret, not both")
		}
		secret, err := f.clientSecret()
		if err != nil {
			return nil, err
		}
		switch {
		case f.cert != "":
			if keyFile == "" {
				return nil, usageError("--cert needs --key, the private key PEM file")
			}
			pair, err := tls.LoadX509KeyPair(f.cert, keyFile)
			if err != nil {
				return nil, token.Wrap(token.CodeInvalidArgument, err, "loading --cert and --key")
			}
			c := confidential.Certificate(&pair)
			cred = &c
		case secret != "":
			c := confidential.Secret(secret)
			cred = &c
		default:
			return nil, usageError("a confidential client needs --cert and --key, or a client secret (--secret-file, %s or --secret)", envClientSecret)
		}
	}
	var opts []confidential.Option
	if f.region != "" {
		opts = append(opts, confidential.WithRegion(f.region))
	}
	if f.mtlsEndpoint != "" {
		opts = append(opts, confidential.WithMtlsEndpoint(f.mtlsEndpoint))
	}
	return confidential.New(authority, clientID, *cred, opts...)
}

// cmdTokenConfidential is `mtlspop token --tenant ...`.
func cmdTokenConfidential(ctx context.Context, given map[string]bool, app *appFlags, ids *identityFlags, pop, force bool, claims string, stdout, stderr io.Writer) int {
	if len(app.scopes) == 0 {
		return fail(stderr, usageError("token: a confidential client needs --scope"))
	}
	if err := rejectGiven(given, "token: for a confidential client (--tenant, --cert, --secret-file, --secret or --scope)",
		"it is a managed-identity flag", "resource-id", "object-id", "attest", "tpm-device", "tpm-state-dir"); err != nil {
		return fail(stderr, err)
	}
	keyFile := ids.key
	switch keyFile {
	case "software": // the flag's default for managed identities: no key file given
		keyFile = ""
	case "tpm":
		return fail(stderr, usageError("token: --key tpm is for managed identities; a confidential client's --key is its private key PEM file"))
	}
	cc, err := app.client(ids.clientID, keyFile, nil)
	if err != nil {
		return fail(stderr, err)
	}
	defer cc.Close()
	var opts []confidential.AcquireOption
	if pop {
		opts = append(opts, confidential.WithMtlsPoP())
	}
	if force {
		opts = append(opts, confidential.WithForceRefresh())
	}
	if claims != "" {
		opts = append(opts, confidential.WithClaims(claims))
	}
	res, err := cc.AcquireTokenForClient(ctx, app.scopes, opts...)
	if err != nil {
		return fail(stderr, err)
	}
	return printResult(stdout, res)
}

// cmdFIC is the two-leg flow: leg 1 from this host's managed identity (bound unless --bearer-leg1),
// leg 2 a confidential client that presents it as its federated credential.
func cmdFIC(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ids identityFlags // leg 1: the managed identity (--client-id etc. name a user-assigned one)
	ids.register(fs)
	var app appFlags
	app.register(fs)
	appID := fs.String("app-id", "", "leg 2: the app that trusts the managed identity (its client id)")
	pop := fs.Bool("mtls-pop", false, "leg 2: an mTLS PoP token, bound to leg 1's certificate")
	bearerLeg1 := fs.Bool("bearer-leg1", false, "leg 1: a Bearer token instead of an mTLS PoP token (no binding, classic endpoint)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *appID == "" || len(app.scopes) == 0 || fs.NArg() != 0 {
		return fail(stderr, usageError("fic: --app-id and --scope are required"))
	}
	if *pop && *bearerLeg1 {
		return fail(stderr, usageError("fic: --mtls-pop needs a bound leg 1; drop --bearer-leg1"))
	}
	given := givenFlags(fs)
	// Leg 2's credential is leg 1's token: an app certificate or secret would be ignored.
	if err := rejectGiven(given, "fic", "leg 2 presents leg 1's token as its credential, not a certificate or secret",
		"cert", "secret", "secret-file"); err != nil {
		return fail(stderr, err)
	}
	if *bearerLeg1 {
		if err := ids.rejectPoPOnly(given, "fic: with --bearer-leg1"); err != nil {
			return fail(stderr, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ids.timeout)
	defer cancel()
	mi, closer, err := ids.client(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	defer closer.Close()
	cred := confidential.AssertionFunc(confidential.FromManagedIdentity(mi, !*bearerLeg1))
	cc, err := app.client(*appID, "", &cred)
	if err != nil {
		return fail(stderr, err)
	}
	defer cc.Close()
	var opts []confidential.AcquireOption
	if *pop {
		opts = append(opts, confidential.WithMtlsPoP())
	}
	res, err := cc.AcquireTokenForClient(ctx, app.scopes, opts...)
	if err != nil {
		return fail(stderr, err)
	}
	return printResult(stdout, res)
}

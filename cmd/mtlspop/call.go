package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func cmdCall(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ids identityFlags
	ids.register(fs)
	resource := fs.String("resource", "", "resource the token is for (default: the URL's origin)")
	bearer := fs.Bool("bearer", false, "use a Bearer token instead of an mTLS PoP token")
	method := fs.String("X", http.MethodGet, "HTTP method")
	body := fs.String("d", "", "request body")
	var headers headerFlags
	fs.Var(&headers, "H", "extra request header 'Name: value' (repeatable)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		return fail(stderr, usageError("call: give exactly one URL"))
	}
	if *bearer {
		if err := ids.rejectPoPOnly(givenFlags(fs), "call: with --bearer"); err != nil {
			return fail(stderr, err)
		}
	}
	target, err := url.Parse(fs.Arg(0))
	if err != nil || target.Scheme != "https" || target.Host == "" {
		return fail(stderr, usageError("call: %q is not an https URL", fs.Arg(0)))
	}
	if *resource == "" {
		*resource = target.Scheme + "://" + target.Host
	}
	ctx, cancel := context.WithTimeout(context.Background(), ids.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, *method, target.String(), strings.NewReader(*body))
	if err != nil {
		return fail(stderr, usageError("call: %v", err))
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fail(stderr, usageError("call: header %q is not 'Name: value'", h))
		}
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	mi, closer, err := ids.client(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	defer closer.Close()
	var opts []managedidentity.AcquireOption
	if !*bearer {
		opts = append(opts, managedidentity.WithMtlsPoP())
	}
	res, err := mi.AcquireToken(ctx, *resource, opts...)
	if err != nil {
		return fail(stderr, err)
	}
	resp, err := mi.Do(ctx, req, res)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, io.LimitReader(resp.Body, 64<<20)); err != nil {
		return fail(stderr, token.Wrap(token.CodeNetwork, err, "reading the response"))
	}
	if resp.StatusCode >= 400 {
		return fail(stderr, &token.Error{Code: "http_error", Status: resp.StatusCode,
			Message: fmt.Sprintf("%s answered %s", target.Host, resp.Status)})
	}
	return 0
}

// reorder moves the positional URL after the flags, so `mtlspop call URL --resource R` works as
// well as `mtlspop call --resource R URL` (package flag stops at the first positional argument).
// Whether a flag takes the next argument as its value is read from fs itself — a boolean flag's
// Value has IsBoolFlag() — so a flag added later cannot swallow the URL.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && !isBoolFlag(fs, a) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

// isBoolFlag reports whether the flag named by a ("-x" or "--x") is a boolean flag of fs. -h and
// -help are booleans the flag package handles without defining them.
func isBoolFlag(fs *flag.FlagSet, a string) bool {
	name := strings.TrimLeft(a, "-")
	f := fs.Lookup(name)
	if f == nil {
		return name == "h" || name == "help"
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

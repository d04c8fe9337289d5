package managedidentity

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/mtlspop/mtlspop/core/attest"
	"github.com/mtlspop/mtlspop/core/internal/wire"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/token"
)

// Capabilities is what the host offers this client's identity (reference/msal-dotnet-mtlspop.md
// §2.3).
type Capabilities struct {
	// Source is the managed-identity source: an environment-announced one, or SourceIMDS when an
	// IMDS answered.
	Source Source
	// IMDSv1 and IMDSv2 say which IMDS versions answered the probes (both false for the other
	// sources, which are not probed).
	IMDSv1, IMDSv2 bool
	// BindingStrength is how the key of a binding certificate would be held ("software", "tpm"),
	// or "" when this client cannot get mTLS PoP tokens here (no IMDSv2, or attestation asked
	// for with keys that cannot attest).
	BindingStrength keys.Strength
}

// PoP reports whether the host can issue mTLS PoP tokens.
func (c Capabilities) PoP() bool { return c.IMDSv2 && c.BindingStrength != "" }

// Capabilities finds out, explicitly, what the host offers. A source announced by the
// environment is taken as it is. Otherwise IMDS is probed, v2 first and then v1 (a v1 probe
// answers 400 on v2 hosts too); a probe is a request IMDS refuses with 400 when it is there.
// ctx bounds the probes (without a deadline, the client's timeout does), and an IMDS that does
// not answer in time is reported as absent: managed_identity_all_sources_unavailable.
//
// A host that was found is remembered for the client's lifetime. Nothing else is: a failed
// probe is repeated on the next call, so a slow start of IMDS is never cached as "none".
func (c *Client) Capabilities(ctx context.Context) (Capabilities, error) {
	if c.closed.Load() {
		return Capabilities{}, token.Errorf(token.CodeClosed, "managedidentity: the client is closed")
	}
	if caps := c.caps.Load(); caps != nil {
		return *caps, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	caps := Capabilities{Source: c.Source()}
	if s, ok := c.source.(*imds); ok {
		var v2err, v1err error
		caps.IMDSv2, v2err = c.probe(ctx, s, wire.PlatformMetadataPath, url.Values{wire.CredAPIVersionParam: {wire.CredAPIVersion}}, wire.IMDSv2ResourceIDParam)
		if !caps.IMDSv2 && ctx.Err() == nil {
			caps.IMDSv1, v1err = c.probe(ctx, s, wire.IMDSTokenPath, url.Values{"api-version": {wire.IMDSAPIVersion}}, wire.IMDSv1ResourceIDParam)
		} else {
			caps.IMDSv1 = caps.IMDSv2 // a v2 host serves v1 as well
		}
		if !caps.IMDSv1 && !caps.IMDSv2 {
			cause := v1err
			if cause == nil {
				cause = v2err
			}
			e := token.Errorf(token.CodeManagedIdentityAllUnavailable,
				"managedidentity: no managed-identity source: nothing in the environment, and no IMDS answered at %s", s.base)
			e.Err, e.Source = cause, string(SourceIMDS)
			return Capabilities{}, e
		}
		if caps.IMDSv2 {
			k, err := c.cfg.keys.Key(ctx, c.slot()) // the slot mint uses, so the key is reused
			if err != nil {
				return Capabilities{}, err
			}
			// With attestation, a key that cannot attest can never get a certificate.
			if _, ok := k.(attest.Attestable); ok || !c.cfg.attest {
				caps.BindingStrength = k.Strength()
			}
		}
	}
	c.caps.Store(&caps)
	return caps, nil
}

// probe sends an IMDS probe: a GET without "Metadata: true", which IMDS refuses with 400 when it
// serves path. Any other answer, or none, means absent; err says why when no answer came.
func (c *Client) probe(ctx context.Context, s *imds, path string, q url.Values, resourceIDName string) (bool, error) {
	if name, value := c.id.selector(resourceIDName); name != "" {
		q.Set(name, value)
	}
	endpoint := s.base + path + "?" + q.Encode()
	correlationID := wire.NewGUID()
	resp, err := c.wire.Do(ctx, c.policy(wire.IMDSProbe), func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("x-ms-client-request-id", correlationID)
		return req, nil
	})
	if err != nil {
		return false, err
	}
	c.log(ctx, "IMDS probe", slog.String("path", path), slog.Int("status", resp.Status))
	return resp.Status == http.StatusBadRequest, nil
}

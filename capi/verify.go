package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/mtlspop/mtlspop/core/mtls"
	"github.com/mtlspop/mtlspop/core/pop"
	"github.com/mtlspop/mtlspop/core/token"
)

// mtlspop_verify: the resource side, over core/pop.

const (
	defaultVerifyTimeout = 10 * time.Second
	maxLeewaySeconds     = 600
	// maxVerifiers bounds the cache of verifiers by configuration string.
	maxVerifiers = 64
)

type verifier struct {
	v       *pop.Verifier
	timeout time.Duration
}

var verifiers struct {
	sync.Mutex
	m map[string]*verifier
}

// verifierFor returns the cached verifier for a configuration string (which may point into C
// memory), building it on first use.
func verifierFor(config string) (*verifier, error) {
	verifiers.Lock()
	v := verifiers.m[config]
	verifiers.Unlock()
	if v != nil {
		return v, nil
	}
	v, err := newVerifier(config)
	if err != nil {
		return nil, err
	}
	verifiers.Lock()
	if verifiers.m == nil {
		verifiers.m = map[string]*verifier{}
	}
	if len(verifiers.m) >= maxVerifiers {
		for k := range verifiers.m { // evict one, arbitrarily
			delete(verifiers.m, k)
			break
		}
	}
	verifiers.m[strings.Clone(config)] = v
	verifiers.Unlock()
	return v, nil
}

func newVerifier(config string) (*verifier, error) {
	o, err := parseObject([]byte(config), "config")
	if err != nil {
		return nil, err
	}
	if err := o.allow("audiences", "issuer", "jwks_url", "jwks", "ca_file", "allow_unbound", "leeway_s", "timeout_ms"); err != nil {
		return nil, err
	}
	auds, ok, err := o.strings("audiences")
	if err != nil {
		return nil, err
	}
	if !ok || len(auds) == 0 {
		return nil, argErrorf("config.audiences is required and must not be empty")
	}
	v := &pop.Verifier{Audiences: auds}
	if v.Issuer, _, err = o.nonEmpty("issuer"); err != nil {
		return nil, err
	}
	if v.AllowUnbound, _, err = o.boolean("allow_unbound"); err != nil {
		return nil, err
	}
	leeway, _, err := o.integer("leeway_s", 0, maxLeewaySeconds)
	if err != nil {
		return nil, err
	}
	v.Leeway = time.Duration(leeway) * time.Second
	timeout, ok, err := o.millis("timeout_ms")
	if err != nil {
		return nil, err
	}
	if !ok {
		timeout = defaultVerifyTimeout
	}
	caFile, _, err := o.nonEmpty("ca_file")
	if err != nil {
		return nil, err
	}
	jwksURL, hasURL, err := o.nonEmpty("jwks_url")
	if err != nil {
		return nil, err
	}
	inline, hasInline, err := o.sub("jwks")
	if err != nil {
		return nil, err
	}
	// Both key sources are checked here, so that a bad one is MTLSPOP_E_INVALID_ARG now rather
	// than an error of every verification (a bad URL would surface as MTLSPOP_E_NETWORK).
	switch {
	case hasURL == hasInline:
		return nil, argErrorf("config: give exactly one of jwks_url and jwks")
	case hasInline:
		if v.Keys, err = inlineKeys(inline, o); err != nil {
			return nil, err
		}
	default:
		if err := pop.CheckJWKSURL(jwksURL); err != nil {
			msg := err.Error()
			if te := (*token.Error)(nil); errors.As(err, &te) {
				msg = te.Message // without the code: argErrorf gives it its own
			}
			return nil, argErrorf("config.jwks_url: %s (https, or http on a loopback host)", msg)
		}
		roots, err := mtls.Roots(liveEnv(nil), caFile)
		if err != nil {
			return nil, err
		}
		tr := &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
		}
		v.Keys = pop.NewJWKS(jwksURL, &http.Client{Transport: tr})
	}
	return &verifier{v: v, timeout: timeout}, nil
}

// inlineKeys parses the configuration's "jwks" (the object inline, o its parent) with the
// parser fetched key sets go through, so inline keys get exactly the same checks.
func inlineKeys(inline, o *object) (pop.KeySet, error) {
	entries, ok := inline.raw("keys")
	var list []json.RawMessage
	if !ok || kind(entries) != '[' || json.Unmarshal(entries, &list) != nil {
		return nil, argErrorf(`config.jwks must be a JSON Web Key Set: {"keys": [...]}`)
	}
	raw, _ := o.raw("jwks")
	keys, err := pop.ParseJWKS(raw)
	if err != nil {
		return nil, argErrorf(`config.jwks must be a JSON Web Key Set: {"keys": [...]}`)
	}
	// A fetched set may mix in keys of other kinds, which are skipped; a configured one whose
	// every entry is skipped can only be a mistake (every token would be refused). An empty
	// set stays allowed: it refuses every token on purpose.
	if len(keys) == 0 && len(list) > 0 {
		return nil, argErrorf("config.jwks has no usable key: each needs a kid and must be RSA (2048 to 8192 bits) or EC P-256, with \"use\" absent or \"sig\"")
	}
	return pop.StaticKeys(keys), nil
}

// verified is the outcome of a successful verification.
type verified struct {
	claims *pop.Claims
	json   []byte
}

// verify checks authorization against the client certificate (PEM, "" for none). Every
// argument may point into C memory.
func verify(config, authorization, certPEM string) (*verified, error) {
	v, err := verifierFor(config)
	if err != nil {
		return nil, err
	}
	cert, err := parseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	defer cancel()
	claims, err := v.v.Verify(ctx, strings.Clone(authorization), cert)
	if err != nil {
		return nil, asError(err, ctx)
	}
	js, err := json.Marshal(claims.Raw)
	if err != nil {
		return nil, token.Wrap(token.CodeInternal, err, "encoding claims")
	}
	return &verified{claims: claims, json: js}, nil
}

func parseCertificate(s string) (*x509.Certificate, error) {
	if s == "" {
		return nil, nil
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, argErrorf("client_cert_pem is not a PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, argErrorf("client_cert_pem: the certificate does not parse")
	}
	return c, nil
}

func (v *verified) toC() (C.uintptr_t, error) {
	c := v.claims
	b, err := newCBlock(unsafe.Sizeof(C.mtlspopc_claims{}), string(v.json), c.TokenType, c.Subject, c.ClientID, c.X5tS256)
	if err != nil {
		return 0, err
	}
	cc := (*C.mtlspopc_claims)(b.base)
	cc.json = b.str(string(v.json))
	cc.token_type = b.str(c.TokenType)
	cc.subject = b.str(c.Subject)
	cc.client_id = b.str(c.ClientID)
	cc.x5t = b.str(c.X5tS256)
	return b.handle(C.MTLSPOPC_T_CLAIMS)
}

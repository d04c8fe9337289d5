package main

/*
#include <stdlib.h>
#include "capi.h"
*/
import "C"

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/mtlspop/mtlspop/core/confidential"
	"github.com/mtlspop/mtlspop/core/keys"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/mtls"
	"github.com/mtlspop/mtlspop/core/token"
)

// client is what an mtlspop_client handle names.
//
// The cache-hit path of mtlspop_acquire_token is: look the resource up in names (one atomic
// load, one map lookup on a string that still points into C memory, no copy), AcquireToken on
// the core client (its cache hit), then, under mu, check that the entry's current C image is of
// the token returned and take a reference to it. No allocation and one cgo crossing in all.
type client struct {
	tc      backend         // the managed identity or confidential client
	ctx     context.Context // canceled by close: every call of this client derives from it
	cancel  context.CancelFunc
	closed  atomic.Bool
	defOpts *acquireOptions // for options_json == NULL
	timeout time.Duration   // the configuration's timeout_ms

	names atomic.Pointer[map[string]*resourceEntry]  // by resource; copy-on-write under mu
	opts  atomic.Pointer[map[string]*acquireOptions] // parsed options by JSON; copy-on-write under mu

	mu       sync.Mutex
	released bool // close has taken the images: keep no new ones
	inflight map[uint64]context.CancelFunc
}

// resourceEntry is an interned resource and the current C images of its tokens.
type resourceEntry struct {
	resource string
	scopes   []string // a confidential client's scopes: resource split on spaces, once
	images   [2]image // [0] Bearer, [1] mtls_pop; guarded by client.mu
	kept     bool     // the entry is in names; a transient one keeps no images
}

// image is a token's C copy and the access token it was made from. The string keeps the token's
// memory alive, so comparing it with a Result's AccessToken is, on a hit, a pointer comparison.
type image struct {
	tok   *C.mtlspopc_tok
	token string
}

// tokenRef is what an image's go_ref names: the Result, with its certificate and signer, for
// mtlspop_call.
type tokenRef struct{ result token.Result }

// Bounds of the per-client memo tables. Past them, the memo is simply not used: resources are
// then copied on each call, and tokens get a fresh image each time. Only strings up to
// maxMemoKey bytes are memoized: the tables are never evicted, and inputs may be up to
// MTLSPOP_MAX_INPUT (1 MiB) each, so without that bound a client fed varied large strings would
// keep up to maxInterned MiB per table for its lifetime. Real resources and options are far
// shorter; a longer one is parsed (or copied) per call, which costs little next to its size.
const (
	maxInterned = 4096
	maxMemoKey  = 256
)

var (
	liveClients atomic.Int64
	liveImages  atomic.Int64
	requestIDs  atomic.Uint64
)

// newClient creates a client from its configuration JSON (given is false for NULL).
func newClient(config string, given bool) (*client, error) {
	cfg, err := parseClientConfig(config, given)
	if err != nil {
		return nil, err
	}
	getenv := liveEnv(map[string]string{imdsEnv: cfg.imds})
	roots, err := mtls.Roots(getenv, cfg.caFile)
	if err != nil {
		return nil, err
	}
	var logger *slog.Logger
	if cfg.logLevel < levelOff {
		logger = slog.New(newLogHandler(cfg.logLevel))
	}
	var tc backend
	if cfg.app != nil {
		tc, err = newConfidential(cfg, cfg.app, getenv, roots, logger)
	} else {
		tc, err = newManagedIdentity(cfg, getenv, roots, logger)
	}
	if err != nil {
		return nil, err
	}
	cl := &client{
		tc:       tc,
		defOpts:  newAcquireOptions(cfg.pop, false, false, "", 0),
		timeout:  cfg.timeout,
		inflight: map[uint64]context.CancelFunc{},
	}
	cl.ctx, cl.cancel = context.WithCancel(context.Background())
	liveClients.Add(1)
	return cl, nil
}

func newManagedIdentity(cfg clientConfig, getenv func(string) string, roots *x509.CertPool, logger *slog.Logger) (backend, error) {
	opts := []managedidentity.Option{
		managedidentity.WithEnv(getenv),
		managedidentity.WithRootCAs(roots),
		managedidentity.WithTimeout(cfg.timeout),
	}
	var provider keys.Provider = keys.NewSoftware()
	if cfg.key.provider == providerTPM {
		// Opening the TPM is the one I/O of client creation: bound it as the client's calls are.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
		p, err := acquireTPM(ctx, cfg.key.device, cfg.key.stateDir)
		cancel()
		if err != nil {
			return nil, err
		}
		provider = p
	}
	opts = append(opts, managedidentity.WithKeyProvider(provider))
	if cfg.key.attest {
		opts = append(opts, managedidentity.WithAttestation())
	}
	if logger != nil {
		opts = append(opts, managedidentity.WithLogger(logger))
	}
	mi, err := managedidentity.New(cfg.id, opts...)
	if err != nil {
		if cfg.key.provider == providerTPM {
			releaseTPM(cfg.key.device, cfg.key.stateDir)
		}
		return nil, err
	}
	return miBackend{mi, cfg.key}, nil
}

func newConfidential(cfg clientConfig, a *appConfig, getenv func(string) string, roots *x509.CertPool, logger *slog.Logger) (backend, error) {
	var cred confidential.Credential
	var leg1 backend
	switch {
	case a.leg1 != nil:
		var err error
		if leg1, cred, err = newLeg1(cfg, a.leg1, roots, logger); err != nil {
			return nil, err
		}
	case a.certFile != "":
		pair, err := tls.LoadX509KeyPair(a.certFile, a.keyFile)
		if err != nil {
			return nil, argErrorf("config.certificate: %v", err)
		}
		var opts []confidential.CertificateOption
		if a.sendX5C {
			opts = append(opts, confidential.WithX5C())
		}
		cred = confidential.Certificate(&pair, opts...)
	default:
		cred = confidential.Secret(a.secret)
	}
	opts := []confidential.Option{confidential.WithEnv(getenv), confidential.WithRootCAs(roots), confidential.WithTimeout(cfg.timeout)}
	if a.region != "" {
		opts = append(opts, confidential.WithRegion(a.region))
	}
	if a.mtlsEndpoint != "" {
		opts = append(opts, confidential.WithMtlsEndpoint(a.mtlsEndpoint))
	}
	if logger != nil {
		opts = append(opts, confidential.WithLogger(logger))
	}
	cc, err := confidential.New(a.authority, a.clientID, cred, opts...)
	if err != nil {
		if leg1 != nil {
			_ = leg1.Close()
		}
		return nil, err
	}
	return ccBackend{cc, leg1}, nil
}

// newLeg1 builds leg 1 of a two-leg FIC and the assertion callback that asks it for tokens. The
// leg-1 client belongs to the leg-2 client and is closed with it.
func newLeg1(cfg clientConfig, l *leg1Config, roots *x509.CertPool, logger *slog.Logger) (backend, confidential.Credential, error) {
	if l.mi != nil {
		sub := cfg
		sub.id, sub.key, sub.imds = l.mi.id, l.mi.key, l.mi.imds
		mi, err := newManagedIdentity(sub, liveEnv(map[string]string{imdsEnv: l.mi.imds}), roots, logger)
		if err != nil {
			return nil, confidential.Credential{}, err
		}
		return mi, confidential.AssertionFunc(confidential.FromManagedIdentity(mi.(miBackend).Client, l.pop)), nil
	}
	cc, err := newConfidential(cfg, l.app, liveEnv(nil), roots, logger)
	if err != nil {
		return nil, confidential.Credential{}, err
	}
	return cc, confidential.AssertionFunc(confidential.FromConfidentialClient(cc.(ccBackend).Client, l.pop)), nil
}

// liveEnv reads variables through libc getenv, so that what a host set after loading the library
// counts; each variable is read once, then frozen, so a client sees one consistent environment.
// overrides take precedence where non-empty.
func liveEnv(overrides map[string]string) func(string) string {
	var mu sync.Mutex
	seen := map[string]string{}
	return func(name string) string {
		if v := overrides[name]; v != "" {
			return v
		}
		mu.Lock()
		defer mu.Unlock()
		if v, ok := seen[name]; ok {
			return v
		}
		cname := C.CString(name)
		var v string
		if p := C.mtlspopc_getenv(cname); p != nil {
			v = C.GoString(p)
		}
		C.free(unsafe.Pointer(cname))
		seen[name] = v
		return v
	}
}

// close cancels the client's calls in flight and releases what it holds. Idempotent.
func (cl *client) close() {
	if cl.closed.Swap(true) {
		return
	}
	cl.cancel()
	_ = cl.tc.Close() // releases its TPM provider, and its leg-1 client's
	var imgs []image
	cl.mu.Lock()
	cl.released = true
	if m := cl.names.Load(); m != nil {
		for _, e := range *m {
			for i, img := range e.images {
				if img.tok != nil {
					imgs = append(imgs, img)
					e.images[i] = image{}
				}
			}
		}
	}
	cl.mu.Unlock()
	for _, img := range imgs {
		releaseImage(img.tok)
	}
	liveClients.Add(-1)
}

// options returns the parsed options for a JSON string that may point into C memory.
func (cl *client) options(data string, given bool) (*acquireOptions, error) {
	if !given {
		return cl.defOpts, nil
	}
	if m := cl.opts.Load(); m != nil {
		if o, ok := (*m)[data]; ok {
			return o, nil
		}
	}
	o, err := parseAcquireOptions(data, cl.defOpts.pop)
	if err != nil {
		return nil, err
	}
	// Claims challenges differ from one response to the next (and always fetch anyway), so
	// memoizing them would only fill the table.
	if len(data) <= maxMemoKey && o.claims == "" {
		cl.mu.Lock()
		cl.opts.Store(withEntry(cl.opts.Load(), strings.Clone(data), o))
		cl.mu.Unlock()
	}
	return o, nil
}

// entry returns the interned entry of a resource; res itself may point into C memory.
func (cl *client) entry(res string) (*resourceEntry, error) {
	if m := cl.names.Load(); m != nil {
		if e, ok := (*m)[res]; ok {
			return e, nil
		}
	}
	if !utf8.ValidString(res) {
		return nil, argErrorf("resource is not valid UTF-8")
	}
	s := strings.Clone(res)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	m := cl.names.Load()
	if m != nil {
		if e, ok := (*m)[s]; ok { // added meanwhile
			return e, nil
		}
	}
	e := &resourceEntry{resource: s, scopes: strings.Fields(s)}
	if !cl.released && len(s) <= maxMemoKey && (m == nil || len(*m) < maxInterned) {
		e.kept = true
		cl.names.Store(withEntry(m, s, e))
	}
	return e, nil
}

// withEntry returns a copy of m with k set, or m unchanged when it is full.
func withEntry[V any](m *map[string]V, k string, v V) *map[string]V {
	var n map[string]V
	if m == nil {
		n = map[string]V{k: v}
	} else {
		if len(*m) >= maxInterned {
			return m
		}
		n = make(map[string]V, len(*m)+1)
		for key, val := range *m {
			n[key] = val
		}
		n[k] = v
	}
	return &n
}

// acquire gets a token and returns its image with one reference for the caller, and the
// Result's source. res may point into C memory.
func (cl *client) acquire(ctx context.Context, res string, o *acquireOptions) (*C.mtlspopc_tok, token.TokenSource, error) {
	e, err := cl.entry(res)
	if err != nil {
		return nil, 0, err
	}
	r, err := cl.tc.acquire(ctx, e, o)
	if err != nil {
		return nil, 0, err
	}
	tok, err := cl.image(e, o.pop, r)
	return tok, r.Source, err
}

// image returns r's C image with a reference for the caller: the entry's current one when it is
// r's, else a new one that becomes current.
func (cl *client) image(e *resourceEntry, pop bool, r token.Result) (*C.mtlspopc_tok, error) {
	i := 0
	if pop {
		i = 1
	}
	cl.mu.Lock()
	if img := e.images[i]; img.tok != nil && img.token == r.AccessToken {
		atomic.AddInt64(refs(img.tok), 1)
		cl.mu.Unlock()
		return img.tok, nil
	}
	cl.mu.Unlock()

	tok, err := newImage(r)
	if err != nil {
		return nil, err
	}
	var old image
	cl.mu.Lock()
	if e.kept && !cl.released {
		atomic.AddInt64(refs(tok), 1) // the entry's reference
		old = e.images[i]
		e.images[i] = image{tok: tok, token: r.AccessToken}
	}
	cl.mu.Unlock()
	if old.tok != nil {
		releaseImage(old.tok)
	}
	return tok, nil
}

func refs(t *C.mtlspopc_tok) *int64 { return (*int64)(unsafe.Pointer(&t.refs)) }

// newImage copies r into C memory, with one reference.
func newImage(r token.Result) (*C.mtlspopc_tok, error) {
	var certPEM, x5t string
	if c := r.BindingCertificate; c != nil {
		certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		x5t = r.Thumbprint()
	}
	b, err := newCBlock(unsafe.Sizeof(C.mtlspopc_tok{}), r.AccessToken, r.TokenType, certPEM, x5t)
	if err != nil {
		return nil, err
	}
	t := (*C.mtlspopc_tok)(b.base)
	t.refs = 1
	t.expires_on = C.int64_t(r.ExpiresOn.Unix())
	t.refresh_on = 0
	if !r.RefreshOn.IsZero() {
		t.refresh_on = C.int64_t(r.RefreshOn.Unix())
	}
	t.access_token = b.str(r.AccessToken)
	t.token_type = b.str(r.TokenType)
	t.cert_pem, t.x5t = nil, nil
	if certPEM != "" {
		t.cert_pem = b.str(certPEM)
		t.x5t = b.str(x5t)
	}
	t.go_ref = C.uintptr_t(cgo.NewHandle(&tokenRef{result: r}))
	liveImages.Add(1)
	return t, nil
}

// releaseImage drops a reference the Go side holds; the last one frees the image.
func releaseImage(t *C.mtlspopc_tok) {
	if atomic.AddInt64(refs(t), -1) == 0 {
		disposeRef(uintptr(t.go_ref))
		C.mtlspopc_free(unsafe.Pointer(t))
	}
}

func disposeRef(ref uintptr) {
	cgo.Handle(ref).Delete()
	liveImages.Add(-1)
}

// resultOf returns the Result an image's go_ref names, or false for anything else.
func resultOf(ref uintptr) (r token.Result, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	t, ok := cgo.Handle(ref).Value().(*tokenRef)
	if !ok {
		return token.Result{}, false
	}
	return t.result, true
}

// callContext is the context of one call: the client's, bounded by timeout if non-zero.
func (cl *client) callContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return cl.ctx, func() {}
	}
	return context.WithTimeout(cl.ctx, timeout)
}

// startAsync registers an async acquisition and starts it; done is called exactly once.
func (cl *client) startAsync(res string, o *acquireOptions, done C.mtlspop_done_fn, user C.uintptr_t) (uint64, error) {
	e, err := cl.entry(res)
	if err != nil {
		return 0, err
	}
	id := requestIDs.Add(1)
	ctx, cancel := context.WithCancel(cl.ctx)
	cl.mu.Lock()
	if cl.closed.Load() {
		cl.mu.Unlock()
		cancel()
		return 0, token.Errorf(token.CodeClosed, "the client is being freed")
	}
	cl.inflight[id] = cancel
	cl.mu.Unlock()
	go cl.runAsync(ctx, cancel, id, e.resource, o, done, user)
	return id, nil
}

func (cl *client) runAsync(ctx context.Context, cancel context.CancelFunc, id uint64, resource string, o *acquireOptions, done C.mtlspop_done_fn, user C.uintptr_t) {
	var (
		tok *C.mtlspopc_tok
		src token.TokenSource
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				tok, err = nil, panicError(r)
			}
		}()
		actx, acancel := ctx, context.CancelFunc(func() {})
		if o.timeout > 0 {
			actx, acancel = context.WithTimeout(ctx, o.timeout)
		}
		defer acancel()
		tok, src, err = cl.acquire(actx, resource, o)
		if err != nil {
			err = asError(err, actx)
		}
	}()
	cl.mu.Lock()
	delete(cl.inflight, id)
	cl.mu.Unlock()
	cancel()
	status := C.int(statusOK)
	var cerr C.uintptr_t
	if err != nil {
		te := asError(err, nil)
		if status, cerr = C.int(statusOf(te.Code)), newCError(te); cerr == 0 {
			status = statusNoMem
		}
	}
	C.mtlspopc_complete(done, user, C.uint64_t(id), status, tok, C.int(src), cerr)
}

// cancelRequest cancels an async request; false when none with that id is in flight.
func (cl *client) cancelRequest(id uint64) bool {
	cl.mu.Lock()
	cancel, ok := cl.inflight[id]
	cl.mu.Unlock()
	if ok {
		cancel()
	}
	return ok
}

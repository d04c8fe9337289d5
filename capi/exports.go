// Command capi is libmtlspop's C ABI, built with -buildmode=c-shared into libmtlspop.so.
//
// The public names (mtlspop_*) and their contract are in include/mtlspop.h; they are defined in
// mtlspop.c, which checks what needs no Go (fork, NULLs, lengths, the handle table) and calls the
// exports below. The exports are private (the linker version script keeps only mtlspop_*): their
// signatures use C types only, every one recovers panics, and none keeps a C pointer past the
// call except the async callback and its user pointer.
package main

/*
#include "capi.h"
*/
import "C"

import (
	"runtime/cgo"

	"github.com/mtlspop/mtlspop/core/token"
)

func main() {}

// clientOf returns the client a handle names, or nil for a freed, unknown or foreign handle.
func clientOf(h C.uintptr_t) (cl *client) {
	if h == 0 {
		return nil
	}
	defer func() {
		if recover() != nil { // cgo.Handle panics on an invalid handle
			cl = nil
		}
	}()
	cl, _ = cgo.Handle(h).Value().(*client)
	return cl
}

var errBadClient = token.Errorf(token.CodeInvalidArgument, "client is freed or not a client")

//export mtlspopgo_client_new
func mtlspopgo_client_new(config *C.char, configLen C.size_t, out *C.uintptr_t, errOut *C.uintptr_t) (rc C.int) {
	defer guard(&rc, errOut)
	cl, err := newClient(C.GoStringN(config, C.int(configLen)), config != nil)
	if err != nil {
		return report(err, errOut)
	}
	*out = C.uintptr_t(cgo.NewHandle(cl))
	return statusOK
}

//export mtlspopgo_client_free
func mtlspopgo_client_free(h C.uintptr_t) (rc C.int) {
	defer guard(&rc, nil)
	cl := clientOf(h)
	if cl == nil {
		return statusInvalidArg
	}
	deleted := func() (ok bool) {
		defer func() {
			if recover() != nil { // a racing free won
				ok = false
			}
		}()
		cgo.Handle(h).Delete()
		return true
	}()
	if !deleted {
		return statusInvalidArg
	}
	cl.close()
	return statusOK
}

//export mtlspopgo_acquire
func mtlspopgo_acquire(h C.uintptr_t, res *C.char, resLen C.size_t, opts *C.char, optsLen C.size_t,
	tokOut **C.mtlspopc_tok, srcOut *C.int, errOut *C.uintptr_t) (rc C.int) {
	defer guard(&rc, errOut)
	cl := clientOf(h)
	if cl == nil {
		return report(errBadClient, errOut)
	}
	o, err := cl.options(cview(opts, optsLen), opts != nil)
	if err != nil {
		return report(err, errOut)
	}
	ctx, cancel := cl.callContext(o.timeout)
	defer cancel()
	tok, src, err := cl.acquire(ctx, cview(res, resLen), o)
	if err != nil {
		return report(asError(err, ctx), errOut)
	}
	*tokOut, *srcOut = tok, C.int(src)
	return statusOK
}

//export mtlspopgo_acquire_async
func mtlspopgo_acquire_async(h C.uintptr_t, res *C.char, resLen C.size_t, opts *C.char, optsLen C.size_t,
	done C.mtlspop_done_fn, user C.uintptr_t, idOut *C.uint64_t, errOut *C.uintptr_t) (rc C.int) {
	defer guard(&rc, errOut)
	cl := clientOf(h)
	if cl == nil {
		return report(errBadClient, errOut)
	}
	o, err := cl.options(cview(opts, optsLen), opts != nil)
	if err != nil {
		return report(err, errOut)
	}
	id, err := cl.startAsync(cview(res, resLen), o, done, user)
	if err != nil {
		return report(err, errOut)
	}
	*idOut = C.uint64_t(id)
	return statusOK
}

//export mtlspopgo_cancel
func mtlspopgo_cancel(h C.uintptr_t, id C.uint64_t) (rc C.int) {
	defer guard(&rc, nil)
	cl := clientOf(h)
	if cl == nil {
		return statusInvalidArg
	}
	if !cl.cancelRequest(uint64(id)) {
		return statusNotFound
	}
	return statusOK
}

//export mtlspopgo_tok_dispose
func mtlspopgo_tok_dispose(ref C.uintptr_t) {
	defer func() { _ = recover() }()
	disposeRef(uintptr(ref))
}

//export mtlspopgo_call
func mtlspopgo_call(h C.uintptr_t, ref C.uintptr_t, req *C.char, reqLen C.size_t, out *C.uintptr_t, errOut *C.uintptr_t) (rc C.int) {
	defer guard(&rc, errOut)
	cl := clientOf(h)
	if cl == nil {
		return report(errBadClient, errOut)
	}
	r, ok := resultOf(uintptr(ref))
	if !ok {
		return report(argErrorf("token is freed or not a token"), errOut)
	}
	resp, err := cl.call(r, cview(req, reqLen))
	if err != nil {
		return report(err, errOut)
	}
	cr, err := resp.toC()
	if err != nil {
		return report(err, errOut)
	}
	*out = cr
	return statusOK
}

//export mtlspopgo_verify
func mtlspopgo_verify(config *C.char, configLen C.size_t, authz *C.char, authzLen C.size_t, certPEM *C.char, certLen C.size_t,
	out *C.uintptr_t, errOut *C.uintptr_t) (rc C.int) {
	defer guard(&rc, errOut)
	v, err := verify(cview(config, configLen), cview(authz, authzLen), cview(certPEM, certLen))
	if err != nil {
		return report(err, errOut)
	}
	c, err := v.toC()
	if err != nil {
		return report(err, errOut)
	}
	*out = c
	return statusOK
}

//export mtlspopgo_set_log_callback
func mtlspopgo_set_log_callback(fn C.mtlspop_log_fn, user C.uintptr_t, minLevel C.int, wait C.int) (rc C.int) {
	defer guard(&rc, nil)
	setLogCallback(fn, user, int(minLevel), wait != 0)
	return statusOK
}

//export mtlspopgo_live_clients
func mtlspopgo_live_clients() C.int64_t {
	return C.int64_t(liveClients.Load())
}

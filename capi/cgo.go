package main

/*
#cgo CFLAGS: -I${SRCDIR} -I${SRCDIR}/../include -O2 -Wall -Wextra -Wno-unused-parameter
#include "capi.h"
*/
import "C"

import (
	"unsafe"

	"github.com/mtlspop/mtlspop/core/token"
)

// Compile-time checks that status.go's constants are the header's: each index is 0 only when
// the two agree, and a non-zero constant index into a one-element array does not compile.
var _ = [1]struct{}{}[statusOK-C.MTLSPOP_OK]
var _ = [1]struct{}{}[statusInvalidArg-C.MTLSPOP_E_INVALID_ARG]
var _ = [1]struct{}{}[statusForked-C.MTLSPOP_E_FORKED]
var _ = [1]struct{}{}[statusTimeout-C.MTLSPOP_E_TIMEOUT]
var _ = [1]struct{}{}[statusCanceled-C.MTLSPOP_E_CANCELED]
var _ = [1]struct{}{}[statusClosed-C.MTLSPOP_E_CLOSED]
var _ = [1]struct{}{}[statusNetwork-C.MTLSPOP_E_NETWORK]
var _ = [1]struct{}{}[statusIdentity-C.MTLSPOP_E_IDENTITY]
var _ = [1]struct{}{}[statusProtocol-C.MTLSPOP_E_PROTOCOL]
var _ = [1]struct{}{}[statusUnsupported-C.MTLSPOP_E_UNSUPPORTED]
var _ = [1]struct{}{}[statusInvalidToken-C.MTLSPOP_E_INVALID_TOKEN]
var _ = [1]struct{}{}[statusNotFound-C.MTLSPOP_E_NOT_FOUND]
var _ = [1]struct{}{}[statusNoMem-C.MTLSPOP_E_NOMEM]
var _ = [1]struct{}{}[statusInternal-C.MTLSPOP_E_INTERNAL]
var _ = [1]struct{}{}[maxInput-C.MTLSPOP_MAX_INPUT]
var _ = [1]struct{}{}[maxResponseBody-C.MTLSPOP_MAX_RESPONSE_BODY]

// errNoMem reports a failed C allocation.
var errNoMem = token.Errorf(token.CodeInternal, "out of memory")

// cblock builds one C object block: a struct at the start of memory from mtlspopc_malloc,
// followed by the strings its pointers point to. Go writes the whole block, so the C side never
// reads Go memory.
type cblock struct {
	base      unsafe.Pointer
	off, size uintptr
}

// newCBlock allocates fixed bytes for the struct (and any pointer arrays) plus room for each
// string, NUL-terminated.
func newCBlock(fixed uintptr, strs ...string) (*cblock, error) {
	size := fixed
	for _, s := range strs {
		size += uintptr(len(s)) + 1
	}
	p := C.mtlspopc_malloc(C.size_t(size))
	if p == nil {
		return nil, errNoMem
	}
	return &cblock{base: p, off: fixed, size: size}, nil
}

// str copies s into the block, NUL-terminated, and returns the copy.
func (b *cblock) str(s string) *C.char {
	return (*C.char)(b.put(unsafe.Slice(unsafe.StringData(s), len(s))))
}

func (b *cblock) put(p []byte) unsafe.Pointer {
	n := uintptr(len(p)) + 1
	if b.off+n > b.size {
		panic("capi: C block overflow") // a sizing bug; guard turns it into internal_error
	}
	dst := unsafe.Slice((*byte)(unsafe.Add(b.base, b.off)), n)
	copy(dst, p)
	dst[n-1] = 0
	b.off += n
	return unsafe.Pointer(&dst[0])
}

// handle makes the block an object of the given type; the handle owns it from then on.
func (b *cblock) handle(typ C.uint32_t) (C.uintptr_t, error) {
	h := C.mtlspopc_handle_new(typ, b.base)
	if h == 0 {
		C.mtlspopc_free(b.base)
		return 0, errNoMem
	}
	return h, nil
}

// cview views C memory as a Go string for the duration of the call that received it. The result
// must be copied before it is kept.
func cview(p *C.char, n C.size_t) string {
	if p == nil || n == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(p)), int(n))
}

// newCError makes an mtlspop_error; 0 when memory is exhausted. Handles stay integers on the Go
// side: as pointers they could look like Go heap addresses to the garbage collector.
func newCError(e *token.Error) C.uintptr_t {
	msg := e.Error()
	b, err := newCBlock(unsafe.Sizeof(C.mtlspopc_err{}), string(e.Code), msg, e.CorrelationID)
	if err != nil {
		return 0
	}
	ce := (*C.mtlspopc_err)(b.base)
	ce.http_status = C.int(e.Status)
	ce.code = b.str(string(e.Code))
	ce.message = b.str(msg)
	ce.correlation_id = b.str(e.CorrelationID)
	h, _ := b.handle(C.MTLSPOPC_T_ERROR)
	return h
}

// report sets *errOut (when the caller asked for it) and returns err's status; when memory is
// exhausted, the status says so and there is no error object.
func report(err error, errOut *C.uintptr_t) C.int {
	te := asError(err, nil)
	if te == errNoMem {
		return statusNoMem
	}
	if errOut != nil {
		if *errOut = newCError(te); *errOut == 0 {
			return statusNoMem
		}
	}
	return C.int(statusOf(te.Code))
}

// guard is deferred by every export: a panic becomes MTLSPOP_E_INTERNAL instead of killing the
// host process.
func guard(rc *C.int, errOut *C.uintptr_t) {
	if r := recover(); r != nil {
		*rc = report(panicError(r), errOut)
	}
}

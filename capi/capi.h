/*
 * capi.h — private declarations shared by the thin C layer (mtlspop.c) and the Go exports.
 *
 * Nothing here is API: the public interface is include/mtlspop.h. The Go exports carry the
 * prefix mtlspopgo_ and the C helpers mtlspopc_; the linker version script hides both.
 *
 * This file is included by cgo preambles of files with //export, so it may hold declarations
 * only, no definitions.
 */
#ifndef MTLSPOP_CAPI_H
#define MTLSPOP_CAPI_H

#include <stddef.h>
#include <stdint.h>

#include "mtlspop.h"

/* Object types in the handle table. */
enum {
    MTLSPOPC_T_TOKEN = 1,
    MTLSPOPC_T_ERROR = 2,
    MTLSPOPC_T_RESPONSE = 3,
    MTLSPOPC_T_CLAIMS = 4
};

/* A token image: the C copy of one token.Result, shared by every mtlspop_token handle that
 * returns that token. Immutable once built, except refs. One reference belongs to the Go side for
 * as long as the image is the client's current one for its resource; one to each handle. The
 * holder of the last reference frees it (mtlspopc_tok_release). */
typedef struct mtlspopc_tok {
    int64_t refs;       /* atomic */
    uintptr_t go_ref;   /* runtime/cgo.Handle of the Go tokenRef (the Result, for mtlspop_call) */
    int64_t expires_on; /* Unix seconds */
    int64_t refresh_on; /* Unix seconds, 0 when none */
    const char *access_token;
    const char *token_type;
    const char *cert_pem; /* NULL for Bearer */
    const char *x5t;      /* NULL for Bearer */
} mtlspopc_tok;

/* The other objects' blocks. Each is one malloc: the struct, then what its pointers point to. */
typedef struct mtlspopc_err {
    int http_status;
    const char *code;
    const char *message;
    const char *correlation_id; /* "" when none */
} mtlspopc_err;

typedef struct mtlspopc_resp {
    int status;
    size_t body_len;
    const uint8_t *body; /* NUL-terminated beyond body_len */
    const char *headers_json;
    size_t header_count;
    const char **names; /* header_count names and values */
    const char **values;
} mtlspopc_resp;

typedef struct mtlspopc_claims {
    const char *json;
    const char *token_type;
    const char *subject;
    const char *client_id;
    const char *x5t;
} mtlspopc_claims;

/* Go builds blocks itself, in memory from mtlspopc_malloc, so that C code never reads Go memory
 * (valgrind cannot tell live Go memory from dead, see ci/capi.sh). */
void *mtlspopc_malloc(size_t size); /* NULL when exhausted (cgo's C.malloc would abort) */
void mtlspopc_free(void *p);
/* Makes a handle of type MTLSPOPC_T_ERROR, _RESPONSE or _CLAIMS that owns block; 0 when the
 * table is exhausted (the caller still owns block then). */
uintptr_t mtlspopc_handle_new(uint32_t type, void *block);

/* Drops one reference to a token image; frees it (and its Go tokenRef) on the last. */
void mtlspopc_tok_release(mtlspopc_tok *tok);

/* Delivers an async completion: makes the token handle (taking over the caller's reference on
 * tok) and calls done. The host's user pointers travel through Go as integers: Go's garbage
 * collector must never see an arbitrary value in a pointer-typed variable. */
void mtlspopc_complete(mtlspop_done_fn done, uintptr_t user, uint64_t request_id, int status,
                       mtlspopc_tok *tok, int source, uintptr_t err);

/* Calls a log callback, marking the thread as inside it. */
void mtlspopc_call_log(mtlspop_log_fn fn, uintptr_t user, int level, const char *message,
                       const char *fields_json);

/* libc getenv, for the live environment at client creation. */
const char *mtlspopc_getenv(const char *name);

/* Live objects in the handle table. */
int64_t mtlspopc_live_slots(void);

#endif /* MTLSPOP_CAPI_H */

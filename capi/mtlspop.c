/*
 * mtlspop.c — the thin C layer of libmtlspop.
 *
 * It owns the public mtlspop_* names (the Go exports behind them are private, mtlspopgo_*), and
 * does here what must not or need not enter Go:
 *
 *  - the fork guard: a pthread_atfork child handler sets a flag, and every entry point checks it
 *    first, because a forked child that enters the Go runtime hangs;
 *  - argument checks that need no Go: NULL pointers, string length limits;
 *  - the handle table for tokens, responses, claims and errors, and their accessors, so reading a
 *    token costs a memory load instead of a cgo call (~50 ns);
 *  - getenv for the live environment, and the trampolines through which Go calls C callbacks.
 *
 * Handle table. A handle is (generation << 32 | index + 1), never a pointer: slots live in chunks
 * that are never freed, each with a generation that is odd while the slot is live and is bumped
 * on free. A freed, stale, forged or wrong-type handle therefore fails a comparison instead of
 * touching freed memory, and a handle is never mistaken for a newer object in the same slot.
 * Free slots form a lock-free stack whose head carries an ABA tag. Clients are runtime/cgo.Handle
 * values instead (checked on the Go side), since every client call enters Go anyway.
 */
/* No clones (foo.part.0, foo.cold, ...): symbol names with a dot are what the valgrind
 * suppressions of ci/capi.sh treat as Go code, and ci/capi.sh checks that none come from here.
 * "no-ipa-cp" too, not only "no-ipa-cp-clone": when every call passes the same constant (as
 * with err_new's code), IPA-CP specializes the function as name.constprop.0 even without
 * cloning. */
#pragma GCC optimize("no-ipa-cp", "no-ipa-cp-clone", "no-ipa-sra", "no-partial-inlining", \
                     "no-reorder-blocks-and-partition")

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "_cgo_export.h"
#include "capi.h"

_Static_assert(sizeof(void *) == 8, "libmtlspop handles need 64-bit pointers");

/* ---------------------------------------------------------------------------------------------
 * fork guard
 */

static int forked; /* set in the child of fork(); read with relaxed atomics */

static void on_fork_child(void) { __atomic_store_n(&forked, 1, __ATOMIC_RELAXED); }

__attribute__((constructor)) static void mtlspop_init(void) {
    pthread_atfork(NULL, NULL, on_fork_child);
}

#define FORKED() __builtin_expect(__atomic_load_n(&forked, __ATOMIC_RELAXED), 0)

/* ---------------------------------------------------------------------------------------------
 * handle table
 */

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 4096u /* 16M live objects */

typedef struct slot {
    uint32_t gen;  /* atomic: odd while live */
    uint32_t type; /* MTLSPOPC_T_* while live */
    int32_t aux;   /* per-handle datum: a token's source */
    uint32_t next; /* atomic: free-stack link, index + 1, 0 = none */
    void *data;
} slot;

static slot *chunks[MAX_CHUNKS]; /* atomic; allocated on demand, never freed */
static uint32_t slots_used;      /* atomic: indexes handed out so far */
static uint64_t free_head;       /* atomic: (ABA tag << 32) | (index + 1) */
static int64_t live_slots;       /* atomic */

static slot *slot_at(uint32_t idx) {
    slot *c = __atomic_load_n(&chunks[idx >> CHUNK_BITS], __ATOMIC_ACQUIRE);
    return c ? &c[idx & (CHUNK_SIZE - 1)] : NULL;
}

static slot *slot_grow(uint32_t *idx_out) {
    uint32_t idx = __atomic_fetch_add(&slots_used, 1, __ATOMIC_RELAXED);
    if (idx >= CHUNK_SIZE * MAX_CHUNKS) {
        __atomic_fetch_sub(&slots_used, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    slot **cp = &chunks[idx >> CHUNK_BITS];
    if (!__atomic_load_n(cp, __ATOMIC_ACQUIRE)) {
        slot *fresh = calloc(CHUNK_SIZE, sizeof(slot));
        if (!fresh) {
            return NULL; /* the index is lost; harmless */
        }
        slot *expected = NULL;
        if (!__atomic_compare_exchange_n(cp, &expected, fresh, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            free(fresh); /* another thread installed the chunk */
        }
    }
    *idx_out = idx;
    return slot_at(idx);
}

static uintptr_t slot_alloc(uint32_t type, int32_t aux, void *data) {
    uint32_t idx;
    slot *s = NULL;
    uint64_t head = __atomic_load_n(&free_head, __ATOMIC_ACQUIRE);
    while ((uint32_t)head != 0) {
        uint32_t top = (uint32_t)head - 1;
        slot *t = slot_at(top);
        uint32_t next = __atomic_load_n(&t->next, __ATOMIC_RELAXED);
        uint64_t want = (((head >> 32) + 1) << 32) | next;
        if (__atomic_compare_exchange_n(&free_head, &head, want, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            idx = top;
            s = t;
            break;
        }
    }
    if (!s && !(s = slot_grow(&idx))) {
        return 0;
    }
    s->type = type;
    s->aux = aux;
    s->data = data;
    uint32_t gen = __atomic_load_n(&s->gen, __ATOMIC_RELAXED) + 1; /* even -> odd */
    __atomic_store_n(&s->gen, gen, __ATOMIC_RELEASE);
    __atomic_fetch_add(&live_slots, 1, __ATOMIC_RELAXED);
    return ((uintptr_t)gen << 32) | (uintptr_t)(idx + 1);
}

/* slot_get returns the live slot a handle names, or NULL. */
static slot *slot_get(const void *h, uint32_t type) {
    uint64_t v = (uint64_t)(uintptr_t)h;
    uint32_t idx1 = (uint32_t)v, gen = (uint32_t)(v >> 32);
    if (idx1 == 0 || !(gen & 1) || idx1 - 1 >= __atomic_load_n(&slots_used, __ATOMIC_ACQUIRE)) {
        return NULL;
    }
    slot *s = slot_at(idx1 - 1);
    if (!s || __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != gen || s->type != type ||
        !__atomic_load_n(&s->data, __ATOMIC_RELAXED)) {
        return NULL;
    }
    return s;
}

/* slot_free ends a handle's life and returns its data, or NULL when the handle is not live (only
 * one of two racing frees wins). */
static void *slot_free(const void *h, uint32_t type) {
    slot *s = slot_get(h, type);
    if (!s) {
        return NULL;
    }
    uint32_t gen = (uint32_t)((uint64_t)(uintptr_t)h >> 32);
    void *data = s->data;
    if (!__atomic_compare_exchange_n(&s->gen, &gen, gen + 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED)) {
        return NULL;
    }
    /* Forget the block, so that a leaked one is not kept reachable by the table (and valgrind
     * reports it). */
    __atomic_store_n(&s->data, NULL, __ATOMIC_RELAXED);
    uint32_t idx1 = (uint32_t)(uintptr_t)h;
    uint64_t head = __atomic_load_n(&free_head, __ATOMIC_RELAXED);
    uint64_t want;
    do {
        __atomic_store_n(&s->next, (uint32_t)head, __ATOMIC_RELAXED);
        want = (((head >> 32) + 1) << 32) | idx1;
    } while (!__atomic_compare_exchange_n(&free_head, &head, want, 1, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
    __atomic_fetch_sub(&live_slots, 1, __ATOMIC_RELAXED);
    return data;
}

int64_t mtlspopc_live_slots(void) { return __atomic_load_n(&live_slots, __ATOMIC_RELAXED); }

/* ---------------------------------------------------------------------------------------------
 * objects
 */

void *mtlspopc_malloc(size_t size) { return malloc(size); }

void mtlspopc_free(void *p) { free(p); }

uintptr_t mtlspopc_handle_new(uint32_t type, void *block) { return slot_alloc(type, 0, block); }

void mtlspopc_tok_release(mtlspopc_tok *tok) {
    if (tok && __atomic_sub_fetch(&tok->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        mtlspopgo_tok_dispose(tok->go_ref);
        free(tok);
    }
}

/* err_new makes an error object from C strings: the failures this file detects itself. */
static mtlspop_error *err_new(const char *code, const char *message) {
    size_t cl = strlen(code), ml = strlen(message);
    mtlspopc_err *e = malloc(sizeof *e + cl + ml + 3);
    if (!e) {
        return NULL;
    }
    char *d = (char *)(e + 1);
    e->http_status = 0;
    e->code = memcpy(d, code, cl + 1);
    e->message = memcpy(d + cl + 1, message, ml + 1);
    e->correlation_id = d + cl + ml + 2;
    d[cl + ml + 2] = '\0';
    uintptr_t h = slot_alloc(MTLSPOPC_T_ERROR, 0, e);
    if (!h) {
        free(e);
        return NULL;
    }
    return (mtlspop_error *)h;
}

static int fail(mtlspop_error **err, int status, const char *code, const char *message) {
    if (err && !(*err = err_new(code, message))) {
        return MTLSPOP_E_NOMEM;
    }
    return status;
}

#define FAIL_ARG(err, msg) \
    fail(err, MTLSPOP_E_INVALID_ARG, "invalid_argument", "mtlspop: invalid_argument: " msg)
#define FAIL_NOMEM(err) (MTLSPOP_E_NOMEM)

void mtlspopc_complete(mtlspop_done_fn done, uintptr_t user, uint64_t request_id, int status,
                       mtlspopc_tok *tok, int source, uintptr_t err) {
    mtlspop_token *t = NULL;
    if (status == MTLSPOP_OK) {
        t = (mtlspop_token *)slot_alloc(MTLSPOPC_T_TOKEN, source, tok);
        if (!t) {
            mtlspopc_tok_release(tok);
            status = MTLSPOP_E_NOMEM;
        }
    }
    done((void *)user, request_id, status, t, (mtlspop_error *)err);
}

static __thread int in_log_callback;

void mtlspopc_call_log(mtlspop_log_fn fn, uintptr_t user, int level, const char *message,
                       const char *fields_json) {
    in_log_callback = 1;
    fn((void *)user, level, message, fields_json);
    in_log_callback = 0;
}

const char *mtlspopc_getenv(const char *name) { return getenv(name); }

/* ---------------------------------------------------------------------------------------------
 * versions and status text
 */

const char *mtlspop_version(void) { return MTLSPOP_VERSION; }
int mtlspop_version_number(void) { return MTLSPOP_VERSION_NUMBER; }
int mtlspop_abi_version(void) { return MTLSPOP_ABI_VERSION; }

const char *mtlspop_strerror(int status) {
    switch (status) {
    case MTLSPOP_OK: return "ok";
    case MTLSPOP_E_INVALID_ARG: return "invalid argument";
    case MTLSPOP_E_FORKED: return "called in a forked child process";
    case MTLSPOP_E_TIMEOUT: return "timed out";
    case MTLSPOP_E_CANCELED: return "canceled";
    case MTLSPOP_E_CLOSED: return "client closed";
    case MTLSPOP_E_NETWORK: return "network or TLS failure";
    case MTLSPOP_E_IDENTITY: return "the identity platform refused or failed the request";
    case MTLSPOP_E_PROTOCOL: return "unusable answer from a server";
    case MTLSPOP_E_UNSUPPORTED: return "not supported in this environment";
    case MTLSPOP_E_INVALID_TOKEN: return "invalid token";
    case MTLSPOP_E_NOT_FOUND: return "no such request in flight";
    case MTLSPOP_E_NOMEM: return "out of memory";
    case MTLSPOP_E_INTERNAL: return "internal error in libmtlspop";
    }
    return "unknown status";
}

/* ---------------------------------------------------------------------------------------------
 * argument helpers
 */

static void clear_err(mtlspop_error **err) {
    if (err) {
        *err = NULL;
    }
}

/* input checks an optional string argument's length; it returns MTLSPOP_OK and *len, or fails. */
static int input(const char *s, size_t *len, mtlspop_error **err) {
    *len = 0;
    if (s) {
        *len = strnlen(s, (size_t)MTLSPOP_MAX_INPUT + 1);
        if (*len > MTLSPOP_MAX_INPUT) {
            return FAIL_ARG(err, "a string argument exceeds MTLSPOP_MAX_INPUT (1048576 bytes)");
        }
    }
    return MTLSPOP_OK;
}

/* Go hands handles back as integers (see cgo.go); these carry them into the typed out-params. */
#define GO_ERR(err) ((err) ? &go_err : NULL)
#define SET_ERR(err) \
    do {                                     \
        if (err) {                           \
            *(err) = (mtlspop_error *)go_err; \
        }                                    \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * errors
 */

static const mtlspopc_err *err_get(const mtlspop_error *e) {
    slot *s = FORKED() ? NULL : slot_get(e, MTLSPOPC_T_ERROR);
    return s ? s->data : NULL;
}

const char *mtlspop_error_code(const mtlspop_error *err) {
    const mtlspopc_err *e = err_get(err);
    return e ? e->code : NULL;
}

const char *mtlspop_error_message(const mtlspop_error *err) {
    const mtlspopc_err *e = err_get(err);
    return e ? e->message : NULL;
}

int mtlspop_error_http_status(const mtlspop_error *err) {
    const mtlspopc_err *e = err_get(err);
    return e ? e->http_status : -1;
}

const char *mtlspop_error_correlation_id(const mtlspop_error *err) {
    const mtlspopc_err *e = err_get(err);
    return e ? e->correlation_id : NULL;
}

int mtlspop_error_free(mtlspop_error *err) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!err) {
        return MTLSPOP_OK;
    }
    void *e = slot_free(err, MTLSPOPC_T_ERROR);
    if (!e) {
        return MTLSPOP_E_INVALID_ARG;
    }
    free(e);
    return MTLSPOP_OK;
}

/* ---------------------------------------------------------------------------------------------
 * clients
 */

int mtlspop_client_new(const char *config_json, mtlspop_client **out, mtlspop_error **err) {
    clear_err(err);
    if (out) {
        *out = NULL;
    }
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!out) {
        return FAIL_ARG(err, "out is NULL");
    }
    size_t len;
    int rc = input(config_json, &len, err);
    if (rc != MTLSPOP_OK) {
        return rc;
    }
    uintptr_t h = 0, go_err = 0;
    rc = mtlspopgo_client_new((char *)config_json, len, &h, GO_ERR(err));
    SET_ERR(err);
    if (rc == MTLSPOP_OK) {
        *out = (mtlspop_client *)h;
    }
    return rc;
}

int mtlspop_client_free(mtlspop_client *client) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!client) {
        return MTLSPOP_OK;
    }
    return mtlspopgo_client_free((uintptr_t)client);
}

/* ---------------------------------------------------------------------------------------------
 * tokens
 */

int mtlspop_acquire_token(mtlspop_client *client, const char *resource, const char *options_json,
                          mtlspop_token **out, mtlspop_error **err) {
    clear_err(err);
    if (out) {
        *out = NULL;
    }
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!out) {
        return FAIL_ARG(err, "out is NULL");
    }
    if (!client) {
        return FAIL_ARG(err, "client is NULL");
    }
    if (!resource) {
        return FAIL_ARG(err, "resource is NULL");
    }
    size_t rlen, olen;
    int rc = input(resource, &rlen, err);
    if (rc == MTLSPOP_OK) {
        rc = input(options_json, &olen, err);
    }
    if (rc != MTLSPOP_OK) {
        return rc;
    }
    mtlspopc_tok *tok = NULL;
    int source = 0;
    uintptr_t go_err = 0;
    rc = mtlspopgo_acquire((uintptr_t)client, (char *)resource, rlen, (char *)options_json, olen,
                           &tok, &source, GO_ERR(err));
    SET_ERR(err);
    if (rc != MTLSPOP_OK) {
        return rc;
    }
    uintptr_t h = slot_alloc(MTLSPOPC_T_TOKEN, source, tok);
    if (!h) {
        mtlspopc_tok_release(tok);
        return FAIL_NOMEM(err);
    }
    *out = (mtlspop_token *)h;
    return MTLSPOP_OK;
}

int mtlspop_acquire_token_async(mtlspop_client *client, const char *resource,
                                const char *options_json, mtlspop_done_fn done, void *user,
                                uint64_t *request_id, mtlspop_error **err) {
    clear_err(err);
    if (request_id) {
        *request_id = 0;
    }
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!client) {
        return FAIL_ARG(err, "client is NULL");
    }
    if (!resource) {
        return FAIL_ARG(err, "resource is NULL");
    }
    if (!done) {
        return FAIL_ARG(err, "done is NULL");
    }
    size_t rlen, olen;
    int rc = input(resource, &rlen, err);
    if (rc == MTLSPOP_OK) {
        rc = input(options_json, &olen, err);
    }
    if (rc != MTLSPOP_OK) {
        return rc;
    }
    uint64_t id = 0;
    uintptr_t go_err = 0;
    rc = mtlspopgo_acquire_async((uintptr_t)client, (char *)resource, rlen, (char *)options_json,
                                 olen, done, (uintptr_t)user, &id, GO_ERR(err));
    SET_ERR(err);
    if (rc == MTLSPOP_OK && request_id) {
        *request_id = id;
    }
    return rc;
}

int mtlspop_cancel(mtlspop_client *client, uint64_t request_id) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!client || request_id == 0) {
        return MTLSPOP_E_INVALID_ARG;
    }
    return mtlspopgo_cancel((uintptr_t)client, request_id);
}

static const mtlspopc_tok *tok_get(const mtlspop_token *t, int *source) {
    slot *s = FORKED() ? NULL : slot_get(t, MTLSPOPC_T_TOKEN);
    if (!s) {
        return NULL;
    }
    if (source) {
        *source = s->aux;
    }
    return s->data;
}

const char *mtlspop_token_access_token(const mtlspop_token *token) {
    const mtlspopc_tok *t = tok_get(token, NULL);
    return t ? t->access_token : NULL;
}

const char *mtlspop_token_type(const mtlspop_token *token) {
    const mtlspopc_tok *t = tok_get(token, NULL);
    return t ? t->token_type : NULL;
}

int64_t mtlspop_token_expires_on(const mtlspop_token *token) {
    const mtlspopc_tok *t = tok_get(token, NULL);
    return t ? t->expires_on : 0;
}

int64_t mtlspop_token_refresh_on(const mtlspop_token *token) {
    const mtlspopc_tok *t = tok_get(token, NULL);
    return t ? t->refresh_on : 0;
}

const char *mtlspop_token_source(const mtlspop_token *token) {
    int source = 0;
    const mtlspopc_tok *t = tok_get(token, &source);
    if (!t) {
        return NULL;
    }
    return source == 1 ? "cache" : "identity_provider"; /* token.TokenSource values */
}

const char *mtlspop_token_binding_cert_pem(const mtlspop_token *token) {
    const mtlspopc_tok *t = tok_get(token, NULL);
    return t ? t->cert_pem : NULL;
}

const char *mtlspop_token_x5t_s256(const mtlspop_token *token) {
    const mtlspopc_tok *t = tok_get(token, NULL);
    return t ? t->x5t : NULL;
}

int mtlspop_token_free(mtlspop_token *token) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!token) {
        return MTLSPOP_OK;
    }
    mtlspopc_tok *t = slot_free(token, MTLSPOPC_T_TOKEN);
    if (!t) {
        return MTLSPOP_E_INVALID_ARG;
    }
    mtlspopc_tok_release(t);
    return MTLSPOP_OK;
}

/* ---------------------------------------------------------------------------------------------
 * calling a resource
 */

int mtlspop_call(mtlspop_client *client, const mtlspop_token *token, const char *request_json,
                 mtlspop_response **out, mtlspop_error **err) {
    clear_err(err);
    if (out) {
        *out = NULL;
    }
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!out) {
        return FAIL_ARG(err, "out is NULL");
    }
    if (!client) {
        return FAIL_ARG(err, "client is NULL");
    }
    if (!request_json) {
        return FAIL_ARG(err, "request_json is NULL");
    }
    slot *s = slot_get(token, MTLSPOPC_T_TOKEN);
    if (!s) {
        return FAIL_ARG(err, "token is NULL, freed or not a token");
    }
    size_t len;
    int rc = input(request_json, &len, err);
    if (rc != MTLSPOP_OK) {
        return rc;
    }
    /* The caller's token handle keeps the image alive for the call; freeing the token while
     * another thread still uses it is a caller bug (header, convention 6), and nothing here makes
     * it safe: a concurrent mtlspop_token_free between slot_get above and the increment below can
     * free the image first. The extra reference only narrows that window to those few
     * instructions, instead of the whole network call. Closing it would take a lock (or hazard
     * pointers) on every handle lookup, for a contract the caller must keep anyway. */
    mtlspopc_tok *t = s->data;
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
    uintptr_t r = 0, go_err = 0;
    rc = mtlspopgo_call((uintptr_t)client, t->go_ref, (char *)request_json, len, &r, GO_ERR(err));
    SET_ERR(err);
    mtlspopc_tok_release(t);
    *out = (mtlspop_response *)r;
    return rc;
}

static const mtlspopc_resp *resp_get(const mtlspop_response *r) {
    slot *s = FORKED() ? NULL : slot_get(r, MTLSPOPC_T_RESPONSE);
    return s ? s->data : NULL;
}

int mtlspop_response_status(const mtlspop_response *response) {
    const mtlspopc_resp *r = resp_get(response);
    return r ? r->status : -1;
}

const char *mtlspop_response_header(const mtlspop_response *response, const char *name) {
    const mtlspopc_resp *r = resp_get(response);
    if (!r || !name) {
        return NULL;
    }
    for (size_t i = 0; i < r->header_count; i++) {
        if (strcasecmp(r->names[i], name) == 0) {
            return r->values[i];
        }
    }
    return NULL;
}

const char *mtlspop_response_headers_json(const mtlspop_response *response) {
    const mtlspopc_resp *r = resp_get(response);
    return r ? r->headers_json : NULL;
}

const uint8_t *mtlspop_response_body(const mtlspop_response *response, size_t *len) {
    const mtlspopc_resp *r = resp_get(response);
    if (len) {
        *len = r ? r->body_len : 0;
    }
    return r ? r->body : NULL;
}

int mtlspop_response_free(mtlspop_response *response) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!response) {
        return MTLSPOP_OK;
    }
    void *r = slot_free(response, MTLSPOPC_T_RESPONSE);
    if (!r) {
        return MTLSPOP_E_INVALID_ARG;
    }
    free(r);
    return MTLSPOP_OK;
}

/* ---------------------------------------------------------------------------------------------
 * verifying a token
 */

int mtlspop_verify(const char *config_json, const char *authorization, const char *client_cert_pem,
                   mtlspop_claims **out, mtlspop_error **err) {
    clear_err(err);
    if (out) {
        *out = NULL;
    }
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!out) {
        return FAIL_ARG(err, "out is NULL");
    }
    if (!config_json) {
        return FAIL_ARG(err, "config_json is NULL");
    }
    if (!authorization) {
        return FAIL_ARG(err, "authorization is NULL");
    }
    size_t clen, alen, plen;
    int rc = input(config_json, &clen, err);
    if (rc == MTLSPOP_OK) {
        rc = input(authorization, &alen, err);
    }
    if (rc == MTLSPOP_OK) {
        rc = input(client_cert_pem, &plen, err);
    }
    if (rc != MTLSPOP_OK) {
        return rc;
    }
    uintptr_t c = 0, go_err = 0;
    rc = mtlspopgo_verify((char *)config_json, clen, (char *)authorization, alen,
                          (char *)client_cert_pem, plen, &c, GO_ERR(err));
    SET_ERR(err);
    *out = (mtlspop_claims *)c;
    return rc;
}

static const mtlspopc_claims *claims_get(const mtlspop_claims *c) {
    slot *s = FORKED() ? NULL : slot_get(c, MTLSPOPC_T_CLAIMS);
    return s ? s->data : NULL;
}

const char *mtlspop_claims_json(const mtlspop_claims *claims) {
    const mtlspopc_claims *c = claims_get(claims);
    return c ? c->json : NULL;
}

const char *mtlspop_claims_token_type(const mtlspop_claims *claims) {
    const mtlspopc_claims *c = claims_get(claims);
    return c ? c->token_type : NULL;
}

const char *mtlspop_claims_subject(const mtlspop_claims *claims) {
    const mtlspopc_claims *c = claims_get(claims);
    return c ? c->subject : NULL;
}

const char *mtlspop_claims_client_id(const mtlspop_claims *claims) {
    const mtlspopc_claims *c = claims_get(claims);
    return c ? c->client_id : NULL;
}

const char *mtlspop_claims_x5t_s256(const mtlspop_claims *claims) {
    const mtlspopc_claims *c = claims_get(claims);
    return c ? c->x5t : NULL;
}

int mtlspop_claims_free(mtlspop_claims *claims) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (!claims) {
        return MTLSPOP_OK;
    }
    void *c = slot_free(claims, MTLSPOPC_T_CLAIMS);
    if (!c) {
        return MTLSPOP_E_INVALID_ARG;
    }
    free(c);
    return MTLSPOP_OK;
}

/* ---------------------------------------------------------------------------------------------
 * logging and diagnostics
 */

int mtlspop_set_log_callback(mtlspop_log_fn fn, void *user, int min_level) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    if (min_level < MTLSPOP_LOG_DEBUG || min_level > MTLSPOP_LOG_OFF) {
        return MTLSPOP_E_INVALID_ARG;
    }
    return mtlspopgo_set_log_callback(fn, (uintptr_t)user, min_level, !in_log_callback);
}

int64_t mtlspop_live_objects(void) {
    if (FORKED()) {
        return MTLSPOP_E_FORKED;
    }
    return mtlspopc_live_slots() + mtlspopgo_live_clients();
}

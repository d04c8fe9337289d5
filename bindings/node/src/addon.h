/*
 * addon.h — the N-API addon of the mtlspop Node package: shared declarations.
 *
 * The addon is thin glue over include/mtlspop.h. lib/ (JavaScript) checks the types and shapes of
 * arguments and builds the JSON the C ABI takes; the library judges the values. The addon only
 * moves values across (refusing what C would mangle: a string with U+0000) and owns the handles.
 *
 * Threads. Four kinds of thread touch this code:
 *  - the JS thread of the environment (main thread or a worker) that loaded the addon: every
 *    napi_* call, every field marked "JS thread";
 *  - library threads (Go), which run mtlspop_acquire_token_async completions (on_acquired);
 *  - the addon's starter thread (async.c), which starts async acquisitions and cancels them.
 *    Starting one enters the Go runtime, which needs a Go scheduler slot (a P); when the
 *    library's goroutines keep every P busy (say, a thousand requests in flight), a single start
 *    was measured to wait 200 ms. The JS thread must never wait like that, so it only queues;
 *  - the addon's worker threads (async.c), which run the blocking mtlspop_call and
 *    mtlspop_verify off the JS thread, because the ABI has no async form of either.
 * Library and worker threads never call N-API except napi_call_threadsafe_function, under
 * addon.mu, and only while addon.tsfn_open; they hand a finished `item` back to the JS thread,
 * where call_js (async.c) settles its promise.
 */
#ifndef MTLSPOP_NODE_ADDON_H
#define MTLSPOP_NODE_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mtlspop.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* ---------------------------------------------------------------------------------------------
 * napi_status checking. Every napi_* call goes through NAPI_CALL (functions that can throw: on
 * failure it throws, unless an exception is pending already, and jumps to `fail`) or is checked
 * explicitly where throwing is impossible (finalizers, call_js).
 */
HIDDEN void napi_failed(napi_env env, napi_status status, const char *call, int line);

/* throw_js throws a new Error or TypeError with a code, and returns NULL. */
typedef enum throw_kind { THROW_ERROR, THROW_TYPE } throw_kind;
HIDDEN napi_value throw_js(napi_env env, throw_kind kind, const char *code, const char *msg);

/* addon_of returns the environment's instance data, or throws and returns NULL. */
struct addon;
HIDDEN struct addon *addon_of(napi_env env);

#define NAPI_CALL(env, call)                                 \
    do {                                                     \
        napi_status s_ = (call);                             \
        if (s_ != napi_ok) {                                 \
            napi_failed((env), s_, #call, __LINE__);         \
            goto fail;                                       \
        }                                                    \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Per-instance state (one per environment that loads the addon; Node may load it in several
 * worker threads). Allocated at module init, handed to napi_set_instance_data, and reference
 * counted, because library threads may still complete requests after the environment is gone.
 */
typedef struct addon {
    /* Any thread: references held by the environment (1), the thread-safe function (1, until
     * its finalizer runs) and each outstanding item. The last one frees the struct. */
    int refs;

    /* Library and worker threads, under mu: whether tsfn may still be called. */
    pthread_mutex_t mu;
    int tsfn_open;
    napi_threadsafe_function tsfn;

    /* JS thread. */
    int env_alive;        /* cleared by the instance-data finalizer */
    napi_ref error_class; /* MtlsPopError, from lib/ through setup() */
    uint32_t pending;     /* items handed off and not yet settled; tsfn is ref'd while > 0 */
    uint32_t acquiring;   /* of those, acquisitions: the cache probe is made only while none is */
    uint32_t promises;    /* promises made and not yet settled (openPromises(), for tests) */
} addon;

HIDDEN void addon_ref(addon *a);
HIDDEN void addon_unref(addon *a);

/* ---------------------------------------------------------------------------------------------
 * A token held by JavaScript: an external wrapping one mtlspop_token handle. Reference counted
 * because a worker thread may be using it in mtlspop_call when the external is collected.
 */
typedef struct token_ref {
    uint32_t magic;
    int refs; /* any thread */
    mtlspop_token *token;
} token_ref;

HIDDEN void token_ref_release(token_ref *t);

/* ---------------------------------------------------------------------------------------------
 * A client held by JavaScript (an external). The memo maps a token image (by the address of
 * its access token, which the library keeps stable for the life of the image) to the JS objects
 * already made for it, so a cache hit creates no strings: the slot holds a token handle, which
 * keeps that image (and so that address) alive for as long as the slot names it.
 */
#define MEMO_SLOTS 16

typedef struct memo_slot {
    const char *key;  /* mtlspop_token_access_token of the image; NULL = empty */
    napi_ref external; /* the token_ref external (strong) */
    napi_ref data[2];  /* the data objects for token source "cache" [0] and the other [1] */
} memo_slot;

typedef struct client_wrap {
    uint32_t magic;
    int refs;                /* any thread: the external (1) and each outstanding item */
    mtlspop_client *client;  /* JS thread; NULL once closed */
    int closed;              /* any thread (atomic): client_close was called */
    memo_slot memo[MEMO_SLOTS]; /* JS thread */
} client_wrap;

HIDDEN void client_wrap_unref(client_wrap *cw);

/* ---------------------------------------------------------------------------------------------
 * Jobs of the starter thread, in one FIFO queue: starting an acquisition (embedded in its item)
 * and canceling one (embedded in its request). FIFO order is what makes a cancel see the request
 * id: its start was queued first.
 */
typedef enum job_kind { JOB_START, JOB_CANCEL } job_kind;

typedef struct job {
    job_kind kind;
    struct job *next;
} job;

/* A cancellable acquisition, as JS holds it (an external, made only when a signal was given). */
typedef struct request {
    job cancel_job;         /* must stay first */
    uint32_t magic;
    int refs;               /* any thread: the external, the item until started, a queued cancel */
    uint64_t id;            /* any thread (atomic): the library's request id, 0 until started */
    mtlspop_client *client; /* the handle, copied */
    int cancel_queued;      /* JS thread */
} request;

HIDDEN void request_unref(request *r);

/* ---------------------------------------------------------------------------------------------
 * An asynchronous operation: started on the JS thread, run by the library (acquire) or a worker
 * thread (call, verify), finished on the JS thread by call_js.
 */
typedef enum item_kind { ITEM_ACQUIRE, ITEM_CALL, ITEM_VERIFY } item_kind;

typedef struct item {
    job start_job;          /* acquire: the starter's job; must stay first */
    item_kind kind;
    addon *a;               /* a reference */
    napi_deferred deferred; /* JS thread */
    client_wrap *cw;        /* acquire, call: a reference (NULL for verify) */
    napi_ref keep;          /* JS thread: the client external, kept alive while in flight */
    struct item *next;      /* pool queue */

    /* Inputs, owned (malloc'd) by the item. */
    mtlspop_client *client; /* acquire, call: the handle, copied on the JS thread */
    token_ref *tref;        /* call: a reference */
    request *req;           /* acquire with a signal: a reference, until the start */
    char *s1, *s2, *s3;     /* acquire: resource, options; call: request JSON;
                               verify: config, authorization, cert PEM */

    /* Outputs, written by the finishing thread before the item is delivered. */
    int status;
    mtlspop_error *err;
    mtlspop_token *token;
    mtlspop_response *response;
    mtlspop_claims *claims;
} item;

/* item_new makes an item of kind for addon a (taking a reference), without its promise; NULL when
 * out of memory. */
HIDDEN item *item_new(addon *a, item_kind kind);
/* item_promise creates the item's promise. Call it last before the hand-off to another thread:
 * from then on the promise must be settled, by call_js or by item_fail_start. JS thread. */
HIDDEN napi_status item_promise(napi_env env, item *it, napi_value *promise);
/* item_started counts an item just handed off as pending (and refs the tsfn for the first). The
 * item is in flight whatever happens here: its completion settles the promise. JS thread. */
HIDDEN void item_started(napi_env env, addon *a, item_kind kind);
/* item_deliver hands a finished item to the JS thread; any thread. */
HIDDEN void item_deliver(item *it);
/* item_fail_start frees an item that was not handed off. Without a promise yet (its preparation
 * failed; an exception is pending) that is all. With one, the hand-off failed: the promise is
 * rejected with an Error (code ERR_MTLSPOP_THREAD, message why), and the caller returns it, so
 * that whoever awaits it learns of the failure instead of waiting forever. JS thread. */
HIDDEN void item_fail_start(napi_env env, item *it, const char *why);
/* item_free releases what an item holds without touching JavaScript; any thread. */
HIDDEN void item_free(item *it);

HIDDEN napi_status async_init(napi_env env, addon *a);

/* pool_submit runs a call or verify item's blocking work on a worker thread, then delivers it.
 * Returns 0, or -1 when no thread could be started. */
HIDDEN int pool_submit(item *it);
/* starter_submit queues a job for the starter thread. Returns 0, or -1 when it could not be
 * started. */
HIDDEN int starter_submit(job *j);
/* fail_thread_starts makes the next n pool_submit and starter_submit calls fail as if no thread
 * could be started: for tests (failThreadStarts), which cannot make pthread_create fail. */
HIDDEN void fail_thread_starts(int n);

/* ---------------------------------------------------------------------------------------------
 * Values.
 */

/* A string copied out of JavaScript: small ones on the stack. */
typedef struct sbuf {
    char *p;
    char small[512];
} sbuf;

/* get_string copies a JS string into b. It throws a TypeError for a non-string, or a string
 * holding U+0000, which C would cut short there; any other string is the library's to judge
 * (past MTLSPOP_MAX_INPUT bytes, say). Returns 0 on success, -1 after throwing. With nullable,
 * null and undefined give b->p = NULL. */
HIDDEN int get_string(napi_env env, napi_value v, sbuf *b, const char *what, int nullable);
HIDDEN void sbuf_free(sbuf *b);
HIDDEN char *sbuf_take(sbuf *b); /* a malloc'd copy (or NULL for NULL), for another thread */

/* make_error builds an MtlsPopError for a failed call (err may be NULL). It consumes err. */
HIDDEN napi_value make_error(napi_env env, addon *a, int status, mtlspop_error *err);
/* throw_status throws make_error(...) and returns NULL. */
HIDDEN napi_value throw_status(napi_env env, addon *a, int status, mtlspop_error *err);

HIDDEN napi_value make_string(napi_env env, const char *s); /* NULL -> null */

/* client.c */
HIDDEN napi_value token_data(napi_env env, client_wrap *cw, mtlspop_token *tok);
HIDDEN client_wrap *client_of(napi_env env, napi_value v);
HIDDEN token_ref *token_of(napi_env env, napi_value v);

HIDDEN napi_value response_value(napi_env env, mtlspop_response *r);
HIDDEN napi_value claims_value(napi_env env, mtlspop_claims *c);

#define CLIENT_MAGIC 0x6d63636cu /* "mccl" */
#define TOKEN_MAGIC 0x6d63746bu  /* "mctk" */
#define REQUEST_MAGIC 0x6d637271u /* "mcrq" */

#endif

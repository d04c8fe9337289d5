/*
 * async.c — promises settled from other threads, through one napi_threadsafe_function per
 * environment, and the addon's worker threads for the ABI's blocking calls.
 *
 * Keeping the event loop alive. The thread-safe function is unref'd while nothing is in flight,
 * so an idle client never holds the process open, and ref'd while any work handed off has its
 * promise unsettled (addon.pending > 0), so the process does not exit with requests outstanding.
 *
 * Lifetime. An item holds a reference to its addon and (acquire, call) its client_wrap, so the
 * memory a library thread touches stays valid even if the environment is torn down meanwhile.
 * After teardown the tsfn is closed (tsfn_open = 0 under mu): a late completion then frees its
 * item on the thread it arrives on, without touching JavaScript.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addon.h"

napi_value response_value(napi_env env, mtlspop_response *r);
napi_value claims_value(napi_env env, mtlspop_claims *c);

/* ---------------------------------------------------------------------------------------------
 * items
 */

item *item_new(addon *a, item_kind kind) {
    item *it = calloc(1, sizeof *it);
    if (!it) {
        return NULL;
    }
    it->kind = kind;
    it->a = a;
    addon_ref(a);
    return it;
}

napi_status item_promise(napi_env env, item *it, napi_value *promise) {
    napi_status s = napi_create_promise(env, &it->deferred, promise);
    if (s == napi_ok) {
        it->a->promises++;
    }
    return s;
}

void item_started(napi_env env, addon *a, item_kind kind) {
    if (kind == ITEM_ACQUIRE) {
        a->acquiring++;
    }
    if (a->pending++ == 0 && napi_ref_threadsafe_function(env, a->tsfn) != napi_ok) {
        /* Only fails for a tsfn being closed, i.e. during teardown: the loop is ending anyway. */
    }
}

void item_free(item *it) {
    mtlspop_token_free(it->token);
    mtlspop_response_free(it->response);
    mtlspop_claims_free(it->claims);
    mtlspop_error_free(it->err);
    if (it->tref) {
        token_ref_release(it->tref);
    }
    if (it->req) {
        request_unref(it->req);
    }
    free(it->s1);
    free(it->s2);
    free(it->s3);
    if (it->cw) {
        client_wrap_unref(it->cw);
    }
    addon_unref(it->a);
    free(it);
}

/* drop_keep deletes the item's strong reference to its client external. JS thread. */
static void drop_keep(napi_env env, item *it) {
    if (it->keep && napi_delete_reference(env, it->keep) != napi_ok) {
        /* Only fails while the environment is being torn down, which frees it anyway. */
    }
    it->keep = NULL;
}

/* start_error is the Error a promise is rejected with when its work could not be handed off;
 * failing that, the exception pending, or undefined: the promise is rejected with something. */
static napi_value start_error(napi_env env, const char *why) {
    napi_value code, msg, e = NULL;
    if (why && napi_create_string_utf8(env, "ERR_MTLSPOP_THREAD", NAPI_AUTO_LENGTH, &code) == napi_ok &&
        napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
        napi_create_error(env, code, msg, &e) == napi_ok) {
        return e;
    }
    if (napi_get_and_clear_last_exception(env, &e) == napi_ok && e) {
        return e;
    }
    if (napi_get_undefined(env, &e) != napi_ok) {
        e = NULL;
    }
    return e;
}

void item_fail_start(napi_env env, item *it, const char *why) {
    drop_keep(env, it);
    if (it->deferred) {
        napi_value e = start_error(env, why);
        if (e && napi_reject_deferred(env, it->deferred, e) == napi_ok) {
            it->a->promises--;
        } else {
            napi_failed(env, napi_generic_failure, "napi_reject_deferred", __LINE__);
        }
        it->deferred = NULL;
    }
    item_free(it);
}

void item_deliver(item *it) {
    addon *a = it->a;
    napi_status s = napi_closing;
    pthread_mutex_lock(&a->mu);
    if (a->tsfn_open) {
        s = napi_call_threadsafe_function(a->tsfn, it, napi_tsfn_nonblocking);
    }
    pthread_mutex_unlock(&a->mu);
    if (s != napi_ok) { /* the environment is gone (napi_closing): nobody is waiting */
        item_free(it);
    }
}

/* settle resolves or rejects the item's promise. JS thread. */
static void settle(napi_env env, item *it) {
    napi_value v = NULL;
    int ok = it->status == MTLSPOP_OK;
    if (ok) {
        switch (it->kind) {
        case ITEM_ACQUIRE:
            v = token_data(env, it->cw && it->cw->client ? it->cw : NULL, it->token);
            it->token = NULL; /* token_data took it */
            break;
        case ITEM_CALL:
            v = response_value(env, it->response);
            break;
        case ITEM_VERIFY:
            v = claims_value(env, it->claims);
            break;
        }
    } else {
        v = make_error(env, it->a, it->status, it->err);
        it->err = NULL; /* make_error took it */
    }
    if (!v) { /* building the value threw: reject with what was thrown */
        napi_value exc = NULL;
        ok = 0;
        if (napi_get_and_clear_last_exception(env, &exc) != napi_ok || !exc) {
            if (napi_create_string_utf8(env, "mtlspop addon: could not build the result",
                                        NAPI_AUTO_LENGTH, &exc) != napi_ok) {
                return; /* the deferred stays unsettled; nothing left to report it with */
            }
        }
        v = exc;
    }
    napi_status s = ok ? napi_resolve_deferred(env, it->deferred, v)
                       : napi_reject_deferred(env, it->deferred, v);
    if (s == napi_ok) {
        it->a->promises--;
    } else {
        napi_failed(env, s, ok ? "napi_resolve_deferred" : "napi_reject_deferred", __LINE__);
        napi_value exc;
        if (napi_get_and_clear_last_exception(env, &exc) != napi_ok) {
            /* nothing pending to clear */
        }
    }
}

/* call_js runs on the JS thread for each delivered item, or with env == NULL when the
 * environment is being torn down with items still queued. */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
    (void)js_cb;
    (void)context;
    item *it = data;
    addon *a = it->a;
    if (!env || !a->env_alive) {
        item_free(it);
        return;
    }
    napi_handle_scope scope;
    int scoped = napi_open_handle_scope(env, &scope) == napi_ok;
    settle(env, it);
    drop_keep(env, it);
    if (it->kind == ITEM_ACQUIRE) {
        a->acquiring--;
    }
    if (--a->pending == 0 && napi_unref_threadsafe_function(env, a->tsfn) != napi_ok) {
        /* Only fails while closing; the loop is ending anyway. */
    }
    if (scoped && napi_close_handle_scope(env, scope) != napi_ok) {
        /* The scope was opened here, so this cannot fail short of a Node bug. */
    }
    item_free(it);
}

/* tsfn_finalize runs on the JS thread when the environment closes the tsfn (teardown). */
static void tsfn_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    addon *a = data;
    pthread_mutex_lock(&a->mu);
    a->tsfn_open = 0;
    a->tsfn = NULL;
    pthread_mutex_unlock(&a->mu);
    addon_unref(a);
}

napi_status async_init(napi_env env, addon *a) {
    napi_value name;
    napi_status s = napi_create_string_utf8(env, "mtlspop", NAPI_AUTO_LENGTH, &name);
    if (s != napi_ok) {
        return s;
    }
    addon_ref(a); /* the tsfn's, dropped by tsfn_finalize */
    s = napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, a, tsfn_finalize, a, call_js,
                                        &a->tsfn);
    if (s != napi_ok) {
        addon_unref(a);
        return s;
    }
    a->tsfn_open = 1;
    return napi_unref_threadsafe_function(env, a->tsfn); /* idle: do not hold the loop */
}

/* ---------------------------------------------------------------------------------------------
 * The starter thread: starts async acquisitions, and cancels them, off the JS thread.
 *
 * One thread, process-wide, started on demand and exiting after IDLE_SECONDS without work.
 * Starts are short unless the Go scheduler is saturated; then they queue here, and the JS thread
 * goes on.
 */

#define IDLE_SECONDS 10

static pthread_mutex_t starter_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t starter_cv = PTHREAD_COND_INITIALIZER;
static job *starter_head, *starter_tail; /* under starter_mu */
static int starter_running;               /* under starter_mu */

static int injected_failures; /* any thread (atomic): see fail_thread_starts */

void fail_thread_starts(int n) { __atomic_store_n(&injected_failures, n > 0 ? n : 0, __ATOMIC_RELAXED); }

/* injected_failure takes one of the failures fail_thread_starts asked for, if any is left. */
static int injected_failure(void) {
    int n = __atomic_load_n(&injected_failures, __ATOMIC_RELAXED);
    while (n > 0) {
        if (__atomic_compare_exchange_n(&injected_failures, &n, n - 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            return 1;
        }
    }
    return 0;
}

void request_unref(request *r) {
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        r->magic = 0;
        free(r);
    }
}

/* on_acquired: the library's completion, on a library thread. */
static void on_acquired(void *user, uint64_t request_id, int status, mtlspop_token *token,
                        mtlspop_error *err) {
    (void)request_id;
    item *it = user;
    it->status = status;
    it->token = token;
    it->err = err;
    item_deliver(it);
}

static void start(item *it) {
    /* Once started, the item belongs to the library: its completion may even be delivered and
     * freed before mtlspop_acquire_token_async returns. So take what is needed afterwards. */
    request *req = it->req;
    char *resource = it->s1, *options = it->s2;
    it->req = NULL;
    it->s1 = it->s2 = NULL;
    uint64_t id = 0;
    mtlspop_error *err = NULL;
    int rc = mtlspop_acquire_token_async(it->client, resource, options, on_acquired, it, &id, &err);
    if (rc != MTLSPOP_OK) { /* not started: the item is still ours */
        if (__atomic_load_n(&it->cw->closed, __ATOMIC_ACQUIRE)) {
            /* Closed between the call and its start: the handle was already freed. */
            mtlspop_error_free(err);
            err = NULL;
            rc = MTLSPOP_E_CLOSED;
        }
        it->status = rc;
        it->err = err;
        item_deliver(it);
    }
    if (req) {
        __atomic_store_n(&req->id, rc == MTLSPOP_OK ? id : 0, __ATOMIC_RELEASE);
        request_unref(req);
    }
    free(resource);
    free(options);
}

static void cancel(request *req) {
    uint64_t id = __atomic_load_n(&req->id, __ATOMIC_ACQUIRE);
    if (id != 0) {
        /* MTLSPOP_E_NOT_FOUND when it has just finished; INVALID_ARG once its client is freed
         * (which canceled it already): nothing to do either way. */
        mtlspop_cancel(req->client, id);
    }
    request_unref(req);
}

static void *starter_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&starter_mu);
    for (;;) {
        while (!starter_head) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += IDLE_SECONDS;
            if (pthread_cond_timedwait(&starter_cv, &starter_mu, &until) == ETIMEDOUT && !starter_head) {
                starter_running = 0;
                pthread_mutex_unlock(&starter_mu);
                return NULL;
            }
        }
        job *j = starter_head;
        starter_head = j->next;
        if (!starter_head) {
            starter_tail = NULL;
        }
        pthread_mutex_unlock(&starter_mu);
        j->next = NULL;
        if (j->kind == JOB_START) {
            start((item *)j);
        } else {
            cancel((request *)j);
        }
        pthread_mutex_lock(&starter_mu);
    }
}

int starter_submit(job *j) {
    int rc = 0;
    if (injected_failure()) {
        return -1;
    }
    j->next = NULL;
    pthread_mutex_lock(&starter_mu);
    if (!starter_running) {
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, starter_thread, NULL) == 0) {
            starter_running = 1;
        } else {
            rc = -1;
        }
        pthread_attr_destroy(&attr);
    }
    if (rc == 0) {
        if (starter_tail) {
            starter_tail->next = j;
        } else {
            starter_head = j;
        }
        starter_tail = j;
        pthread_cond_signal(&starter_cv);
    }
    pthread_mutex_unlock(&starter_mu);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Worker threads for mtlspop_call and mtlspop_verify.
 *
 * The ABI has no async form of these, and the libuv pool is the wrong place for calls that wait
 * on the network (they would starve fs, dns and crypto). So the addon keeps its own pool:
 * process-wide, unbounded like the library's goroutines, a thread started whenever none is
 * idle, an idle thread exiting after IDLE_SECONDS. Threads keep their Go M between jobs, which
 * is what makes reusing them cheaper than one thread per call.
 */

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static item *pool_head, *pool_tail; /* under pool_mu: the queue */
static int pool_queued;             /* under pool_mu: items in the queue */
static int pool_idle;               /* under pool_mu: threads waiting for work */
static int pool_threads;            /* under pool_mu: threads alive */

static void run(item *it) {
    switch (it->kind) {
    case ITEM_CALL:
        it->status = mtlspop_call(it->client, it->tref->token, it->s1, &it->response, &it->err);
        if (it->status == MTLSPOP_E_INVALID_ARG && __atomic_load_n(&it->cw->closed, __ATOMIC_ACQUIRE)) {
            /* The client was closed before the call began: its handle was freed. */
            mtlspop_error_free(it->err);
            it->err = NULL;
            it->status = MTLSPOP_E_CLOSED;
        }
        break;
    case ITEM_VERIFY:
        it->status = mtlspop_verify(it->s1, it->s2, it->s3, &it->claims, &it->err);
        break;
    case ITEM_ACQUIRE:
        it->status = MTLSPOP_E_INTERNAL; /* acquisitions run on the library's own threads */
        break;
    }
}

static void *pool_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pool_mu);
    for (;;) {
        while (!pool_head) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += IDLE_SECONDS;
            pool_idle++;
            int rc = pthread_cond_timedwait(&pool_cv, &pool_mu, &until);
            pool_idle--;
            if (rc == ETIMEDOUT && !pool_head) {
                pool_threads--;
                pthread_mutex_unlock(&pool_mu);
                return NULL;
            }
        }
        item *it = pool_head;
        pool_head = it->next;
        if (!pool_head) {
            pool_tail = NULL;
        }
        pool_queued--;
        pthread_mutex_unlock(&pool_mu);
        it->next = NULL;
        run(it);
        item_deliver(it);
        pthread_mutex_lock(&pool_mu);
    }
}

int pool_submit(item *it) {
    int rc = 0;
    if (injected_failure()) {
        return -1;
    }
    it->next = NULL;
    pthread_mutex_lock(&pool_mu);
    if (pool_idle > pool_queued) { /* a waiting thread is free for this item */
        pthread_cond_signal(&pool_cv);
    } else {
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, pool_thread, NULL) == 0) {
            pool_threads++;
        } else if (pool_threads == 0) {
            rc = -1; /* nobody would ever run it */
        } /* else: it waits for a busy thread */
        pthread_attr_destroy(&attr);
    }
    if (rc == 0) {
        if (pool_tail) {
            pool_tail->next = it;
        } else {
            pool_head = it;
        }
        pool_tail = it;
        pool_queued++;
    }
    pthread_mutex_unlock(&pool_mu);
    return rc;
}

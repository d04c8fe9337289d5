/*
 * client.c — clients, acquisitions (blocking and async), cancel, and calls to resources.
 */
#include <stdlib.h>
#include <string.h>

#include "addon.h"

/* ---------------------------------------------------------------------------------------------
 * token externals
 */

void token_ref_release(token_ref *t) {
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        mtlspop_token_free(t->token);
        t->magic = 0;
        free(t);
    }
}

static void token_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    token_ref_release(data);
}

/* token_external wraps tok (taken) in an external. On failure tok is freed. */
static napi_value token_external(napi_env env, mtlspop_token *tok) {
    napi_value ext = NULL;
    token_ref *t = malloc(sizeof *t);
    if (!t) {
        mtlspop_token_free(tok);
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        return NULL;
    }
    t->magic = TOKEN_MAGIC;
    t->refs = 1;
    t->token = tok;
    napi_status s = napi_create_external(env, t, token_finalize, NULL, &ext);
    if (s != napi_ok) {
        token_ref_release(t);
        napi_failed(env, s, "napi_create_external", __LINE__);
        return NULL;
    }
    return ext;
}

token_ref *token_of(napi_env env, napi_value v) {
    void *p = NULL;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
        napi_get_value_external(env, v, &p) != napi_ok || !p ||
        ((token_ref *)p)->magic != TOKEN_MAGIC) {
        throw_js(env, THROW_TYPE, "ERR_INVALID_ARG_TYPE", "not a token of this addon");
        return NULL;
    }
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * token data objects
 *
 * What lib/ wraps in an AuthenticationResult: {accessToken, tokenType, expiresOn (ms),
 * refreshOn (ms, 0 = none), tokenSource, bindingCertificatePem, bindingCertificateThumbprint,
 * handle (the token external)}. Immutable, so one object per (image, source) serves every hit.
 */

static napi_status set_prop(napi_env env, napi_value obj, const char *name, napi_value v) {
    return napi_set_named_property(env, obj, name, v);
}

/* build_data: the data object of tok, with source (which is per handle, not per image). */
static napi_value build_data(napi_env env, napi_value ext, mtlspop_token *tok, const char *source) {
    napi_value obj = NULL, v;
    NAPI_CALL(env, napi_create_object(env, &obj));
    NAPI_CALL(env, set_prop(env, obj, "accessToken", make_string(env, mtlspop_token_access_token(tok))));
    NAPI_CALL(env, set_prop(env, obj, "tokenType", make_string(env, mtlspop_token_type(tok))));
    NAPI_CALL(env, napi_create_double(env, (double)mtlspop_token_expires_on(tok) * 1000.0, &v));
    NAPI_CALL(env, set_prop(env, obj, "expiresOn", v));
    NAPI_CALL(env, napi_create_double(env, (double)mtlspop_token_refresh_on(tok) * 1000.0, &v));
    NAPI_CALL(env, set_prop(env, obj, "refreshOn", v));
    NAPI_CALL(env, set_prop(env, obj, "tokenSource", make_string(env, source)));
    NAPI_CALL(env, set_prop(env, obj, "bindingCertificatePem",
                            make_string(env, mtlspop_token_binding_cert_pem(tok))));
    NAPI_CALL(env, set_prop(env, obj, "bindingCertificateThumbprint",
                            make_string(env, mtlspop_token_x5t_s256(tok))));
    NAPI_CALL(env, set_prop(env, obj, "handle", ext));
    return obj;
fail:
    return NULL;
}

static void memo_clear_slot(napi_env env, memo_slot *m) {
    napi_ref *refs[3] = {&m->external, &m->data[0], &m->data[1]};
    for (int i = 0; i < 3; i++) {
        if (*refs[i] && napi_delete_reference(env, *refs[i]) != napi_ok) {
            /* Fails only during teardown, which releases the reference itself. */
        }
        *refs[i] = NULL;
    }
    m->key = NULL;
}

static void memo_clear(napi_env env, client_wrap *cw) {
    for (int i = 0; i < MEMO_SLOTS; i++) {
        memo_clear_slot(env, &cw->memo[i]);
    }
}

static unsigned memo_index(const char *key) {
    uintptr_t k = (uintptr_t)key;
    k ^= k >> 17;
    k *= 0x9e3779b97f4a7c15ull;
    return (unsigned)(k >> 60) & (MEMO_SLOTS - 1);
}

/* token_data returns the data object for tok (taken: freed or kept). With cw, it is memoised in
 * cw's memo. JS thread. */
napi_value token_data(napi_env env, client_wrap *cw, mtlspop_token *tok) {
    const char *key = mtlspop_token_access_token(tok);
    const char *src = mtlspop_token_source(tok);
    int which = (src && strcmp(src, "cache") == 0) ? 0 : 1;
    napi_value ext, data = NULL;
    int owned = 1; /* tok is still this function's to free */
    if (!key) {
        mtlspop_token_free(tok);
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_ADDON", "mtlspop addon: the library returned an invalid token");
        return NULL;
    }
    if (!cw) {
        ext = token_external(env, tok);
        return ext ? build_data(env, ext, tok, src) : NULL;
    }
    memo_slot *m = &cw->memo[memo_index(key)];
    if (m->key == key) {
        /* The slot's image, which the slot keeps alive: this handle is not kept (it is freed
         * last, since src belongs to it). */
        if (m->data[which]) {
            NAPI_CALL(env, napi_get_reference_value(env, m->data[which], &data));
        } else {
            void *p;
            NAPI_CALL(env, napi_get_reference_value(env, m->external, &ext));
            NAPI_CALL(env, napi_get_value_external(env, ext, &p));
            data = build_data(env, ext, ((token_ref *)p)->token, src);
            if (data) {
                NAPI_CALL(env, napi_create_reference(env, data, 1, &m->data[which]));
            }
        }
        mtlspop_token_free(tok);
        return data;
    }
    memo_clear_slot(env, m);
    owned = 0;
    ext = token_external(env, tok); /* owns tok from here on, or freed it */
    if (!ext) {
        return NULL;
    }
    data = build_data(env, ext, tok, src);
    if (data) {
        NAPI_CALL(env, napi_create_reference(env, ext, 1, &m->external));
        m->key = key;
        NAPI_CALL(env, napi_create_reference(env, data, 1, &m->data[which]));
    }
    return data;
fail:
    if (owned) {
        mtlspop_token_free(tok);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * clients
 */

void client_wrap_unref(client_wrap *cw) {
    if (__atomic_sub_fetch(&cw->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        cw->magic = 0;
        free(cw);
    }
}

/* client_finalize: the client's external was collected (or the environment is closing). */
static void client_finalize(napi_env env, void *data, void *hint) {
    (void)hint;
    client_wrap *cw = data;
    memo_clear(env, cw);
    if (cw->client) {
        __atomic_store_n(&cw->closed, 1, __ATOMIC_RELEASE);
        mtlspop_client_free(cw->client);
        cw->client = NULL;
    }
    client_wrap_unref(cw);
}

client_wrap *client_of(napi_env env, napi_value v) {
    void *p = NULL;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
        napi_get_value_external(env, v, &p) != napi_ok || !p ||
        ((client_wrap *)p)->magic != CLIENT_MAGIC) {
        throw_js(env, THROW_TYPE, "ERR_INVALID_ARG_TYPE", "not a client of this addon");
        return NULL;
    }
    return p;
}

/* open_client: client_of, and throws client_closed for a closed one. */
static client_wrap *open_client(napi_env env, addon *a, napi_value v) {
    client_wrap *cw = client_of(env, v);
    if (cw && !cw->client) {
        mtlspop_error *none = NULL;
        throw_status(env, a, MTLSPOP_E_CLOSED, none);
        return NULL;
    }
    return cw;
}

/* clientNew(configJson | null) -> external */
napi_value js_client_new(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], ext = NULL;
    sbuf config = {0};
    addon *a = addon_of(env);
    if (!a) {
        return NULL;
    }
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (get_string(env, argv[0], &config, "config", 1) != 0) {
        return NULL;
    }
    mtlspop_client *c = NULL;
    mtlspop_error *err = NULL;
    int rc = mtlspop_client_new(config.p, &c, &err);
    sbuf_free(&config);
    if (rc != MTLSPOP_OK) {
        return throw_status(env, a, rc, err);
    }
    client_wrap *cw = calloc(1, sizeof *cw);
    if (!cw) {
        mtlspop_client_free(c);
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        return NULL;
    }
    cw->magic = CLIENT_MAGIC;
    cw->refs = 1;
    cw->client = c;
    napi_status s = napi_create_external(env, cw, client_finalize, NULL, &ext);
    if (s != napi_ok) {
        mtlspop_client_free(c);
        free(cw);
        napi_failed(env, s, "napi_create_external", __LINE__);
        return NULL;
    }
    return ext;
fail:
    return NULL;
}

/* clientClose(external): frees the library client now; idempotent. Requests in flight complete
 * (canceled) afterwards. */
napi_value js_client_close(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], result = NULL;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    client_wrap *cw = client_of(env, argv[0]);
    if (!cw) {
        return NULL;
    }
    memo_clear(env, cw);
    if (cw->client) {
        __atomic_store_n(&cw->closed, 1, __ATOMIC_RELEASE);
        mtlspop_client_free(cw->client);
        cw->client = NULL;
    }
    NAPI_CALL(env, napi_get_undefined(env, &result));
fail:
    return result;
}

/* acquire_blocking is acquireSync and acquireProbe: a blocking mtlspop_acquire_token with the
 * arguments (external, resource, optionsJson | null). A probe is quiet: it is skipped while an
 * acquisition of this environment is in flight, and any failure is null rather than a throw. */
static napi_value acquire_blocking(napi_env env, napi_callback_info info, int probe) {
    size_t argc = 3;
    napi_value argv[3], none = NULL;
    sbuf res, opts;
    addon *a = addon_of(env);
    if (!a) {
        return NULL;
    }
    if (probe) {
        NAPI_CALL(env, napi_get_null(env, &none));
        if (a->acquiring > 0) {
            return none;
        }
    }
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    client_wrap *cw = open_client(env, a, argv[0]);
    if (!cw) {
        return NULL;
    }
    if (get_string(env, argv[1], &res, "resource", 0) != 0) {
        return NULL;
    }
    if (get_string(env, argv[2], &opts, "options", 1) != 0) {
        sbuf_free(&res);
        return NULL;
    }
    mtlspop_token *tok = NULL;
    mtlspop_error *err = NULL;
    int rc = mtlspop_acquire_token(cw->client, res.p, opts.p, &tok, probe ? NULL : &err);
    sbuf_free(&res);
    sbuf_free(&opts);
    if (rc == MTLSPOP_OK) {
        return token_data(env, cw, tok);
    }
    return probe ? none : throw_status(env, a, rc, err);
fail:
    return NULL;
}

/* acquireSync(external, resource, optionsJson | null) -> data object. The hot path: no
 * allocation on a cache hit but the library's own handle. */
napi_value js_acquire_sync(napi_env env, napi_callback_info info) {
    return acquire_blocking(env, info, 0);
}

/* acquireProbe(external, resource, probeJson) -> data object or null. acquireToken's first
 * try: a "cache_only" acquisition, which returns a cached token or fails at once without I/O or
 * waiting. It is made only while this environment has no acquisition in flight: those are what
 * keep the Go scheduler busy (their goroutines), and while they run the probe could wait for it;
 * a call or a verification in flight waits on the network on a thread of its own and does not.
 * Any failure (a miss among them) is null: the async path then fetches, and reports its own
 * errors. */
napi_value js_acquire_probe(napi_env env, napi_callback_info info) {
    return acquire_blocking(env, info, 1);
}

/* request_finalize: the request's external was collected. */
static void request_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    request_unref(data);
}

/* acquireAsync(external, resource, optionsJson | null[, started]) -> promise. With `started`, an
 * object, the acquisition can be canceled: started.request is set to an external for cancel().
 * The promise is made last, once nothing but the hand-off can fail, so that it is never left
 * unsettled. The start itself happens on the starter thread (async.c); this only queues it. */
napi_value js_acquire_async(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4], promise = NULL, rext = NULL;
    sbuf res = {0}, opts = {0};
    item *it = NULL;
    napi_valuetype started;
    addon *a = addon_of(env);
    if (!a) {
        return NULL;
    }
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    client_wrap *cw = open_client(env, a, argv[0]);
    if (!cw) {
        return NULL;
    }
    NAPI_CALL(env, napi_typeof(env, argv[3], &started));
    if (started != napi_undefined && started != napi_object) {
        throw_js(env, THROW_TYPE, "ERR_INVALID_ARG_TYPE", "started must be an object or undefined");
        return NULL;
    }
    if (get_string(env, argv[1], &res, "resource", 0) != 0) {
        return NULL;
    }
    if (get_string(env, argv[2], &opts, "options", 1) != 0) {
        goto fail;
    }
    it = item_new(a, ITEM_ACQUIRE);
    if (!it) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        goto fail;
    }
    it->start_job.kind = JOB_START;
    it->cw = cw;
    __atomic_add_fetch(&cw->refs, 1, __ATOMIC_RELAXED);
    it->client = cw->client;
    NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &it->keep));
    int had_opts = opts.p != NULL;
    it->s1 = sbuf_take(&res);
    it->s2 = sbuf_take(&opts);
    if (!it->s1 || (had_opts && !it->s2)) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        goto fail;
    }
    if (started == napi_object) {
        request *r = calloc(1, sizeof *r);
        if (!r) {
            throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
            goto fail;
        }
        r->cancel_job.kind = JOB_CANCEL;
        r->magic = REQUEST_MAGIC;
        r->refs = 2; /* the external's and the item's */
        r->client = cw->client;
        it->req = r;
        napi_status s = napi_create_external(env, r, request_finalize, NULL, &rext);
        if (s != napi_ok) {
            request_unref(r); /* the external's; item_free drops the other */
            napi_failed(env, s, "napi_create_external", __LINE__);
            goto fail;
        }
        NAPI_CALL(env, napi_set_named_property(env, argv[3], "request", rext));
    }
    NAPI_CALL(env, item_promise(env, it, &promise));
    if (starter_submit(&it->start_job) != 0) {
        item_fail_start(env, it, "mtlspop: cannot start the addon's starter thread");
        return promise;
    }
    /* The starter's from here, then the library's. */
    item_started(env, a, ITEM_ACQUIRE);
    return promise;
fail:
    sbuf_free(&res);
    sbuf_free(&opts);
    if (it) {
        item_fail_start(env, it, NULL);
    }
    return NULL;
}

/* cancel(request): asks the starter thread to cancel the request (mtlspop_cancel); its promise
 * then rejects with code "canceled", unless it had finished. Idempotent. */
napi_value js_cancel(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], result = NULL;
    void *p = NULL;
    napi_valuetype t;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    NAPI_CALL(env, napi_typeof(env, argv[0], &t));
    if (t == napi_external) {
        NAPI_CALL(env, napi_get_value_external(env, argv[0], &p));
    }
    request *r = p;
    if (!r || r->magic != REQUEST_MAGIC) {
        throw_js(env, THROW_TYPE, "ERR_INVALID_ARG_TYPE", "not a request of this addon");
        return NULL;
    }
    if (!r->cancel_queued) {
        r->cancel_queued = 1;
        __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
        if (starter_submit(&r->cancel_job) != 0) {
            request_unref(r);
            r->cancel_queued = 0;
            throw_js(env, THROW_ERROR, "ERR_MTLSPOP_THREAD", "mtlspop: cannot start the addon's starter thread");
            return NULL;
        }
    }
    NAPI_CALL(env, napi_get_undefined(env, &result));
fail:
    return result;
}

/* ---------------------------------------------------------------------------------------------
 * calls
 */

/* call(clientExternal, tokenExternal, requestJson) -> promise of {status, headers, body} */
napi_value js_call(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3], promise = NULL;
    sbuf req = {0};
    item *it = NULL;
    addon *a = addon_of(env);
    if (!a) {
        return NULL;
    }
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    client_wrap *cw = open_client(env, a, argv[0]);
    token_ref *t = cw ? token_of(env, argv[1]) : NULL;
    if (!t || get_string(env, argv[2], &req, "request", 0) != 0) {
        return NULL;
    }
    it = item_new(a, ITEM_CALL);
    if (!it) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        goto fail;
    }
    it->cw = cw;
    __atomic_add_fetch(&cw->refs, 1, __ATOMIC_RELAXED);
    NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &it->keep));
    it->client = cw->client;
    it->tref = t;
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    it->s1 = sbuf_take(&req);
    if (!it->s1) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        goto fail;
    }
    /* The promise last, once nothing but the hand-off can fail: it is never left unsettled. */
    NAPI_CALL(env, item_promise(env, it, &promise));
    if (pool_submit(it) != 0) {
        item_fail_start(env, it, "mtlspop: cannot start a thread for the call");
        return promise;
    }
    /* The pool's from here. */
    item_started(env, a, ITEM_CALL);
    return promise;
fail:
    sbuf_free(&req);
    if (it) {
        item_fail_start(env, it, NULL);
    }
    return NULL;
}

/* response_value: {status, headers (JSON text), body (Buffer)}. JS thread. */
napi_value response_value(napi_env env, mtlspop_response *r) {
    napi_value obj = NULL, v;
    size_t len = 0;
    const uint8_t *body = mtlspop_response_body(r, &len);
    NAPI_CALL(env, napi_create_object(env, &obj));
    NAPI_CALL(env, napi_create_int32(env, mtlspop_response_status(r), &v));
    NAPI_CALL(env, napi_set_named_property(env, obj, "status", v));
    NAPI_CALL(env, napi_set_named_property(env, obj, "headers", make_string(env, mtlspop_response_headers_json(r))));
    NAPI_CALL(env, napi_create_buffer_copy(env, len, body ? (const void *)body : (const void *)"", NULL, &v));
    NAPI_CALL(env, napi_set_named_property(env, obj, "body", v));
    return obj;
fail:
    return NULL;
}

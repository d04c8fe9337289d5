/*
 * verify.c — the resource side: mtlspop_verify, blocking and on an addon thread.
 */
#include <stdlib.h>

#include "addon.h"

/* claims_value: {tokenType, subject, clientId, bindingCertificateThumbprint, claims (JSON
 * text)}. JS thread. */
napi_value claims_value(napi_env env, mtlspop_claims *c) {
    napi_value obj = NULL;
    NAPI_CALL(env, napi_create_object(env, &obj));
    NAPI_CALL(env, napi_set_named_property(env, obj, "tokenType", make_string(env, mtlspop_claims_token_type(c))));
    NAPI_CALL(env, napi_set_named_property(env, obj, "subject", make_string(env, mtlspop_claims_subject(c))));
    NAPI_CALL(env, napi_set_named_property(env, obj, "clientId", make_string(env, mtlspop_claims_client_id(c))));
    NAPI_CALL(env, napi_set_named_property(env, obj, "bindingCertificateThumbprint",
                                           make_string(env, mtlspop_claims_x5t_s256(c))));
    NAPI_CALL(env, napi_set_named_property(env, obj, "claims", make_string(env, mtlspop_claims_json(c))));
    return obj;
fail:
    return NULL;
}

typedef struct verify_args {
    sbuf config, authorization, cert;
} verify_args;

static void verify_args_free(verify_args *v) {
    sbuf_free(&v->config);
    sbuf_free(&v->authorization);
    sbuf_free(&v->cert);
}

/* read_args reads (configJson, authorization, certPem | null). 0, or -1 after throwing. */
static int read_args(napi_env env, napi_callback_info info, verify_args *v) {
    size_t argc = 3;
    napi_value argv[3];
    v->config.p = v->authorization.p = v->cert.p = NULL;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    if (get_string(env, argv[0], &v->config, "config", 0) != 0 ||
        get_string(env, argv[1], &v->authorization, "authorization", 0) != 0 ||
        get_string(env, argv[2], &v->cert, "clientCertificate", 1) != 0) {
        verify_args_free(v);
        return -1;
    }
    return 0;
fail:
    return -1;
}

/* verifySync(configJson, authorization, certPem | null) -> claims object */
napi_value js_verify_sync(napi_env env, napi_callback_info info) {
    verify_args v;
    addon *a = addon_of(env);
    if (!a || read_args(env, info, &v) != 0) {
        return NULL;
    }
    mtlspop_claims *c = NULL;
    mtlspop_error *err = NULL;
    int rc = mtlspop_verify(v.config.p, v.authorization.p, v.cert.p, &c, &err);
    verify_args_free(&v);
    if (rc != MTLSPOP_OK) {
        return throw_status(env, a, rc, err);
    }
    napi_value result = claims_value(env, c);
    mtlspop_claims_free(c);
    return result;
}

/* verifyAsync(configJson, authorization, certPem | null) -> promise of a claims object */
napi_value js_verify_async(napi_env env, napi_callback_info info) {
    verify_args v;
    napi_value promise = NULL;
    item *it = NULL;
    addon *a = addon_of(env);
    if (!a || read_args(env, info, &v) != 0) {
        return NULL;
    }
    it = item_new(a, ITEM_VERIFY);
    if (!it) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        goto fail;
    }
    int had_cert = v.cert.p != NULL;
    it->s1 = sbuf_take(&v.config);
    it->s2 = sbuf_take(&v.authorization);
    it->s3 = sbuf_take(&v.cert);
    if (!it->s1 || !it->s2 || (had_cert && !it->s3)) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        goto fail;
    }
    /* The promise last, once nothing but the hand-off can fail: it is never left unsettled. */
    NAPI_CALL(env, item_promise(env, it, &promise));
    if (pool_submit(it) != 0) {
        item_fail_start(env, it, "mtlspop: cannot start a thread for verify");
        return promise;
    }
    /* The pool's from here. */
    item_started(env, a, ITEM_VERIFY);
    return promise;
fail:
    verify_args_free(&v);
    if (it) {
        item_fail_start(env, it, NULL);
    }
    return NULL;
}

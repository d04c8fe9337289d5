/*
 * addon.c — module initialisation, per-instance data, strings and errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

/* ---------------------------------------------------------------------------------------------
 * napi_status failures
 */

void napi_failed(napi_env env, napi_status status, const char *call, int line) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
        return; /* the exception already pending says more */
    }
    const napi_extended_error_info *info = NULL;
    const char *why = "unknown";
    if (napi_get_last_error_info(env, &info) == napi_ok && info && info->error_message) {
        why = info->error_message;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "mtlspop addon: %s failed (napi_status %d, %s) at line %d", call,
             (int)status, why, line);
    throw_js(env, THROW_ERROR, "ERR_MTLSPOP_ADDON", msg);
}

napi_value throw_js(napi_env env, throw_kind kind, const char *code, const char *msg) {
    napi_status s = kind == THROW_TYPE ? napi_throw_type_error(env, code, msg)
                                       : napi_throw_error(env, code, msg);
    if (s != napi_ok) {
        /* Only when an exception is pending already (or the environment is going away): that
         * one propagates instead. Nothing more can be done; the caller returns NULL. */
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Per-instance data
 */

void addon_ref(addon *a) { __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED); }

void addon_unref(addon *a) {
    if (__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        pthread_mutex_destroy(&a->mu);
        free(a);
    }
}

/* Instance-data finalizer: the environment is being torn down. JS thread. */
static void addon_finalize(napi_env env, void *data, void *hint) {
    (void)hint;
    addon *a = data;
    a->env_alive = 0;
    if (a->error_class && napi_delete_reference(env, a->error_class) != napi_ok) {
        /* The environment is going away and takes the reference with it. */
    }
    a->error_class = NULL;
    addon_unref(a);
}

addon *addon_of(napi_env env) {
    void *data = NULL;
    if (napi_get_instance_data(env, &data) != napi_ok || !data) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_ADDON", "mtlspop addon: no instance data");
        return NULL;
    }
    return data;
}

/* ---------------------------------------------------------------------------------------------
 * Strings
 */

int get_string(napi_env env, napi_value v, sbuf *b, const char *what, int nullable) {
    char msg[160];
    b->p = NULL;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok) {
        goto type_error;
    }
    if (nullable && (t == napi_null || t == napi_undefined)) {
        return 0;
    }
    if (t != napi_string) {
        goto type_error;
    }
    size_t len = 0;
    napi_status s = napi_get_value_string_utf8(env, v, b->small, sizeof b->small, &len);
    if (s != napi_ok) {
        napi_failed(env, s, "napi_get_value_string_utf8", __LINE__);
        return -1;
    }
    b->p = b->small;
    if (len == sizeof b->small - 1) { /* perhaps truncated: ask for the full length */
        s = napi_get_value_string_utf8(env, v, NULL, 0, &len);
        if (s != napi_ok) {
            napi_failed(env, s, "napi_get_value_string_utf8", __LINE__);
            b->p = NULL;
            return -1;
        }
        /* However long: the library refuses what exceeds MTLSPOP_MAX_INPUT, with its error. */
        if (len >= sizeof b->small) {
            b->p = malloc(len + 1);
            if (!b->p) {
                throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
                return -1;
            }
            s = napi_get_value_string_utf8(env, v, b->p, len + 1, &len);
            if (s != napi_ok) {
                napi_failed(env, s, "napi_get_value_string_utf8", __LINE__);
                sbuf_free(b);
                return -1;
            }
        }
    }
    if (strlen(b->p) != len) {
        sbuf_free(b);
        snprintf(msg, sizeof msg, "%s must not contain the character U+0000", what);
        throw_js(env, THROW_TYPE, "ERR_INVALID_ARG_VALUE", msg);
        return -1;
    }
    return 0;

type_error:
    snprintf(msg, sizeof msg, "%s must be a string%s", what, nullable ? " or null" : "");
    throw_js(env, THROW_TYPE, "ERR_INVALID_ARG_TYPE", msg);
    return -1;
}

void sbuf_free(sbuf *b) {
    if (b->p && b->p != b->small) {
        free(b->p);
    }
    b->p = NULL;
}

char *sbuf_take(sbuf *b) {
    if (!b->p) {
        return NULL;
    }
    char *p = b->p;
    if (p == b->small) {
        p = strdup(b->small);
    }
    b->p = NULL;
    return p; /* NULL if strdup failed: the caller checks */
}

napi_value make_string(napi_env env, const char *s) {
    napi_value v = NULL;
    if (!s) {
        NAPI_CALL(env, napi_get_null(env, &v));
    } else {
        NAPI_CALL(env, napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v));
    }
    return v;
fail:
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Errors: MtlsPopError is a JS class (lib/error.js) handed over by setup(); its constructor names
 * the status's category, and gives a code to the statuses that come without an error object.
 */

napi_value make_error(napi_env env, addon *a, int status, mtlspop_error *err) {
    napi_value result = NULL, ctor, argv[2], v;
    const char *message = err ? mtlspop_error_message(err) : NULL;
    if (!message) {
        message = mtlspop_strerror(status);
    }
    NAPI_CALL(env, napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &argv[0]));
    NAPI_CALL(env, napi_create_object(env, &argv[1]));
    NAPI_CALL(env, napi_create_int32(env, status, &v));
    NAPI_CALL(env, napi_set_named_property(env, argv[1], "errno", v));
    if (err) {
        const char *code = mtlspop_error_code(err);
        const char *corr = mtlspop_error_correlation_id(err);
        int http = mtlspop_error_http_status(err);
        if (code) {
            NAPI_CALL(env, napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v));
            NAPI_CALL(env, napi_set_named_property(env, argv[1], "code", v));
        }
        NAPI_CALL(env, napi_create_int32(env, http > 0 ? http : 0, &v));
        NAPI_CALL(env, napi_set_named_property(env, argv[1], "status", v));
        NAPI_CALL(env, napi_create_string_utf8(env, corr ? corr : "", NAPI_AUTO_LENGTH, &v));
        NAPI_CALL(env, napi_set_named_property(env, argv[1], "correlationId", v));
    }
    if (a && a->error_class) {
        NAPI_CALL(env, napi_get_reference_value(env, a->error_class, &ctor));
        NAPI_CALL(env, napi_new_instance(env, ctor, 2, argv, &result));
    } else { /* setup() not called: a plain Error still carries the message */
        NAPI_CALL(env, napi_create_error(env, NULL, argv[0], &result));
    }
fail:
    mtlspop_error_free(err);
    return result;
}

napi_value throw_status(napi_env env, addon *a, int status, mtlspop_error *err) {
    napi_value e = make_error(env, a, status, err);
    if (e && napi_throw(env, e) != napi_ok) {
        napi_failed(env, napi_generic_failure, "napi_throw", __LINE__);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Exported functions (the JS names are in init below)
 */

/* setup(MtlsPopError): once, from lib/binding.js. */
static napi_value js_setup(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], undefined = NULL;
    napi_valuetype t;
    addon *a = addon_of(env);
    if (!a) {
        return NULL;
    }
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    NAPI_CALL(env, napi_typeof(env, argv[0], &t));
    if (argc < 1 || t != napi_function) {
        throw_js(env, THROW_TYPE, "ERR_INVALID_ARG_TYPE", "setup: the error class must be a function");
        return NULL;
    }
    if (a->error_class) {
        NAPI_CALL(env, napi_delete_reference(env, a->error_class));
        a->error_class = NULL;
    }
    NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &a->error_class));
    NAPI_CALL(env, napi_get_undefined(env, &undefined));
fail:
    return undefined;
}

/* errorFor(status): the error the addon makes for a status that came without an error object
 * (tests only). */
static napi_value js_error_for(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    int32_t status = 0;
    addon *a = addon_of(env);
    if (!a) {
        return NULL;
    }
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    NAPI_CALL(env, napi_get_value_int32(env, argv[0], &status));
    return make_error(env, a, status, NULL);
fail:
    return NULL;
}

/* failThreadStarts(n): the next n hand-offs to a thread fail (tests only; see fail_thread_starts). */
static napi_value js_fail_thread_starts(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], undefined = NULL;
    int32_t n = 0;
    NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    NAPI_CALL(env, napi_get_value_int32(env, argv[0], &n));
    fail_thread_starts(n);
    NAPI_CALL(env, napi_get_undefined(env, &undefined));
fail:
    return undefined;
}

/* openPromises(): promises of this environment made and not yet settled (tests only). */
static napi_value js_open_promises(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value v = NULL;
    addon *a = addon_of(env);
    if (!a) {
        return NULL;
    }
    NAPI_CALL(env, napi_create_uint32(env, a->promises, &v));
fail:
    return v;
}

static napi_value js_live_objects(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value v = NULL;
    NAPI_CALL(env, napi_create_int64(env, mtlspop_live_objects(), &v));
fail:
    return v;
}

/* Declared in client.c and verify.c. */
napi_value js_client_new(napi_env env, napi_callback_info info);
napi_value js_client_close(napi_env env, napi_callback_info info);
napi_value js_acquire_sync(napi_env env, napi_callback_info info);
napi_value js_acquire_async(napi_env env, napi_callback_info info);
napi_value js_acquire_probe(napi_env env, napi_callback_info info);
napi_value js_cancel(napi_env env, napi_callback_info info);
napi_value js_call(napi_env env, napi_callback_info info);
napi_value js_verify_sync(napi_env env, napi_callback_info info);
napi_value js_verify_async(napi_env env, napi_callback_info info);

static napi_status set_string(napi_env env, napi_value obj, const char *name, const char *s) {
    napi_value v;
    napi_status st = napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
    return st == napi_ok ? napi_set_named_property(env, obj, name, v) : st;
}

static napi_status set_int(napi_env env, napi_value obj, const char *name, int n) {
    napi_value v;
    napi_status st = napi_create_int32(env, n, &v);
    return st == napi_ok ? napi_set_named_property(env, obj, name, v) : st;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
    if (mtlspop_abi_version() != MTLSPOP_ABI_VERSION) {
        char msg[160];
        snprintf(msg, sizeof msg, "mtlspop: libmtlspop ABI %d loaded, the addon was built for ABI %d",
                 mtlspop_abi_version(), MTLSPOP_ABI_VERSION);
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_ABI", msg);
        return NULL;
    }
    addon *a = calloc(1, sizeof *a);
    if (!a) {
        throw_js(env, THROW_ERROR, "ERR_MTLSPOP_NOMEM", "mtlspop: out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    a->refs = 1; /* the environment's */
    a->env_alive = 1;
    if (napi_set_instance_data(env, a, addon_finalize, NULL) != napi_ok) {
        pthread_mutex_destroy(&a->mu);
        free(a);
        napi_failed(env, napi_generic_failure, "napi_set_instance_data", __LINE__);
        return NULL;
    }
    NAPI_CALL(env, async_init(env, a));

    napi_property_descriptor fns[] = {
        {"setup", NULL, js_setup, NULL, NULL, NULL, napi_default, NULL},
        {"errorFor", NULL, js_error_for, NULL, NULL, NULL, napi_default, NULL},
        {"liveObjects", NULL, js_live_objects, NULL, NULL, NULL, napi_default, NULL},
        {"failThreadStarts", NULL, js_fail_thread_starts, NULL, NULL, NULL, napi_default, NULL},
        {"openPromises", NULL, js_open_promises, NULL, NULL, NULL, napi_default, NULL},
        {"clientNew", NULL, js_client_new, NULL, NULL, NULL, napi_default, NULL},
        {"clientClose", NULL, js_client_close, NULL, NULL, NULL, napi_default, NULL},
        {"acquireSync", NULL, js_acquire_sync, NULL, NULL, NULL, napi_default, NULL},
        {"acquireAsync", NULL, js_acquire_async, NULL, NULL, NULL, napi_default, NULL},
        {"acquireProbe", NULL, js_acquire_probe, NULL, NULL, NULL, napi_default, NULL},
        {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
        {"call", NULL, js_call, NULL, NULL, NULL, napi_default, NULL},
        {"verifySync", NULL, js_verify_sync, NULL, NULL, NULL, napi_default, NULL},
        {"verifyAsync", NULL, js_verify_async, NULL, NULL, NULL, napi_default, NULL},
    };
    NAPI_CALL(env, napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));
    NAPI_CALL(env, set_string(env, exports, "version", mtlspop_version()));
    NAPI_CALL(env, set_string(env, exports, "headerVersion", MTLSPOP_VERSION));
    NAPI_CALL(env, set_int(env, exports, "abiVersion", mtlspop_abi_version()));
    NAPI_CALL(env, set_int(env, exports, "maxInput", (int)MTLSPOP_MAX_INPUT));
    return exports;
fail:
    return NULL;
}

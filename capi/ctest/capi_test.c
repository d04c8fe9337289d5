/*
 * capi_test.c — tests of libmtlspop's C ABI, in plain C, against `mtlspop emulator` subprocesses.
 *
 *   capi_test path/to/mtlspop
 *
 * ci/capi.sh runs it natively and under valgrind. Every case checks the status code and, where
 * there is one, the error code string; the suite ends by checking that every object it created
 * was freed (mtlspop_live_objects) — valgrind then checks that freeing released the memory.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mtlspop.h"

#include "emulator.h"

/* ---------------------------------------------------------------------------------------------
 * a tiny assertion helper
 */

static int failures;
static const char *current;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "FAIL %s (%s:%d): %s\n", current, __FILE__, __LINE__, #cond);  \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

#define CHECK_STR(got, want)                                                                  \
    do {                                                                                      \
        const char *g_ = (got), *w_ = (want);                                                 \
        if (!g_ || !w_ || strcmp(g_, w_) != 0) {                                              \
            fprintf(stderr, "FAIL %s (%s:%d): %s is \"%s\", want \"%s\"\n", current, __FILE__, \
                    __LINE__, #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");                  \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

/* EXPECT runs call, then checks its status and, when want_code is not NULL, the code of the
 * error it stored in err (which EXPECT frees). */
#define EXPECT(call, err, want_rc, want_code)               \
    do {                                                    \
        int rc_ = (call);                                   \
        expect_(rc_, err, want_rc, want_code, __LINE__);    \
    } while (0)

static void expect_(int rc, mtlspop_error *err, int want_rc, const char *want_code, int line) {
    const char *code = err ? mtlspop_error_code(err) : NULL;
    int ok = rc == want_rc;
    if (want_code) {
        ok = ok && code && strcmp(code, want_code) == 0;
    }
    if (want_rc == MTLSPOP_OK) {
        ok = ok && err == NULL;
    }
    if (!ok) {
        fprintf(stderr, "FAIL %s (line %d): status %d (%s), code %s, message %s; want %d (%s) %s\n",
                current, line, rc, mtlspop_strerror(rc), code ? code : "(none)",
                err ? mtlspop_error_message(err) : "(none)", want_rc, mtlspop_strerror(want_rc),
                want_code ? want_code : "");
        failures++;
    }
    if (err) {
        CHECK(mtlspop_error_free(err) == MTLSPOP_OK);
    }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *fmt(const char *f, ...) {
    static __thread char buf[8][4096];
    static __thread int i;
    char *b = buf[i++ % 8];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof buf[0], f, ap);
    va_end(ap);
    return b;
}

/* ---------------------------------------------------------------------------------------------
 * fixtures
 */

static emu E;       /* --require-pop: the resource refuses Bearer tokens */
static emu E_V1;    /* --imds-v1-only */
static char imds_url[256], v1_url[256], ca_file[1024], resource_url[256], resource_id[256],
    jwks_url[512], issuer[512], uami_client_id[128], uami_object_id[128], uami_resource_id[512],
    sami_client_id[128];
static int blackhole_port, closed_port;
static const char *cli_path; /* the mtlspop binary, argv[1] */

/* A listening socket that never accepts: connections open, requests go unanswered. */
static int listen_blackhole(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 512) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static mtlspop_client *client(const char *config) {
    mtlspop_client *c = NULL;
    mtlspop_error *err = NULL;
    int rc = mtlspop_client_new(config, &c, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    return c;
}

static mtlspop_token *acquire(mtlspop_client *c, const char *resource, const char *opts) {
    mtlspop_token *t = NULL;
    mtlspop_error *err = NULL;
    int rc = mtlspop_acquire_token(c, resource, opts, &t, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    return t;
}

static const char *pop_config(void) { return "{\"mtls_pop\":true}"; }

/* b64url_decode decodes unpadded base64url; returns the length or -1. */
static int b64url_decode(const char *in, size_t n, char *out, size_t cap) {
    int acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
              : c >= '0' && c <= '9' ? c - '0' + 52 : c == '-' ? 62 : c == '_' ? 63 : -1;
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap) {
                return -1;
            }
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* jwt_claim copies the string claim `name` (e.g. "x5t#S256") of a JWT's payload into out. */
static char *jwt_claim(const char *jwt, const char *name, char *out, size_t n) {
    const char *a = strchr(jwt, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    static char payload[16384];
    if (!b || b64url_decode(a + 1, (size_t)(b - a - 1), payload, sizeof payload) < 0) {
        return NULL;
    }
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", name);
    const char *p = strstr(payload, pat);
    if (!p) {
        return NULL;
    }
    p += strlen(pat);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < n) {
        out[i++] = *p++;
    }
    out[i] = '\0';
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * tests: basics
 */

static void test_version(void) {
    CHECK_STR(mtlspop_version(), MTLSPOP_VERSION);
    CHECK(mtlspop_version_number() == MTLSPOP_VERSION_NUMBER);
    CHECK(mtlspop_abi_version() == MTLSPOP_ABI_VERSION);
    for (int s = 0; s >= MTLSPOP_E_INTERNAL; s--) {
        CHECK(mtlspop_strerror(s) != NULL && strcmp(mtlspop_strerror(s), "unknown status") != 0);
    }
    CHECK_STR(mtlspop_strerror(MTLSPOP_E_INTERNAL - 1), "unknown status");
    CHECK_STR(mtlspop_strerror(42), "unknown status");
}

static void test_null_everywhere(void) {
    mtlspop_client *c = (mtlspop_client *)1;
    mtlspop_token *t = (mtlspop_token *)1;
    mtlspop_error *err = (mtlspop_error *)1;
    uint64_t id = 7;

    CHECK(mtlspop_client_new(NULL, NULL, NULL) == MTLSPOP_E_INVALID_ARG);
    EXPECT(mtlspop_client_new("{}", NULL, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token(NULL, "r", NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(t == NULL);
    CHECK(mtlspop_acquire_token(NULL, NULL, NULL, NULL, NULL) == MTLSPOP_E_INVALID_ARG);
    EXPECT(mtlspop_acquire_token_async(NULL, "r", NULL, NULL, NULL, &id, &err), err,
           MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(id == 0);
    CHECK(mtlspop_cancel(NULL, 1) == MTLSPOP_E_INVALID_ARG);
    mtlspop_response *r = (mtlspop_response *)1;
    EXPECT(mtlspop_call(NULL, NULL, NULL, &r, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(r == NULL);
    mtlspop_claims *cl = (mtlspop_claims *)1;
    EXPECT(mtlspop_verify(NULL, NULL, NULL, &cl, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(cl == NULL);
    CHECK(mtlspop_verify(NULL, NULL, NULL, NULL, NULL) == MTLSPOP_E_INVALID_ARG);

    CHECK(mtlspop_token_access_token(NULL) == NULL);
    CHECK(mtlspop_token_type(NULL) == NULL);
    CHECK(mtlspop_token_expires_on(NULL) == 0);
    CHECK(mtlspop_token_refresh_on(NULL) == 0);
    CHECK(mtlspop_token_source(NULL) == NULL);
    CHECK(mtlspop_token_binding_cert_pem(NULL) == NULL);
    CHECK(mtlspop_token_x5t_s256(NULL) == NULL);
    CHECK(mtlspop_error_code(NULL) == NULL);
    CHECK(mtlspop_error_message(NULL) == NULL);
    CHECK(mtlspop_error_http_status(NULL) == -1);
    CHECK(mtlspop_error_correlation_id(NULL) == NULL);
    CHECK(mtlspop_response_status(NULL) == -1);
    CHECK(mtlspop_response_header(NULL, "x") == NULL);
    CHECK(mtlspop_response_headers_json(NULL) == NULL);
    size_t len = 99;
    CHECK(mtlspop_response_body(NULL, &len) == NULL && len == 0);
    CHECK(mtlspop_response_body(NULL, NULL) == NULL);
    CHECK(mtlspop_claims_json(NULL) == NULL);
    CHECK(mtlspop_claims_token_type(NULL) == NULL);
    CHECK(mtlspop_claims_subject(NULL) == NULL);
    CHECK(mtlspop_claims_client_id(NULL) == NULL);
    CHECK(mtlspop_claims_x5t_s256(NULL) == NULL);

    CHECK(mtlspop_client_free(NULL) == MTLSPOP_OK);
    CHECK(mtlspop_token_free(NULL) == MTLSPOP_OK);
    CHECK(mtlspop_response_free(NULL) == MTLSPOP_OK);
    CHECK(mtlspop_claims_free(NULL) == MTLSPOP_OK);
    CHECK(mtlspop_error_free(NULL) == MTLSPOP_OK);
    CHECK(mtlspop_set_log_callback(NULL, NULL, MTLSPOP_LOG_DEBUG) == MTLSPOP_OK);
    (void)c;

    /* With a real client, NULL in each other position. */
    c = client(NULL);
    EXPECT(mtlspop_acquire_token(c, NULL, NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token(c, "r", NULL, NULL, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token_async(c, NULL, NULL, NULL, NULL, NULL, &err), err,
           MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token_async(c, "r", NULL, NULL, NULL, NULL, &err), err,
           MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_call(c, NULL, "{}", &r, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(mtlspop_cancel(c, 0) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_client_free(c) == MTLSPOP_OK);
}

static void expect_config_error(const char *config, int want_rc, const char *want_code,
                                const char *want_in_message) {
    mtlspop_client *c = (mtlspop_client *)1;
    mtlspop_error *err = NULL;
    int rc = mtlspop_client_new(config, &c, &err);
    CHECK(c == NULL);
    if (want_in_message && err) {
        const char *m = mtlspop_error_message(err);
        if (!m || !strstr(m, want_in_message)) {
            fprintf(stderr, "FAIL %s: config %s: message \"%s\" lacks \"%s\"\n", current, config,
                    m ? m : "(null)", want_in_message);
            failures++;
        }
    }
    EXPECT(rc, err, want_rc, want_code);
}

static void test_config_errors(void) {
    const char *A = "invalid_argument";
    expect_config_error("", MTLSPOP_E_INVALID_ARG, A, "unexpected end");
    expect_config_error("{", MTLSPOP_E_INVALID_ARG, A, NULL);
    expect_config_error("[]", MTLSPOP_E_INVALID_ARG, A, "must be a JSON object");
    expect_config_error("{} {}", MTLSPOP_E_INVALID_ARG, A, "after the JSON object");
    expect_config_error("{\"mtls_pop\":true,\"mtls_pop\":false}", MTLSPOP_E_INVALID_ARG, A, "duplicate key \"mtls_pop\"");
    expect_config_error("{\"colour\":1}", MTLSPOP_E_INVALID_ARG, A, "unknown key \"colour\"");
    expect_config_error("{\"identity\":{\"type\":\"system\",\"idd\":\"x\"}}", MTLSPOP_E_INVALID_ARG, A,
                        "config.identity: unknown key \"idd\"");
    expect_config_error("{\"mtls_pop\":\"yes\"}", MTLSPOP_E_INVALID_ARG, A, "config.mtls_pop must be true or false");
    expect_config_error("{\"timeout_ms\":\"5\"}", MTLSPOP_E_INVALID_ARG, A, "config.timeout_ms must be an integer");
    expect_config_error("{\"timeout_ms\":0}", MTLSPOP_E_INVALID_ARG, A, "config.timeout_ms");
    expect_config_error("{\"timeout_ms\":1.5}", MTLSPOP_E_INVALID_ARG, A, "config.timeout_ms");
    expect_config_error("{\"timeout_ms\":null}", MTLSPOP_E_INVALID_ARG, A, "config.timeout_ms");
    expect_config_error("{\"kind\":\"confidential_client\"}", MTLSPOP_E_INVALID_ARG, A, "config.kind");
    expect_config_error("{\"identity\":\"system\"}", MTLSPOP_E_INVALID_ARG, A, "config.identity must be a JSON object");
    expect_config_error("{\"identity\":{\"type\":\"client_id\"}}", MTLSPOP_E_INVALID_ARG, A, "config.identity.id is required");
    expect_config_error("{\"identity\":{\"type\":\"client_id\",\"id\":\"\"}}", MTLSPOP_E_INVALID_ARG, A, "must not be empty");
    expect_config_error("{\"identity\":{\"type\":\"principal\",\"id\":\"x\"}}", MTLSPOP_E_INVALID_ARG, A, "config.identity.type");
    expect_config_error("{\"identity\":{\"type\":\"system\",\"id\":\"x\"}}", MTLSPOP_E_INVALID_ARG, A, "must be absent");
    expect_config_error("{\"key\":{\"provider\":\"hsm\"}}", MTLSPOP_E_INVALID_ARG, A,
                        "config.key.provider \"hsm\" is not one of");
    expect_config_error("{\"log_level\":\"verbose\"}", MTLSPOP_E_INVALID_ARG, A, "config.log_level");
    expect_config_error("{\"endpoints\":{\"imds\":\"ftp://x\"}}", MTLSPOP_E_INVALID_ARG,
                        "invalid_managed_identity_endpoint", NULL);
    expect_config_error("{\"endpoints\":{\"token\":\"https://x\"}}", MTLSPOP_E_INVALID_ARG, A, "config.endpoints: unknown key");
    expect_config_error("{\"ca_file\":\"/nonexistent/ca.pem\"}", MTLSPOP_E_INVALID_ARG, A, "ca_file");
    expect_config_error("{\"ca_file\":\"/etc/hostname\"}", MTLSPOP_E_INVALID_ARG, A, "holds no PEM certificate");
    expect_config_error("{\"ca_file\":\"\xff\"}", MTLSPOP_E_INVALID_ARG, A, "not valid UTF-8");

    /* Valid configurations. */
    const char *good[] = {
        NULL, "{}", " { } ", "{\"kind\":\"managed_identity\"}",
        "{\"identity\":{\"type\":\"system\"},\"mtls_pop\":true,\"key\":{\"provider\":\"software\"},"
        "\"timeout_ms\":1000,\"log_level\":\"off\"}",
        "{\"identity\":{\"type\":\"object_id\",\"id\":\"x\"}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        mtlspop_client *c = client(good[i]);
        CHECK(c != NULL);
        CHECK(mtlspop_client_free(c) == MTLSPOP_OK);
    }
}

/* ---------------------------------------------------------------------------------------------
 * tests: tokens
 */

static void test_pop(void) {
    mtlspop_client *c = client(pop_config());
    time_t now = time(NULL);
    mtlspop_token *t = acquire(c, resource_id, NULL);
    if (!t) {
        mtlspop_client_free(c);
        return;
    }
    CHECK_STR(mtlspop_token_type(t), "mtls_pop");
    CHECK_STR(mtlspop_token_source(t), "identity_provider");
    const char *at = mtlspop_token_access_token(t);
    CHECK(at && strlen(at) > 100 && strncmp(at, "eyJ", 3) == 0);
    CHECK(mtlspop_token_expires_on(t) > now + 3600);
    CHECK(mtlspop_token_refresh_on(t) > now && mtlspop_token_refresh_on(t) < mtlspop_token_expires_on(t));
    const char *pem = mtlspop_token_binding_cert_pem(t);
    CHECK(pem && strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
    CHECK(pem && strstr(pem, "-----END CERTIFICATE-----\n") != NULL);
    const char *x5t = mtlspop_token_x5t_s256(t);
    char cnf[128];
    CHECK(x5t && strlen(x5t) == 43);
    CHECK(at && jwt_claim(at, "x5t#S256", cnf, sizeof cnf) && x5t && strcmp(cnf, x5t) == 0);

    /* The second acquisition is a cache hit: same token, same image. */
    mtlspop_token *t2 = acquire(c, resource_id, NULL);
    CHECK_STR(mtlspop_token_source(t2), "cache");
    CHECK_STR(mtlspop_token_access_token(t2), at);
    CHECK(mtlspop_token_access_token(t2) == at);
    CHECK(t2 != t);
    /* "/.default" is the same resource. */
    mtlspop_token *t3 = acquire(c, fmt("%s/.default", resource_id), NULL);
    CHECK_STR(mtlspop_token_access_token(t3), at);
    /* force_refresh: a new token, bound to the same certificate. */
    mtlspop_token *t4 = acquire(c, resource_id, "{\"force_refresh\":true}");
    CHECK_STR(mtlspop_token_source(t4), "identity_provider");
    CHECK(mtlspop_token_access_token(t4) && strcmp(mtlspop_token_access_token(t4), at) != 0);
    CHECK_STR(mtlspop_token_x5t_s256(t4), x5t);
    /* Tokens stay valid after the client is freed, and after a newer token replaced them. */
    CHECK(mtlspop_client_free(c) == MTLSPOP_OK);
    CHECK_STR(mtlspop_token_type(t), "mtls_pop");
    CHECK(mtlspop_token_access_token(t2) == at);
    CHECK(mtlspop_token_free(t) == MTLSPOP_OK);
    CHECK(mtlspop_token_free(t2) == MTLSPOP_OK);
    CHECK(mtlspop_token_free(t3) == MTLSPOP_OK);
    CHECK(mtlspop_token_free(t4) == MTLSPOP_OK);
}

static void test_bearer(void) {
    mtlspop_client *c = client(NULL); /* default: Bearer */
    mtlspop_token *t = acquire(c, resource_id, NULL);
    CHECK_STR(mtlspop_token_type(t), "Bearer");
    CHECK(mtlspop_token_binding_cert_pem(t) == NULL);
    CHECK(mtlspop_token_x5t_s256(t) == NULL);
    CHECK(mtlspop_token_access_token(t) != NULL);
    /* Options override the client's default, and the two token types never mix. */
    mtlspop_token *p = acquire(c, resource_id, "{\"mtls_pop\":true}");
    CHECK_STR(mtlspop_token_type(p), "mtls_pop");
    mtlspop_token *b = acquire(c, resource_id, "{\"mtls_pop\":false}");
    CHECK_STR(mtlspop_token_type(b), "Bearer");
    CHECK_STR(mtlspop_token_source(b), "cache");
    mtlspop_token_free(t);
    mtlspop_token_free(p);
    mtlspop_token_free(b);
    mtlspop_client_free(c);
}

/* "cache_only" answers from the cache or says NOT_FOUND at once; a miss starts no fetch, so a
 * later cache-only call still misses, and only a real acquisition fills the cache. */
static void test_cache_only(void) {
    mtlspop_client *c = client("{\"log_level\":\"off\"}");
    mtlspop_token *t = NULL;
    mtlspop_error *err = NULL;
    const char *only = "{\"cache_only\":true,\"mtls_pop\":true}";
    for (int i = 0; i < 2; i++) {
        EXPECT(mtlspop_acquire_token(c, resource_id, only, &t, &err), err, MTLSPOP_E_NOT_FOUND, "not_cached");
        CHECK(t == NULL);
        usleep(100 * 1000); /* time for a fetch to land, had the miss started one */
    }
    EXPECT(mtlspop_acquire_token(c, resource_id, "{\"cache_only\":true,\"force_refresh\":true}", &t, &err), err,
           MTLSPOP_E_INVALID_ARG, "invalid_argument");
    mtlspop_token *fetched = acquire(c, resource_id, "{\"mtls_pop\":true}");
    CHECK_STR(mtlspop_token_source(fetched), "identity_provider");
    mtlspop_token *hit = acquire(c, resource_id, only);
    CHECK_STR(mtlspop_token_source(hit), "cache");
    CHECK_STR(mtlspop_token_type(hit), "mtls_pop");
    CHECK_STR(mtlspop_token_access_token(hit), mtlspop_token_access_token(fetched));
    mtlspop_token_free(fetched);
    mtlspop_token_free(hit);
    mtlspop_client_free(c);
}

/* A confidential client: the emulator's default app, with its certificate on the mTLS endpoint
 * (PoP) and on the classic endpoint (Bearer); the "resource" argument is the scope. */
static void test_confidential(void) {
    char authority[256], client_id[64], cert[512], key[512], mtls[256];
    CHECK(emu_get(&E, "\"app\"", "authority", authority, sizeof authority) != NULL);
    CHECK(emu_get(&E, "\"app\"", "client_id", client_id, sizeof client_id) != NULL);
    CHECK(emu_get(&E, "\"app\"", "cert_file", cert, sizeof cert) != NULL);
    CHECK(emu_get(&E, "\"app\"", "key_file", key, sizeof key) != NULL);
    CHECK(emu_get(&E, "\"app\"", "mtls_endpoint", mtls, sizeof mtls) != NULL);
    const char *config = fmt("{\"kind\":\"confidential\",\"authority\":\"%s\",\"client_id\":\"%s\","
                             "\"certificate\":{\"cert_file\":\"%s\",\"key_file\":\"%s\"},"
                             "\"mtls_endpoint\":\"%s\",\"mtls_pop\":true,\"log_level\":\"off\"}",
                             authority, client_id, cert, key, mtls);
    mtlspop_client *c = client(config);
    const char *scope = fmt("%s/.default", resource_id);
    mtlspop_token *t = acquire(c, scope, NULL);
    CHECK_STR(mtlspop_token_type(t), "mtls_pop");
    CHECK(mtlspop_token_binding_cert_pem(t) != NULL);
    mtlspop_response *r = NULL;
    mtlspop_error *err = NULL;
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\"}", resource_url), &r, &err), err, MTLSPOP_OK, NULL);
    CHECK(mtlspop_response_status(r) == 200);
    mtlspop_response_free(r);
    mtlspop_token *b = acquire(c, scope, "{\"mtls_pop\":false}");
    CHECK_STR(mtlspop_token_type(b), "Bearer");
    mtlspop_token_free(t);
    mtlspop_token_free(b);
    mtlspop_client_free(c);
    /* A secret cannot do mTLS: the documented code, no request sent. */
    mtlspop_client *s = client(fmt("{\"kind\":\"confidential\",\"authority\":\"%s\",\"client_id\":\"%s\","
                                   "\"secret\":\"x\",\"mtls_pop\":true,\"log_level\":\"off\"}", authority, client_id));
    mtlspop_token *none = NULL;
    EXPECT(mtlspop_acquire_token(s, scope, NULL, &none, &err), err, MTLSPOP_E_INVALID_ARG, "mtls_certificate_not_provided");
    CHECK(none == NULL);
    mtlspop_client_free(s);
    expect_config_error("{\"kind\":\"confidential\",\"client_id\":\"x\",\"secret\":\"y\"}", MTLSPOP_E_INVALID_ARG,
                        "invalid_argument", "config.authority is required");
    expect_config_error(fmt("{\"kind\":\"confidential\",\"authority\":\"%s\",\"client_id\":\"x\"}", authority),
                        MTLSPOP_E_INVALID_ARG, "invalid_argument", "exactly one of config.certificate, config.secret and config.federated");
    expect_config_error("{\"kind\":\"confidential\",\"identity\":{\"type\":\"system\"}}", MTLSPOP_E_INVALID_ARG,
                        "invalid_argument", "unknown key \"identity\"");

    /* Two-leg FIC: leg 1 is this host's managed identity (a bound PoP token), leg 2 the app
     * presenting it as a jwt-pop assertion over mTLS with leg 1's certificate. */
    mtlspop_client *f = client(fmt("{\"kind\":\"confidential\",\"authority\":\"%s\",\"client_id\":\"%s\","
                                   "\"federated\":{\"managed_identity\":{\"identity\":{\"type\":\"system\"}}},"
                                   "\"mtls_endpoint\":\"%s\",\"mtls_pop\":true,\"log_level\":\"off\"}",
                                   authority, client_id, mtls));
    mtlspop_token *ft = acquire(f, scope, NULL);
    CHECK_STR(mtlspop_token_type(ft), "mtls_pop");
    EXPECT(mtlspop_call(f, ft, fmt("{\"url\":\"%s\"}", resource_url), &r, &err), err, MTLSPOP_OK, NULL);
    CHECK(mtlspop_response_status(r) == 200);
    mtlspop_response_free(r);
    mtlspop_token_free(ft);
    mtlspop_client_free(f);
    expect_config_error(fmt("{\"kind\":\"confidential\",\"authority\":\"%s\",\"client_id\":\"x\","
                            "\"federated\":{\"managed_identity\":{},\"confidential\":{}}}", authority),
                        MTLSPOP_E_INVALID_ARG, "invalid_argument", "exactly one of managed_identity and confidential");
    expect_config_error(fmt("{\"kind\":\"confidential\",\"authority\":\"%s\",\"client_id\":\"x\",\"secret\":\"s\","
                            "\"federated\":{\"managed_identity\":{}}}", authority),
                        MTLSPOP_E_INVALID_ARG, "invalid_argument", "exactly one of config.certificate, config.secret and config.federated");
}

static void test_user_assigned(void) {
    struct { const char *type, *id; } ids[] = {
        {"client_id", uami_client_id}, {"resource_id", uami_resource_id}, {"object_id", uami_object_id}};
    for (size_t i = 0; i < 3; i++) {
        mtlspop_client *c = client(fmt("{\"identity\":{\"type\":\"%s\",\"id\":\"%s\"}}", ids[i].type, ids[i].id));
        mtlspop_token *t = acquire(c, resource_id, NULL);
        char appid[128];
        const char *at = mtlspop_token_access_token(t);
        CHECK(at && jwt_claim(at, "appid", appid, sizeof appid) && strcmp(appid, uami_client_id) == 0);
        CHECK(at && jwt_claim(at, "oid", appid, sizeof appid) && strcmp(appid, uami_object_id) == 0);
        mtlspop_token_free(t);
        mtlspop_client_free(c);
    }
    /* And an mTLS PoP token for a user-assigned identity. */
    mtlspop_client *c = client(fmt("{\"identity\":{\"type\":\"client_id\",\"id\":\"%s\"},\"mtls_pop\":true}", uami_client_id));
    mtlspop_token *t = acquire(c, resource_id, NULL);
    char appid[128];
    CHECK_STR(mtlspop_token_type(t), "mtls_pop");
    const char *at = mtlspop_token_access_token(t);
    CHECK(at && jwt_claim(at, "appid", appid, sizeof appid) && strcmp(appid, uami_client_id) == 0);
    mtlspop_token_free(t);
    mtlspop_client_free(c);
    /* The system-assigned identity is another one. */
    c = client(NULL);
    t = acquire(c, resource_id, NULL);
    at = mtlspop_token_access_token(t);
    CHECK(at && jwt_claim(at, "appid", appid, sizeof appid) && strcmp(appid, sami_client_id) == 0);
    mtlspop_token_free(t);
    mtlspop_client_free(c);
}

/* The variables that select a managed-identity source; each source test starts from none. */
static const char *const source_vars[] = {
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT",
    "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "SSL_CERT_FILE", NULL};

/* One source end to end through the C ABI: a Bearer token for the system-assigned identity,
 * then a cache hit, then the source's refusal of mTLS PoP, then a call to the resource. */
static void check_source(const char *const *args) {
    emu s = {0};
    if (emu_start(&s, cli_path, args) != 0) {
        fprintf(stderr, "FAIL %s: cannot start the emulator\n", current);
        failures++;
        return;
    }
    for (const char *const *k = source_vars; *k; k++) {
        unsetenv(*k);
        char v[4096];
        if (emu_get(&s, "\"env\"", *k, v, sizeof v)) {
            setenv(*k, v, 1);
        }
    }
    char object_id[128] = "", url[256] = "";
    emu_get(&s, "\"system_assigned\"", "object_id", object_id, sizeof object_id);
    emu_get(&s, "\"urls\"", "resource", url, sizeof url);
    CHECK(getenv("IDENTITY_ENDPOINT") != NULL);

    mtlspop_client *c = client("{\"log_level\":\"off\"}");
    mtlspop_token *t = acquire(c, resource_id, NULL);
    char sub[128];
    CHECK_STR(mtlspop_token_type(t), "Bearer");
    CHECK_STR(mtlspop_token_source(t), "identity_provider");
    const char *at = mtlspop_token_access_token(t);
    CHECK(at && jwt_claim(at, "sub", sub, sizeof sub) && strcmp(sub, object_id) == 0);
    mtlspop_token *hit = acquire(c, resource_id, NULL);
    CHECK_STR(mtlspop_token_source(hit), "cache");
    mtlspop_token *pop = NULL;
    mtlspop_error *err = NULL;
    EXPECT(mtlspop_acquire_token(c, resource_id, "{\"mtls_pop\":true}", &pop, &err), err,
           MTLSPOP_E_UNSUPPORTED, "mtls_pop_not_supported_for_environment");
    CHECK(pop == NULL);
    mtlspop_response *r = NULL;
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\"}", url), &r, &err), err, MTLSPOP_OK, NULL);
    CHECK(mtlspop_response_status(r) == 200);
    mtlspop_response_free(r);
    mtlspop_token_free(t);
    mtlspop_token_free(hit);
    mtlspop_client_free(c);
    emu_stop(&s);

    /* Back to the IMDS emulator the other tests use. */
    for (const char *const *k = source_vars; *k; k++) {
        unsetenv(*k);
    }
    emu_setenv(&E);
}

/* App Service: IDENTITY_ENDPOINT plus the IDENTITY_HEADER secret. */
static void test_app_service(void) {
    const char *args[] = {"--source", "appservice", NULL};
    check_source(args);
}

/* Azure Arc: the agent answers 401 naming a key file, which clients read only from
 * /var/opt/azcmagent/tokens — so the emulator must write there, which needs root. */
static void test_azure_arc(void) {
    if (geteuid() != 0) {
        printf("SKIP %s: the Arc key directory /var/opt/azcmagent/tokens needs root\n", current);
        return;
    }
    const char *args[] = {"--source", "arc", "--arc-key-dir", "/var/opt/azcmagent/tokens", NULL};
    check_source(args);
}

static void test_acquire_errors(void) {
    mtlspop_client *c = client(NULL);
    mtlspop_token *t = (mtlspop_token *)1;
    mtlspop_error *err;
    EXPECT(mtlspop_acquire_token(c, "", NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(t == NULL);
    EXPECT(mtlspop_acquire_token(c, "  ", NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token(c, "r", "{\"force\":true}", &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token(c, "r", "{\"mtls_pop\":1}", &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token(c, "r", "{\"claims\":{}}", &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token(c, "r", "{\"timeout_ms\":-1}", &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token(c, "r", "", &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    mtlspop_client_free(c);

    /* An identity the platform does not know: IMDS answers 400. */
    c = client("{\"identity\":{\"type\":\"client_id\",\"id\":\"00000000-0000-0000-0000-000000000000\"}}");
    err = NULL;
    int rc = mtlspop_acquire_token(c, resource_id, NULL, &t, &err);
    CHECK(t == NULL);
    CHECK(mtlspop_error_http_status(err) == 400);
    CHECK(mtlspop_error_correlation_id(err) && strlen(mtlspop_error_correlation_id(err)) == 36);
    CHECK(mtlspop_error_message(err) && strstr(mtlspop_error_message(err), "managed_identity_request_failed"));
    EXPECT(rc, err, MTLSPOP_E_IDENTITY, "managed_identity_request_failed");
    mtlspop_client_free(c);

    /* mTLS PoP on a host with IMDS v1 only. */
    c = client(fmt("{\"mtls_pop\":true,\"endpoints\":{\"imds\":\"%s\"}}", v1_url));
    EXPECT(mtlspop_acquire_token(c, resource_id, NULL, &t, &err), err, MTLSPOP_E_UNSUPPORTED,
           "mtls_pop_token_not_supported_in_imds_v1");
    /* ... where Bearer works. */
    mtlspop_token *b = acquire(c, resource_id, "{\"mtls_pop\":false}");
    CHECK_STR(mtlspop_token_type(b), "Bearer");
    mtlspop_token_free(b);
    mtlspop_client_free(c);
}

static void test_env_and_trust(void) {
    /* The environment is read live when a client is created: without SSL_CERT_FILE the
     * emulator's token host is not trusted, with ca_file it is again. */
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", getenv("SSL_CERT_FILE") ? getenv("SSL_CERT_FILE") : "");
    unsetenv("SSL_CERT_FILE");
    mtlspop_client *c = client(pop_config());
    mtlspop_token *t = NULL;
    mtlspop_error *err;
    EXPECT(mtlspop_acquire_token(c, resource_id, NULL, &t, &err), err, MTLSPOP_E_NETWORK, "network_error");
    mtlspop_client_free(c);
    c = client(fmt("{\"mtls_pop\":true,\"ca_file\":\"%s\"}", ca_file));
    t = acquire(c, resource_id, NULL);
    CHECK_STR(mtlspop_token_type(t), "mtls_pop");
    mtlspop_token_free(t);
    mtlspop_client_free(c);
    setenv("SSL_CERT_FILE", saved, 1);

    /* endpoints.imds overrides AZURE_POD_IDENTITY_AUTHORITY_HOST. */
    setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", fmt("http://127.0.0.1:%d", closed_port), 1);
    c = client(fmt("{\"endpoints\":{\"imds\":\"%s\"}}", imds_url));
    t = acquire(c, resource_id, NULL);
    mtlspop_token_free(t);
    mtlspop_client_free(c);
    setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds_url, 1);
}

/* ---------------------------------------------------------------------------------------------
 * tests: calling the resource, verifying tokens
 */

static void test_call(void) {
    mtlspop_client *c = client(pop_config());
    mtlspop_token *t = acquire(c, resource_id, NULL);
    mtlspop_response *r = NULL;
    mtlspop_error *err = NULL;
    /* The resource echoes the method, the body's length and X-Mtlspop-Echo (every value), so
     * a dropped header, value, method or body shows. */
    int rc = mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"headers\":{\"X-Mtlspop-Echo\":[\"a\",\"b\"],\"Accept\":\"application/json\"}}", resource_url), &r, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    CHECK(mtlspop_response_status(r) == 200);
    size_t len = 0;
    const uint8_t *body = mtlspop_response_body(r, &len);
    CHECK(body && len > 0 && body[len] == '\0');
    CHECK(body && strstr((const char *)body, "hello from the mtlspop emulator resource"));
    CHECK(body && strstr((const char *)body, "\"token_type\":\"mtls_pop\""));
    CHECK(body && strstr((const char *)body, mtlspop_token_x5t_s256(t)));
    CHECK(body && strstr((const char *)body, "\"method\":\"GET\""));
    CHECK(body && strstr((const char *)body, "\"body_bytes\":0"));
    CHECK(body && strstr((const char *)body, "\"echo\":\"a, b\""));
    CHECK(mtlspop_response_header(r, "content-type") && strstr(mtlspop_response_header(r, "content-type"), "application/json"));
    CHECK(mtlspop_response_header(r, "X-Absent") == NULL);
    CHECK(mtlspop_response_header(r, NULL) == NULL);
    CHECK(mtlspop_response_headers_json(r) && strstr(mtlspop_response_headers_json(r), "\"Content-Type\":["));
    CHECK(mtlspop_response_free(r) == MTLSPOP_OK);
    CHECK(mtlspop_response_free(r) == MTLSPOP_E_INVALID_ARG);

    /* A POST with a binary body (4 bytes, a NUL among them), and a PUT with a text body. */
    rc = mtlspop_call(c, t, fmt("{\"method\":\"POST\",\"url\":\"%s\",\"body_base64\":\"AAEC/w==\",\"headers\":{\"X-Mtlspop-Echo\":\"post\"},\"timeout_ms\":30000}", resource_url), &r, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    CHECK(mtlspop_response_status(r) == 200);
    body = mtlspop_response_body(r, NULL);
    CHECK(body && strstr((const char *)body, "\"method\":\"POST\""));
    CHECK(body && strstr((const char *)body, "\"body_bytes\":4"));
    CHECK(body && strstr((const char *)body, "\"echo\":\"post\""));
    mtlspop_response_free(r);
    rc = mtlspop_call(c, t, fmt("{\"method\":\"PUT\",\"url\":\"%s\",\"body\":\"h\u00e9llo\"}", resource_url), &r, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    body = mtlspop_response_body(r, NULL);
    CHECK(body && strstr((const char *)body, "\"method\":\"PUT\""));
    CHECK(body && strstr((const char *)body, "\"body_bytes\":6")); /* UTF-8: é is 2 bytes */
    CHECK(body && !strstr((const char *)body, "\"echo\""));
    mtlspop_response_free(r);

    /* The resource requires PoP: a Bearer token is refused with 401, which is not a failure of
     * the call. */
    mtlspop_token *b = acquire(c, resource_id, "{\"mtls_pop\":false}");
    rc = mtlspop_call(c, b, fmt("{\"url\":\"%s\"}", resource_url), &r, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    CHECK(mtlspop_response_status(r) == 401);
    CHECK(mtlspop_response_header(r, "WWW-Authenticate") != NULL);
    mtlspop_response_free(r);

    /* Errors. */
    r = (mtlspop_response *)1;
    const char *A = "invalid_argument";
    EXPECT(mtlspop_call(c, t, "{\"url\":\"http://127.0.0.1/\"}", &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    CHECK(r == NULL);
    EXPECT(mtlspop_call(c, t, "{}", &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, "{\"url\":5}", &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"verb\":\"GET\"}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"body\":\"x\",\"body_base64\":\"eA==\"}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"body_base64\":\"***\"}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"headers\":{\"Bad Name\":\"x\"}}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"headers\":{\"X\":\"a\\r\\nB: c\"}}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"headers\":{\"X\":1}}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\",\"method\":\"G T\"}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"https://127.0.0.1:%d/\"}", closed_port), &r, &err), err, MTLSPOP_E_NETWORK, "network_error");
    double t0 = now_ms();
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"https://127.0.0.1:%d/\",\"timeout_ms\":300}", blackhole_port), &r, &err), err, MTLSPOP_E_TIMEOUT, "request_timeout");
    CHECK(now_ms() - t0 < 10000);

    mtlspop_token_free(b);
    mtlspop_token_free(t);
    mtlspop_client_free(c);
}

static void test_verify(void) {
    mtlspop_client *c = client(pop_config());
    mtlspop_client *other = client(pop_config()); /* another binding key, another certificate */
    mtlspop_token *t = acquire(c, resource_id, NULL);
    mtlspop_token *o = acquire(other, resource_id, NULL);
    const char *at = mtlspop_token_access_token(t);
    const char *pem = mtlspop_token_binding_cert_pem(t);
    const char *cfg = fmt("{\"issuer\":\"%s\",\"audiences\":[\"%s\"],\"jwks_url\":\"%s\",\"ca_file\":\"%s\"}",
                          issuer, resource_id, jwks_url, ca_file);
    char authz[8192];
    snprintf(authz, sizeof authz, "mtls_pop %s", at ? at : "");
    mtlspop_claims *cl = NULL;
    mtlspop_error *err = NULL;

    int rc = mtlspop_verify(cfg, authz, pem, &cl, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    CHECK_STR(mtlspop_claims_token_type(cl), "mtls_pop");
    CHECK_STR(mtlspop_claims_x5t_s256(cl), mtlspop_token_x5t_s256(t));
    CHECK_STR(mtlspop_claims_client_id(cl), sami_client_id);
    CHECK(mtlspop_claims_subject(cl) && strlen(mtlspop_claims_subject(cl)) > 0);
    const char *js = mtlspop_claims_json(cl);
    CHECK(js && js[0] == '{' && strstr(js, "\"cnf\":{\"x5t#S256\":") && strstr(js, resource_id));
    CHECK(mtlspop_claims_free(cl) == MTLSPOP_OK);
    CHECK(mtlspop_claims_free(cl) == MTLSPOP_E_INVALID_ARG);

    /* The same token with another certificate: refused, whatever the scheme. */
    cl = (mtlspop_claims *)1;
    err = NULL;
    rc = mtlspop_verify(cfg, authz, mtlspop_token_binding_cert_pem(o), &cl, &err);
    CHECK(cl == NULL);
    CHECK(mtlspop_error_http_status(err) == 401);
    CHECK(mtlspop_error_message(err) && strstr(mtlspop_error_message(err), "bound to a different certificate"));
    EXPECT(rc, err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    char bearer[8192];
    snprintf(bearer, sizeof bearer, "Bearer %s", at ? at : "");
    EXPECT(mtlspop_verify(cfg, bearer, mtlspop_token_binding_cert_pem(o), &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    EXPECT(mtlspop_verify(cfg, authz, NULL, &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    EXPECT(mtlspop_verify(cfg, authz, "", &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    EXPECT(mtlspop_verify(cfg, "mtls_pop not-a-jwt", pem, &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    EXPECT(mtlspop_verify(cfg, "", pem, &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    /* Wrong audience, wrong issuer. */
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"api://other\"],\"jwks_url\":\"%s\",\"ca_file\":\"%s\"}", jwks_url, ca_file),
                          authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    EXPECT(mtlspop_verify(fmt("{\"issuer\":\"https://evil/\",\"audiences\":[\"%s\"],\"jwks_url\":\"%s\",\"ca_file\":\"%s\"}", resource_id, jwks_url, ca_file),
                          authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");

    /* An unbound Bearer token is accepted only with allow_unbound. */
    mtlspop_token *b = acquire(c, resource_id, "{\"mtls_pop\":false}");
    snprintf(bearer, sizeof bearer, "Bearer %s", mtlspop_token_access_token(b));
    EXPECT(mtlspop_verify(cfg, bearer, NULL, &cl, &err), err, MTLSPOP_E_INVALID_TOKEN, "invalid_token");
    rc = mtlspop_verify(fmt("{\"audiences\":[\"%s\"],\"jwks_url\":\"%s\",\"ca_file\":\"%s\",\"allow_unbound\":true}", resource_id, jwks_url, ca_file),
                        bearer, NULL, &cl, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    CHECK_STR(mtlspop_claims_token_type(cl), "Bearer");
    CHECK_STR(mtlspop_claims_x5t_s256(cl), "");
    mtlspop_claims_free(cl);

    /* The key set inline: fetched here through mtlspop_call, the way a service might ship it. */
    mtlspop_response *r = NULL;
    rc = mtlspop_call(c, b, fmt("{\"url\":\"%s\"}", jwks_url), &r, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    CHECK(mtlspop_response_status(r) == 200);
    const char *jwks = r ? (const char *)mtlspop_response_body(r, NULL) : "{}";
    char *inline_cfg = malloc(strlen(jwks) + 1024);
    sprintf(inline_cfg, "{\"audiences\":[\"%s\"],\"jwks\":%s,\"leeway_s\":5}", resource_id, jwks);
    rc = mtlspop_verify(inline_cfg, authz, pem, &cl, &err);
    EXPECT(rc, err, MTLSPOP_OK, NULL);
    mtlspop_claims_free(cl);
    free(inline_cfg);
    mtlspop_response_free(r);

    /* Configuration and argument errors. */
    const char *A = "invalid_argument";
    EXPECT(mtlspop_verify("{}", authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"%s\"]}", resource_id), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"%s\"],\"jwks_url\":\"%s\",\"jwks\":{\"keys\":[]}}", resource_id, jwks_url), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"%s\"],\"jwks\":{\"key\":[]}}", resource_id), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[],\"jwks\":{\"keys\":[]}}"), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"a\"],\"jwks\":{\"keys\":[]},\"leeway_s\":9999}"), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"a\"],\"jwks\":{\"keys\":[]},\"strict\":true}"), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(cfg, authz, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(cfg, authz, "not pem", &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    /* A key source that can never work is bad configuration, found when the config is read:
     * a jwks_url that is not https (nor http on loopback) or not a URL at all, and an inline
     * set none of whose keys is usable. */
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"%s\"],\"jwks_url\":\"http://jwks.example/keys\"}", resource_id), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"%s\"],\"jwks_url\":\"keys.json\"}", resource_id), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(fmt("{\"audiences\":[\"%s\"],\"jwks\":{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}}", resource_id), authz, pem, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    /* An unreachable key set is not the token's fault: 503, not 401. */
    err = NULL;
    rc = mtlspop_verify(fmt("{\"audiences\":[\"%s\"],\"jwks_url\":\"https://127.0.0.1:%d/keys\"}", resource_id, closed_port), authz, pem, &cl, &err);
    CHECK(mtlspop_error_http_status(err) == 503);
    EXPECT(rc, err, MTLSPOP_E_NETWORK, "network_error");

    mtlspop_token_free(b);
    mtlspop_token_free(t);
    mtlspop_token_free(o);
    mtlspop_client_free(c);
    mtlspop_client_free(other);
}

/* ---------------------------------------------------------------------------------------------
 * tests: async, cancel, timeouts
 */

typedef struct req {
    uint64_t id;
    int called;
    int status;
    char code[64];
    mtlspop_token *token;
} req;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int completions;
static pthread_t main_thread;

static void on_done(void *user, uint64_t id, int status, mtlspop_token *token, mtlspop_error *err) {
    req *r = user;
    pthread_mutex_lock(&mu);
    r->called++;
    r->status = status;
    r->token = token;
    if (r->id == 0) {
        r->id = id;
    }
    snprintf(r->code, sizeof r->code, "%s", err ? mtlspop_error_code(err) : "");
    if (pthread_equal(pthread_self(), main_thread)) {
        r->status = 12345; /* must never run on the caller's thread */
    }
    completions++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    mtlspop_error_free(err); /* the callback owns err */
}

/* wait_completions waits until `n` completions arrived since the counter was reset. */
static int wait_completions(int n, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&mu);
    while (completions < n) {
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    int got = completions;
    pthread_mutex_unlock(&mu);
    return got;
}

static void reset_completions(void) {
    pthread_mutex_lock(&mu);
    completions = 0;
    pthread_mutex_unlock(&mu);
}

enum { NASYNC = 100 };

static void test_async_100(void) {
    mtlspop_client *c = client(pop_config());
    static req reqs[NASYNC];
    memset(reqs, 0, sizeof reqs);
    reset_completions();
    for (int i = 0; i < NASYNC; i++) {
        mtlspop_error *err = NULL;
        uint64_t id = 0;
        pthread_mutex_lock(&mu); /* so the callback sees reqs[i].id set */
        int rc = mtlspop_acquire_token_async(c, fmt("api://async-%d", i), NULL, on_done, &reqs[i], &id, &err);
        reqs[i].id = id;
        pthread_mutex_unlock(&mu);
        EXPECT(rc, err, MTLSPOP_OK, NULL);
        CHECK(id != 0);
    }
    CHECK(wait_completions(NASYNC, 120000) == NASYNC);
    char *x5t = NULL;
    for (int i = 0; i < NASYNC; i++) {
        CHECK(reqs[i].called == 1);
        CHECK(reqs[i].status == MTLSPOP_OK);
        for (int j = 0; j < i; j++) {
            CHECK(reqs[i].id != reqs[j].id);
        }
        if (reqs[i].token) {
            /* One binding certificate for all: the mint was shared. */
            const char *x = mtlspop_token_x5t_s256(reqs[i].token);
            if (!x5t) {
                x5t = strdup(x);
            }
            CHECK_STR(x, x5t);
            CHECK_STR(mtlspop_token_type(reqs[i].token), "mtls_pop");
            CHECK(mtlspop_token_free(reqs[i].token) == MTLSPOP_OK);
        }
    }
    free(x5t);
    /* A cache hit through the async path still completes on a library thread. */
    memset(reqs, 0, sizeof reqs);
    reset_completions();
    uint64_t id;
    mtlspop_error *err;
    EXPECT(mtlspop_acquire_token_async(c, "api://async-0", NULL, on_done, &reqs[0], &id, &err), err, MTLSPOP_OK, NULL);
    CHECK(wait_completions(1, 30000) == 1);
    CHECK(reqs[0].status == MTLSPOP_OK);
    CHECK_STR(mtlspop_token_source(reqs[0].token), "cache");
    mtlspop_token_free(reqs[0].token);
    /* Argument errors are reported at once and never complete. */
    reset_completions();
    EXPECT(mtlspop_acquire_token_async(c, "r", "{\"nope\":1}", on_done, &reqs[1], &id, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    EXPECT(mtlspop_acquire_token_async(c, "\xc3\x28", NULL, on_done, &reqs[1], &id, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    mtlspop_client_free(c);
    usleep(50 * 1000);
    CHECK(wait_completions(0, 0) == 0);
}

static const char *blackhole_config(int timeout_ms) {
    return fmt("{\"endpoints\":{\"imds\":\"http://127.0.0.1:%d\"},\"timeout_ms\":%d}", blackhole_port, timeout_ms);
}

static void test_cancel(void) {
    mtlspop_client *c = client(blackhole_config(60000));
    req r = {0};
    reset_completions();
    uint64_t id = 0;
    mtlspop_error *err;
    EXPECT(mtlspop_acquire_token_async(c, resource_id, NULL, on_done, &r, &id, &err), err, MTLSPOP_OK, NULL);
    usleep(100 * 1000);
    CHECK(wait_completions(1, 0) == 0); /* still waiting on the silent IMDS */
    double t0 = now_ms();
    CHECK(mtlspop_cancel(c, id) == MTLSPOP_OK);
    CHECK(wait_completions(1, 10000) == 1);
    CHECK(now_ms() - t0 < 5000);
    CHECK(r.called == 1 && r.status == MTLSPOP_E_CANCELED && r.token == NULL);
    CHECK_STR(r.code, "canceled");
    CHECK(mtlspop_cancel(c, id) == MTLSPOP_E_NOT_FOUND);
    CHECK(mtlspop_cancel(c, 999999999) == MTLSPOP_E_NOT_FOUND);
    mtlspop_client_free(c);
}

static void test_timeouts(void) {
    /* The client's timeout_ms bounds a blocking acquisition. */
    mtlspop_client *c = client(blackhole_config(300));
    mtlspop_token *t = NULL;
    mtlspop_error *err;
    double t0 = now_ms();
    EXPECT(mtlspop_acquire_token(c, resource_id, NULL, &t, &err), err, MTLSPOP_E_TIMEOUT, "request_timeout");
    CHECK(now_ms() - t0 < 10000);
    mtlspop_client_free(c);

    /* So does the call's own timeout_ms, blocking and async. */
    c = client(blackhole_config(60000));
    t0 = now_ms();
    EXPECT(mtlspop_acquire_token(c, resource_id, "{\"timeout_ms\":200}", &t, &err), err, MTLSPOP_E_TIMEOUT, "request_timeout");
    CHECK(now_ms() - t0 < 10000);
    req r = {0};
    reset_completions();
    uint64_t id;
    EXPECT(mtlspop_acquire_token_async(c, resource_id, "{\"timeout_ms\":200,\"mtls_pop\":true}", on_done, &r, &id, &err), err, MTLSPOP_OK, NULL);
    CHECK(wait_completions(1, 10000) == 1);
    CHECK(r.status == MTLSPOP_E_TIMEOUT);
    CHECK_STR(r.code, "request_timeout");
    mtlspop_client_free(c);
}

static void test_free_while_in_flight(void) {
    /* Freeing a client cancels what it has in flight; every request still completes once. */
    mtlspop_client *c = client(blackhole_config(60000));
    static req reqs[8];
    memset(reqs, 0, sizeof reqs);
    reset_completions();
    for (int i = 0; i < 8; i++) {
        uint64_t id;
        mtlspop_error *err;
        EXPECT(mtlspop_acquire_token_async(c, fmt("api://inflight-%d", i), i % 2 ? "{\"mtls_pop\":true}" : NULL,
                                           on_done, &reqs[i], &id, &err), err, MTLSPOP_OK, NULL);
    }
    usleep(50 * 1000);
    double t0 = now_ms();
    CHECK(mtlspop_client_free(c) == MTLSPOP_OK);
    CHECK(wait_completions(8, 10000) == 8);
    CHECK(now_ms() - t0 < 5000);
    for (int i = 0; i < 8; i++) {
        CHECK(reqs[i].called == 1 && reqs[i].status == MTLSPOP_E_CANCELED && reqs[i].token == NULL);
    }
}

typedef struct blocking_arg {
    mtlspop_client *c;
    int rc;
    char code[64];
} blocking_arg;

static void *blocking_acquire(void *p) {
    blocking_arg *a = p;
    mtlspop_token *t = NULL;
    mtlspop_error *err = NULL;
    a->rc = mtlspop_acquire_token(a->c, resource_id, NULL, &t, &err);
    snprintf(a->code, sizeof a->code, "%s", err ? mtlspop_error_code(err) : "");
    mtlspop_error_free(err);
    mtlspop_token_free(t);
    return NULL;
}

static void test_free_while_blocking(void) {
    blocking_arg a = {.c = client(blackhole_config(60000))};
    pthread_t th;
    pthread_create(&th, NULL, blocking_acquire, &a);
    usleep(200 * 1000);
    double t0 = now_ms();
    CHECK(mtlspop_client_free(a.c) == MTLSPOP_OK);
    pthread_join(th, NULL);
    CHECK(now_ms() - t0 < 5000);
    CHECK(a.rc == MTLSPOP_E_CANCELED);
    CHECK_STR(a.code, "canceled");
}

/* ---------------------------------------------------------------------------------------------
 * tests: ABI abuse
 */

static void test_stale_and_double_free(void) {
    mtlspop_client *c = client(NULL);
    mtlspop_token *t = acquire(c, resource_id, NULL);
    mtlspop_token *t2 = acquire(c, resource_id, NULL);
    CHECK(mtlspop_token_free(t) == MTLSPOP_OK);
    /* t is stale: every use is refused, and it never reaches t2 (which may reuse its slot). */
    CHECK(mtlspop_token_access_token(t) == NULL);
    CHECK(mtlspop_token_type(t) == NULL);
    CHECK(mtlspop_token_expires_on(t) == 0);
    CHECK(mtlspop_token_free(t) == MTLSPOP_E_INVALID_ARG);
    mtlspop_token *t3 = acquire(c, resource_id, NULL); /* likely in t's slot */
    CHECK(mtlspop_token_access_token(t) == NULL);
    CHECK(mtlspop_token_free(t) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_token_access_token(t3) != NULL);
    mtlspop_response *r;
    mtlspop_error *err;
    EXPECT(mtlspop_call(c, t, fmt("{\"url\":\"%s\"}", resource_url), &r, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");

    /* Wrong types: a token is not an error, response or claims, nor a client; and back. */
    CHECK(mtlspop_error_code((mtlspop_error *)t3) == NULL);
    CHECK(mtlspop_error_free((mtlspop_error *)t3) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_response_status((mtlspop_response *)t3) == -1);
    CHECK(mtlspop_response_free((mtlspop_response *)t3) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_claims_json((mtlspop_claims *)t3) == NULL);
    CHECK(mtlspop_claims_free((mtlspop_claims *)t3) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_client_free((mtlspop_client *)t3) == MTLSPOP_E_INVALID_ARG);
    EXPECT(mtlspop_acquire_token((mtlspop_client *)t3, "r", NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(mtlspop_token_access_token((mtlspop_token *)c) == NULL);
    CHECK(mtlspop_token_free((mtlspop_token *)c) == MTLSPOP_E_INVALID_ARG);
    CHECK_STR(mtlspop_token_type(t3), "Bearer");

    /* Forged handles: arbitrary numbers and real pointers. */
    int local;
    void *forged[] = {(void *)1, (void *)0xdeadbeef, (void *)~(uintptr_t)0, &local, (void *)((uintptr_t)3 << 32 | 1)};
    for (size_t i = 0; i < sizeof forged / sizeof *forged; i++) {
        CHECK(mtlspop_token_access_token(forged[i]) == NULL);
        CHECK(mtlspop_token_free(forged[i]) == MTLSPOP_E_INVALID_ARG);
        CHECK(mtlspop_error_free(forged[i]) == MTLSPOP_E_INVALID_ARG);
        CHECK(mtlspop_client_free(forged[i]) == MTLSPOP_E_INVALID_ARG);
        CHECK(mtlspop_cancel(forged[i], 1) == MTLSPOP_E_INVALID_ARG);
        EXPECT(mtlspop_acquire_token(forged[i], "r", NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    }

    /* A freed client is stale for good, however many clients come after it. */
    CHECK(mtlspop_client_free(c) == MTLSPOP_OK);
    CHECK(mtlspop_client_free(c) == MTLSPOP_E_INVALID_ARG);
    mtlspop_client *c2 = client(NULL);
    CHECK(c2 != c);
    EXPECT(mtlspop_acquire_token(c, resource_id, NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, "invalid_argument");
    CHECK(mtlspop_cancel(c, 1) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_client_free(c2) == MTLSPOP_OK);

    /* Error objects: double free. */
    mtlspop_acquire_token(NULL, "r", NULL, &t, &err);
    CHECK(err != NULL);
    CHECK(mtlspop_error_free(err) == MTLSPOP_OK);
    CHECK(mtlspop_error_free(err) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_error_code(err) == NULL);

    CHECK(mtlspop_token_free(t2) == MTLSPOP_OK);
    CHECK(mtlspop_token_free(t3) == MTLSPOP_OK);
}

static void test_bad_strings(void) {
    mtlspop_client *c = client(NULL);
    mtlspop_token *t;
    mtlspop_error *err;
    const char *A = "invalid_argument";
    /* Invalid UTF-8 in every string argument. */
    EXPECT(mtlspop_acquire_token(c, "api://\xff\xfe", NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_acquire_token(c, "api://x", "{\"claims\":\"\xc3\x28\"}", &t, &err), err, MTLSPOP_E_INVALID_ARG, A);
    mtlspop_client *bad = NULL;
    EXPECT(mtlspop_client_new("{\"log_level\":\"\xed\xa0\x80\"}", &bad, &err), err, MTLSPOP_E_INVALID_ARG, A);
    mtlspop_claims *cl;
    EXPECT(mtlspop_verify("{\"audiences\":[\"\xff\"]}", "Bearer x", NULL, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify("{\"audiences\":[\"a\"],\"jwks\":{\"keys\":[]}}", "Bearer \xff", NULL, &cl, &err), err,
           MTLSPOP_E_INVALID_TOKEN, "invalid_token");

    /* 10 MB strings, everywhere. */
    size_t n = 10u << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    memcpy(big, "{\"a\":\"", 6);
    EXPECT(mtlspop_client_new(big, &bad, &err), err, MTLSPOP_E_INVALID_ARG, A);
    CHECK(bad == NULL);
    EXPECT(mtlspop_acquire_token(c, big, NULL, &t, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_acquire_token(c, "api://x", big, &t, &err), err, MTLSPOP_E_INVALID_ARG, A);
    uint64_t id;
    EXPECT(mtlspop_acquire_token_async(c, big, NULL, on_done, NULL, &id, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify(big, "Bearer x", NULL, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify("{}", big, NULL, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    EXPECT(mtlspop_verify("{}", "Bearer x", big, &cl, &err), err, MTLSPOP_E_INVALID_ARG, A);
    mtlspop_token *tok = acquire(c, resource_id, NULL);
    mtlspop_response *r;
    EXPECT(mtlspop_call(c, tok, big, &r, &err), err, MTLSPOP_E_INVALID_ARG, A);
    /* Exactly at the limit is accepted as a string (and then refused as JSON or a resource). */
    big[MTLSPOP_MAX_INPUT] = '\0';
    EXPECT(mtlspop_client_new(big, &bad, &err), err, MTLSPOP_E_INVALID_ARG, A);
    free(big);
    mtlspop_token_free(tok);
    mtlspop_client_free(c);
}

static void test_fork(void) {
    /* The library is loaded and has been used; its threads are running. */
    mtlspop_client *c = client(NULL);
    mtlspop_token *t = acquire(c, resource_id, NULL);
    int verdict[2];
    CHECK(pipe(verdict) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10); /* a hang is a failure, not a stuck suite */
        int bad = 0;
        mtlspop_client *c2 = (mtlspop_client *)1;
        mtlspop_token *t2 = (mtlspop_token *)1;
        mtlspop_error *err = (mtlspop_error *)1;
        bad |= (mtlspop_client_new(NULL, &c2, &err) != MTLSPOP_E_FORKED || c2 != NULL || err != NULL) << 0;
        bad |= (mtlspop_acquire_token(c, resource_id, NULL, &t2, &err) != MTLSPOP_E_FORKED || t2 != NULL) << 1;
        bad |= (mtlspop_acquire_token_async(c, resource_id, NULL, on_done, NULL, NULL, &err) != MTLSPOP_E_FORKED) << 2;
        bad |= (mtlspop_cancel(c, 1) != MTLSPOP_E_FORKED) << 3;
        bad |= (mtlspop_call(c, t, "{}", NULL, &err) != MTLSPOP_E_FORKED) << 4;
        bad |= (mtlspop_verify("{}", "x", NULL, NULL, &err) != MTLSPOP_E_FORKED) << 5;
        bad |= (mtlspop_token_access_token(t) != NULL) << 6;
        bad |= (mtlspop_token_free(t) != MTLSPOP_E_FORKED) << 7;
        bad |= (mtlspop_client_free(c) != MTLSPOP_E_FORKED) << 8;
        bad |= (mtlspop_set_log_callback(NULL, NULL, 0) != MTLSPOP_E_FORKED) << 9;
        bad |= (mtlspop_live_objects() != MTLSPOP_E_FORKED) << 10;
        bad |= (strcmp(mtlspop_version(), MTLSPOP_VERSION) != 0) << 11;
        bad |= (strcmp(mtlspop_strerror(MTLSPOP_E_FORKED), "called in a forked child process") != 0) << 12;
        /* The verdict goes through a pipe, not the exit status: under valgrind the child's exit
         * status is valgrind's, and its leak report is meaningless (the parent's threads, which
         * reference much of the heap, do not exist in the child). */
        ssize_t w = write(verdict[1], &bad, sizeof bad);
        _exit(w == sizeof bad ? 0 : 1);
    }
    close(verdict[1]);
    CHECK(pid > 0);
    int bad = -1, status = -1;
    CHECK(read(verdict[0], &bad, sizeof bad) == sizeof bad);
    close(verdict[0]);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status)); /* not killed by the alarm: no call hung */
    if (bad != 0) {
        fprintf(stderr, "FAIL fork: child checks failed, mask 0x%x\n", bad);
        failures++;
    }
    /* The parent is unaffected. */
    CHECK(mtlspop_token_access_token(t) != NULL);
    mtlspop_token *t2 = acquire(c, resource_id, NULL);
    CHECK_STR(mtlspop_token_source(t2), "cache");
    mtlspop_token_free(t2);
    mtlspop_token_free(t);
    mtlspop_client_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * tests: logging
 */

static char log_text[1 << 16];
static size_t log_len;
static int log_records;

static void on_log(void *user, int level, const char *message, const char *fields) {
    pthread_mutex_lock(&mu);
    log_records++;
    log_len += (size_t)snprintf(log_text + log_len, sizeof log_text - log_len, "%d %s %s %s\n",
                                level, (const char *)user, message, fields);
    if (log_len >= sizeof log_text) {
        log_len = sizeof log_text - 1;
    }
    pthread_mutex_unlock(&mu);
}

static void test_logging(void) {
    CHECK(mtlspop_set_log_callback(on_log, NULL, -1) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_set_log_callback(on_log, NULL, MTLSPOP_LOG_OFF + 1) == MTLSPOP_E_INVALID_ARG);
    CHECK(mtlspop_set_log_callback(on_log, "tag", MTLSPOP_LOG_DEBUG) == MTLSPOP_OK);
    mtlspop_client *c = client("{\"mtls_pop\":true,\"log_level\":\"debug\"}");
    mtlspop_token *t = acquire(c, "api://logging", NULL);
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&mu);
        int done = strstr(log_text, "minted binding certificate") != NULL;
        pthread_mutex_unlock(&mu);
        if (done) {
            break;
        }
        usleep(10 * 1000);
    }
    /* After this returns the callback is never called again. */
    CHECK(mtlspop_set_log_callback(NULL, NULL, MTLSPOP_LOG_DEBUG) == MTLSPOP_OK);
    pthread_mutex_lock(&mu);
    int before = log_records;
    CHECK(strstr(log_text, "1 tag managedidentity: minted binding certificate {") != NULL);
    CHECK(strstr(log_text, "\"x5t#S256\":\"") != NULL);
    const char *at = mtlspop_token_access_token(t);
    /* No secret in any record: not the token, nor its signature. */
    CHECK(at && !strstr(log_text, at));
    CHECK(at && !strstr(log_text, strrchr(at, '.') + 1));
    pthread_mutex_unlock(&mu);
    mtlspop_token *t2 = acquire(c, "api://logging-2", NULL);
    usleep(100 * 1000);
    pthread_mutex_lock(&mu);
    CHECK(log_records == before);
    pthread_mutex_unlock(&mu);
    /* A client with log_level "off" logs nothing even with a callback. */
    CHECK(mtlspop_set_log_callback(on_log, "off", MTLSPOP_LOG_DEBUG) == MTLSPOP_OK);
    mtlspop_client *quiet = client("{\"mtls_pop\":true,\"log_level\":\"off\"}");
    mtlspop_token *t3 = acquire(quiet, "api://logging", NULL);
    usleep(100 * 1000);
    CHECK(mtlspop_set_log_callback(NULL, NULL, MTLSPOP_LOG_DEBUG) == MTLSPOP_OK);
    pthread_mutex_lock(&mu);
    CHECK(!strstr(log_text, " off "));
    pthread_mutex_unlock(&mu);
    mtlspop_token_free(t);
    mtlspop_token_free(t2);
    mtlspop_token_free(t3);
    mtlspop_client_free(c);
    mtlspop_client_free(quiet);
}

/* ---------------------------------------------------------------------------------------------
 * the test harness itself
 */

/* Closing an emulator's stdin must stop it even while another emulator, started after it, is
 * running: the second must not have inherited the first's pipe (emulator.h opens its pipes
 * O_CLOEXEC). An emulator that had to be signalled leaves its temporary directory, with a
 * private key in it, behind. */
static void test_emulator_stop(void) {
    emu a = {0}, b = {0};
    if (emu_start(&a, cli_path, NULL) != 0 || emu_start(&b, cli_path, NULL) != 0) {
        fprintf(stderr, "FAIL %s: cannot start the emulators\n", current);
        failures++;
        emu_stop(&a);
        return;
    }
    double t0 = now_ms();
    int how = emu_stop(&a);
    if (how != 0) {
        fprintf(stderr, "FAIL %s: the first emulator needed %s to stop (%.0f ms): its stdin pipe "
                        "leaked into the second\n", current, how == 1 ? "SIGTERM" : "SIGKILL",
                now_ms() - t0);
        failures++;
    }
    CHECK(emu_stop(&b) == 0);
}

/* ---------------------------------------------------------------------------------------------
 * main
 */

typedef struct test {
    const char *name;
    void (*fn)(void);
} test;

static const test tests[] = {
    {"version", test_version},
    {"null_everywhere", test_null_everywhere},
    {"config_errors", test_config_errors},
    {"pop", test_pop},
    {"bearer", test_bearer},
    {"cache_only", test_cache_only},
    {"user_assigned", test_user_assigned},
    {"confidential", test_confidential},
    {"app_service", test_app_service},
    {"azure_arc", test_azure_arc},
    {"acquire_errors", test_acquire_errors},
    {"env_and_trust", test_env_and_trust},
    {"call", test_call},
    {"verify", test_verify},
    {"async_100", test_async_100},
    {"cancel", test_cancel},
    {"timeouts", test_timeouts},
    {"free_while_in_flight", test_free_while_in_flight},
    {"free_while_blocking", test_free_while_blocking},
    {"stale_and_double_free", test_stale_and_double_free},
    {"bad_strings", test_bad_strings},
    {"fork", test_fork},
    {"logging", test_logging},
    {"emulator_stop", test_emulator_stop},
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s path/to/mtlspop [test-name...]\n", argv[0]);
        return 2;
    }
    main_thread = pthread_self();
    cli_path = argv[1];
    int64_t live0 = mtlspop_live_objects();
    const char *args[] = {"--require-pop", NULL};
    const char *v1args[] = {"--imds-v1-only", NULL};
    if (emu_start(&E, argv[1], args) != 0 || emu_start(&E_V1, argv[1], v1args) != 0) {
        fprintf(stderr, "cannot start %s emulator\n", argv[1]);
        return 1;
    }
    /* Set after the library was loaded: clients must see it (live getenv). */
    emu_setenv(&E);
    emu_get(&E, "\"env\"", "AZURE_POD_IDENTITY_AUTHORITY_HOST", imds_url, sizeof imds_url);
    emu_get(&E, "\"env\"", "SSL_CERT_FILE", ca_file, sizeof ca_file);
    emu_get(&E_V1, "\"env\"", "AZURE_POD_IDENTITY_AUTHORITY_HOST", v1_url, sizeof v1_url);
    emu_get(&E, "\"urls\"", "resource", resource_url, sizeof resource_url);
    emu_get(&E, "\"urls\"", "resource_id", resource_id, sizeof resource_id);
    emu_get(&E, "\"urls\"", "jwks", jwks_url, sizeof jwks_url);
    emu_get(&E, "\"urls\"", "issuer", issuer, sizeof issuer);
    emu_get(&E, "\"system_assigned\"", "client_id", sami_client_id, sizeof sami_client_id);
    emu_get(&E, "\"user_assigned\"", "client_id", uami_client_id, sizeof uami_client_id);
    emu_get(&E, "\"user_assigned\"", "object_id", uami_object_id, sizeof uami_object_id);
    emu_get(&E, "\"user_assigned\"", "resource_id", uami_resource_id, sizeof uami_resource_id);
    int bh = listen_blackhole(&blackhole_port);
    int cp = listen_blackhole(&closed_port);
    close(cp); /* now nothing listens there */
    if (bh < 0 || !*resource_id || !*uami_client_id) {
        fprintf(stderr, "fixture setup failed: %s\n", E.line);
        return 1;
    }

    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        int selected = argc == 2;
        for (int a = 2; a < argc; a++) {
            selected |= strcmp(argv[a], tests[i].name) == 0;
        }
        if (!selected) {
            continue;
        }
        current = tests[i].name;
        int before = failures;
        double t0 = now_ms();
        tests[i].fn();
        printf("%s %-24s %7.0f ms\n", failures == before ? "ok  " : "FAIL", current, now_ms() - t0);
        fflush(stdout);
    }

    current = "live_objects";
    /* Completions of canceled requests may still be finishing their frees. */
    for (int i = 0; i < 100 && mtlspop_live_objects() != live0; i++) {
        usleep(20 * 1000);
    }
    if (mtlspop_live_objects() != live0) {
        fprintf(stderr, "FAIL live objects: %lld at exit, %lld at start\n",
                (long long)mtlspop_live_objects(), (long long)live0);
        failures++;
    }
    close(bh);
    /* E was started before E_V1, so E stops by itself only if E_V1 did not inherit its stdin. */
    current = "emulator_shutdown";
    if (emu_stop(&E) != 0) {
        fprintf(stderr, "FAIL %s: the emulator did not stop when its stdin closed\n", current);
        failures++;
    }
    CHECK(emu_stop(&E_V1) == 0);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}

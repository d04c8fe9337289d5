/*
 * bench.c — what a cache hit costs through the C ABI.
 *
 *   bench path/to/mtlspop      (ci/capi.sh bench builds and runs it)
 *
 * Starts `mtlspop emulator`, warms a client, and prints one JSON line per measurement,
 * {"name", "value", "unit"}; each value is the best of several runs, in nanoseconds per
 * operation:
 *
 *   capi_cache_hit_ns          mtlspop_acquire_token (PoP, cached) + mtlspop_token_access_token
 *                              + mtlspop_token_free: the round trip the target is set for
 *   capi_cache_hit_bearer_ns   the same for a Bearer token
 *   capi_cache_hit_2threads_ns the PoP round trip from two threads on one client, per operation
 *   capi_token_read_ns         all seven token accessors on a held token (no Go call)
 *   capi_go_call_ns            mtlspop_cancel of an unknown request: one call into Go with a
 *                              client lookup, the floor under any Go-side operation
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtlspop.h"

#include "emulator.h"

enum { RUNS = 7, N = 200000 };

static const char *resource = "api://mtlspop-emulator";

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what, int rc, mtlspop_error *err) {
    fprintf(stderr, "bench: %s: %s %s\n", what, mtlspop_strerror(rc), err ? mtlspop_error_message(err) : "");
    exit(1);
}

static mtlspop_client *client;
static const char *opts_pop = NULL; /* the client's default: PoP */
static const char *opts_bearer = "{\"mtls_pop\":false}";

static size_t hit_loop(const char *opts, int n) {
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
        mtlspop_token *t;
        int rc = mtlspop_acquire_token(client, resource, opts, &t, NULL);
        if (rc != MTLSPOP_OK) {
            die("acquire", rc, NULL);
        }
        sum += (size_t)mtlspop_token_access_token(t)[0];
        mtlspop_token_free(t);
    }
    return sum;
}

static void *hit_thread(void *arg) {
    (void)arg;
    hit_loop(opts_pop, N);
    return NULL;
}

static void report(const char *name, double ns) {
    printf("{\"name\":\"%s\",\"value\":%.1f,\"unit\":\"ns\"}\n", name, ns);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s path/to/mtlspop\n", argv[0]);
        return 2;
    }
    emu e;
    if (emu_start(&e, argv[1], NULL) != 0) {
        fprintf(stderr, "bench: cannot start the emulator\n");
        return 1;
    }
    emu_setenv(&e);
    mtlspop_error *err = NULL;
    int rc = mtlspop_client_new("{\"mtls_pop\":true}", &client, &err);
    if (rc != MTLSPOP_OK) {
        die("client", rc, err);
    }
    hit_loop(opts_pop, 1000); /* fetch, then warm */
    hit_loop(opts_bearer, 1000);

    double best_pop = 1e18, best_bearer = 1e18, best_par = 1e18, best_read = 1e18, best_go = 1e18;
    volatile size_t sink = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        sink += hit_loop(opts_pop, N);
        double ns = (now_ns() - t0) / N;
        best_pop = ns < best_pop ? ns : best_pop;

        t0 = now_ns();
        sink += hit_loop(opts_bearer, N);
        ns = (now_ns() - t0) / N;
        best_bearer = ns < best_bearer ? ns : best_bearer;

        pthread_t a, b;
        t0 = now_ns();
        pthread_create(&a, NULL, hit_thread, NULL);
        pthread_create(&b, NULL, hit_thread, NULL);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        ns = (now_ns() - t0) / (2.0 * N);
        best_par = ns < best_par ? ns : best_par;

        mtlspop_token *t;
        mtlspop_acquire_token(client, resource, NULL, &t, NULL);
        t0 = now_ns();
        for (int i = 0; i < N; i++) {
            sink += (size_t)mtlspop_token_access_token(t) + (size_t)mtlspop_token_type(t) +
                    (size_t)mtlspop_token_expires_on(t) + (size_t)mtlspop_token_refresh_on(t) +
                    (size_t)mtlspop_token_source(t) + (size_t)mtlspop_token_binding_cert_pem(t) +
                    (size_t)mtlspop_token_x5t_s256(t);
        }
        ns = (now_ns() - t0) / N;
        best_read = ns < best_read ? ns : best_read;
        mtlspop_token_free(t);

        t0 = now_ns();
        for (int i = 0; i < N; i++) {
            sink += (size_t)mtlspop_cancel(client, 1);
        }
        ns = (now_ns() - t0) / N;
        best_go = ns < best_go ? ns : best_go;
    }
    report("capi_cache_hit_ns", best_pop);
    report("capi_cache_hit_bearer_ns", best_bearer);
    report("capi_cache_hit_2threads_ns", best_par);
    report("capi_token_read_ns", best_read);
    report("capi_go_call_ns", best_go);
    mtlspop_client_free(client);
    emu_stop(&e);
    return 0;
}

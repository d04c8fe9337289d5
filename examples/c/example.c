/*
 * example.c — get an mTLS PoP token, print its binding certificate, and call a resource with it.
 *
 *   cc example.c $(pkg-config --cflags --libs mtlspop) -o example
 *   ./example https://127.0.0.1:PORT/ api://mtlspop-emulator
 *
 * The managed-identity endpoint comes from the environment, as on an Azure VM; against the
 * emulator, export its AZURE_POD_IDENTITY_AUTHORITY_HOST and SSL_CERT_FILE first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mtlspop.h>

static int fail(const char *what, int status, mtlspop_error *err) {
    fprintf(stderr, "%s: %s", what, mtlspop_strerror(status));
    if (err) {
        fprintf(stderr, " [%s] %s (HTTP %d, correlation id %s)", mtlspop_error_code(err),
                mtlspop_error_message(err), mtlspop_error_http_status(err),
                mtlspop_error_correlation_id(err));
        mtlspop_error_free(err);
    }
    fputc('\n', stderr);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s RESOURCE_URL RESOURCE_ID\n", argv[0]);
        return 2;
    }
    if (mtlspop_abi_version() != MTLSPOP_ABI_VERSION) {
        fprintf(stderr, "libmtlspop ABI %d, header %d\n", mtlspop_abi_version(), MTLSPOP_ABI_VERSION);
        return 1;
    }
    mtlspop_client *client = NULL;
    mtlspop_token *token = NULL;
    mtlspop_response *resp = NULL;
    mtlspop_error *err = NULL;
    int rc, exit_code = 1;

    /* The system-assigned identity; tokens are mTLS PoP unless an acquisition says otherwise. */
    rc = mtlspop_client_new("{\"identity\": {\"type\": \"system\"}, \"mtls_pop\": true}", &client, &err);
    if (rc != MTLSPOP_OK) {
        return fail("mtlspop_client_new", rc, err);
    }
    rc = mtlspop_acquire_token(client, argv[2], NULL, &token, &err);
    if (rc != MTLSPOP_OK) {
        fail("mtlspop_acquire_token", rc, err);
        goto out;
    }
    printf("token type %s, expires %lld, bound to x5t#S256 %s\n", mtlspop_token_type(token),
           (long long)mtlspop_token_expires_on(token), mtlspop_token_x5t_s256(token));
    printf("%s", mtlspop_token_binding_cert_pem(token));

    /* The library makes the mTLS call: the private key never leaves it. */
    char request[1024];
    snprintf(request, sizeof request, "{\"method\": \"GET\", \"url\": \"%s\"}", argv[1]);
    rc = mtlspop_call(client, token, request, &resp, &err);
    if (rc != MTLSPOP_OK) {
        fail("mtlspop_call", rc, err);
        goto out;
    }
    size_t len;
    const uint8_t *body = mtlspop_response_body(resp, &len);
    printf("status %d, %zu bytes: %s\n", mtlspop_response_status(resp), len, (const char *)body);
    exit_code = mtlspop_response_status(resp) == 200 ? 0 : 1;

out:
    mtlspop_response_free(resp);
    mtlspop_token_free(token);
    mtlspop_client_free(client);
    return exit_code;
}

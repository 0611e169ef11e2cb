/* The echo service (echo.proto's echo.TestService) on a rillrpc server in C, every call
 * shape, with the blocking API, one call at a time (a thread per call, or a rill_poller,
 * serves many at once). PingPong also shows metadata (the client's x-greeting comes back
 * as a header, and a trailer names the server) and an error (a request whose payload is
 * "error").
 *   cc server.c $(pkg-config --cflags --libs rillrpc) -o server && ./server 50051 */
#include <stdio.h>
#include <string.h>
#include "rillrpc.h"
#include "echo_pb.h"

#define TRY(expr) do { rill_result r_ = (expr); if (r_ != RILL_OK) { \
    fprintf(stderr, "%s: %s\n", #expr, rill_last_error_message()); return 1; } } while (0)
#define WAIT 10000 /* ms */

/* Sends a Response carrying `payload`; RILL_OK or the failure. */
static rill_result reply(rill_server_call call, const void *payload, size_t len) {
    uint8_t out[1024];
    if (len > sizeof out - 20) return RILL_ERR_INVALID_ARGUMENT;
    return rill_server_call_send(call, out, echo_encode(out, payload, len, 0), WAIT);
}

/* Serves one call to its end; returns the gRPC status code to finish it with and sets
 * *message (NULL for none) and *trailers (0 for none). */
static uint32_t serve(rill_server_call call, const char *method, const char **message,
                      rill_metadata *trailers) {
    const uint8_t *msg, *payload;
    size_t len, plen;
    int32_t count;
    rill_result r;
    *message = NULL;
    *trailers = 0;
    if (strcmp(method, "/echo.TestService/PingPong") == 0) {
        rill_metadata md, headers;
        const uint8_t *greeting;
        size_t glen;
        if (rill_server_call_recv(call, &msg, &len, WAIT) != RILL_OK ||
            echo_decode(msg, len, &payload, &plen, NULL) != 0)
            return RILL_STATUS_INTERNAL;
        if (plen == 5 && memcmp(payload, "error", 5) == 0) {
            *message = "the request asked for an error";
            return RILL_STATUS_INVALID_ARGUMENT;
        }
        if (rill_server_call_metadata(call, &md) == RILL_OK) {
            if (rill_metadata_get(md, "x-greeting", &greeting, &glen) == RILL_OK &&
                rill_metadata_new(&headers) == RILL_OK) {
                rill_metadata_append(headers, "x-greeting", greeting, glen);
                rill_server_call_send_headers(call, headers);
                rill_metadata_free(headers);
            }
            rill_metadata_free(md);
        }
        if (rill_metadata_new(trailers) == RILL_OK)
            rill_metadata_append(*trailers, "x-served-by", (const uint8_t *)"rillrpc-c", 9);
        return reply(call, payload, plen) == RILL_OK ? RILL_STATUS_OK : RILL_STATUS_INTERNAL;
    }
    if (strcmp(method, "/echo.TestService/Echo") == 0) {
        while ((r = rill_server_call_recv(call, &msg, &len, WAIT)) == RILL_OK) {
            if (echo_decode(msg, len, &payload, &plen, NULL) != 0 || reply(call, payload, plen) != RILL_OK)
                return RILL_STATUS_INTERNAL;
        }
        return r == RILL_EOF ? RILL_STATUS_OK : RILL_STATUS_INTERNAL;
    }
    if (strcmp(method, "/echo.TestService/EchoClient") == 0) {
        char total[32];
        size_t sum = 0;
        while ((r = rill_server_call_recv(call, &msg, &len, WAIT)) == RILL_OK) {
            if (echo_decode(msg, len, &payload, &plen, NULL) != 0) return RILL_STATUS_INTERNAL;
            sum += plen;
        }
        if (r != RILL_EOF) return RILL_STATUS_INTERNAL;
        snprintf(total, sizeof total, "%zu", sum);
        return reply(call, total, strlen(total)) == RILL_OK ? RILL_STATUS_OK : RILL_STATUS_INTERNAL;
    }
    if (strcmp(method, "/echo.TestService/EchoServer") == 0) {
        if (rill_server_call_recv(call, &msg, &len, WAIT) != RILL_OK ||
            echo_decode(msg, len, &payload, &plen, &count) != 0)
            return RILL_STATUS_INTERNAL;
        for (int32_t i = 0; i < count; i++)
            if (reply(call, payload, plen) != RILL_OK) return RILL_STATUS_INTERNAL;
        return RILL_STATUS_OK;
    }
    return RILL_STATUS_UNIMPLEMENTED;
}

int main(int argc, char **argv) {
    rill_server srv;
    char addr[64];
    uint16_t port;
    snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 1 ? argv[1] : "50051");
    TRY(rill_server_new(NULL, &srv));
    TRY(rill_server_add_method(srv, "/echo.TestService/PingPong", RILL_UNARY));
    TRY(rill_server_add_method(srv, "/echo.TestService/Echo", RILL_BIDI));
    TRY(rill_server_add_method(srv, "/echo.TestService/EchoClient", RILL_CLIENT_STREAMING));
    TRY(rill_server_add_method(srv, "/echo.TestService/EchoServer", RILL_SERVER_STREAMING));
    TRY(rill_server_listen(srv, addr, NULL, NULL));
    TRY(rill_server_start(srv));
    TRY(rill_server_port(srv, &port));
    printf("listening on 127.0.0.1:%u\n", port);
    fflush(stdout);
    for (;;) {
        rill_server_call call;
        const char *method, *message;
        rill_metadata trailers;
        TRY(rill_server_accept(srv, &call, RILL_FOREVER));
        if (rill_server_call_method(call, &method) == RILL_OK) {
            uint32_t code = serve(call, method, &message, &trailers);
            rill_server_call_finish(call, code, message, NULL, 0, trailers);
            if (trailers) rill_metadata_free(trailers);
        }
        rill_server_call_free(call);
    }
}

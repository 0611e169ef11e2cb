/* A rillrpc server in C: serves echo.TestService/PingPong, one call at a time, with the
 * blocking API.
 *   cc server.c $(pkg-config --cflags --libs rillrpc) -o server && ./server 50051 */
#include <stdio.h>
#include "rillrpc.h"

#define TRY(expr) do { rill_result r_ = (expr); if (r_ != RILL_OK) { \
    fprintf(stderr, "%s: %s\n", #expr, rill_last_error_message()); return 1; } } while (0)

int main(int argc, char **argv) {
    rill_server srv;
    char addr[64];
    uint16_t port;
    snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 1 ? argv[1] : "50051");
    TRY(rill_server_new(NULL, &srv));
    TRY(rill_server_add_method(srv, "/echo.TestService/PingPong", RILL_UNARY));
    TRY(rill_server_listen(srv, addr, NULL, NULL));
    TRY(rill_server_start(srv));
    TRY(rill_server_port(srv, &port));
    printf("listening on 127.0.0.1:%u\n", port);
    fflush(stdout);
    for (;;) {
        rill_server_call call;
        const uint8_t *req;
        size_t len;
        TRY(rill_server_accept(srv, &call, RILL_FOREVER));
        /* A Response is a Request without `count`: protobuf readers skip that field, so
         * the request bytes are a valid reply. */
        if (rill_server_call_recv(call, &req, &len, 5000) == RILL_OK &&
            rill_server_call_send(call, req, len, 5000) == RILL_OK)
            rill_server_call_finish(call, RILL_STATUS_OK, NULL, NULL, 0, 0);
        else
            rill_server_call_finish(call, RILL_STATUS_INTERNAL, "no request", NULL, 0, 0);
        rill_server_call_free(call);
    }
}

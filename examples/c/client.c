/* A rillrpc client in C: one blocking unary call, then 100 calls at once driven by
 * poll(2) from this one thread.
 *   cc client.c $(pkg-config --cflags --libs rillrpc) -o client && ./client http://127.0.0.1:50051 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include "rillrpc.h"
#include "echo_pb.h"

#define TRY(expr) do { rill_result r_ = (expr); if (r_ != RILL_OK) { \
    fprintf(stderr, "%s: %s\n", #expr, rill_last_error_message()); return 1; } } while (0)

int main(int argc, char **argv) {
    rill_channel ch;
    rill_call call;
    uint8_t req[64];
    const uint8_t *msg, *payload;
    size_t len, plen;
    uint32_t code;
    TRY(rill_channel_new(argc > 1 ? argv[1] : "http://127.0.0.1:50051", NULL, &ch));

    /* Blocking: open, send, receive (no copy: `msg` points into the library), finish. */
    TRY(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, NULL, &call));
    TRY(rill_call_send(call, req, echo_encode(req, "hello", 5, 0), 5000));
    TRY(rill_call_recv(call, &msg, &len, 5000));
    echo_decode(msg, len, &payload, &plen, NULL);
    printf("reply: %.*s\n", (int)plen, (const char *)payload);
    TRY(rill_call_finish(call, &code, 5000));
    TRY(rill_call_free(call));

    /* Event loop: every call reports to one poller; its fd wakes poll(). */
    enum { N = 100 };
    rill_call calls[N];
    int done = 0, fd;
    rill_poller poller;
    TRY(rill_poller_new(&poller));
    TRY(rill_poller_fd(poller, &fd));
    for (int i = 0; i < N; i++) {
        TRY(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, NULL, &calls[i]));
        TRY(rill_call_try_send(calls[i], req, echo_encode(req, "hi", 2, 0)));
        TRY(rill_call_set_poller(calls[i], poller, (uint64_t)i));
    }
    while (done < N) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, -1);
        uint64_t tags[64];
        size_t n;
        while (rill_poller_next(poller, tags, 64, &n) == RILL_OK) {
            for (size_t k = 0; k < n; k++) {
                rill_call c = calls[tags[k]];
                if (c != 0 && rill_call_try_finish(c, &code) == RILL_OK) {
                    if (code != RILL_STATUS_OK) fprintf(stderr, "call %llu: status %u\n", (unsigned long long)tags[k], code);
                    rill_call_free(c);
                    calls[tags[k]] = 0;
                    done++;
                }
            }
        }
    }
    printf("%d concurrent calls done\n", done);
    rill_poller_free(poller);
    rill_channel_free(ch);
    return 0;
}

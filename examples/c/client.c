/* A rillrpc client of the echo service (echo.proto's echo.TestService) in C: every call
 * shape with the blocking API, an error status, metadata, then 100 calls at once driven by
 * poll(2) from this one thread. Runs against any echo server of the examples (Rust, Python,
 * Node, C); exits 1 on a wrong answer.
 *   cc client.c $(pkg-config --cflags --libs rillrpc) -o client && ./client http://127.0.0.1:50051 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include "rillrpc.h"
#include "echo_pb.h"

#define TRY(expr) do { rill_result r_ = (expr); if (r_ != RILL_OK) { \
    fprintf(stderr, "%s: %s\n", #expr, rill_last_error_message()); return 1; } } while (0)
#define CHECK(what, cond) do { if (!(cond)) { fprintf(stderr, "client: %s: wrong answer\n", what); \
    return 1; } } while (0)
#define WAIT 10000 /* ms */

/* Sends one Request. */
static rill_result send_req(rill_call call, const char *payload, int32_t count) {
    uint8_t buf[256];
    return rill_call_send(call, buf, echo_encode(buf, payload, strlen(payload), count), WAIT);
}

/* Receives one Response: 1 if its payload is `want`. */
static int recv_payload(rill_call call, const char *want) {
    const uint8_t *msg, *payload;
    size_t len, plen;
    if (rill_call_recv(call, &msg, &len, WAIT) != RILL_OK) return 0;
    if (echo_decode(msg, len, &payload, &plen, NULL) != 0) return 0;
    return plen == strlen(want) && memcmp(payload, want, plen) == 0;
}

int main(int argc, char **argv) {
    rill_channel ch;
    rill_call call;
    rill_call_options opts;
    rill_metadata md, headers, trailers;
    const uint8_t *value, *msg;
    const char *message;
    size_t len;
    uint32_t code;
    TRY(rill_channel_new(argc > 1 ? argv[1] : "http://127.0.0.1:50051", NULL, &ch));
    TRY(rill_call_options_init(&opts));
    opts.timeout_ms = WAIT;

    /* Unary, with metadata: x-greeting comes back as a header; the status carries a
     * trailer. Received messages point into the library's buffer: no copy. */
    TRY(rill_metadata_new(&md));
    TRY(rill_metadata_append(md, "x-greeting", (const uint8_t *)"hello", 5));
    opts.metadata = md;
    TRY(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, &opts, &call));
    opts.metadata = 0;
    rill_metadata_free(md);
    TRY(send_req(call, "ping", 0));
    CHECK("unary", recv_payload(call, "ping"));
    printf("unary: \"ping\"\n");
    TRY(rill_call_headers(call, &headers, WAIT));
    CHECK("header x-greeting", rill_metadata_get(headers, "x-greeting", &value, &len) == RILL_OK &&
                                   len == 5 && memcmp(value, "hello", 5) == 0);
    printf("header x-greeting: \"hello\"\n");
    rill_metadata_free(headers);
    TRY(rill_call_finish(call, &code, WAIT));
    CHECK("status", code == RILL_STATUS_OK);
    TRY(rill_call_trailers(call, &trailers));
    if (rill_metadata_get(trailers, "x-served-by", &value, &len) == RILL_OK)
        printf("trailer x-served-by: \"%.*s\"\n", (int)len, (const char *)value);
    rill_metadata_free(trailers);
    TRY(rill_call_free(call));

    /* Server streaming: `count` responses, then RILL_EOF. */
    TRY(rill_call_open(ch, "/echo.TestService/EchoServer", RILL_SERVER_STREAMING, &opts, &call));
    TRY(send_req(call, "tick", 3));
    for (int i = 0; i < 3; i++) CHECK("server streaming", recv_payload(call, "tick"));
    CHECK("server streaming end", rill_call_recv(call, &msg, &len, WAIT) == RILL_EOF);
    printf("server streaming: 3 x \"tick\"\n");
    TRY(rill_call_free(call));

    /* Client streaming: the answer is the number of payload bytes sent. */
    TRY(rill_call_open(ch, "/echo.TestService/EchoClient", RILL_CLIENT_STREAMING, &opts, &call));
    TRY(send_req(call, "ab", 0));
    TRY(send_req(call, "cde", 0));
    TRY(send_req(call, "f", 0));
    TRY(rill_call_close_send(call));
    CHECK("client streaming", recv_payload(call, "6"));
    printf("client streaming: \"6\"\n");
    TRY(rill_call_finish(call, &code, WAIT));
    TRY(rill_call_free(call));

    /* Bidirectional: send and receive as they come. */
    TRY(rill_call_open(ch, "/echo.TestService/Echo", RILL_BIDI, &opts, &call));
    const char *words[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        TRY(send_req(call, words[i], 0));
        CHECK("bidi", recv_payload(call, words[i]));
    }
    TRY(rill_call_close_send(call));
    CHECK("bidi end", rill_call_recv(call, &msg, &len, WAIT) == RILL_EOF);
    printf("bidi: \"one\", \"two\", \"three\"\n");
    TRY(rill_call_free(call));

    /* An error: the server ends the call with INVALID_ARGUMENT and a message. */
    TRY(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, &opts, &call));
    TRY(send_req(call, "error", 0));
    CHECK("error", rill_call_recv(call, &msg, &len, WAIT) == RILL_ERR_STATUS);
    TRY(rill_call_status(call, &code, &message, NULL, NULL));
    CHECK("error code", code == RILL_STATUS_INVALID_ARGUMENT);
    printf("error: INVALID_ARGUMENT, message \"%s\"\n", message);
    TRY(rill_call_free(call));

    /* Event loop: 100 calls at once, every one reporting to one poller whose fd wakes
     * poll(). */
    enum { N = 100 };
    rill_call calls[N];
    uint8_t req[64];
    int done = 0, fd;
    rill_poller poller;
    TRY(rill_poller_new(&poller));
    TRY(rill_poller_fd(poller, &fd));
    for (int i = 0; i < N; i++) {
        TRY(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, &opts, &calls[i]));
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
                    CHECK("concurrent calls", code == RILL_STATUS_OK);
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
    printf("all ok\n");
    return 0;
}

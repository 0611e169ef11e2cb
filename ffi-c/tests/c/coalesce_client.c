/* Issue 17: a burst of small messages from C, to a tonic echo server that counts the DATA
 * frames it reads (ffi-c/tests/c_coalesce.rs).
 *
 *   coalesce_client URL client|bidi single|batch N
 *
 * Sends N 18-byte echo.Requests (23 bytes framed) as fast as the call takes them:
 *   single  one message per call: rill_call_try_send, and rill_call_send (blocking) for a
 *           message the full queue refused;
 *   batch   rill_call_try_send_batch of up to BATCH messages, rill_call_send as above.
 * client: EchoClient, then checks the server's byte count. bidi: Echo, reading the echoes
 * (rill_call_recv_batch) between sends, and checks all N came back. Exits 0 when the call
 * ended OK. */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "echo_pb.h"

#define ECHO "/echo.TestService/Echo"
#define ECHO_CLIENT "/echo.TestService/EchoClient"
#define T 120000
enum { BATCH = 1024 };

static const char PAYLOAD[] = "0123456789abcdef";

static uint8_t msg[64];
static size_t msg_len;
static rill_slice batch[BATCH];

/* Queues messages while the call takes them without waiting: how many went. */
static size_t try_send_some(rill_call c, int use_batch, size_t left) {
    if (!use_batch) {
        size_t sent = 0;
        rill_result r;
        while (sent < left && (r = rill_call_try_send(c, msg, msg_len)) == RILL_OK) sent++;
        CHECK(sent == left || r == RILL_WOULD_BLOCK);
        return sent;
    }
    size_t sent = 0;
    while (sent < left) {
        size_t want = left - sent < BATCH ? left - sent : BATCH, n = 0;
        rill_result r = rill_call_try_send_batch(c, batch, want, &n);
        sent += n;
        if (r == RILL_WOULD_BLOCK) break;
        OK(r);
        CHECK(n == want);
    }
    return sent;
}

static void client_stream(rill_call c, int use_batch, size_t n) {
    size_t sent = 0;
    while (sent < n) {
        sent += try_send_some(c, use_batch, n - sent);
        if (sent < n) {
            /* The queue is full: wait for room with the blocking send. */
            OK(rill_call_send(c, msg, msg_len, T));
            sent++;
        }
    }
    OK(rill_call_close_send(c));
    const uint8_t *d, *p;
    size_t l, pl;
    OK(rill_call_recv(c, &d, &l, T));
    CHECK(echo_decode(d, l, &p, &pl, NULL) == 0);
    char want[32];
    snprintf(want, sizeof want, "%zu", n * (sizeof PAYLOAD - 1));
    CHECK(pl == strlen(want) && memcmp(p, want, pl) == 0);
}

static void bidi(rill_call c, int use_batch, size_t n) {
    static rill_slice in[BATCH];
    size_t sent = 0, got = 0, k;
    int closed = 0;
    for (;;) {
        if (sent < n) sent += try_send_some(c, use_batch, n - sent);
        if (sent < n && got == sent) {
            /* The queue is full and every message sent is echoed already: wait for room.
             * The batch that filled the queue can still count against it when its echoes
             * are all in (its writer not yet done with it), and then no echo would come. */
            OK(rill_call_send(c, msg, msg_len, T));
            sent++;
        }
        if (sent == n && !closed) {
            OK(rill_call_close_send(c));
            closed = 1;
        }
        /* Whatever is sent is echoed: waiting for an echo never waits forever. */
        rill_result r = rill_call_recv_batch(c, in, BATCH, &k, T);
        if (r == RILL_EOF) break;
        OK(r);
        for (size_t i = 0; i < k; i++) {
            const uint8_t *p;
            size_t pl;
            CHECK(echo_decode(in[i].data, in[i].len, &p, &pl, NULL) == 0);
            CHECK(pl == sizeof PAYLOAD - 1 && memcmp(p, PAYLOAD, pl) == 0);
        }
        got += k;
    }
    CHECK(sent == n);
    CHECK(got == n);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: coalesce_client URL client|bidi single|batch N\n");
        return 2;
    }
    int is_bidi = strcmp(argv[2], "bidi") == 0;
    int use_batch = strcmp(argv[3], "batch") == 0;
    size_t n = strtoul(argv[4], NULL, 10);
    CHECK(is_bidi || strcmp(argv[2], "client") == 0);
    CHECK(use_batch || strcmp(argv[3], "single") == 0);
    msg_len = echo_encode(msg, PAYLOAD, sizeof PAYLOAD - 1, 0);
    for (size_t i = 0; i < BATCH; i++) batch[i] = (rill_slice){.data = msg, .len = msg_len};

    rill_channel ch;
    OK(rill_channel_new(argv[1], NULL, &ch));
    rill_call c;
    OK(rill_call_open(ch, is_bidi ? ECHO : ECHO_CLIENT, is_bidi ? RILL_BIDI : RILL_CLIENT_STREAMING,
                      NULL, &c));
    if (is_bidi) bidi(c, use_batch, n);
    else client_stream(c, use_batch, n);
    uint32_t code;
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_OK);
    OK(rill_call_free(c));
    OK(rill_channel_free(ch));
    printf("coalesce_client: ok %s %s %zu\n", argv[2], argv[3], n);
    return 0;
}

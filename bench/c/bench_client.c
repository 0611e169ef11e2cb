/* The echo workloads from C, for bench/c/run.sh:
 *   bench_client TARGET WORKLOAD SECONDS     prints "WORKLOAD <ops/s>"
 * unary1   one unary call at a time (blocking API)
 * unary1dl unary1, each call with a 10 s deadline it never reaches
 * unary64  64 unary calls in flight, one thread, waiting on a rill_poller
 * bidi     one bidi stream, 256 messages in flight, non-blocking batch send/recv
 * stream   server streaming, blocking batch recv of 64-byte messages
 * Each uses the fastest API a C program would: batches where messages come in bulk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rillrpc.h"
#include "echo_pb.h"

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s)\n", rill_last_error_message()); exit(1); } while (0)
#define OK(e) do { if ((e) != RILL_OK) DIE("%s failed", #e); } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static const char PAYLOAD[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
static rill_channel ch;
static uint8_t req[128];
static size_t req_len;

/* opts: NULL, or each call's options (unary1dl's deadline). */
static double unary1_with(double secs, const rill_call_options *opts) {
    long n = 0;
    double end = now() + secs, t0 = now();
    while (now() < end) {
        for (int k = 0; k < 100; k++, n++) {
            rill_call c;
            const uint8_t *d;
            size_t l;
            uint32_t code;
            OK(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, opts, &c));
            OK(rill_call_send(c, req, req_len, 10000));
            OK(rill_call_recv(c, &d, &l, 10000));
            OK(rill_call_finish(c, &code, 10000));
            if (code) DIE("status %u", code);
            OK(rill_call_free(c));
        }
    }
    return n / (now() - t0);
}

static double unary1(double secs) { return unary1_with(secs, NULL); }

static double unary1dl(double secs) {
    rill_call_options o;
    rill_call_options_init(&o);
    o.timeout_ms = 10000;
    return unary1_with(secs, &o);
}

static double unary64(double secs) {
    enum { W = 64 };
    rill_call calls[W];
    rill_poller p;
    long n = 0;
    OK(rill_poller_new(&p));
    double t0 = now(), end = t0 + secs;
    int live = 0;
    for (int i = 0; i < W; i++) {
        OK(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, NULL, &calls[i]));
        OK(rill_call_try_send(calls[i], req, req_len));
        OK(rill_call_set_poller(calls[i], p, (uint64_t)i));
        live++;
    }
    uint64_t tags[W];
    size_t got;
    /* Only rill handles to wait for: rill_poller_wait, not poll(2) on the fd. */
    while (live > 0) {
        OK(rill_poller_wait(p, tags, W, &got, 10000));
        do {
            for (size_t k = 0; k < got; k++) {
                int i = (int)tags[k];
                uint32_t code;
                if (calls[i] == 0) continue;
                rill_result r = rill_call_try_finish(calls[i], &code);
                if (r == RILL_WOULD_BLOCK) continue;
                OK(r);
                if (code) DIE("status %u", code);
                OK(rill_call_free(calls[i]));
                calls[i] = 0;
                n++;
                if (now() < end) {
                    OK(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, NULL, &calls[i]));
                    OK(rill_call_try_send(calls[i], req, req_len));
                    OK(rill_call_set_poller(calls[i], p, (uint64_t)i));
                } else {
                    live--;
                }
            }
        } while (rill_poller_next(p, tags, W, &got) == RILL_OK);
    }
    double rate = n / (now() - t0);
    OK(rill_poller_free(p));
    return rate;
}

static double bidi(double secs) {
    enum { WINDOW = 256 };
    rill_slice out[WINDOW], in[WINDOW];
    for (int i = 0; i < WINDOW; i++) out[i] = (rill_slice){.data = req, .len = req_len};
    rill_call c;
    rill_poller p;
    long sent = 0, received = 0;
    OK(rill_poller_new(&p));
    OK(rill_call_open(ch, "/echo.TestService/Echo", RILL_BIDI, NULL, &c));
    OK(rill_call_set_poller(c, p, 1));
    double t0 = now(), end = t0 + secs;
    int sending = 1;
    for (;;) {
        uint64_t tags[4];
        size_t got;
        OK(rill_poller_wait(p, tags, 4, &got, 10000));
        while (rill_poller_next(p, tags, 4, &got) == RILL_OK) {}
        for (;;) {
            int progress = 0;
            if (sending && sent - received < WINDOW) {
                size_t k;
                rill_result r = rill_call_try_send_batch(c, out, (size_t)(WINDOW - (sent - received)), &k);
                if (r != RILL_WOULD_BLOCK) OK(r);
                sent += (long)k;
                if (k) progress = 1;
            }
            if (sending && now() >= end) { OK(rill_call_close_send(c)); sending = 0; }
            size_t k;
            rill_result r;
            while ((r = rill_call_try_recv_batch(c, in, WINDOW, &k)) == RILL_OK) { received += (long)k; progress = 1; }
            if (r == RILL_EOF) goto done;
            if (r != RILL_WOULD_BLOCK) DIE("recv %s", rill_result_name(r));
            if (!progress) break;
        }
    }
done:;
    double rate = received / (now() - t0);
    uint32_t code;
    OK(rill_call_finish(c, &code, 10000));
    OK(rill_call_free(c));
    OK(rill_poller_free(p));
    return rate;
}

static double stream(double secs) {
    uint8_t r[128];
    size_t rl = echo_encode(r, PAYLOAD, sizeof PAYLOAD, 1 << 30);
    rill_call c;
    long n = 0;
    OK(rill_call_open(ch, "/echo.TestService/EchoServer", RILL_SERVER_STREAMING, NULL, &c));
    OK(rill_call_send(c, r, rl, 10000));
    OK(rill_call_close_send(c));
    double t0 = now(), end = t0 + secs;
    rill_slice in[256];
    size_t k;
    while (1) {
        for (long stop = n + 1000; n < stop; n += (long)k) OK(rill_call_recv_batch(c, in, 256, &k, 10000));
        if (now() >= end) break;
    }
    double rate = n / (now() - t0);
    OK(rill_call_cancel(c));
    OK(rill_call_free(c));
    return rate;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: bench_client TARGET unary1|unary1dl|unary64|bidi|stream SECONDS\n"); return 2; }
    double secs = atof(argv[3]);
    req_len = echo_encode(req, PAYLOAD, sizeof PAYLOAD, 0);
    OK(rill_channel_new(argv[1], NULL, &ch));
    double rate;
    /* Warm up the connection. */
    unary1(0.2);
    if (!strcmp(argv[2], "unary1")) rate = unary1(secs);
    else if (!strcmp(argv[2], "unary1dl")) rate = unary1dl(secs);
    else if (!strcmp(argv[2], "unary64")) rate = unary64(secs);
    else if (!strcmp(argv[2], "bidi")) rate = bidi(secs);
    else if (!strcmp(argv[2], "stream")) rate = stream(secs);
    else { fprintf(stderr, "unknown workload %s\n", argv[2]); return 2; }
    printf("%s %.0f\n", argv[2], rate);
    OK(rill_channel_free(ch));
    return 0;
}

/* The echo service of shared/idl/echo.proto as a C server on rillrpc: one thread, one
 * poll(2) loop over a rill_poller, every call driven by non-blocking batch operations
 * (the fastest API: bench/c/run.sh measures it against the Rust core's server).
 *
 *   echo_server [PORT]      prints "listening on 127.0.0.1:PORT"; exits when stdin closes
 *
 * Echo conventions: count < 0 fails the call with status -count and message = payload;
 * metadata keys starting "echo-" come back in headers and trailers. A client deadline is
 * reported in the header "rill-deadline-ms". Calls that end early are logged on stderr. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "echo_pb.h"

enum kind { PING, ECHO, CLIENT, SERVER };

/* Up to this many messages per batch call. */
enum { BATCH = 64 };

struct conn {
    rill_server_call h;
    uint32_t gen;
    int live;
    enum kind kind;
    uint8_t *out;          /* encoded responses waiting to go, back to back */
    size_t out_len, out_cap;
    size_t *ends;          /* where each waiting response ends in `out` */
    size_t nends, ends_cap, sent;
    long rep_left;         /* server streaming: `out` holds one response, to send this often */
    int finishing;         /* after the sends: finish with code/msg */
    uint32_t code;
    char *msg;
    uint64_t total;
    rill_metadata trailers;
};

static struct conn *conns;
static size_t nconns;
static long ended_early;

/* Appends one encoded Response to the responses waiting to go. */
static void push_out(struct conn *c, const uint8_t *payload, size_t len) {
    if (c->out_cap < c->out_len + len + 20) {
        c->out_cap = 2 * (c->out_len + len + 20);
        c->out = realloc(c->out, c->out_cap);
        CHECK(c->out != NULL);
    }
    if (c->nends == c->ends_cap) {
        c->ends_cap = c->ends_cap ? 2 * c->ends_cap : BATCH;
        c->ends = realloc(c->ends, c->ends_cap * sizeof *c->ends);
        CHECK(c->ends != NULL);
    }
    c->out_len += echo_encode(c->out + c->out_len, payload, len, 0);
    c->ends[c->nends++] = c->out_len;
}

static void release(struct conn *c) {
    OK(rill_server_call_free(c->h));
    if (c->trailers) OK(rill_metadata_free(c->trailers));
    free(c->out);
    free(c->ends);
    free(c->msg);
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->gen = gen;
}

/* Sends what waits, in batches: 1 when all went, 0 when the queue is full or the call
 * was released. */
static int flush(struct conn *c) {
    rill_slice batch[BATCH];
    size_t k;
    rill_result r;
    while (c->sent < c->nends || c->rep_left > 0) {
        size_t m = 0;
        if (c->rep_left > 0) {
            for (; m < BATCH && (long)m < c->rep_left; m++)
                batch[m] = (rill_slice){.data = c->out, .len = c->out_len};
        } else {
            for (; m < BATCH && c->sent + m < c->nends; m++) {
                size_t i = c->sent + m, from = i ? c->ends[i - 1] : 0;
                batch[m] = (rill_slice){.data = c->out + from, .len = c->ends[i] - from};
            }
        }
        r = rill_server_call_try_send_batch(c->h, batch, m, &k);
        if (c->rep_left > 0) c->rep_left -= (long)k; else c->sent += k;
        if (r == RILL_WOULD_BLOCK) return 0;
        if (r != RILL_OK) { /* the client went away */
            fprintf(stderr, "echo_server: send ended: %s\n", rill_last_error_message());
            ended_early++;
            release(c);
            return 0;
        }
    }
    c->out_len = c->nends = c->sent = 0;
    return 1;
}

/* Ends the call with `code` once the responses to the earlier messages went out. */
static void fail(struct conn *c, uint32_t code, char *msg) {
    c->code = code;
    c->msg = msg;
    c->finishing = 1;
}

static void drive(struct conn *c) {
    rill_slice in[BATCH];
    const uint8_t *p;
    size_t n, pl;
    int32_t count;
    rill_result r;
    for (;;) {
        if (!flush(c)) return;
        if (c->finishing) {
            r = rill_server_call_finish(c->h, c->code, c->msg, NULL, 0, c->trailers);
            if (r != RILL_OK) fprintf(stderr, "echo_server: finish: %s\n", rill_last_error_message());
            release(c);
            return;
        }
        r = rill_server_call_try_recv_batch(c->h, in, BATCH, &n);
        if (r == RILL_WOULD_BLOCK) return;
        if (r == RILL_ERR_STATUS) {
            uint32_t code;
            OK(rill_server_call_status(c->h, &code, NULL));
            fprintf(stderr, "echo_server: call ended early with status %u\n", code);
            ended_early++;
            release(c);
            return;
        }
        if (r == RILL_EOF) {
            if (c->kind == CLIENT) {
                char num[32];
                int len = snprintf(num, sizeof num, "%llu", (unsigned long long)c->total);
                push_out(c, (const uint8_t *)num, (size_t)len);
            }
            c->finishing = 1;
            continue;
        }
        OK(r);
        for (size_t i = 0; i < n && !c->finishing; i++) {
            if (echo_decode(in[i].data, in[i].len, &p, &pl, &count) != 0) {
                fail(c, RILL_STATUS_INVALID_ARGUMENT, strdup("malformed echo.Request"));
            } else if (count < 0) {
                fail(c, (uint32_t)-count, strndup((const char *)p, pl));
            } else {
                switch (c->kind) {
                case PING: case ECHO: push_out(c, p, pl); break;
                case SERVER: push_out(c, p, pl); c->rep_left = count; c->nends = 0; break;
                case CLIENT: c->total += pl; break;
                }
            }
        }
    }
}

static uint64_t accept_one(rill_server_call h, rill_poller poller) {
    size_t i = 0;
    while (i < nconns && conns[i].live) i++;
    if (i == nconns) {
        size_t n = nconns ? nconns * 2 : 64;
        conns = realloc(conns, n * sizeof *conns);
        CHECK(conns != NULL);
        memset(conns + nconns, 0, (n - nconns) * sizeof *conns);
        nconns = n;
    }
    struct conn *c = &conns[i];
    c->h = h;
    c->live = 1;
    const char *method;
    OK(rill_server_call_method(h, &method));
    c->kind = strcmp(method, "/echo.TestService/PingPong") == 0 ? PING
            : strcmp(method, "/echo.TestService/Echo") == 0 ? ECHO
            : strcmp(method, "/echo.TestService/EchoClient") == 0 ? CLIENT : SERVER;

    /* echo-* request metadata goes back in headers and trailers. */
    /* Headers are made only when there is something to put in them. */
    rill_metadata req, headers = 0;
    size_t n;
    OK(rill_server_call_metadata(h, &req));
    OK(rill_metadata_count(req, &n));
    for (size_t k = 0; k < n; k++) {
        const char *key;
        const uint8_t *v;
        size_t vl;
        OK(rill_metadata_at(req, k, &key, &v, &vl));
        if (strncmp(key, "echo-", 5) != 0) continue;
        if (!c->trailers) OK(rill_metadata_new(&c->trailers));
        if (!headers) OK(rill_metadata_new(&headers));
        OK(rill_metadata_append(c->trailers, key, v, vl));
        OK(rill_metadata_append(headers, key, v, vl));
    }
    int64_t left;
    OK(rill_server_call_time_remaining(h, &left));
    if (left >= 0) {
        char num[32];
        int len = snprintf(num, sizeof num, "%lld", (long long)left);
        if (!headers) OK(rill_metadata_new(&headers));
        OK(rill_metadata_append(headers, "rill-deadline-ms", (const uint8_t *)num, (size_t)len));
    }
    if (headers) {
        OK(rill_server_call_send_headers(h, headers));
        OK(rill_metadata_free(headers));
    }
    OK(rill_metadata_free(req));

    uint64_t tag = ((uint64_t)c->gen << 32) | (i + 1);
    OK(rill_server_call_set_poller(h, poller, tag));
    return tag;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int watch_stdin = !(argc > 2 && strcmp(argv[2], "--no-stdin") == 0);
    rill_server srv;
    rill_poller poller;
    int pfd_fd = -1;
    char addr[64];
    OK(rill_server_new(NULL, &srv));
    OK(rill_server_add_method(srv, "/echo.TestService/PingPong", RILL_UNARY));
    OK(rill_server_add_method(srv, "/echo.TestService/Echo", RILL_BIDI));
    OK(rill_server_add_method(srv, "/echo.TestService/EchoClient", RILL_CLIENT_STREAMING));
    OK(rill_server_add_method(srv, "/echo.TestService/EchoServer", RILL_SERVER_STREAMING));
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    OK(rill_server_listen(srv, addr, NULL, NULL));
    OK(rill_server_start(srv));
    uint16_t bound;
    OK(rill_server_port(srv, &bound));
    OK(rill_poller_new(&poller));
    if (watch_stdin) OK(rill_poller_fd(poller, &pfd_fd));
    OK(rill_server_set_poller(srv, poller, 0));
    printf("listening on 127.0.0.1:%u\n", bound);
    fflush(stdout);

    uint64_t tags[256];
    for (;;) {
        size_t got;
        rill_result r;
        if (watch_stdin) {
            /* Two event sources: poll(2) on the poller's fd and stdin. */
            struct pollfd fds[2] = {{.fd = pfd_fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
            CHECK(poll(fds, 2, -1) > 0);
            if (fds[1].revents & (POLLIN | POLLHUP)) {
                char b[64];
                if (read(0, b, sizeof b) <= 0) break;
            }
            r = rill_poller_next(poller, tags, 256, &got);
        } else {
            /* Only rill handles: rill_poller_wait is cheaper than poll(2) on the fd. */
            r = rill_poller_wait(poller, tags, 256, &got, RILL_FOREVER);
        }
        for (; r == RILL_OK; r = rill_poller_next(poller, tags, 256, &got)) {
            for (size_t k = 0; k < got; k++) {
                if (tags[k] == 0) {
                    rill_server_call h;
                    while (rill_server_try_accept(srv, &h) == RILL_OK) accept_one(h, poller);
                    continue;
                }
                size_t i = (size_t)(tags[k] & 0xffffffff) - 1;
                if (i < nconns && conns[i].live && conns[i].gen == (uint32_t)(tags[k] >> 32))
                    drive(&conns[i]);
            }
        }
    }
    for (size_t i = 0; i < nconns; i++)
        if (conns[i].live) release(&conns[i]);
    free(conns);
    OK(rill_server_shutdown(srv, 100));
    OK(rill_server_free(srv));
    OK(rill_poller_free(poller));
    fprintf(stderr, "echo_server: stopped (%ld calls ended early)\n", ended_early);
    return 0;
}

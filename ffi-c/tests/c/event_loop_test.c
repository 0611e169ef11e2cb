/* One thread drives 1,000 concurrent calls with poll(2) on a rill_poller's fd: unary calls
 * and server-streaming calls, all open at once, every operation non-blocking. */
#include <poll.h>
#include <string.h>
#include "check.h"
#include "echo_pb.h"

#define N 1000
#define STREAM_COUNT 20

enum step { SEND, RECV, FINISH, DONE };

struct call {
    rill_call h;
    enum step step;
    int streaming;
    int received;
    char payload[16];
};

static struct call calls[N];

/* Advances one call as far as it can go without blocking; 1 when it completed now. */
static int drive(struct call *c) {
    const uint8_t *d, *p;
    size_t l, pl;
    uint8_t buf[64];
    rill_result r;
    for (;;) {
        switch (c->step) {
        case SEND: {
            size_t n = echo_encode(buf, c->payload, strlen(c->payload), c->streaming ? STREAM_COUNT : 0);
            r = rill_call_try_send(c->h, buf, n);
            if (r == RILL_WOULD_BLOCK) return 0;
            OK(r);
            OK(rill_call_close_send(c->h));
            c->step = RECV;
            break;
        }
        case RECV:
            r = rill_call_try_recv(c->h, &d, &l);
            if (r == RILL_WOULD_BLOCK) return 0;
            if (r == RILL_EOF) { c->step = FINISH; break; }
            OK(r);
            CHECK(echo_decode(d, l, &p, &pl, NULL) == 0);
            CHECK(pl == strlen(c->payload) && memcmp(p, c->payload, pl) == 0);
            c->received++;
            break;
        case FINISH: {
            uint32_t code;
            r = rill_call_try_finish(c->h, &code);
            if (r == RILL_WOULD_BLOCK) return 0;
            OK(r);
            CHECK(code == RILL_STATUS_OK);
            CHECK(c->received == (c->streaming ? STREAM_COUNT : 1));
            OK(rill_call_free(c->h));
            c->step = DONE;
            return 1;
        }
        case DONE:
            return 0; /* a late tag for a freed call */
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: event_loop_test http://127.0.0.1:PORT\n"); return 2; }
    rill_channel ch;
    rill_poller poller;
    int fd;
    OK(rill_channel_new(argv[1], NULL, &ch));
    OK(rill_poller_new(&poller));
    OK(rill_poller_fd(poller, &fd));
    rill_call_options o;
    OK(rill_call_options_init(&o));
    o.timeout_ms = 60000;
    for (int i = 0; i < N; i++) {
        struct call *c = &calls[i];
        c->streaming = i % 4 == 0;
        snprintf(c->payload, sizeof c->payload, "call-%d", i);
        OK(rill_call_open(ch, c->streaming ? "/echo.TestService/EchoServer" : "/echo.TestService/PingPong",
                          c->streaming ? RILL_SERVER_STREAMING : RILL_UNARY, &o, &c->h));
        /* The tag is the index; attaching queues it once so the loop makes the first move. */
        OK(rill_call_set_poller(c->h, poller, (uint64_t)i));
    }
    int done = 0, wakeups = 0;
    uint64_t tags[256];
    while (done < N) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, 30000);
        CHECK(n == 1);
        wakeups++;
        size_t got;
        while (rill_poller_next(poller, tags, 256, &got) == RILL_OK) {
            for (size_t i = 0; i < got; i++) {
                CHECK(tags[i] < N);
                done += drive(&calls[tags[i]]);
            }
        }
    }
    OK(rill_poller_free(poller));
    OK(rill_channel_free(ch));
    printf("event_loop_test: %d calls done from one thread in %d poll wake-ups\n", N, wakeups);
    return 0;
}

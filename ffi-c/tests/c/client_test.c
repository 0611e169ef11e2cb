/* A C client against a tonic echo server (argv[1] = "http://127.0.0.1:PORT"): the four
 * call shapes, metadata, status, deadline, cancel, zero-copy large messages. */
#include <string.h>
#include "check.h"
#include "echo_calls.h"

#define PING "/echo.TestService/PingPong"
#define ECHO "/echo.TestService/Echo"
#define ECHO_CLIENT "/echo.TestService/EchoClient"
#define ECHO_SERVER "/echo.TestService/EchoServer"
#define T 10000

static rill_channel ch;

static rill_call open_call(const char *method, uint32_t shape, rill_metadata md, int64_t timeout_ms) {
    rill_call_options o;
    OK(rill_call_options_init(&o));
    o.metadata = md;
    o.timeout_ms = timeout_ms;
    rill_call c;
    OK(rill_call_open(ch, method, shape, &o, &c));
    return c;
}

static void finish_ok(rill_call c) {
    uint32_t code = 99;
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_OK);
    OK(rill_call_free(c));
}

static void test_unary_and_metadata(void) {
    static const uint8_t bin[4] = {0, 1, 0xfe, 0xff};
    rill_metadata md;
    OK(rill_metadata_new(&md));
    OK(rill_metadata_append(md, "echo-text", (const uint8_t *)"v1", 2));
    OK(rill_metadata_append(md, "echo-data-bin", bin, sizeof bin));
    OK(rill_metadata_append(md, "other", (const uint8_t *)"x", 1));
    rill_call c = open_call(PING, RILL_UNARY, md, T);
    OK(rill_metadata_free(md));
    send_req(c, "hello", 0);
    OK(rill_call_close_send(c));
    recv_expect(c, "hello");
    const uint8_t *d;
    size_t l;
    EXPECT_RC(RILL_EOF, rill_call_recv(c, &d, &l, T));
    CHECK(d == NULL && l == 0);

    rill_metadata h;
    OK(rill_call_headers(c, &h, T));
    const uint8_t *v;
    size_t vl;
    OK(rill_metadata_get(h, "echo-text", &v, &vl));
    CHECK(vl == 2 && memcmp(v, "v1", 2) == 0);
    OK(rill_metadata_get(h, "ECHO-DATA-BIN", &v, &vl));
    CHECK(vl == sizeof bin && memcmp(v, bin, vl) == 0);
    EXPECT_RC(RILL_NOT_FOUND, rill_metadata_get(h, "other", &v, &vl));
    size_t count = 0, found = 0;
    OK(rill_metadata_count(h, &count));
    for (size_t i = 0; i < count; i++) {
        const char *k;
        OK(rill_metadata_at(h, i, &k, &v, &vl));
        if (strncmp(k, "echo-", 5) == 0) found++;
    }
    CHECK(found == 2);
    EXPECT_RC(RILL_NOT_FOUND, rill_metadata_at(h, count, (const char **)&v, &v, &vl));
    OK(rill_metadata_free(h));
    finish_ok(c);
    printf("unary + metadata: ok\n");
}

static void test_client_streaming(void) {
    rill_call c = open_call(ECHO_CLIENT, RILL_CLIENT_STREAMING, 0, T);
    send_req(c, "abc", 0);
    send_req(c, "de", 0);
    send_req(c, "f", 0);
    OK(rill_call_close_send(c));
    recv_expect(c, "6");
    finish_ok(c);
    printf("client streaming: ok\n");
}

static void test_server_streaming(void) {
    rill_call c = open_call(ECHO_SERVER, RILL_SERVER_STREAMING, 0, T);
    send_req(c, "tick", 50);
    OK(rill_call_close_send(c));
    for (int i = 0; i < 50; i++) recv_expect(c, "tick");
    const uint8_t *d;
    size_t l;
    EXPECT_RC(RILL_EOF, rill_call_recv(c, &d, &l, T));
    finish_ok(c);
    printf("server streaming: ok\n");
}

static void test_bidi(void) {
    rill_call c = open_call(ECHO, RILL_BIDI, 0, T);
    char msg[32];
    for (int i = 0; i < 200; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        send_req(c, msg, 0);
        recv_expect(c, msg);
    }
    /* Pipelined: many in flight, then read them back. */
    for (int i = 0; i < 100; i++) send_req(c, "p", 0);
    OK(rill_call_close_send(c));
    for (int i = 0; i < 100; i++) recv_expect(c, "p");
    const uint8_t *d;
    size_t l;
    EXPECT_RC(RILL_EOF, rill_call_recv(c, &d, &l, T));
    finish_ok(c);
    printf("bidi: ok\n");
}

static void test_large_message(void) {
    size_t n = 3 << 20;
    uint8_t *payload = malloc(n), *buf = malloc(n + 32);
    for (size_t i = 0; i < n; i++) payload[i] = (uint8_t)(i * 7);
    size_t len = echo_encode(buf, payload, n, 0);
    rill_call c = open_call(ECHO, RILL_BIDI, 0, T);
    OK(rill_call_send(c, buf, len, T));
    const uint8_t *d, *p;
    size_t l, pl;
    OK(rill_call_recv(c, &d, &l, T));
    CHECK(echo_decode(d, l, &p, &pl, NULL) == 0 && pl == n && memcmp(p, payload, n) == 0);
    finish_ok(c);
    free(payload);
    free(buf);
    printf("3 MiB message: ok\n");
}

static void test_compression(void) {
    static char payload[20000];
    memset(payload, 'z', sizeof payload - 1);
    rill_call_options o;
    OK(rill_call_options_init(&o));
    o.compression = RILL_COMPRESSION_GZIP;
    rill_call c;
    OK(rill_call_open(ch, ECHO_CLIENT, RILL_CLIENT_STREAMING, &o, &c));
    uint8_t *buf = malloc(sizeof payload + 32);
    size_t n = echo_encode(buf, payload, strlen(payload), 0);
    OK(rill_call_send(c, buf, n, T));
    OK(rill_call_send(c, buf, n, T));
    free(buf);
    OK(rill_call_close_send(c));
    recv_expect(c, "39998");
    finish_ok(c);
    o.compression = 7;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, ECHO, RILL_BIDI, &o, &c));
    printf("gzip: ok\n");
}

static void test_status(void) {
    rill_metadata md;
    OK(rill_metadata_new(&md));
    OK(rill_metadata_append(md, "echo-why", (const uint8_t *)"because", 7));
    rill_call c = open_call(PING, RILL_UNARY, md, T);
    OK(rill_metadata_free(md));
    uint32_t code;
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_status(c, &code, NULL, NULL, NULL));
    send_req(c, "no such thing", -5);
    const uint8_t *d;
    size_t l;
    EXPECT_RC(RILL_ERR_STATUS, rill_call_recv(c, &d, &l, T));
    const char *msg;
    OK(rill_call_status(c, &code, &msg, NULL, NULL));
    CHECK(code == RILL_STATUS_NOT_FOUND);
    CHECK(strcmp(msg, "no such thing") == 0);
    CHECK(strstr(rill_last_error_message(), "no such thing") != NULL);
    rill_metadata t;
    OK(rill_call_trailers(c, &t));
    const uint8_t *v;
    size_t vl;
    OK(rill_metadata_get(t, "echo-why", &v, &vl));
    CHECK(vl == 7 && memcmp(v, "because", 7) == 0);
    OK(rill_metadata_free(t));
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_NOT_FOUND);
    OK(rill_call_free(c));

    c = open_call("/echo.TestService/Nope", RILL_UNARY, 0, T);
    send_req(c, "x", 0);
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_UNIMPLEMENTED);
    OK(rill_call_free(c));
    printf("status: ok\n");
}

static void test_deadline(void) {
    rill_call c = open_call(ECHO, RILL_BIDI, 0, 200);
    const uint8_t *d;
    size_t l;
    EXPECT_RC(RILL_ERR_STATUS, rill_call_recv(c, &d, &l, RILL_FOREVER));
    uint32_t code;
    OK(rill_call_status(c, &code, NULL, NULL, NULL));
    CHECK(code == RILL_STATUS_DEADLINE_EXCEEDED);
    OK(rill_call_free(c));

    /* A blocking op's own timeout is not the call's deadline: the call goes on. */
    c = open_call(ECHO, RILL_BIDI, 0, 0);
    EXPECT_RC(RILL_TIMEOUT, rill_call_recv(c, &d, &l, 50));
    send_req(c, "still here", 0);
    recv_expect(c, "still here");
    finish_ok(c);
    printf("deadline: ok\n");
}

static void test_cancel(void) {
    rill_call c = open_call(ECHO, RILL_BIDI, 0, T);
    send_req(c, "one", 0);
    recv_expect(c, "one");
    OK(rill_call_cancel(c));
    const uint8_t *d;
    size_t l;
    EXPECT_RC(RILL_ERR_STATUS, rill_call_recv(c, &d, &l, T));
    uint32_t code;
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_CANCELLED);
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_send(c, d, 0, T));
    OK(rill_call_free(c));

    /* Freeing a call in flight cancels it; the channel stays usable. */
    c = open_call(ECHO, RILL_BIDI, 0, T);
    send_req(c, "two", 0);
    OK(rill_call_free(c));
    c = open_call(PING, RILL_UNARY, 0, T);
    send_req(c, "after", 0);
    recv_expect(c, "after");
    finish_ok(c);
    printf("cancel: ok\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: client_test http://127.0.0.1:PORT\n"); return 2; }
    OK(rill_runtime_configure(2));
    printf("rillrpc %s\n", rill_version());
    OK(rill_channel_new(argv[1], NULL, &ch));
    test_unary_and_metadata();
    test_client_streaming();
    test_server_streaming();
    test_bidi();
    test_large_message();
    test_compression();
    test_status();
    test_deadline();
    test_cancel();
    OK(rill_channel_free(ch));
    printf("client_test: all passed\n");
    return 0;
}

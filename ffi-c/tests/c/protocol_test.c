/* The three protocols through the C ABI.
 *
 *   protocol_test http://127.0.0.1:PORT
 *
 * The client: channels speaking gRPC-Web, Connect and gRPC (rill_channel_options.protocol)
 * call the echo service at argv[1] (the rillrpc core's): the four call shapes, metadata
 * both ways, an error status with trailers; gRPC-Web and Connect again over HTTP/1.1
 * (rill_channel_options.http_version). The server: a C server reports the protocol and
 * the codec of each call it accepts (rill_server_call_protocol, rill_server_call_codec),
 * and answers a browser's CORS preflight for the origins of rill_server_options.cors only,
 * over HTTP/1.1. Connect's GET: a C server whose method is registered free of side effects
 * (rill_server_add_method_with) answers a C client whose channel has http_get and whose
 * call is marked so (rill_call_options.idempotency, rill_call_open_with_request), over
 * HTTP/2 and HTTP/1.1, and a GET written by hand; other methods refuse the GET (405); a
 * raw listener sees the client's request line: GET when marked, POST when not. */
#define _GNU_SOURCE /* strcasestr: header names are case-insensitive */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"
#include "echo_calls.h"

#define PING "/echo.TestService/PingPong"
#define ECHO "/echo.TestService/Echo"
#define ECHO_CLIENT "/echo.TestService/EchoClient"
#define ECHO_SERVER "/echo.TestService/EchoServer"
#define T 10000

static const uint32_t PROTOCOLS[] = {RILL_PROTOCOL_GRPC_WEB, RILL_PROTOCOL_CONNECT, RILL_PROTOCOL_GRPC,
                                     RILL_PROTOCOL_TTHEADER};

static rill_channel channel_over(const char *target, uint32_t protocol, uint32_t http_version) {
    rill_channel_options o;
    OK(rill_channel_options_init(&o));
    CHECK(o.protocol == RILL_PROTOCOL_GRPC);
    CHECK(o.http_version == RILL_HTTP_VERSION_2);
    o.protocol = protocol;
    o.http_version = http_version;
    rill_channel ch;
    OK(rill_channel_new(target, &o, &ch));
    return ch;
}

static rill_channel channel_for(const char *target, uint32_t protocol) {
    return channel_over(target, protocol, RILL_HTTP_VERSION_2);
}

static void expect_eof_ok(rill_call c) {
    const uint8_t *d;
    size_t l;
    uint32_t code = 99;
    EXPECT_RC(RILL_EOF, rill_call_recv(c, &d, &l, T));
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_OK);
    OK(rill_call_free(c));
}

static void expect_md(rill_metadata md, const char *key, const char *want) {
    const uint8_t *v;
    size_t vl;
    OK(rill_metadata_get(md, key, &v, &vl));
    CHECK(vl == strlen(want) && memcmp(v, want, vl) == 0);
}

/* A unary call sending `payload` with `echo-text: name`: its answer and its headers echo
 * both back. The call is returned before its end for the caller to read. */
static rill_call unary_echoing(rill_channel ch, rill_call_options *o, const char *name,
                               const char *payload) {
    rill_call c;
    OK(rill_metadata_new(&o->metadata));
    OK(rill_metadata_append(o->metadata, "echo-text", (const uint8_t *)name, strlen(name)));
    OK(rill_call_open(ch, PING, RILL_UNARY, o, &c));
    OK(rill_metadata_free(o->metadata));
    o->metadata = 0;
    send_req(c, payload, 0);
    recv_expect(c, payload);
    rill_metadata h;
    OK(rill_call_headers(c, &h, T));
    expect_md(h, "echo-text", name);
    OK(rill_metadata_free(h));
    return c;
}

/* Every shape, metadata and a status, over one protocol. */
static void client_over(const char *target, uint32_t protocol) {
    const char *name = rill_protocol_name(protocol);
    rill_channel ch = channel_for(target, protocol);
    rill_call c;
    rill_call_options o;
    OK(rill_call_options_init(&o));
    o.timeout_ms = T;

    /* Unary, with metadata back in the headers and the trailers. */
    c = unary_echoing(ch, &o, name, "hello");
    rill_metadata h;
    const uint8_t *d;
    size_t l;
    EXPECT_RC(RILL_EOF, rill_call_recv(c, &d, &l, T));
    OK(rill_call_trailers(c, &h));
    expect_md(h, "echo-text", name);
    OK(rill_metadata_free(h));
    expect_eof_ok(c);

    /* Server streaming. */
    OK(rill_call_open(ch, ECHO_SERVER, RILL_SERVER_STREAMING, &o, &c));
    send_req(c, "tick", 100);
    for (int i = 0; i < 100; i++) recv_expect(c, "tick");
    expect_eof_ok(c);

    /* Client streaming. */
    OK(rill_call_open(ch, ECHO_CLIENT, RILL_CLIENT_STREAMING, &o, &c));
    send_req(c, "abc", 0);
    send_req(c, "de", 0);
    OK(rill_call_close_send(c));
    recv_expect(c, "5");
    expect_eof_ok(c);

    /* Bidi: in turn, then pipelined. */
    OK(rill_call_open(ch, ECHO, RILL_BIDI, &o, &c));
    char msg[32];
    for (int i = 0; i < 50; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        send_req(c, msg, 0);
        recv_expect(c, msg);
    }
    for (int i = 0; i < 50; i++) send_req(c, "p", 0);
    OK(rill_call_close_send(c));
    for (int i = 0; i < 50; i++) recv_expect(c, "p");
    expect_eof_ok(c);

    /* An error status with its message and trailers, unary and streaming. */
    const char *methods[] = {PING, ECHO_SERVER};
    const uint32_t shapes[] = {RILL_UNARY, RILL_SERVER_STREAMING};
    for (int i = 0; i < 2; i++) {
        OK(rill_metadata_new(&o.metadata));
        OK(rill_metadata_append(o.metadata, "echo-why", (const uint8_t *)"because", 7));
        OK(rill_call_open(ch, methods[i], shapes[i], &o, &c));
        OK(rill_metadata_free(o.metadata));
        o.metadata = 0;
        send_req(c, "no such thing", -5);
        EXPECT_RC(RILL_ERR_STATUS, rill_call_recv(c, &d, &l, T));
        uint32_t code;
        const char *m;
        OK(rill_call_status(c, &code, &m, NULL, NULL));
        /* Kitex's TTHeader says an error by its message alone: the code arrives as INTERNAL. */
        CHECK(code == (protocol == RILL_PROTOCOL_TTHEADER ? RILL_STATUS_INTERNAL : RILL_STATUS_NOT_FOUND));
        CHECK(strcmp(m, "no such thing") == 0);
        OK(rill_call_trailers(c, &h));
        expect_md(h, "echo-why", "because");
        OK(rill_metadata_free(h));
        OK(rill_call_free(c));
    }
    OK(rill_channel_free(ch));
    printf("client over %s: ok\n", name);
}

/* gRPC-Web and Connect over HTTP/1.1: unary (with metadata back), server and client
 * streaming, an error status; a bidi call cannot be opened over HTTP/1.1. */
static void client_over_http1(const char *target, uint32_t protocol) {
    const char *name = rill_protocol_name(protocol);
    rill_channel ch = channel_over(target, protocol, RILL_HTTP_VERSION_1);
    rill_call c;
    rill_call_options o;
    OK(rill_call_options_init(&o));
    o.timeout_ms = T;

    c = unary_echoing(ch, &o, name, "over http/1.1");
    expect_eof_ok(c);

    OK(rill_call_open(ch, ECHO_SERVER, RILL_SERVER_STREAMING, &o, &c));
    send_req(c, "tick", 100);
    for (int i = 0; i < 100; i++) recv_expect(c, "tick");
    expect_eof_ok(c);

    OK(rill_call_open(ch, ECHO_CLIENT, RILL_CLIENT_STREAMING, &o, &c));
    send_req(c, "abc", 0);
    send_req(c, "de", 0);
    OK(rill_call_close_send(c));
    recv_expect(c, "5");
    expect_eof_ok(c);

    const uint8_t *d;
    size_t l;
    OK(rill_call_open(ch, PING, RILL_UNARY, &o, &c));
    send_req(c, "no such thing", -5);
    EXPECT_RC(RILL_ERR_STATUS, rill_call_recv(c, &d, &l, T));
    uint32_t code;
    const char *m;
    OK(rill_call_status(c, &code, &m, NULL, NULL));
    CHECK(code == RILL_STATUS_NOT_FOUND);
    CHECK(strcmp(m, "no such thing") == 0);
    OK(rill_call_free(c));

    /* What the core says of a bidi call over HTTP/1.1 reaches C as an open that fails. */
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, ECHO, RILL_BIDI, &o, &c));
    OK(rill_channel_free(ch));
    printf("client over %s, HTTP/1.1: ok\n", name);
}

/* One Connect unary call written by hand over HTTP/1.1 with a JSON body: the C server
 * accepts it (`srv`, with PING registered) and must see the codec "json". */
static void server_sees_json(rill_server srv, uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST " PING " HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Content-Type: application/json\r\nConnect-Protocol-Version: 1\r\n"
                     "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                     port);
    CHECK(write(fd, req, (size_t)n) == n);

    rill_server_call sc;
    OK(rill_server_accept(srv, &sc, T));
    uint32_t p = 99;
    OK(rill_server_call_protocol(sc, &p));
    CHECK(p == RILL_PROTOCOL_CONNECT);
    const char *codec = NULL;
    OK(rill_server_call_codec(sc, &codec));
    CHECK(strcmp(codec, "json") == 0);
    const uint8_t *d;
    size_t l;
    OK(rill_server_call_recv(sc, &d, &l, T));
    CHECK(l == 2 && memcmp(d, "{}", 2) == 0);
    OK(rill_server_call_send(sc, (const uint8_t *)"{\"ok\":1}", 8, T));
    OK(rill_server_call_finish(sc, RILL_STATUS_OK, NULL, NULL, 0, 0));
    OK(rill_server_call_free(sc));

    char answer[4096];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof answer && (r = read(fd, answer + got, sizeof answer - 1 - got)) > 0)
        got += (size_t)r;
    answer[got] = 0;
    close(fd);
    CHECK(strncmp(answer, "HTTP/1.1 200", 12) == 0);
    CHECK(strcasestr(answer, "content-type: application/json\r\n") != NULL);
    CHECK(strstr(answer, "{\"ok\":1}") != NULL);
    printf("server saw codec json: ok\n");
}

/* A C server of PING (and ECHO, with `echo`) started on a free port; its URL in
 * `target`, its port in `*port` (may be NULL). */
static rill_server started_server(int echo, char target[64], uint16_t *port) {
    rill_server srv;
    OK(rill_server_new(NULL, &srv));
    OK(rill_server_add_method(srv, PING, RILL_UNARY));
    if (echo) OK(rill_server_add_method(srv, ECHO, RILL_BIDI));
    OK(rill_server_listen(srv, "127.0.0.1:0", NULL, NULL));
    OK(rill_server_start(srv));
    uint16_t p;
    OK(rill_server_port(srv, &p));
    snprintf(target, 64, "http://127.0.0.1:%u", p);
    if (port) *port = p;
    return srv;
}

/* A C server answers each call with the name of the protocol it was made in. */
static void server_reports_protocol(void) {
    char target[64];
    uint16_t port;
    rill_server srv = started_server(1, target, &port);

    for (size_t i = 0; i < sizeof PROTOCOLS / sizeof PROTOCOLS[0]; i++) {
        const char *name = rill_protocol_name(PROTOCOLS[i]);
        rill_channel ch = channel_for(target, PROTOCOLS[i]);
        for (int k = 0; k < 2; k++) {
            /* Open never waits: the call is sent while this thread accepts it. */
            rill_call c;
            OK(rill_call_open(ch, k ? ECHO : PING, k ? RILL_BIDI : RILL_UNARY, NULL, &c));
            send_req(c, "which?", 0);
            if (k) OK(rill_call_close_send(c));

            rill_server_call sc;
            OK(rill_server_accept(srv, &sc, T));
            uint32_t p = 99;
            OK(rill_server_call_protocol(sc, &p));
            CHECK(p == PROTOCOLS[i]);
            /* The client sends protobuf (TTHeader: Thrift, as it says whatever the bytes); a
             * second ask hands out the same string. */
            const char *codec = NULL, *again = NULL;
            OK(rill_server_call_codec(sc, &codec));
            CHECK(strcmp(codec, PROTOCOLS[i] == RILL_PROTOCOL_TTHEADER ? "thrift" : "proto") == 0);
            OK(rill_server_call_codec(sc, &again));
            CHECK(again == codec);
            const uint8_t *d;
            size_t l;
            OK(rill_server_call_recv(sc, &d, &l, T));
            uint8_t buf[64];
            size_t n = echo_encode(buf, name, strlen(name), 0);
            OK(rill_server_call_send(sc, buf, n, T));
            OK(rill_server_call_finish(sc, RILL_STATUS_OK, NULL, NULL, 0, 0));
            OK(rill_server_call_free(sc));

            recv_expect(c, name);
            expect_eof_ok(c);
        }
        OK(rill_channel_free(ch));
        printf("server saw %s: ok\n", name);
    }
    server_sees_json(srv, port);
    OK(rill_server_shutdown(srv, 1000));
    OK(rill_server_free(srv));
}

/* A Kitex biz status: a C server ends a call with one (rill_server_call_finish_biz), a C
 * client reads it back (rill_call_biz_status, rill_call_biz_extra), over every protocol. */
static void biz_status_both_ways(void) {
    char target[64];
    rill_server srv = started_server(0, target, NULL);
    /* In key order: the order a biz status's extra map is read back in. */
    const char *keys[] = {"note", "sku"};
    const char *values[] = {"\xc3\xb1 \xe2\x9c\x93", "a-1"}; /* "ñ ✓" */

    for (size_t i = 0; i < sizeof PROTOCOLS / sizeof PROTOCOLS[0]; i++) {
        rill_channel ch = channel_for(target, PROTOCOLS[i]);
        for (int biz = 1; biz >= 0; biz--) {
            rill_call c;
            OK(rill_call_open(ch, PING, RILL_UNARY, NULL, &c));
            send_req(c, "pen", 0);
            OK(rill_call_close_send(c));
            rill_server_call sc;
            OK(rill_server_accept(srv, &sc, T));
            if (biz) {
                /* Entries without their arrays are refused, and the call stays open. */
                EXPECT_RC(RILL_ERR_NULL, rill_server_call_finish_biz(sc, 7, "x", NULL, values, 2));
                OK(rill_server_call_finish_biz(sc, 7, "out of stock", keys, values, 2));
            } else {
                OK(rill_server_call_finish(sc, RILL_STATUS_NOT_FOUND, "plain", NULL, 0, 0));
            }
            OK(rill_server_call_free(sc));

            uint32_t code = 99;
            EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_biz_status(c, NULL, NULL, NULL));
            OK(rill_call_finish(c, &code, T));
            int32_t bc = 0;
            const char *msg = NULL, *k = NULL, *v = NULL;
            size_t n = 99;
            if (!biz) {
                /* TTHeader says such an error by its message alone: INTERNAL. */
                CHECK(code == (PROTOCOLS[i] == RILL_PROTOCOL_TTHEADER ? RILL_STATUS_INTERNAL
                                                                      : RILL_STATUS_NOT_FOUND));
                EXPECT_RC(RILL_NOT_FOUND, rill_call_biz_status(c, &bc, &msg, &n));
                EXPECT_RC(RILL_NOT_FOUND, rill_call_biz_extra(c, 0, &k, &v));
                OK(rill_call_free(c));
                continue;
            }
            CHECK(code == RILL_STATUS_INTERNAL);
            OK(rill_call_biz_status(c, &bc, &msg, &n));
            CHECK(bc == 7 && strcmp(msg, "out of stock") == 0 && n == 2);
            for (size_t e = 0; e < n; e++) {
                OK(rill_call_biz_extra(c, e, &k, &v));
                CHECK(strcmp(k, keys[e]) == 0 && strcmp(v, values[e]) == 0);
            }
            EXPECT_RC(RILL_NOT_FOUND, rill_call_biz_extra(c, 2, &k, &v));
            EXPECT_RC(RILL_ERR_NULL, rill_call_biz_extra(c, 0, NULL, &v));
            OK(rill_call_free(c));
        }
        OK(rill_channel_free(ch));
        printf("biz status over %s: ok\n", rill_protocol_name(PROTOCOLS[i]));
    }
    OK(rill_server_shutdown(srv, 1000));
    OK(rill_server_free(srv));
}

/* rill_call_options.content_subtype: the content type a server sees (`ctx.codec`), and
 * the struct of the header before it (its sizeof, 40 bytes) still accepted. */
static void content_subtype_reaches_the_server(void) {
    char target[64];
    rill_server srv = started_server(0, target, NULL);
    rill_channel ch = channel_for(target, RILL_PROTOCOL_GRPC);
    const char *want[] = {"thrift", "proto"};
    for (int k = 0; k < 2; k++) {
        rill_call_options o;
        OK(rill_call_options_init(&o));
        if (k == 0) {
            o.content_subtype = "thrift";
        } else {
            CHECK(offsetof(rill_call_options, content_subtype) == 40);
            o.size = 40; /* an earlier header's struct: no content_subtype, the default */
        }
        rill_call c;
        OK(rill_call_open_with_request(ch, PING, RILL_UNARY, &o, (const uint8_t *)"x", 1, &c));
        rill_server_call sc;
        OK(rill_server_accept(srv, &sc, T));
        const char *codec = NULL;
        OK(rill_server_call_codec(sc, &codec));
        CHECK(strcmp(codec, want[k]) == 0);
        OK(rill_server_call_finish(sc, RILL_STATUS_OK, NULL, NULL, 0, 0));
        OK(rill_server_call_free(sc));
        uint32_t code = 99;
        OK(rill_call_finish(c, &code, T));
        OK(rill_call_free(c));
    }
    rill_call_options bad;
    OK(rill_call_options_init(&bad));
    bad.size = 44; /* no header's */
    rill_call c;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, PING, RILL_UNARY, &bad, &c));
    OK(rill_channel_free(ch));
    OK(rill_server_shutdown(srv, 1000));
    OK(rill_server_free(srv));
    printf("content_subtype: ok\n");
}

/* ---- Connect's GET ---- */

#define GET_M "/rill.test.Lookup/Get"  /* registered RILL_IDEMPOTENCY_NO_SIDE_EFFECTS */
#define PUT_M "/rill.test.Lookup/Put"  /* registered without an idempotency */
/* echo.Request { payload: "hi" } is 0a 02 68 69: "CgJoaQ" in unpadded URL-safe base64. */
#define HI_B64 "CgJoaQ"

static int connect_to(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Reads until the peer closes (or `cap` - 1 bytes); NUL-terminates; returns the length. */
static size_t read_all(int fd, char *buf, size_t cap) {
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, buf + got, cap - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    return got;
}

/* A Connect channel with http_get on, over `http_version`. */
static rill_channel get_channel(const char *target, uint32_t http_version) {
    rill_channel_options o;
    OK(rill_channel_options_init(&o));
    CHECK(o.http_get == false);
    o.protocol = RILL_PROTOCOL_CONNECT;
    o.http_version = http_version;
    o.http_get = true;
    rill_channel ch;
    OK(rill_channel_new(target, &o, &ch));
    return ch;
}

/* A unary call of `method` with the request "hi", opened with its request (the form that
 * can go as a GET) and marked with `idempotency`. */
static rill_call call_hi(rill_channel ch, const char *method, uint32_t idempotency) {
    rill_call_options o;
    OK(rill_call_options_init(&o));
    CHECK(o.idempotency == RILL_IDEMPOTENCY_UNKNOWN);
    o.timeout_ms = T;
    o.idempotency = idempotency;
    uint8_t buf[32];
    size_t n = echo_encode(buf, "hi", 2, 0);
    rill_call c;
    OK(rill_call_open_with_request(ch, method, RILL_UNARY, &o, buf, n, &c));
    return c;
}

/* Accepts the one waiting call on `srv`: it must be `method` over Connect with the request
 * "hi"; answers it with `reply`. */
static void serve_hi(rill_server srv, const char *method, const char *reply) {
    rill_server_call sc;
    OK(rill_server_accept(srv, &sc, T));
    const char *m;
    OK(rill_server_call_method(sc, &m));
    CHECK(strcmp(m, method) == 0);
    uint32_t p = 99;
    OK(rill_server_call_protocol(sc, &p));
    CHECK(p == RILL_PROTOCOL_CONNECT);
    const char *codec = NULL;
    OK(rill_server_call_codec(sc, &codec));
    CHECK(strcmp(codec, "proto") == 0);
    const uint8_t *d, *pl;
    size_t l, pll;
    OK(rill_server_call_recv(sc, &d, &l, T));
    CHECK(echo_decode(d, l, &pl, &pll, NULL) == 0);
    CHECK(pll == 2 && memcmp(pl, "hi", 2) == 0);
    uint8_t buf[64];
    size_t n = echo_encode(buf, reply, strlen(reply), 0);
    OK(rill_server_call_send(sc, buf, n, T));
    OK(rill_server_call_finish(sc, RILL_STATUS_OK, NULL, NULL, 0, 0));
    OK(rill_server_call_free(sc));
}

/* The C client and the C server, over both HTTP versions: GET for the method registered
 * free of side effects, a refusal where the server does not allow it. */
static void connect_get_client_and_server(void) {
    rill_server srv;
    OK(rill_server_new(NULL, &srv));
    OK(rill_server_add_method_with(srv, GET_M, RILL_UNARY, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS));
    OK(rill_server_add_method(srv, PUT_M, RILL_UNARY));
    OK(rill_server_listen(srv, "127.0.0.1:0", NULL, NULL));
    OK(rill_server_start(srv));
    uint16_t port;
    OK(rill_server_port(srv, &port));
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%u", port);

    const uint32_t versions[] = {RILL_HTTP_VERSION_2, RILL_HTTP_VERSION_1};
    for (size_t i = 0; i < 2; i++) {
        rill_channel ch = get_channel(target, versions[i]);
        /* Marked free of side effects: a GET, which the server answers as any call. */
        rill_call c = call_hi(ch, GET_M, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS);
        serve_hi(srv, GET_M, "got");
        recv_expect(c, "got");
        expect_eof_ok(c);

        /* The same marking for a method the server did not register so: the GET is refused
         * before any handler (HTTP 405), and the call fails. A POST would have been served,
         * so the failure says the request was a GET. */
        c = call_hi(ch, PUT_M, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS);
        const uint8_t *d;
        size_t l;
        EXPECT_RC(RILL_ERR_STATUS, rill_call_recv(c, &d, &l, T));
        uint32_t code = 0;
        const char *m;
        OK(rill_call_status(c, &code, &m, NULL, NULL));
        /* A status other than 200 with no Connect error in it: UNKNOWN, as connect-go. */
        CHECK(code == RILL_STATUS_UNKNOWN);
        CHECK(strstr(m, "405") != NULL);
        OK(rill_call_free(c));
        rill_server_call sc;
        EXPECT_RC(RILL_WOULD_BLOCK, rill_server_try_accept(srv, &sc));

        /* Unmarked (and idempotent is not enough): a POST, served. */
        const uint32_t levels[] = {RILL_IDEMPOTENCY_UNKNOWN, RILL_IDEMPOTENCY_IDEMPOTENT};
        for (size_t k = 0; k < 2; k++) {
            c = call_hi(ch, PUT_M, levels[k]);
            serve_hi(srv, PUT_M, "put");
            recv_expect(c, "put");
            expect_eof_ok(c);
        }
        OK(rill_channel_free(ch));
        printf("connect GET, C client and server, %s: ok\n",
               versions[i] == RILL_HTTP_VERSION_1 ? "HTTP/1.1" : "HTTP/2");
    }

    /* A GET written by hand, as curl or an HTTP cache sends it: the server takes the
     * message from the URL, and answers 200 with the response as the body. */
    int fd = connect_to(port);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET " GET_M "?connect=v1&base64=1&encoding=proto&message=" HI_B64
                     " HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n",
                     port);
    CHECK(write(fd, req, (size_t)n) == n);
    serve_hi(srv, GET_M, "by hand");
    char answer[4096];
    size_t got = read_all(fd, answer, sizeof answer);
    close(fd);
    CHECK(strncmp(answer, "HTTP/1.1 200", 12) == 0);
    CHECK(strcasestr(answer, "content-type: application/proto\r\n") != NULL);
    uint8_t want[32];
    size_t wn = echo_encode(want, "by hand", 7, 0);
    CHECK(memmem(answer, got, want, wn) != NULL);

    /* The same GET of the method registered without it: 405, and POST is what it allows. */
    fd = connect_to(port);
    n = snprintf(req, sizeof req,
                 "GET " PUT_M "?connect=v1&base64=1&encoding=proto&message=" HI_B64
                 " HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n",
                 port);
    CHECK(write(fd, req, (size_t)n) == n);
    read_all(fd, answer, sizeof answer);
    close(fd);
    CHECK(strncmp(answer, "HTTP/1.1 405", 12) == 0);
    CHECK(strcasestr(answer, "allow: POST\r\n") != NULL);
    rill_server_call sc;
    EXPECT_RC(RILL_WOULD_BLOCK, rill_server_try_accept(srv, &sc));
    printf("connect GET by hand: 200, and 405 for %s: ok\n", PUT_M);

    OK(rill_server_shutdown(srv, 1000));
    OK(rill_server_free(srv));
}

/* The C client's request line as a bare HTTP/1.1 listener reads it: GET with the message
 * in the URL when the call is marked free of side effects, POST otherwise, and POST when
 * the channel has http_get off. */
static void connect_get_request_line(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 4) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%u", ntohs(a.sin_port));

    struct { int http_get; uint32_t idempotency; const char *line; } cases[] = {
        {1, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS,
         "GET " GET_M "?connect=v1&base64=1&encoding=proto&message=" HI_B64 " HTTP/1.1\r\n"},
        {1, RILL_IDEMPOTENCY_UNKNOWN, "POST " GET_M " HTTP/1.1\r\n"},
        {0, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS, "POST " GET_M " HTTP/1.1\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rill_channel_options co;
        OK(rill_channel_options_init(&co));
        co.protocol = RILL_PROTOCOL_CONNECT;
        co.http_version = RILL_HTTP_VERSION_1;
        co.http_get = cases[i].http_get;
        rill_channel ch;
        OK(rill_channel_new(target, &co, &ch));
        /* Open never waits: the request is on its way while this thread accepts it. */
        rill_call c = call_hi(ch, GET_M, cases[i].idempotency);
        int fd = accept(l, NULL, NULL);
        CHECK(fd >= 0);
        char head[2048];
        size_t got = 0;
        ssize_t r;
        while (got + 1 < sizeof head && (r = read(fd, head + got, sizeof head - 1 - got)) > 0) {
            got += (size_t)r;
            head[got] = 0;
            if (strstr(head, "\r\n\r\n")) break;
        }
        head[got] = 0;
        if (strncmp(head, cases[i].line, strlen(cases[i].line)) != 0)
            fprintf(stderr, "case %zu: the request began %.200s\n", i, head);
        CHECK(strncmp(head, cases[i].line, strlen(cases[i].line)) == 0);
        /* A Connect unary answer: the response message is the whole body. */
        uint8_t body[32];
        size_t bn = echo_encode(body, "seen", 4, 0);
        char resp[256];
        int n = snprintf(resp, sizeof resp,
                         "HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n", bn);
        CHECK(write(fd, resp, (size_t)n) == n);
        CHECK(write(fd, body, bn) == (ssize_t)bn);
        recv_expect(c, "seen");
        expect_eof_ok(c);
        close(fd);
        OK(rill_channel_free(ch));
    }
    close(l);
    printf("connect GET request lines: ok\n");
}

/* Sends a CORS preflight from `origin` over HTTP/1.1 and reads the whole answer (the
 * request asks the server to close the connection after it). */
static void preflight(uint16_t port, const char *origin, char *answer, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "OPTIONS " PING " HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nOrigin: %s\r\n"
                     "Access-Control-Request-Method: POST\r\n"
                     "Access-Control-Request-Headers: content-type,x-user\r\n"
                     "Connection: close\r\n\r\n",
                     port, origin);
    CHECK(write(fd, req, (size_t)n) == n);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, answer + got, cap - 1 - got)) > 0) got += (size_t)r;
    answer[got] = 0;
    close(fd);
    CHECK(strncmp(answer, "HTTP/1.1 ", 9) == 0);
}

static void server_cors(void) {
    static const char *const origins[] = {"http://allowed.test", "http://also.test"};
    rill_server_options so;
    OK(rill_server_options_init(&so));
    CHECK(so.cors == NULL && so.cors_len == 0 && so.cors_max_age_ms == 7200000);
    for (int with_cors = 0; with_cors < 2; with_cors++) {
        if (with_cors) {
            so.cors = origins;
            so.cors_len = 2;
            so.cors_max_age_ms = 600000;
        }
        rill_server srv;
        OK(rill_server_new(&so, &srv));
        OK(rill_server_add_method(srv, PING, RILL_UNARY));
        OK(rill_server_listen(srv, "127.0.0.1:0", NULL, NULL));
        OK(rill_server_start(srv));
        uint16_t port;
        OK(rill_server_port(srv, &port));
        char answer[4096];
        preflight(port, "http://also.test", answer, sizeof answer);
        if (with_cors) {
            CHECK(strncmp(answer, "HTTP/1.1 204", 12) == 0);
            CHECK(strcasestr(answer, "access-control-allow-origin: http://also.test\r\n") != NULL);
            CHECK(strcasestr(answer, "access-control-allow-headers: content-type,x-user\r\n") != NULL);
            CHECK(strcasestr(answer, "access-control-max-age: 600\r\n") != NULL);
        } else {
            CHECK(strcasestr(answer, "access-control-allow-origin") == NULL);
        }
        /* An origin the server does not name learns nothing. */
        preflight(port, "http://other.test", answer, sizeof answer);
        CHECK(strcasestr(answer, "access-control-allow-origin") == NULL);
        OK(rill_server_free(srv));
    }
    printf("cors: ok\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: protocol_test http://127.0.0.1:PORT\n"); return 2; }
    OK(rill_runtime_configure(2));
    CHECK(strcmp(rill_protocol_name(RILL_PROTOCOL_GRPC), "grpc") == 0);
    CHECK(strcmp(rill_protocol_name(RILL_PROTOCOL_GRPC_WEB), "grpc-web") == 0);
    CHECK(strcmp(rill_protocol_name(RILL_PROTOCOL_CONNECT), "connect") == 0);
    CHECK(strcmp(rill_protocol_name(RILL_PROTOCOL_TTHEADER), "ttheader") == 0);
    CHECK(rill_protocol_name(4) == NULL);
    for (size_t i = 0; i < sizeof PROTOCOLS / sizeof PROTOCOLS[0]; i++) client_over(argv[1], PROTOCOLS[i]);
    client_over_http1(argv[1], RILL_PROTOCOL_CONNECT);
    client_over_http1(argv[1], RILL_PROTOCOL_GRPC_WEB);
    server_reports_protocol();
    biz_status_both_ways();
    content_subtype_reaches_the_server();
    server_cors();
    connect_get_client_and_server();
    connect_get_request_line();
    printf("protocol_test: all passed\n");
    return 0;
}

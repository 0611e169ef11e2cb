/* Misuse of the API: each case must return its error code, never crash. No server is
 * needed: calls to a closed port are opened (open never waits) and fail as UNAVAILABLE. */
#include <stddef.h>
#include <string.h>
#include "check.h"

#define T 5000

int main(void) {
    rill_channel ch;
    rill_call c;
    const uint8_t *d;
    size_t l;
    uint32_t code;
    rill_metadata md_unused;

    /* NULL out-pointers and NULL strings. */
    EXPECT_RC(RILL_ERR_NULL, rill_channel_new("http://127.0.0.1:1", NULL, NULL));
    EXPECT_RC(RILL_ERR_NULL, rill_channel_new(NULL, NULL, &ch));
    EXPECT_RC(RILL_ERR_NULL, rill_metadata_new(NULL));
    CHECK(strstr(rill_last_error_message(), "NULL") != NULL);

    /* Handle 0. */
    EXPECT_RC(RILL_ERR_NULL, rill_call_close_send(0));
    EXPECT_RC(RILL_ERR_NULL, rill_channel_free(0));

    /* A bad target URI. */
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("ftp://x", NULL, &ch));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("not a uri at all", NULL, &ch));

    /* Options not filled by their init function. */
    rill_channel_options co;
    memset(&co, 0, sizeof co);
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_options_init(&co));
    co.connect_timeout_ms = -1;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    /* A protocol this version does not know. */
    OK(rill_channel_options_init(&co));
    co.protocol = 4;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    CHECK(strstr(rill_last_error_message(), "opts.protocol must be RILL_PROTOCOL_GRPC") != NULL);
    CHECK(rill_protocol_name(4) == NULL);
    /* An HTTP version this version does not know. */
    OK(rill_channel_options_init(&co));
    CHECK(co.http_version == RILL_HTTP_VERSION_2);
    co.http_version = 3;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    CHECK(strstr(rill_last_error_message(), "opts.http_version must be RILL_HTTP_VERSION_2 (0)") != NULL);
    /* The server's choice by ALPN (HTTP/2 over h2c). */
    co.http_version = RILL_HTTP_VERSION_AUTO;
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    /* gRPC over HTTP/1.1: the core's rule, at once rather than at every call's end. */
    co.http_version = RILL_HTTP_VERSION_1;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    CHECK(strstr(rill_last_error_message(), "gRPC needs HTTP/2") != NULL);
    /* http_get is off by default. A program built against the header before it passes the
     * smaller size of that struct: accepted, the byte where http_get now is (padding then)
     * never read. Any other size is refused. */
    OK(rill_channel_options_init(&co));
    CHECK(co.http_get == false);
    size_t old_size = (offsetof(rill_channel_options, http_get) + _Alignof(rill_channel_options) - 1) /
                      _Alignof(rill_channel_options) * _Alignof(rill_channel_options);
    CHECK(old_size < sizeof co);
    co.size = old_size;
    co.http_get = true;
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    co.size = old_size + 1;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    CHECK(strstr(rill_last_error_message(), "opts.size is wrong") != NULL);
    /* The header before the client certificate: tls_cert_pem is not read (read, it would
     * be refused without its key). */
    OK(rill_channel_options_init(&co));
    co.size = offsetof(rill_channel_options, tls_cert_pem);
    co.tls_cert_pem = "not read";
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    co.size = sizeof co;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    CHECK(strstr(rill_last_error_message(), "give tls_cert_pem and tls_key_pem") != NULL);
    /* The header before the authority: it is not read; read, "a b" is refused. */
    OK(rill_channel_options_init(&co));
    co.size = offsetof(rill_channel_options, authority);
    co.authority = "a b";
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    co.size = sizeof co;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_channel_new("http://127.0.0.1:1", &co, &ch));
    CHECK(strstr(rill_last_error_message(), "authority \"a b\" is not host[:port]") != NULL);
    co.authority = "echo";
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    /* The receive budget: 64 MiB by default, 0 for as far as HTTP/2 allows; the header
     * before it passes the smaller size and keeps the default. */
    OK(rill_channel_options_init(&co));
    CHECK(co.connection_receive_budget == 64u << 20);
    co.connection_receive_budget = 0;
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    co.size = offsetof(rill_channel_options, connection_receive_budget);
    co.connection_receive_budget = 1;
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    OK(rill_channel_options_init(&co));
    co.size = sizeof co;
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));
    OK(rill_channel_free(ch));
    OK(rill_channel_options_init(&co));
    OK(rill_channel_new("http://127.0.0.1:1", &co, &ch));

    /* Invalid UTF-8 in a string argument. */
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, "/echo.Test\xff/PingPong", RILL_UNARY, NULL, &c));
    CHECK(strstr(rill_last_error_message(), "UTF-8") != NULL);
    /* A method path that is no path, an unknown shape. */
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, "PingPong", RILL_UNARY, NULL, &c));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, "/a/b", 7, NULL, &c));
    /* A negative call deadline. */
    rill_call_options o;
    OK(rill_call_options_init(&o));
    o.timeout_ms = -5;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, "/a/b", RILL_UNARY, &o, &c));
    /* An idempotency level this version does not know. */
    OK(rill_call_options_init(&o));
    CHECK(o.idempotency == RILL_IDEMPOTENCY_UNKNOWN);
    o.idempotency = 3;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open(ch, "/a/b", RILL_UNARY, &o, &c));
    CHECK(strstr(rill_last_error_message(), "opts.idempotency must be RILL_IDEMPOTENCY_UNKNOWN (0)") != NULL);
    CHECK(strstr(rill_last_error_message(), "got 3") != NULL);
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open_with_request(ch, "/a/b", RILL_UNARY, &o, (const uint8_t *)"x", 1, &c));
    /* Opening with the request: NULL data with a length, NULL out-pointer, bad arguments. */
    OK(rill_call_options_init(&o));
    EXPECT_RC(RILL_ERR_NULL, rill_call_open_with_request(ch, "/a/b", RILL_UNARY, &o, NULL, 3, &c));
    EXPECT_RC(RILL_ERR_NULL, rill_call_open_with_request(ch, "/a/b", RILL_UNARY, &o, (const uint8_t *)"x", 1, NULL));
    EXPECT_RC(RILL_ERR_NULL, rill_call_open_with_request(ch, NULL, RILL_UNARY, &o, (const uint8_t *)"x", 1, &c));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_open_with_request(ch, "/a/b", 9, &o, (const uint8_t *)"x", 1, &c));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_call_open_with_request(12345, "/a/b", RILL_UNARY, &o, (const uint8_t *)"x", 1, &c));
    /* The request is the call's one message: a second one is refused. An empty request
     * (NULL, 0) is a message too. */
    OK(rill_call_open_with_request(ch, "/a/b", RILL_UNARY, &o, NULL, 0, &c));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_send(c, (const uint8_t *)"", 0, T));
    OK(rill_call_free(c));

    /* A handle of another kind. */
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_call_close_send(ch));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_call_close_send(12345));

    /* wait_for_ready: the call waits for the (never coming) connection instead of failing. */
    OK(rill_call_options_init(&o));
    o.wait_for_ready = true;
    OK(rill_call_open(ch, "/echo.TestService/PingPong", RILL_UNARY, &o, &c));
    /* Zero and negative timeouts of blocking functions. */
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_recv(c, &d, &l, 0));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_recv(c, &d, &l, -1));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_send(c, (const uint8_t *)"x", 1, 0));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_call_finish(c, &code, -3));
    /* NULL data with a length, NULL out-pointers. */
    EXPECT_RC(RILL_ERR_NULL, rill_call_send(c, NULL, 3, T));
    EXPECT_RC(RILL_ERR_NULL, rill_call_recv(c, NULL, &l, T));
    /* A second send on a unary request. */
    OK(rill_call_send(c, (const uint8_t *)"", 0, T));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_send(c, (const uint8_t *)"", 0, T));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_try_send(c, (const uint8_t *)"", 0));
    /* Status before the end; a blocking op that times out. */
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_status(c, &code, NULL, NULL, NULL));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_trailers(c, &md_unused));
    EXPECT_RC(RILL_TIMEOUT, rill_call_recv(c, &d, &l, 20));
    EXPECT_RC(RILL_WOULD_BLOCK, rill_call_try_recv(c, &d, &l));
    OK(rill_call_cancel(c));
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_CANCELLED);
    /* Use after finish. */
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_recv(c, &d, &l, T));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_try_recv(c, &d, &l));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_finish(c, &code, T));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_close_send(c));
    OK(rill_call_status(c, &code, NULL, NULL, NULL));
    /* Freed and double-freed handles. */
    OK(rill_call_free(c));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_call_free(c));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_call_recv(c, &d, &l, T));
    /* A reused slot does not revive the old handle. */
    rill_call c2;
    OK(rill_call_open(ch, "/echo.TestService/Echo", RILL_BIDI, NULL, &c2));
    CHECK(c2 != c);
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_call_cancel(c));
    /* Send after close_send on a stream. */
    OK(rill_call_close_send(c2));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_call_send(c2, (const uint8_t *)"", 0, T));
    OK(rill_call_free(c2));

    /* Metadata: bad key, non-ASCII value on a text key, invalid UTF-8 key. */
    rill_metadata md;
    OK(rill_metadata_new(&md));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_metadata_append(md, "Bad Key", (const uint8_t *)"v", 1));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_metadata_append(md, "k", (const uint8_t *)"\x01\x02", 2));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_metadata_append(md, "k\xc3", (const uint8_t *)"v", 1));
    OK(rill_metadata_append(md, "k-bin", (const uint8_t *)"\x01\x02", 2));
    /* Keys are case-insensitive, kept lower-cased; "-BIN" is binary too. */
    OK(rill_metadata_append(md, "X-Trace-BIN", (const uint8_t *)"\x00\xff", 2));
    const char *mk;
    const uint8_t *mv;
    size_t mlen;
    OK(rill_metadata_at(md, 1, &mk, &mv, &mlen));
    CHECK(strcmp(mk, "x-trace-bin") == 0 && mlen == 2 && mv[1] == 0xff);
    OK(rill_metadata_free(md));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_metadata_free(md));

    /* Server options: CORS origins missing or NULL, a negative max age. */
    rill_server s;
    rill_server_options so;
    static const char *const origins[] = {"http://a.test", NULL};
    OK(rill_server_options_init(&so));
    so.cors_len = 1;
    EXPECT_RC(RILL_ERR_NULL, rill_server_new(&so, &s));
    so.cors = origins;
    so.cors_len = 2;
    EXPECT_RC(RILL_ERR_NULL, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.cors[1]") != NULL);
    so.cors_len = 1;
    so.cors_max_age_ms = -1;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    so.cors_max_age_ms = 0;
    OK(rill_server_new(&so, &s));
    OK(rill_server_free(s));
    /* Connection limits: defaults, bad values, and the header before them (its size): the
     * fields past it are not read. */
    OK(rill_server_options_init(&so));
    CHECK(so.handshake_timeout_ms == 10000 && so.max_connections == 0);
    CHECK(so.max_connection_age_ms == 0 && so.max_connection_age_grace_ms == 0);
    so.handshake_timeout_ms = 0;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.handshake_timeout_ms must be > 0, got 0") != NULL);
    so.handshake_timeout_ms = 10000;
    so.max_connection_age_grace_ms = -1;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.max_connection_age_grace_ms must be >= 0") != NULL);
    so.max_connection_age_grace_ms = 0;
    CHECK(so.header_read_timeout_ms == 30000 && so.permit_keepalive_time_ms == 300000);
    CHECK(!so.permit_keepalive_without_calls);
    so.header_read_timeout_ms = -5;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.header_read_timeout_ms must be > 0, got -5") != NULL);
    so.header_read_timeout_ms = 30000;
    so.permit_keepalive_time_ms = -1;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.permit_keepalive_time_ms must be >= 0, got -1") != NULL);
    so.permit_keepalive_time_ms = 300000;
    CHECK(so.keepalive_time_ms == 7200000 && so.keepalive_timeout_ms == 20000);
    so.keepalive_time_ms = -1;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.keepalive_time_ms must be >= 0 (0: none), got -1") != NULL);
    so.keepalive_time_ms = 0;
    so.keepalive_timeout_ms = 0;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.keepalive_timeout_ms must be > 0, got 0") != NULL);
    /* The header before the server's own keepalive: the bad timeout past its size is not
     * read. */
    so.size = offsetof(rill_server_options, keepalive_time_ms);
    OK(rill_server_new(&so, &s));
    OK(rill_server_free(s));
    so.size = sizeof so;
    so.keepalive_timeout_ms = 20000;
    CHECK(so.send_budget == 512u << 20 && so.connection_send_budget == 64u << 20);
    /* 0: no budget; any other count of bytes is one. */
    so.send_budget = 0;
    so.connection_send_budget = 1;
    OK(rill_server_new(&so, &s));
    OK(rill_server_free(s));
    CHECK(so.receive_budget == 512u << 20 && so.connection_receive_budget == 64u << 20);
    /* 0: no limit; under the connection's first window, no growth. */
    so.receive_budget = 0;
    so.connection_receive_budget = 1;
    OK(rill_server_new(&so, &s));
    OK(rill_server_free(s));
    /* The header before the receive budgets. */
    so.size = offsetof(rill_server_options, receive_budget);
    OK(rill_server_new(&so, &s));
    OK(rill_server_free(s));
    so.size = sizeof so;
    so.permit_keepalive_time_ms = -1;
    /* The header before the keepalive fields: the bad value past its size is not read. */
    so.size = offsetof(rill_server_options, header_read_timeout_ms);
    OK(rill_server_new(&so, &s));
    OK(rill_server_free(s));
    so.max_connection_age_grace_ms = -1;
    so.size = offsetof(rill_server_options, handshake_timeout_ms);
    OK(rill_server_new(&so, &s));
    OK(rill_server_free(s));
    so.size = sizeof so + 8;
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_new(&so, &s));
    CHECK(strstr(rill_last_error_message(), "opts.size is wrong: fill the options with rill_server_options_init") != NULL);

    /* Servers: wrong order, bad status codes, finish twice. */
    OK(rill_server_new(NULL, &s));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_server_start(s));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_add_method(s, "nope", RILL_UNARY));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_add_method(s, "/a.B/C", 9));
    OK(rill_server_add_method(s, "/a.B/C", RILL_UNARY));
    /* Methods with an idempotency: a level this version does not know, a bad path, shape. */
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_add_method_with(s, "/a.B/G", RILL_UNARY, 3));
    CHECK(strstr(rill_last_error_message(), "idempotency must be RILL_IDEMPOTENCY_UNKNOWN (0)") != NULL);
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_add_method_with(s, "nope", RILL_UNARY, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_add_method_with(s, "/a.B/G", 9, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS));
    EXPECT_RC(RILL_ERR_NULL, rill_server_add_method_with(s, NULL, RILL_UNARY, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS));
    EXPECT_RC(RILL_ERR_NULL, rill_server_add_method_with(0, "/a.B/G", RILL_UNARY, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_server_add_method_with(ch, "/a.B/G", RILL_UNARY, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS));
    OK(rill_server_add_method_with(s, "/a.B/G", RILL_UNARY, RILL_IDEMPOTENCY_NO_SIDE_EFFECTS));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_listen(s, "127.0.0.1:0", "cert", NULL));
    rill_server_call sc;
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_server_try_accept(s, &sc));
    OK(rill_server_listen(s, "127.0.0.1:0", NULL, NULL));
    OK(rill_server_start(s));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_server_add_method(s, "/a.B/D", RILL_UNARY));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_server_add_method_with(s, "/a.B/D", RILL_UNARY, RILL_IDEMPOTENCY_IDEMPOTENT));
    EXPECT_RC(RILL_WOULD_BLOCK, rill_server_try_accept(s, &sc));
    EXPECT_RC(RILL_TIMEOUT, rill_server_accept(s, &sc, 20));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_accept(s, &sc, 0));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_shutdown(s, -1));
    uint16_t port;
    OK(rill_server_port(s, &port));
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%u", port);
    rill_channel ch2;
    OK(rill_channel_new(target, NULL, &ch2));
    OK(rill_call_open(ch2, "/a.B/C", RILL_UNARY, NULL, &c));
    OK(rill_call_send(c, (const uint8_t *)"q", 1, T));
    OK(rill_server_accept(s, &sc, T));
    const char *method;
    OK(rill_server_call_method(sc, &method));
    CHECK(strcmp(method, "/a.B/C") == 0);
    uint32_t protocol = 99;
    EXPECT_RC(RILL_ERR_NULL, rill_server_call_protocol(sc, NULL));
    OK(rill_server_call_protocol(sc, &protocol));
    CHECK(protocol == RILL_PROTOCOL_GRPC);
    const char *codec = NULL;
    EXPECT_RC(RILL_ERR_NULL, rill_server_call_codec(sc, NULL));
    EXPECT_RC(RILL_ERR_NULL, rill_server_call_codec(0, &codec));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_server_call_codec(ch2, &codec));
    CHECK(codec == NULL);
    OK(rill_server_call_codec(sc, &codec));
    CHECK(strcmp(codec, "proto") == 0);
    OK(rill_server_call_recv(sc, &d, &l, T));
    CHECK(l == 1 && d[0] == 'q');
    OK(rill_server_call_send(sc, (const uint8_t *)"r", 1, T));
    /* A second response on a unary call. */
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_server_call_send(sc, (const uint8_t *)"r", 1, T));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_call_finish(sc, 17, NULL, NULL, 0, 0));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_server_call_finish(sc, 3, "bad\xff", NULL, 0, 0));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_server_call_finish(sc, 0, NULL, NULL, 0, md));
    OK(rill_server_call_finish(sc, 0, NULL, NULL, 0, 0));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_server_call_finish(sc, 0, NULL, NULL, 0, 0));
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_server_call_send(sc, (const uint8_t *)"r", 1, T));
    OK(rill_server_call_free(sc));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_server_call_free(sc));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_server_call_protocol(sc, &protocol));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_server_call_codec(sc, &codec));
    OK(rill_call_recv(c, &d, &l, T));
    CHECK(l == 1 && d[0] == 'r');
    OK(rill_call_finish(c, &code, T));
    CHECK(code == RILL_STATUS_OK);
    OK(rill_call_free(c));
    OK(rill_server_shutdown(s, 1000));
    EXPECT_RC(RILL_ERR_CLOSED, rill_server_accept(s, &sc, T));
    OK(rill_server_free(s));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_server_free(s));

    /* Pollers. */
    rill_poller p;
    uint64_t tags[4];
    size_t n;
    OK(rill_poller_new(&p));
    EXPECT_RC(RILL_WOULD_BLOCK, rill_poller_next(p, tags, 4, &n));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_poller_next(p, tags, 0, &n));
    EXPECT_RC(RILL_ERR_NULL, rill_poller_next(p, NULL, 4, &n));
    EXPECT_RC(RILL_TIMEOUT, rill_poller_wait(p, tags, 4, &n, 10));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_poller_wait(p, tags, 4, &n, 0));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_call_set_poller(c, p, 1));
    OK(rill_poller_free(p));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_poller_free(p));

    /* The runtime is running: too late to configure it. */
    EXPECT_RC(RILL_ERR_WRONG_STATE, rill_runtime_configure(2));
    EXPECT_RC(RILL_ERR_INVALID_ARGUMENT, rill_runtime_configure(0));
    CHECK(strcmp(rill_result_name(RILL_ERR_PANIC), "RILL_ERR_PANIC") == 0);
    CHECK(strcmp(rill_result_name(9999), "RILL_UNKNOWN") == 0);

    OK(rill_channel_free(ch2));
    OK(rill_channel_free(ch));
    EXPECT_RC(RILL_ERR_STALE_HANDLE, rill_channel_free(ch));
    printf("misuse_test: all passed\n");
    return 0;
}

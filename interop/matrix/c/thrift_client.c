/* The C client of the matrix's thrift table, on librillrpc's blocking API:
 *   matrix-thrift-client-c --target HOST:PORT [--transport grpc|ttheader] [--check NAME[,NAME]]
 * runs kitex-client's eight checks (interop/kitex/README.md: unary, server_streaming,
 * client_streaming, bidi, error_status, metadata, cancel, deadline) against a server of
 * shared/idl/echo.thrift with kitex-server's semantics, prints "PASS <check>" /
 * "FAIL <check>: <why>" lines and exits 1 if any failed.
 *
 * --transport grpc (default): every call is `application/grpc+thrift`
 * (rill_call_options.content_subtype = "thrift"); --transport ttheader: the channel speaks
 * RILL_PROTOCOL_TTHEADER (streams over TTHeader Streaming, PingPong as TTHeader-framed
 * Thrift). Either way the destination service is named "echo", as Kitex's client names it
 * (rill_channel_options.authority: `:authority` over gRPC, ToService over TTHeader).
 *
 * The messages are Thrift Binary, encoded and decoded here by hand (interop/kitex/WIRE.md
 * §3): bare Request/Response structs on the streams, TestServicePingPongArgs{1: req} and
 * TestServicePingPongResult{0: success} on PingPong. The reader skips unknown fields of any
 * type (as Kitex's readers do), a known field id with another type too, and refuses
 * truncated input, negative lengths, nesting deeper than 64 and bytes after the STOP. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rillrpc.h"
#include "check_fail.h"

#define PING_PONG "/echo.TestService/PingPong"
#define ECHO "/echo.TestService/Echo"
#define ECHO_CLIENT "/echo.TestService/EchoClient"
#define ECHO_SERVER "/echo.TestService/EchoServer"
#define WAIT_MS 20000 /* every call's deadline, as kitex-client's */
/* The `deadline` check: a 300 ms deadline on calls the server is asked (payload
 * `sleep:3000`, every server's slow path) to answer only after 3 s. */
#define SHORT_DEADLINE_MS 300
#define DEADLINE_LIMIT_MS 2000 /* a deadline error later than this is a failure */
#define HANG_MS 5000           /* how long each wait of the check may take at all */
static const char SLOW_PAYLOAD[] = "sleep:3000";

static const uint8_t UNARY_PAYLOAD[] = "matrix\x00\xffping";
#define UNARY_LEN (sizeof UNARY_PAYLOAD - 1)
static const size_t STREAM_SIZES[] = {1, 10, 100, 70000};
static const char ERROR_MESSAGE[] = "matrix error: 100% ünïcødé ✓";
/* kitex-client's metainfo (metainfo.WithValue(ctx, "ECHO_KEY", "value") and
 * WithPersistentValue(ctx, "ECHO_PERSIST_KEY", "persist value")) in their gRPC form; the
 * core writes them as RPC_TRANSIT_ECHO_KEY / RPC_PERSIST_ECHO_PERSIST_KEY over TTHeader. */
static const char *const META_KEYS[] = {"rpc-transit-echo-key", "rpc-persist-echo-persist-key"};
static const char *const META_VALUES[] = {"value", "persist value"};
#define META_N 2

static rill_channel chan;

/* ------------------------------------------------------------------ Thrift Binary */

enum { T_STOP = 0, T_BOOL = 2, T_BYTE = 3, T_DOUBLE = 4, T_I16 = 6, T_I32 = 8, T_I64 = 10,
       T_STRING = 11, T_STRUCT = 12, T_MAP = 13, T_SET = 14, T_LIST = 15, T_UUID = 16 };
#define MAX_DEPTH 64

static uint8_t *put_field(uint8_t *p, uint8_t type, uint16_t id) {
    *p++ = type;
    *p++ = (uint8_t)(id >> 8);
    *p++ = (uint8_t)id;
    return p;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    *p++ = (uint8_t)(v >> 24);
    *p++ = (uint8_t)(v >> 16);
    *p++ = (uint8_t)(v >> 8);
    *p++ = (uint8_t)v;
    return p;
}

/* echo.Request{1: payload, 2: count (when has_count)} into `out` (len + 16 bytes):
 * its length. */
static size_t put_request(uint8_t *out, const void *payload, size_t len, int has_count,
                          int32_t count) {
    uint8_t *p = put_field(out, T_STRING, 1);
    p = put_u32(p, (uint32_t)len);
    if (len) memcpy(p, payload, len);
    p += len;
    if (has_count) p = put_u32(put_field(p, T_I32, 2), (uint32_t)count);
    *p++ = T_STOP;
    return (size_t)(p - out);
}

/* A Request (bare: a stream's message) or TestServicePingPongArgs{1: Request} around it
 * (PingPong's), newly allocated: free it. */
static uint8_t *encode_request(int args, const void *payload, size_t len, int has_count,
                               int32_t count, size_t *n_out) {
    uint8_t *buf = malloc(len + 32);
    if (buf == NULL) return NULL;
    uint8_t *p = buf;
    if (args) p = put_field(p, T_STRUCT, 1);
    p += put_request(p, payload, len, has_count, count);
    if (args) *p++ = T_STOP;
    *n_out = (size_t)(p - buf);
    return buf;
}

struct reader {
    const uint8_t *p, *end;
};

static int get_bytes(struct reader *r, size_t n, const uint8_t **out) {
    if ((size_t)(r->end - r->p) < n) return -1;
    if (out) *out = r->p;
    r->p += n;
    return 0;
}

static int get_u8(struct reader *r, uint8_t *v) {
    const uint8_t *b;
    if (get_bytes(r, 1, &b)) return -1;
    *v = b[0];
    return 0;
}

static int get_u16(struct reader *r, uint16_t *v) {
    const uint8_t *b;
    if (get_bytes(r, 2, &b)) return -1;
    *v = (uint16_t)(b[0] << 8 | b[1]);
    return 0;
}

static int get_i32(struct reader *r, int32_t *v) {
    const uint8_t *b;
    if (get_bytes(r, 4, &b)) return -1;
    *v = (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    return 0;
}

/* A length or count: negative ones are refused. */
static int get_len(struct reader *r, size_t *n) {
    int32_t v;
    if (get_i32(r, &v) || v < 0) return -1;
    *n = (size_t)v;
    return 0;
}

static int skip(struct reader *r, uint8_t type, int depth);

static int skip_struct(struct reader *r, int depth) {
    if (depth > MAX_DEPTH) return -1;
    for (;;) {
        uint8_t type;
        uint16_t id;
        if (get_u8(r, &type)) return -1;
        if (type == T_STOP) return 0;
        if (get_u16(r, &id) || skip(r, type, depth)) return -1;
    }
}

/* Skips a value of `type`; -1 for an unknown type or bytes that end too soon. Every
 * element takes at least one byte, so a count past what is left is refused at once. */
static int skip(struct reader *r, uint8_t type, int depth) {
    size_t n;
    uint8_t kt, vt;
    switch (type) {
    case T_BOOL:
    case T_BYTE: return get_bytes(r, 1, NULL);
    case T_I16: return get_bytes(r, 2, NULL);
    case T_I32: return get_bytes(r, 4, NULL);
    case T_I64:
    case T_DOUBLE: return get_bytes(r, 8, NULL);
    case T_UUID: return get_bytes(r, 16, NULL);
    case T_STRING: return get_len(r, &n) || get_bytes(r, n, NULL);
    case T_STRUCT: return skip_struct(r, depth + 1);
    case T_MAP:
        if (get_u8(r, &kt) || get_u8(r, &vt) || get_len(r, &n)) return -1;
        if (n > (size_t)(r->end - r->p)) return -1;
        for (size_t i = 0; i < n; i++)
            if (skip(r, kt, depth + 1) || skip(r, vt, depth + 1)) return -1;
        return 0;
    case T_SET:
    case T_LIST:
        if (get_u8(r, &vt) || get_len(r, &n)) return -1;
        if (n > (size_t)(r->end - r->p)) return -1;
        for (size_t i = 0; i < n; i++)
            if (skip(r, vt, depth + 1)) return -1;
        return 0;
    default: return -1;
    }
}

/* echo.Response's fields: payload (NULL, 0 when unset: Go reads a nil slice as empty). */
static int read_response(struct reader *r, const uint8_t **payload, size_t *len, int depth) {
    *payload = NULL;
    *len = 0;
    if (depth > MAX_DEPTH) return -1;
    for (;;) {
        uint8_t type;
        uint16_t id;
        if (get_u8(r, &type)) return -1;
        if (type == T_STOP) return 0;
        if (get_u16(r, &id)) return -1;
        if (id == 1 && type == T_STRING) {
            if (get_len(r, len) || get_bytes(r, *len, payload)) return -1;
        } else if (skip(r, type, depth)) {
            return -1;
        }
    }
}

/* A bare Response (`result` 0) or a TestServicePingPongResult{0: success} (`result` 1): its
 * payload. -1 for bytes that are not exactly one such struct, or a result with no success. */
static int decode_response(int result, const uint8_t *msg, size_t n, const uint8_t **payload,
                           size_t *len) {
    struct reader r = {msg, msg + n};
    if (!result) {
        if (read_response(&r, payload, len, 0)) return -1;
    } else {
        int found = 0;
        for (;;) {
            uint8_t type;
            uint16_t id;
            if (get_u8(&r, &type)) return -1;
            if (type == T_STOP) break;
            if (get_u16(&r, &id)) return -1;
            if (id == 0 && type == T_STRUCT) {
                if (read_response(&r, payload, len, 1)) return -1;
                found = 1;
            } else if (skip(&r, type, 0)) {
                return -1;
            }
        }
        if (!found) return -1;
    }
    return r.p == r.end ? 0 : -1;
}

/* ------------------------------------------------------------------ calls */

static rill_result open_call_within(const char *method, uint32_t shape, rill_metadata md,
                                    int64_t timeout_ms, rill_call *call) {
    rill_call_options o;
    rill_call_options_init(&o);
    o.timeout_ms = timeout_ms;
    o.metadata = md;
    o.content_subtype = "thrift"; /* application/grpc+thrift; TTHeader carries Thrift anyway */
    return rill_call_open(chan, method, shape, &o, call);
}

static rill_result open_call(const char *method, uint32_t shape, rill_metadata md,
                             rill_call *call) {
    return open_call_within(method, shape, md, WAIT_MS, call);
}

/* Sends a Request (a PingPong args struct when `method` is PingPong). */
static rill_result send_request(rill_call call, int args, const void *payload, size_t len,
                                int has_count, int32_t count) {
    size_t n;
    uint8_t *buf = encode_request(args, payload, len, has_count, count, &n);
    if (buf == NULL) return RILL_ERR_CLOSED;
    rill_result r = rill_call_send(call, buf, n, WAIT_MS);
    free(buf);
    return r;
}

/* Receives one Response (a PingPong result when `result`) and checks its payload. */
static int expect_response(rill_call call, int result, const char *what, const void *want,
                           size_t want_len) {
    const uint8_t *msg, *payload;
    size_t len, plen;
    rill_result r = rill_call_recv(call, &msg, &len, WAIT_MS);
    if (r == RILL_ERR_STATUS) return status_fail(what, call);
    if (r == RILL_EOF) return fail("%s: the call ended without a response", what);
    if (r != RILL_OK) return lib_fail(what, r);
    if (decode_response(result, msg, len, &payload, &plen) != 0)
        return fail("%s: bad %s (%zu bytes)", what,
                    result ? "TestServicePingPongResult" : "echo.Response", len);
    if (plen != want_len || (plen && memcmp(payload, want, plen) != 0))
        return fail("%s: payload of %zu bytes \"%.*s\", want \"%.*s\"", what, plen,
                    (int)(plen > 64 ? 64 : plen), (const char *)payload,
                    (int)(want_len > 64 ? 64 : want_len), (const char *)want);
    return 0;
}

/* No more messages, then an OK status. */
static int expect_end(rill_call call, const char *what) {
    const uint8_t *msg;
    size_t len;
    uint32_t code = 99;
    rill_result r = rill_call_recv(call, &msg, &len, WAIT_MS);
    if (r == RILL_OK) return fail("%s: an extra message (%zu bytes)", what, len);
    if (r == RILL_ERR_STATUS) return status_fail(what, call);
    if (r != RILL_EOF) return lib_fail(what, r);
    r = rill_call_finish(call, &code, WAIT_MS);
    if (r != RILL_OK) return lib_fail(what, r);
    if (code != RILL_STATUS_OK) return status_fail(what, call);
    return 0;
}

/* ------------------------------------------------------------------ the checks */

static int unary_with(const void *payload, size_t len) {
    rill_call call;
    rill_result r = open_call(PING_PONG, RILL_UNARY, 0, &call);
    if (r != RILL_OK) return lib_fail("PingPong open", r);
    int bad = (r = send_request(call, 1, payload, len, 0, 0)) != RILL_OK
                  ? lib_fail("PingPong send", r)
                  : expect_response(call, 1, "PingPong", payload, len) ||
                        expect_end(call, "PingPong end");
    rill_call_free(call);
    return bad;
}

static int unary(void) { return unary_with(UNARY_PAYLOAD, UNARY_LEN) || unary_with("", 0); }

static int server_streaming(void) {
    rill_call call;
    rill_result r = open_call(ECHO_SERVER, RILL_SERVER_STREAMING, 0, &call);
    if (r != RILL_OK) return lib_fail("EchoServer open", r);
    int bad = 0;
    if ((r = send_request(call, 0, "stream", 6, 1, 5)) != RILL_OK) bad = lib_fail("EchoServer send", r);
    for (int i = 0; !bad && i < 5; i++) {
        char what[48];
        snprintf(what, sizeof what, "EchoServer response %d", i);
        bad = expect_response(call, 0, what, "stream", 6);
    }
    if (!bad) bad = expect_end(call, "EchoServer end");
    rill_call_free(call);
    return bad;
}

static int client_streaming(void) {
    rill_call call;
    rill_result r = open_call(ECHO_CLIENT, RILL_CLIENT_STREAMING, 0, &call);
    if (r != RILL_OK) return lib_fail("EchoClient open", r);
    int bad = 0;
    for (size_t i = 0; !bad && i < sizeof STREAM_SIZES / sizeof *STREAM_SIZES; i++) {
        char *p = malloc(STREAM_SIZES[i]);
        if (p == NULL) {
            bad = fail("out of memory");
            break;
        }
        memset(p, 'c', STREAM_SIZES[i]);
        if ((r = send_request(call, 0, p, STREAM_SIZES[i], 0, 0)) != RILL_OK)
            bad = lib_fail("EchoClient send", r);
        free(p);
    }
    if (!bad && (r = rill_call_close_send(call)) != RILL_OK) bad = lib_fail("EchoClient close_send", r);
    if (!bad) bad = expect_response(call, 0, "EchoClient", "70111", 5) || expect_end(call, "EchoClient end");
    rill_call_free(call);
    return bad;
}

/* One round of Echo: send `p`, receive its echo. */
static int round_trip(rill_call call, const char *p) {
    char what[64];
    snprintf(what, sizeof what, "Echo %s", p);
    rill_result r = send_request(call, 0, p, strlen(p), 0, 0);
    if (r != RILL_OK) return lib_fail(what, r);
    return expect_response(call, 0, what, p, strlen(p));
}

static int bidi(void) {
    rill_call call;
    rill_result r = open_call(ECHO, RILL_BIDI, 0, &call);
    if (r != RILL_OK) return lib_fail("Echo open", r);
    int bad = 0;
    for (int i = 0; !bad && i < 5; i++) {
        char p[16];
        snprintf(p, sizeof p, "bidi-%d", i);
        bad = round_trip(call, p);
    }
    if (!bad && (r = rill_call_close_send(call)) != RILL_OK) bad = lib_fail("Echo close_send", r);
    if (!bad) bad = expect_end(call, "Echo after close_send");
    rill_call_free(call);
    return bad;
}

/* The next recv must end `call` with kitex-server's biz status error for count -5:
 * INTERNAL carrying biz status 5, the message, and extra {"echo-count": "-5"}. */
static int expect_biz(rill_call call, const char *what) {
    const uint8_t *msg;
    size_t len, n_extra = 0;
    uint32_t code = 0;
    int32_t biz = 0;
    const char *text = "", *biz_text = "", *k = "", *v = "";
    rill_result r;
    int n = 0;
    /* Messages before the error are counted: EchoServer must send none. */
    while ((r = rill_call_recv(call, &msg, &len, WAIT_MS)) == RILL_OK) n++;
    if (r != RILL_ERR_STATUS)
        return fail("%s: recv gave %s after %d responses, want the biz status error", what,
                    rill_result_name(r), n);
    if (n) return fail("%s: %d responses before the biz status error, want none", what, n);
    if ((r = rill_call_status(call, &code, &text, NULL, NULL)) != RILL_OK) return lib_fail(what, r);
    r = rill_call_biz_status(call, &biz, &biz_text, &n_extra);
    if (r == RILL_NOT_FOUND)
        return fail("%s: status %u \"%s\" with no biz status", what, code, text);
    if (r != RILL_OK) return lib_fail(what, r);
    if (code != RILL_STATUS_INTERNAL || biz != 5 || strcmp(biz_text, ERROR_MESSAGE) != 0)
        return fail("%s: status %u, biz status %d \"%s\", want 13, 5 \"%s\"", what, code, biz,
                    biz_text, ERROR_MESSAGE);
    if (n_extra != 1 || rill_call_biz_extra(call, 0, &k, &v) != RILL_OK ||
        strcmp(k, "echo-count") != 0 || strcmp(v, "-5") != 0)
        return fail("%s: biz extra of %zu entries (first \"%s\": \"%s\"), want echo-count=-5",
                    what, n_extra, k, v);
    return 0;
}

static int error_status(void) {
    const size_t elen = strlen(ERROR_MESSAGE);
    /* The error alone, on PingPong. */
    rill_call call;
    rill_result r = open_call(PING_PONG, RILL_UNARY, 0, &call);
    if (r != RILL_OK) return lib_fail("PingPong open", r);
    int bad = (r = send_request(call, 1, ERROR_MESSAGE, elen, 1, -5)) != RILL_OK
                  ? lib_fail("PingPong send", r)
                  : expect_biz(call, "PingPong");
    rill_call_free(call);
    if (bad) return bad;
    /* After an answered message, on Echo. */
    if ((r = open_call(ECHO, RILL_BIDI, 0, &call)) != RILL_OK) return lib_fail("Echo open", r);
    bad = round_trip(call, "bidi-0");
    if (!bad && (r = send_request(call, 0, ERROR_MESSAGE, elen, 1, -5)) != RILL_OK)
        bad = lib_fail("Echo send the error request", r);
    if (!bad) bad = expect_biz(call, "Echo");
    rill_call_free(call);
    if (bad) return bad;
    /* Ending a server stream with no message before it, on EchoServer. */
    if ((r = open_call(ECHO_SERVER, RILL_SERVER_STREAMING, 0, &call)) != RILL_OK)
        return lib_fail("EchoServer open", r);
    bad = (r = send_request(call, 0, ERROR_MESSAGE, elen, 1, -5)) != RILL_OK
              ? lib_fail("EchoServer send", r)
              : expect_biz(call, "EchoServer");
    rill_call_free(call);
    return bad;
}

/* Whether `md` holds the metainfo sent, each key's first value. */
static int has_metainfo(rill_metadata md, const char *what) {
    for (size_t i = 0; i < META_N; i++) {
        const uint8_t *v = NULL;
        size_t len = 0;
        rill_result r = rill_metadata_get(md, META_KEYS[i], &v, &len);
        if (r != RILL_OK || len != strlen(META_VALUES[i]) || memcmp(v, META_VALUES[i], len) != 0)
            return fail("%s: %s = %s\"%.*s\", want \"%s\"", what, META_KEYS[i],
                        r == RILL_OK ? "" : "(none) ", (int)(r == RILL_OK ? len : 0),
                        r == RILL_OK ? (const char *)v : "", META_VALUES[i]);
    }
    return 0;
}

/* `method` with the metainfo and one request whose echo is "meta": the metainfo must come
 * back in the response headers and in the trailers. */
static int with_metainfo(const char *method, uint32_t shape, int args) {
    rill_metadata md, headers = 0, trailers = 0;
    rill_call call;
    char what[96];
    rill_result r = rill_metadata_new(&md);
    if (r != RILL_OK) return lib_fail("metadata_new", r);
    for (size_t i = 0; i < META_N; i++)
        if ((r = rill_metadata_append(md, META_KEYS[i], (const uint8_t *)META_VALUES[i],
                                      strlen(META_VALUES[i]))) != RILL_OK) {
            rill_metadata_free(md);
            return lib_fail("metadata_append", r);
        }
    r = open_call(method, shape, md, &call);
    rill_metadata_free(md);
    if (r != RILL_OK) return lib_fail("open", r);
    const char *name = strrchr(method, '/') + 1;
    int bad = 0;
    snprintf(what, sizeof what, "%s headers", name);
    if ((r = send_request(call, args, "meta", 4, !args, 1)) != RILL_OK)
        bad = lib_fail(name, r);
    else if ((r = rill_call_headers(call, &headers, WAIT_MS)) != RILL_OK)
        bad = r == RILL_ERR_STATUS ? status_fail(what, call) : lib_fail(what, r);
    else if (!(bad = has_metainfo(headers, what) || expect_response(call, args, name, "meta", 4) ||
                     expect_end(call, name))) {
        snprintf(what, sizeof what, "%s trailers", name);
        if ((r = rill_call_trailers(call, &trailers)) != RILL_OK)
            bad = lib_fail(what, r);
        else
            bad = has_metainfo(trailers, what);
    }
    if (headers) rill_metadata_free(headers);
    if (trailers) rill_metadata_free(trailers);
    rill_call_free(call);
    return bad;
}

static int metadata(void) {
    return with_metainfo(PING_PONG, RILL_UNARY, 1) ||
           with_metainfo(ECHO_SERVER, RILL_SERVER_STREAMING, 0);
}

/* Echo, one round, then cancelled: the next recv fails CANCELLED (an RST frame on
 * TTHeader Streaming, RST_STREAM on HTTP/2); then a new call on the same channel works. */
static int cancel(void) {
    rill_call call;
    const uint8_t *msg;
    size_t len;
    uint32_t code = 99;
    rill_result r = open_call(ECHO, RILL_BIDI, 0, &call);
    if (r != RILL_OK) return lib_fail("Echo open", r);
    int bad = round_trip(call, "cancel-0");
    if (!bad && (r = rill_call_cancel(call)) != RILL_OK) bad = lib_fail("Echo cancel", r);
    if (!bad) {
        r = rill_call_recv(call, &msg, &len, WAIT_MS);
        if (r != RILL_ERR_STATUS)
            bad = fail("Echo after cancel: recv gave %s, want RILL_ERR_STATUS", rill_result_name(r));
        else if (rill_call_status(call, &code, NULL, NULL, NULL) != RILL_OK ||
                 code != RILL_STATUS_CANCELLED)
            bad = status_fail("Echo after cancel (want CANCELLED)", call);
    }
    rill_call_free(call);
    if (bad) return bad;
    /* As kitex-client: let the cancel reach the server, then the channel must still work. */
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
    if ((r = open_call(ECHO_SERVER, RILL_SERVER_STREAMING, 0, &call)) != RILL_OK)
        return lib_fail("EchoServer after cancel: open", r);
    bad = (r = send_request(call, 0, "after-cancel", 12, 1, 1)) != RILL_OK
              ? lib_fail("EchoServer after cancel: send", r)
              : expect_response(call, 0, "EchoServer after cancel", "after-cancel", 12) ||
                    expect_end(call, "EchoServer after cancel: end");
    rill_call_free(call);
    return bad;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `method` given SHORT_DEADLINE_MS, one slow request (a PingPong args struct when `args`; a
 * count of 1 on EchoServer), not half-closed on Echo: its first recv must end the call
 * DEADLINE_EXCEEDED within DEADLINE_LIMIT_MS. Every wait is bounded by HANG_MS; freeing the
 * call cancels it. */
static int slow_call(const char *method, uint32_t shape, int args, int has_count) {
    const char *what = strrchr(method, '/') + 1;
    const uint8_t *msg;
    size_t len, n;
    uint32_t code = 99;
    const char *text = "";
    rill_call call;
    int64_t t = now_ms();
    rill_result r = open_call_within(method, shape, 0, SHORT_DEADLINE_MS, &call);
    if (r != RILL_OK) return lib_fail(what, r);
    int bad = 0;
    uint8_t *buf = encode_request(args, SLOW_PAYLOAD, strlen(SLOW_PAYLOAD), has_count, 1, &n);
    if (buf == NULL) {
        bad = fail("%s: out of memory", what);
    } else {
        r = rill_call_send(call, buf, n, HANG_MS);
        free(buf);
        /* A send refused because the call already ended leaves the status to recv. */
        if (r != RILL_OK && r != RILL_ERR_STATUS && r != RILL_ERR_CLOSED) bad = lib_fail(what, r);
    }
    if (!bad) {
        r = rill_call_recv(call, &msg, &len, HANG_MS);
        int64_t took = now_ms() - t;
        if (r == RILL_OK)
            bad = fail("%s: a response (%zu bytes) after %lld ms, want DEADLINE_EXCEEDED", what,
                       len, (long long)took);
        else if (r == RILL_TIMEOUT)
            bad = fail("%s: no end %d ms after its %d ms deadline (a hang)", what, HANG_MS,
                       SHORT_DEADLINE_MS);
        else if (r != RILL_ERR_STATUS)
            bad = fail("%s: recv gave %s after %lld ms, want DEADLINE_EXCEEDED", what,
                       rill_result_name(r), (long long)took);
        else if ((r = rill_call_status(call, &code, &text, NULL, NULL)) != RILL_OK)
            bad = lib_fail(what, r);
        else if (code != RILL_STATUS_DEADLINE_EXCEEDED || took > DEADLINE_LIMIT_MS)
            bad = fail("%s: status %u \"%s\" after %lld ms, want DEADLINE_EXCEEDED after about "
                       "%d ms", what, code, text, (long long)took, SHORT_DEADLINE_MS);
        else
            printf("NOTE deadline: %s: status %u \"%s\" after %lld ms\n", what, code, text,
                   (long long)took);
    }
    rill_call_free(call);
    return bad;
}

/* As kitex-client's: PingPong (gRPC's grpc-timeout, TTHeader's RPCTimeout), EchoServer
 * before its first response and Echo before its answer, each given SHORT_DEADLINE_MS, end
 * DEADLINE_EXCEEDED well before the server answers; all three are tried and their failures
 * reported together. Then a PingPong on the same channel works. */
static int deadline(void) {
    char all[sizeof why] = "";
    const struct {
        const char *method;
        uint32_t shape;
        int args, has_count;
    } calls[] = {{PING_PONG, RILL_UNARY, 1, 0},
                 {ECHO_SERVER, RILL_SERVER_STREAMING, 0, 1},
                 {ECHO, RILL_BIDI, 0, 0}};
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        why[0] = 0;
        if (slow_call(calls[i].method, calls[i].shape, calls[i].args, calls[i].has_count))
            snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", all[0] ? "; " : "", why);
    }
    fflush(stdout);
    why[0] = 0;
    if (unary_with("after-deadline", 14))
        snprintf(all + strlen(all), sizeof all - strlen(all), "%sPingPong after the deadlines: %s",
                 all[0] ? "; " : "", why);
    return all[0] ? fail("%s", all) : 0;
}

static const struct {
    const char *name;
    int (*run)(void);
} CHECKS[] = {{"unary", unary},
              {"server_streaming", server_streaming},
              {"client_streaming", client_streaming},
              {"bidi", bidi},
              {"error_status", error_status},
              {"metadata", metadata},
              {"cancel", cancel},
              {"deadline", deadline}};
#define N_CHECKS (sizeof CHECKS / sizeof *CHECKS)

static int usage(void) {
    fprintf(stderr, "usage: matrix-thrift-client-c --target HOST:PORT [--transport grpc|ttheader] "
                    "[--check NAME[,NAME]]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *target = NULL, *transport = "grpc", *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--target") == 0 && i + 1 < argc)
            target = argv[++i];
        else if (strcmp(argv[i], "--transport") == 0 && i + 1 < argc)
            transport = argv[++i];
        else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            return usage();
    }
    uint32_t protocol;
    if (strcmp(transport, "grpc") == 0)
        protocol = RILL_PROTOCOL_GRPC;
    else if (strcmp(transport, "ttheader") == 0)
        protocol = RILL_PROTOCOL_TTHEADER;
    else
        return usage();
    if (target == NULL) return usage();
    char uri[256];
    snprintf(uri, sizeof uri, "http://%s", target);
    rill_channel_options opts;
    rill_channel_options_init(&opts);
    opts.protocol = protocol;
    opts.authority = "echo"; /* as Kitex's client names its destination service */
    if (rill_channel_new(uri, &opts, &chan) != RILL_OK) {
        fprintf(stderr, "matrix-thrift-client-c: %s\n", rill_last_error_message());
        return 2;
    }
    char names[256];
    if (only == NULL) {
        names[0] = 0;
        for (size_t i = 0; i < N_CHECKS; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "," : "",
                     CHECKS[i].name);
    } else {
        snprintf(names, sizeof names, "%s", only);
    }
    int failed = 0;
    for (char *save = NULL, *name = strtok_r(names, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save)) {
        int bad = 1;
        why[0] = 0;
        size_t i = 0;
        while (i < N_CHECKS && strcmp(CHECKS[i].name, name) != 0) i++;
        if (i == N_CHECKS)
            fail("no such check");
        else
            bad = CHECKS[i].run();
        if (bad) {
            failed++;
            printf("FAIL %s: %s\n", name, why);
        } else {
            printf("PASS %s\n", name);
        }
        fflush(stdout);
    }
    rill_channel_free(chan);
    return failed ? 1 : 0;
}

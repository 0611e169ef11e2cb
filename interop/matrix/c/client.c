/* The C client of the matrix, on librillrpc's blocking API:
 *   matrix-client-c --target HOST:PORT [--protocol grpc|grpc-web|connect]
 *                   [--shape-rules zero,two,two-requests]
 * runs the six checks of interop/matrix/README.md against an echo server (or, with
 * --shape-rules, those sub-checks of the shape_rules check instead), prints
 * "PASS <check>" / "FAIL <check>: <why>" lines and exits 1 if any failed. --protocol (default
 * grpc) is what every call speaks, over HTTP/2 (h2c): rill_channel_options.protocol. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "echo_pb.h"
#include "rillrpc.h"
#include "check_fail.h"

#define PING_PONG "/echo.TestService/PingPong"
#define ECHO "/echo.TestService/Echo"
#define ECHO_CLIENT "/echo.TestService/EchoClient"
#define ECHO_SERVER "/echo.TestService/EchoServer"
/* The grpc-go server's matrix.Rules (go/echo/rules.go): unary for the client, answered
 * with zero, one and two response messages. */
#define RULES_ZERO "/matrix.Rules/Zero"
#define RULES_ONE "/matrix.Rules/One"
#define RULES_TWO "/matrix.Rules/Two"
/* A shorter deadline than the six checks': grpcio's and grpc-js's clients (information
 * cells) wait for it on a unary call answered twice, and every one of them adds to the
 * matrix's time. A rillrpc call here ends in milliseconds. */
#define RULES_WAIT_MS 3000
/* The second request of two-requests comes this long after the first: a server that takes
 * the first without waiting for the half-close (where a second one would show) has ended
 * the call by then, so it fails every run, not only when both requests arrive together. */
#define REQUEST_GAP_MS 50
#define WAIT_MS 20000

static const uint8_t UNARY_PAYLOAD[] = "matrix\x00\xffping";
#define UNARY_LEN (sizeof UNARY_PAYLOAD - 1)
static const size_t STREAM_SIZES[] = {1, 10, 100, 70000};
/* The client_streaming burst: BURST_MESSAGES messages of BURST_SIZE bytes in one call. A
 * sender that writes each in a DATA frame of its own (23 bytes) gets the connection closed
 * by tonic's h2 server (0.4.20) when its handler falls behind: GOAWAY
 * (ENHANCE_YOUR_CALM, "too_many_data_frames"), issue 17. */
#define BURST_MESSAGES 30000
#define BURST_SIZE 16
static const uint8_t BIN_VALUE[] = {0x00, 0xff, 0xfe, 0x80, 0x01};
/* Percent-encoded in grpc-message on the wire: '%' and the non-ASCII bytes must survive. */
static const char ERROR_MESSAGE[] = "matrix error: 100% ünïcødé ✓";

static rill_channel chan;
/* The protocol every call of `chan` speaks, as --protocol named it. */
static const char *protocol = "grpc";

static rill_result open_call_within(const char *method, uint32_t shape, rill_metadata md,
                                    int64_t timeout_ms, rill_call *call) {
    rill_call_options o;
    rill_call_options_init(&o);
    o.timeout_ms = timeout_ms;
    o.metadata = md;
    return rill_call_open(chan, method, shape, &o, call);
}

static rill_result open_call(const char *method, uint32_t shape, rill_metadata md,
                             rill_call *call) {
    return open_call_within(method, shape, md, WAIT_MS, call);
}

static rill_result send_request(rill_call call, const void *payload, size_t len, int32_t count) {
    uint8_t *buf = malloc(len + 20);
    if (buf == NULL) return RILL_ERR_CLOSED;
    size_t n = echo_encode(buf, payload, len, count);
    rill_result r = rill_call_send(call, buf, n, WAIT_MS);
    free(buf);
    return r;
}

/* Receives one Response and checks its payload. */
static int expect_response(rill_call call, const char *what, const void *want, size_t want_len) {
    const uint8_t *msg, *payload;
    size_t len, plen;
    rill_result r = rill_call_recv(call, &msg, &len, WAIT_MS);
    if (r == RILL_ERR_STATUS) return status_fail(what, call);
    if (r == RILL_EOF) return fail("%s: the call ended without a response", what);
    if (r != RILL_OK) return lib_fail(what, r);
    if (echo_decode(msg, len, &payload, &plen, NULL) != 0)
        return fail("%s: bad echo.Response", what);
    if (plen != want_len || memcmp(payload, want, plen) != 0)
        return fail("%s: payload of %zu bytes \"%.*s\", want \"%.*s\"", what, plen,
                    (int)(plen > 64 ? 64 : plen), (const char *)payload,
                    (int)(want_len > 64 ? 64 : want_len), (const char *)want);
    return 0;
}

/* No more messages, then an OK status. */
static int expect_end(rill_call call) {
    const uint8_t *msg;
    size_t len;
    uint32_t code = 99;
    rill_result r = rill_call_recv(call, &msg, &len, WAIT_MS);
    if (r == RILL_OK) return fail("an extra message (%zu bytes)", len);
    if (r == RILL_ERR_STATUS) return status_fail("at the end", call);
    if (r != RILL_EOF) return lib_fail("recv at the end", r);
    r = rill_call_finish(call, &code, WAIT_MS);
    if (r != RILL_OK) return lib_fail("finish", r);
    if (code != 0) return status_fail("finish", call);
    return 0;
}

static int unary_with(const void *payload, size_t len) {
    rill_call call;
    rill_result r = open_call(PING_PONG, RILL_UNARY, 0, &call);
    if (r != RILL_OK) return lib_fail("open", r);
    int bad = (r = send_request(call, payload, len, 0)) != RILL_OK
                  ? lib_fail("send", r)
                  : expect_response(call, "response", payload, len) || expect_end(call);
    rill_call_free(call);
    return bad;
}

/* The empty request is a zero-length message, and so is its response. */
static int unary(void) { return unary_with(UNARY_PAYLOAD, UNARY_LEN) || unary_with("", 0); }

static int server_streaming(void) {
    rill_call call;
    rill_result r = open_call(ECHO_SERVER, RILL_SERVER_STREAMING, 0, &call);
    if (r != RILL_OK) return lib_fail("open", r);
    int bad = 0;
    if ((r = send_request(call, "stream", 6, 5)) != RILL_OK) bad = lib_fail("send", r);
    for (int i = 0; !bad && i < 5; i++) {
        char what[32];
        snprintf(what, sizeof what, "response %d", i);
        bad = expect_response(call, what, "stream", 6);
    }
    if (!bad) bad = expect_end(call);
    rill_call_free(call);
    return bad;
}

/* The burst, one rill_call_send per message, as fast as the call takes them. */
static int burst(void) {
    rill_call call;
    rill_result r = open_call(ECHO_CLIENT, RILL_CLIENT_STREAMING, 0, &call);
    if (r != RILL_OK) return lib_fail("burst: open", r);
    uint8_t msg[BURST_SIZE + 20], payload[BURST_SIZE];
    memset(payload, 'x', sizeof payload);
    size_t len = echo_encode(msg, payload, sizeof payload, 0);
    int bad = 0, ended = 0;
    for (int i = 0; !bad && !ended && i < BURST_MESSAGES; i++) {
        /* A call that ended early says why in its status, read below. */
        if ((r = rill_call_send(call, msg, len, WAIT_MS)) == RILL_ERR_CLOSED) ended = 1;
        else if (r != RILL_OK) bad = lib_fail("burst: send", r);
    }
    if (!bad && !ended && (r = rill_call_close_send(call)) != RILL_OK)
        bad = lib_fail("burst: close_send", r);
    char want[32];
    snprintf(want, sizeof want, "%d", BURST_MESSAGES * BURST_SIZE);
    if (!bad) bad = expect_response(call, "burst", want, strlen(want)) || expect_end(call);
    rill_call_free(call);
    return bad;
}

static int client_streaming(void) {
    rill_call call;
    rill_result r = open_call(ECHO_CLIENT, RILL_CLIENT_STREAMING, 0, &call);
    if (r != RILL_OK) return lib_fail("open", r);
    int bad = 0;
    size_t total = 0;
    for (size_t i = 0; !bad && i < sizeof STREAM_SIZES / sizeof *STREAM_SIZES; i++) {
        char *p = malloc(STREAM_SIZES[i]);
        memset(p, 'x', STREAM_SIZES[i]);
        total += STREAM_SIZES[i];
        if ((r = send_request(call, p, STREAM_SIZES[i], 0)) != RILL_OK) bad = lib_fail("send", r);
        free(p);
    }
    if (!bad && (r = rill_call_close_send(call)) != RILL_OK) bad = lib_fail("close_send", r);
    char want[32];
    snprintf(want, sizeof want, "%zu", total);
    if (!bad) bad = expect_response(call, "response", want, strlen(want)) || expect_end(call);
    rill_call_free(call);
    return bad || burst();
}

static int bidi(void) {
    rill_call call;
    rill_result r = open_call(ECHO, RILL_BIDI, 0, &call);
    if (r != RILL_OK) return lib_fail("open", r);
    int bad = 0;
    for (int i = 0; !bad && i < 5; i++) {
        char p[16], what[16];
        snprintf(p, sizeof p, "bidi-%d", i);
        snprintf(what, sizeof what, "round %d", i);
        if ((r = send_request(call, p, strlen(p), 0)) != RILL_OK)
            bad = lib_fail("send", r);
        else
            bad = expect_response(call, what, p, strlen(p));
    }
    if (!bad && (r = rill_call_close_send(call)) != RILL_OK) bad = lib_fail("close_send", r);
    if (!bad) bad = expect_end(call);
    rill_call_free(call);
    return bad;
}

/* Sends the request that asks for NOT_FOUND on `call`, then expects that status. */
static int expect_error(rill_call call, const char *what) {
    const uint8_t *msg;
    size_t len;
    uint32_t code = 0;
    const char *text = "";
    rill_result r = send_request(call, ERROR_MESSAGE, strlen(ERROR_MESSAGE), -5);
    if (r != RILL_OK) return lib_fail(what, r);
    if ((r = rill_call_recv(call, &msg, &len, WAIT_MS)) != RILL_ERR_STATUS)
        return fail("%s: recv gave %s, want RILL_ERR_STATUS", what, rill_result_name(r));
    if ((r = rill_call_status(call, &code, &text, NULL, NULL)) != RILL_OK) return lib_fail(what, r);
    if (code != 5 || strcmp(text, ERROR_MESSAGE) != 0)
        return fail("%s: status %u \"%s\", want 5 \"%s\"", what, code, text, ERROR_MESSAGE);
    return 0;
}

/* The error twice: on a unary call (the status comes alone, trailers-only) and on a bidi
 * call after one answered message (status after data). */
static int error_status(void) {
    rill_call call;
    rill_result r = open_call(PING_PONG, RILL_UNARY, 0, &call);
    if (r != RILL_OK) return lib_fail("open", r);
    int bad = expect_error(call, "unary");
    rill_call_free(call);
    if (bad) return bad;
    if ((r = open_call(ECHO, RILL_BIDI, 0, &call)) != RILL_OK) return lib_fail("open", r);
    if ((r = send_request(call, "before", 6, 0)) != RILL_OK)
        bad = lib_fail("bidi send", r);
    else
        bad = expect_response(call, "bidi first answer", "before", 6) || expect_error(call, "bidi");
    rill_call_free(call);
    return bad;
}

/* Appends "<where> <key> = ..." to `why` when `md` lacks an echoed entry. */
static int check_echoed(rill_metadata md, const char *where) {
    const uint8_t *v;
    size_t len;
    if (rill_metadata_get(md, "echo-key", &v, &len) != RILL_OK || len != 5 ||
        memcmp(v, "value", 5) != 0)
        return fail("%s: echo-key missing or wrong", where);
    if (rill_metadata_get(md, "echo-bin-bin", &v, &len) != RILL_OK || len != sizeof BIN_VALUE ||
        memcmp(v, BIN_VALUE, len) != 0)
        return fail("%s: echo-bin-bin missing or wrong", where);
    return 0;
}

/* The response header in which a server names the protocol it saw the call come in on
 * ("grpc", "grpc-web", "connect"): every server that can tell reports it on a call with
 * echo- metadata; the gRPC-only peers' servers (grpcio, grpc-js, grpc-go, tonic) cannot. */
#define PROTOCOL_HEADER "echo-protocol"

/* Whether the server saw the protocol this client was told to speak. Present, the header
 * must name it; absent, this client must speak gRPC: only the gRPC-only peers' servers
 * omit it, and they answer nothing else. So a row that speaks another protocol than its
 * own fails against every server that answers it. */
static int check_protocol(rill_metadata headers) {
    const uint8_t *got = NULL;
    size_t n = 0, found = 0, got_len = 0;
    rill_metadata_count(headers, &n);
    for (size_t i = 0; i < n; i++) {
        const char *key;
        const uint8_t *val;
        size_t len;
        if (rill_metadata_at(headers, i, &key, &val, &len) != RILL_OK ||
            strcmp(key, PROTOCOL_HEADER) != 0)
            continue;
        if (found++ == 0) {
            got = val;
            got_len = len;
        }
    }
    if (found == 1 && got_len == strlen(protocol) && memcmp(got, protocol, got_len) == 0) return 0;
    if (found == 0 && strcmp(protocol, rill_protocol_name(RILL_PROTOCOL_GRPC)) == 0) return 0;
    if (found == 0)
        return fail("the server sent no " PROTOCOL_HEADER " header, but this client was told to "
                    "speak %s (only the gRPC-only peers' servers send none, and they answer "
                    "gRPC alone)", protocol);
    return fail("the server saw " PROTOCOL_HEADER " [\"%.*s\"%s], but this client was told to "
                "speak %s", (int)got_len, (const char *)got, found > 1 ? ", ..." : "", protocol);
}

static int metadata(void) {
    rill_metadata md, headers = 0, trailers = 0;
    rill_call call;
    rill_result r = rill_metadata_new(&md);
    if (r != RILL_OK) return lib_fail("metadata_new", r);
    if ((r = rill_metadata_append(md, "echo-key", (const uint8_t *)"value", 5)) != RILL_OK ||
        (r = rill_metadata_append(md, "echo-bin-bin", BIN_VALUE, sizeof BIN_VALUE)) != RILL_OK) {
        rill_metadata_free(md);
        return lib_fail("metadata_append", r);
    }
    r = open_call(PING_PONG, RILL_UNARY, md, &call);
    rill_metadata_free(md);
    if (r != RILL_OK) return lib_fail("open", r);
    int bad = 0;
    if ((r = send_request(call, "md", 2, 0)) != RILL_OK)
        bad = lib_fail("send", r);
    else if ((r = rill_call_headers(call, &headers, WAIT_MS)) != RILL_OK)
        bad = r == RILL_ERR_STATUS ? status_fail("headers", call) : lib_fail("headers", r);
    else if (!(bad = expect_response(call, "response", "md", 2) || expect_end(call))) {
        if ((r = rill_call_trailers(call, &trailers)) != RILL_OK)
            bad = lib_fail("trailers", r);
        else
            bad = check_echoed(headers, "headers") || check_echoed(trailers, "trailers") ||
                  check_protocol(headers);
    }
    if (headers) rill_metadata_free(headers);
    if (trailers) rill_metadata_free(trailers);
    rill_call_free(call);
    return bad;
}

/* Runs `call` (opened, its requests sent) to its end: the final code goes to *code, and
 * what the table shows of it to `why`. Messages before the status are counted only. */
static int run_to_end(rill_call call, uint32_t *code) {
    const uint8_t *msg;
    size_t len;
    const char *text = "";
    int n = 0;
    rill_result r;
    /* Refused only when the call already ended: recv and finish then say how. */
    (void)rill_call_close_send(call);
    while ((r = rill_call_recv(call, &msg, &len, WAIT_MS)) == RILL_OK) n++;
    if (r != RILL_EOF && r != RILL_ERR_STATUS) return lib_fail("recv", r);
    if ((r = rill_call_finish(call, code, WAIT_MS)) != RILL_OK) return lib_fail("finish", r);
    rill_call_status(call, NULL, &text, NULL, NULL);
    if (*code == RILL_STATUS_OK)
        snprintf(why, sizeof why, "code 0 (responses: %d)", n);
    else
        snprintf(why, sizeof why, "code %u \"%s\"", *code, text);
    return 0;
}

/* A unary call to `method` with one request: its final code, or 1 (why set) if it could
 * not run. */
static int unary_code(const char *method, uint32_t *code) {
    rill_call call;
    rill_result r = open_call_within(method, RILL_UNARY, 0, RULES_WAIT_MS, &call);
    if (r != RILL_OK) return lib_fail("open", r);
    int bad = (r = send_request(call, "rules", 5, 0)) != RILL_OK ? lib_fail("send", r)
                                                                 : run_to_end(call, code);
    rill_call_free(call);
    return bad;
}

/* A server whose method breaks the single-response rule. One, answered by the rule, must
 * succeed first: a server without the Rules service answers UNIMPLEMENTED too, and must
 * not pass for one that breaks it. */
static int misbehaving(const char *method, uint32_t *code) {
    uint32_t one = 99;
    if (unary_code(RULES_ONE, &one)) return 1;
    if (one != RILL_STATUS_OK) {
        char got[sizeof why];
        snprintf(got, sizeof got, "%s", why);
        return fail("the control call %s: %s", RULES_ONE, got);
    }
    return unary_code(method, code);
}

/* Two requests and the half-close on the single-request PingPong, sent through a bidi
 * call (a unary one refuses the second send). */
static int two_requests(uint32_t *code) {
    rill_call call;
    rill_result r = open_call_within(PING_PONG, RILL_BIDI, 0, RULES_WAIT_MS, &call);
    if (r != RILL_OK) return lib_fail("open", r);
    /* A send refused because the server already ended the call leaves the reason to
     * finish. */
    if (send_request(call, "first", 5, 0) == RILL_OK) {
        nanosleep(&(struct timespec){.tv_nsec = REQUEST_GAP_MS * 1000000L}, NULL);
        send_request(call, "second", 6, 0);
    }
    int bad = run_to_end(call, code);
    rill_call_free(call);
    return bad;
}

/* The shape_rules sub-checks named in `list` (comma-separated): each prints its code. */
static int shape_rules(const char *list) {
    int failed = 0;
    char names[128];
    snprintf(names, sizeof names, "%s", list);
    for (char *save = NULL, *sub = strtok_r(names, ",", &save); sub != NULL;
         sub = strtok_r(NULL, ",", &save)) {
        uint32_t code = 99;
        int bad;
        why[0] = 0;
        if (strcmp(sub, "zero") == 0)
            bad = misbehaving(RULES_ZERO, &code);
        else if (strcmp(sub, "two") == 0)
            bad = misbehaving(RULES_TWO, &code);
        else if (strcmp(sub, "two-requests") == 0)
            bad = two_requests(&code);
        else {
            fprintf(stderr, "matrix-client-c: unknown shape_rules sub-check %s\n", sub);
            return 2;
        }
        if (!bad && code == RILL_STATUS_UNIMPLEMENTED) {
            printf("PASS shape_rules/%s: %s\n", sub, why);
        } else {
            failed++;
            printf("FAIL shape_rules/%s: %s%s\n", sub, why, bad ? "" : ", want code 12");
        }
        fflush(stdout);
    }
    return failed ? 1 : 0;
}

/* The rill_protocol named `name` ("grpc", "grpc-web", "connect", as rill_protocol_name
 * spells them), or -1. */
static int64_t protocol_named(const char *name) {
    for (uint32_t p = 0; rill_protocol_name(p) != NULL; p++)
        if (strcmp(rill_protocol_name(p), name) == 0) return p;
    return -1;
}

int main(int argc, char **argv) {
    const char *target = NULL, *rules = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
            target = argv[++i];
        } else if (strcmp(argv[i], "--protocol") == 0 && i + 1 < argc) {
            protocol = argv[++i];
        } else if (strcmp(argv[i], "--shape-rules") == 0 && i + 1 < argc) {
            rules = argv[++i];
        } else {
            target = NULL;
            break;
        }
    }
    int64_t proto = protocol_named(protocol);
    if (target == NULL || proto < 0) {
        fprintf(stderr, "usage: matrix-client-c --target HOST:PORT [--protocol grpc|grpc-web|connect] "
                        "[--shape-rules zero,two,two-requests]\n");
        return 2;
    }
    char uri[256];
    snprintf(uri, sizeof uri, "http://%s", target);
    rill_channel_options opts;
    rill_channel_options_init(&opts);
    opts.protocol = (uint32_t)proto;
    if (rill_channel_new(uri, &opts, &chan) != RILL_OK) {
        fprintf(stderr, "matrix-client-c: %s\n", rill_last_error_message());
        return 2;
    }
    if (rules != NULL) {
        int rc = shape_rules(rules);
        rill_channel_free(chan);
        return rc;
    }
    static const struct {
        const char *name;
        int (*run)(void);
    } checks[] = {{"unary", unary},     {"server_streaming", server_streaming},
                  {"client_streaming", client_streaming}, {"bidi", bidi},
                  {"error_status", error_status},         {"metadata", metadata}};
    int failed = 0;
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        why[0] = 0;
        if (checks[i].run()) {
            failed++;
            printf("FAIL %s: %s\n", checks[i].name, why);
        } else {
            printf("PASS %s\n", checks[i].name);
        }
        fflush(stdout);
    }
    rill_channel_free(chan);
    return failed ? 1 : 0;
}

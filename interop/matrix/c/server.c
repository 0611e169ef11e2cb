/* The C echo server of the matrix, on librillrpc's blocking API, one thread per call:
 *   matrix-server-c --port N     prints "listening on 127.0.0.1:PORT", serves until killed.
 * Conventions of the echo service: a request with count < 0 ends the call with status code
 * -count and the payload as message; request metadata whose key starts with "echo-" comes
 * back in the response headers and trailers, and with it the headers name the protocol the
 * call came in on (echo-protocol). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "echo_pb.h"
#include "rillrpc.h"

#define PING_PONG "/echo.TestService/PingPong"
#define ECHO "/echo.TestService/Echo"
#define ECHO_CLIENT "/echo.TestService/EchoClient"
#define ECHO_SERVER "/echo.TestService/EchoServer"
#define WAIT_MS 30000

static void die(const char *what) {
    fprintf(stderr, "matrix-server-c: %s: %s\n", what, rill_last_error_message());
    exit(1);
}

/* The request entries whose key starts with "echo-", as a new list (0 if none). */
static rill_metadata echo_md(rill_server_call call) {
    rill_metadata in = 0, out = 0;
    size_t n = 0;
    if (rill_server_call_metadata(call, &in) != RILL_OK) return 0;
    rill_metadata_count(in, &n);
    for (size_t i = 0; i < n; i++) {
        const char *key;
        const uint8_t *val;
        size_t len;
        if (rill_metadata_at(in, i, &key, &val, &len) != RILL_OK) continue;
        if (strncmp(key, "echo-", 5) != 0) continue;
        if (out == 0 && rill_metadata_new(&out) != RILL_OK) break;
        rill_metadata_append(out, key, val, len);
    }
    rill_metadata_free(in);
    return out;
}

/* The response headers of a call with echo- metadata: those entries, and "echo-protocol"
 * naming the protocol the call came in on ("grpc", "grpc-web", "connect"), which the
 * matrix's clients hold to the protocol they were told to speak. A new list (0 if none). */
static rill_metadata reported_headers(rill_server_call call) {
    rill_metadata out = echo_md(call);
    uint32_t protocol;
    const char *name;
    if (out != 0 && rill_server_call_protocol(call, &protocol) == RILL_OK &&
        (name = rill_protocol_name(protocol)) != NULL)
        rill_metadata_append(out, "echo-protocol", (const uint8_t *)name, strlen(name));
    return out;
}

/* Sends one Response carrying `payload`. */
static rill_result send_response(rill_server_call call, const uint8_t *payload, size_t len) {
    uint8_t *buf = malloc(len + 20);
    if (buf == NULL) return RILL_ERR_CLOSED;
    size_t n = echo_encode(buf, payload, len, 0);
    rill_result r = rill_server_call_send(call, buf, n, WAIT_MS);
    free(buf);
    return r;
}

/* Ends the call with the status a count < 0 asks for; the payload becomes the message. */
static void fail_as_asked(rill_server_call call, int32_t count, const uint8_t *payload,
                          size_t len, rill_metadata md) {
    char *msg = malloc(len + 1);
    if (msg == NULL) return;
    memcpy(msg, payload, len);
    msg[len] = 0;
    uint32_t code = (uint32_t)(-(int64_t)count);
    if (rill_server_call_finish(call, code > 16 ? RILL_STATUS_UNKNOWN : code, msg, NULL, 0, md) ==
        RILL_ERR_INVALID_ARGUMENT) /* not UTF-8: say so rather than drop the call */
        rill_server_call_finish(call, code > 16 ? RILL_STATUS_UNKNOWN : code,
                                "(payload is not UTF-8)", NULL, 0, md);
    free(msg);
}

static void finish_bad(rill_server_call call, const char *why, rill_metadata md) {
    rill_server_call_finish(call, RILL_STATUS_INVALID_ARGUMENT, why, NULL, 0, md);
}

/* Serves one call to its end. Returns nothing: a call that broke (cancelled, deadline) is
 * simply dropped, the client already knows. */
static void serve(rill_server_call call) {
    const char *method = "";
    const uint8_t *msg, *payload;
    size_t len, plen;
    int32_t count;
    rill_metadata md = echo_md(call);
    rill_server_call_method(call, &method);
    rill_metadata headers = md != 0 ? reported_headers(call) : 0;
    if (headers != 0) {
        rill_result r = rill_server_call_send_headers(call, headers);
        rill_metadata_free(headers);
        if (r != RILL_OK) goto out;
    }

    if (strcmp(method, PING_PONG) == 0 || strcmp(method, ECHO_SERVER) == 0) {
        if (rill_server_call_recv(call, &msg, &len, WAIT_MS) != RILL_OK) {
            finish_bad(call, "no request message", md);
            goto out;
        }
        if (echo_decode(msg, len, &payload, &plen, &count) != 0) {
            finish_bad(call, "bad echo.Request", md);
            goto out;
        }
        if (count < 0) {
            fail_as_asked(call, count, payload, plen, md);
            goto out;
        }
        int32_t n = strcmp(method, PING_PONG) == 0 ? 1 : count;
        for (int32_t i = 0; i < n; i++)
            if (send_response(call, payload, plen) != RILL_OK) goto out;
        rill_server_call_finish(call, RILL_STATUS_OK, NULL, NULL, 0, md);
    } else if (strcmp(method, ECHO_CLIENT) == 0 || strcmp(method, ECHO) == 0) {
        int bidi = strcmp(method, ECHO) == 0;
        unsigned long long total = 0;
        rill_result r;
        while ((r = rill_server_call_recv(call, &msg, &len, WAIT_MS)) == RILL_OK) {
            if (echo_decode(msg, len, &payload, &plen, &count) != 0) {
                finish_bad(call, "bad echo.Request", md);
                goto out;
            }
            if (count < 0) {
                fail_as_asked(call, count, payload, plen, md);
                goto out;
            }
            total += plen;
            if (bidi && send_response(call, payload, plen) != RILL_OK) goto out;
        }
        if (r != RILL_EOF) goto out;
        if (!bidi) {
            char text[32];
            int n = snprintf(text, sizeof text, "%llu", total);
            if (send_response(call, (const uint8_t *)text, (size_t)n) != RILL_OK) goto out;
        }
        rill_server_call_finish(call, RILL_STATUS_OK, NULL, NULL, 0, md);
    } else {
        rill_server_call_finish(call, RILL_STATUS_UNIMPLEMENTED, "no such method", NULL, 0, md);
    }
out:
    if (md != 0) rill_metadata_free(md);
    rill_server_call_free(call);
}

static void *serve_thread(void *arg) {
    rill_server_call call = *(rill_server_call *)arg;
    free(arg);
    serve(call);
    return NULL;
}

int main(int argc, char **argv) {
    const char *port_arg = "0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port_arg = argv[++i];
        } else {
            fprintf(stderr, "usage: matrix-server-c [--port N]\n");
            return 2;
        }
    }
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%s", port_arg);
    rill_server srv;
    uint16_t port;
    if (rill_server_new(NULL, &srv) != RILL_OK) die("rill_server_new");
    if (rill_server_add_method(srv, PING_PONG, RILL_UNARY) != RILL_OK ||
        rill_server_add_method(srv, ECHO, RILL_BIDI) != RILL_OK ||
        rill_server_add_method(srv, ECHO_CLIENT, RILL_CLIENT_STREAMING) != RILL_OK ||
        rill_server_add_method(srv, ECHO_SERVER, RILL_SERVER_STREAMING) != RILL_OK)
        die("rill_server_add_method");
    if (rill_server_listen(srv, addr, NULL, NULL) != RILL_OK) die("rill_server_listen");
    if (rill_server_start(srv) != RILL_OK) die("rill_server_start");
    if (rill_server_port(srv, &port) != RILL_OK) die("rill_server_port");
    printf("listening on 127.0.0.1:%u\n", port);
    fflush(stdout);
    for (;;) {
        rill_server_call call;
        if (rill_server_accept(srv, &call, RILL_FOREVER) != RILL_OK) die("rill_server_accept");
        pthread_t t;
        rill_server_call *arg = malloc(sizeof *arg);
        if (arg != NULL) *arg = call;
        if (arg == NULL || pthread_create(&t, NULL, serve_thread, arg) != 0) {
            free(arg);
            rill_server_call_finish(call, RILL_STATUS_RESOURCE_EXHAUSTED, "no thread", NULL, 0, 0);
            rill_server_call_free(call);
            continue;
        }
        pthread_detach(t);
    }
}

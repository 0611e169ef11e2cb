/* Echo requests sent and responses checked on a call, for the C test programs. */
#ifndef ECHO_CALLS_H
#define ECHO_CALLS_H
#include <string.h>
#include "check.h"
#include "echo_pb.h"

#define ECHO_CALL_TIMEOUT_MS 10000

/* Sends a Request with `payload` and `count`. */
static void send_req(rill_call c, const char *payload, int32_t count) {
    uint8_t buf[256];
    size_t n = echo_encode(buf, payload, strlen(payload), count);
    OK(rill_call_send(c, buf, n, ECHO_CALL_TIMEOUT_MS));
}

/* Receives one Response and checks its payload. */
static void recv_expect(rill_call c, const char *want) {
    const uint8_t *d, *p;
    size_t l, pl;
    OK(rill_call_recv(c, &d, &l, ECHO_CALL_TIMEOUT_MS));
    CHECK(echo_decode(d, l, &p, &pl, NULL) == 0);
    CHECK(pl == strlen(want) && memcmp(p, want, pl) == 0);
}
#endif

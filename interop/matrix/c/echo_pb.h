/* The two messages of shared/idl/echo.proto, encoded by hand (no protobuf library):
 * Request { bytes payload = 1; int32 count = 2; }  Response { bytes payload = 1; } */
#ifndef ECHO_PB_H
#define ECHO_PB_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static size_t pb_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}

/* Encodes a Request (count 0 is left out) or, with count 0, a Response. `out` needs
 * len + 20 bytes. Returns the encoded length. */
static size_t echo_encode(uint8_t *out, const void *payload, size_t len, int32_t count) {
    size_t n = 0;
    if (len > 0) {
        out[n++] = 0x0a;
        n += pb_varint(out + n, len);
        memcpy(out + n, payload, len);
        n += len;
    }
    if (count != 0) {
        out[n++] = 0x10;
        n += pb_varint(out + n, (uint64_t)(int64_t)count);
    }
    return n;
}

/* Decodes a Request or Response: points *payload into `msg`. Returns 0, or -1 if malformed. */
static int echo_decode(const uint8_t *msg, size_t len, const uint8_t **payload, size_t *plen,
                       int32_t *count) {
    const uint8_t *p = msg, *end = msg + len;
    *payload = msg; *plen = 0; if (count) *count = 0;
    while (p < end) {
        uint64_t key = 0, v = 0;
        int shift = 0;
        do { if (p >= end || shift > 63) return -1; key |= (uint64_t)(*p & 0x7f) << shift; shift += 7; } while (*p++ & 0x80);
        if ((key & 7) == 0 || (key & 7) == 2) {
            shift = 0;
            do { if (p >= end || shift > 63) return -1; v |= (uint64_t)(*p & 0x7f) << shift; shift += 7; } while (*p++ & 0x80);
        }
        switch (key & 7) {
        case 0: if ((key >> 3) == 2 && count) *count = (int32_t)(int64_t)v; break;
        case 2: if (v > (uint64_t)(end - p)) return -1;
                if ((key >> 3) == 1) { *payload = p; *plen = (size_t)v; }
                p += v; break;
        case 1: if (end - p < 8) return -1; p += 8; break;
        case 5: if (end - p < 4) return -1; p += 4; break;
        default: return -1;
        }
    }
    return 0;
}
#endif

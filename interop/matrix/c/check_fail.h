/* How the matrix's C clients record why a check failed (client.c, thrift_client.c): one
 * message per check in `why`, printed with its FAIL line. */
#ifndef MATRIX_CHECK_FAIL_H
#define MATRIX_CHECK_FAIL_H

#include <stdarg.h>
#include <stdio.h>
#include "rillrpc.h"

static char why[1024];

/* Records why a check failed; returns 1 so a check can `return fail(...)`. */
static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return 1;
}

/* A failed library function: its result name and the library's message. */
static int lib_fail(const char *what, rill_result r) {
    return fail("%s: %s (%s)", what, rill_result_name(r), rill_last_error_message());
}

/* recv returned RILL_ERR_STATUS (or finish a non-OK code): the call's status. */
static int status_fail(const char *what, rill_call call) {
    uint32_t code = 0;
    const char *msg = "";
    rill_call_status(call, &code, &msg, NULL, NULL);
    return fail("%s: status %u \"%s\"", what, code, msg);
}

#endif

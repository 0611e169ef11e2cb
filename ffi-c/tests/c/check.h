/* Assertions for the C test programs: a failed check prints where and why, and exits 1. */
#ifndef CHECK_H
#define CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include "rillrpc.h"

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
            rill_last_error_message()); exit(1); } } while (0)

/* The call must return `want` (a rill_result). */
#define EXPECT_RC(want, expr) do { rill_result rc_ = (expr); if (rc_ != (want)) { \
    fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: %s)\n", __FILE__, __LINE__, \
            #expr, rill_result_name(rc_), rill_result_name(want), rill_last_error_message()); \
    exit(1); } } while (0)

#define OK(expr) EXPECT_RC(RILL_OK, expr)
#endif

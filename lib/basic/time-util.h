/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one way kactor reads a clock. Header-only: every layer (libkactor, the worker, the node
 * manager, the BPF probes) takes it, and a call must stay as cheap as clock_gettime() itself. */

#include <stdint.h>
#include <time.h>

#define USEC_PER_SEC UINT64_C(1000000)
#define NSEC_PER_SEC UINT64_C(1000000000)
#define NSEC_PER_USEC UINT64_C(1000)

/* Nanoseconds on the given clock. CLOCK_MONOTONIC and CLOCK_REALTIME cannot fail, so there is no
 * error to return. */
static inline uint64_t now_nsec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

/* Microseconds on the given clock. */
static inline uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

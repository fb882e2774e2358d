/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The tracing tests' module: an actor whose methods use the CPU or sleep for a while, so that the
 * scheduler programs have something to see.
 *
 *   Tracee().noop()        -> nil
 *   Tracee().spin(ms)      -> nil     (busy for ms milliseconds of wall time)
 *   Tracee().sleep(ms)     -> nil     (asleep for ms milliseconds)
 */

#include <kactor/module.h>
#include <time.h>

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int tracee_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        static char state;
        *ret_state = &state;
        return 0;
}

static int tracee_noop(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = NULL;
        return 0;
}

static int tracee_spin(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t ms;
        int r = kactor_arg_int(ctx, args, 0, &ms);
        if (r < 0)
                return r;
        uint64_t end = now_ns() + (uint64_t) ms * 1000000ULL;
        volatile uint64_t x = 0;
        while (now_ns() < end)
                for (int i = 0; i < 1000; i++)
                        x += (uint64_t) i;
        *ret = NULL;
        return 0;
}

static int tracee_sleep(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t ms;
        int r = kactor_arg_int(ctx, args, 0, &ms);
        if (r < 0)
                return r;
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0)
                ;
        *ret = NULL;
        return 0;
}

static const kactor_method tracee_methods[] = {
        { .name = "noop", .fn = tracee_noop },
        { .name = "spin", .fn = tracee_spin },
        { .name = "sleep", .fn = tracee_sleep },
        {}
};

static const kactor_class tracee_class = {
        .name = "Tracee",
        .init = tracee_init,
        .methods = tracee_methods,
};

KACTOR_MODULE(.name = "tracemod", .classes = (const kactor_class *const[]) { &tracee_class, NULL });

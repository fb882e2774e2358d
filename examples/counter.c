/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The seed's Counter actor, and two remote functions that show actor handles travelling as values:
 *
 *   class Counter(initial=0)
 *           increment() -> int   adds 1, returns the new value
 *           get() -> int         the value (read-only: not kept in the lineage)
 *
 *   increment_loop(counter, n, delay_ms=0) -> int
 *           calls counter.increment() n times through the worker's own client, waiting for each
 *           result (and sleeping delay_ms between calls), and returns the last value it saw;
 *           several of these running at once share one counter.
 *   make_counter(initial=0) -> actor handle
 *           creates a Counter and returns its handle: a handle returned from a task.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr() */
#endif

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kactor/module.h>

/* Every method has the same signature; most use only some of its parameters. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

typedef struct Counter {
        int64_t value;
} Counter;

/* The message for a failed client call: the node manager's when it refused, else errno's. */
static const char *client_strerror(kactor_client *c, int r) {
        if (r == -EREMOTEIO && kactor_client_error_message(c)[0] != '\0')
                return kactor_client_error_message(c);
        return strerror(-r);
}

static int counter_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        int64_t initial = 0;
        Counter *counter;
        int r;

        if (args && kactor_value_list_size(args) > 0) {
                r = kactor_arg_int(ctx, args, 0, &initial);
                if (r < 0)
                        return r;
        }

        counter = malloc(sizeof(*counter));
        if (!counter)
                return -ENOMEM;
        counter->value = initial;

        *ret_state = counter;
        return 0;
}

static int counter_increment(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Counter *counter = state;
        kactor_value *v;

        if (counter->value == INT64_MAX)
                return kactor_fail(ctx, "Counter would overflow past %" PRIi64, counter->value);

        v = kactor_value_new_int(counter->value + 1);
        if (!v)
                return -ENOMEM;

        /* Only change the state once nothing can fail any more. */
        counter->value++;
        *ret = v;
        return 0;
}

static int counter_get(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Counter *counter = state;

        *ret = kactor_value_new_int(counter->value);
        return *ret ? 0 : -ENOMEM;
}

static void sleep_msec(int64_t msec) {
        struct timespec ts = {
                .tv_sec = msec / 1000,
                .tv_nsec = (msec % 1000) * 1000000,
        };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int increment_loop(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        kactor_client *c = kactor_ctx_client(ctx);
        int64_t n, delay_ms = 0, last = 0;
        kactor_actor counter;
        int r;

        r = kactor_arg_actor(ctx, args, 0, &counter);
        if (r < 0)
                return r;
        r = kactor_arg_int(ctx, args, 1, &n);
        if (r < 0)
                return r;
        if (n < 0)
                return kactor_fail(ctx, "increment_loop: n must not be negative, got %" PRIi64, n);
        if (kactor_value_list_size(args) > 2) {
                r = kactor_arg_int(ctx, args, 2, &delay_ms);
                if (r < 0)
                        return r;
                if (delay_ms < 0 || delay_ms > 60000)
                        return kactor_fail(ctx, "increment_loop: delay_ms must be in 0..60000, got %" PRIi64,
                                           delay_ms);
        }

        for (int64_t i = 0; i < n; i++) {
                kactor_value *v = NULL;
                kactor_ref ref;

                r = kactor_call(c, counter, "increment", NULL, &ref);
                if (r < 0)
                        return kactor_fail(ctx, "increment_loop: call %" PRIi64 " of %" PRIi64 " failed: %s",
                                           i + 1, n, client_strerror(c, r));

                r = kactor_get1(c, ref, 0, &v);
                (void) kactor_ref_release(c, &ref, 1);
                if (r < 0)
                        return kactor_fail(ctx, "increment_loop: result %" PRIi64 " of %" PRIi64 " failed: %s",
                                           i + 1, n, client_strerror(c, r));

                if (kactor_value_is_error(v)) {
                        r = kactor_fail(ctx, "increment_loop: increment %" PRIi64 " of %" PRIi64 " failed: %s: %s",
                                        i + 1, n, kactor_error_name(kactor_value_error_code(v)) ?: "error",
                                        kactor_value_error_message(v) ?: "");
                        kactor_value_free(v);
                        return r;
                }
                r = kactor_value_as_int(v, &last);
                kactor_value_free(v);
                if (r < 0)
                        return kactor_fail(ctx, "increment_loop: increment returned something other than an int");

                if (delay_ms > 0 && i + 1 < n)
                        sleep_msec(delay_ms);
        }

        *ret = kactor_value_new_int(last);
        return *ret ? 0 : -ENOMEM;
}

/* Where this module was loaded from, so that make_counter() creates a Counter from this very file
 * whatever the node manager's module path is; falls back to the module's name. */
static const char *module_self_path(void) {
        Dl_info info;

        if (dladdr((const void *) &module_self_path, &info) != 0 && info.dli_fname && info.dli_fname[0] == '/')
                return info.dli_fname;
        return "counter";
}

static int make_counter(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        kactor_client *c = kactor_ctx_client(ctx);
        kactor_value *ctor_args = NULL;
        kactor_actor counter;
        int64_t initial = 0;
        int r;

        if (args && kactor_value_list_size(args) > 0) {
                r = kactor_arg_int(ctx, args, 0, &initial);
                if (r < 0)
                        return r;
        }

        ctor_args = kactor_value_new_list();
        if (!ctor_args)
                return -ENOMEM;
        r = kactor_value_list_append(ctor_args, kactor_value_new_int(initial));
        if (r < 0) {
                kactor_value_free(ctor_args);
                return r;
        }

        r = kactor_create_actor(c, module_self_path(), "Counter", ctor_args, NULL, &counter);
        kactor_value_free(ctor_args);
        if (r < 0)
                return kactor_fail(ctx, "make_counter: failed to create a Counter: %s", client_strerror(c, r));

        /* The handle travels in the result; whoever receives it holds the actor from then on. */
        *ret = kactor_value_new_actor_handle(counter);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method counter_methods[] = {
        { .name = "increment", .fn = counter_increment },
        { .name = "get", .fn = counter_get, .flags = KACTOR_METHOD_READ_ONLY },
        {}
};

static const kactor_class counter_class = {
        .name = "Counter",
        .init = counter_init,
        .destroy = free,
        .methods = counter_methods,
};

static const kactor_function counter_functions[] = {
        { .name = "increment_loop", .fn = increment_loop },
        { .name = "make_counter", .fn = make_counter },
        {}
};

KACTOR_MODULE(.name = "counter",
              .classes = (const kactor_class *const[]) { &counter_class, NULL },
              .functions = counter_functions);

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The benchmarks' module: a remote function and an actor method that do nothing, so what is
 * measured is kactor's own cost.
 *
 *   noop(...)      -> nil     (remote function)
 *   Noop().noop()  -> nil     (actor class and method)
 */

#include <kactor/module.h>

static int noop_function(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        *ret = NULL;
        return 0;
}

static int noop_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        static char state;

        *ret_state = &state;
        return 0;
}

static int noop_method(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = NULL;
        return 0;
}

static const kactor_method noop_methods[] = {
        { .name = "noop", .fn = noop_method, .flags = KACTOR_METHOD_READ_ONLY },
        {}
};

static const kactor_class noop_class = {
        .name = "Noop",
        .init = noop_init,
        .methods = noop_methods,
};

static const kactor_function noop_functions[] = {
        { .name = "noop", .fn = noop_function },
        {}
};

KACTOR_MODULE(.name = "benchmod", .classes = (const kactor_class *const[]) { &noop_class, NULL },
              .functions = noop_functions);

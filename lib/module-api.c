/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The module API (<kactor/module.h>): what a module's constructor, methods and functions call on
 * their context. In libkactor, which modules link against; the worker runtime that makes the
 * context is kactor-worker's own (lib/worker/worker-runtime.c).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "kactor/module.h"
#include "macro.h"
#include "module-ctx.h"

_public_ int kactor_fail(kactor_ctx *ctx, const char *format, ...) {
        va_list ap;
        char *m = NULL;

        va_start(ap, format);
        if (vasprintf(&m, format, ap) < 0)
                m = NULL;
        va_end(ap);
        free(ctx->error);
        ctx->error = m;
        return -EREMOTEIO;
}

_public_ kactor_client *kactor_ctx_client(kactor_ctx *ctx) {
        return ctx->client;
}

_public_ size_t kactor_ctx_gpu_ids(kactor_ctx *ctx, const uint32_t **ret_ids) {
        if (ret_ids)
                *ret_ids = ctx->gpu_ids;
        return ctx->n_gpu_ids;
}

_public_ kactor_actor kactor_ctx_self(kactor_ctx *ctx) {
        return ctx->self;
}

static const kactor_value *arg_get(kactor_ctx *ctx, const kactor_value *args, size_t i, kactor_type type,
                                   int *ret_r) {
        const kactor_value *v = args ? kactor_value_list_get(args, i) : NULL;
        if (!v) {
                *ret_r = kactor_fail(ctx, "argument %zu is missing (%zu given)", i,
                                     args ? kactor_value_list_size(args) : 0);
                return NULL;
        }
        if (kactor_value_type(v) != type &&
            !(type == KACTOR_TYPE_DOUBLE && kactor_value_type(v) == KACTOR_TYPE_INT)) {
                *ret_r = kactor_fail(ctx, "argument %zu must be %s, not %s", i, kactor_type_to_string(type),
                                     kactor_type_to_string(kactor_value_type(v)));
                return NULL;
        }
        *ret_r = 0;
        return v;
}

_public_ int kactor_arg_int(kactor_ctx *ctx, const kactor_value *args, size_t i, int64_t *ret) {
        int r;
        const kactor_value *v = arg_get(ctx, args, i, KACTOR_TYPE_INT, &r);
        if (v)
                *ret = kactor_value_get_int(v);
        return r;
}

_public_ int kactor_arg_double(kactor_ctx *ctx, const kactor_value *args, size_t i, double *ret) {
        int r;
        const kactor_value *v = arg_get(ctx, args, i, KACTOR_TYPE_DOUBLE, &r);
        if (v)
                (void) kactor_value_as_double(v, ret);
        return r;
}

_public_ int kactor_arg_string(kactor_ctx *ctx, const kactor_value *args, size_t i, const char **ret) {
        int r;
        const kactor_value *v = arg_get(ctx, args, i, KACTOR_TYPE_STRING, &r);
        if (v)
                *ret = kactor_value_get_string(v, NULL);
        return r;
}

_public_ int kactor_arg_actor(kactor_ctx *ctx, const kactor_value *args, size_t i, kactor_actor *ret) {
        int r;
        const kactor_value *v = arg_get(ctx, args, i, KACTOR_TYPE_ACTOR, &r);
        if (v)
                *ret = (kactor_actor){ kactor_value_get_id(v) };
        return r;
}

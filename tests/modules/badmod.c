/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A module that cannot be loaded: it needs a symbol nothing defines. The link of a shared object
 * allows undefined symbols, but it is linked with -z now, so dlopen() fails at once with
 * "undefined symbol: kactor_no_such_symbol".
 */

#include <kactor/module.h>

extern int kactor_no_such_symbol;

static int badmod_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        *ret_state = NULL;
        return kactor_no_such_symbol;
}

static int badmod_get(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_new_int(kactor_no_such_symbol);
        return 0;
}

static const kactor_method badmod_methods[] = {
        {.name = "get", .fn = badmod_get},
        {},
};

static const kactor_class badmod_class = {
        .name = "Bad",
        .init = badmod_init,
        .methods = badmod_methods,
};

KACTOR_MODULE(.name = "badmod", .classes = (const kactor_class *const[]){&badmod_class, NULL});

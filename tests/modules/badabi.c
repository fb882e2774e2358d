/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A module built for an ABI this kactor does not speak: the worker must refuse it, not use it.
 */

#include <kactor/module.h>

static int badabi_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        *ret_state = NULL;
        return 0;
}

static const kactor_class badabi_class = {
        .name = "Future",
        .init = badabi_init,
        .methods = (const kactor_method[]){{}},
};

__attribute__((visibility("default"))) const kactor_module kactor_module_info = {
        .abi = KACTOR_MODULE_ABI + 1000,
        .name = "badabi",
        .classes = (const kactor_class *const[]){&badabi_class, NULL},
};

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* NULL-terminated arrays of malloc'd strings ("strv"), as systemd's strv.h: the lists of module
 * directories, GPU device nodes and paths the node manager and kactorctl pass around. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Frees each string and the array; accepts NULL and returns NULL. */
char **strv_free(char **l);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* The number of strings in l; 0 for NULL. */
size_t strv_length(char * const *l);

static inline bool strv_isempty(char * const *l) {
        return !l || !*l;
}

/* Splits s at every character in separators, skipping empty entries. *ret is an empty list (never
 * NULL) when s holds no entry. Returns 0 or -ENOMEM. */
int strv_split(const char *s, const char *separators, char ***ret);

/* Moves the strings of b to the end of *a (which may be NULL) and frees b's array. On failure (-ENOMEM)
 * neither list is changed and b still belongs to the caller. */
int strv_extend_strv_consume(char ***a, char **b);

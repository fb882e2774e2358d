/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "strv.h"

char **strv_free(char **l) {
        for (char **i = l; i && *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char * const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

int strv_split(const char *s, const char *separators, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;

        for (const char *p = s; p && *p;) {
                size_t len = strcspn(p, separators);

                if (len > 0) {
                        char **nl = realloc(l, (n + 2) * sizeof(char *));
                        if (!nl)
                                return -ENOMEM;
                        l = nl;
                        l[n] = strndup(p, len);
                        if (!l[n])
                                return -ENOMEM;
                        l[++n] = NULL;
                }
                p += len;
                if (*p)
                        p++;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

int strv_extend_strv_consume(char ***a, char **b) {
        size_t n = strv_length(*a), k = strv_length(b);
        char **l;

        l = realloc(*a, (n + k + 1) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        if (b)
                memcpy(l + n, b, k * sizeof(char *));
        l[n + k] = NULL;
        free(b);
        *a = l;
        return 0;
}

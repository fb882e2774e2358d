/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "utf8.h"

static const char *json_escape_of(unsigned char c) {
        switch (c) {
        case '"':
                return "\\\"";
        case '\\':
                return "\\\\";
        case '\b':
                return "\\b";
        case '\f':
                return "\\f";
        case '\n':
                return "\\n";
        case '\r':
                return "\\r";
        case '\t':
                return "\\t";
        default:
                return NULL;
        }
}

void json_string_write(const char *s, size_t n, JsonPutFunc put, void *userdata) {
        const unsigned char *p = (const unsigned char *) s;
        size_t i = 0;

        put("\"", 1, userdata);
        while (i < n) {
                size_t run = i, k;
                const char *e;

                /* Hand over the longest stretch that needs no escaping at once. */
                while (run < n && p[run] >= 0x20 && p[run] != '"' && p[run] != '\\' &&
                       (k = utf8_sequence_len(p + run, n - run)) > 0)
                        run += k;
                if (run > i) {
                        put(s + i, run - i, userdata);
                        i = run;
                        continue;
                }

                e = json_escape_of(p[i]);
                if (e)
                        put(e, strlen(e), userdata);
                else if (p[i] < 0x20) {
                        char u[sizeof("\\u0000")];

                        snprintf(u, sizeof(u), "\\u%04x", p[i]);
                        put(u, sizeof(u) - 1, userdata);
                } else
                        put("\\ufffd", strlen("\\ufffd"), userdata);
                i++;
        }
        put("\"", 1, userdata);
}

static void json_put_file(const char *s, size_t n, void *userdata) {
        fwrite(s, 1, n, userdata);
}

void json_string_fputs(const char *s, FILE *f) {
        s = s ?: "";
        json_string_write(s, strlen(s), json_put_file, f);
}

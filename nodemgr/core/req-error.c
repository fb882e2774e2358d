/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "req-error.h"

/* The new message (followed by ": cause" when cause is given) is made before the old one is freed:
 * the arguments, and cause, may point into it. */
static void req_error_setv(ReqError *e, kactor_error code, const char *cause, const char *format, va_list ap)
        __attribute__((format(printf, 4, 0)));
static void req_error_setv(ReqError *e, kactor_error code, const char *cause, const char *format, va_list ap) {
        _cleanup_free_ char *formatted = NULL;
        char *message = NULL;

        if (vasprintf(&formatted, format, ap) < 0)
                formatted = NULL;
        else if (!cause)
                message = TAKE_PTR(formatted);
        else if (asprintf(&message, "%s: %s", formatted, cause) < 0)
                message = NULL;
        free(e->message);
        e->message = message;
        e->code = code;
}

int req_error(ReqError *e, kactor_error code, const char *format, ...) {
        va_list ap;
        if (e) {
                va_start(ap, format);
                req_error_setv(e, code, NULL, format, ap);
                va_end(ap);
        }
        return -EREMOTEIO;
}

int req_error_wrap(ReqError *e, kactor_error code, const char *format, ...) {
        va_list ap;
        if (e) {
                va_start(ap, format);
                req_error_setv(e, code, e->message, format, ap);
                va_end(ap);
        }
        return -EREMOTEIO;
}

void req_error_done(ReqError *e) {
        free(e->message);
        *e = (ReqError) {};
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kactorctl-util.h"

int ctl_error_errno(int r, const char *format, ...) {
        va_list ap;

        fputs("kactorctl: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        if (r != 0)
                fprintf(stderr, ": %s", strerror(r < 0 ? -r : r));
        fputc('\n', stderr);
        return r < 0 ? r : -r;
}

int ctl_oom(void) {
        return ctl_error_errno(-ENOMEM, "Out of memory");
}

int ctl_bus_error(const sd_bus_error *error, int r, const char *what) {
        if (sd_bus_error_is_set(error)) {
                fprintf(stderr, "kactorctl: %s (%s)\n", error->message ?: error->name, error->name);
                return r < 0 ? r : -EIO;
        }
        return ctl_error_errno(r, "%s", what);
}

int ctl_usage_error(const char *verb, const char *format, ...) {
        va_list ap;

        fputs("kactorctl: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'kactorctl %s%s--help' for more information.\n", verb ?: "", verb ? " " : "");
        return EXIT_USAGE;
}

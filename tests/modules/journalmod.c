/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The journal tests' module (tests/integration/systemd-journal.sh): an actor that writes to its own
 * stdout and stderr, as actor code does, and methods that end its worker in the ways a worker ends.
 *
 *   Printer().say(text)    -> nil   ("TEXT" on stdout, "TEXT on stderr" on stderr, "<4>TEXT as a warning"
 *                                     on stderr: a syslog priority prefix, as sd-daemon.h's SD_WARNING;
 *                                     "TEXT in bytes \xff\xfe" on stdout: not UTF-8)
 *   Printer().long_line(n) -> nil   ("<4>" and n x's on stderr: a line longer than the journal's lines)
 *   Printer().last_words(text) -> never ("TEXT" on stdout without a newline, then exit(0): a worker's
 *                                     last, partial line, still in stdio's buffer when it exits)
 *   Printer().abort(text)  -> never ("TEXT" on stderr, then abort(): a worker dying of a signal)
 *   Printer().crash()      -> never (the worker exits with status 3)
 */

#include <errno.h>
#include <inttypes.h>
#include <kactor/module.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int printer_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        static char state;
        *ret_state = &state;
        return 0;
}

static int printer_say(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        const char *text;
        int r = kactor_arg_string(ctx, args, 0, &text);
        if (r < 0)
                return r;
        /* stdout is line-buffered in a worker whose output goes to the journal; stderr unbuffered. */
        printf("%s\n", text);
        fprintf(stderr, "%s on stderr\n", text);
        fprintf(stderr, "<4>%s as a warning\n", text);
        printf("%s in bytes \xff\xfe\n", text);
        *ret = NULL;
        return 0;
}

static int printer_long_line(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t n;
        int r = kactor_arg_int(ctx, args, 0, &n);
        if (r < 0)
                return r;
        if (n < 0 || n > 1 << 20)
                return kactor_fail(ctx, "long_line: %" PRIi64 " is out of range", n);
        char *line = malloc((size_t) n + 5);
        if (!line)
                return -ENOMEM;
        memcpy(line, "<4>", 3);
        memset(line + 3, 'x', (size_t) n);
        memcpy(line + 3 + n, "\n", 2);
        fputs(line, stderr);
        free(line);
        *ret = NULL;
        return 0;
}

static int printer_last_words(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        const char *text;
        int r = kactor_arg_string(ctx, args, 0, &text);
        if (r < 0)
                return r;
        printf("%s", text);
        exit(0);
}

static int printer_abort(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        const char *text;
        int r = kactor_arg_string(ctx, args, 0, &text);
        if (r < 0)
                return r;
        fprintf(stderr, "%s\n", text);
        abort();
}

static int printer_crash(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        _exit(3);
}

static const kactor_method printer_methods[] = {
        { .name = "say", .fn = printer_say },
        { .name = "long_line", .fn = printer_long_line },
        { .name = "last_words", .fn = printer_last_words },
        { .name = "abort", .fn = printer_abort },
        { .name = "crash", .fn = printer_crash },
        {}
};

static const kactor_class printer_class = {
        .name = "Printer",
        .init = printer_init,
        .methods = printer_methods,
};

KACTOR_MODULE(.name = "journalmod", .classes = (const kactor_class *const[]) { &printer_class, NULL });

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The journal tests' module (tests/integration/systemd-journal.sh): an actor that writes to its own
 * stdout and stderr, as actor code does, and a method that crashes its worker.
 *
 *   Printer().say(text)    -> nil   ("TEXT" on stdout, "TEXT on stderr" on stderr, "<3>TEXT as an error"
 *                                     on stderr: a syslog priority prefix, as sd-daemon.h's SD_ERR)
 *   Printer().crash()      -> never (the worker exits with status 3)
 */

#include <kactor/module.h>
#include <stdio.h>
#include <stdlib.h>
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
        fprintf(stderr, "<3>%s as an error\n", text);
        *ret = NULL;
        return 0;
}

static int printer_crash(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        _exit(3);
}

static const kactor_method printer_methods[] = {
        { .name = "say", .fn = printer_say },
        { .name = "crash", .fn = printer_crash },
        {}
};

static const kactor_class printer_class = {
        .name = "Printer",
        .init = printer_init,
        .methods = printer_methods,
};

KACTOR_MODULE(.name = "journalmod", .classes = (const kactor_class *const[]) { &printer_class, NULL });

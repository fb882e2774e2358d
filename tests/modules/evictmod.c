/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The eviction tests' module: an actor and functions that leave a trace in a file every time they
 * run, so that a test can see which process ran what, and how often — in particular, that an
 * evicted result was rebuilt in a temporary worker and not by running the call again on the live
 * actor.
 *
 *   Ledger(path, crash_file?)
 *                         add(x) appends "PID x\n" to path, adds x to a total and returns "the total
 *                         is now T"; total() and pid() are read-only; save/restore hooks. With
 *                         crash_file: when the file exists and holds x, add(x) removes it and dies of
 *                         SIGSEGV first (once), whether it runs live or in a replay.
 *   tally(path, x)        appends "x\n" to path and returns "tally result for x".
 *
 * Results are strings longer than 16 bytes: smaller values stay in memory (they are never
 * evicted).
 *   pattern(n, seed)      returns n bytes, byte i being (i * 7 + seed) % 256 (NULs included).
 *   size(v)               the size of a string or bytes value (for arguments read back from a spill).
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <kactor/module.h>

/* Appends one line to path with a single write (O_APPEND). */
static int append_line(kactor_ctx *ctx, const char *path, const char *line) {
        size_t len = strlen(line);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        ssize_t n;

        if (fd < 0)
                return kactor_fail(ctx, "cannot open %s: %s", path, strerror(errno));
        n = write(fd, line, len);
        close(fd);
        if (n != (ssize_t)len)
                return kactor_fail(ctx, "cannot append to %s", path);
        return 0;
}

/* --- Ledger ---------------------------------------------------------------------------------- */

typedef struct Ledger {
        char *path;
        char *crash_file;
        int64_t total;
} Ledger;

/* Dies of SIGSEGV without a core file, past any sanitizer's handler. */
static void die_of_segv(void) {
        struct rlimit rl = {};

        (void)setrlimit(RLIMIT_CORE, &rl);
        (void)signal(SIGSEGV, SIG_DFL);
        (void)raise(SIGSEGV);
}

static void ledger_maybe_crash(const Ledger *l, int64_t x) {
        char buf[32] = {};
        size_t n;
        FILE *f;

        if (!l->crash_file)
                return;
        f = fopen(l->crash_file, "re");
        if (!f)
                return;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        if (strtoll(buf, NULL, 10) != x)
                return;
        (void)unlink(l->crash_file);
        die_of_segv();
}

static void ledger_free(void *p) {
        Ledger *l = p;

        if (!l)
                return;
        free(l->path);
        free(l->crash_file);
        free(l);
}

static int ledger_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        const char *path;
        Ledger *l;
        int r;

        r = kactor_arg_string(ctx, args, 0, &path);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(Ledger));
        if (!l)
                return -ENOMEM;
        l->path = strdup(path);
        if (!l->path) {
                ledger_free(l);
                return -ENOMEM;
        }
        if (kactor_value_list_size(args) > 1) {
                r = kactor_arg_string(ctx, args, 1, &path);
                if (r < 0) {
                        ledger_free(l);
                        return r;
                }
                l->crash_file = strdup(path);
                if (!l->crash_file) {
                        ledger_free(l);
                        return -ENOMEM;
                }
        }
        *ret_state = l;
        return 0;
}

static int ledger_add(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Ledger *l = state;
        char line[64];
        int64_t x;
        int r;

        r = kactor_arg_int(ctx, args, 0, &x);
        if (r < 0)
                return r;
        ledger_maybe_crash(l, x);
        snprintf(line, sizeof(line), "%d %lld\n", (int)getpid(), (long long)x);
        r = append_line(ctx, l->path, line);
        if (r < 0)
                return r;
        l->total += x;
        snprintf(line, sizeof(line), "the total is now %lld", (long long)l->total);
        *ret = kactor_value_new_string(line);
        return *ret ? 0 : -ENOMEM;
}

static int ledger_total(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Ledger *l = state;

        *ret = kactor_value_new_int(l->total);
        return *ret ? 0 : -ENOMEM;
}

static int ledger_pid(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_new_int(getpid());
        return *ret ? 0 : -ENOMEM;
}

/* The checkpoint: {"path": path, "total": total, "crash_file": crash_file (when there is one)}. */
static int ledger_save(kactor_ctx *ctx, void *state, kactor_value **ret) {
        Ledger *l = state;
        kactor_value *m = kactor_value_new_map();

        if (!m || kactor_value_map_set(m, "path", kactor_value_new_string(l->path)) < 0 ||
            kactor_value_map_set(m, "total", kactor_value_new_int(l->total)) < 0 ||
            (l->crash_file &&
             kactor_value_map_set(m, "crash_file", kactor_value_new_string(l->crash_file)) < 0)) {
                kactor_value_free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

static int ledger_restore(kactor_ctx *ctx, const kactor_value *saved, void **ret_state) {
        const kactor_value *path = kactor_value_map_get(saved, "path"),
                           *total = kactor_value_map_get(saved, "total"),
                           *crash_file = kactor_value_map_get(saved, "crash_file");
        Ledger *l;

        if (kactor_value_type(path) != KACTOR_TYPE_STRING || kactor_value_type(total) != KACTOR_TYPE_INT)
                return kactor_fail(ctx, "malformed checkpoint");
        l = calloc(1, sizeof(Ledger));
        if (!l)
                return -ENOMEM;
        l->path = strdup(kactor_value_get_string(path, NULL));
        if (!l->path) {
                free(l);
                return -ENOMEM;
        }
        l->total = kactor_value_get_int(total);
        if (kactor_value_type(crash_file) == KACTOR_TYPE_STRING) {
                l->crash_file = strdup(kactor_value_get_string(crash_file, NULL));
                if (!l->crash_file) {
                        ledger_free(l);
                        return -ENOMEM;
                }
        }
        *ret_state = l;
        return 0;
}

static const kactor_method ledger_methods[] = {
        {.name = "add", .fn = ledger_add},
        {.name = "total", .fn = ledger_total, .flags = KACTOR_METHOD_READ_ONLY},
        {.name = "pid", .fn = ledger_pid, .flags = KACTOR_METHOD_READ_ONLY},
        {}};

static const kactor_class ledger_class = {
        .name = "Ledger",
        .init = ledger_init,
        .destroy = ledger_free,
        .methods = ledger_methods,
        .save = ledger_save,
        .restore = ledger_restore,
};

/* --- functions ------------------------------------------------------------------------------- */

static int fn_tally(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        const char *path;
        char line[64];
        int64_t x;
        int r;

        if ((r = kactor_arg_string(ctx, args, 0, &path)) < 0 || (r = kactor_arg_int(ctx, args, 1, &x)) < 0)
                return r;
        snprintf(line, sizeof(line), "%lld\n", (long long)x);
        r = append_line(ctx, path, line);
        if (r < 0)
                return r;
        snprintf(line, sizeof(line), "tally result for %lld", (long long)x);
        *ret = kactor_value_new_string(line);
        return *ret ? 0 : -ENOMEM;
}

static int fn_pattern(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        int64_t n, seed;
        uint8_t *p;
        int r;

        if ((r = kactor_arg_int(ctx, args, 0, &n)) < 0 || (r = kactor_arg_int(ctx, args, 1, &seed)) < 0)
                return r;
        if (n < 0 || n > 16 * 1024 * 1024)
                return kactor_fail(ctx, "bad size %lld", (long long)n);
        p = malloc((size_t)n ?: 1);
        if (!p)
                return -ENOMEM;
        for (int64_t i = 0; i < n; i++)
                p[i] = (uint8_t)((i * 7 + seed) % 256);
        *ret = kactor_value_new_bytes(p, (size_t)n);
        free(p);
        return *ret ? 0 : -ENOMEM;
}

static int fn_size(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        const kactor_value *v = kactor_value_list_get(args, 0);
        size_t len = 0;

        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_STRING:
                (void)kactor_value_get_string(v, &len);
                break;
        case KACTOR_TYPE_BYTES:
                (void)kactor_value_get_bytes(v, &len);
                break;
        default:
                return kactor_fail(ctx, "size: a string or bytes expected, got %s",
                                   kactor_type_to_string(kactor_value_type(v)));
        }
        *ret = kactor_value_new_int((int64_t)len);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_function functions[] = {{.name = "tally", .fn = fn_tally},
                                            {.name = "pattern", .fn = fn_pattern},
                                            {.name = "size", .fn = fn_size},
                                            {}};

KACTOR_MODULE(.name = "evictmod", .classes = (const kactor_class *const[]){&ledger_class, NULL},
              .functions = functions);

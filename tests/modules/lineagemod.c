/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lineage tests' module: actors whose state shows exactly which calls they executed, so that a
 * restart with replay can be checked call by call.
 *
 *   Journal(crash_file?)   add(caller, seq) appends the pair and returns how many it holds;
 *                          add_then_fail(caller, seq) appends, then fails; crash() dies of SIGSEGV;
 *                          entries(), count(), pid(), stats() are read-only.
 *                          With crash_file: when the file exists and holds K, the add that would
 *                          make the K-th entry removes the file and dies of SIGSEGV first (once),
 *                          whether it runs live or in a replay.
 *   Saver(start?)          a counter and a list, with save/restore hooks: add(x) adds x to the
 *                          counter and appends it; get() -> [counter, list]; stats(), pid().
 *   FlakySaver(fail_from)  a Saver whose save hook fails once the list has fail_from entries (0:
 *                          always).
 *   BadInit                its constructor fails.
 *
 * stats() is {"executions": mutating calls run by this worker process, "restored": whether this
 * worker's state came from a checkpoint}: after a restart it tells what was replayed.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <kactor/module.h>

/* Per worker process: a restarted actor runs in a new one. */
static int64_t executions;
static bool restored;

/* Dies of SIGSEGV without a core file; the default action is restored first, so a sanitizer's
 * handler cannot turn it into a report or an exit. */
static void die_of_segv(void) {
        struct rlimit rl = {};

        (void) setrlimit(RLIMIT_CORE, &rl);
        (void) signal(SIGSEGV, SIG_DFL);
        (void) raise(SIGSEGV);
}

static kactor_value *new_stats(void) {
        kactor_value *m = kactor_value_new_map();

        if (!m || kactor_value_map_set(m, "executions", kactor_value_new_int(executions)) < 0 ||
            kactor_value_map_set(m, "restored", kactor_value_new_bool(restored)) < 0)
                return kactor_value_free(m);
        return m;
}

static int method_pid(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_new_int(getpid());
        return *ret ? 0 : -ENOMEM;
}

static int method_stats(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = new_stats();
        return *ret ? 0 : -ENOMEM;
}

/* --- Journal --------------------------------------------------------------------------------- */

typedef struct Journal {
        int64_t (*entries)[2];
        size_t n, allocated;
        char *crash_file;
} Journal;

static void journal_free(void *p) {
        Journal *j = p;

        if (!j)
                return;
        free(j->entries);
        free(j->crash_file);
        free(j);
}

static int journal_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        Journal *j = calloc(1, sizeof(Journal));
        const char *file;

        if (!j)
                return -ENOMEM;
        if (kactor_value_list_size(args) > 0) {
                int r = kactor_arg_string(ctx, args, 0, &file);
                if (r < 0) {
                        journal_free(j);
                        return r;
                }
                j->crash_file = strdup(file);
                if (!j->crash_file) {
                        journal_free(j);
                        return -ENOMEM;
                }
        }
        *ret_state = j;
        return 0;
}

/* Dies when the crash file asks for the entry about to be made. */
static void journal_maybe_crash(Journal *j) {
        char buf[32] = {};
        FILE *f;

        if (!j->crash_file)
                return;
        f = fopen(j->crash_file, "re");
        if (!f)
                return;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        if (strtoll(buf, NULL, 10) != (long long) j->n + 1)
                return;
        (void) unlink(j->crash_file);
        die_of_segv();
}

static int journal_append(kactor_ctx *ctx, Journal *j, const kactor_value *args) {
        int64_t caller, seq;
        int r;

        r = kactor_arg_int(ctx, args, 0, &caller);
        if (r >= 0)
                r = kactor_arg_int(ctx, args, 1, &seq);
        if (r < 0)
                return r;
        journal_maybe_crash(j);
        if (j->n == j->allocated) {
                size_t n = j->allocated ? j->allocated * 2 : 64;
                int64_t (*e)[2] = realloc(j->entries, n * sizeof(*e));
                if (!e)
                        return -ENOMEM;
                j->entries = e;
                j->allocated = n;
        }
        j->entries[j->n][0] = caller;
        j->entries[j->n][1] = seq;
        j->n++;
        return 0;
}

static int journal_add(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Journal *j = state;

        executions++;
        int r = journal_append(ctx, j, args);
        if (r < 0)
                return r;
        *ret = kactor_value_new_int((int64_t) j->n);
        return *ret ? 0 : -ENOMEM;
}

static int journal_add_then_fail(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Journal *j = state;

        executions++;
        int r = journal_append(ctx, j, args);
        if (r < 0)
                return r;
        return kactor_fail(ctx, "failed after making entry %zu", j->n);
}

static int journal_crash(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        executions++;
        die_of_segv();
        return kactor_fail(ctx, "still alive after SIGSEGV");
}

static int journal_entries(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Journal *j = state;
        kactor_value *l = kactor_value_new_list();

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < j->n; i++)
                if (kactor_value_list_append(l, kactor_value_new_int_list(j->entries[i], 2)) < 0) {
                        kactor_value_free(l);
                        return -ENOMEM;
                }
        *ret = l;
        return 0;
}

static int journal_count(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Journal *j = state;

        *ret = kactor_value_new_int((int64_t) j->n);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method journal_methods[] = {
        { .name = "add", .fn = journal_add },
        { .name = "add_then_fail", .fn = journal_add_then_fail },
        { .name = "crash", .fn = journal_crash },
        { .name = "entries", .fn = journal_entries, .flags = KACTOR_METHOD_READ_ONLY },
        { .name = "count", .fn = journal_count, .flags = KACTOR_METHOD_READ_ONLY },
        { .name = "pid", .fn = method_pid, .flags = KACTOR_METHOD_READ_ONLY },
        { .name = "stats", .fn = method_stats, .flags = KACTOR_METHOD_READ_ONLY },
        {}
};

static const kactor_class journal_class = {
        .name = "Journal",
        .init = journal_init,
        .destroy = journal_free,
        .methods = journal_methods,
};

/* --- Saver ----------------------------------------------------------------------------------- */

typedef struct Saver {
        int64_t counter;
        kactor_value *list;
        int64_t fail_from; /* FlakySaver: save fails once the list has this many entries; -1: never */
} Saver;

static void saver_free(void *p) {
        Saver *s = p;

        if (!s)
                return;
        kactor_value_free(s->list);
        free(s);
}

static Saver *saver_new(void) {
        Saver *s = calloc(1, sizeof(Saver));

        if (!s)
                return NULL;
        s->fail_from = -1;
        s->list = kactor_value_new_list();
        if (!s->list) {
                free(s);
                return NULL;
        }
        return s;
}

static int saver_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        Saver *s = saver_new();
        int r;

        if (!s)
                return -ENOMEM;
        if (kactor_value_list_size(args) > 0) {
                r = kactor_arg_int(ctx, args, 0, &s->counter);
                if (r < 0) {
                        saver_free(s);
                        return r;
                }
        }
        *ret_state = s;
        return 0;
}

static int flaky_saver_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        Saver *s = saver_new();
        int r;

        if (!s)
                return -ENOMEM;
        r = kactor_arg_int(ctx, args, 0, &s->fail_from);
        if (r < 0) {
                saver_free(s);
                return r;
        }
        *ret_state = s;
        return 0;
}

static int saver_add(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Saver *s = state;
        int64_t x;
        int r;

        executions++;
        r = kactor_arg_int(ctx, args, 0, &x);
        if (r < 0)
                return r;
        r = kactor_value_list_append(s->list, kactor_value_new_int(x));
        if (r < 0)
                return r;
        s->counter += x;
        *ret = kactor_value_new_int(s->counter);
        return *ret ? 0 : -ENOMEM;
}

static int saver_get(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Saver *s = state;
        kactor_value *l = kactor_value_new_list();

        if (!l || kactor_value_list_append(l, kactor_value_new_int(s->counter)) < 0 ||
            kactor_value_list_append(l, kactor_value_copy(s->list)) < 0) {
                kactor_value_free(l);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}

/* The checkpoint: {"counter": n, "list": [...], "fail_from": n}. */
static int saver_save(kactor_ctx *ctx, void *state, kactor_value **ret) {
        Saver *s = state;
        kactor_value *m;

        if (s->fail_from >= 0 && kactor_value_list_size(s->list) >= (size_t) s->fail_from)
                return kactor_fail(ctx, "this saver cannot save with %zu entries", kactor_value_list_size(s->list));
        m = kactor_value_new_map();
        if (!m || kactor_value_map_set(m, "counter", kactor_value_new_int(s->counter)) < 0 ||
            kactor_value_map_set(m, "list", kactor_value_copy(s->list)) < 0 ||
            kactor_value_map_set(m, "fail_from", kactor_value_new_int(s->fail_from)) < 0) {
                kactor_value_free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

static int saver_restore(kactor_ctx *ctx, const kactor_value *saved, void **ret_state) {
        const kactor_value *counter = kactor_value_map_get(saved, "counter"), *list = kactor_value_map_get(saved, "list"),
                           *fail_from = kactor_value_map_get(saved, "fail_from");
        Saver *s;

        if (kactor_value_type(counter) != KACTOR_TYPE_INT || kactor_value_type(list) != KACTOR_TYPE_LIST ||
            kactor_value_type(fail_from) != KACTOR_TYPE_INT)
                return kactor_fail(ctx, "malformed checkpoint");
        s = calloc(1, sizeof(Saver));
        if (!s)
                return -ENOMEM;
        s->counter = kactor_value_get_int(counter);
        s->fail_from = kactor_value_get_int(fail_from);
        s->list = kactor_value_copy(list);
        if (!s->list) {
                free(s);
                return -ENOMEM;
        }
        restored = true;
        *ret_state = s;
        return 0;
}

static const kactor_method saver_methods[] = {
        { .name = "add", .fn = saver_add },
        { .name = "get", .fn = saver_get, .flags = KACTOR_METHOD_READ_ONLY },
        { .name = "pid", .fn = method_pid, .flags = KACTOR_METHOD_READ_ONLY },
        { .name = "stats", .fn = method_stats, .flags = KACTOR_METHOD_READ_ONLY },
        {}
};

static const kactor_class saver_class = {
        .name = "Saver",
        .init = saver_init,
        .destroy = saver_free,
        .methods = saver_methods,
        .save = saver_save,
        .restore = saver_restore,
};

static const kactor_class flaky_saver_class = {
        .name = "FlakySaver",
        .init = flaky_saver_init,
        .destroy = saver_free,
        .methods = saver_methods,
        .save = saver_save,
        .restore = saver_restore,
};

/* --- BadInit --------------------------------------------------------------------------------- */

static int bad_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        return kactor_fail(ctx, "this constructor always refuses");
}

static const kactor_method bad_init_methods[] = {
        { .name = "pid", .fn = method_pid, .flags = KACTOR_METHOD_READ_ONLY },
        {}
};

static const kactor_class bad_init_class = {
        .name = "BadInit",
        .init = bad_init,
        .methods = bad_init_methods,
};

KACTOR_MODULE(.name = "lineagemod",
              .classes = (const kactor_class *const[]) { &journal_class, &saver_class, &flaky_saver_class,
                                                         &bad_init_class, NULL });

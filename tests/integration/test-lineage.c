/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lineage on one node, as a user sees it: an actor whose worker dies (kill -9, a crash in a method,
 * a crash during the replay itself) comes back with exactly the state the calls made, each call
 * once and in each caller's order; checkpoints shorten the replay to restore + suffix; MaxRestarts,
 * Kill and failed constructors end it for good; read-only calls are not logged; the lineage memory
 * limit forces checkpoints or refuses calls.
 *
 * The actors are tests/modules/lineagemod.c: a Journal records every (caller, seq) it executes, a
 * Saver has save/restore hooks, and both report per worker process what they executed (stats()),
 * which shows what a replay ran.
 */

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER
#define ACTOR HARNESS_IFACE_ACTOR
#define MODULE "lineagemod"
#define LINEAGE_MEMORY 4096
#define LINEAGE_MEMORY_STRING "4096"

static Harness *h;

static void setup(void) {
        (void) unsetenv("KACTOR_DIRECT_CALLS");
        h = harness_start(NULL);
}

/* The suites below check when checkpoints happen relative to calls, which the relayed path orders
 * (the checkpoint a call triggers runs before the next call). A direct call may run before the
 * checkpoint its predecessor triggered (the node manager learns of results in batches): their
 * clients use the relayed path; the `lineage` suite, and test-direct, run on the direct path. */
static void setup_relayed(void) {
        cr_assert_eq(setenv("KACTOR_DIRECT_CALLS", "0", 1), 0);
}

static void setup_interval(void) {
        static const char *const extra[] = { "--checkpoint-interval", "100", NULL };
        setup_relayed();
        h = harness_start(&(HarnessOptions) { .extra_args = extra });
}

static void setup_no_checkpoints(void) {
        static const char *const extra[] = { "--checkpoint-interval", "0", NULL };
        setup_relayed();
        h = harness_start(&(HarnessOptions) { .extra_args = extra });
}

static void setup_memory(void) {
        static const char *const extra[] = { "--lineage-memory", LINEAGE_MEMORY_STRING, NULL };
        setup_relayed();
        h = harness_start(&(HarnessOptions) { .extra_args = extra });
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(lineage, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(lineage_interval, .init = setup_interval, .fini = teardown, .timeout = 60);
TestSuite(lineage_no_checkpoints, .init = setup_no_checkpoints, .fini = teardown, .timeout = 60);
TestSuite(lineage_memory, .init = setup_memory, .fini = teardown, .timeout = 60);

/* --- helpers --------------------------------------------------------------------------------- */

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static kactor_actor create(kactor_client *c, const char *class_name, const char *args_json, int32_t max_restarts) {
        struct kactor_actor_opts opts = { .sz = sizeof(opts), .max_restarts = max_restarts };

        return harness_create(h, c, harness_module(h, MODULE), class_name, args_json, &opts);
}

/* CreateActor over D-Bus with CheckpointInterval and MaxRestarts; the actor as a libkactor handle. */
static kactor_actor create_on_bus(const char *class_name, uint32_t checkpoint_interval, int32_t max_restarts) {
        const char *out, *path, *slash;
        kactor_actor a = {};

        out = harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", harness_module(h, MODULE),
                                     class_name, "0", "2", "CheckpointInterval", "u",
                                     harness_printf(h, "%" PRIu32, checkpoint_interval), "MaxRestarts", "i",
                                     harness_printf(h, "%" PRIi32, max_restarts), NULL);
        path = harness_busctl_path(h, out);
        slash = strrchr(path, '/');
        cr_assert_not_null(slash, "CreateActor returned %s", out);
        cr_assert_eq(kactor_id_from_string(slash + 1, &a.id), 0, "CreateActor returned %s", out);
        cr_assert_str_eq(harness_actor_path(h, a), path);
        return a;
}

static uint64_t actor_uint(kactor_actor a, const char *name) {
        return harness_property_uint(h, harness_actor_path(h, a), ACTOR, name);
}

static const char *actor_string(kactor_actor a, const char *name) {
        return harness_property_string(h, harness_actor_path(h, a), ACTOR, name);
}

/* Polls a property that sends no PropertiesChanged (every 5 ms, bounded) until it has `value`. */
static bool poll_actor_uint(kactor_actor a, const char *name, uint64_t value, unsigned timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) timeout_ms * 1000;

        for (;;) {
                if (actor_uint(a, name) == value)
                        return true;
                if (now_usec() >= deadline)
                        return false;
                (void) usleep(5000);
        }
}

static int64_t value_int(const kactor_value *v) {
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "expected an int, got %s", harness_value_str(h, v));
        return kactor_value_get_int(v);
}

/* A call whose result must be an int. */
static int64_t call_int(kactor_client *c, kactor_actor a, const char *method, const char *args_json) {
        kactor_value *v = harness_call(c, a, method, args_json);
        int64_t i = value_int(v);
        kactor_value_free(v);
        return i;
}

static kactor_ref call_ref(kactor_client *c, kactor_actor a, const char *method, const char *args_json) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL;
        kactor_ref ref = {};
        int r = kactor_call(c, a, method, args, &ref);

        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_call(%s): %s: %s", method, strerror(-r), kactor_client_error_message(c));
        return ref;
}

/* Makes n Journal.add calls [caller, first..first+n-1], pipelined; asserts each returns its 1-based position
 * first+i+1 (the journal held `first` entries before). */
static void journal_add_n(kactor_client *c, kactor_actor a, int64_t caller, int64_t first, int64_t n) {
        enum { WINDOW = 256 };
        kactor_ref refs[WINDOW];

        for (int64_t base = 0; base < n; base += WINDOW) {
                int64_t k = MIN((int64_t) WINDOW, n - base);
                kactor_value **values = NULL;

                for (int64_t i = 0; i < k; i++) {
                        kactor_value *args = kactor_value_new_int_list((int64_t[]) { caller, first + base + i }, 2);
                        cr_assert_not_null(args);
                        int r = kactor_call(c, a, "add", args, &refs[i]);
                        kactor_value_free(args);
                        cr_assert_eq(r, 0, "kactor_call(add): %s: %s", strerror(-r), kactor_client_error_message(c));
                }
                int r = kactor_get(c, refs, (size_t) k, HARNESS_TIMEOUT_USEC, &values);
                cr_assert_eq(r, 0, "kactor_get: %s: %s", strerror(-r), kactor_client_error_message(c));
                for (int64_t i = 0; i < k; i++)
                        if (kactor_value_type(values[i]) != KACTOR_TYPE_INT ||
                            kactor_value_get_int(values[i]) != first + base + i + 1)
                                cr_assert_fail("add %" PRIi64 " returned %s, not %" PRIi64, first + base + i,
                                               harness_value_str(h, values[i]), first + base + i + 1);
                kactor_values_free(values, (size_t) k);
                (void) kactor_ref_release(c, refs, (size_t) k);
        }
}

/* Asserts that the Journal holds exactly [caller, 0..n-1] for one caller. */
static void expect_journal(kactor_client *c, kactor_actor a, int64_t caller, int64_t n) {
        kactor_value *v = harness_call(c, a, "entries", NULL);

        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_LIST, "entries() returned %s", harness_value_str(h, v));
        cr_assert_eq(kactor_value_list_size(v), (size_t) n, "the journal holds %zu entries, not %" PRIi64,
                     kactor_value_list_size(v), n);
        for (int64_t i = 0; i < n; i++) {
                const kactor_value *e = kactor_value_list_get(v, (size_t) i);
                if (kactor_value_list_size(e) != 2 || kactor_value_get_int(kactor_value_list_get(e, 0)) != caller ||
                    kactor_value_get_int(kactor_value_list_get(e, 1)) != i)
                        cr_assert_fail("entry %" PRIi64 " is %s, not [%" PRIi64 ", %" PRIi64 "]", i,
                                       harness_value_str(h, e), caller, i);
        }
        kactor_value_free(v);
}

/* stats() of the actor's current worker: mutating calls it executed, and whether it was restored. */
static void expect_stats(kactor_client *c, kactor_actor a, int64_t executions, bool restored) {
        kactor_value *v = harness_call(c, a, "stats", NULL);
        const kactor_value *e = kactor_value_map_get(v, "executions"), *r = kactor_value_map_get(v, "restored");

        cr_assert(e && r, "stats() returned %s", harness_value_str(h, v));
        cr_assert_eq(kactor_value_get_int(e), executions, "this worker executed %" PRIi64 " calls, not %" PRIi64,
                     kactor_value_get_int(e), executions);
        cr_assert_eq(kactor_value_get_bool(r), restored, "restored is %d", kactor_value_get_bool(r));
        kactor_value_free(v);
}

/* Follows an actor's PropertiesChanged: any change sets `changed`; State values are kept in order. */
typedef struct Watch {
        sd_bus_slot *slot;
        bool changed;
        char states[32][16];
        size_t n_states;
        uint32_t last_restarts;
        bool saw_restarts;
} Watch;

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Watch *w = userdata;
        const char *iface, *prop, *s;
        uint32_t u;

        w->changed = true;
        if (sd_bus_message_read(m, "s", &iface) < 0 || !streq(iface, ACTOR) ||
            sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &prop) < 0)
                        return 0;
                if (streq(prop, "State") && sd_bus_message_read(m, "v", "s", &s) >= 0) {
                        if (w->n_states < ELEMENTSOF(w->states))
                                snprintf(w->states[w->n_states++], sizeof(w->states[0]), "%s", s);
                } else if (streq(prop, "Restarts") && sd_bus_message_read(m, "v", "u", &u) >= 0) {
                        w->last_restarts = u;
                        w->saw_restarts = true;
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        return 0;
}

static void watch_start(Watch *w, kactor_actor a) {
        *w = (Watch) { .changed = true };
        int r = sd_bus_match_signal(harness_bus(h), &w->slot, NULL, harness_actor_path(h, a),
                                    "org.freedesktop.DBus.Properties", "PropertiesChanged", on_properties_changed, w);
        cr_assert_geq(r, 0, "AddMatch: %s", strerror(-r));
}

/* Waits for the next change (true) or the deadline (false). */
static bool watch_next(Watch *w, uint64_t deadline) {
        sd_bus *bus = harness_bus(h);

        while (!w->changed) {
                int r = sd_bus_process(bus, NULL);
                cr_assert_geq(r, 0, "sd_bus_process: %s", strerror(-r));
                if (r > 0)
                        continue;
                uint64_t now = now_usec();
                if (now >= deadline)
                        return false;
                r = sd_bus_wait(bus, deadline - now);
                cr_assert_geq(r, 0, "sd_bus_wait: %s", strerror(-r));
        }
        w->changed = false;
        return true;
}

static void watch_stop(Watch *w) {
        w->slot = sd_bus_slot_unref(w->slot);
}

/* Waits (on PropertiesChanged) until the actor has restarted `restarts` times and is alive again. */
static void wait_recovered(kactor_actor a, uint64_t restarts) {
        uint64_t deadline = now_usec() + HARNESS_TIMEOUT_USEC;
        Watch w;

        watch_start(&w, a);
        for (;;) {
                cr_assert(watch_next(&w, deadline), "actor did not come back: State %s, Restarts %" PRIu64 ", log:\n%s",
                          actor_string(a, "State"), actor_uint(a, "Restarts"), harness_nodemgr_log(h));
                const char *state = actor_string(a, "State");
                uint64_t n = actor_uint(a, "Restarts");
                cr_assert_str_neq(state, "dead", "the actor died: %s", actor_string(a, "DeathCause"));
                if (n >= restarts && streq(state, "alive"))
                        break;
        }
        watch_stop(&w);
}

/* kill -9 of the actor's worker, which must exist; returns its PID once it is gone. */
static pid_t kill_worker(kactor_actor a) {
        pid_t pid = (pid_t) actor_uint(a, "Pid");

        cr_assert_gt(pid, 0, "the actor has no worker (State %s)", actor_string(a, "State"));
        cr_assert_eq(kill(pid, SIGKILL), 0, "kill %d: %m", (int) pid);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS), "worker %d did not exit", (int) pid);
        return pid;
}

static void expect_error(kactor_value *v, kactor_error code, const char *needle) {
        harness_assert_error(v, code, needle);
        kactor_value_free(v);
}

/* --- kill -9 while three callers stream ------------------------------------------------------ */

#define CALLERS 3
#define CALLS_PER_CALLER 400
#define CALLER_WINDOW 16
#define KILLS 4

typedef struct Stream {
        pthread_mutex_t lock;
        pthread_cond_t progressed;
        size_t results; /* received by all callers together */
        size_t done;    /* callers that returned, done or failed */
} Stream;

typedef struct Caller {
        Stream *stream;
        kactor_client *client;
        kactor_actor actor;
        int64_t id;
        int64_t position[CALLS_PER_CALLER]; /* what add returned: the entry's 1-based position */
        char error[512];                    /* set when the caller failed; checked by the main thread */
} Caller;

/* Runs in its own thread with its own client: nothing here may assert. */
static int caller_collect(Caller *c, kactor_ref *refs, int64_t seq) {
        kactor_value *v = NULL;
        int r = kactor_get1(c->client, refs[seq % CALLER_WINDOW], HARNESS_TIMEOUT_USEC, &v);

        (void) kactor_ref_release(c->client, &refs[seq % CALLER_WINDOW], 1);
        if (r < 0) {
                snprintf(c->error, sizeof(c->error), "caller %" PRIi64 ": get of seq %" PRIi64 ": %s: %s", c->id,
                         seq, strerror(-r), kactor_client_error_message(c->client));
                return r;
        }
        if (kactor_value_type(v) != KACTOR_TYPE_INT) {
                _cleanup_free_ char *s = kactor_value_to_json(v);
                snprintf(c->error, sizeof(c->error), "caller %" PRIi64 ": seq %" PRIi64 " returned %s", c->id, seq,
                         s ?: "?");
                kactor_value_free(v);
                return -EBADMSG;
        }
        c->position[seq] = kactor_value_get_int(v);
        kactor_value_free(v);

        pthread_mutex_lock(&c->stream->lock);
        c->stream->results++;
        pthread_cond_broadcast(&c->stream->progressed);
        pthread_mutex_unlock(&c->stream->lock);
        return 0;
}

static void caller_stream(Caller *c) {
        kactor_ref refs[CALLER_WINDOW];

        for (int64_t seq = 0; seq < CALLS_PER_CALLER; seq++) {
                if (seq >= CALLER_WINDOW && caller_collect(c, refs, seq - CALLER_WINDOW) < 0)
                        return;
                kactor_value *args = kactor_value_new_int_list((int64_t[]) { c->id, seq }, 2);
                int r = args ? kactor_call(c->client, c->actor, "add", args, &refs[seq % CALLER_WINDOW]) : -ENOMEM;
                kactor_value_free(args);
                if (r < 0) {
                        snprintf(c->error, sizeof(c->error), "caller %" PRIi64 ": call seq %" PRIi64 ": %s", c->id,
                                 seq, strerror(-r));
                        return;
                }
        }
        for (int64_t seq = MAX((int64_t) 0, (int64_t) CALLS_PER_CALLER - CALLER_WINDOW); seq < CALLS_PER_CALLER; seq++)
                if (caller_collect(c, refs, seq) < 0)
                        return;
}

static void *caller_run(void *userdata) {
        Caller *c = userdata;

        caller_stream(c);
        pthread_mutex_lock(&c->stream->lock);
        c->stream->done++;
        pthread_cond_broadcast(&c->stream->progressed);
        pthread_mutex_unlock(&c->stream->lock);
        return NULL;
}

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static int cmp_size(const void *a, const void *b) {
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        return x < y ? -1 : x > y;
}

Test(lineage, kill_9_while_three_callers_stream_keeps_every_call_once_in_order) {
        static Caller callers[CALLERS];
        Stream stream = { .lock = PTHREAD_MUTEX_INITIALIZER, .progressed = PTHREAD_COND_INITIALIZER };
        pthread_t threads[CALLERS];
        size_t total = CALLERS * CALLS_PER_CALLER, at[KILLS];
        const char *seed_env = getenv("KACTOR_TEST_SEED");
        uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (now_usec() ^ (uint64_t) getpid() << 32) | 1;
        uint64_t s = seed;

        kactor_client *owner = harness_client(h);
        kactor_actor a = create(owner, "Journal", NULL, -1);
        (void) harness_actor_pid(h, a); /* alive */

        /* Kill points: random counts of results received, while the callers are mid-stream. */
        cr_log_info("kill points from seed %" PRIu64 " (KACTOR_TEST_SEED to repeat)", seed);
        for (size_t i = 0; i < KILLS; i++)
                at[i] = total / 20 + xorshift(&s) % (total * 3 / 4);
        qsort(at, KILLS, sizeof(at[0]), cmp_size);

        for (size_t i = 0; i < CALLERS; i++) {
                callers[i] = (Caller) { .stream = &stream, .client = harness_client(h), .actor = a, .id = (int64_t) i };
                cr_assert_eq(pthread_create(&threads[i], NULL, caller_run, &callers[i]), 0);
        }

        size_t kills = 0;
        for (size_t i = 0; i < KILLS; i++) {
                struct timespec deadline;
                bool stuck = false;

                clock_gettime(CLOCK_REALTIME, &deadline);
                deadline.tv_sec += HARNESS_TIMEOUT_MS / 1000;
                pthread_mutex_lock(&stream.lock);
                while (stream.results < at[i] && stream.done < CALLERS && !stuck)
                        stuck = pthread_cond_timedwait(&stream.progressed, &stream.lock, &deadline) == ETIMEDOUT;
                bool over = stream.results < at[i];
                pthread_mutex_unlock(&stream.lock);
                if (over)
                        break; /* the callers stopped or are stuck; their errors say why */
                kill_worker(a);
                kills++;
                wait_recovered(a, kills);
        }

        for (size_t i = 0; i < CALLERS; i++)
                cr_assert_eq(pthread_join(threads[i], NULL), 0);
        for (size_t i = 0; i < CALLERS; i++)
                cr_assert_str_empty(callers[i].error, "%s; log:\n%s", callers[i].error, harness_nodemgr_log(h));
        cr_assert_eq(kills, KILLS);
        cr_assert_eq(actor_uint(a, "Restarts"), KILLS);
        cr_assert_str_eq(actor_string(a, "State"), "alive");

        /* The journal holds every call once, each caller's in its order, and each call's result is the
         * position its entry has: no call ran twice, none was lost. */
        kactor_value *v = harness_call(owner, a, "entries", NULL);
        int64_t next[CALLERS] = {};
        cr_assert_eq(kactor_value_list_size(v), total, "the journal holds %zu entries, %zu calls were made",
                     kactor_value_list_size(v), total);
        for (size_t i = 0; i < total; i++) {
                const kactor_value *e = kactor_value_list_get(v, i);
                int64_t caller = kactor_value_get_int(kactor_value_list_get(e, 0));
                int64_t seq = kactor_value_get_int(kactor_value_list_get(e, 1));
                cr_assert(caller >= 0 && caller < CALLERS, "entry %zu is %s", i, harness_value_str(h, e));
                cr_assert_eq(seq, next[caller], "entry %zu is %s: caller %" PRIi64 " expected seq %" PRIi64, i,
                             harness_value_str(h, e), caller, next[caller]);
                next[caller]++;
                cr_assert_eq(callers[caller].position[seq], (int64_t) i + 1,
                             "caller %" PRIi64 " seq %" PRIi64 " got position %" PRIi64 ", its entry is at %zu", caller,
                             seq, callers[caller].position[seq], i + 1);
        }
        kactor_value_free(v);
        expect_stats(owner, a, (int64_t) total, false);
        harness_assert_running(h);
}

/* --- crashes --------------------------------------------------------------------------------- */

Test(lineage, crash_inside_a_method_reruns_that_call_once) {
        kactor_client *c = harness_client(h);
        const char *crash_file = harness_printf(h, "%s/crash-at", h->dir);
        FILE *f = fopen(crash_file, "we");

        /* The 60th add dies of SIGSEGV before it changes anything, once. */
        cr_assert_not_null(f);
        fprintf(f, "60\n");
        fclose(f);
        kactor_actor a = create(c, "Journal", harness_printf(h, "[\"%s\"]", crash_file), 1);
        pid_t before = (pid_t) call_int(c, a, "pid", NULL);

        /* 50 calls whose results came back are in the log; the worker batches results, so of the calls
         * streamed after them, those before the crash may or may not be. */
        journal_add_n(c, a, 0, 0, 50);
        cr_assert(poll_actor_uint(a, "LineageLength", 50, HARNESS_TIMEOUT_MS));
        journal_add_n(c, a, 0, 50, 100);

        cr_assert_neq(access(crash_file, F_OK), 0, "the 60th add did not run");
        cr_assert_eq(actor_uint(a, "Restarts"), 1);
        cr_assert_str_eq(actor_string(a, "State"), "alive");
        cr_assert_str_empty(actor_string(a, "DeathCause"));
        cr_assert_neq(call_int(c, a, "pid", NULL), before, "the actor runs in a new worker");
        expect_journal(c, a, 0, 150);
        /* The new worker replayed the logged adds before the crash, then ran the rest. */
        expect_stats(c, a, 150, false);
        cr_assert(poll_actor_uint(a, "LineageLength", 150, HARNESS_TIMEOUT_MS));
}

Test(lineage, crash_during_replay_restarts_again_and_rebuilds_the_state) {
        kactor_client *c = harness_client(h);
        const char *crash_file = harness_printf(h, "%s/crash-at", h->dir);
        kactor_actor a = create(c, "Journal", harness_printf(h, "[\"%s\"]", crash_file), -1);

        journal_add_n(c, a, 0, 0, 300);

        /* The replay dies when it re-makes entry 120 (once), then the next one gets through. */
        FILE *f = fopen(crash_file, "we");
        cr_assert_not_null(f);
        fprintf(f, "120\n");
        fclose(f);
        kill_worker(a);
        wait_recovered(a, 2);

        cr_assert_neq(access(crash_file, F_OK), 0, "the replay did not reach entry 120");
        cr_assert_eq(actor_uint(a, "Restarts"), 2);
        expect_journal(c, a, 0, 300);
        expect_stats(c, a, 300, false);
        /* And it goes on from there. */
        journal_add_n(c, a, 0, 300, 10);
        expect_journal(c, a, 0, 310);
}

Test(lineage, replay_of_10000_calls_rebuilds_the_state_exactly) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 1);

        journal_add_n(c, a, 7, 0, 10000);
        cr_assert(poll_actor_uint(a, "LineageLength", 10000, HARNESS_TIMEOUT_MS));
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 0, "a Journal cannot save");

        uint64_t t0 = now_usec();
        kill_worker(a);
        wait_recovered(a, 1);
        uint64_t dt = now_usec() - t0;
        cr_log_info("10000 calls replayed in %" PRIu64 " ms", dt / 1000);

        cr_assert_eq(call_int(c, a, "count", NULL), 10000);
        expect_journal(c, a, 7, 10000);
        expect_stats(c, a, 10000, false);
        cr_assert(poll_actor_uint(a, "LineageLength", 10000, HARNESS_TIMEOUT_MS));
        /* The next call sees the whole state. */
        cr_assert_eq(call_int(c, a, "add", "[7, 10000]"), 10001);
}

Test(lineage, failed_call_that_changed_the_state_is_kept_and_replayed) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 1);

        journal_add_n(c, a, 0, 0, 3);
        expect_error(harness_call(c, a, "add_then_fail", "[0, 3]"), KACTOR_ERROR_TASK_FAILED, "entry 4");
        journal_add_n(c, a, 0, 4, 3);
        cr_assert(poll_actor_uint(a, "LineageLength", 7, HARNESS_TIMEOUT_MS));

        kill_worker(a);
        wait_recovered(a, 1);
        expect_journal(c, a, 0, 7);
        expect_stats(c, a, 7, false);
}

/* --- State, Restarts, MaxRestarts, Kill ------------------------------------------------------ */

Test(lineage, state_goes_alive_restarting_alive) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 3);
        uint64_t deadline;
        Watch w;

        journal_add_n(c, a, 0, 0, 20);
        cr_assert_str_eq(actor_string(a, "State"), "alive");
        cr_assert_eq(actor_uint(a, "Restarts"), 0);
        cr_assert_eq(actor_uint(a, "MaxRestarts"), 3);

        watch_start(&w, a);
        kill_worker(a);
        deadline = now_usec() + HARNESS_TIMEOUT_USEC;
        while (w.n_states == 0 || !streq(w.states[w.n_states - 1], "alive"))
                cr_assert(watch_next(&w, deadline), "no State change to alive; seen %zu changes", w.n_states);
        watch_stop(&w);

        cr_assert_eq(w.n_states, 2, "State went through %zu changes, first %s", w.n_states, w.states[0]);
        cr_assert_str_eq(w.states[0], "restarting");
        cr_assert_str_eq(w.states[1], "alive");
        cr_assert(w.saw_restarts, "no PropertiesChanged for Restarts");
        cr_assert_eq(w.last_restarts, 1);
        cr_assert_eq(actor_uint(a, "Restarts"), 1);
        expect_journal(c, a, 0, 20);
}

Test(lineage, max_restarts_exhausted_kills_the_actor_and_fails_pending_and_new_calls) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 2);
        kactor_ref refs[4];

        journal_add_n(c, a, 0, 0, 5);
        /* crash() runs, dies, runs again after each restart: the third death is past MaxRestarts. The
         * adds queued behind it never run. */
        refs[0] = call_ref(c, a, "crash", NULL);
        for (size_t i = 1; i < ELEMENTSOF(refs); i++)
                refs[i] = call_ref(c, a, "add", harness_printf(h, "[0, %zu]", 4 + i));
        for (size_t i = 0; i < ELEMENTSOF(refs); i++)
                expect_error(harness_get(c, refs[i]), KACTOR_ERROR_ACTOR_DIED, "SIGSEGV");

        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS));
        cr_assert_eq(actor_uint(a, "Restarts"), 2);
        cr_assert(strstr(actor_string(a, "DeathCause"), "SIGSEGV"), "DeathCause: %s", actor_string(a, "DeathCause"));
        cr_assert_eq(actor_uint(a, "Pid"), 0);

        /* New calls fail at once, with the cause. */
        expect_error(harness_call(c, a, "add", "[0, 5]"), KACTOR_ERROR_ACTOR_DIED, "SIGSEGV");
        expect_error(harness_call(c, a, "count", NULL), KACTOR_ERROR_ACTOR_DIED, NULL);
        harness_assert_running(h);
}

Test(lineage, without_max_restarts_a_killed_actor_is_dead) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 0);

        journal_add_n(c, a, 0, 0, 5);
        kill_worker(a);
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS));
        cr_assert_eq(actor_uint(a, "Restarts"), 0);
        cr_assert(strstr(actor_string(a, "DeathCause"), "SIGKILL"), "DeathCause: %s", actor_string(a, "DeathCause"));
        expect_error(harness_call(c, a, "add", "[0, 5]"), KACTOR_ERROR_ACTOR_DIED, "SIGKILL");
}

Test(lineage, kill_without_no_restart_restarts_then_kills_when_no_restarts_are_left) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 1);

        journal_add_n(c, a, 0, 0, 10);
        pid_t before = (pid_t) call_int(c, a, "pid", NULL);

        cr_assert_eq(kactor_kill(c, a, false), 0, "kactor_kill: %s", kactor_client_error_message(c));
        cr_assert(harness_wait_pid_exit(before, HARNESS_TIMEOUT_MS), "the worker was not killed");
        wait_recovered(a, 1);
        cr_assert_neq(call_int(c, a, "pid", NULL), before);
        expect_journal(c, a, 0, 10);
        expect_stats(c, a, 10, false);

        /* MaxRestarts 1 is used up: this one is for good. */
        pid_t second = (pid_t) call_int(c, a, "pid", NULL);
        cr_assert_eq(kactor_kill(c, a, false), 0, "kactor_kill: %s", kactor_client_error_message(c));
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS));
        cr_assert(harness_wait_pid_exit(second, HARNESS_TIMEOUT_MS));
        cr_assert_eq(actor_uint(a, "Restarts"), 1);
        cr_assert_str_not_empty(actor_string(a, "DeathCause"));
        expect_error(harness_call(c, a, "count", NULL), KACTOR_ERROR_ACTOR_DIED, NULL);
}

Test(lineage, kill_with_no_restart_kills_for_good) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, -1);
        const char *path = harness_actor_path(h, a);

        journal_add_n(c, a, 0, 0, 10);
        pid_t pid = harness_actor_pid(h, a);

        harness_busctl_call_ok(h, path, ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS));
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS));
        cr_assert_eq(actor_uint(a, "Restarts"), 0);
        cr_assert_str_not_empty(actor_string(a, "DeathCause"));
        expect_error(harness_call(c, a, "add", "[0, 10]"), KACTOR_ERROR_ACTOR_DIED, NULL);
        /* And it stays dead. */
        cr_assert_str_eq(actor_string(a, "State"), "dead");
        cr_assert_eq(actor_uint(a, "Pid"), 0);
}

Test(lineage, failed_constructor_is_not_restarted) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "BadInit", NULL, -1);

        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS), "State %s",
                  actor_string(a, "State"));
        cr_assert_eq(actor_uint(a, "Restarts"), 0);
        cr_assert(strstr(actor_string(a, "DeathCause"), "always refuses"), "DeathCause: %s",
                  actor_string(a, "DeathCause"));
        expect_error(harness_call(c, a, "pid", NULL), KACTOR_ERROR_ACTOR_DIED, "always refuses");
}

/* --- read-only methods ----------------------------------------------------------------------- */

Test(lineage, read_only_calls_are_not_logged_or_replayed) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 1);

        journal_add_n(c, a, 0, 0, 20);
        uint64_t length = actor_uint(a, "LineageLength"), bytes = actor_uint(a, "LineageBytes");
        cr_assert_eq(length, 20);
        cr_assert_gt(bytes, 0);
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "LineageBytes"), bytes, "one actor holds all lineage");

        for (int i = 0; i < 30; i++) {
                cr_assert_eq(call_int(c, a, "count", NULL), 20);
                kactor_value_free(harness_call(c, a, "entries", NULL));
                kactor_value_free(harness_call(c, a, "pid", NULL));
        }
        cr_assert_eq(actor_uint(a, "LineageLength"), length);
        cr_assert_eq(actor_uint(a, "LineageBytes"), bytes);

        /* The new worker ran the 20 adds again, and nothing else. */
        kill_worker(a);
        wait_recovered(a, 1);
        expect_stats(c, a, 20, false);
        expect_journal(c, a, 0, 20);
}

/* --- checkpoints ----------------------------------------------------------------------------- */

/* n adds of 1..n one at a time: a checkpoint request follows the call that reaches the interval. */
static void saver_add_n(kactor_client *c, kactor_actor a, int64_t from, int64_t n, int64_t *counter) {
        for (int64_t i = from; i < from + n; i++) {
                *counter += i + 1;
                cr_assert_eq(call_int(c, a, "add", harness_printf(h, "[%" PRIi64 "]", i + 1)), *counter);
        }
}

/* The Saver holds counter and [1..n]. */
static void expect_saver(kactor_client *c, kactor_actor a, int64_t n, int64_t counter) {
        kactor_value *v = harness_call(c, a, "get", NULL);
        const kactor_value *list = kactor_value_list_get(v, 1);

        cr_assert_eq(kactor_value_list_size(v), 2, "get() returned %s", harness_value_str(h, v));
        cr_assert_eq(kactor_value_get_int(kactor_value_list_get(v, 0)), counter);
        cr_assert_eq(kactor_value_list_size(list), (size_t) n);
        for (int64_t i = 0; i < n; i++)
                cr_assert_eq(kactor_value_get_int(kactor_value_list_get(list, (size_t) i)), i + 1);
        kactor_value_free(v);
}

Test(lineage, checkpoint_then_suffix_replays_only_the_suffix) {
        /* Exactly where checkpoints fall is the relayed path's (see setup_relayed()). */
        setup_relayed();
        kactor_client *c = harness_client(h);
        kactor_actor a = create_on_bus("Saver", 100, 1);
        int64_t counter = 0;

        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "alive", HARNESS_TIMEOUT_MS));
        cr_assert_eq(actor_uint(a, "CheckpointInterval"), 100);
        saver_add_n(c, a, 0, 250, &counter);

        cr_assert_eq(actor_uint(a, "LineageLength"), 50);
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 200);
        cr_assert_gt(actor_uint(a, "LineageBytes"), 0);

        kill_worker(a);
        wait_recovered(a, 1);
        cr_assert_eq(actor_uint(a, "Restarts"), 1);
        expect_saver(c, a, 250, counter);
        /* Restored from the checkpoint at 200, then the 50 calls after it. */
        expect_stats(c, a, 50, true);
        cr_assert_eq(actor_uint(a, "LineageLength"), 50);
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 200);

        /* Checkpoints go on from there: 50 more calls reach the next one. Its request follows call 300,
         * so a read-only call returns after it is done. */
        saver_add_n(c, a, 250, 50, &counter);
        kactor_value_free(harness_call(c, a, "stats", NULL));
        cr_assert_eq(actor_uint(a, "LineageLength"), 0);
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 300);
        expect_saver(c, a, 300, counter);
}

Test(lineage, default_checkpoint_interval_is_1000) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Saver", NULL, 0);
        int64_t counter = 0;

        cr_assert_eq(actor_uint(a, "CheckpointInterval"), 1000);
        saver_add_n(c, a, 0, 20, &counter);
        /* The node manager has the results of direct calls a moment after their callers. */
        cr_assert(poll_actor_uint(a, "LineageLength", 20, HARNESS_TIMEOUT_MS));
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 0);
}

Test(lineage_interval, node_checkpoint_interval_applies_to_every_actor) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Saver", "[1000]", 1);
        int64_t counter = 1000;

        cr_assert_eq(actor_uint(a, "CheckpointInterval"), 100);
        saver_add_n(c, a, 0, 130, &counter);
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 100);
        cr_assert_eq(actor_uint(a, "LineageLength"), 30);

        kill_worker(a);
        wait_recovered(a, 1);
        expect_saver(c, a, 130, counter);
        expect_stats(c, a, 30, true);
}

Test(lineage_interval, kill_9_while_calls_and_checkpoints_are_in_flight) {
        enum { ROUNDS = 5, BATCH = 300 };
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Saver", NULL, -1);
        kactor_ref refs[BATCH];
        int64_t n = 0, counter = 0;

        /* Each round streams a batch (with checkpoint requests among the calls) and kills the worker
         * while it works through it: every result is still the running sum, once. */
        for (int round = 0; round < ROUNDS; round++) {
                kactor_value **values = NULL;
                pid_t pid = (pid_t) actor_uint(a, "Pid");

                /* The PID first, so that the kill follows the flush at once. */
                cr_assert_gt(pid, 0);
                for (int i = 0; i < BATCH; i++)
                        refs[i] = call_ref(c, a, "add", harness_printf(h, "[%" PRIi64 "]", n + i + 1));
                cr_assert_eq(kactor_flush(c), 0);
                cr_assert_eq(kill(pid, SIGKILL), 0, "kill %d: %m", (int) pid);
                int r = kactor_get(c, refs, BATCH, HARNESS_TIMEOUT_USEC, &values);
                cr_assert_eq(r, 0, "kactor_get: %s: %s", strerror(-r), kactor_client_error_message(c));
                for (int i = 0; i < BATCH; i++) {
                        counter += n + i + 1;
                        if (kactor_value_type(values[i]) != KACTOR_TYPE_INT || kactor_value_get_int(values[i]) != counter)
                                cr_assert_fail("round %d: add(%" PRIi64 ") returned %s, not %" PRIi64, round, n + i + 1,
                                               harness_value_str(h, values[i]), counter);
                }
                kactor_values_free(values, BATCH);
                (void) kactor_ref_release(c, refs, BATCH);
                n += BATCH;
                wait_recovered(a, (uint64_t) round + 1);
        }
        cr_assert_eq(actor_uint(a, "Restarts"), ROUNDS);
        expect_saver(c, a, n, counter);
        cr_assert_gt(actor_uint(a, "CheckpointIndex"), 0);
        cr_assert_lt(actor_uint(a, "LineageLength"), (uint64_t) n);
}

Test(lineage_interval, failing_save_turns_checkpoints_off_and_keeps_the_log) {
        kactor_client *c = harness_client(h);
        /* Saves work up to 149 entries: the checkpoint at 100 is taken, the one at 200 fails. */
        kactor_actor a = create(c, "FlakySaver", "[150]", 1);
        int64_t counter = 0;

        saver_add_n(c, a, 0, 250, &counter);
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 100);
        cr_assert_eq(actor_uint(a, "LineageLength"), 150, "the log after the last good checkpoint is kept");
        cr_assert_str_eq(actor_string(a, "State"), "alive");

        kill_worker(a);
        wait_recovered(a, 1);
        expect_saver(c, a, 250, counter);
        expect_stats(c, a, 150, true);
}

Test(lineage_interval, save_that_always_fails_replays_from_the_constructor) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "FlakySaver", "[0]", 1);
        int64_t counter = 0;

        saver_add_n(c, a, 0, 120, &counter);
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 0);
        cr_assert_eq(actor_uint(a, "LineageLength"), 120);

        kill_worker(a);
        wait_recovered(a, 1);
        expect_saver(c, a, 120, counter);
        expect_stats(c, a, 120, false);
}

Test(lineage_no_checkpoints, checkpoint_interval_0_turns_checkpoints_off) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Saver", NULL, 1);
        int64_t counter = 0;

        cr_assert_eq(actor_uint(a, "CheckpointInterval"), 0);
        saver_add_n(c, a, 0, 1100, &counter);
        kactor_value_free(harness_call(c, a, "stats", NULL));
        cr_assert_eq(actor_uint(a, "CheckpointIndex"), 0);
        cr_assert_eq(actor_uint(a, "LineageLength"), 1100);

        kill_worker(a);
        wait_recovered(a, 1);
        expect_saver(c, a, 1100, counter);
        expect_stats(c, a, 1100, false);
}

/* --- lineage memory -------------------------------------------------------------------------- */

Test(lineage_memory, actor_without_save_hooks_gets_insufficient_resources) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, 0);
        kactor_value *v = NULL;
        int64_t n;

        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "LineageMemoryMax"), LINEAGE_MEMORY);
        /* Each add keeps a record; within a few hundred the node's limit is reached. */
        for (n = 0; n < 2000; n++) {
                v = harness_call(c, a, "add", harness_printf(h, "[0, %" PRIi64 "]", n));
                if (kactor_value_is_error(v))
                        break;
                cr_assert_eq(value_int(v), n + 1);
                kactor_value_free(v);
                v = NULL;
        }
        cr_assert_not_null(v, "2000 calls were logged under a %d-byte limit", LINEAGE_MEMORY);
        cr_assert_gt(n, 0);
        harness_assert_error(v, KACTOR_ERROR_INSUFFICIENT_RESOURCES, LINEAGE_MEMORY_STRING);
        kactor_value_free(v);
        cr_assert_geq(harness_property_uint(h, MGR, IFACE, "LineageBytes"), LINEAGE_MEMORY);
        cr_assert_eq(actor_uint(a, "LineageLength"), (uint64_t) n, "the refused call was not logged");
        /* Still refused, still alive. */
        expect_error(harness_call(c, a, "add", "[0, 9999]"), KACTOR_ERROR_INSUFFICIENT_RESOURCES, NULL);
        cr_assert_str_eq(actor_string(a, "State"), "alive");
        cr_assert_eq(actor_uint(a, "LineageLength"), (uint64_t) n);
}

Test(lineage_memory, actor_with_save_hooks_keeps_working_and_its_lineage_stays_bounded) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Saver", NULL, 1);
        uint64_t max_bytes = 0, max_node = 0;
        int64_t counter = 0;

        for (int64_t i = 0; i < 400; i++) {
                saver_add_n(c, a, i, 1, &counter);
                max_bytes = MAX(max_bytes, actor_uint(a, "LineageBytes"));
                max_node = MAX(max_node, harness_property_uint(h, MGR, IFACE, "LineageBytes"));
        }
        /* 400 records would be far more; forced checkpoints keep it near the limit (a record over it at
         * most, until the checkpoint lands). */
        cr_assert_leq(max_bytes, LINEAGE_MEMORY + 512, "the actor's lineage grew to %" PRIu64 " bytes", max_bytes);
        cr_assert_leq(max_node, LINEAGE_MEMORY + 512, "the node's lineage grew to %" PRIu64 " bytes", max_node);
        cr_assert_gt(actor_uint(a, "CheckpointIndex"), 0);
        cr_assert_lt(actor_uint(a, "LineageLength"), 400);

        kill_worker(a);
        wait_recovered(a, 1);
        expect_saver(c, a, 400, counter);
        expect_stats(c, a, (int64_t) actor_uint(a, "LineageLength"), true);
}

Test(lineage_memory, saver_keeps_working_while_another_actor_holds_the_memory) {
        kactor_client *c = harness_client(h);
        kactor_actor j = create(c, "Journal", NULL, 0), s = create(c, "Saver", NULL, 0);
        kactor_value *v = NULL;
        int64_t counter = 0;

        /* The Journal fills the node's lineage memory. */
        for (int64_t n = 0; n < 2000; n++) {
                v = harness_call(c, j, "add", harness_printf(h, "[0, %" PRIi64 "]", n));
                if (kactor_value_is_error(v))
                        break;
                kactor_value_free(v);
                v = NULL;
        }
        cr_assert_not_null(v, "the Journal was never refused");
        expect_error(v, KACTOR_ERROR_INSUFFICIENT_RESOURCES, NULL);

        /* Every Saver call is admitted and followed by a checkpoint. */
        for (int64_t i = 0; i < 100; i++) {
                saver_add_n(c, s, i, 1, &counter);
                cr_assert_leq(actor_uint(s, "LineageLength"), 2, "after call %" PRIi64, i + 1);
        }
        expect_saver(c, s, 100, counter);
        /* The node's total is what the actors hold. */
        kactor_value_free(harness_call(c, s, "stats", NULL)); /* the last checkpoint came back before this */
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "LineageBytes"),
                     actor_uint(j, "LineageBytes") + actor_uint(s, "LineageBytes"));
}

Test(lineage_memory, actor_killed_for_good_gives_its_lineage_memory_back) {
        kactor_client *c = harness_client(h);
        kactor_actor a = create(c, "Journal", NULL, -1), b;
        kactor_value *v = NULL;

        /* It fills the node's lineage memory (its results are all released: nothing could need its log). */
        for (int64_t n = 0; n < 2000; n++) {
                v = harness_call(c, a, "add", harness_printf(h, "[0, %" PRIi64 "]", n));
                if (kactor_value_is_error(v))
                        break;
                kactor_value_free(v);
                v = NULL;
        }
        cr_assert_not_null(v, "the Journal was never refused");
        expect_error(v, KACTOR_ERROR_INSUFFICIENT_RESOURCES, NULL);

        cr_assert_eq(kactor_kill(c, a, true), 0);
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS));
        cr_assert_eq(kactor_actor_release(c, a), 0);
        /* A dead actor is never replayed: its log must not keep the node at its limit. */
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "LineageBytes"), 0, "LineageBytes %" PRIu64 " after death",
                     harness_property_uint(h, MGR, IFACE, "LineageBytes"));
        b = create(c, "Journal", NULL, 0);
        journal_add_n(c, b, 1, 0, 20);
}

Test(lineage_memory, reaching_the_limit_checkpoints_idle_actors_that_can_save) {
        kactor_client *c = harness_client(h);
        kactor_actor s = create(c, "Saver", NULL, 0), j = create(c, "Journal", NULL, 0);
        kactor_value *v = NULL;
        int64_t counter = 0, n;

        /* The Saver keeps some lineage, under the limit, then is idle. */
        saver_add_n(c, s, 0, 20, &counter);
        cr_assert_eq(actor_uint(s, "LineageLength"), 20);
        cr_assert_lt(harness_property_uint(h, MGR, IFACE, "LineageBytes"), LINEAGE_MEMORY);

        /* The Journal's calls take the node to its limit: the Saver, which can checkpoint, is
         * checkpointed then, so the Journal gets the Saver's share as well before it is refused. */
        for (n = 0; n < 2000; n++) {
                v = harness_call(c, j, "add", harness_printf(h, "[0, %" PRIi64 "]", n));
                if (kactor_value_is_error(v))
                        break;
                kactor_value_free(v);
                v = NULL;
        }
        cr_assert_not_null(v, "the Journal was never refused");
        expect_error(v, KACTOR_ERROR_INSUFFICIENT_RESOURCES, NULL);
        /* Not a call to the Saver: that would force its checkpoint by itself. LineageLength sends no
         * PropertiesChanged, so this polls it. */
        cr_assert(poll_actor_uint(s, "LineageLength", 0, 2000),
                  "the idle Saver still holds %" PRIu64 " records (%" PRIu64 " bytes) while the Journal is refused",
                  actor_uint(s, "LineageLength"), actor_uint(s, "LineageBytes"));
        cr_assert_eq(actor_uint(s, "CheckpointIndex"), 20);
        expect_saver(c, s, 20, counter);
}

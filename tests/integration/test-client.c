/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libkactor against a real node manager: the seed semantics (call order, parallelism, handles,
 * lifetime, GPUs), object references, put/get/wait, failures and crashes, as a C program using
 * <kactor/client.h> sees them.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "macro.h"

static Harness *h;

static void setup(void) {
        h = harness_start(NULL);
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 60);

/* --- helpers --------------------------------------------------------------------------------- */

static const struct kactor_actor_opts owned = {.sz = sizeof(struct kactor_actor_opts)};

static kactor_ref call_ref(kactor_client *c, kactor_actor a, const char *method, const char *args_json) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL;
        kactor_ref ref;
        int r;

        r = kactor_call(c, a, method, args, &ref);
        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_call(%s): %s", method, strerror(-r));
        return ref;
}

/* Calls with an argument list made of values (taking ownership of them). */
static kactor_ref call_with(kactor_client *c, kactor_actor a, const char *method, size_t n, ...) {
        kactor_value *args = kactor_value_new_list();
        kactor_ref ref;
        va_list ap;
        int r;

        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(kactor_value_list_append(args, va_arg(ap, kactor_value *)), 0);
        va_end(ap);
        r = kactor_call(c, a, method, args, &ref);
        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_call(%s): %s", method, strerror(-r));
        return ref;
}

static kactor_ref submit_with(kactor_client *c, const char *function, size_t n, ...) {
        kactor_value *args = kactor_value_new_list();
        kactor_ref ref;
        va_list ap;
        int r;

        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(kactor_value_list_append(args, va_arg(ap, kactor_value *)), 0);
        va_end(ap);
        r = kactor_submit(c, "testmod", function, args, NULL, &ref);
        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_submit(%s): %s: %s", function, strerror(-r),
                     kactor_client_error_message(c));
        return ref;
}

static kactor_value *str(const char *s) {
        return kactor_value_new_string(s);
}

static kactor_value *i64(int64_t i) {
        return kactor_value_new_int(i);
}

/* Gets and frees a value, asserting it equals json. */
#define assert_get(c, ref, json)                                                                            \
        do {                                                                                                \
                kactor_value *_v = harness_get((c), (ref));                                                 \
                harness_assert_value(_v, (json));                                                           \
                kactor_value_free(_v);                                                                      \
        } while (0)

#define assert_call(c, a, method, args_json, json)                                                          \
        do {                                                                                                \
                kactor_value *_v = harness_call((c), (a), (method), (args_json));                           \
                harness_assert_value(_v, (json));                                                           \
                kactor_value_free(_v);                                                                      \
        } while (0)

/* --- the seed: counters ---------------------------------------------------------------------- */

Test(client, ten_fresh_counters_give_ones_then_one_counts_on) {
        kactor_client *c = harness_client(h);
        kactor_actor counters[10];
        kactor_ref refs[10];
        kactor_value **values = NULL;
        int r;

        for (size_t i = 0; i < 10; i++)
                counters[i] = harness_create(h, c, "counter", "Counter", NULL, NULL);
        for (size_t i = 0; i < 10; i++)
                refs[i] = call_ref(c, counters[i], "increment", NULL);
        r = kactor_get(c, refs, 10, HARNESS_TIMEOUT_USEC, &values);
        cr_assert_eq(r, 0, "kactor_get: %s", strerror(-r));
        for (size_t i = 0; i < 10; i++)
                harness_assert_value(values[i], "1");
        kactor_values_free(values, 10);

        for (size_t i = 0; i < 5; i++)
                refs[i] = call_ref(c, counters[0], "increment", NULL);
        r = kactor_get(c, refs, 5, HARNESS_TIMEOUT_USEC, &values);
        cr_assert_eq(r, 0, "kactor_get: %s", strerror(-r));
        for (size_t i = 0; i < 5; i++)
                harness_assert_value(values[i], harness_printf(h, "%zu", i + 2));
        kactor_values_free(values, 5);
}

Test(client, thousand_pending_calls_run_in_submission_order) {
        kactor_client *c = harness_client(h);
        kactor_actor counter = harness_create(h, c, "counter", "Counter", NULL, NULL);
        kactor_ref *refs = calloc(1000, sizeof(kactor_ref));
        kactor_value **values = NULL;
        int r;

        cr_assert_not_null(refs);
        for (size_t i = 0; i < 1000; i++)
                refs[i] = call_ref(c, counter, "increment", NULL);
        r = kactor_get(c, refs, 1000, HARNESS_TIMEOUT_USEC, &values);
        cr_assert_eq(r, 0, "kactor_get: %s", strerror(-r));
        for (size_t i = 0; i < 1000; i++) {
                int64_t v = -1;
                cr_assert_eq(kactor_value_as_int(values[i], &v), 0, "result %zu is %s", i,
                             harness_value_str(h, values[i]));
                cr_assert_eq(v, (int64_t)i + 1, "result %zu is %lld, expected %zu", i, (long long)v, i + 1);
        }
        kactor_values_free(values, 1000);
        free(refs);
}

Test(client, each_callers_calls_keep_their_order) {
        kactor_client *a = harness_client(h), *b = harness_client(h);
        kactor_actor rec = harness_create(
                h, a, "testmod", "Recorder", NULL,
                &(struct kactor_actor_opts){.sz = sizeof(struct kactor_actor_opts), .name = "rec"});
        kactor_actor rec_b;
        kactor_value *records;
        kactor_ref last_a = {}, last_b = {};
        int64_t next[2] = {0, 0};

        cr_assert_eq(kactor_get_actor(b, "rec", &rec_b), 0);
        /* Interleave the two callers' submissions, sending as they go. */
        for (int64_t i = 0; i < 200; i++) {
                last_a = call_ref(a, rec, "record", harness_printf(h, "[0, %lld]", (long long)i));
                last_b = call_ref(b, rec_b, "record", harness_printf(h, "[1, %lld]", (long long)i));
                if (i % 50 == 49) {
                        cr_assert_eq(kactor_flush(a), 0);
                        cr_assert_eq(kactor_flush(b), 0);
                }
        }
        /* Each caller's last call done means all its calls are done. */
        kactor_value_free(harness_get(a, last_a));
        kactor_value_free(harness_get(b, last_b));
        records = harness_call(a, rec, "records", NULL);
        cr_assert_eq(kactor_value_list_size(records), 400, "%zu of 400 calls recorded",
                     kactor_value_list_size(records));
        for (size_t i = 0; i < 400; i++) {
                const kactor_value *rcd = kactor_value_list_get(records, i);
                int64_t who = kactor_value_get_int(kactor_value_list_get(rcd, 0));
                int64_t seq = kactor_value_get_int(kactor_value_list_get(rcd, 1));

                cr_assert(who == 0 || who == 1);
                cr_assert_eq(seq, next[who], "caller %lld's call %lld ran where %lld was due",
                             (long long)who, (long long)seq, (long long)next[who]);
                next[who]++;
        }
        kactor_value_free(records);
}

/* --- parallelism ----------------------------------------------------------------------------- */

/* A fresh dir for a rendezvous. */
static const char *meeting_dir(const char *name) {
        const char *d = harness_printf(h, "%s/%s", h->dir, name);

        cr_assert_eq(mkdir(d, 0777), 0, "mkdir %s: %m", d);
        return d;
}

Test(client, calls_on_different_actors_run_at_the_same_time) {
        kactor_client *c = harness_client(h);
        kactor_actor s1 = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        kactor_actor s2 = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        const char *dir = meeting_dir("actors");
        kactor_ref r1, r2;

        /* Each waits (up to 5 s) for the other to have started: both succeed only when they overlap. */
        r1 = call_with(c, s1, "rendezvous", 4, str(dir), str("one"), str("two"), i64(5000));
        r2 = call_with(c, s2, "rendezvous", 4, str(dir), str("two"), str("one"), i64(5000));
        assert_get(c, r1, "true");
        assert_get(c, r2, "true");
}

Test(client, calls_on_one_actor_never_overlap) {
        kactor_client *c = harness_client(h);
        kactor_actor s = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        const char *dir = meeting_dir("serial");
        kactor_ref r1, r2;

        /* The first call waits for the second, which cannot start before the first ends. */
        r1 = call_with(c, s, "rendezvous", 4, str(dir), str("one"), str("two"), i64(500));
        r2 = call_with(c, s, "rendezvous", 4, str(dir), str("two"), str("one"), i64(500));
        assert_get(c, r1, "false");
        assert_get(c, r2, "true");
}

Test(client, tasks_run_at_the_same_time) {
        kactor_client *c = harness_client(h);
        const char *dir = meeting_dir("tasks");
        kactor_ref r1, r2;

        r1 = submit_with(c, "rendezvous", 4, str(dir), str("one"), str("two"), i64(5000));
        r2 = submit_with(c, "rendezvous", 4, str(dir), str("two"), str("one"), i64(5000));
        assert_get(c, r1, "true");
        assert_get(c, r2, "true");
}

Test(client, tasks_that_need_every_cpu_run_one_at_a_time) {
        kactor_client *c = harness_client(h);
        const char *dir = meeting_dir("cpus");
        struct kactor_task_opts opts = { .sz = sizeof(opts), .num_cpus = 1000 }; /* more than the node has */
        kactor_ref r1, r2;
        kactor_value *args;

        /* One such task runs at a time: the first waits for the second in vain, then the second
         * finds the first's mark. */
        args = kactor_value_new_list();
        kactor_value_list_append(args, str(dir));
        kactor_value_list_append(args, str("one"));
        kactor_value_list_append(args, str("two"));
        kactor_value_list_append(args, i64(500));
        cr_assert_eq(kactor_submit(c, "testmod", "rendezvous", args, &opts, &r1), 0);
        kactor_value_free(args);
        args = kactor_value_new_list();
        kactor_value_list_append(args, str(dir));
        kactor_value_list_append(args, str("two"));
        kactor_value_list_append(args, str("one"));
        kactor_value_list_append(args, i64(500));
        cr_assert_eq(kactor_submit(c, "testmod", "rendezvous", args, &opts, &r2), 0);
        kactor_value_free(args);
        assert_get(c, r1, "false");
        assert_get(c, r2, "true");
}

Test(client, tasks_return_results_and_failures) {
        kactor_client *c = harness_client(h);
        kactor_value *v;
        kactor_ref r;

        assert_get(c, submit_with(c, "add", 2, i64(20), i64(22)), "42");
        assert_get(c, submit_with(c, "echo", 3, str("a"), i64(1), harness_value("{\"k\": [true, null]}")),
                   "[\"a\", 1, {\"k\": [true, null]}]");
        r = submit_with(c, "fail", 1, str("no luck today"));
        v = harness_get(c, r);
        harness_assert_error(v, KACTOR_ERROR_TASK_FAILED, "no luck today");
        kactor_value_free(v);
}

/* --- objects: put, get, wait, references ----------------------------------------------------- */

Test(client, put_and_get_round_trip_values) {
        static const char *const cases[] = {
                "null",
                "true",
                "false",
                "0",
                "-9223372036854775807",
                "9223372036854775807",
                "2.5",
                "-0.125",
                "\"\"",
                "\"héllo, wörld\"",
                "[]",
                "{}",
                "[1, [2, [3, []]], {\"a\": {\"b\": null}}]",
        };
        kactor_client *c = harness_client(h);
        const unsigned char raw[] = {0, 1, 2, 0xfe, 0xff, 0};
        kactor_value *bytes = kactor_value_new_bytes(raw, sizeof(raw)), *got;
        kactor_ref r;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                kactor_value *v = harness_value(cases[i]);

                cr_assert_eq(kactor_put(c, v, &r), 0);
                kactor_value_free(v);
                assert_get(c, r, cases[i]);
        }
        cr_assert_eq(kactor_put(c, bytes, &r), 0);
        got = harness_get(c, r);
        cr_assert(kactor_value_equal(got, bytes), "bytes came back as %s", harness_value_str(h, got));
        kactor_value_free(got);
        kactor_value_free(bytes);
}

Test(client, get_and_wait_honour_timeouts) {
        kactor_client *c = harness_client(h);
        kactor_actor s = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        kactor_value *one = harness_value("1"), **values = NULL, *v = NULL;
        kactor_ref refs[2];
        bool ready[2] = {true, true};
        int r;

        /* Alive first: the call goes direct, and the Waits mix a direct call with a put. */
        (void) harness_actor_pid(h, s);
        refs[0] = call_ref(c, s, "sleep_then", "[800, \"slow\"]");
        cr_assert_eq(kactor_put(c, one, &refs[1]), 0);
        kactor_value_free(one);

        r = kactor_get1(c, refs[0], 50000, &v);
        cr_assert_eq(r, -ETIMEDOUT, "kactor_get1 of a pending call returned %d", r);
        r = kactor_get(c, refs, 2, 50000, &values);
        cr_assert_eq(r, -ETIMEDOUT, "kactor_get of a pending call returned %d", r);

        r = kactor_wait(c, refs, 2, 1, HARNESS_TIMEOUT_USEC, ready);
        cr_assert_eq(r, 1, "kactor_wait returned %d", r);
        cr_assert(!ready[0] && ready[1], "ready flags %d %d", ready[0], ready[1]);
        r = kactor_wait(c, refs, 2, 2, 50000, ready);
        cr_assert_eq(r, 1, "kactor_wait with a short timeout returned %d", r);

        r = kactor_wait(c, refs, 2, 2, 0, ready);
        cr_assert_eq(r, 2, "kactor_wait without timeout returned %d", r);
        cr_assert(ready[0] && ready[1]);
        r = kactor_get(c, refs, 2, 0, &values);
        cr_assert_eq(r, 0);
        harness_assert_value(values[0], "\"slow\"");
        harness_assert_value(values[1], "1");
        kactor_values_free(values, 2);
}

Test(client, released_refs_are_gone) {
        kactor_client *c = harness_client(h);
        kactor_value *v = harness_value("[7]"), *got = NULL;
        kactor_ref r;
        int rc;

        cr_assert_eq(kactor_put(c, v, &r), 0);
        kactor_value_free(v);
        assert_get(c, r, "[7]");
        cr_assert_eq(kactor_ref_release(c, &r, 1), 0);
        rc = kactor_get1(c, r, 1000000, &got);
        if (rc == 0) {
                harness_assert_error(got, KACTOR_ERROR_NO_SUCH_OBJECT, NULL);
                kactor_value_free(got);
        } else {
                cr_assert_eq(rc, -EREMOTEIO, "get of a released ref: %s", strerror(-rc));
                cr_assert_eq(kactor_client_error(c), KACTOR_ERROR_NO_SUCH_OBJECT, "error %s: %s",
                             kactor_error_name(kactor_client_error(c)), kactor_client_error_message(c));
        }
}

Test(client, references_in_arguments_are_resolved_before_the_call) {
        kactor_client *c = harness_client(h);
        kactor_actor echo = harness_create(h, c, "testmod", "Echo", NULL, NULL);
        kactor_actor sleeper = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        kactor_value *v = harness_value("{\"answer\": 41}"), *got, *nested;
        kactor_ref put, late, r;

        cr_assert_eq(kactor_put(c, v, &put), 0);
        kactor_value_free(v);
        late = call_ref(c, sleeper, "sleep_then", "[300, \"late\"]");

        /* Top-level refs become their values, a pending one once it is ready. */
        r = call_with(c, echo, "echo", 3, kactor_value_new_ref(put), kactor_value_new_ref(late), i64(3));
        assert_get(c, r, "[{\"answer\": 41}, \"late\", 3]");
        /* The same ref in a task's arguments. */
        assert_get(c, submit_with(c, "echo", 1, kactor_value_new_ref(late)), "[\"late\"]");

        /* A nested ref is passed as it is. */
        nested = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(nested, kactor_value_new_ref(put)), 0);
        r = call_with(c, echo, "echo", 1, nested);
        got = harness_get(c, r);
        cr_assert_eq(kactor_value_list_size(got), 1, "%s", harness_value_str(h, got));
        {
                const kactor_value *inner = kactor_value_list_get(kactor_value_list_get(got, 0), 0);
                cr_assert_eq(kactor_value_type(inner), KACTOR_TYPE_OBJECT, "nested ref came as %s",
                             harness_value_str(h, got));
                cr_assert(kactor_id_equal(kactor_value_get_id(inner), put.id));
        }
        kactor_value_free(got);
}

Test(client, a_failed_call_fails_calls_that_take_its_result) {
        kactor_client *c = harness_client(h);
        kactor_actor f = harness_create(h, c, "testmod", "Failer", NULL, NULL);
        kactor_actor echo = harness_create(h, c, "testmod", "Echo", NULL, NULL);
        kactor_ref bad = call_ref(c, f, "fail", "[\"upstream broke\"]");
        kactor_value *v;

        v = harness_get(c, call_with(c, echo, "echo", 1, kactor_value_new_ref(bad)));
        cr_assert(kactor_value_is_error(v), "a call on a failed result got %s", harness_value_str(h, v));
        cr_assert(strstr(kactor_value_error_message(v), "upstream broke"), "message: %s",
                  kactor_value_error_message(v));
        kactor_value_free(v);
        assert_call(c, echo, "echo", "[1]", "[1]");
}

/* --- handles --------------------------------------------------------------------------------- */

Test(client, handles_pass_to_tasks_and_to_other_actors) {
        kactor_client *c = harness_client(h);
        kactor_actor counter = harness_create(h, c, "counter", "Counter", NULL, NULL);
        kactor_value *args = kactor_value_new_list();
        kactor_actor holder;

        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_actor_handle(counter)), 0);
        cr_assert_eq(kactor_create_actor(c, "testmod", "Holder", args, NULL, &holder), 0);
        kactor_value_free(args);

        assert_get(c,
                   submit_with(c, "call_actor", 2, kactor_value_new_actor_handle(counter), str("increment")),
                   "1");
        assert_call(c, holder, "call", "[\"increment\"]", "2");
        assert_call(c, counter, "increment", NULL, "3");
        /* A handle given to a method later. */
        {
                kactor_actor other = harness_create(h, c, "counter", "Counter", "[100]", NULL);
                assert_get(c, call_with(c, holder, "set", 1, kactor_value_new_actor_handle(other)), "null");
                assert_call(c, holder, "call", "[\"increment\"]", "101");
        }
}

Test(client, handles_come_back_from_tasks_and_methods_and_live_in_values) {
        kactor_client *c = harness_client(h);
        kactor_value *v, *m;
        kactor_actor made, again;
        kactor_ref r;

        /* A task creates an actor and returns its handle. */
        v = harness_get(c, submit_with(c, "make_actor", 2, str("counter"), str("Counter")));
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_ACTOR, "make_actor returned %s",
                     harness_value_str(h, v));
        made = kactor_value_get_actor(v);
        kactor_value_free(v);
        assert_call(c, made, "increment", NULL, "1");

        /* Stored in a value, and taken out again. */
        m = kactor_value_new_map();
        cr_assert_eq(kactor_value_map_set(m, "h", kactor_value_new_actor_handle(made)), 0);
        cr_assert_eq(kactor_put(c, m, &r), 0);
        kactor_value_free(m);
        v = harness_get(c, r);
        again = kactor_value_get_actor(kactor_value_map_get(v, "h"));
        cr_assert(kactor_id_equal(again.id, made.id), "the stored handle came back as %s",
                  harness_value_str(h, v));
        kactor_value_free(v);
        assert_call(c, again, "increment", NULL, "2");

        /* A method returns a handle it holds, and its own. */
        {
                kactor_value *args = kactor_value_new_list();
                kactor_actor holder;

                cr_assert_eq(kactor_value_list_append(args, kactor_value_new_actor_handle(made)), 0);
                cr_assert_eq(kactor_create_actor(c, "testmod", "Holder", args, NULL, &holder), 0);
                kactor_value_free(args);
                v = harness_call(c, holder, "handle", NULL);
                cr_assert(kactor_id_equal(kactor_value_get_actor(v).id, made.id), "%s",
                          harness_value_str(h, v));
                kactor_value_free(v);
                v = harness_call(c, holder, "self", NULL);
                cr_assert(kactor_id_equal(kactor_value_get_actor(v).id, holder.id), "%s",
                          harness_value_str(h, v));
                kactor_value_free(v);
        }
        assert_call(c, made, "increment", NULL, "3");
}

Test(client, four_tasks_share_one_counter) {
        kactor_client *c = harness_client(h);
        kactor_actor counter = harness_create(h, c, "counter", "Counter", NULL, NULL);
        bool seen[401] = {};
        kactor_value **values = NULL;
        kactor_ref refs[4];
        int r;

        for (size_t i = 0; i < 4; i++)
                refs[i] = submit_with(c, "call_n", 3, kactor_value_new_actor_handle(counter),
                                      str("increment"), i64(100));
        r = kactor_get(c, refs, 4, HARNESS_TIMEOUT_USEC * 3, &values);
        cr_assert_eq(r, 0, "kactor_get: %s", strerror(-r));
        /* Every value 1..400 was handed out exactly once, and each task saw its own calls in order. */
        for (size_t i = 0; i < 4; i++) {
                int64_t last = 0;

                cr_assert_eq(kactor_value_list_size(values[i]), 100, "task %zu returned %s", i,
                             harness_value_str(h, values[i]));
                for (size_t k = 0; k < 100; k++) {
                        int64_t x = kactor_value_get_int(kactor_value_list_get(values[i], k));
                        cr_assert(x > last && x <= 400, "task %zu saw %lld after %lld", i, (long long)x,
                                  (long long)last);
                        cr_assert(!seen[x], "value %lld handed out twice", (long long)x);
                        seen[x] = true;
                        last = x;
                }
        }
        kactor_values_free(values, 4);
        assert_call(c, counter, "get", NULL, "400");
}

/* --- lifetime -------------------------------------------------------------------------------- */

Test(client, owned_actor_stops_after_its_last_handle_and_pending_calls) {
        kactor_client *c = harness_client(h);
        kactor_actor s = harness_create(h, c, "testmod", "Sleeper", NULL, &owned);
        pid_t pid = harness_actor_pid(h, s);
        kactor_ref pending = call_ref(c, s, "sleep_then", "[300, \"finished\"]");

        cr_assert_eq(kactor_actor_release(c, s), 0);
        /* The call made before the release still completes. */
        assert_get(c, pending, "\"finished\"");
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS),
                  "the worker still runs after the last handle was released");
}

Test(client, closing_a_client_releases_its_handles) {
        kactor_client *a = harness_client(h), *b = harness_client(h);
        struct kactor_actor_opts named = {.sz = sizeof(named), .name = "shared"};
        kactor_actor shared = harness_create(h, a, "testmod", "Sleeper", NULL, &named);
        kactor_actor mine = harness_create(h, a, "testmod", "Sleeper", NULL, &owned);
        pid_t shared_pid = harness_actor_pid(h, shared), mine_pid = harness_actor_pid(h, mine);
        kactor_actor shared_b;

        cr_assert_eq(kactor_get_actor(b, "shared", &shared_b), 0);
        harness_client_close(h, a);

        /* Only a held `mine`: it stops. b still holds `shared`: it lives. */
        cr_assert(harness_wait_pid_exit(mine_pid, HARNESS_TIMEOUT_MS),
                  "an actor of a closed client still runs");
        assert_call(b, shared_b, "ping", NULL, "\"pong\"");
        cr_assert(harness_pid_alive(shared_pid));

        harness_client_close(h, b);
        cr_assert(harness_wait_pid_exit(shared_pid, HARNESS_TIMEOUT_MS),
                  "an actor still runs after every client that held it closed");
}

Test(client, detached_actor_outlives_its_creator) {
        kactor_client *a = harness_client(h), *b;
        struct kactor_actor_opts detached = {.sz = sizeof(detached), .name = "stays", .detached = true};
        kactor_actor s = harness_create(h, a, "counter", "Counter", NULL, &detached), sb;
        pid_t pid = harness_actor_pid(h, s);

        assert_call(a, s, "increment", NULL, "1");
        harness_client_close(h, a);

        b = harness_client(h);
        cr_assert_eq(kactor_get_actor(b, "stays", &sb), 0, "the detached actor is gone: %s",
                     kactor_client_error_message(b));
        assert_call(b, sb, "increment", NULL, "2");
        cr_assert(harness_pid_alive(pid));
        harness_client_close(h, b);
        cr_assert(!harness_wait_pid_exit(pid, 300), "a detached actor stopped when its clients left");

        /* Until it is killed. */
        b = harness_client(h);
        cr_assert_eq(kactor_get_actor(b, "stays", &sb), 0);
        cr_assert_eq(kactor_kill(b, sb, true), 0);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS), "a killed actor still runs");
}

/* --- failures -------------------------------------------------------------------------------- */

Test(client, crashed_worker_fails_calls_with_actor_died) {
        kactor_client *c = harness_client(h);
        kactor_actor x = harness_create(h, c, "testmod", "Crasher", NULL, NULL);
        kactor_ref crash, after;
        kactor_value *v;

        assert_call(c, x, "ping", NULL, "\"pong\"");
        crash = call_ref(c, x, "crash", NULL);
        after = call_ref(c, x, "ping", NULL);
        v = harness_get(c, crash);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, "signal 11");
        kactor_value_free(v);
        /* What was queued behind the crash fails too, and so do new calls. */
        v = harness_get(c, after);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, NULL);
        kactor_value_free(v);
        v = harness_call(c, x, "ping", NULL);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, NULL);
        kactor_value_free(v);
        /* Others are not affected. */
        assert_get(c, submit_with(c, "add", 2, i64(1), i64(1)), "2");
}

Test(client, worker_that_exits_fails_its_call_with_actor_died) {
        kactor_client *c = harness_client(h);
        kactor_actor x = harness_create(h, c, "testmod", "Crasher", NULL, NULL);
        kactor_value *v = harness_call(c, x, "exit_now", "[3]");

        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, NULL);
        kactor_value_free(v);
}

Test(client, failing_methods_give_task_failed_and_the_actor_lives_on) {
        kactor_client *c = harness_client(h);
        kactor_actor f = harness_create(h, c, "testmod", "Failer", NULL, NULL);
        kactor_value *v;

        v = harness_call(c, f, "fail", "[\"quota exceeded: 3 > 2\"]");
        harness_assert_error(v, KACTOR_ERROR_TASK_FAILED, "quota exceeded: 3 > 2");
        kactor_value_free(v);
        v = harness_call(c, f, "fail_errno", NULL);
        harness_assert_error(v, KACTOR_ERROR_TASK_FAILED, NULL);
        kactor_value_free(v);
        assert_call(c, f, "ok", NULL, "\"ok\"");
}

Test(client, kill_fails_pending_calls) {
        kactor_client *c = harness_client(h);
        kactor_actor s = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        pid_t pid = harness_actor_pid(h, s);
        kactor_ref busy = call_ref(c, s, "sleep", "[5000]"), queued = call_ref(c, s, "ping", NULL);
        kactor_value *v;

        cr_assert_eq(kactor_flush(c), 0);
        cr_assert_eq(kactor_kill(c, s, true), 0, "kactor_kill: %s", kactor_client_error_message(c));
        v = harness_get(c, busy);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, NULL);
        kactor_value_free(v);
        v = harness_get(c, queued);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, NULL);
        kactor_value_free(v);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS), "a killed actor's worker still runs");
}

/* --- GPUs and names -------------------------------------------------------------------------- */

/* The ids an actor reports, checking that CUDA_VISIBLE_DEVICES says the same. */
static void assert_gpus(kactor_client *c, kactor_actor a, const char *ids_json, const char *cuda) {
        kactor_value *v = harness_call(c, a, "gpus", NULL);
        const kactor_value *cv = kactor_value_map_get(v, "cuda");

        harness_assert_value(kactor_value_map_get(v, "ids"), ids_json);
        if (cuda)
                cr_assert(kactor_value_type(cv) == KACTOR_TYPE_STRING &&
                                  streq(kactor_value_get_string(cv, NULL), cuda),
                          "CUDA_VISIBLE_DEVICES is %s, expected \"%s\"", harness_value_str(h, cv), cuda);
        kactor_value_free(v);
}

Test(client, gpus_are_reserved_and_visible_inside_the_actor) {
        kactor_client *c = harness_client(h);
        struct kactor_actor_opts one = {.sz = sizeof(one), .num_gpus = 1},
                                 two = {.sz = sizeof(two), .num_gpus = 2};
        kactor_actor g1 = harness_create(h, c, "testmod", "GpuProbe", NULL, &one);
        kactor_actor g2 = harness_create(h, c, "testmod", "GpuProbe", NULL, &one);
        kactor_actor none = harness_create(h, c, "testmod", "GpuProbe", NULL, NULL);
        kactor_actor refused, g3;
        kactor_value *v1, *v2;
        int64_t id1, id2;
        int r;

        v1 = harness_call(c, g1, "gpus", NULL);
        v2 = harness_call(c, g2, "gpus", NULL);
        id1 = kactor_value_get_int(kactor_value_list_get(kactor_value_map_get(v1, "ids"), 0));
        id2 = kactor_value_get_int(kactor_value_list_get(kactor_value_map_get(v2, "ids"), 0));
        cr_assert((id1 == 0 && id2 == 1) || (id1 == 1 && id2 == 0), "two actors got GPUs %s and %s",
                  harness_value_str(h, v1), harness_value_str(h, v2));
        assert_gpus(c, g1, harness_printf(h, "[%lld]", (long long)id1),
                    harness_printf(h, "%lld", (long long)id1));
        assert_gpus(c, g2, harness_printf(h, "[%lld]", (long long)id2),
                    harness_printf(h, "%lld", (long long)id2));
        assert_gpus(c, none, "[]", NULL);
        kactor_value_free(v1);
        kactor_value_free(v2);

        r = kactor_create_actor(c, "testmod", "GpuProbe", NULL, &one, &refused);
        cr_assert_eq(r, -EREMOTEIO, "a third GPU actor on two GPUs: %d", r);
        cr_assert_eq(kactor_client_error(c), KACTOR_ERROR_INSUFFICIENT_RESOURCES, "%s",
                     kactor_error_name(kactor_client_error(c)));
        cr_assert(strstr(kactor_client_error_message(c), "requested 1 GPU") &&
                          strstr(kactor_client_error_message(c), "0 of 2 free"),
                  "message: %s", kactor_client_error_message(c));

        /* Killing one frees its GPU for the next (once its worker is gone). */
        cr_assert_eq(kactor_kill(c, g1, true), 0);
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, g1), "dead", HARNESS_TIMEOUT_MS));
        cr_assert(harness_wait_free_gpus(h, 1, HARNESS_TIMEOUT_MS),
                  "the killed actor's GPU did not come back");
        g3 = harness_create(h, c, "testmod", "GpuProbe", NULL, &one);
        assert_gpus(c, g3, harness_printf(h, "[%lld]", (long long)id1),
                    harness_printf(h, "%lld", (long long)id1));

        cr_assert_eq(kactor_kill(c, g2, true), 0);
        cr_assert_eq(kactor_kill(c, g3, true), 0);
        cr_assert(harness_wait_free_gpus(h, 2, HARNESS_TIMEOUT_MS),
                  "the killed actors' GPUs did not come back");
        assert_gpus(c, harness_create(h, c, "testmod", "GpuProbe", NULL, &two), "[0, 1]", "0,1");
}

Test(client, named_actors_are_shared_and_unique) {
        kactor_client *a = harness_client(h), *b = harness_client(h);
        struct kactor_actor_opts named = {.sz = sizeof(named), .name = "alpha"};
        kactor_actor x = harness_create(h, a, "counter", "Counter", NULL, &named), y, z;
        int r;

        cr_assert_eq(kactor_get_actor(b, "alpha", &y), 0, "%s", kactor_client_error_message(b));
        cr_assert(kactor_id_equal(x.id, y.id));
        assert_call(a, x, "increment", NULL, "1");
        assert_call(b, y, "increment", NULL, "2");

        r = kactor_create_actor(b, "counter", "Counter", NULL, &named, &z);
        cr_assert_eq(r, -EREMOTEIO, "a second actor named alpha: %d", r);
        cr_assert_eq(kactor_client_error(b), KACTOR_ERROR_NAME_TAKEN, "%s: %s",
                     kactor_error_name(kactor_client_error(b)), kactor_client_error_message(b));

        r = kactor_get_actor(b, "beta", &z);
        cr_assert_eq(r, -EREMOTEIO);
        cr_assert_eq(kactor_client_error(b), KACTOR_ERROR_NO_SUCH_ACTOR, "%s",
                     kactor_error_name(kactor_client_error(b)));
        assert_call(a, x, "get", NULL, "2");
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Task and object-store benchmarks, after Ray's microbenchmarks:
 *
 *   single_client_tasks_sync    submit the no-op remote function `noop` (tests/modules/benchmod.c),
 *                               get its result, repeat
 *   single_client_tasks_async   KACTOR_BENCH_BATCH submits, then one get of all
 *   single_client_get_calls     get of one put object, repeated (one round trip each)
 *
 * The sync ones alternate with the raw and relayed socket round trips (bench_measure_sync()).
 *   single_client_put_calls     puts of a small value, KACTOR_BENCH_BATCH at a time, each batch
 *                               confirmed by a get of its last object (puts have no reply)
 *
 * Usage: bench-tasks [NAME...] — runs the named benchmarks, or all.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"

typedef struct TaskBench {
        const char *name;
        kactor_client *client;
        unsigned batch;
        kactor_ref *refs;
        kactor_ref object;   /* get_calls: the object */
        kactor_value *value; /* put_calls, get_calls: the value */
} TaskBench;

static int check_value(TaskBench *b, const kactor_value *v, const kactor_value *want) {
        if (kactor_value_is_error(v)) {
                fprintf(stderr, "%s: failed: %s: %s\n", b->name, kactor_error_name(kactor_value_error_code(v)) ?: "?",
                        kactor_value_error_message(v));
                return -EREMOTEIO;
        }
        if (want ? !kactor_value_equal(v, want) : kactor_value_type(v) != KACTOR_TYPE_NIL) {
                fprintf(stderr, "%s: unexpected result of type %s\n", b->name, kactor_type_to_string(kactor_value_type(v)));
                return -EBADMSG;
        }
        return 0;
}

static int tasks_sync_step(void *userdata, uint64_t *ops) {
        TaskBench *b = userdata;
        kactor_value *v = NULL;
        kactor_ref ref;
        int r;

        r = kactor_submit(b->client, bench_noop_module(), "noop", NULL, NULL, &ref);
        if (r < 0)
                return r;
        r = kactor_get1(b->client, ref, BENCH_GET_TIMEOUT_USEC, &v);
        if (r >= 0)
                r = check_value(b, v, NULL);
        kactor_value_free(v);
        if (r < 0)
                return r;
        r = kactor_ref_release(b->client, &ref, 1);
        if (r < 0)
                return r;
        (*ops)++;
        return 0;
}

static int tasks_async_step(void *userdata, uint64_t *ops) {
        TaskBench *b = userdata;
        kactor_value **values = NULL;
        int r;

        for (unsigned i = 0; i < b->batch; i++) {
                r = kactor_submit(b->client, bench_noop_module(), "noop", NULL, NULL, &b->refs[i]);
                if (r < 0)
                        return r;
        }
        r = kactor_get(b->client, b->refs, b->batch, BENCH_GET_TIMEOUT_USEC, &values);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < b->batch && r >= 0; i++)
                r = check_value(b, values[i], NULL);
        kactor_values_free(values, b->batch);
        if (r < 0)
                return r;
        r = kactor_ref_release(b->client, b->refs, b->batch);
        if (r < 0)
                return r;
        *ops += b->batch;
        return 0;
}

static int get_step(void *userdata, uint64_t *ops) {
        TaskBench *b = userdata;
        kactor_value *v = NULL;
        int r;

        r = kactor_get1(b->client, b->object, BENCH_GET_TIMEOUT_USEC, &v);
        if (r >= 0)
                r = check_value(b, v, b->value);
        kactor_value_free(v);
        if (r < 0)
                return r;
        (*ops)++;
        return 0;
}

static int put_step(void *userdata, uint64_t *ops) {
        TaskBench *b = userdata;
        kactor_value *v = NULL;
        int r;

        for (unsigned i = 0; i < b->batch; i++) {
                r = kactor_put(b->client, b->value, &b->refs[i]);
                if (r < 0)
                        return r;
        }
        /* The stream is ordered: once the last object is there, all are. */
        r = kactor_get1(b->client, b->refs[b->batch - 1], BENCH_GET_TIMEOUT_USEC, &v);
        if (r >= 0)
                r = check_value(b, v, b->value);
        kactor_value_free(v);
        if (r < 0)
                return r;
        r = kactor_ref_release(b->client, b->refs, b->batch);
        if (r < 0)
                return r;
        *ops += b->batch;
        return 0;
}

static void task_bench_setup(TaskBench *b, const char *name, unsigned batch) {
        *b = (TaskBench) {
                .name = name,
                .client = bench_connect(name),
                .batch = batch,
                .refs = calloc(batch, sizeof(kactor_ref)),
                /* A small value, as an actor-call argument would be. */
                .value = kactor_value_new_string("kactor bench value"),
        };
        if (!b->refs || !b->value)
                bench_fail(name, NULL, -ENOMEM, "allocating");
}

static void task_bench_done(TaskBench *b) {
        kactor_client_free(b->client);
        kactor_value_free(b->value);
        free(b->refs);
}

static void run(const char *name, bench_step_fn step, unsigned batch, bool sync, double min_rate) {
        TaskBench b;
        double rate;
        int r;

        task_bench_setup(&b, name, batch);
        if (step == get_step) {
                r = kactor_put(b.client, b.value, &b.object);
                if (r < 0)
                        bench_fail(name, b.client, r, "putting the object");
        }
        if (sync) {
                BenchSync m;

                r = bench_measure_sync(step, &b, &m);
                if (r < 0)
                        bench_fail(name, b.client, r, "running");
                bench_report_sync(name, &m, min_rate, 0);
        } else {
                r = bench_measure(step, &b, &rate);
                if (r < 0)
                        bench_fail(name, b.client, r, "running");
                bench_report_async(name, rate, min_rate);
        }
        task_bench_done(&b);
}

static bool wanted(int argc, char *argv[], const char *name) {
        if (argc <= 1)
                return true;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return true;
        return false;
}

int main(int argc, char *argv[]) {
        signal(SIGPIPE, SIG_IGN);

        if (wanted(argc, argv, "single_client_tasks_sync"))
                run("single_client_tasks_sync", tasks_sync_step, 1, true, 0);
        if (wanted(argc, argv, "single_client_tasks_async"))
                run("single_client_tasks_async", tasks_async_step, bench_batch(), false, 100000);
        if (wanted(argc, argv, "single_client_get_calls"))
                run("single_client_get_calls", get_step, 1, true, 0);
        if (wanted(argc, argv, "single_client_put_calls"))
                run("single_client_put_calls", put_step, bench_batch(), false, 0);
        return 0;
}

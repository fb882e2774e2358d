/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The handlers of bpf/trace.bpf.c, run in the kernel with BPF_PROG_TEST_RUN through the raw_tp
 * entry points of tests/unit/bpf/test-trace.bpf.c, with chosen times: the phases land in the right
 * log2 buckets, other node managers' actors are ignored, the scheduler accounting splits run-queue,
 * on-CPU and off-CPU time, and timeline mode sends one event per call and counts what it drops.
 * Needs root (CAP_BPF); CI runs as root.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "trace-format.h" /* the structs the skeleton names */
#include "test-trace.skel.h"

static struct test_trace_bpf *skel;

static void setup(void) {
        if (geteuid() != 0)
                cr_skip_test("BPF_PROG_TEST_RUN needs root (CAP_BPF)");
        skel = test_trace_bpf__open();
        cr_assert(skel, "open: %m");
        /* A small ring buffer, so that filling it is quick. */
        cr_assert(bpf_map__set_max_entries(skel->maps.events, 4096) == 0);
        int r = test_trace_bpf__load(skel);
        cr_assert(r == 0, "load: %s", strerror(-r));
}

static void teardown(void) {
        test_trace_bpf__destroy(skel);
        skel = NULL;
}

TestSuite(bpf_trace, .init = setup, .fini = teardown);

static void run(struct bpf_program *prog, const uint64_t *args, size_t n) {
        LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = n * sizeof(uint64_t));
        int r = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
        cr_assert(r == 0, "test run of %s: %s", bpf_program__name(prog), strerror(errno));
}

static void add_actor(uint64_t key, uint32_t tgid) {
        struct kt_actor_info info = { .id_hi = 1, .id_lo = key, .pid = tgid };
        cr_assert(bpf_map__update_elem(skel->maps.actors, &key, sizeof(key), &info, sizeof(info), BPF_ANY) == 0);
        if (tgid) {
                __u32 t = tgid;
                cr_assert(bpf_map__update_elem(skel->maps.tasks, &t, sizeof(t), &key, sizeof(key), BPF_ANY) == 0);
        }
}

static void call(uint64_t actor, uint64_t seq, uint32_t method, uint64_t tq, uint64_t td, uint64_t ts, uint64_t te,
                 uint64_t now) {
        uint64_t fin[] = { actor, seq, ts, te, 4242 };
        uint64_t st[] = { actor, seq, 0x1000 + seq, method, tq, td, now };
        if (ts)
                run(skel->progs.test_call_finished, fin, 5);
        run(skel->progs.test_call_stored, st, 7);
}

static bool stats_of(uint64_t actor, uint32_t method, struct kt_call_stats *ret) {
        struct kt_call_key key = { .actor = actor, .method = method };
        return bpf_map__lookup_elem(skel->maps.hists, &key, sizeof(key), ret, sizeof(*ret), 0) == 0;
}

/* The bucket of d: 2^(i-1) <= d < 2^i. */
static unsigned bucket(uint64_t d) {
        unsigned i = 0;
        while (d) {
                d >>= 1;
                i++;
        }
        return i;
}

Test(bpf_trace, phases_land_in_their_log2_buckets) {
        add_actor(7, 0);
        /* queued at 1000, dispatched 3000 later, started 100 after, ran 1 ms, stored 50 us later. */
        call(7, 1, 99, 1000, 4000, 4100, 1004100, 1054100);
        call(7, 2, 99, 2000, 7000, 7100, 1007100, 1057100);

        struct kt_call_stats st;
        cr_assert(stats_of(7, 99, &st));
        cr_expect_eq(st.calls, 2);
        cr_expect_eq(st.no_worker, 0);
        cr_expect_eq(st.phase[TRACE_PHASE_QUEUE].count, 2);
        cr_expect_eq(st.phase[TRACE_PHASE_QUEUE].sum_ns, 3000 + 5000);
        cr_expect_eq(st.phase[TRACE_PHASE_QUEUE].slots[bucket(3000)], 1);
        cr_expect_eq(st.phase[TRACE_PHASE_QUEUE].slots[bucket(5000)], 1);
        cr_expect_eq(st.phase[TRACE_PHASE_DISPATCH].slots[bucket(100)], 2);
        cr_expect_eq(st.phase[TRACE_PHASE_EXEC].slots[bucket(1000000)], 2);
        cr_expect_eq(st.phase[TRACE_PHASE_DELIVER].slots[bucket(50000)], 2);
        cr_expect_eq(st.phase[TRACE_PHASE_TOTAL].sum_ns, 1053100 + 1055100);
        /* p50 of the exec phase lies in the bucket of 1 ms. */
        double p50 = trace_hist_percentile(st.phase[TRACE_PHASE_EXEC].slots, TRACE_HIST_SLOTS, 0.5);
        cr_expect(p50 >= 524288 && p50 <= 1048576, "p50 %f", p50);
}

Test(bpf_trace, ignores_other_node_managers_actors_and_calls_from_before_tracing) {
        add_actor(7, 0);
        call(8, 1, 99, 1000, 2000, 3000, 4000, 5000);  /* not ours */
        call(7, 2, 99, 0, 2000, 3000, 4000, 5000);     /* queued before tracing began */
        struct kt_call_stats st;
        cr_expect_not(stats_of(8, 99, &st));
        cr_expect_not(stats_of(7, 99, &st));
}

Test(bpf_trace, a_call_the_worker_never_reported_counts_without_exec) {
        add_actor(7, 0);
        call(7, 1, 5, 1000, 2000, 0, 0, 9000);
        struct kt_call_stats st;
        cr_assert(stats_of(7, 5, &st));
        cr_expect_eq(st.calls, 1);
        cr_expect_eq(st.no_worker, 1);
        cr_expect_eq(st.phase[TRACE_PHASE_QUEUE].count, 1);
        cr_expect_eq(st.phase[TRACE_PHASE_EXEC].count, 0);
        cr_expect_eq(st.phase[TRACE_PHASE_TOTAL].sum_ns, 8000);
}

Test(bpf_trace, scheduler_splits_run_queue_on_cpu_and_off_cpu_time) {
        add_actor(9, 500);
        /* Thread 501 of process 500 is woken at 1000, runs at 1300 (runq 300), is preempted at 2300
         * (on 1000), runs again at 2800 (runq 500), sleeps at 3000 (on 200), is woken at 10000
         * (off 7000). Thread 600 is nobody's. */
        uint64_t wake1[] = { 501, 500, 1000 };
        uint64_t sw1[] = { 600, 600, 1, 501, 500, 1300 };
        uint64_t sw2[] = { 501, 500, 1, 600, 600, 2300 };
        uint64_t sw3[] = { 600, 600, 1, 501, 500, 2800 };
        uint64_t sw4[] = { 501, 500, 0, 600, 600, 3000 };
        uint64_t wake2[] = { 501, 500, 10000 };
        run(skel->progs.test_wakeup, wake1, 3);
        run(skel->progs.test_switch, sw1, 6);
        run(skel->progs.test_switch, sw2, 6);
        run(skel->progs.test_switch, sw3, 6);
        run(skel->progs.test_switch, sw4, 6);
        run(skel->progs.test_wakeup, wake2, 3);

        struct kt_sched_stats st;
        uint64_t key = 9;
        cr_assert(bpf_map__lookup_elem(skel->maps.sched, &key, sizeof(key), &st, sizeof(st), 0) == 0);
        cr_expect_eq(st.hist[TRACE_SCHED_RUNQ].count, 2);
        cr_expect_eq(st.hist[TRACE_SCHED_RUNQ].sum_ns, 300 + 500);
        cr_expect_eq(st.hist[TRACE_SCHED_ONCPU].count, 2);
        cr_expect_eq(st.hist[TRACE_SCHED_ONCPU].sum_ns, 1000 + 200);
        cr_expect_eq(st.hist[TRACE_SCHED_OFFCPU].count, 1);
        cr_expect_eq(st.hist[TRACE_SCHED_OFFCPU].sum_ns, 7000);
        key = 600;
        cr_expect_neq(bpf_map__lookup_elem(skel->maps.sched, &key, sizeof(key), &st, sizeof(st), 0), 0);
}

static int count_event(void *ctx, void *data, size_t size) {
        const struct kt_event *e = data;
        unsigned *n = ctx;
        cr_expect_eq(e->type, TRACE_EVENT_CALL);
        cr_expect_eq(e->t[0], 1000);
        cr_expect_eq(e->t[4], 9000);
        (*n)++;
        return 0;
}

Test(bpf_trace, timeline_sends_one_event_per_call_and_counts_what_it_drops) {
        add_actor(7, 0);
        call(7, 1, 1, 1000, 2000, 3000, 4000, 9000); /* timeline off: no event */
        skel->bss->timeline_on = 1;
        /* 4096 bytes hold 4096 / (80 + 8) = 46 events. */
        for (uint64_t seq = 2; seq < 102; seq++)
                call(7, seq, 1, 1000, 2000, 3000, 4000, 9000);
        unsigned n = 0;
        struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), count_event, &n, NULL);
        cr_assert(rb);
        ring_buffer__consume(rb);
        ring_buffer__free(rb);
        cr_expect(n > 0 && n < 100, "%u events", n);
        cr_expect_eq(n + skel->bss->dropped, 100, "%u events, %llu dropped", n, (unsigned long long) skel->bss->dropped);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The scheduler handlers of bpf/trace.bpf.c, run in the kernel with BPF_PROG_TEST_RUN through the
 * raw_tp entry points of tests/unit/bpf/test-trace.bpf.c, with chosen times and cgroups: the
 * accounting splits run-queue, on-CPU and off-CPU time, threads are found by their actor's cgroup
 * (or process) and nobody else's are followed, and timeline mode sends the spans to the ring buffer
 * and counts what it drops. (The call phases are counted by the node manager: test-trace-format.c.)
 * Needs root (CAP_BPF); CI runs as root.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../skip.h"
#include "trace-format.h" /* the structs the skeleton names */
#include "test-trace.skel.h"

static struct test_trace_bpf *skel;

static void setup(void) {
        if (geteuid() != 0)
                kactor_skip_test("BPF_PROG_TEST_RUN needs root (CAP_BPF)");
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

/* An actor followed by its process (tgid) or, when cgroup_id is not 0, by its cgroup. */
static void add_actor(uint64_t key, uint32_t tgid, uint64_t cgroup_id) {
        struct kt_actor_info info = { .id_hi = 1, .id_lo = key, .pid = tgid, .cgroup_id = cgroup_id };
        cr_assert(bpf_map__update_elem(skel->maps.actors, &key, sizeof(key), &info, sizeof(info), BPF_ANY) == 0);
        if (cgroup_id) {
                cr_assert(bpf_map__update_elem(skel->maps.cgroups, &cgroup_id, sizeof(cgroup_id), &key, sizeof(key),
                                               BPF_ANY) == 0);
                skel->bss->n_cgroups++;
        } else if (tgid) {
                __u32 t = tgid;
                cr_assert(bpf_map__update_elem(skel->maps.tasks, &t, sizeof(t), &key, sizeof(key), BPF_ANY) == 0);
                skel->bss->n_tasks++;
        }
}

static void wakeup(uint64_t pid, uint64_t tgid, uint64_t cgroup_id, uint64_t now) {
        uint64_t args[] = { pid, tgid, cgroup_id, now };
        run(skel->progs.test_wakeup, args, 4);
}

static void sched_switch(uint64_t prev_pid, uint64_t prev_tgid, uint64_t prev_cgroup, uint64_t prev_runnable,
                         uint64_t next_pid, uint64_t next_tgid, uint64_t next_cgroup, uint64_t now) {
        uint64_t args[] = { prev_pid, prev_tgid, prev_cgroup, prev_runnable, next_pid, next_tgid, next_cgroup, now };
        run(skel->progs.test_switch, args, 8);
}

static bool sched_of(uint64_t actor, struct kt_sched_stats *ret) {
        return bpf_map__lookup_elem(skel->maps.sched, &actor, sizeof(actor), ret, sizeof(*ret), 0) == 0;
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

/* Thread 501 of process 500 is woken at 1000, runs at 1300 (runq 300), is preempted at 2300 (on
 * 1000), runs again at 2800 (runq 500), sleeps at 3000 (on 200), is woken at 10000 (off 7000);
 * times from t0; 501 is in cgroup cg (0: none). Thread 600 is nobody's (cgroup 1). */
static void run_pattern_at(uint64_t cg, uint64_t t0) {
        wakeup(501, 500, cg, t0 + 1000);
        sched_switch(600, 600, 1, 1, 501, 500, cg, t0 + 1300);
        sched_switch(501, 500, cg, 1, 600, 600, 1, t0 + 2300);
        sched_switch(600, 600, 1, 1, 501, 500, cg, t0 + 2800);
        sched_switch(501, 500, cg, 0, 600, 600, 1, t0 + 3000);
        wakeup(501, 500, cg, t0 + 10000);
}

static void run_sleep_pattern(uint64_t cg) {
        run_pattern_at(cg, 0);
}

static void expect_sleep_pattern(uint64_t actor) {
        struct kt_sched_stats st;
        cr_assert(sched_of(actor, &st));
        cr_expect_eq(st.hist[TRACE_SCHED_RUNQ].count, 2);
        cr_expect_eq(st.hist[TRACE_SCHED_RUNQ].sum_ns, 300 + 500);
        cr_expect_eq(st.hist[TRACE_SCHED_RUNQ].slots[bucket(300)], 2); /* 300 and 500: 256 <= d < 512 */
        cr_expect_eq(st.hist[TRACE_SCHED_ONCPU].count, 2);
        cr_expect_eq(st.hist[TRACE_SCHED_ONCPU].sum_ns, 1000 + 200);
        cr_expect_eq(st.hist[TRACE_SCHED_OFFCPU].count, 1);
        cr_expect_eq(st.hist[TRACE_SCHED_OFFCPU].sum_ns, 7000);
        cr_expect_eq(st.hist[TRACE_SCHED_OFFCPU].slots[bucket(7000)], 1);
}

Test(bpf_trace, scheduler_splits_run_queue_on_cpu_and_off_cpu_time) {
        add_actor(9, 500, 0);
        run_sleep_pattern(0);
        expect_sleep_pattern(9);
        struct kt_sched_stats st;
        cr_expect_not(sched_of(600, &st));
}

Test(bpf_trace, threads_are_found_by_their_actors_cgroup) {
        add_actor(9, 0, 4242);
        run_sleep_pattern(4242);
        expect_sleep_pattern(9);
}

Test(bpf_trace, nothing_is_followed_outside_the_actors) {
        /* Nothing registered: the handlers return before any lookup. */
        run_sleep_pattern(0);
        struct kt_sched_stats st;
        cr_expect_not(sched_of(9, &st));
        /* An actor in cgroup 4242: threads of another cgroup are not its, whatever their process. */
        add_actor(9, 0, 4242);
        run_sleep_pattern(777);
        cr_expect_not(sched_of(9, &st));
}

static int count_event(void *ctx, void *data, size_t size) {
        const struct kt_event *e = data;
        unsigned *n = ctx;
        cr_expect_eq(e->type, TRACE_EVENT_SCHED);
        cr_expect_eq(e->actor, 9);
        cr_expect_eq(e->tid, 501);
        cr_expect(e->kind == TRACE_SCHED_RUNQ || e->kind == TRACE_SCHED_OFFCPU, "kind %u", e->kind);
        cr_expect(e->t[1] > e->t[0]);
        (*n)++;
        return 0;
}

Test(bpf_trace, timeline_sends_the_scheduler_spans_and_counts_what_it_drops) {
        add_actor(9, 500, 0);
        run_sleep_pattern(0); /* timeline off: no event */
        skel->bss->timeline_on = 1;
        /* Each round: 2 run-queue waits and 1 off-CPU span; 4096 bytes hold 4096 / (80 + 8) = 46 events. */
        for (unsigned i = 0; i < 30; i++)
                run_pattern_at(0, 20000 * (i + 1));
        unsigned n = 0;
        struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), count_event, &n, NULL);
        cr_assert(rb);
        ring_buffer__consume(rb);
        ring_buffer__free(rb);
        cr_expect(n > 0 && n < 90, "%u events", n);
        cr_expect_eq(n + skel->bss->dropped, 90, "%u events, %llu dropped", n, (unsigned long long) skel->bss->dropped);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* bpf/trace-format.c: percentiles, Prometheus text, the timeline's Chrome trace JSON. */

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kactor/value.h"
#include "trace-format.h"

/* The bucket of d: 2^(i-1) <= d < 2^i. */
static unsigned bucket(uint64_t d) {
        unsigned i = 0;
        while (d) {
                d >>= 1;
                i++;
        }
        return i;
}

Test(trace_format, call_phases_land_in_their_log2_buckets) {
        struct kt_call_stats st = {};
        /* queued at 1000, dispatched 3000 later, started 100 after, ran 1 ms, stored 50 us later. */
        trace_call_account(&st, 1000, 4000, 4100, 1004100, 1054100);
        trace_call_account(&st, 2000, 7000, 7100, 1007100, 1057100);

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

Test(trace_format, a_call_without_the_workers_times_counts_without_exec) {
        struct kt_call_stats st = {};
        trace_call_account(&st, 1000, 2000, 0, 0, 9000);
        cr_expect_eq(st.calls, 1);
        cr_expect_eq(st.no_worker, 1);
        cr_expect_eq(st.phase[TRACE_PHASE_QUEUE].count, 1);
        cr_expect_eq(st.phase[TRACE_PHASE_EXEC].count, 0);
        cr_expect_eq(st.phase[TRACE_PHASE_TOTAL].sum_ns, 8000);
        /* Zero and the longest durations have buckets of their own. */
        trace_hist_add(&st.phase[TRACE_PHASE_EXEC], 0);
        trace_hist_add(&st.phase[TRACE_PHASE_EXEC], UINT64_MAX);
        cr_expect_eq(st.phase[TRACE_PHASE_EXEC].slots[0], 1);
        cr_expect_eq(st.phase[TRACE_PHASE_EXEC].slots[TRACE_HIST_SLOTS - 1], 1);
}

Test(trace_format, percentile_interpolates_inside_the_bucket) {
        __u64 slots[TRACE_HIST_SLOTS] = {};
        cr_expect_eq(trace_hist_percentile(slots, TRACE_HIST_SLOTS, 0.5), 0);
        slots[11] = 100; /* [1024, 2048) */
        double p50 = trace_hist_percentile(slots, TRACE_HIST_SLOTS, 0.5);
        cr_expect(p50 > 1500 && p50 < 1560, "%f", p50);
        slots[21] = 1; /* one slow outlier in [2^20, 2^21) */
        cr_expect(trace_hist_percentile(slots, TRACE_HIST_SLOTS, 0.99) < 2048);
        cr_expect(trace_hist_percentile(slots, TRACE_HIST_SLOTS, 1.0) >= 1048576);
}

Test(trace_format, prometheus_buckets_are_cumulative_and_end_in_inf) {
        __u64 slots[TRACE_HIST_SLOTS] = {};
        slots[1] = 2;
        slots[3] = 5;
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        trace_prom_histogram(f, "m", "a=\"x\"", slots, TRACE_HIST_SLOTS, 7, 3000000000ULL);
        fclose(f);
        cr_expect(strstr(text, "m_bucket{a=\"x\",le=\"2e-09\"} 2\n"), "%s", text);
        cr_expect(strstr(text, "m_bucket{a=\"x\",le=\"8e-09\"} 7\n"), "%s", text);
        cr_expect(strstr(text, "m_bucket{a=\"x\",le=\"+Inf\"} 7\n"));
        cr_expect(strstr(text, "m_sum{a=\"x\"} 3.000000000\n"));
        cr_expect(strstr(text, "m_count{a=\"x\"} 7\n"));
        free(text);
}

static const char *label(uint64_t actor, void *userdata) {
        return actor == 1 ? "actor \"one\"" : NULL;
}

Test(trace_format, timeline_has_a_process_per_actor_and_nested_phases) {
        struct kt_event ev[3] = {
                { .type = TRACE_EVENT_CALL, .actor = 1, .method = 3, .tid = 10, .seq = 1, .obj = 0xa,
                  .t = { 1000, 2000, 3000, 5000, 6000 } },
                { .type = TRACE_EVENT_CALL, .actor = 2, .method = 3, .tid = 20, .seq = 1, .obj = 0xb,
                  .t = { 1000, 2000, 0, 0, 6000 } },
                { .type = TRACE_EVENT_SCHED, .kind = TRACE_SCHED_RUNQ, .actor = 1, .tid = 10, .t = { 2500, 3000 } },
        };
        TraceTimelineNames names = { .actor_label = label };
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        cr_assert_eq(trace_timeline_write(f, ev, 3, 0, 0, 5, &names), 0);
        fclose(f);
        cr_expect(strstr(text, "\"args\":{\"name\":\"actor \\\"one\\\"\"}"), "%s", text);
        cr_expect(strstr(text, "\"name\":\"process_name\",\"pid\":2"));
        cr_expect(strstr(text, "\"ph\":\"b\",\"cat\":\"call\",\"name\":\"run\",\"pid\":1"));
        cr_expect_null(strstr(text, "\"name\":\"run\",\"pid\":2"), "a call without a worker record has no run");
        cr_expect(strstr(text, "\"name\":\"run-queue wait\""));
        cr_expect(strstr(text, "\"otherData\":{\"dropped_events\":5,\"events\":3,\"actors\":2}"));
        free(text);
}

static const char *error_of(size_t index, void *userdata) {
        return index == 1 ? "NoSuchMethod: actor class Tracee has no method 'x'" : NULL;
}

Test(trace_format, timeline_starts_at_the_recording_and_marks_clipped_unfinished_and_failed) {
        /* Recorded from 10000 to 20000 ns. */
        struct kt_event ev[4] = {
                /* asleep since before the recording */
                { .type = TRACE_EVENT_SCHED, .kind = TRACE_SCHED_OFFCPU, .actor = 1, .tid = 10, .t = { 1000, 12000 } },
                /* failed without running, on the worker's track */
                { .type = TRACE_EVENT_CALL, .kind = KACTOR_ERROR_NO_SUCH_METHOD, .actor = 1, .method = 3, .tid = 10,
                  .seq = 1, .obj = 0xa, .t = { 13000, 14000, 0, 0, 15000 } },
                /* with its worker when the recording ended */
                { .type = TRACE_EVENT_CALL, .kind = TRACE_EVENT_UNFINISHED, .actor = 1, .method = 3, .tid = 10,
                  .seq = 2, .obj = 0xb, .t = { 16000, 17000, 0, 0, 20000 } },
                /* over before the recording began: left out */
                { .type = TRACE_EVENT_SCHED, .kind = TRACE_SCHED_RUNQ, .actor = 1, .tid = 10, .t = { 2000, 3000 } },
        };
        TraceTimelineNames names = { .actor_label = label, .call_error = error_of };
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        cr_assert_eq(trace_timeline_write(f, ev, 4, 10000, 20000, 0, &names), 0);
        fclose(f);
        cr_expect(strstr(text, "\"name\":\"off-CPU\",\"pid\":1,\"tid\":1073741834,\"ts\":0.000,\"dur\":2.000,"
                               "\"args\":{\"clipped\":true}"), "%s", text);
        cr_expect(strstr(text, "\"name\":\"method 00000003\",\"pid\":1,\"tid\":10,\"id\":\"0xa\",\"ts\":3.000,"
                               "\"args\":{\"error\":\"NoSuchMethod: actor class Tracee has no method 'x'\"}"), "%s", text);
        cr_expect(strstr(text, "\"name\":\"thread_name\",\"pid\":1,\"tid\":10,\"args\":{\"name\":\"worker 10\"}"));
        cr_expect(strstr(text, "\"id\":\"0xb\",\"ts\":6.000,\"args\":{\"unfinished\":true}"), "%s", text);
        cr_expect(strstr(text, "{\"ph\":\"e\",\"cat\":\"call\",\"name\":\"dispatch\",\"pid\":1,\"tid\":10,"
                               "\"id\":\"0xb\",\"ts\":10.000}"), "%s", text);
        cr_expect_null(strstr(text, "run-queue wait"), "a span over before the recording is in it");
        cr_expect(strstr(text, "\"events\":3,"), "%s", text);
        free(text);
}

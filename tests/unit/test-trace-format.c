/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* bpf/trace-format.c: percentiles, Prometheus text, the timeline's Chrome trace JSON. */

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "trace-format.h"

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
        cr_assert_eq(trace_timeline_write(f, ev, 3, 5, &names), 0);
        fclose(f);
        cr_expect(strstr(text, "\"args\":{\"name\":\"actor \\\"one\\\"\"}"), "%s", text);
        cr_expect(strstr(text, "\"name\":\"process_name\",\"pid\":2"));
        cr_expect(strstr(text, "\"ph\":\"b\",\"cat\":\"call\",\"name\":\"run\",\"pid\":1"));
        cr_expect_null(strstr(text, "\"name\":\"run\",\"pid\":2"), "a call without a worker record has no run");
        cr_expect(strstr(text, "\"name\":\"run-queue wait\""));
        cr_expect(strstr(text, "\"otherData\":{\"dropped_events\":5,\"events\":3,\"actors\":2}"));
        free(text);
}

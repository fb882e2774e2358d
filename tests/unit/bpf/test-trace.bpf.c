// SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause)
/*
 * bpf/trace.bpf.c with raw_tp entry points that take the probes' and tracepoints' arguments as
 * plain numbers, so that tests/unit/test-bpf-trace.c drives the very handlers (and maps) of the
 * real programs with BPF_PROG_TEST_RUN, with times it chooses.
 */

#include "trace.bpf.c"

SEC("raw_tp")
int BPF_PROG(test_call_finished, __u64 actor, __u64 seq, __u64 t_start, __u64 t_end, __u64 tid) {
        return on_call_finished(actor, seq, t_start, t_end, (__u32) tid);
}

SEC("raw_tp")
int BPF_PROG(test_call_stored, __u64 actor, __u64 seq, __u64 obj, __u64 method, __u64 t_queued, __u64 t_dispatched,
             __u64 now) {
        return on_call_stored(actor, seq, obj, (__u32) method, t_queued, t_dispatched, now);
}

SEC("raw_tp")
int BPF_PROG(test_wakeup, __u64 pid, __u64 tgid, __u64 now) {
        return on_wakeup((__u32) pid, (__u32) tgid, 0, now);
}

SEC("raw_tp")
int BPF_PROG(test_switch, __u64 prev_pid, __u64 prev_tgid, __u64 prev_runnable, __u64 next_pid, __u64 next_tgid,
             __u64 now) {
        return on_switch((__u32) prev_pid, (__u32) prev_tgid, 0, (int) prev_runnable, (__u32) next_pid,
                         (__u32) next_tgid, 0, now);
}

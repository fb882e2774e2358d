// SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause)
/*
 * bpf/trace.bpf.c with raw_tp entry points that take the tracepoints' arguments as plain numbers,
 * so that tests/unit/test-bpf-trace.c drives the very handlers (and maps) of the real programs with
 * BPF_PROG_TEST_RUN, with times and cgroups it chooses.
 */

#include "trace.bpf.c"

SEC("raw_tp")
int BPF_PROG(test_wakeup, __u64 pid, __u64 tgid, __u64 cgroup_id, __u64 now) {
        return on_wakeup((__u32) pid, (__u32) tgid, cgroup_id, now);
}

SEC("raw_tp")
int BPF_PROG(test_switch, __u64 prev_pid, __u64 prev_tgid, __u64 prev_cgroup, __u64 prev_runnable, __u64 next_pid,
             __u64 next_tgid, __u64 next_cgroup, __u64 now) {
        return on_switch((__u32) prev_pid, (__u32) prev_tgid, prev_cgroup, (int) prev_runnable, (__u32) next_pid,
                         (__u32) next_tgid, next_cgroup, now);
}

// SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause)
/*
 * tests/integration/test-usdt.c attaches these to kactor's USDT probes as an operator's tool would
 * (bpftrace's usdt:, here through libbpf): each hit goes to user space with its arguments, read with
 * the USDT argument specs libbpf takes from the binaries' notes.
 */

#include "vmlinux.h"

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "test-usdt.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
        __uint(type, BPF_MAP_TYPE_RINGBUF);
        __uint(max_entries, 1 << 20);
} events SEC(".maps");

static int emit(__u32 probe, __u64 a, __u64 b, __u64 c) {
        struct usdt_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

        if (!e)
                return 0;
        e->probe = probe;
        e->pid = bpf_get_current_pid_tgid() >> 32;
        e->args[0] = a;
        e->args[1] = b;
        e->args[2] = c;
        bpf_ringbuf_submit(e, 0);
        return 0;
}

SEC("usdt")
int BPF_USDT(direct_call_sent, __u64 actor, __u64 obj, __u64 method) {
        return emit(USDT_DIRECT_CALL_SENT, actor, obj, method);
}

SEC("usdt")
int BPF_USDT(direct_call_received, __u64 actor, __u64 obj, __u64 method) {
        return emit(USDT_DIRECT_CALL_RECEIVED, actor, obj, method);
}

SEC("usdt")
int BPF_USDT(direct_result_received, __u64 obj, __u64 code) {
        return emit(USDT_DIRECT_RESULT_RECEIVED, obj, code, 0);
}

SEC("usdt")
int BPF_USDT(call_stored, __u64 actor, __u64 seq, __u64 obj, __u64 method, __u64 t_queued, __u64 t_dispatched) {
        /* The phases' times, as the node manager's timeline has them: queued no later than dispatched. */
        return emit(USDT_CALL_STORED, actor, obj, method | (t_queued <= t_dispatched ? USDT_TIMES_ORDERED : 0));
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What bpf/trace.bpf.c and its userspace (bpf/trace.c, the node manager, kactorctl) share: the
 * keys and values of the maps pinned under /sys/fs/bpf/kactor/NODE/ and the ring buffer's events.
 * Plain fixed-size types only; included by BPF code (after vmlinux.h) and by userspace.
 */

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* log2 buckets: bucket i counts durations d (ns) with 2^(i-1) <= d < 2^i (bucket 0: d == 0). The
 * last bucket takes everything longer (2^38 ns is about 4.6 minutes). */
#define TRACE_HIST_SLOTS 40

/* The phases of a call, in order; TRACE_PHASE_TOTAL spans them all. */
enum kt_phase {
        TRACE_PHASE_QUEUE,    /* queued at the actor -> dispatched to its worker */
        TRACE_PHASE_DISPATCH, /* dispatched -> started in the worker */
        TRACE_PHASE_EXEC,     /* started -> finished (the method runs) */
        TRACE_PHASE_DELIVER,  /* finished -> result stored in the node manager */
        TRACE_PHASE_TOTAL,    /* queued -> result stored */
        TRACE_PHASE_MAX,
};

/* The scheduler's view of an actor's threads. */
enum kt_sched_hist {
        TRACE_SCHED_RUNQ,   /* woken (or preempted) -> running: run-queue delay */
        TRACE_SCHED_OFFCPU, /* switched out asleep -> woken */
        TRACE_SCHED_ONCPU,  /* switched in -> switched out */
        TRACE_SCHED_MAX,
};

struct kt_hist {
        __u64 count;
        __u64 sum_ns;
        __u64 slots[TRACE_HIST_SLOTS];
};

/* hists: the call phases per actor and method, in slots of an mmapable array that the node manager
 * (which sees every call) adds to directly, without entering the kernel; `calls` says whose each
 * slot is (a zero key: free). */
#define TRACE_CALL_SLOTS 2048

struct kt_call_key {
        __u64 actor;  /* kactor_trace_id_hash() */
        __u32 method; /* kactor_trace_method_id(), or TRACE_METHOD_UNKNOWN */
        __u32 pad;
};

/* The calls of an actor to names its class has no method of (as far as the node manager knows: no
 * worker ran one) count under this one method id (kactor_trace_method_id() is never 0) and name, so
 * that a caller cannot fill `methods` and `hists` with names of its own. */
#define TRACE_METHOD_UNKNOWN 0
#define TRACE_METHOD_UNKNOWN_NAME "(unknown)"
/* Distinct methods counted per actor; the calls of any more count as TRACE_METHOD_UNKNOWN. */
#define TRACE_METHODS_PER_ACTOR_MAX 256

struct kt_call_stats {
        __u64 calls;     /* results stored */
        __u64 no_worker; /* of those, without the worker's times (failed before running, or an old worker) */
        struct kt_hist phase[TRACE_PHASE_MAX];
};

/* sched: per actor. */
struct kt_sched_stats {
        struct kt_hist hist[TRACE_SCHED_MAX];
};

/* actors: the actors of this node manager (written by userspace; the BPF programs ignore
 * everything else, such as the workers of another node manager on the host). */
struct kt_actor_info {
        __u64 id_hi, id_lo;
        __u32 pid;       /* the worker's tgid, 0 when none */
        __u32 pad;
        __u64 cgroup_id; /* the actor's cgroup (v2 id), 0 when none */
};

/* cgroups: cgroup id -> actor; tasks: worker tgid -> actor, for actors without a cgroup of their own.
 * Values are actor keys (__u64). */

/* threads: per thread of a tracked actor, the scheduler state. */
struct kt_thread {
        __u64 actor;
        __u64 t_on;    /* switched in (0: not on a CPU) */
        __u64 t_ready; /* woken or preempted, waiting for a CPU (0: not waiting) */
        __u64 t_sleep; /* switched out asleep (0: not asleep) */
};

/* Timeline mode's events: the scheduler's come through the ring buffer `events`, the calls' from the
 * node manager itself. */
enum kt_event_type {
        TRACE_EVENT_CALL = 1,  /* a call whose result was stored (or still in flight at the end, or failed) */
        TRACE_EVENT_SCHED = 2, /* a run-queue wait or an off-CPU span of an actor's thread */
};

/* kt_event.kind: for SCHED the enum kt_sched_hist, for CALL the result's kactor_error (0: success), in
 * the low bits; either may carry TRACE_EVENT_UNFINISHED: the span was still open when the recording
 * ended (its end, t[4] for a call and t[1] for a span, is the end of the recording). */
#define TRACE_EVENT_KIND_MASK 0xffffu
#define TRACE_EVENT_UNFINISHED 0x80000000u

struct kt_event {
        __u32 type;
        __u32 kind; /* above */
        __u64 actor;
        __u32 method;
        __u32 tid;
        __u64 seq;
        __u64 obj;
        /* CALL: t_queued, t_dispatched, t_start, t_end, t_stored (0 when unknown: t_dispatched of a call
         * not dispatched yet, t_start/t_end of one the worker did not run or has not finished);
         * SCHED: t[0] the span's start, t[1] its end. */
        __u64 t[5];
};

/* Pinned names, under the node manager's directory. */
#define TRACE_PIN_ROOT "/sys/fs/bpf/kactor"

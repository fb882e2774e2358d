// SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause)
/*
 * kactor's task-latency tracing, the kernel side (CO-RE; loaded by bpf/trace.c).
 *
 * Calls: the worker's call_finished probe leaves the execution times of call (actor, seq) in
 * `inflight`; the node manager's call_stored probe, which comes with the times the call was queued
 * and dispatched, joins them and adds the four phases (and the total) to the actor's and method's
 * log2 histograms in `hists` — always — and, in timeline mode, sends one event per call to `events`.
 *
 * Scheduler: raw tracepoints sched_wakeup, sched_wakeup_new and sched_switch follow the threads of
 * the actors' workers (by tgid in `tasks`, or by cgroup in `cgroups`), taking the task from the
 * tracepoint's arguments (the task being woken, not current): run-queue delay (woken or preempted
 * until running), off-CPU time (asleep until woken) and on-CPU slices, per actor in `sched`.
 *
 * The handlers are __always_inline functions of plain scalars, so that the unit test's raw_tp
 * programs (tests/unit/bpf/test-trace.bpf.c) drive exactly this code with BPF_PROG_TEST_RUN.
 */

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "trace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings, fixed at load. */
const volatile __u32 sched_events = 1; /* timeline mode includes the scheduler's spans */

/* Switched at run time by userspace (through the skeleton's bss). */
__u32 timeline_on;
__u32 n_cgroups;  /* entries in `cgroups`: look the cgroup up only when there are any */
__u64 dropped;    /* timeline events the ring buffer had no room for */

/* Zeroed sources for new map entries (too large for the BPF stack). */
struct kt_call_stats zero_call;
struct kt_sched_stats zero_sched;

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 16384);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct kt_call_key);
        __type(value, struct kt_call_stats);
} hists SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 8192);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, __u64);
        __type(value, struct kt_sched_stats);
} sched SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 16384);
        __type(key, __u64);
        __type(value, struct kt_actor_info);
} actors SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 16384);
        __type(key, __u32);
        __type(value, __u64);
} tasks SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 16384);
        __type(key, __u64);
        __type(value, __u64);
} cgroups SEC(".maps");

/* Method names, for bpftool map dump (written by userspace). */
struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 16384);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, __u32);
        __type(value, char[64]);
} methods SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 65536);
        __type(key, struct kt_inflight_key);
        __type(value, struct kt_inflight);
} inflight SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 16384);
        __type(key, __u32);
        __type(value, struct kt_thread);
} threads SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_RINGBUF);
        __uint(max_entries, 4 << 20); /* userspace may resize before load */
} events SEC(".maps");

static __always_inline __u32 log2_u64(__u64 v) {
        __u32 r, shift;

        r = (v > 0xFFFFFFFFULL) << 5;
        v >>= r;
        shift = (v > 0xFFFF) << 4;
        v >>= shift;
        r |= shift;
        shift = (v > 0xFF) << 3;
        v >>= shift;
        r |= shift;
        shift = (v > 0xF) << 2;
        v >>= shift;
        r |= shift;
        shift = (v > 0x3) << 1;
        v >>= shift;
        r |= shift;
        r |= (v >> 1);
        return r;
}

static __always_inline void hist_add(struct kt_hist *h, __u64 d) {
        __u32 slot = d ? log2_u64(d) + 1 : 0;

        if (slot > TRACE_HIST_SLOTS - 1)
                slot = TRACE_HIST_SLOTS - 1;
        __sync_fetch_and_add(&h->count, 1);
        __sync_fetch_and_add(&h->sum_ns, d);
        __sync_fetch_and_add(&h->slots[slot], 1);
}

static __always_inline __u64 span(__u64 from, __u64 to) {
        return to > from ? to - from : 0;
}

/* The worker's probe: call seq of the actor ran from t_start to t_end. */
static __always_inline int on_call_finished(__u64 actor, __u64 seq, __u64 t_start, __u64 t_end, __u32 tid) {
        struct kt_inflight_key key = { .actor = actor, .seq = seq };
        struct kt_inflight v = { .t_start = t_start, .t_end = t_end, .tid = tid };

        if (!bpf_map_lookup_elem(&actors, &actor))
                return 0;
        bpf_map_update_elem(&inflight, &key, &v, BPF_ANY);
        return 0;
}

/* The node manager's probe: the result of call seq is stored, now. */
static __always_inline int on_call_stored(__u64 actor, __u64 seq, __u64 obj, __u32 method, __u64 t_queued,
                                          __u64 t_dispatched, __u64 now) {
        struct kt_inflight_key ikey = { .actor = actor, .seq = seq };
        struct kt_call_key key = { .actor = actor, .method = method };
        struct kt_call_stats *st;
        struct kt_inflight *in;
        __u64 t_start = 0, t_end = 0;
        __u32 tid = 0;

        /* Queued before tracing began: its phases are unknown. */
        if (!t_queued || !t_dispatched)
                return 0;
        if (!bpf_map_lookup_elem(&actors, &actor))
                return 0;

        in = bpf_map_lookup_elem(&inflight, &ikey);
        if (in) {
                t_start = in->t_start;
                t_end = in->t_end;
                tid = in->tid;
                bpf_map_delete_elem(&inflight, &ikey);
        }

        st = bpf_map_lookup_elem(&hists, &key);
        if (!st) {
                bpf_map_update_elem(&hists, &key, &zero_call, BPF_NOEXIST);
                st = bpf_map_lookup_elem(&hists, &key);
                if (!st)
                        return 0;
        }
        __sync_fetch_and_add(&st->calls, 1);
        hist_add(&st->phase[TRACE_PHASE_QUEUE], span(t_queued, t_dispatched));
        if (t_start) {
                hist_add(&st->phase[TRACE_PHASE_DISPATCH], span(t_dispatched, t_start));
                hist_add(&st->phase[TRACE_PHASE_EXEC], span(t_start, t_end));
                hist_add(&st->phase[TRACE_PHASE_DELIVER], span(t_end, now));
        } else
                __sync_fetch_and_add(&st->no_worker, 1);
        hist_add(&st->phase[TRACE_PHASE_TOTAL], span(t_queued, now));

        if (!timeline_on)
                return 0;
        struct kt_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
        if (!e) {
                __sync_fetch_and_add(&dropped, 1);
                return 0;
        }
        e->type = TRACE_EVENT_CALL;
        e->kind = 0;
        e->actor = actor;
        e->method = method;
        e->tid = tid;
        e->seq = seq;
        e->obj = obj;
        e->t[0] = t_queued;
        e->t[1] = t_dispatched;
        e->t[2] = t_start;
        e->t[3] = t_end;
        e->t[4] = now;
        /* Wake the reader only when a good part of the buffer is full; it also reads on a timer. */
        bpf_ringbuf_submit(e, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (1 << 20) ? BPF_RB_FORCE_WAKEUP
                                                                                            : BPF_RB_NO_WAKEUP);
        return 0;
}

/* ---- scheduler ---- */

static __always_inline __u64 *task_actor(__u32 tgid, __u64 cgroup_id) {
        __u64 *a = bpf_map_lookup_elem(&tasks, &tgid);
        if (!a && cgroup_id)
                a = bpf_map_lookup_elem(&cgroups, &cgroup_id);
        return a;
}

static __always_inline struct kt_sched_stats *sched_stats(__u64 actor) {
        struct kt_sched_stats *st = bpf_map_lookup_elem(&sched, &actor);
        if (!st) {
                bpf_map_update_elem(&sched, &actor, &zero_sched, BPF_NOEXIST);
                st = bpf_map_lookup_elem(&sched, &actor);
        }
        return st;
}

static __always_inline void sched_span(__u64 actor, __u32 kind, __u32 tid, __u64 from, __u64 to) {
        struct kt_sched_stats *st = sched_stats(actor);
        __u64 d = span(from, to);

        if (st && kind < TRACE_SCHED_MAX)
                hist_add(&st->hist[kind], d);
        if (!timeline_on || !sched_events || kind == TRACE_SCHED_ONCPU)
                return;
        struct kt_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
        if (!e) {
                __sync_fetch_and_add(&dropped, 1);
                return;
        }
        __builtin_memset(e, 0, sizeof(*e));
        e->type = TRACE_EVENT_SCHED;
        e->kind = kind;
        e->actor = actor;
        e->tid = tid;
        e->t[0] = from;
        e->t[1] = to;
        bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline struct kt_thread *thread_get(__u32 pid, __u64 actor) {
        struct kt_thread *t = bpf_map_lookup_elem(&threads, &pid);
        if (!t || t->actor != actor) {
                struct kt_thread n = { .actor = actor };
                bpf_map_update_elem(&threads, &pid, &n, BPF_ANY);
                t = bpf_map_lookup_elem(&threads, &pid);
        }
        return t;
}

/* Task pid of process tgid is woken (or new). */
static __always_inline int on_wakeup(__u32 pid, __u32 tgid, __u64 cgroup_id, __u64 now) {
        __u64 *actor = task_actor(tgid, cgroup_id);
        struct kt_thread *t;

        if (!actor)
                return 0;
        t = thread_get(pid, *actor);
        if (!t)
                return 0;
        if (t->t_sleep) {
                sched_span(t->actor, TRACE_SCHED_OFFCPU, pid, t->t_sleep, now);
                t->t_sleep = 0;
        }
        if (!t->t_ready && !t->t_on)
                t->t_ready = now;
        return 0;
}

/* prev leaves the CPU (still runnable when preempted), next takes it. */
static __always_inline int on_switch(__u32 prev_pid, __u32 prev_tgid, __u64 prev_cgroup, int prev_runnable,
                                     __u32 next_pid, __u32 next_tgid, __u64 next_cgroup, __u64 now) {
        __u64 *actor;
        struct kt_thread *t;

        actor = prev_pid ? task_actor(prev_tgid, prev_cgroup) : NULL;
        if (actor) {
                t = thread_get(prev_pid, *actor);
                if (t) {
                        if (t->t_on)
                                sched_span(t->actor, TRACE_SCHED_ONCPU, prev_pid, t->t_on, now);
                        t->t_on = 0;
                        if (prev_runnable) {
                                t->t_ready = now;
                                t->t_sleep = 0;
                        } else {
                                t->t_sleep = now;
                                t->t_ready = 0;
                        }
                }
        }

        actor = next_pid ? task_actor(next_tgid, next_cgroup) : NULL;
        if (actor) {
                t = thread_get(next_pid, *actor);
                if (t) {
                        if (t->t_ready)
                                sched_span(t->actor, TRACE_SCHED_RUNQ, next_pid, t->t_ready, now);
                        t->t_ready = 0;
                        t->t_sleep = 0;
                        t->t_on = now;
                }
        }
        return 0;
}

static __always_inline __u64 task_cgroup_id(struct task_struct *p) {
        if (!n_cgroups)
                return 0;
        return BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
}

/* ---- attach points ---- */

SEC("usdt")
int BPF_USDT(call_finished, __u64 actor, __u64 seq, __u64 t_start, __u64 t_end) {
        return on_call_finished(actor, seq, t_start, t_end, (__u32) bpf_get_current_pid_tgid());
}

SEC("usdt")
int BPF_USDT(call_stored, __u64 actor, __u64 seq, __u64 obj, __u32 method, __u64 t_queued, __u64 t_dispatched) {
        return on_call_stored(actor, seq, obj, method, t_queued, t_dispatched, bpf_ktime_get_ns());
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p) {
        return on_wakeup(BPF_CORE_READ(p, pid), BPF_CORE_READ(p, tgid), task_cgroup_id(p), bpf_ktime_get_ns());
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p) {
        return on_wakeup(BPF_CORE_READ(p, pid), BPF_CORE_READ(p, tgid), task_cgroup_id(p), bpf_ktime_get_ns());
}

SEC("raw_tp/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state) {
        /* TASK_RUNNING is 0: a task that leaves the CPU in it was preempted and waits for one. */
        return on_switch(BPF_CORE_READ(prev, pid), BPF_CORE_READ(prev, tgid), task_cgroup_id(prev),
                         preempt || prev_state == 0, BPF_CORE_READ(next, pid), BPF_CORE_READ(next, tgid),
                         task_cgroup_id(next), bpf_ktime_get_ns());
}

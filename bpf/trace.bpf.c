// SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause)
/*
 * kactor's task-latency tracing, the kernel side (CO-RE; loaded by bpf/trace.c).
 *
 * Calls: no program runs per call. The node manager sees every phase of a call (the worker sends
 * its start and end with the result) and adds them itself to `hists`, an mmapable array (slot per
 * actor and method, named in `calls`) that it maps: in-kernel histograms, pinned, readable with
 * bpftool, at the cost of a few additions in memory. In timeline mode it records its call events
 * itself; `events` carries the scheduler's.
 *
 * Scheduler: BTF tracepoints sched_wakeup, sched_wakeup_new and sched_switch follow the threads of
 * the actors' workers, taking the task from the tracepoint's arguments (the task being woken, not
 * current): run-queue delay (woken or preempted until running), off-CPU time (asleep until woken)
 * and on-CPU slices, per actor in `sched`. They run on every context switch of the host, so they
 * filter first, with direct loads: a task is an actor's when its cgroup is in `cgroups` (or, for
 * actors without a cgroup, its process in `tasks`); the lookups are skipped while a map is empty.
 *
 * The handlers are __always_inline functions of plain scalars, so that the unit test's raw_tp
 * programs (tests/unit/bpf/test-trace.bpf.c) drive exactly this code with BPF_PROG_TEST_RUN.
 */

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "trace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings, fixed at load. */
const volatile __u32 sched_events = 1; /* timeline mode includes the scheduler's spans */

/* Switched at run time by userspace (through the skeleton's bss). */
__u32 timeline_on;
__u32 n_cgroups;  /* entries in `cgroups`: look the cgroup up only when there are any */
__u32 n_tasks;    /* entries in `tasks`: likewise */
__u64 dropped;    /* timeline events the ring buffer had no room for */

/* A zeroed source for new map entries (too large for the BPF stack). */
struct kt_sched_stats zero_sched;

/* Written by the node manager through its mapping, read by it and by bpftool. */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, TRACE_CALL_SLOTS);
        __uint(map_flags, BPF_F_MMAPABLE);
        __type(key, __u32);
        __type(value, struct kt_call_stats);
} hists SEC(".maps");

/* Whose each slot of `hists` is (written by the node manager). */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, TRACE_CALL_SLOTS);
        __type(key, __u32);
        __type(value, struct kt_call_key);
} calls SEC(".maps");

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

static __always_inline void event_submit(struct kt_event *e) {
        /* Wake the reader only when a good part of the buffer is full; it also reads on a timer. */
        bpf_ringbuf_submit(e, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (1 << 20) ? BPF_RB_FORCE_WAKEUP
                                                                                            : BPF_RB_NO_WAKEUP);
}

/* ---- scheduler ---- */

static __always_inline __u64 *task_actor(__u32 tgid, __u64 cgroup_id) {
        __u64 *a = NULL;
        if (cgroup_id && n_cgroups)
                a = bpf_map_lookup_elem(&cgroups, &cgroup_id);
        if (!a && n_tasks)
                a = bpf_map_lookup_elem(&tasks, &tgid);
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
        event_submit(e);
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

/* The time now, read only once a task turned out to be tracked (the tests pass theirs). */
static __always_inline __u64 now_ns(__u64 now) {
        return now ?: bpf_ktime_get_ns();
}

/* Task pid of process tgid is woken (or new). now: 0 for the clock. */
static __always_inline int on_wakeup(__u32 pid, __u32 tgid, __u64 cgroup_id, __u64 now) {
        __u64 *actor = task_actor(tgid, cgroup_id);
        struct kt_thread *t;

        if (!actor)
                return 0;
        now = now_ns(now);
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

/* prev leaves the CPU (still runnable when preempted), next takes it. now: 0 for the clock. */
static __always_inline int on_switch(__u32 prev_pid, __u32 prev_tgid, __u64 prev_cgroup, int prev_runnable,
                                     __u32 next_pid, __u32 next_tgid, __u64 next_cgroup, __u64 now) {
        __u64 *actor;
        struct kt_thread *t;

        actor = prev_pid ? task_actor(prev_tgid, prev_cgroup) : NULL;
        if (actor) {
                now = now_ns(now);
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
                now = now_ns(now);
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

/* The task's cgroup v2 id, by direct loads (BTF pointers): no helper calls. */
static __always_inline __u64 task_cgroup_id(struct task_struct *p) {
        if (!n_cgroups)
                return 0;
        return p->cgroups->dfl_cgrp->kn->id;
}

/* Whether anything is tracked: until then the tracepoints return at once. */
static __always_inline bool tracking(void) {
        return n_cgroups || n_tasks;
}

/* ---- attach points ---- */

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p) {
        if (!tracking())
                return 0;
        return on_wakeup(p->pid, p->tgid, task_cgroup_id(p), 0);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p) {
        if (!tracking())
                return 0;
        return on_wakeup(p->pid, p->tgid, task_cgroup_id(p), 0);
}

/* A task's last switch: it exited (TASK_DEAD, include/linux/sched.h, a #define BTF does not carry). */
#define KT_TASK_DEAD 0x80

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state) {
        /* A thread's last switch: its entry goes too, not when the LRU gets to it, so that a dead actor's
         * threads leave nothing behind. Whether or not anything is tracked: the actor's cgroup left
         * `cgroups` when it died, before its threads were done exiting, and it may have been the last
         * one. Once per thread exit on the host, a hash lookup. */
        if (prev_state & KT_TASK_DEAD) {
                __u32 pid = prev->pid;
                if (tracking())
                        on_switch(pid, prev->tgid, task_cgroup_id(prev), 0, next->pid, next->tgid,
                                  task_cgroup_id(next), 0);
                bpf_map_delete_elem(&threads, &pid);
                return 0;
        }
        if (!tracking())
                return 0;
        /* TASK_RUNNING is 0: a task that leaves the CPU in it was preempted and waits for one. */
        return on_switch(prev->pid, prev->tgid, task_cgroup_id(prev), preempt || prev_state == 0, next->pid,
                         next->tgid, task_cgroup_id(next), 0);
}

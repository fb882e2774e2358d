/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The loader of bpf/trace.bpf.c (bpf/trace.c). Functions return >= 0 or a negative errno. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "trace.h"

typedef struct Trace Trace;

typedef void (*trace_event_fn)(const struct kt_event *e, void *userdata);
typedef void (*trace_call_fn)(const struct kt_call_key *key, const struct kt_call_stats *st, void *userdata);
typedef void (*trace_sched_fn)(uint64_t actor, const struct kt_sched_stats *st, void *userdata);
typedef void (*trace_thread_fn)(uint32_t tid, const struct kt_thread *th, void *userdata);

typedef struct TraceOptions {
        size_t sz;
        const char *node_id;   /* pin the maps under TRACE_PIN_ROOT/node_id; NULL: don't pin */
        size_t ringbuf_size;   /* bytes, a power of two; 0: the default (4 MiB) */
        bool sched_events;     /* timeline mode includes the scheduler's spans */
        trace_event_fn event_fn; /* ring buffer events, from trace_ringbuf_consume() */
        void *event_userdata;
} TraceOptions;

/* Loads, attaches (the scheduler tracepoints), maps the call histograms and pins. On failure
 * *ret_reason (malloc'd, may be NULL on OOM) says why in words for an operator. */
int trace_new(const TraceOptions *opts, Trace **ret, char **ret_reason);
/* Detaches, unpins and unloads. Accepts NULL; returns NULL. */
Trace *trace_free(Trace *t);

/* Detaches every program or attaches them again (the call histograms are the caller's to stop). */
int trace_set_enabled(Trace *t, bool enabled);
bool trace_is_enabled(const Trace *t);
const char *trace_pin_dir(const Trace *t);

/* Actors: key is kactor_trace_id_hash() of the id; pid the worker's (0: none yet). */
int trace_actor_add(Trace *t, uint64_t key, uint64_t id_hi, uint64_t id_lo, pid_t pid);
int trace_actor_set_cgroup(Trace *t, uint64_t key, uint64_t cgroup_id);
/* The actor's worker is gone: its figures stay until trace_actor_forget(). */
int trace_actor_gone(Trace *t, uint64_t key);
/* Forgets the actor and its scheduler figures (its call slots are freed with trace_call_slot_free()). */
int trace_actor_forget(Trace *t, uint64_t key);
int trace_method_add(Trace *t, uint32_t id, const char *name);

/* A slot of the call histograms for (actor, method): its index, or -ENOSPC when all are taken. */
int trace_call_slot_new(Trace *t, uint64_t actor, uint32_t method);
/* Clears the slot's figures and gives it back. */
void trace_call_slot_free(Trace *t, int slot);
/* The slot's figures, in the map's memory: the caller adds to them (one thread). */
struct kt_call_stats *trace_call_stats(Trace *t, int slot);
void trace_set_timeline(Trace *t, bool on);
uint64_t trace_dropped(const Trace *t);
int trace_ringbuf_fd(const Trace *t);
int trace_ringbuf_consume(Trace *t);

int trace_foreach_call(Trace *t, trace_call_fn fn, void *userdata);
int trace_foreach_sched(Trace *t, trace_sched_fn fn, void *userdata);
/* The threads the scheduler programs follow now, with their state (what each waits for, since when). */
int trace_foreach_thread(Trace *t, trace_thread_fn fn, void *userdata);
/* Clears the histograms and the dropped-event count. */
void trace_reset(Trace *t);

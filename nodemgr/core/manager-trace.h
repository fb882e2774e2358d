/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The node manager's side of tracing (bpf/): loads the programs at start where it may (else says
 * once why, and runs without), tells them about its actors, counts its calls' phases in the
 * mapped histograms (and, in timeline mode, sends one event per call), and answers io.kactor.Trace1
 * (trace-bus.c). Every hook is cheap and safe to call while tracing is off; the call hooks run
 * only while m->trace_calls.
 */

#include <stdbool.h>
#include <stdint.h>

#include "manager.h"
#include "probes.h"

typedef struct ManagerTrace ManagerTrace;

/* Loads and attaches, or records why not (KACTOR_TRACE=off in the environment turns it off). */
void manager_trace_start(Manager *m);
/* Unloads, detaches and unpins. Idempotent. */
void manager_trace_stop(Manager *m);

bool manager_trace_enabled(Manager *m);
/* Detaches / attaches the programs and stops / resumes counting calls. */
int manager_trace_set_enabled(Manager *m, bool enabled);
/* Why tracing is off ("" when on). */
const char *manager_trace_reason(Manager *m);

/* The actor's worker is ready (started or restarted). */
void manager_trace_actor_ready(Manager *m, Actor *a);
/* The actor is dead / about to be freed. */
void manager_trace_actor_died(Manager *m, Actor *a, bool expected);
void manager_trace_actor_freed(Manager *m, Actor *a);
/* The actor's cgroup (v2 id): its threads are followed by cgroup from now on. */
void manager_trace_actor_cgroup(Manager *m, Actor *a, uint64_t cgroup_id);

/* The node manager's time for the calls' phases: CLOCK_MONOTONIC ns, read once per event-loop
 * iteration (a clock read costs as much as the rest of a call's accounting). */
uint64_t manager_trace_now(Manager *m);
/* A call joined the actor's queue (while m->trace_calls, or the call_stored probe is attached). */
void manager_trace_call_queued(Manager *m, Actor *a, Call *c);
/* Its result is stored (code, and message when it failed): adds its phases (with the worker's times,
 * w->exec_*_ns) to the histograms. */
void manager_trace_call_stored(Manager *m, Actor *a, Call *c, kactor_error code, const char *message);

/* For trace-bus.c: what the programs gathered, with names. */
typedef struct TraceActor {
        uint64_t key;
        Actor *actor; /* NULL once freed */
        char id_string[KACTOR_ID_STRING_MAX];
        char *class_name;
        char *name;
        char *label; /* "actor ID (Class)" */
        pid_t pid;
        uid_t uid;             /* whose it is: the user who created it */
        struct {
                uint32_t method;
                int slot;      /* in the histograms, -ENOSPC when none was free */
        } *methods;            /* the methods it was called with */
        size_t n_methods;
        UT_hash_handle hh;
} TraceActor;

typedef struct Trace Trace;
/* The loader, or NULL while tracing is off. */
Trace *manager_trace_loader(Manager *m);
const TraceActor *manager_trace_actor_by_key(Manager *m, uint64_t key);
const char *manager_trace_method_name(Manager *m, uint32_t id);
/* Whether the filter (an actor id, a prefix of one, or a name; NULL or "" for all) matches. */
bool manager_trace_actor_matches(const TraceActor *a, const char *filter);

/* The histograms as Prometheus text (malloc'd). */
/* The Prometheus text of every traced actor's histograms, or of those of one user (only_uid, or
 * (uid_t) -1 for all). */
int manager_trace_prometheus(Manager *m, uid_t only_uid, char **ret);

/* Timeline mode: begin collecting events (-EBUSY while another collection runs); end, write the
 * Chrome trace JSON to fd, and say how many events it holds and how many were dropped. */
int manager_trace_timeline_begin(Manager *m);
int manager_trace_timeline_end(Manager *m, int fd, uint64_t *ret_events, uint64_t *ret_dropped);
bool manager_trace_timeline_active(Manager *m);

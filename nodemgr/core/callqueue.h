/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A call queue: the calls of one actor (or of the task pool) in submission order. Calls leave the
 * queue in that order only: the head waits until its arguments are ready, and everything behind it
 * waits too. Dispatched calls move to the in-flight list and finish in the same order.
 * Pure logic, no I/O.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "kactor/value.h"
#include "objstore.h"

typedef struct Call Call;

typedef enum CallKind {
        CALL_NORMAL, /* a call someone made; its result is delivered */
        CALL_REPLAY, /* a logged call run again to rebuild the actor; its result is dropped */
        CALL_SAVE,   /* a checkpoint: the module's save hook */
} CallKind;

struct Call {
        TAILQ_ENTRY(Call) link;
        CallKind kind;
        Object *result; /* referenced; NULL for a direct call whose result is kept for its caller
                         * (direct-results.h) unless someone named it before it came */
        kactor_id direct_id; /* a direct call: its result's id */
        char *method;   /* actor call: the method; task: the function */
        char *module;   /* task */
        char *args;     /* packed list */
        size_t args_len;
        kactor_id *ids; /* ids named in args, held while the call lives */
        uint8_t *id_actor;
        size_t n_ids;
        bool top_refs;          /* args has object references at the top level, resolved on dispatch */
        Waiter deps;            /* waiting for those */
        uint64_t seq;           /* assigned on dispatch */
        uint64_t lineage_index; /* CALL_REPLAY: the logged call it repeats */
        double num_cpus;        /* task */
        uid_t uid;              /* task: the user it runs as (the caller's), in a worker of that user */
        gid_t gid;
        uint64_t sent_usec;     /* task: when it was sent to its worker (service time) */
        uint32_t trace_method;                         /* tracing (manager-trace.c): the method's id, */
        uint64_t trace_queued_ns, trace_dispatched_ns; /* and when, while calls are traced */
        void *owner;                                   /* the actor, or NULL for tasks */
        void *remote;                                  /* a call on an actor on a peer (remote.c) */
        void *manager;
        bool args_inline; /* args points into storage (not separately allocated) */
        bool direct;      /* a direct call: its worker reported it (MSG_DIRECT), nobody sent it */
        char storage[];   /* the arguments as submitted, in the same allocation */
};

/* The id of a call's result (zero for calls that have none). */
static inline kactor_id call_result_id(const Call *c) {
        return c->result ? c->result->id : c->direct_id;
}

/* A direct call's result with no object (yet): kept for its caller once it comes. Still so after
 * the call was queued again for the next worker (no longer `direct` then). */
static inline bool call_result_unmade(const Call *c) {
        return !c->result && (c->direct_id.hi | c->direct_id.lo) != 0;
}

typedef TAILQ_HEAD(CallList, Call) CallList;

typedef struct CallQueue {
        CallList queued;
        CallList inflight;
        size_t n_queued;
        size_t n_inflight;
        Call *direct_tail; /* the last of the direct calls at the head of the in-flight list */
} CallQueue;

void callqueue_init(CallQueue *q);
void callqueue_push(CallQueue *q, Call *c);
/* The head of the queue, when its arguments are ready (deps.remaining == 0), else NULL. */
Call *callqueue_peek_ready(CallQueue *q);
/* Moves the head to the in-flight list with sequence number seq. */
void callqueue_start(CallQueue *q, Call *c, uint64_t seq);
/* Takes the oldest in-flight call if its seq matches; NULL otherwise (a worker that answers out of
 * order is broken). */
Call *callqueue_finish(CallQueue *q, uint64_t seq);
/* A direct call the worker runs next after the direct calls it recorded before: after those, at the
 * head of the in-flight list (every relayed call it ran before has answered; it reads the records of
 * a batch of direct calls before it runs them). */
void callqueue_start_first(CallQueue *q, Call *c);
/* Takes the oldest in-flight call if it is a direct one; NULL otherwise. */
Call *callqueue_finish_direct(CallQueue *q);
/* Removes a queued or in-flight call from the queue (it is taken over elsewhere). */
/* The direct call (running, or queued again) whose result, with no object yet, is result; or NULL. */
Call *callqueue_find_direct(CallQueue *q, kactor_id result);
void callqueue_remove(CallQueue *q, Call *c, bool inflight);
/* Adds a call straight to the in-flight list (replays and checkpoints, which skip the queue). */
void callqueue_start_direct(CallQueue *q, Call *c, uint64_t seq);
/* Puts the in-flight calls back at the head of the queue, in their order (the worker died before
 * answering them: they run again). Returns how many. */
size_t callqueue_requeue_inflight(CallQueue *q);
/* Removes and returns the next call, in-flight ones first, for failing them all. */
Call *callqueue_pop_any(CallQueue *q);
static inline bool callqueue_is_empty(const CallQueue *q) {
        return q->n_queued == 0 && q->n_inflight == 0;
}

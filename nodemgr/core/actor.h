/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* actor.c: actors, their lifecycle and the call path. The types (Actor, ActorState, ActorSpec)
 * are in manager.h: the manager and its actors are one model, as systemd's manager and units. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kactor/value.h"
#include "cgroup-manager.h"
#include "manager.h"

const char *actor_state_to_string(ActorState s);

int actor_create(Manager *m, const ActorSpec *spec, Actor **ret, ReqError *e);
/* Here, or on a peer (the Node option, or when it does not fit here): *ret_local is NULL then. */
int actor_create_anywhere(Manager *m, const ActorSpec *spec, Actor **ret_local, kactor_id *ret_id,
                          ReqError *e);
/* A call made elsewhere that the actor takes over, in order (it came back on this node). */
void actor_adopt_call(Actor *a, Call *c);
void actor_ref(Actor *a);
void actor_unref(Actor *a);
bool actor_ref_id(Manager *m, kactor_id id);
void actor_unref_id(Manager *m, kactor_id id);
/* Kills an actor's worker; pending calls fail with ActorDied. */
int actor_kill(Actor *a, bool no_restart, const char *why);
/* The same at a user's request (Kill): said in the journal at the default level, with who asked. */
int actor_kill_by_request(Actor *a, bool no_restart, uid_t uid);
/* Tries to send queued calls to the actor's worker. */
void actor_dispatch(Actor *a);
void actor_worker_ready(Actor *a, kactor_error code, const char *message, uint32_t flags);
void actor_worker_gone(Actor *a, const char *cause);
void actor_set_state(Actor *a, ActorState state);
/* What the D-Bus service shows of an actor that changed. Queued on the manager and sent, coalesced,
 * by the service once per event loop iteration, as systemd's unit_add_to_dbus_queue() does: the
 * core does not know the bus. */
typedef enum ActorChange {
        ACTOR_CHANGE_ADDED = 1u << 0, /* InterfacesAdded (with every property) */
        ACTOR_CHANGE_STATE = 1u << 1,
        ACTOR_CHANGE_DEATH_CAUSE = 1u << 2,
        ACTOR_CHANGE_RESTARTS = 1u << 3,
        ACTOR_CHANGE_GPU_IDS = 1u << 4,
} ActorChange;
void actor_queue_change(Actor *a, ActorChange change);
void actor_free(Actor *a);
/* Returns the actor's GPUs and CPUs to the pool. */
void actor_release_resources(Actor *a);

/*
 * Submits a call by user uid. The result object (id chosen by the caller) is created for that user,
 * whom the caller makes its holder (a connection's, or pinned over D-Bus). args: a packed list.
 * Errors that concern the call itself (no such actor, dead actor, a user who may not call it or an
 * argument another user owns: AccessDenied) make the object fail rather than the submission; a request
 * outside the limits (spec-check.h) is refused before any object is made (-EREMOTEIO, InvalidArgs).
 */
int actor_submit_call(Manager *m, kactor_id actor, kactor_id object, const char *method, size_t method_len,
                      const char *args, size_t args_len, uid_t uid, Object **ret, ReqError *e);

/* Whether user uid's connection may be handed a direct socket to actor a (id: what was asked for;
 * a: NULL when it is not here): 0, or -EREMOTEIO with e saying why not (docs/protocol.md, "Direct
 * calls"): NoSuchActor, AccessDenied, NotSupported (another node's, or in a cluster, where records go
 * to replicas first), or Timeout (not alive yet: ask again later). */
int actor_direct_check(Manager *m, Actor *a, kactor_id id, uid_t uid, ReqError *e);
/*
 * The record of a direct call that a's worker is about to run, for user uid (the caller its socket
 * was handed to): the call becomes the head of the running ones (every call sent before it has
 * answered), counted as submitted. Its result has no object until it comes (direct-results.h).
 * maybe_resent: the caller may have sent the call again relayed before this record came (its socket
 * broke, or it came back after a restart): then that call is taken over. *ret_new: a result object
 * made now, already failed (the actor is dead): the caller gives it its holder, or drops it.
 */
int actor_direct_call(Actor *a, kactor_id object, const char *method, size_t method_len, const char *args,
                      size_t args_len, uid_t uid, uint64_t read_ns, bool maybe_resent, Object **ret_new);

/* The result of a call of the actor came back (call_finish() stored it): the lineage log, the
 * replicas and the queue move on, and the call is freed. */
void actor_call_finished(Actor *a, Call *c, kactor_error code, const char *message, const char *data, size_t len,
                         uint32_t flags);

/* An actor a previous node manager ran, from its journal (persist.c): the spec as at its creation
 * (with its id and lineage), what it was given, and its worker and cgroup as they are now. */
typedef struct ActorRestore {
        ActorSpec spec;
        const char *module_path; /* resolved then */
        uid_t run_uid;
        gid_t run_gid;
        const uint32_t *gpus;    /* spec.num_gpus of them */
        uint32_t restarts;
        pid_t pid;               /* its worker (0: none was started) */
        uint64_t starttime;      /* and that process's start time */
        uint64_t prefix;         /* the id prefix of the worker's connection */
        uint64_t journaled_seq;
        bool ready;              /* its constructor was known to have finished */
        const char *bus_owner;   /* the D-Bus connection that owned it, tracked again later */
        ActorCgroupAdopt cgroup;
} ActorRestore;
/* Lists the actor again, adopts its cgroup and worker (which re-attaches). The constructor
 * arguments' holds wait for actor_restore_args_all() (after the objects are back), and what
 * cannot be had again (a worker gone meanwhile) is handled by actor_restore_finish_all(). */
int actor_restore(Manager *m, const ActorRestore *r);
void actor_restore_args_all(Manager *m);
void actor_restore_finish_all(Manager *m);
/* A restored actor's worker re-attached on connection c (checked): it takes up where it was; the
 * results it sends again (ATTACH's list) that the journal lacks are stored and logged, in order. */
int actor_attach_worker(Actor *a, Conn *c, uint64_t last_seq, uint32_t flags, const msgpack_object *redelivered);

/* Rebuilds the result of logged call `index` of actor a in a temporary worker. On failure
 * *ret_why says why it cannot be done. */
int actor_rebuild_object(Actor *a, Object *o, uint64_t index, char **ret_why);

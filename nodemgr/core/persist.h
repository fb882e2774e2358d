/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * persist.c: what outlives the node manager's process. Actors keep running when the manager stops
 * (SIGTERM, an upgrade, a crash); the next manager started with the same runtime directory takes
 * them over from a state journal in that directory: the node's identity, every actor (its spec,
 * worker, cgroup), its lineage and checkpoint, every finished object, and who held what. The
 * journal is appended to once per event loop iteration, before any reply of that iteration goes
 * out, so whatever a client or worker was told is in it, whenever the process dies. It is rewritten
 * compactly at start and when it has grown well past what it describes. Format: docs/restart.md.
 */

#include <stdbool.h>
#include <stdint.h>

#include "manager.h"

#define PERSIST_FORMAT_VERSION 2
#define PERSIST_FILE_NAME "state"
/* The lineage file: lineage.<generation> beside the state (persist.c). */
#define PERSIST_LINEAGE_FILE_NAME "lineage"

/* What a connection (by its id prefix; 0: D-Bus) holds. */
typedef enum PersistHold {
        PERSIST_HOLD_OWN = 0,    /* an object it made */
        PERSIST_HOLD_OBJECT = 1, /* an object it received */
        PERSIST_HOLD_ACTOR = 2,  /* an actor handle */
        PERSIST_HOLD_PIN = 3,    /* an object pinned over D-Bus (prefix 0) */
} PersistHold;

/* Opens <runtime-dir>/state and reads what a previous manager left: the node id is taken over at
 * once, the rest waits for persist_restore(). Before the cgroup manager reaps orphans, so that it
 * can spare the restored actors' cgroups (persist_keeps_cgroup()). A file that cannot be read is
 * set aside (renamed) and logged; the manager starts empty then. */
int persist_open(Manager *m);
bool persist_keeps_cgroup(Manager *m, const char *kind, const char *id);
/* Makes the actors, objects and holds read by persist_open() live again (after the transports are
 * set up: what clients held is held by placeholders until they come back). Workers re-attach. */
int persist_restore(Manager *m);
/* Writes what this iteration changed (once per iteration, before replies go out). */
void persist_flush(Manager *m);
/* At exit: keep the journal (actors keep running) or remove it (a shutdown stopped everything). */
void persist_close(Manager *m, bool keep);
void persist_free(Manager *m);

/* Hooks, from the core and the transports. Cheap: records are appended to a buffer. */
void persist_conn(Manager *m, uint64_t prefix, uid_t uid);
void persist_conn_end(Manager *m, uint64_t prefix);
void persist_actor(Actor *a);
void persist_actor_worker(Actor *a);
void persist_actor_ready(Actor *a);
/* a->bus_owner changed (set or cleared by the D-Bus service). */
void persist_bus_owner(Actor *a);
void persist_actor_end(Actor *a);
/* A logged call's record, with the worker's seq of the call (what the worker may send again). */
void persist_lineage(Actor *a, const LineageRecord *rec, uint64_t seq);
/* A call of the actor's worker whose result needs no record (read-only, a checkpoint) was handled. */
void persist_seq(Actor *a, uint64_t seq);
void persist_checkpoint(Actor *a);
void persist_object(Manager *m, Object *o);
/* A call (module NULL: on actor) or task (module, function method) made over D-Bus, whose result o
 * is pending: the next node manager makes it again if it is not answered before (the D-Bus caller
 * does not send it again, as libkactor does). */
void persist_bus_request(Manager *m, Object *o, const char *module, kactor_id actor, const char *method, double num_cpus,
                         const char *args, size_t args_len);
void persist_object_freed(Manager *m, Object *o);
/* A direct call's result kept for its caller c (direct-results.h), as persist_object() writes an
 * object: true when written. Then its end, as persist_object_freed(). */
bool persist_direct_result(Manager *m, const Conn *c, const DirectResult *d);
void persist_direct_result_freed(Manager *m, kactor_id id);
void persist_hold(Manager *m, uint64_t prefix, kactor_id id, PersistHold what, bool held);


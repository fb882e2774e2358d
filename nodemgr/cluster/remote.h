/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Actors across the cluster (docs/cluster.md): placement on peers, calls, gets and handles across
 * nodes, lineage replication to R peers before a result is delivered, and the rebuilding of a dead
 * node's actors on a surviving replica. The peer transport is peer.c; the frames are PEER_MSG_*
 * from PEER_MSG_DATA_FIRST (peer-proto.h).
 *
 * Where an actor lives: the node that made its id (the id's high half), unless this node learnt
 * otherwise (a placement it made, or a MOVED message). A node that does not host an actor it is
 * asked about answers with where it went, when it knows.
 */

#include <stdbool.h>

#include "cluster-hooks.h"
#include "manager.h"
#include "proto.h"

typedef struct Remote Remote;

#define REMOTE_REPLICAS_DEFAULT 1u

/* Sets up the cluster layer of a node whose config asks for one (cluster_listen or cluster_join): the
 * peer transport (peer.c), remote actors, and the manager's ClusterHooks, through which the manager
 * frees it. Returns 0 and does nothing on a single node, or a negative errno (-EINVAL for a bad
 * address or secret). */
int remote_setup(Manager *m, const ManagerConfig *config);
void remote_free(Manager *m);
/* At the end of each event loop iteration: the acks and DONEs gathered meanwhile go out, one
 * message each per actor or node. */
void remote_flush(Manager *m);

/* A frame of the data range from an authenticated peer. < 0 drops the peer (malformed frame). */
int remote_handle_frame(Manager *m, const char *from, const Frame *f);
/* A connection to a peer was (re)established: what was owed to it on a connection that may have
 * broken is sent again (calls without a result, fetches, finished results, replicas). Repeats are
 * harmless: calls and records are recognized by their ids and indexes. */
void remote_peer_connected(Manager *m, const char *node_id);

/* The member table changed. */
void remote_members_changed(Manager *m);
/* DEAD_NOTICE: packs where the actors that moved live now (for the member `to`, back from the
 * dead), and stops here the actors a notice says moved. */
int remote_pack_moved(Manager *m, msgpack_packer *pk, const char *to);
void remote_dead_notice(Manager *m, const msgpack_object *moved);

/* Placement: 1 when the actor is to be made on a peer (*ret_node, malloc'd), 0 for this node, or
 * -EREMOTEIO with e set (an unknown or dead Node option, or no node with the resources). */
int remote_place_actor(Manager *m, const ActorSpec *spec, char **ret_node, ReqError *e);
/* Asks node to make the actor; its id is made here and returned at once. The constructor's errors
 * arrive later, as the actor's death. */
int remote_create_actor(Manager *m, const ActorSpec *spec, const char *node, kactor_id *ret_id, ReqError *e);

/* An actor that is not here but can be reached on a peer. */
bool remote_actor_routable(Manager *m, kactor_id id);
/* A call on such an actor; o is the pending result (the caller's reference stays the caller's). */
int remote_submit_call(Manager *m, kactor_id actor, Object *o, const char *method, size_t method_len,
                       const char *args, size_t args_len, ReqError *e);
int remote_kill_actor(Manager *m, kactor_id actor, bool no_restart);
/* Handles held here on an actor that lives on a peer (the host learns who holds it). */
bool remote_actor_ref(Manager *m, kactor_id id);
void remote_actor_unref(Manager *m, kactor_id id);
/* An object made on a peer: a pending local copy that the peer is asked to fill. NULL when the id
 * cannot be on a live peer. The copy has one reference, the fetch's own, dropped once it is filled. */
Object *remote_fetch_object(Manager *m, kactor_id id);
/* What this node knows of an actor that lives on a peer (the bus shows it). -ENOENT when the id names no
 * actor reachable here. */
int remote_actor_view(Manager *m, kactor_id id, RemoteActorView *ret);

/* The call ready to go: its arguments are there (callqueue dependency callback). */
void remote_call_ready(Call *c);

/* The host's side of replication (actor.c). */
void remote_actor_started(Actor *a);     /* a new actor: replicas chosen, its creation sent */
/* A result of a replicated actor: 1 when it was taken (delivered once its record is on every
 * replica), 0 to deliver it now. */
int remote_defer_result(Actor *a, Call *c, bool logged, kactor_error code, const char *message, const char *data,
                        size_t len);
void remote_record_logged(Actor *a, uint64_t index);
void remote_checkpointed(Actor *a);
void remote_replayed(Actor *a, uint64_t index, kactor_error code, const char *message, const char *data,
                     size_t len);
void remote_actor_died(Actor *a);
/* The nodes that keep the actor's lineage, in order (NULL-terminated, malloc'd; empty when none). */
int remote_actor_replicas(const Actor *a, char ***ret);        /* for good: replicas drop it */
void remote_actor_freed(Actor *a);

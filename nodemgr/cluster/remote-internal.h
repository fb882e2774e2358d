/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of the cluster layer's actors share (remote.h describes the layer): its state
 * (Remote) and the functions one role calls in another. remote.c: setup, hooks, sending, where
 * actors live and the dispatch of peer messages; remote-actor.c: the caller's side (actors of
 * peers); remote-host.c: the host's side (serving peers, replication); remote-replica.c: the
 * replica's side; remote-rebuild.c: dead nodes, rebuilds, moves and fencing. Nothing outside
 * nodemgr/cluster/ includes it.
 */

#include <stdbool.h>

#include "cluster-hooks.h"
#include "lineage.h"
#include "manager.h"
#include "membership.h"
#include "peer.h"
#include "placement.h"
#include "proto.h"
#include "remote.h"
#include "remote-proto.h"

/* How long a caller waits for news of an actor whose node died before it gives up on it. */
#define REMOTE_LOST_TIMEOUT_USEC (10 * UINT64_C(1000000))
/* Every so often: LOCATE again for lost actors, send what could not be sent. */
#define REMOTE_TICK_USEC (250 * UINT64_C(1000))
/* Actors a DEAD_NOTICE names at most. */
#define REMOTE_MOVED_MAX 20000
/* Results of replayed calls are kept this long for callers that send their calls again. */
#define REMOTE_REBUILT_KEEP_USEC (60 * UINT64_C(1000000))

/* --- state ---------------------------------------------------------------------------------------- */

/* A peer node holds handles to an actor of ours. */
typedef struct PeerHold {
        struct {
                kactor_id actor;
                uint64_t node;
        } key;
        UT_hash_handle hh;
} PeerHold;

/* A result a peer waits for (its call on our actor, or a fetch), until it says DONE. */
typedef struct Serve {
        struct {
                kactor_id object;
                uint64_t node;
        } key;
        Remote *remote;
        Object *o;  /* referenced */
        Waiter w;
        kactor_id actor; /* the call's actor; null for a fetch */
        uint64_t index;  /* the call's lineage index once it is logged (0: not, or not logged) */
        bool sent;
        UT_hash_handle hh;
} Serve;

/* An object of a peer's that we fetch. */
typedef struct Fetch {
        kactor_id id;
        Object *o; /* one reference, until it is filled */
        uint64_t node;
        UT_hash_handle hh;
} Fetch;

/* Where an actor lives, when not where its id says. */
typedef struct Location {
        kactor_id id;
        uint64_t node;
        UT_hash_handle hh;
} Location;

/* An actor of a peer's that this node calls or holds handles to. */
typedef struct RemoteActor {
        kactor_id id;
        UT_hash_handle hh;
        Remote *remote;
        uint64_t node;       /* where calls go */
        unsigned refs;       /* handles held here */
        unsigned busy;       /* being worked on: freeing a call may drop the last handle (its
                              * arguments held it), the entry stays until the work is done */
        bool held;           /* the host was told (HOLD) */
        CallQueue queue;     /* queued: not sent yet; in flight: sent, no result yet */
        uint64_t next_seq;
        bool lost;           /* its node died: waiting to hear where it went */
        uint64_t lost_since;
        bool dead;
        char *cause;
} RemoteActor;

/* A result of a replicated actor, delivered once its record is on every replica. */
typedef struct Deferred {
        TAILQ_ENTRY(Deferred) link;
        Object *o; /* referenced */
        uint64_t index;
        kactor_error code;
        char *message;
        char *data;
        size_t len;
} Deferred;

/* The host's side of an actor's replication. */
typedef struct HostRepl {
        Actor *actor;
        uint64_t replicas[REMOTE_REPLICAS_MAX];
        uint64_t acked[REMOTE_REPLICAS_MAX];
        size_t n;
        bool had_replicas; /* once replicated, results wait for R replicas (or all alive peers) */
        bool fenced; /* this node was declared dead: the actor lives elsewhere now */
        /* A checkpoint the replicas do not have yet: it covers calls whose results callers on other
         * nodes have not taken, which a rebuild could answer only from their records. */
        bool checkpoint_held;
        unsigned checkpoint_blockers; /* such results not taken yet */
        TAILQ_HEAD(, Deferred) deferred;
} HostRepl;

/* A replica of a peer's actor. */
typedef struct Replica {
        kactor_id id;
        UT_hash_handle hh;
        uint64_t host;
        SpecWire spec;
        char *args;
        size_t args_len;
        uint64_t replicas[REMOTE_REPLICAS_MAX]; /* in rendezvous order: the first alive one rebuilds */
        size_t n_replicas;
        LineageLog log;
        bool ack_due;     /* records stored since the last ack: one ack for them all, at the flush */
        LIST_ENTRY(Replica) ack_link;
} Replica;

/* The results of a rebuilt actor's replayed calls, kept for callers that send them again. */
typedef struct Rebuilt {
        Remote *remote;
        kactor_id actor;
        Object **objects;
        size_t n;
        sd_event_source *timer;
        LIST_ENTRY(Rebuilt) link;
} Rebuilt;

struct Remote {
        Manager *manager;
        Cluster *cluster; /* the peer transport (peer.c) */
        unsigned replicas;
        uint64_t self;
        PeerHold *holds;
        Serve *serves;
        Fetch *fetches;
        Location *locations;
        RemoteActor *actors;
        Replica *replica_set;
        LIST_HEAD(, Rebuilt) rebuilt;
        bool rebuilding; /* replica_rebuild(): replicas are chosen once the actor's move is told */
        bool quorum_warned;
        PlacementHolds placements; /* recent placements on peers, counted as taken */
        LIST_HEAD(, Replica) acks_due;
        struct PendingDone { /* results taken, to say DONE for (one message per node, at the flush) */
                uint64_t node;
                kactor_id object;
        } *done;
        size_t n_done, n_done_allocated;
        sd_event_source *tick;
        uint64_t *dead_nodes; /* members seen dead, so that each death is handled once */
        size_t n_dead_nodes;
};

/* --- remote.c ------------------------------------------------------------------------------------- */

void remote_free(Manager *m);
/* At the end of each event loop iteration: the acks and DONEs gathered meanwhile go out, one
 * message each per actor or node. */
void remote_flush(Manager *m);
/* A frame of the data range from an authenticated peer. < 0 drops the peer (malformed frame). */
int remote_handle_frame(Manager *m, const char *from_id, const Frame *f);
/* A connection to a peer was (re)established: what was owed to it on a connection that may have
 * broken is sent again (calls without a result, fetches, finished results, replicas). Repeats are
 * harmless: calls and records are recognized by their ids and indexes. */
void remote_peer_connected(Manager *m, const char *node_id);

Member *remote_member(Remote *r, uint64_t node);
bool remote_node_alive(Remote *r, uint64_t node);
/* Every member alive, but us. */
size_t remote_alive_peers(Remote *r, uint64_t *ret, size_t max);

/* A message to a peer: its header packed, then n_fields fields by the caller, then cluster_frame_end(). */
int remote_frame_start(Remote *r, uint64_t node, uint32_t type, uint32_t n_fields, PeerFrame *f);
/* A msgpack_pack_*() result as a negative errno. */
int remote_pk_ok(int k);
int remote_send_id_list(Remote *r, uint64_t node, uint32_t type, int8_t ext, const kactor_id *ids, size_t n);
int remote_send_moved(Remote *r, uint64_t to, kactor_id actor, uint64_t node, const char *cause);
void remote_broadcast_moved(Remote *r, kactor_id actor, uint64_t node, const char *cause);

/* An actor's spec and its wire form (borrowed strings both ways). */
SpecWire remote_spec_of_actor(const Actor *a);
SpecWire remote_spec_to_wire(const ActorSpec *s);
ActorSpec remote_spec_from_wire(const SpecWire *s, const char *args, size_t args_len);

Location *remote_location_find(Remote *r, kactor_id id);
void remote_location_set(Remote *r, kactor_id id, uint64_t node);
/* Where calls to an actor that is not here go. */
uint64_t remote_route(Remote *r, kactor_id id);

/* Placement: 1 when the actor is to be made on a peer (*ret_node, malloc'd), 0 for this node, or
 * -EREMOTEIO with e set (an unknown or dead Node option, or no node with the resources). */
int remote_place_actor(Manager *m, const ActorSpec *spec, char **ret_node, ReqError *e);
/* Asks node to make the actor; its id is made here and returned at once. The constructor's errors
 * arrive later, as the actor's death. */
int remote_create_actor(Manager *m, const ActorSpec *spec, const char *node_id, kactor_id *ret_id, ReqError *e);

/* Fills a pending object with a result from a peer. */
void remote_object_complete(Manager *m, Object *o, kactor_error code, const char *message, const char *data,
                            size_t len);
/* Calls fn for each id of a DONE, HOLD, RELEASE or REPL_DROP message. */
int remote_for_each_id(Remote *r, uint64_t from, const RemoteMessage *msg,
                       void (*fn)(Remote *r, uint64_t from, kactor_id id));

/* --- remote-actor.c: actors of peers (the caller's side) ------------------------------------------ */

RemoteActor *remote_actor_find(Remote *r, kactor_id id);
/* The entry of an actor that lives on a member, made when missing; NULL when there is none. */
RemoteActor *remote_actor_get(Remote *r, kactor_id id);
void remote_actor_maybe_free(RemoteActor *ra);
void remote_actor_set_dead(RemoteActor *ra, const char *cause);
/* Sends the calls whose arguments are ready, in their order. May free ra. */
void remote_actor_pump(RemoteActor *ra);
/* The actor moved (or could not be rebuilt: node 0). */
void remote_actor_moved(RemoteActor *ra, uint64_t node, const char *cause);

/* An actor that is not here but can be reached on a peer. */
bool remote_actor_routable(Manager *m, kactor_id id);
/* A call on such an actor; o is the pending result (the caller's reference stays the caller's). */
int remote_submit_call(Manager *m, kactor_id actor, Object *o, const char *method, size_t method_len,
                       const char *args, size_t args_len, ReqError *e);
int remote_kill_actor(Manager *m, kactor_id actor, uid_t uid, bool no_restart);
/* Handles held here on an actor that lives on a peer (the host learns who holds it). */
bool remote_actor_ref(Manager *m, kactor_id id);
void remote_actor_unref(Manager *m, kactor_id id);
/* What this node knows of an actor that lives on a peer (the bus shows it). -ENOENT when the id names no
 * actor reachable here. */
int remote_actor_view(Manager *m, kactor_id id, RemoteActorView *ret);
/* The call ready to go: its arguments are there (callqueue dependency callback). */
void remote_call_ready(Call *c);

/* An object made on a peer: a pending local copy that the peer is asked to fill. NULL when the id
 * cannot be on a live peer. The copy has one reference, the fetch's own, dropped once it is filled. */
Object *remote_fetch_object(Manager *m, kactor_id id);
void remote_fetch_free(Remote *r, Fetch *fe);

int remote_actor_handle_created(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_actor_handle_result(Remote *r, uint64_t from, RemoteMessage *msg);

/* --- remote-host.c: the host's side --------------------------------------------------------------- */

void remote_host_serve_send(Serve *sv);
/* Whether the peer is owed the serve's answer again when it asks again or comes back. */
bool remote_host_serve_owed(const Serve *sv);
void remote_host_serve_free(Serve *sv);
PeerHold *remote_host_hold_find(Remote *r, kactor_id actor, uint64_t node);
void remote_host_hold_drop(Remote *r, PeerHold *h);
HostRepl *remote_host_repl(const Actor *a);
/* The index of node in the actor's replicas, or -1. */
int remote_host_replica_index(HostRepl *hr, uint64_t node);
/* Sends everything a replica needs: the actor's making, its checkpoint and its log. */
int remote_host_sync_replica(Remote *r, HostRepl *hr, uint64_t node);
/* Brings the actor's replicas to R: dead ones go, the best-scored alive peers not yet in are added
 * and sent everything. */
void remote_host_replicate(Remote *r, HostRepl *hr);

/* The host's side of replication (actor.c, through the hooks). */
void remote_actor_started(Actor *a);     /* a new actor: replicas chosen, its creation sent */
/* A result of a replicated actor: 1 when it was taken (delivered once its record is on every
 * replica), 0 to deliver it now. */
int remote_defer_result(Actor *a, Call *c, bool logged, kactor_error code, const char *message, const char *data,
                        size_t len);
void remote_record_logged(Actor *a, uint64_t index);
void remote_checkpointed(Actor *a);
void remote_actor_died(Actor *a);
/* The nodes that keep the actor's lineage, in order (NULL-terminated, malloc'd; empty when none). */
int remote_actor_replicas(const Actor *a, char ***ret);
void remote_actor_freed(Actor *a);       /* for good: replicas drop it */

int remote_host_handle_create(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_host_handle_call(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_host_handle_fetch(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_host_handle_kill(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_host_handle_done(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_host_handle_hold(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_host_handle_release(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_host_handle_repl_ack(Remote *r, uint64_t from, RemoteMessage *msg);

/* --- remote-replica.c: the replica's side --------------------------------------------------------- */

Replica *remote_replica_find(Remote *r, kactor_id id);
void remote_replica_free(Remote *r, Replica *rep);
void remote_replica_flush_acks(Remote *r);

int remote_replica_handle_repl_create(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_replica_handle_repl_record(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_replica_handle_repl_checkpoint(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_replica_handle_repl_drop(Remote *r, uint64_t from, RemoteMessage *msg);

/* --- remote-rebuild.c: dead nodes, rebuilds, moves ------------------------------------------------ */

void remote_rebuild_free(Rebuilt *rb);
/* The actor is about to take over these calls; is o one whose result a replay fills? */
bool remote_rebuild_claims(Remote *r, kactor_id actor, const Object *o);
void remote_replayed(Actor *a, uint64_t index, kactor_error code, const char *message, const char *data,
                     size_t len);

/* The member table changed. */
void remote_members_changed(Manager *m);
/* DEAD_NOTICE: packs where the actors that moved live now (for the member `to`, back from the
 * dead), and stops here the actors a notice says moved. */
int remote_pack_moved(Manager *m, msgpack_packer *pk, const char *to);
void remote_dead_notice(Manager *m, const msgpack_object *moved);

int remote_rebuild_handle_moved(Remote *r, uint64_t from, RemoteMessage *msg);
int remote_rebuild_handle_locate(Remote *r, uint64_t from, RemoteMessage *msg);

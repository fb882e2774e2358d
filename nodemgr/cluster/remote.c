/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "peer.h"
#include "placement.h"
#include "remote.h"
#include "remote-proto.h"
#include "time-util.h"

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

static Member *member_of(Remote *r, uint64_t node) {
        char s[NODE_ID_STRING_MAX];
        node_id_format(node, s);
        return membership_find(cluster_membership(r->cluster), s, 16);
}

static bool node_alive(Remote *r, uint64_t node) {
        if (node == r->self)
                return true;
        Member *mb = member_of(r, node);
        return mb && mb->state != MEMBER_DEAD;
}

/* --- sending -------------------------------------------------------------------------------------- */

static int frame_start(Remote *r, uint64_t node, uint32_t type, uint32_t n_fields, PeerFrame *f) {
        char s[NODE_ID_STRING_MAX];
        node_id_format(node, s);
        int k = cluster_frame_begin(r->cluster, s, f);
        if (k < 0)
                return k;
        if (msgpack_pack_array(f->pk, 2 + n_fields) < 0 || msgpack_pack_uint32(f->pk, type) < 0 ||
            msgpack_pack_uint64(f->pk, 0) < 0)
                return cluster_frame_end(f, -ENOMEM);
        return 0;
}

static int pk_ok(int k) {
        return k < 0 ? -ENOMEM : 0;
}

static int send_id_list(Remote *r, uint64_t node, uint32_t type, int8_t ext, const kactor_id *ids, size_t n) {
        PeerFrame f;
        int k = frame_start(r, node, type, 1, &f);
        if (k < 0)
                return k;
        k = pk_ok(msgpack_pack_array(f.pk, (uint32_t) n));
        for (size_t i = 0; k >= 0 && i < n; i++)
                k = codec_pack_id(f.pk, ext, ids[i]);
        return cluster_frame_end(&f, k);
}

static int send_moved(Remote *r, uint64_t to, kactor_id actor, uint64_t node, const char *cause) {
        PeerFrame f;
        char s[NODE_ID_STRING_MAX] = "";
        if (node)
                node_id_format(node, s);
        int k = frame_start(r, to, PEER_MSG_MOVED, 3, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = pack_cstr(f.pk, s);
        if (k >= 0)
                k = pack_cstr(f.pk, cause ?: "");
        return cluster_frame_end(&f, k);
}

/* Every member alive, but us. */
static size_t alive_peers(Remote *r, uint64_t *ret, size_t max) {
        Membership *ms = cluster_membership(r->cluster);
        size_t n = 0;
        for (size_t i = 1; i < ms->n_members && n < max; i++) {
                uint64_t node;
                if (ms->members[i].state == MEMBER_DEAD ||
                    node_id_parse(ms->members[i].id, strlen(ms->members[i].id), &node) < 0)
                        continue;
                ret[n++] = node;
        }
        return n;
}

static void broadcast_moved(Remote *r, kactor_id actor, uint64_t node, const char *cause) {
        uint64_t peers[PEER_MAX];
        size_t n = alive_peers(r, peers, PEER_MAX);
        for (size_t i = 0; i < n; i++)
                (void) send_moved(r, peers[i], actor, node, cause);
}

/* --- wire form of an actor's spec ----------------------------------------------------------------- */

/* The spec an actor was made from (borrowed strings). */
static SpecWire spec_of_actor(const Actor *a) {
        return (SpecWire) {
                .module = a->module_arg,
                .class_name = a->class_name,
                .name = a->name,
                .num_cpus = a->num_cpus,
                .num_gpus = (uint32_t) a->n_gpus,
                .memory_max = a->memory_max,
                .max_restarts = a->max_restarts,
                .detached = a->detached,
                .checkpoint_interval = a->checkpoint_interval,
                .tasks_max = a->tasks_max,
                .uid = (uint32_t) a->uid,
        };
}

static SpecWire spec_of_request(const ActorSpec *s) {
        return (SpecWire) {
                .module = (char *) s->module,
                .class_name = (char *) s->class_name,
                .name = (char *) s->name,
                .num_cpus = s->num_cpus,
                .num_gpus = s->num_gpus,
                .memory_max = s->memory_max,
                .max_restarts = s->max_restarts,
                .detached = s->detached,
                .checkpoint_interval = s->checkpoint_interval,
                .tasks_max = s->tasks_max,
                .uid = (uint32_t) s->uid,
        };
}

static ActorSpec spec_from_wire(const SpecWire *s, const char *args, size_t args_len) {
        static const char empty_list[] = { (char) 0x90 };
        return (ActorSpec) {
                .module = s->module,
                .class_name = s->class_name,
                .name = s->name,
                .args = args ?: empty_list,
                .args_len = args ? args_len : 1,
                .num_cpus = s->num_cpus,
                .num_gpus = s->num_gpus,
                .memory_max = s->memory_max,
                .max_restarts = s->max_restarts,
                .detached = s->detached,
                .checkpoint_interval = s->checkpoint_interval,
                .tasks_max = s->tasks_max,
                .uid = s->uid,
        };
}

/* --- locations ------------------------------------------------------------------------------------ */

static Location *location_find(Remote *r, kactor_id id) {
        Location *l;
        HASH_FIND(hh, r->locations, &id, sizeof(id), l);
        return l;
}

static void location_set(Remote *r, kactor_id id, uint64_t node) {
        Location *l = location_find(r, id);
        if (!l) {
                l = calloc(1, sizeof(*l));
                if (!l)
                        return;
                l->id = id;
                HASH_ADD(hh, r->locations, id, sizeof(l->id), l);
        }
        l->node = node;
}

/* Where calls to an actor that is not here go. */
static uint64_t route(Remote *r, kactor_id id) {
        Location *l = location_find(r, id);
        return l ? l->node : id.hi;
}

/* --- remote actors (the caller's side) ------------------------------------------------------------ */

static RemoteActor *remote_actor_find(Remote *r, kactor_id id) {
        RemoteActor *ra;
        HASH_FIND(hh, r->actors, &id, sizeof(id), ra);
        return ra;
}

static RemoteActor *remote_actor_get(Remote *r, kactor_id id) {
        RemoteActor *ra = remote_actor_find(r, id);
        if (ra)
                return ra;
        uint64_t node = route(r, id);
        if (node == r->self || !member_of(r, node))
                return NULL;
        ra = calloc(1, sizeof(*ra));
        if (!ra)
                return NULL;
        ra->id = id;
        ra->remote = r;
        ra->node = node;
        callqueue_init(&ra->queue);
        HASH_ADD(hh, r->actors, id, sizeof(ra->id), ra);
        if (!node_alive(r, node)) {
                ra->lost = true;
                ra->lost_since = now_usec(CLOCK_MONOTONIC);
        }
        return ra;
}

static void remote_actor_maybe_free(RemoteActor *ra) {
        Remote *r = ra->remote;
        if (ra->refs > 0 || ra->busy > 0 || !callqueue_is_empty(&ra->queue))
                return;
        if (ra->held && !ra->dead)
                (void) send_id_list(r, ra->node, PEER_MSG_RELEASE, CODEC_EXT_ACTOR, &ra->id, 1);
        HASH_DEL(r->actors, ra);
        free(ra->cause);
        free(ra);
}

static void remote_actor_fail_all(RemoteActor *ra, kactor_error code, const char *message) {
        Manager *m = ra->remote->manager;
        Call *c;
        ra->busy++;
        while ((c = callqueue_pop_any(&ra->queue)))
                call_fail(m, c, code, message);
        ra->busy--;
}

static void remote_actor_set_dead(RemoteActor *ra, const char *cause) {
        char s[KACTOR_ID_STRING_MAX];
        kactor_id_to_string(ra->id, s);
        ra->dead = true;
        ra->lost = false;
        free(ra->cause);
        ra->cause = strdup(cause);
        _cleanup_free_ char *msg = NULL;
        if (asprintf(&msg, "actor %s died: %s", s, cause) < 0)
                msg = NULL;
        remote_actor_fail_all(ra, KACTOR_ERROR_ACTOR_DIED, msg ?: cause);
        remote_actor_maybe_free(ra);
}

static int send_call(Remote *r, uint64_t node, kactor_id actor, Call *c) {
        PeerFrame f;
        int k = frame_start(r, node, PEER_MSG_CALL, 3, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = codec_pack_id(f.pk, CODEC_EXT_OBJECT, c->result->id);
        if (k >= 0)
                k = pack_cstr(f.pk, c->method);
        if (k >= 0)
                k = buffer_append(f.out, c->args, c->args_len);
        return cluster_frame_end(&f, k);
}

static void remote_actor_pump_calls(RemoteActor *ra);

/* Sends the calls whose arguments are ready, in their order. May free ra. */
static void remote_actor_pump(RemoteActor *ra) {
        ra->busy++;
        remote_actor_pump_calls(ra);
        ra->busy--;
        remote_actor_maybe_free(ra);
}

static void remote_actor_pump_calls(RemoteActor *ra) {
        Remote *r = ra->remote;
        Manager *m = r->manager;
        Call *c;

        if (ra->lost || ra->dead)
                return;
        if (!ra->held && ra->refs > 0 &&
            send_id_list(r, ra->node, PEER_MSG_HOLD, CODEC_EXT_ACTOR, &ra->id, 1) >= 0)
                ra->held = true;
        while ((c = callqueue_peek_ready(&ra->queue))) {
                ReqError e = {};
                int k = call_prepare_args(m, c, &e);
                if (k == -EAGAIN)
                        return;
                if (k < 0) {
                        TAILQ_REMOVE(&ra->queue.queued, c, link);
                        ra->queue.n_queued--;
                        call_fail(m, c, k == -EREMOTEIO ? e.code : KACTOR_ERROR_TASK_FAILED,
                                  e.message ?: strerror(-k));
                        req_error_done(&e);
                        continue;
                }
                k = send_call(r, ra->node, ra->id, c);
                if (k == -EMSGSIZE) {
                        TAILQ_REMOVE(&ra->queue.queued, c, link);
                        ra->queue.n_queued--;
                        call_fail(m, c, KACTOR_ERROR_INVALID_ARGS,
                                  "the call's arguments are too large to send to the actor's node");
                        continue;
                }
                if (k < 0)
                        return; /* the tick tries again */
                callqueue_start(&ra->queue, c, ++ra->next_seq);
        }
}

void remote_call_ready(Call *c) {
        RemoteActor *ra = c->remote;
        if (ra)
                remote_actor_pump(ra);
}

bool remote_actor_routable(Manager *m, kactor_id id) {
        Remote *r = m->cluster_userdata;
        if (!r)
                return false;
        if (remote_actor_find(r, id))
                return true;
        uint64_t node = route(r, id);
        return node != r->self && member_of(r, node);
}

int remote_submit_call(Manager *m, kactor_id actor, Object *o, const char *method, size_t method_len,
                       const char *args, size_t args_len, ReqError *e) {
        Remote *r = m->cluster_userdata;
        RemoteActor *ra = remote_actor_get(r, actor);
        if (!ra)
                return objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_ACTOR, "no such actor");
        if (ra->dead) {
                _cleanup_free_ char *msg = NULL;
                char s[KACTOR_ID_STRING_MAX];
                kactor_id_to_string(actor, s);
                if (asprintf(&msg, "actor %s died: %s", s, ra->cause ?: "unknown cause") < 0)
                        msg = NULL;
                return objstore_set_failed(&m->store, o, KACTOR_ERROR_ACTOR_DIED, msg ?: "actor died");
        }
        Call *c;
        ReqError ce = {};
        int k = call_new(m, o, args, args_len, &c, &ce);
        if (k >= 0 && !(c->method = strndup(method, method_len))) {
                call_free(m, c);
                k = -ENOMEM;
        }
        if (k < 0) {
                (void) objstore_set_failed(&m->store, o, k == -EREMOTEIO ? ce.code : KACTOR_ERROR_TASK_FAILED,
                                           ce.message ?: strerror(-k));
                req_error_done(&ce);
                remote_actor_maybe_free(ra);
                return 0;
        }
        c->remote = ra;
        callqueue_push(&ra->queue, c);
        k = call_watch_deps(m, c);
        if (k < 0)
                return k;
        remote_actor_pump(ra);
        return 0;
}

int remote_kill_actor(Manager *m, kactor_id actor, bool no_restart) {
        Remote *r = m->cluster_userdata;
        if (!r || !remote_actor_routable(m, actor))
                return -ENOENT;
        PeerFrame f;
        int k = frame_start(r, route(r, actor), PEER_MSG_KILL, 2, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = pk_ok(no_restart ? msgpack_pack_true(f.pk) : msgpack_pack_false(f.pk));
        return cluster_frame_end(&f, k);
}

bool remote_actor_ref(Manager *m, kactor_id id) {
        Remote *r = m->cluster_userdata;
        if (!r)
                return false;
        RemoteActor *ra = remote_actor_get(r, id);
        if (!ra)
                return false;
        if (ra->refs++ == 0 && !ra->held && !ra->lost && !ra->dead &&
            send_id_list(r, ra->node, PEER_MSG_HOLD, CODEC_EXT_ACTOR, &id, 1) >= 0)
                ra->held = true;
        return true;
}

void remote_actor_unref(Manager *m, kactor_id id) {
        Remote *r = m->cluster_userdata;
        RemoteActor *ra = r ? remote_actor_find(r, id) : NULL;
        if (!ra || ra->refs == 0)
                return;
        ra->refs--;
        remote_actor_maybe_free(ra);
}

/* The actor moved (or could not be rebuilt: node 0). */
static void remote_actor_moved(RemoteActor *ra, uint64_t node, const char *cause);

int remote_actor_view(Manager *m, kactor_id id, RemoteActorView *ret) {
        Remote *r = m->cluster_userdata;
        if (!r || !remote_actor_routable(m, id))
                return -ENOENT;
        RemoteActor *ra = remote_actor_find(r, id);
        *ret = (RemoteActorView) {
                .id = id,
                .state = !ra ? ACTOR_ALIVE : ra->dead ? ACTOR_DEAD : ra->lost ? ACTOR_RESTARTING : ACTOR_ALIVE,
                .death_cause = ra ? ra->cause : NULL,
        };
        node_id_format(ra ? ra->node : route(r, id), ret->node);
        return 0;
}

/* --- placement ------------------------------------------------------------------------------------ */

int remote_place_actor(Manager *m, const ActorSpec *spec, char **ret_node, ReqError *e) {
        Remote *r = m->cluster_userdata;
        Membership *ms;
        if (!r)
                return 0;
        ms = cluster_membership(r->cluster);
        if (spec->node && *spec->node) {
                uint64_t node;
                if (streq(spec->node, m->node_id))
                        return 0;
                Member *mb = membership_find(ms, spec->node, strlen(spec->node));
                if (!mb || mb->state == MEMBER_DEAD || node_id_parse(spec->node, strlen(spec->node), &node) < 0)
                        return req_error(e, KACTOR_ERROR_INVALID_ARGS, "no live node %s in the cluster",
                                         spec->node);
                *ret_node = strdup(spec->node);
                return *ret_node ? 1 : -ENOMEM;
        }
        PlacementRoom need = { .gpus = spec->num_gpus, .cpus = spec->num_cpus, .memory = spec->memory_max };
        PlacementRoom here = {
                .gpus = (uint32_t) MIN(resources_free_gpus(&m->resources), (size_t) UINT32_MAX),
                .cpus = m->resources.cpus_total - m->resources.cpus_used,
                .memory = membership_self(ms)->resources.memory_free,
        };
        if (placement_fits(&here, &need))
                return 0;
        /* It does not fit here: one of the alive peers, with the room their member entries show. */
        PlacementNode nodes[MEMBERSHIP_MEMBERS_MAX];
        const Member *members[MEMBERSHIP_MEMBERS_MAX];
        size_t n = 0, best;
        for (size_t i = 1; i < ms->n_members; i++) {
                const Member *mb = &ms->members[i];
                uint64_t node;
                if (mb->state != MEMBER_ALIVE || node_id_parse(mb->id, strlen(mb->id), &node) < 0)
                        continue;
                members[n] = mb;
                nodes[n++] = (PlacementNode) {
                        .id = node,
                        .free = { mb->resources.gpus_free, mb->resources.cpus_free, mb->resources.memory_free },
                };
        }
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        if (placement_choose_node(nodes, n, &r->placements, &need, now, &best) < 0)
                return 0; /* the local attempt says what is missing */
        placement_hold(&r->placements, nodes[best].id, &need, now);
        *ret_node = strdup(members[best]->id);
        return *ret_node ? 1 : -ENOMEM;
}

int remote_create_actor(Manager *m, const ActorSpec *spec, const char *node_id, kactor_id *ret_id, ReqError *e) {
        Remote *r = m->cluster_userdata;
        uint64_t node;
        if (node_id_parse(node_id, strlen(node_id), &node) < 0)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "invalid node id %s", node_id);
        kactor_id id = manager_new_local_id(m);
        ActorSpec placed = *spec;
        placed.detached = placed.detached || placed.detach_if_placed;
        spec = &placed;
        PeerFrame f;
        int k = frame_start(r, node, PEER_MSG_CREATE, 4, &f);
        if (k < 0)
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "node %s cannot be reached now", node_id);
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, id);
        SpecWire sw = spec_of_request(spec);
        if (k >= 0)
                k = spec_wire_pack(f.pk, &sw);
        if (k >= 0)
                k = buffer_append(f.out, spec->args, spec->args_len);
        k = cluster_frame_end(&f, k);
        if (k < 0)
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "cannot send the actor to node %s: %s", node_id,
                                 strerror(-k));
        location_set(r, id, node);
        /* The host counts us as a holder from the start; our handles are counted from here. */
        RemoteActor *ra = remote_actor_get(r, id);
        if (ra)
                ra->held = true;
        char s[KACTOR_ID_STRING_MAX];
        kactor_id_to_string(id, s);
        log_info("Actor %s (%s) placed on node %s.", s, spec->class_name, node_id);
        *ret_id = id;
        return 0;
}

/* --- objects of peers --------------------------------------------------------------------------- */

Object *remote_fetch_object(Manager *m, kactor_id id) {
        Remote *r = m->cluster_userdata;
        if (!r || id.hi == r->self || !node_alive(r, id.hi) || !member_of(r, id.hi))
                return NULL;
        Object *o;
        if (objstore_add(&m->store, id, &o) < 0)
                return NULL;
        Fetch *fe = calloc(1, sizeof(*fe));
        if (!fe) {
                objstore_unref(&m->store, o);
                return NULL;
        }
        *fe = (Fetch) { .id = id, .o = o, .node = id.hi };
        HASH_ADD(hh, r->fetches, id, sizeof(fe->id), fe);
        PeerFrame f;
        int k = frame_start(r, id.hi, PEER_MSG_FETCH, 1, &f);
        if (k >= 0)
                k = cluster_frame_end(&f, codec_pack_id(f.pk, CODEC_EXT_OBJECT, id));
        if (k < 0)
                (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_OBJECT,
                                           "the node that made the object cannot be reached");
        return o;
}

static void fetch_free(Remote *r, Fetch *fe) {
        HASH_DEL(r->fetches, fe);
        objstore_unref(&r->manager->store, fe->o);
        free(fe);
}

/* Fills a pending object with a result from a peer. */
static void object_complete(Manager *m, Object *o, kactor_error code, const char *message, const char *data,
                            size_t len) {
        if (o->state != OBJECT_PENDING)
                return;
        if (code != KACTOR_OK) {
                (void) objstore_set_failed(&m->store, o, code, message ?: "failed");
                return;
        }
        _cleanup_free_ kactor_id *ids = NULL;
        _cleanup_free_ uint8_t *is_actor = NULL;
        size_t n = 0;
        if (manager_scan_ids(data, len, &ids, &is_actor, &n, NULL) < 0)
                (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_TASK_FAILED, "a peer sent a malformed value");
        else
                (void) objstore_set_ready(&m->store, o, data, len, ids, is_actor, n);
}

/* --- serving peers (the host's side) ------------------------------------------------------------- */

static void serve_error(Remote *r, uint64_t node, kactor_id object, kactor_id actor, kactor_error code,
                        const char *message);

static void serve_send(Serve *sv) {
        Remote *r = sv->remote;
        Object *o = sv->o;
        PeerFrame f;

        if (o->state == OBJECT_READY && o->evicted) {
                int k = objstore_wait_for(&r->manager->store, o, &sv->w);
                if (k > 0)
                        return; /* being read back or rebuilt */
        }
        int k = frame_start(r, sv->key.node, PEER_MSG_RESULT, 4, &f);
        if (k < 0)
                return; /* the peer is gone: its death releases this */
        k = codec_pack_id(f.pk, CODEC_EXT_OBJECT, o->id);
        if (k >= 0)
                k = pk_ok(msgpack_pack_uint32(f.pk, o->state == OBJECT_READY ? KACTOR_OK : o->error));
        if (k >= 0)
                k = pack_cstr(f.pk, o->state == OBJECT_FAILED ? o->message : NULL);
        if (k >= 0)
                k = kactor_id_is_null(sv->actor) ? pk_ok(msgpack_pack_nil(f.pk))
                                                 : codec_pack_id(f.pk, CODEC_EXT_ACTOR, sv->actor);
        if (k >= 0 && o->state == OBJECT_READY)
                k = buffer_append(f.out, o->data, o->len);
        k = cluster_frame_end(&f, k);
        if (k == -EMSGSIZE)
                serve_error(r, sv->key.node, o->id, sv->actor, KACTOR_ERROR_TASK_FAILED,
                            "the value is too large to send to this node");
        sv->sent = true;
}

static void serve_object_done(Waiter *w, Object *o) {
        Serve *sv = w->userdata;
        serve_send(sv);
}

static void send_checkpoint(Remote *r, HostRepl *hr);
static bool serve_blocks_checkpoint(const Serve *sv, const Actor *a);

static void serve_free(Serve *sv) {
        Remote *r = sv->remote;
        Actor *a = sv->index > 0 ? manager_find_actor(r->manager, sv->actor) : NULL;
        HostRepl *hr = a ? a->repl : NULL;
        if (hr && hr->checkpoint_held && serve_blocks_checkpoint(sv, a) && --hr->checkpoint_blockers == 0) {
                hr->checkpoint_held = false;
                send_checkpoint(r, hr);
        }
        HASH_DEL(r->serves, sv);
        objstore_unwait(sv->o, &sv->w);
        objstore_unref(&r->manager->store, sv->o);
        free(sv);
}

/* Answers a peer with o once it is done. take: o's reference passes to the serve. */
static void serve(Remote *r, uint64_t node, Object *o, kactor_id actor, bool take) {
        Serve *sv, key = { .key = { .object = o->id, .node = node } };
        HASH_FIND(hh, r->serves, &key.key, sizeof(key.key), sv);
        if (sv) {
                if (take)
                        objstore_unref(&r->manager->store, o);
                if (sv->sent)
                        serve_send(sv); /* asked again (after a move): answer again */
                return;
        }
        sv = calloc(1, sizeof(*sv));
        if (!sv) {
                if (take)
                        objstore_unref(&r->manager->store, o);
                return;
        }
        *sv = (Serve) { .key = key.key, .remote = r, .o = o, .actor = actor };
        sv->w = (Waiter) { .object_done = serve_object_done, .userdata = sv };
        if (!take)
                objstore_ref(o);
        HASH_ADD(hh, r->serves, key, sizeof(sv->key), sv);
        if (objstore_wait_for(&r->manager->store, o, &sv->w) == 0)
                serve_send(sv);
}

static void serve_error(Remote *r, uint64_t node, kactor_id object, kactor_id actor, kactor_error code,
                        const char *message) {
        PeerFrame f;
        int k = frame_start(r, node, PEER_MSG_RESULT, 4, &f);
        if (k < 0)
                return;
        k = codec_pack_id(f.pk, CODEC_EXT_OBJECT, object);
        if (k >= 0)
                k = pk_ok(msgpack_pack_uint32(f.pk, code));
        if (k >= 0)
                k = pack_cstr(f.pk, message);
        if (k >= 0)
                k = kactor_id_is_null(actor) ? pk_ok(msgpack_pack_nil(f.pk))
                                             : codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        (void) cluster_frame_end(&f, k);
}

static PeerHold *peer_hold_find(Remote *r, kactor_id actor, uint64_t node) {
        PeerHold *h, key = { .key = { .actor = actor, .node = node } };
        HASH_FIND(hh, r->holds, &key.key, sizeof(key.key), h);
        return h;
}

static void peer_hold_add(Remote *r, Actor *a, uint64_t node) {
        if (peer_hold_find(r, a->id, node))
                return;
        PeerHold *h = calloc(1, sizeof(*h));
        if (!h)
                return;
        h->key.actor = a->id;
        h->key.node = node;
        HASH_ADD(hh, r->holds, key, sizeof(h->key), h);
        actor_ref(a);
}

static void peer_hold_drop(Remote *r, PeerHold *h) {
        kactor_id id = h->key.actor;
        HASH_DEL(r->holds, h);
        free(h);
        manager_actor_unref_id(r->manager, id);
}

/* --- the host's side of replication ------------------------------------------------------------- */

static HostRepl *host_repl(const Actor *a) {
        return a->repl;
}

static int replica_index(HostRepl *hr, uint64_t node) {
        for (size_t i = 0; i < hr->n; i++)
                if (hr->replicas[i] == node)
                        return (int) i;
        return -1;
}

static int send_record(Remote *r, uint64_t node, const Actor *a, const LineageRecord *rec) {
        Buffer b = {};
        msgpack_packer bpk;
        msgpack_packer_init(&bpk, &b, buffer_msgpack_write);
        int k = lineage_record_pack(&bpk, rec);
        PeerFrame f;
        if (k >= 0)
                k = frame_start(r, node, PEER_MSG_REPL_RECORD, 2, &f);
        if (k >= 0) {
                k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, a->id);
                if (k >= 0)
                        k = pk_ok(msgpack_pack_bin(f.pk, (uint32_t) buffer_size(&b)) |
                                  msgpack_pack_bin_body(f.pk, b.data + b.start, buffer_size(&b)));
                k = cluster_frame_end(&f, k);
        }
        buffer_free(&b);
        return k;
}

/* Sends everything a replica needs: the actor's making, its checkpoint and its log. */
static int replica_sync(Remote *r, HostRepl *hr, uint64_t node) {
        Actor *a = hr->actor;
        PeerFrame f;
        int k = frame_start(r, node, PEER_MSG_REPL_CREATE, 7, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, a->id);
        SpecWire sw = spec_of_actor(a);
        if (k >= 0)
                k = spec_wire_pack(f.pk, &sw);
        if (k >= 0)
                k = pk_ok(msgpack_pack_array(f.pk, (uint32_t) hr->n));
        for (size_t i = 0; k >= 0 && i < hr->n; i++) {
                char s[NODE_ID_STRING_MAX];
                node_id_format(hr->replicas[i], s);
                k = pack_cstr(f.pk, s);
        }
        if (k >= 0)
                k = pk_ok(msgpack_pack_uint64(f.pk, a->lineage.checkpoint ? a->lineage.checkpoint_index : 0));
        if (k >= 0)
                k = pk_ok(a->lineage.checkpoint
                                  ? msgpack_pack_bin(f.pk, (uint32_t) a->lineage.checkpoint_len) |
                                            msgpack_pack_bin_body(f.pk, a->lineage.checkpoint,
                                                                  a->lineage.checkpoint_len)
                                  : msgpack_pack_nil(f.pk));
        if (k >= 0 && a->args)
                k = buffer_append(f.out, a->args, a->args_len);
        k = cluster_frame_end(&f, k);
        for (size_t i = 0; k >= 0 && i < lineage_size(&a->lineage); i++)
                k = send_record(r, node, a, lineage_at(&a->lineage, i));
        return k;
}

static uint64_t host_min_acked(HostRepl *hr) {
        /* Replicated once, and no replica left (every peer is dead to us: we may be the minority of
         * a partition): nothing more is acknowledged until a peer has everything again. */
        if (hr->n == 0)
                return hr->had_replicas ? 0 : UINT64_MAX;
        uint64_t m = UINT64_MAX;
        for (size_t i = 0; i < hr->n; i++)
                m = MIN(m, hr->acked[i]);
        return m;
}

static void deferred_deliver(Manager *m, Deferred *d, bool fail, const char *why) {
        if (fail)
                (void) objstore_set_failed(&m->store, d->o, KACTOR_ERROR_ACTOR_DIED, why);
        else
                object_complete(m, d->o, d->code, d->message, d->data, d->len);
        objstore_unref(&m->store, d->o);
        free(d->message);
        free(d->data);
        free(d);
}

static void host_deliver(Remote *r, HostRepl *hr) {
        uint64_t acked = host_min_acked(hr);
        Deferred *d;
        while ((d = TAILQ_FIRST(&hr->deferred)) && d->index <= acked) {
                TAILQ_REMOVE(&hr->deferred, d, link);
                deferred_deliver(r->manager, d, false, NULL);
        }
}

/* Brings the actor's replicas to R: dead ones go, the best-scored alive peers not yet in are added
 * and sent everything. */
static void host_replicate(Remote *r, HostRepl *hr) {
        Actor *a = hr->actor;
        for (size_t i = 0; i < hr->n;) {
                if (!node_alive(r, hr->replicas[i])) {
                        hr->replicas[i] = hr->replicas[hr->n - 1];
                        hr->acked[i] = hr->acked[hr->n - 1];
                        hr->n--;
                } else
                        i++;
        }
        /* The alive peers that are not replicas yet, the best scored first. */
        uint64_t peers[PEER_MAX];
        size_t n = alive_peers(r, peers, PEER_MAX), n_candidates = 0;
        for (size_t i = 0; i < n; i++) {
                Member *mb = member_of(r, peers[i]);
                if (replica_index(hr, peers[i]) < 0 && mb && mb->state == MEMBER_ALIVE)
                        peers[n_candidates++] = peers[i];
        }
        placement_rendezvous_sort(a->id, peers, n_candidates);
        size_t want = MIN((size_t) r->replicas, (size_t) REMOTE_REPLICAS_MAX);
        bool added = false;
        for (size_t i = 0; i < n_candidates && hr->n < want; i++) {
                if (replica_index(hr, peers[i]) >= 0)
                        continue;
                hr->replicas[hr->n] = peers[i];
                hr->acked[hr->n] = 0;
                hr->n++;
                hr->had_replicas = true;
                added = true;
        }
        if (added) /* every replica learns the new list (the order decides who rebuilds) */
                for (size_t i = 0; i < hr->n; i++)
                        (void) replica_sync(r, hr, hr->replicas[i]);
        host_deliver(r, hr);
}

void remote_actor_started(Actor *a) {
        Remote *r = a->manager->cluster_userdata;
        if (!r || a->shadow || r->replicas == 0 || a->repl || r->rebuilding)
                return;
        HostRepl *hr = calloc(1, sizeof(*hr));
        if (!hr)
                return;
        hr->actor = a;
        TAILQ_INIT(&hr->deferred);
        a->repl = hr;
        host_replicate(r, hr);
}

int remote_defer_result(Actor *a, Call *c, bool logged, kactor_error code, const char *message, const char *data,
                        size_t len) {
        HostRepl *hr = host_repl(a);
        if (!hr || (hr->n == 0 && !hr->had_replicas) || !c->result || c->result->state != OBJECT_PENDING)
                return 0;
        uint64_t index = logged ? a->lineage.next_index : lineage_last_index(&a->lineage);
        if (TAILQ_EMPTY(&hr->deferred) && host_min_acked(hr) >= index)
                return 0;
        Deferred *d = calloc(1, sizeof(*d));
        if (!d)
                return 0;
        *d = (Deferred) { .o = c->result, .index = index, .code = code };
        if ((message && !(d->message = strdup(message))) || (code == KACTOR_OK && !(d->data = malloc(len ?: 1)))) {
                free(d->message);
                free(d);
                return 0;
        }
        if (d->data)
                memcpy(d->data, data, len);
        d->len = len;
        objstore_ref(d->o);
        TAILQ_INSERT_TAIL(&hr->deferred, d, link);
        return 1;
}

void remote_record_logged(Actor *a, uint64_t index) {
        Remote *r = a->manager->cluster_userdata;
        HostRepl *hr = host_repl(a);
        const LineageRecord *rec = lineage_get(&a->lineage, index);
        if (!r || !hr || !rec)
                return;
        for (size_t i = 0; i < hr->n; i++)
                (void) send_record(r, hr->replicas[i], a, rec);
        /* A caller on another node (its node made the result's id) waits for this result. */
        Serve *sv, key = { .key = { .object = rec->result, .node = rec->result.hi } };
        HASH_FIND(hh, r->serves, &key.key, sizeof(key.key), sv);
        if (sv)
                sv->index = index;
}

static void send_checkpoint(Remote *r, HostRepl *hr) {
        Actor *a = hr->actor;
        for (size_t i = 0; i < hr->n; i++) {
                PeerFrame f;
                int k = frame_start(r, hr->replicas[i], PEER_MSG_REPL_CHECKPOINT, 3, &f);
                if (k < 0)
                        continue;
                k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, a->id);
                if (k >= 0)
                        k = pk_ok(msgpack_pack_uint64(f.pk, a->lineage.checkpoint_index) |
                                  msgpack_pack_bin(f.pk, (uint32_t) a->lineage.checkpoint_len) |
                                  msgpack_pack_bin_body(f.pk, a->lineage.checkpoint, a->lineage.checkpoint_len));
                (void) cluster_frame_end(&f, k);
        }
}

/* Whether a serve's result is one that the actor's checkpoint covers and its caller has not taken. */
static bool serve_blocks_checkpoint(const Serve *sv, const Actor *a) {
        return sv->index > 0 && sv->index <= a->lineage.checkpoint_index && kactor_id_equal(sv->actor, a->id);
}

void remote_checkpointed(Actor *a) {
        Remote *r = a->manager->cluster_userdata;
        HostRepl *hr = host_repl(a);
        if (!r || !hr || !a->lineage.checkpoint)
                return;
        /* Replicas drop the records a checkpoint covers: not while a caller elsewhere may still send
         * one of those calls again (its result lost on the way), which the rebuilt actor could
         * then not tell from a new call. */
        Serve *sv, *tmp;
        hr->checkpoint_blockers = 0;
        HASH_ITER(hh, r->serves, sv, tmp)
                if (serve_blocks_checkpoint(sv, a))
                        hr->checkpoint_blockers++;
        hr->checkpoint_held = hr->checkpoint_blockers > 0;
        if (!hr->checkpoint_held)
                send_checkpoint(r, hr);
}

int remote_actor_replicas(const Actor *a, char ***ret) {
        const HostRepl *hr = a->repl;
        size_t n = hr ? hr->n : 0;
        char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                v[i] = malloc(NODE_ID_STRING_MAX);
                if (!v[i]) {
                        for (size_t k = 0; k < i; k++)
                                free(v[k]);
                        free(v);
                        return -ENOMEM;
                }
                node_id_format(hr->replicas[i], v[i]);
        }
        *ret = v;
        return 0;
}

void remote_actor_died(Actor *a) {
        Remote *r = a->manager->cluster_userdata; /* NULL when the node manager stops */
        HostRepl *hr = host_repl(a);
        if (!hr)
                return;
        /* Its results were computed and it will not be rebuilt: they are what they are. Only when
         * the cluster declared this node dead do they stay unacknowledged: the actor lives on. */
        Deferred *d;
        while ((d = TAILQ_FIRST(&hr->deferred))) {
                TAILQ_REMOVE(&hr->deferred, d, link);
                deferred_deliver(a->manager, d, hr->fenced,
                                 "this node was declared dead by the cluster; the actor lives on another node");
        }
        /* Results a replay was to fill will not come. */
        Rebuilt *rb;
        if (r)
                LIST_FOREACH(rb, &r->rebuilt, link)
                        if (kactor_id_equal(rb->actor, a->id))
                                for (size_t i = 0; i < rb->n; i++)
                                        if (rb->objects[i]->state == OBJECT_PENDING)
                                                (void) objstore_set_failed(&a->manager->store, rb->objects[i],
                                                                           KACTOR_ERROR_ACTOR_DIED,
                                                                           "the actor died while it was rebuilt");
        if (!hr->fenced && r)
                for (size_t i = 0; i < hr->n; i++)
                        (void) send_id_list(r, hr->replicas[i], PEER_MSG_REPL_DROP, CODEC_EXT_ACTOR, &a->id, 1);
        hr->n = 0;
}

void remote_actor_freed(Actor *a) {
        HostRepl *hr = host_repl(a);
        if (!hr)
                return;
        remote_actor_died(a);
        free(hr);
        a->repl = NULL;
        /* Handles peers held: their entries go with it. */
        Remote *r = a->manager->cluster_userdata;
        PeerHold *h, *tmp;
        if (r)
                HASH_ITER(hh, r->holds, h, tmp)
                        if (kactor_id_equal(h->key.actor, a->id)) {
                                HASH_DEL(r->holds, h);
                                free(h);
                        }
}

/* --- replicas (a peer's actors kept here) --------------------------------------------------------- */

static Replica *replica_find(Remote *r, kactor_id id) {
        Replica *rep;
        HASH_FIND(hh, r->replica_set, &id, sizeof(id), rep);
        return rep;
}

static void replica_free(Remote *r, Replica *rep) {
        if (rep->ack_due)
                LIST_REMOVE(rep, ack_link);
        HASH_DEL(r->replica_set, rep);
        spec_wire_done(&rep->spec);
        free(rep->args);
        lineage_done(&rep->log);
        free(rep);
}

static int send_ack(Remote *r, uint64_t node, kactor_id actor, uint64_t index, bool need_sync) {
        PeerFrame f;
        int k = frame_start(r, node, PEER_MSG_REPL_ACK, 3, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = pk_ok(msgpack_pack_uint64(f.pk, index) |
                          (need_sync ? msgpack_pack_true(f.pk) : msgpack_pack_false(f.pk)));
        return cluster_frame_end(&f, k);
}

static void rebuilt_free(Rebuilt *rb) {
        Manager *m = rb->remote->manager;
        LIST_REMOVE(rb, link);
        sd_event_source_disable_unref(rb->timer);
        for (size_t i = 0; i < rb->n; i++)
                objstore_unref(&m->store, rb->objects[i]);
        free(rb->objects);
        free(rb);
}

static int on_rebuilt_expired(sd_event_source *s, uint64_t usec, void *userdata) {
        Rebuilt *rb = userdata;
        Manager *m = rb->remote->manager;
        Actor *a = manager_find_actor(m, rb->actor);
        rebuilt_free(rb);
        /* Nobody took a handle to it since it came back, and it is not detached: it goes the way
         * of an actor whose last handle went. */
        if (a && a->refs == 0 && !a->detached && a->state != ACTOR_DEAD) {
                actor_ref(a);
                actor_unref(a);
        }
        return 0;
}

/* The actor is about to take over these calls; is o one whose result a replay fills? */
static bool rebuilt_claims(Remote *r, kactor_id actor, const Object *o) {
        Rebuilt *rb;
        LIST_FOREACH(rb, &r->rebuilt, link)
                if (kactor_id_equal(rb->actor, actor))
                        for (size_t i = 0; i < rb->n; i++)
                                if (rb->objects[i] == o)
                                        return true;
        return false;
}

/* The host died and we are the first live replica: the actor comes back here. */
static void replica_rebuild(Remote *r, Replica *rep) {
        Manager *m = r->manager;
        char s[KACTOR_ID_STRING_MAX], host[NODE_ID_STRING_MAX];
        kactor_id_to_string(rep->id, s);
        node_id_format(rep->host, host);

        ActorSpec spec = spec_from_wire(&rep->spec, rep->args, rep->args_len);
        spec.id = rep->id;
        spec.lineage = &rep->log;
        size_t n_records = lineage_size(&rep->log);
        uint64_t old[REMOTE_REPLICAS_MAX];
        size_t n_old = rep->n_replicas;
        memcpy(old, rep->replicas, sizeof(old));

        /* A stopped copy of ours (this node was declared dead once, and the actor came back
         * here since) gives way to the rebuilt one. */
        Actor *a = manager_find_actor(m, rep->id);
        if (a && a->state == ACTOR_DEAD)
                actor_free(a);
        ReqError e = {};
        r->rebuilding = true;
        int k = manager_create_actor(m, &spec, &a, &e);
        r->rebuilding = false;
        if (k < 0) {
                _cleanup_free_ char *cause = NULL;
                if (asprintf(&cause, "lost with node %s and could not be rebuilt on node %s: %s", host, m->node_id,
                             e.message ?: strerror(-k)) < 0)
                        cause = NULL;
                log_warning("Actor %s: %s", s, cause ?: "could not be rebuilt");
                broadcast_moved(r, rep->id, 0, cause ?: "could not be rebuilt");
                RemoteActor *ra = remote_actor_find(r, rep->id);
                if (ra)
                        remote_actor_moved(ra, 0, cause ?: "could not be rebuilt");
                req_error_done(&e);
                replica_free(r, rep);
                return;
        }
        log_notice("Actor %s (%s) of dead node %s rebuilt here from %zu calls of lineage%s.", s, a->class_name, host,
                   n_records, a->lineage.checkpoint ? " after a checkpoint" : "");

        /* The replayed calls' results, for callers that send their calls again. */
        Rebuilt *rb = calloc(1, sizeof(*rb));
        if (rb) {
                rb->remote = r;
                rb->actor = a->id;
                rb->objects = calloc(lineage_size(&a->lineage) ?: 1, sizeof(Object *));
                for (size_t i = 0; rb->objects && i < lineage_size(&a->lineage); i++) {
                        const LineageRecord *rec = lineage_at(&a->lineage, i);
                        Object *o = objstore_find(&m->store, rec->result);
                        if (o) {
                                if (o->state != OBJECT_PENDING)
                                        continue;
                                objstore_ref(o);
                        } else if (objstore_add(&m->store, rec->result, &o) < 0)
                                continue;
                        rb->objects[rb->n++] = o;
                }
                LIST_INSERT_HEAD(&r->rebuilt, rb, link);
                (void) sd_event_add_time_relative(m->event, &rb->timer, CLOCK_MONOTONIC, REMOTE_REBUILT_KEEP_USEC, 0,
                                                  on_rebuilt_expired, rb);
        }

        replica_free(r, rep);
        location_set(r, a->id, r->self);
        /* Everyone hears of the move before any replica does: a replica takes records only from
         * where the actor lives. */
        broadcast_moved(r, a->id, r->self, NULL);
        remote_actor_started(a);
        /* Old replicas that are not replicas any more forget it. */
        HostRepl *hr = host_repl(a);
        for (size_t i = 0; i < n_old; i++)
                if (old[i] != r->self && node_alive(r, old[i]) && (!hr || replica_index(hr, old[i]) < 0))
                        (void) send_id_list(r, old[i], PEER_MSG_REPL_DROP, CODEC_EXT_ACTOR, &a->id, 1);
        RemoteActor *ra = remote_actor_find(r, a->id);
        if (ra)
                remote_actor_moved(ra, r->self, NULL);
}

void remote_replayed(Actor *a, uint64_t index, kactor_error code, const char *message, const char *data,
                     size_t len) {
        Remote *r = a->manager->cluster_userdata;
        const LineageRecord *rec = lineage_get(&a->lineage, index);
        if (!r || !rec)
                return;
        Object *o = objstore_find(&a->manager->store, rec->result);
        if (o && rebuilt_claims(r, a->id, o))
                object_complete(a->manager, o, code, message, data, len);
}

/* --- moves ---------------------------------------------------------------------------------------- */

static void remote_actor_moved(RemoteActor *ra, uint64_t node, const char *cause) {
        Remote *r = ra->remote;
        Manager *m = r->manager;

        if (node == 0) {
                remote_actor_set_dead(ra, cause ?: "could not be rebuilt");
                return;
        }
        if (node == r->self) {
                /* It lives here now: its calls and handles go to the local actor, in their order;
                 * those a replay answers are answered by it. */
                Actor *a = manager_find_actor(m, ra->id);
                if (!a) {
                        remote_actor_set_dead(ra, "lost");
                        return;
                }
                /* The handles first: from now on the id names the local actor, and a call freed
                 * below releases the handles its arguments hold there. */
                for (unsigned i = 0; i < ra->refs; i++)
                        actor_ref(a);
                ra->refs = 0;
                ra->held = false;
                ra->dead = true; /* nothing to release: the handles moved to the actor */
                ra->busy++;
                callqueue_requeue_inflight(&ra->queue);
                Call *c;
                while ((c = TAILQ_FIRST(&ra->queue.queued))) {
                        TAILQ_REMOVE(&ra->queue.queued, c, link);
                        ra->queue.n_queued--;
                        if (rebuilt_claims(r, ra->id, c->result)) {
                                call_free(m, c); /* the object stays pending: the replay fills it */
                                continue;
                        }
                        actor_adopt_call(a, c);
                }
                ra->busy--;
                remote_actor_maybe_free(ra);
                actor_dispatch(a);
                return;
        }
        bool changed = ra->node != node;
        ra->node = node;
        ra->lost = false;
        if (changed)
                ra->held = false;
        /* Calls sent to the old node and not answered go again, first: the new host runs those it
         * has not run and answers the others from the lineage. */
        callqueue_requeue_inflight(&ra->queue);
        remote_actor_pump(ra);
}

/* --- frames --------------------------------------------------------------------------------------- */

static int handle_create(Remote *r, uint64_t from, RemoteMessage *msg) {
        Manager *m = r->manager;
        ActorSpec spec = spec_from_wire(&msg->spec, msg->body, msg->body_len);
        spec.id = msg->actor;
        Actor *a;
        ReqError e = {};
        int k = manager_find_actor(m, msg->actor) ? req_error(&e, KACTOR_ERROR_NAME_TAKEN, "the actor id is taken")
                                                  : manager_create_actor(m, &spec, &a, &e);
        if (k >= 0)
                peer_hold_add(r, a, from);
        PeerFrame pf;
        if (frame_start(r, from, PEER_MSG_CREATED, 3, &pf) >= 0) {
                int p = codec_pack_id(pf.pk, CODEC_EXT_ACTOR, msg->actor);
                if (p >= 0)
                        p = pk_ok(msgpack_pack_uint32(pf.pk, k >= 0 ? KACTOR_OK : k == -EREMOTEIO ? e.code
                                                                                    : KACTOR_ERROR_NOT_SUPPORTED));
                if (p >= 0)
                        p = pack_cstr(pf.pk, k >= 0 ? NULL : e.message ?: strerror(-k));
                (void) cluster_frame_end(&pf, p);
        }
        req_error_done(&e);
        return 0;
}

static int handle_created(Remote *r, uint64_t from, RemoteMessage *msg) {
        RemoteActor *ra = msg->code != KACTOR_OK ? remote_actor_find(r, msg->actor) : NULL;
        if (!ra)
                return 0;
        _cleanup_free_ char *cause = NULL;
        if (asprintf(&cause, "it could not be made on its node: %.*s", (int) msg->text_len, msg->text ?: "") < 0)
                cause = NULL;
        remote_actor_set_dead(ra, cause ?: "it could not be made on its node");
        return 0;
}

static int handle_call(Remote *r, uint64_t from, RemoteMessage *msg) {
        Manager *m = r->manager;
        Actor *a = manager_find_actor(m, msg->actor);
        if (!a || (a->state == ACTOR_DEAD && a->fenced)) {
                Location *l = location_find(r, msg->actor);
                if (l && l->node != r->self && node_alive(r, l->node)) {
                        (void) send_moved(r, from, msg->actor, l->node, NULL);
                        return 0;
                }
                char s[KACTOR_ID_STRING_MAX];
                kactor_id_to_string(msg->actor, s);
                _cleanup_free_ char *text = NULL;
                if (asprintf(&text, "no actor %s on node %s", s, m->node_id) < 0)
                        text = NULL;
                serve_error(r, from, msg->object, msg->actor, KACTOR_ERROR_NO_SUCH_ACTOR, text ?: "no such actor");
                return 0;
        }
        Object *o = objstore_find(&m->store, msg->object);
        if (o) {
                serve(r, from, o, msg->actor, false); /* sent again after a move: one run, one answer */
                return 0;
        }
        ReqError e = {};
        int k = manager_submit_call(m, msg->actor, msg->object, msg->text, msg->text_len, msg->body ?: "\x90",
                                    msg->body ? msg->body_len : 1, NULL, &o, &e);
        if (k < 0) {
                serve_error(r, from, msg->object, msg->actor, k == -EREMOTEIO ? e.code : KACTOR_ERROR_TASK_FAILED,
                            e.message ?: strerror(-k));
                req_error_done(&e);
                return 0;
        }
        serve(r, from, o, msg->actor, true);
        return 0;
}

static int handle_result(Remote *r, uint64_t from, RemoteMessage *msg) {
        Manager *m = r->manager;
        _cleanup_free_ char *text = msg->code != KACTOR_OK ? strndup(msg->text ?: "failed", msg->text ? msg->text_len : 6)
                                                           : NULL;
        kactor_error code = (kactor_error) msg->code;

        if (msg->has_actor) {
                RemoteActor *ra = remote_actor_find(r, msg->actor);
                Call *c = NULL;
                if (ra && ra->node == from)
                        TAILQ_FOREACH(c, &ra->queue.inflight, link)
                                if (kactor_id_equal(c->result->id, msg->object))
                                        break;
                if (c) {
                        TAILQ_REMOVE(&ra->queue.inflight, c, link);
                        ra->queue.n_inflight--;
                        object_complete(m, c->result, code, text, msg->body, msg->body_len);
                        ra->busy++;
                        call_free(m, c);
                        ra->busy--;
                        remote_actor_maybe_free(ra);
                }
        } else {
                Fetch *fe;
                HASH_FIND(hh, r->fetches, &msg->object, sizeof(msg->object), fe);
                if (fe && fe->node == from) {
                        object_complete(m, fe->o, code, text, msg->body, msg->body_len);
                        fetch_free(r, fe);
                }
        }
        /* Taken (or not wanted): the sender's copy may go. Handles inside were taken before this
         * goes out, and a peer handles our frames in order. */
        if (r->n_done == r->n_done_allocated) {
                size_t n = MAX(r->n_done_allocated * 2, (size_t) 64);
                struct PendingDone *v = realloc(r->done, n * sizeof(*v));
                if (!v)
                        return send_id_list(r, from, PEER_MSG_DONE, CODEC_EXT_OBJECT, &msg->object, 1);
                r->done = v;
                r->n_done_allocated = n;
        }
        r->done[r->n_done++] = (struct PendingDone) { .node = from, .object = msg->object };
        return 0;
}

static int for_each_id(Remote *r, uint64_t from, const RemoteMessage *msg,
                       void (*fn)(Remote *r, uint64_t from, kactor_id id)) {
        for (uint32_t i = 0; i < msg->ids->via.array.size; i++)
                fn(r, from, remote_message_id(msg, i));
        return 0;
}

static void do_done(Remote *r, uint64_t from, kactor_id id) {
        Serve *sv, key = { .key = { .object = id, .node = from } };
        HASH_FIND(hh, r->serves, &key.key, sizeof(key.key), sv);
        if (sv)
                serve_free(sv);
}

static void do_hold(Remote *r, uint64_t from, kactor_id id) {
        Actor *a = manager_find_actor(r->manager, id);
        if (a && a->state != ACTOR_DEAD)
                peer_hold_add(r, a, from);
}

static void do_release(Remote *r, uint64_t from, kactor_id id) {
        PeerHold *h = peer_hold_find(r, id, from);
        if (h)
                peer_hold_drop(r, h);
}

static void do_repl_drop(Remote *r, uint64_t from, kactor_id id) {
        Replica *rep = replica_find(r, id);
        if (rep && rep->host == from)
                replica_free(r, rep);
}

static int handle_fetch(Remote *r, uint64_t from, RemoteMessage *msg) {
        Object *o = objstore_find(&r->manager->store, msg->object);
        if (!o) {
                char s[KACTOR_ID_STRING_MAX];
                kactor_id_to_string(msg->object, s);
                _cleanup_free_ char *text = NULL;
                if (asprintf(&text, "no object %s on node %s (never made, or released)", s, r->manager->node_id) < 0)
                        text = NULL;
                serve_error(r, from, msg->object, (kactor_id) {}, KACTOR_ERROR_NO_SUCH_OBJECT,
                            text ?: "no such object");
                return 0;
        }
        serve(r, from, o, (kactor_id) {}, false);
        return 0;
}

static int handle_kill(Remote *r, uint64_t from, RemoteMessage *msg) {
        Actor *a = manager_find_actor(r->manager, msg->actor);
        if (a)
                (void) actor_kill(a, msg->flag, "killed by request");
        return 0;
}

static int handle_moved(Remote *r, uint64_t from, RemoteMessage *msg) {
        RemoteActor *ra;
        if (msg->node == 0) {
                _cleanup_free_ char *cause = strndup(msg->text ?: "", msg->text_len);
                ra = remote_actor_find(r, msg->actor);
                if (ra)
                        remote_actor_moved(ra, 0, cause && *cause ? cause : "could not be rebuilt");
                return 0;
        }
        if (msg->node == r->self && !manager_find_actor(r->manager, msg->actor))
                return 0; /* stale */
        location_set(r, msg->actor, msg->node);
        Replica *rep = replica_find(r, msg->actor);
        if (rep && msg->node != r->self)
                rep->host = msg->node;
        ra = remote_actor_find(r, msg->actor);
        if (ra)
                remote_actor_moved(ra, msg->node, NULL);
        return 0;
}

static int handle_locate(Remote *r, uint64_t from, RemoteMessage *msg) {
        Actor *a = manager_find_actor(r->manager, msg->actor);
        if (a && a->state != ACTOR_DEAD)
                (void) send_moved(r, from, msg->actor, r->self, NULL);
        return 0;
}

/* Whether `from` may keep a replica of the actor here: not when the actor lives here, nor when
 * another live node hosts it (from is a stale host, back from a partition). */
static bool replica_host_ok(Remote *r, uint64_t from, kactor_id id) {
        Actor *a = manager_find_actor(r->manager, id);
        if (a && a->state != ACTOR_DEAD)
                return false;
        Replica *rep = replica_find(r, id);
        if (rep && rep->host != from && node_alive(r, rep->host))
                return false;
        Location *l = location_find(r, id);
        return !l || l->node == from || !node_alive(r, l->node);
}

static int handle_repl_create(Remote *r, uint64_t from, RemoteMessage *msg) {
        if (!replica_host_ok(r, from, msg->actor))
                return 0;
        Replica *rep = replica_find(r, msg->actor);
        if (rep && rep->host == from && msg->index >= rep->log.checkpoint_index &&
            msg->index <= lineage_last_index(&rep->log)) {
                /* What we have is the start of what it sends: keep it (the records that follow are
                 * repeats), take the new list of replicas. */
                rep->n_replicas = msg->n_replicas;
                memcpy(rep->replicas, msg->replicas, sizeof(uint64_t) * rep->n_replicas);
                (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), false);
                return 0;
        }
        if (rep)
                replica_free(r, rep);
        rep = calloc(1, sizeof(*rep));
        if (!rep)
                return -ENOMEM;
        rep->id = msg->actor;
        rep->host = from;
        lineage_init(&rep->log);
        rep->n_replicas = msg->n_replicas;
        memcpy(rep->replicas, msg->replicas, sizeof(uint64_t) * rep->n_replicas);
        if (msg->body && !(rep->args = malloc(msg->body_len))) {
                free(rep);
                return -ENOMEM;
        }
        if (msg->body)
                memcpy(rep->args, msg->body, msg->body_len);
        rep->args_len = msg->body_len;
        rep->spec = msg->spec; /* taken */
        msg->spec = (SpecWire) {};
        if (msg->blob)
                (void) lineage_restore(&rep->log, msg->index, msg->blob, msg->blob_len);
        HASH_ADD(hh, r->replica_set, id, sizeof(rep->id), rep);
        (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), false);
        return 0;
}

static int handle_repl_record(Remote *r, uint64_t from, RemoteMessage *msg) {
        const LineageRecord *rec = &msg->record;
        Replica *rep = replica_find(r, msg->actor);
        if (!rep || rep->host != from) {
                if (replica_host_ok(r, from, msg->actor))
                        (void) send_ack(r, from, msg->actor, 0, true); /* missed its start: everything */
        } else if (rec->index == rep->log.next_index) {
                if (lineage_append(&rep->log, rec->result, rec->method, rec->args, rec->args_len, rec->code) >= 0 &&
                    !rep->ack_due) {
                        rep->ack_due = true;
                        LIST_INSERT_HEAD(&r->acks_due, rep, ack_link);
                }
        } else
                /* A repeat is acknowledged again; a gap asks for everything. */
                (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), rec->index > rep->log.next_index);
        return 0;
}

static int handle_repl_checkpoint(Remote *r, uint64_t from, RemoteMessage *msg) {
        Replica *rep = replica_find(r, msg->actor);
        if (rep && rep->host == from && lineage_checkpoint(&rep->log, msg->index, msg->blob, msg->blob_len) < 0)
                (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), true);
        return 0;
}

static int handle_repl_ack(Remote *r, uint64_t from, RemoteMessage *msg) {
        Actor *a = manager_find_actor(r->manager, msg->actor);
        HostRepl *hr = a ? host_repl(a) : NULL;
        int i = hr ? replica_index(hr, from) : -1;
        if (i < 0)
                return 0;
        if (msg->flag) {
                hr->acked[i] = 0;
                (void) replica_sync(r, hr, from);
                return 0;
        }
        hr->acked[i] = MAX(hr->acked[i], msg->index);
        host_deliver(r, hr);
        return 0;
}

static int handle_done(Remote *r, uint64_t from, RemoteMessage *msg) {
        return for_each_id(r, from, msg, do_done);
}

static int handle_hold(Remote *r, uint64_t from, RemoteMessage *msg) {
        return for_each_id(r, from, msg, do_hold);
}

static int handle_release(Remote *r, uint64_t from, RemoteMessage *msg) {
        return for_each_id(r, from, msg, do_release);
}

static int handle_repl_drop(Remote *r, uint64_t from, RemoteMessage *msg) {
        return for_each_id(r, from, msg, do_repl_drop);
}

/* By message type, from PEER_MSG_DATA_FIRST. */
static int (*const handlers[])(Remote *r, uint64_t from, RemoteMessage *msg) = {
        [PEER_MSG_CREATE - PEER_MSG_DATA_FIRST] = handle_create,
        [PEER_MSG_CREATED - PEER_MSG_DATA_FIRST] = handle_created,
        [PEER_MSG_CALL - PEER_MSG_DATA_FIRST] = handle_call,
        [PEER_MSG_RESULT - PEER_MSG_DATA_FIRST] = handle_result,
        [PEER_MSG_DONE - PEER_MSG_DATA_FIRST] = handle_done,
        [PEER_MSG_FETCH - PEER_MSG_DATA_FIRST] = handle_fetch,
        [PEER_MSG_HOLD - PEER_MSG_DATA_FIRST] = handle_hold,
        [PEER_MSG_RELEASE - PEER_MSG_DATA_FIRST] = handle_release,
        [PEER_MSG_KILL - PEER_MSG_DATA_FIRST] = handle_kill,
        [PEER_MSG_MOVED - PEER_MSG_DATA_FIRST] = handle_moved,
        [PEER_MSG_LOCATE - PEER_MSG_DATA_FIRST] = handle_locate,
        [PEER_MSG_REPL_CREATE - PEER_MSG_DATA_FIRST] = handle_repl_create,
        [PEER_MSG_REPL_RECORD - PEER_MSG_DATA_FIRST] = handle_repl_record,
        [PEER_MSG_REPL_CHECKPOINT - PEER_MSG_DATA_FIRST] = handle_repl_checkpoint,
        [PEER_MSG_REPL_ACK - PEER_MSG_DATA_FIRST] = handle_repl_ack,
        [PEER_MSG_REPL_DROP - PEER_MSG_DATA_FIRST] = handle_repl_drop,
};
_Static_assert(ELEMENTSOF(handlers) == _PEER_MSG_DATA_END - PEER_MSG_DATA_FIRST, "a peer message without a handler");

int remote_handle_frame(Manager *m, const char *from_id, const Frame *f) {
        Remote *r = m->cluster_userdata;
        RemoteMessage msg;
        uint64_t from;
        int k = 0;

        if (!r || node_id_parse(from_id, strlen(from_id), &from) < 0)
                return -EPROTO;
        if (remote_message_parse(f, &msg) < 0) {
                log_warning("Peer %s sent a malformed message (type %u): dropping it.", from_id, f->type);
                return -EBADMSG;
        }
        /* remote_message_parse() takes only the types of the table. */
        k = handlers[msg.type - PEER_MSG_DATA_FIRST](r, from, &msg);
        remote_message_done(&msg);
        return k;
}

/* --- membership ----------------------------------------------------------------------------------- */

static bool node_seen_dead(Remote *r, uint64_t node) {
        for (size_t i = 0; i < r->n_dead_nodes; i++)
                if (r->dead_nodes[i] == node)
                        return true;
        return false;
}

/* A node died: what it held goes, what we waited from it is looked for elsewhere. */
static void remote_node_died(Remote *r, uint64_t node) {
        Manager *m = r->manager;
        char s[NODE_ID_STRING_MAX];
        node_id_format(node, s);
        log_notice("Node %s is dead: releasing what it held, rebuilding what it hosted.", s);

        /* Dropping a hold can end an actor, and with it entries of these tables: what to do is
         * gathered first, then done by id. */
        _cleanup_free_ kactor_id *ids = NULL;
        size_t n = 0;
        PeerHold *h, *htmp;
        ids = calloc(HASH_CNT(hh, r->holds) + 1, sizeof(kactor_id));
        HASH_ITER(hh, r->holds, h, htmp)
                if (ids && h->key.node == node)
                        ids[n++] = h->key.actor;
        for (size_t i = 0; i < n; i++)
                if ((h = peer_hold_find(r, ids[i], node)))
                        peer_hold_drop(r, h);
        Serve *sv, *stmp;
        HASH_ITER(hh, r->serves, sv, stmp)
                if (sv->key.node == node)
                        serve_free(sv);
        Fetch *fe, *ftmp;
        HASH_ITER(hh, r->fetches, fe, ftmp)
                if (fe->node == node) {
                        (void) objstore_set_failed(&m->store, fe->o, KACTOR_ERROR_NO_SUCH_OBJECT,
                                                   "the node that made the object died");
                        fetch_free(r, fe);
                }
        RemoteActor *ra, *rtmp;
        HASH_ITER(hh, r->actors, ra, rtmp)
                if (ra->node == node && !ra->dead && !ra->lost) {
                        ra->lost = true;
                        ra->lost_since = now_usec(CLOCK_MONOTONIC);
                        ra->held = false;
                        callqueue_requeue_inflight(&ra->queue);
                }
        Actor *a, *atmp;
        n = 0;
        free(ids);
        ids = calloc(HASH_CNT(hh, m->actors) + 1, sizeof(kactor_id));
        HASH_ITER(hh, m->actors, a, atmp)
                if (ids && host_repl(a) && replica_index(host_repl(a), node) >= 0)
                        ids[n++] = a->id;
        for (size_t i = 0; i < n; i++)
                if ((a = manager_find_actor(m, ids[i])) && host_repl(a))
                        host_replicate(r, host_repl(a));
}

/* Whether this node sees a strict majority of the cluster alive (itself included): only then does
 * it rebuild the actors of nodes it thinks dead (placement_has_quorum()). */
static bool remote_has_quorum(Remote *r) {
        static const QuorumState state_of[_MEMBER_STATE_MAX] = {
                [MEMBER_ALIVE] = QUORUM_ALIVE,
                [MEMBER_SUSPECT] = QUORUM_SUSPECT,
                [MEMBER_DEAD] = QUORUM_DEAD,
        };
        Membership *ms = cluster_membership(r->cluster);
        QuorumMember members[MEMBERSHIP_MEMBERS_MAX];
        for (size_t i = 0; i < ms->n_members; i++)
                members[i] = (QuorumMember) {
                        .state = state_of[ms->members[i].state],
                        .state_since = ms->members[i].state_since,
                        .address = ms->members[i].address,
                };
        /* the clock of state_since (CLOCK_MONOTONIC) */
        return placement_has_quorum(members, ms->n_members, now_usec(CLOCK_MONOTONIC));
}

static void remote_check_replicas(Remote *r) {
        Replica *rep, *tmp;
        int quorum = -1;
        HASH_ITER(hh, r->replica_set, rep, tmp) {
                if (node_alive(r, rep->host))
                        continue;
                if (quorum < 0)
                        quorum = remote_has_quorum(r);
                if (!quorum) {
                        if (!r->quorum_warned)
                                log_warning("Nodes are dead, but this node does not see a majority of the cluster "
                                            "alive: it rebuilds none of their actors (the others may have).");
                        r->quorum_warned = true;
                        return;
                }
                r->quorum_warned = false;
                /* The first live node of its replica list rebuilds it. */
                for (size_t i = 0; i < rep->n_replicas; i++) {
                        if (!node_alive(r, rep->replicas[i]))
                                continue;
                        if (rep->replicas[i] == r->self)
                                replica_rebuild(r, rep);
                        break;
                }
        }
}

int remote_pack_moved(Manager *m, msgpack_packer *pk, const char *to) {
        Remote *r = m->cluster_userdata;
        uint64_t target = 0;
        size_t n = 0;
        Location *l, *tmp;
        if (!r)
                return msgpack_pack_array(pk, 0) < 0 ? -ENOMEM : 0;
        (void) node_id_parse(to, strlen(to), &target);
        HASH_ITER(hh, r->locations, l, tmp)
                if (l->node != target && n < REMOTE_MOVED_MAX)
                        n++;
        if (msgpack_pack_array(pk, (uint32_t) n) < 0)
                return -ENOMEM;
        HASH_ITER(hh, r->locations, l, tmp) {
                if (l->node == target || n == 0)
                        continue;
                char s[NODE_ID_STRING_MAX];
                node_id_format(l->node, s);
                if (msgpack_pack_array(pk, 2) < 0 || codec_pack_id(pk, CODEC_EXT_ACTOR, l->id) < 0 || pack_cstr(pk, s) < 0)
                        return -ENOMEM;
                n--;
        }
        return 0;
}

void remote_dead_notice(Manager *m, const msgpack_object *moved) {
        Remote *r = m->cluster_userdata;
        if (!r)
                return;
        /* The actors that were rebuilt elsewhere while this node counted as dead stop here: the
         * cluster acknowledged their calls there. Every other one stays. */
        unsigned stopped = 0;
        for (uint32_t i = 0; i < moved->via.array.size; i++) {
                const msgpack_object *e = moved->via.array.ptr[i].via.array.ptr;
                kactor_id id;
                uint64_t node;
                if (codec_object_to_id(&e[0], CODEC_EXT_ACTOR, &id) < 0 ||
                    node_id_parse(e[1].via.str.ptr, e[1].via.str.size, &node) < 0 || node == r->self)
                        continue;
                location_set(r, id, node);
                Actor *a = manager_find_actor(m, id);
                if (!a || a->state == ACTOR_DEAD)
                        continue;
                if (host_repl(a))
                        host_repl(a)->fenced = true;
                a->fenced = true;
                (void) actor_kill(a, true,
                                  "this node was declared dead by the cluster; the actor was rebuilt on another node");
                stopped++;
        }
        if (stopped > 0)
                log_warning("This node was declared dead by the cluster: %u of its actors were rebuilt on other "
                            "nodes, stopping them here.", stopped);
}

void remote_peer_connected(Manager *m, const char *node_id) {
        Remote *r = m->cluster_userdata;
        uint64_t node;
        if (!r || node_id_parse(node_id, strlen(node_id), &node) < 0)
                return;
        size_t n = 0;
        RemoteActor *ra, *rtmp;
        _cleanup_free_ kactor_id *ids = calloc(HASH_CNT(hh, r->actors) + HASH_CNT(hh, m->actors) + 1, sizeof(kactor_id));
        if (!ids)
                return;
        HASH_ITER(hh, r->actors, ra, rtmp)
                if (ra->node == node && !ra->lost && !ra->dead)
                        ids[n++] = ra->id;
        for (size_t i = 0; i < n; i++)
                if ((ra = remote_actor_find(r, ids[i]))) {
                        ra->held = false;
                        callqueue_requeue_inflight(&ra->queue);
                        remote_actor_pump(ra);
                }
        Fetch *fe, *ftmp;
        HASH_ITER(hh, r->fetches, fe, ftmp)
                if (fe->node == node) {
                        PeerFrame f;
                        if (frame_start(r, node, PEER_MSG_FETCH, 1, &f) >= 0)
                                (void) cluster_frame_end(&f, codec_pack_id(f.pk, CODEC_EXT_OBJECT, fe->id));
                }
        Serve *sv, *stmp;
        HASH_ITER(hh, r->serves, sv, stmp)
                if (sv->key.node == node && sv->sent)
                        serve_send(sv);
        n = 0;
        Actor *a, *atmp;
        HASH_ITER(hh, m->actors, a, atmp)
                if (host_repl(a) && replica_index(host_repl(a), node) >= 0)
                        ids[n++] = a->id;
        for (size_t i = 0; i < n; i++)
                if ((a = manager_find_actor(m, ids[i])) && host_repl(a))
                        (void) replica_sync(r, host_repl(a), node);
}

void remote_members_changed(Manager *m) {
        Remote *r = m->cluster_userdata;
        if (!r)
                return;
        Membership *ms = cluster_membership(r->cluster);
        for (size_t i = 1; i < ms->n_members; i++) {
                uint64_t node;
                if (node_id_parse(ms->members[i].id, strlen(ms->members[i].id), &node) < 0)
                        continue;
                bool dead = ms->members[i].state == MEMBER_DEAD, seen = node_seen_dead(r, node);
                if (dead && !seen) {
                        uint64_t *v = realloc(r->dead_nodes, (r->n_dead_nodes + 1) * sizeof(uint64_t));
                        if (!v)
                                continue;
                        r->dead_nodes = v;
                        r->dead_nodes[r->n_dead_nodes++] = node;
                        remote_node_died(r, node);
                } else if (!dead && seen) {
                        /* Back (a new incarnation): it starts afresh. */
                        for (size_t k = 0; k < r->n_dead_nodes; k++)
                                if (r->dead_nodes[k] == node)
                                        r->dead_nodes[k] = r->dead_nodes[--r->n_dead_nodes];
                }
        }
        remote_check_replicas(r);
        /* New members can take replicas of actors that have fewer than R (by id: delivering
         * results can end actors). */
        Actor *a, *tmp;
        size_t n = 0;
        _cleanup_free_ kactor_id *ids = calloc(HASH_CNT(hh, m->actors) + 1, sizeof(kactor_id));
        HASH_ITER(hh, m->actors, a, tmp)
                if (ids && host_repl(a) && host_repl(a)->n < r->replicas && a->state != ACTOR_DEAD)
                        ids[n++] = a->id;
        for (size_t i = 0; i < n; i++)
                if ((a = manager_find_actor(m, ids[i])) && host_repl(a))
                        host_replicate(r, host_repl(a));
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Remote *r = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        RemoteActor *ra, *tmp;
        /* Failing or sending calls can free other entries (handles in their arguments): by id. */
        size_t n = 0, k = 0;
        _cleanup_free_ kactor_id *ids = calloc(HASH_CNT(hh, r->actors) + 1, sizeof(kactor_id));
        HASH_ITER(hh, r->actors, ra, tmp)
                if (ids && (ra->lost || ra->queue.n_queued > 0))
                        ids[n++] = ra->id;
        for (; k < n; k++) {
                ra = remote_actor_find(r, ids[k]);
                if (!ra)
                        continue;
                if (ra->lost) {
                        if (now - ra->lost_since > REMOTE_LOST_TIMEOUT_USEC) {
                                char ns[NODE_ID_STRING_MAX];
                                node_id_format(ra->node, ns);
                                _cleanup_free_ char *cause = NULL;
                                if (asprintf(&cause, "lost with node %s, and no replica rebuilt it", ns) < 0)
                                        cause = NULL;
                                remote_actor_set_dead(ra, cause ?: "lost with its node");
                                continue;
                        }
                        uint64_t peers[PEER_MAX];
                        size_t n_peers = alive_peers(r, peers, PEER_MAX);
                        for (size_t i = 0; i < n_peers; i++) {
                                PeerFrame f;
                                if (frame_start(r, peers[i], PEER_MSG_LOCATE, 1, &f) >= 0)
                                        (void) cluster_frame_end(&f, codec_pack_id(f.pk, CODEC_EXT_ACTOR, ra->id));
                        }
                } else if (ra->queue.n_queued > 0)
                        remote_actor_pump(ra);
        }
        cluster_flush(r->cluster);
        (void) sd_event_source_set_time_relative(s, REMOTE_TICK_USEC);
        return 0;
}

void remote_flush(Manager *m) {
        Remote *r = m->cluster_userdata;
        Replica *rep;
        if (!r)
                return;
        /* Records stored since the last flush: one ack per actor, for the last of them. */
        while ((rep = LIST_FIRST(&r->acks_due))) {
                LIST_REMOVE(rep, ack_link);
                rep->ack_due = false;
                (void) send_ack(r, rep->host, rep->id, lineage_last_index(&rep->log), false);
        }
        /* Results taken: one DONE per node. */
        while (r->n_done > 0) {
                uint64_t node = r->done[0].node;
                size_t n = 0, k = 0;
                for (size_t i = 0; i < r->n_done; i++)
                        n += r->done[i].node == node;
                PeerFrame f;
                if (frame_start(r, node, PEER_MSG_DONE, 1, &f) >= 0) {
                        int p = pk_ok(msgpack_pack_array(f.pk, (uint32_t) n));
                        for (size_t i = 0; p >= 0 && i < r->n_done; i++)
                                if (r->done[i].node == node)
                                        p = codec_pack_id(f.pk, CODEC_EXT_OBJECT, r->done[i].object);
                        (void) cluster_frame_end(&f, p);
                }
                for (size_t i = 0; i < r->n_done; i++)
                        if (r->done[i].node != node)
                                r->done[k++] = r->done[i];
                r->n_done = k;
        }
}

static int remote_new(Manager *m, Cluster *cluster, unsigned replicas, Remote **ret) {
        Remote *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->manager = m;
        r->cluster = cluster;
        r->replicas = MIN(replicas, (unsigned) REMOTE_REPLICAS_MAX);
        r->self = m->node_hi;
        LIST_INIT(&r->rebuilt);
        LIST_INIT(&r->acks_due);
        int k = sd_event_add_time_relative(m->event, &r->tick, CLOCK_MONOTONIC, REMOTE_TICK_USEC, 10 * 1000, on_tick, r);
        if (k >= 0)
                k = sd_event_source_set_enabled(r->tick, SD_EVENT_ON);
        if (k < 0) {
                free(r);
                return k;
        }
        *ret = r;
        return 0;
}

void remote_free(Manager *m) {
        Remote *r = m->cluster_userdata;
        if (!r)
                return;
        Manager *mm = r->manager;
        while (LIST_FIRST(&r->rebuilt))
                rebuilt_free(LIST_FIRST(&r->rebuilt));
        Serve *sv, *stmp;
        HASH_ITER(hh, r->serves, sv, stmp)
                serve_free(sv);
        Fetch *fe, *ftmp;
        HASH_ITER(hh, r->fetches, fe, ftmp)
                fetch_free(r, fe);
        RemoteActor *ra, *rtmp;
        HASH_ITER(hh, r->actors, ra, rtmp) {
                Call *c;
                while ((c = callqueue_pop_any(&ra->queue)))
                        call_fail(mm, c, KACTOR_ERROR_ACTOR_DIED, "the node manager is stopping");
                HASH_DEL(r->actors, ra);
                free(ra->cause);
                free(ra);
        }
        PeerHold *h, *htmp;
        HASH_ITER(hh, r->holds, h, htmp) {
                HASH_DEL(r->holds, h);
                free(h);
        }
        Location *l, *ltmp;
        HASH_ITER(hh, r->locations, l, ltmp) {
                HASH_DEL(r->locations, l);
                free(l);
        }
        Replica *rep, *reptmp;
        HASH_ITER(hh, r->replica_set, rep, reptmp)
                replica_free(r, rep);
        sd_event_source_disable_unref(r->tick);
        free(r->done);
        free(r->dead_nodes);
        free(r);
        m->cluster_userdata = NULL;
}

/* --- the manager's hooks -------------------------------------------------------------------------- */

/* Remote actors go first, then the peer transport, which they send through. */
static void remote_hook_free(Manager *m) {
        Remote *r = m->cluster_userdata;
        if (!r)
                return;
        Cluster *c = r->cluster;
        remote_free(m);
        cluster_free(c);
}

static void remote_hook_flush(Manager *m) {
        Remote *r = m->cluster_userdata;
        if (!r)
                return;
        remote_flush(m);
        cluster_flush(r->cluster);
}

static void remote_hook_resources_changed(Manager *m) {
        Remote *r = m->cluster_userdata;
        if (r)
                cluster_resources_changed(r->cluster);
}

static bool remote_hook_peer_at(Manager *m, size_t i, ClusterPeer *ret) {
        Remote *r = m->cluster_userdata;
        Membership *ms = r ? cluster_membership(r->cluster) : NULL;
        if (!ms || i >= ms->n_members)
                return false;
        const Member *mb = &ms->members[i];
        *ret = (ClusterPeer) {
                .id = mb->id,
                .address = mb->address,
                .state = member_state_to_string(mb->state),
                .incarnation = (uint32_t) mb->incarnation,
                .cpus_total = mb->resources.cpus_total,
                .cpus_free = mb->resources.cpus_free,
                .gpus_total = mb->resources.gpus_total,
                .gpus_free = mb->resources.gpus_free,
                .memory_total = mb->resources.memory_total,
                .memory_free = mb->resources.memory_free,
        };
        return true;
}

static const ClusterHooks remote_hooks = {
        .free = remote_hook_free,
        .flush = remote_hook_flush,
        .resources_changed = remote_hook_resources_changed,
        .peer_at = remote_hook_peer_at,
        .place_actor = remote_place_actor,
        .create_actor = remote_create_actor,
        .actor_routable = remote_actor_routable,
        .submit_call = remote_submit_call,
        .kill_actor = remote_kill_actor,
        .actor_ref = remote_actor_ref,
        .actor_unref = remote_actor_unref,
        .fetch_object = remote_fetch_object,
        .actor_view = remote_actor_view,
        .call_ready = remote_call_ready,
        .actor_started = remote_actor_started,
        .defer_result = remote_defer_result,
        .record_logged = remote_record_logged,
        .checkpointed = remote_checkpointed,
        .replayed = remote_replayed,
        .actor_died = remote_actor_died,
        .actor_replicas = remote_actor_replicas,
        .actor_freed = remote_actor_freed,
};

/* --- what the peer layer asks of this node (ClusterOps) -------------------------------------------- */

static int remote_op_handle_frame(void *userdata, const char *from, const Frame *f) {
        return remote_handle_frame(userdata, from, f);
}

static void remote_op_peer_connected(void *userdata, const char *node_id) {
        remote_peer_connected(userdata, node_id);
}

static void remote_op_members_changed(void *userdata) {
        Manager *m = userdata;
        manager_queue_peers_changed(m);
        remote_members_changed(m);
}

static int remote_op_pack_moved(void *userdata, msgpack_packer *pk, const char *to) {
        return remote_pack_moved(userdata, pk, to);
}

static void remote_op_dead_notice(void *userdata, const msgpack_object *moved) {
        remote_dead_notice(userdata, moved);
}

static void remote_op_get_resources(void *userdata, MemberResources *ret) {
        Manager *m = userdata;
        ret->cpus_total = m->resources.cpus_total;
        ret->cpus_free = m->resources.cpus_total - m->resources.cpus_used;
        ret->gpus_total = (uint32_t) m->resources.n_gpus;
        ret->gpus_free = (uint32_t) resources_free_gpus(&m->resources);
}

static const ClusterOps remote_cluster_ops = {
        .handle_frame = remote_op_handle_frame,
        .peer_connected = remote_op_peer_connected,
        .members_changed = remote_op_members_changed,
        .pack_moved = remote_op_pack_moved,
        .dead_notice = remote_op_dead_notice,
        .get_resources = remote_op_get_resources,
};

int remote_setup(Manager *m, const ManagerConfig *config) {
        Cluster *c;
        Remote *rem;
        int r;

        if (!config->cluster_listen && !config->cluster_join)
                return 0; /* a single node */

        ClusterConfig cc = {
                .event = m->event,
                .node_id = m->node_id,
                .ops = &remote_cluster_ops,
                .userdata = m,
                .listen = config->cluster_listen,
                .join = config->cluster_join,
                .secret_file = config->cluster_secret_file,
                .membership = { .probe_interval = config->probe_interval_usec,
                                .probe_timeout = config->probe_timeout_usec,
                                .suspect_timeout = config->suspect_timeout_usec },
        };
        r = cluster_new(&cc, &c);
        if (r < 0)
                return r;
        r = remote_new(m, c, config->replicas == UINT_MAX ? REMOTE_REPLICAS_DEFAULT : config->replicas, &rem);
        if (r < 0) {
                cluster_free(c);
                return r;
        }
        /* From here the manager frees the cluster (remote_hook_free()). */
        cluster_hooks_install(m, &remote_hooks, rem);
        return 0;
}

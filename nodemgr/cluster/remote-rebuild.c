/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* When a node dies: what it held is released, its actors are rebuilt on their first live
 * replica (with a quorum), and where they went is told (MOVED, DEAD_NOTICE); a node back from the
 * dead stops the actors that were rebuilt elsewhere (fencing). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "call.h"
#include "codec.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "placement.h"
#include "remote-internal.h"
#include "req-error.h"
#include "time-util.h"

/* --- rebuilds ------------------------------------------------------------------------------------- */

void remote_rebuild_free(Rebuilt *rb) {
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
        remote_rebuild_free(rb);
        /* Nobody took a handle to it since it came back, and it is not detached: it goes the way
         * of an actor whose last handle went. */
        if (a && a->refs == 0 && !a->detached && a->state != ACTOR_DEAD) {
                actor_ref(a);
                actor_unref(a);
        }
        return 0;
}

/* The actor is about to take over these calls; is o one whose result a replay fills? */
bool remote_rebuild_claims(Remote *r, kactor_id actor, const Object *o) {
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

        ActorSpec spec = remote_spec_from_wire(&rep->spec, rep->args, rep->args_len);
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
        int k = actor_create(m, &spec, &a, &e);
        r->rebuilding = false;
        if (k < 0) {
                _cleanup_free_ char *cause = NULL;
                if (asprintf(&cause, "lost with node %s and could not be rebuilt on node %s: %s", host, m->node_id,
                             e.message ?: strerror(-k)) < 0)
                        cause = NULL;
                log_warning("Actor %s: %s", s, cause ?: "could not be rebuilt");
                remote_broadcast_moved(r, rep->id, 0, cause ?: "could not be rebuilt");
                RemoteActor *ra = remote_actor_find(r, rep->id);
                if (ra)
                        remote_actor_moved(ra, 0, cause ?: "could not be rebuilt");
                req_error_done(&e);
                remote_replica_free(r, rep);
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

        remote_replica_free(r, rep);
        remote_location_set(r, a->id, r->self);
        /* Everyone hears of the move before any replica does: a replica takes records only from
         * where the actor lives. */
        remote_broadcast_moved(r, a->id, r->self, NULL);
        remote_actor_started(a);
        /* Old replicas that are not replicas any more forget it. */
        HostRepl *hr = remote_host_repl(a);
        for (size_t i = 0; i < n_old; i++)
                if (old[i] != r->self && remote_node_alive(r, old[i]) && (!hr || remote_host_replica_index(hr, old[i]) < 0))
                        (void) remote_send_id_list(r, old[i], PEER_MSG_REPL_DROP, CODEC_EXT_ACTOR, &a->id, 1);
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
        if (o && remote_rebuild_claims(r, a->id, o))
                remote_object_complete(a->manager, o, code, message, data, len);
}

/* --- frames --------------------------------------------------------------------------------------- */

int remote_rebuild_handle_moved(Remote *r, uint64_t from, RemoteMessage *msg) {
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
        remote_location_set(r, msg->actor, msg->node);
        Replica *rep = remote_replica_find(r, msg->actor);
        if (rep && msg->node != r->self)
                rep->host = msg->node;
        ra = remote_actor_find(r, msg->actor);
        if (ra)
                remote_actor_moved(ra, msg->node, NULL);
        return 0;
}

int remote_rebuild_handle_locate(Remote *r, uint64_t from, RemoteMessage *msg) {
        Actor *a = manager_find_actor(r->manager, msg->actor);
        if (a && a->state != ACTOR_DEAD)
                (void) remote_send_moved(r, from, msg->actor, r->self, NULL);
        return 0;
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
                if ((h = remote_host_hold_find(r, ids[i], node)))
                        remote_host_hold_drop(r, h);
        Serve *sv, *stmp;
        HASH_ITER(hh, r->serves, sv, stmp)
                if (sv->key.node == node)
                        remote_host_serve_free(sv);
        Fetch *fe, *ftmp;
        HASH_ITER(hh, r->fetches, fe, ftmp)
                if (fe->node == node) {
                        (void) objstore_set_failed(&m->store, fe->o, KACTOR_ERROR_NO_SUCH_OBJECT,
                                                   "the node that made the object died");
                        remote_fetch_free(r, fe);
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
                if (ids && remote_host_repl(a) && remote_host_replica_index(remote_host_repl(a), node) >= 0)
                        ids[n++] = a->id;
        for (size_t i = 0; i < n; i++)
                if ((a = manager_find_actor(m, ids[i])) && remote_host_repl(a))
                        remote_host_replicate(r, remote_host_repl(a));
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
                if (remote_node_alive(r, rep->host))
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
                        if (!remote_node_alive(r, rep->replicas[i]))
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
                remote_location_set(r, id, node);
                Actor *a = manager_find_actor(m, id);
                if (!a || a->state == ACTOR_DEAD)
                        continue;
                if (remote_host_repl(a))
                        remote_host_repl(a)->fenced = true;
                a->fenced = true;
                (void) actor_kill(a, true,
                                  "this node was declared dead by the cluster; the actor was rebuilt on another node");
                stopped++;
        }
        if (stopped > 0)
                log_warning("This node was declared dead by the cluster: %u of its actors were rebuilt on other "
                            "nodes, stopping them here.", stopped);
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
                if (ids && remote_host_repl(a) && remote_host_repl(a)->n < r->replicas && a->state != ACTOR_DEAD)
                        ids[n++] = a->id;
        for (size_t i = 0; i < n; i++)
                if ((a = manager_find_actor(m, ids[i])) && remote_host_repl(a))
                        remote_host_replicate(r, remote_host_repl(a));
}

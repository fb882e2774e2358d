/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The cluster layer's setup and what its roles share: the manager's ClusterHooks and the peer
 * layer's ClusterOps, sending to peers, where actors live (routing, placement), and the handler
 * table that dispatches peer messages to the roles (remote-actor.c, remote-host.c,
 * remote-replica.c, remote-rebuild.c). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "call.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "peer.h"
#include "placement.h"
#include "remote-internal.h"
#include "remote-proto.h"
#include "remote.h"
#include "req-error.h"
#include "time-util.h"

/* --- peers ---------------------------------------------------------------------------------------- */

Member *remote_member(Remote *r, uint64_t node) {
        char s[NODE_ID_STRING_MAX];
        node_id_format(node, s);
        return membership_find(cluster_membership(r->cluster), s, 16);
}

bool remote_node_alive(Remote *r, uint64_t node) {
        if (node == r->self)
                return true;
        Member *mb = remote_member(r, node);
        return mb && mb->state != MEMBER_DEAD;
}

/* --- sending -------------------------------------------------------------------------------------- */

int remote_frame_start(Remote *r, uint64_t node, uint32_t type, uint32_t n_fields, PeerFrame *f) {
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

int remote_pk_ok(int k) {
        return k < 0 ? -ENOMEM : 0;
}

int remote_send_id_list(Remote *r, uint64_t node, uint32_t type, int8_t ext, const kactor_id *ids, size_t n) {
        PeerFrame f;
        int k = remote_frame_start(r, node, type, 1, &f);
        if (k < 0)
                return k;
        k = remote_pk_ok(msgpack_pack_array(f.pk, (uint32_t) n));
        for (size_t i = 0; k >= 0 && i < n; i++)
                k = codec_pack_id(f.pk, ext, ids[i]);
        return cluster_frame_end(&f, k);
}

int remote_send_moved(Remote *r, uint64_t to, kactor_id actor, uint64_t node, const char *cause) {
        PeerFrame f;
        char s[NODE_ID_STRING_MAX] = "";
        if (node)
                node_id_format(node, s);
        int k = remote_frame_start(r, to, PEER_MSG_MOVED, 3, &f);
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
size_t remote_alive_peers(Remote *r, uint64_t *ret, size_t max) {
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

void remote_broadcast_moved(Remote *r, kactor_id actor, uint64_t node, const char *cause) {
        uint64_t peers[PEER_MAX];
        size_t n = remote_alive_peers(r, peers, PEER_MAX);
        for (size_t i = 0; i < n; i++)
                (void) remote_send_moved(r, peers[i], actor, node, cause);
}

/* --- wire form of an actor's spec ----------------------------------------------------------------- */

/* The fields that keep their name and meaning in an Actor, an ActorSpec and a SpecWire: the one list
 * the conversions below copy. */
#define SPEC_SCALAR_FIELDS(X) \
        X(num_cpus) X(memory_max) X(max_restarts) X(detached) X(checkpoint_interval) X(tasks_max) X(uid) \
        X(n_allow_users) X(n_allow_groups)
#define SPEC_COPY_FIELD(f) .f = src->f,

/* The spec an actor was made from (borrowed strings). */
SpecWire remote_spec_of_actor(const Actor *src) {
        return (SpecWire) {
                .module = src->module_arg,
                .class_name = src->class_name,
                .name = src->name,
                .num_gpus = (uint32_t) src->n_gpus,
                .allow_users = (uint32_t *) src->allow_users,
                .allow_groups = (uint32_t *) src->allow_groups,
                SPEC_SCALAR_FIELDS(SPEC_COPY_FIELD)
        };
}

SpecWire remote_spec_to_wire(const ActorSpec *src) {
        return (SpecWire) {
                .module = (char *) src->module,
                .class_name = (char *) src->class_name,
                .name = (char *) src->name,
                .num_gpus = src->num_gpus,
                .allow_users = (uint32_t *) src->allow_users,
                .allow_groups = (uint32_t *) src->allow_groups,
                SPEC_SCALAR_FIELDS(SPEC_COPY_FIELD)
        };
}

ActorSpec remote_spec_from_wire(const SpecWire *src, const char *args, size_t args_len) {
        static const char empty_list[] = { (char) 0x90 };
        return (ActorSpec) {
                .module = src->module,
                .class_name = src->class_name,
                .name = src->name,
                .args = args ?: empty_list,
                .args_len = args ? args_len : 1,
                .num_gpus = src->num_gpus,
                .allow_users = src->allow_users,
                .allow_groups = src->allow_groups,
                SPEC_SCALAR_FIELDS(SPEC_COPY_FIELD)
        };
}

/* --- locations ------------------------------------------------------------------------------------ */

Location *remote_location_find(Remote *r, kactor_id id) {
        Location *l;
        HASH_FIND(hh, r->locations, &id, sizeof(id), l);
        return l;
}

void remote_location_set(Remote *r, kactor_id id, uint64_t node) {
        Location *l = remote_location_find(r, id);
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
uint64_t remote_route(Remote *r, kactor_id id) {
        Location *l = remote_location_find(r, id);
        return l ? l->node : id.hi;
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
        int k = remote_frame_start(r, node, PEER_MSG_CREATE, 4, &f);
        if (k < 0)
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "node %s cannot be reached now", node_id);
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, id);
        SpecWire sw = remote_spec_to_wire(spec);
        if (k >= 0)
                k = spec_wire_pack(f.pk, &sw);
        if (k >= 0)
                k = buffer_append(f.out, spec->args, spec->args_len);
        k = cluster_frame_end(&f, k);
        if (k < 0)
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "cannot send the actor to node %s: %s", node_id,
                                 strerror(-k));
        remote_location_set(r, id, node);
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

/* Fills a pending object with a result from a peer. */
void remote_object_complete(Manager *m, Object *o, kactor_error code, const char *message, const char *data,
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
        if (codec_scan_ids(data, len, &ids, &is_actor, &n, NULL) < 0)
                (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_TASK_FAILED, "a peer sent a malformed value");
        else
                (void) objstore_set_ready(&m->store, o, data, len, ids, is_actor, n);
}

/* --- frames --------------------------------------------------------------------------------------- */

int remote_for_each_id(Remote *r, uint64_t from, const RemoteMessage *msg,
                       void (*fn)(Remote *r, uint64_t from, kactor_id id)) {
        for (uint32_t i = 0; i < msg->ids->via.array.size; i++)
                fn(r, from, remote_message_id(msg, i));
        return 0;
}

/* By message type, from PEER_MSG_DATA_FIRST. */
static int (*const handlers[])(Remote *r, uint64_t from, RemoteMessage *msg) = {
        [PEER_MSG_CREATE - PEER_MSG_DATA_FIRST] = remote_host_handle_create,
        [PEER_MSG_CREATED - PEER_MSG_DATA_FIRST] = remote_actor_handle_created,
        [PEER_MSG_CALL - PEER_MSG_DATA_FIRST] = remote_host_handle_call,
        [PEER_MSG_RESULT - PEER_MSG_DATA_FIRST] = remote_actor_handle_result,
        [PEER_MSG_DONE - PEER_MSG_DATA_FIRST] = remote_host_handle_done,
        [PEER_MSG_FETCH - PEER_MSG_DATA_FIRST] = remote_host_handle_fetch,
        [PEER_MSG_HOLD - PEER_MSG_DATA_FIRST] = remote_host_handle_hold,
        [PEER_MSG_RELEASE - PEER_MSG_DATA_FIRST] = remote_host_handle_release,
        [PEER_MSG_KILL - PEER_MSG_DATA_FIRST] = remote_host_handle_kill,
        [PEER_MSG_MOVED - PEER_MSG_DATA_FIRST] = remote_rebuild_handle_moved,
        [PEER_MSG_LOCATE - PEER_MSG_DATA_FIRST] = remote_rebuild_handle_locate,
        [PEER_MSG_REPL_CREATE - PEER_MSG_DATA_FIRST] = remote_replica_handle_repl_create,
        [PEER_MSG_REPL_RECORD - PEER_MSG_DATA_FIRST] = remote_replica_handle_repl_record,
        [PEER_MSG_REPL_CHECKPOINT - PEER_MSG_DATA_FIRST] = remote_replica_handle_repl_checkpoint,
        [PEER_MSG_REPL_ACK - PEER_MSG_DATA_FIRST] = remote_host_handle_repl_ack,
        [PEER_MSG_REPL_DROP - PEER_MSG_DATA_FIRST] = remote_replica_handle_repl_drop,
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

/* --- connections and ticks ------------------------------------------------------------------------ */

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
                        if (remote_frame_start(r, node, PEER_MSG_FETCH, 1, &f) >= 0)
                                (void) cluster_frame_end(&f, codec_pack_id(f.pk, CODEC_EXT_OBJECT, fe->id));
                }
        Serve *sv, *stmp;
        HASH_ITER(hh, r->serves, sv, stmp)
                if (sv->key.node == node && remote_host_serve_owed(sv))
                        remote_host_serve_send(sv);
        n = 0;
        Actor *a, *atmp;
        HASH_ITER(hh, m->actors, a, atmp)
                if (remote_host_repl(a) && remote_host_replica_index(remote_host_repl(a), node) >= 0)
                        ids[n++] = a->id;
        for (size_t i = 0; i < n; i++)
                if ((a = manager_find_actor(m, ids[i])) && remote_host_repl(a))
                        (void) remote_host_sync_replica(r, remote_host_repl(a), node);
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
                        size_t n_peers = remote_alive_peers(r, peers, PEER_MAX);
                        for (size_t i = 0; i < n_peers; i++) {
                                PeerFrame f;
                                if (remote_frame_start(r, peers[i], PEER_MSG_LOCATE, 1, &f) >= 0)
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
        if (!r)
                return;
        remote_replica_flush_acks(r);
        /* Results taken: one DONE per node. */
        while (r->n_done > 0) {
                uint64_t node = r->done[0].node;
                size_t n = 0, k = 0;
                for (size_t i = 0; i < r->n_done; i++)
                        n += r->done[i].node == node;
                PeerFrame f;
                if (remote_frame_start(r, node, PEER_MSG_DONE, 1, &f) >= 0) {
                        int p = remote_pk_ok(msgpack_pack_array(f.pk, (uint32_t) n));
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
                remote_rebuild_free(LIST_FIRST(&r->rebuilt));
        Serve *sv, *stmp;
        HASH_ITER(hh, r->serves, sv, stmp)
                remote_host_serve_free(sv);
        Fetch *fe, *ftmp;
        HASH_ITER(hh, r->fetches, fe, ftmp)
                remote_fetch_free(r, fe);
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
                remote_replica_free(r, rep);
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
                .cert_file = config->cluster_cert_file,
                .key_file = config->cluster_key_file,
                .ca_file = config->cluster_ca_file,
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

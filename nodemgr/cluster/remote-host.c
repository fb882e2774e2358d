/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The host's side: peers' calls on our actors and their results (served until the peer
 * says DONE), handles peers hold, and replication: replicas chosen and fed the actor's lineage, results
 * deferred until their records are on the replicas. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
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

/* --- serving peers (the host's side) ------------------------------------------------------------- */

static void serve_error(Remote *r, uint64_t node, kactor_id object, kactor_id actor, kactor_error code,
                        const char *message);

void remote_host_serve_send(Serve *sv) {
        Remote *r = sv->remote;
        Object *o = sv->o;
        PeerFrame f;

        if (o->state == OBJECT_READY && o->evicted) {
                int k = objstore_wait_for(&r->manager->store, o, &sv->w);
                if (k > 0)
                        return; /* being read back or rebuilt */
        }
        int k = remote_frame_start(r, sv->key.node, PEER_MSG_RESULT, 5, &f);
        if (k < 0)
                return; /* the peer is gone: its death releases this */
        k = codec_pack_id(f.pk, CODEC_EXT_OBJECT, o->id);
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint32(f.pk, o->state == OBJECT_READY ? KACTOR_OK : o->error));
        if (k >= 0)
                k = pack_cstr(f.pk, o->state == OBJECT_FAILED ? o->message : NULL);
        if (k >= 0)
                k = kactor_id_is_null(sv->actor) ? remote_pk_ok(msgpack_pack_nil(f.pk))
                                                 : codec_pack_id(f.pk, CODEC_EXT_ACTOR, sv->actor);
        /* Its owner: the node that fetched it lets only that user (and root) read its copy. */
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint32(f.pk, o->uid == OBJECT_UID_UNKNOWN ? REMOTE_UID_UNKNOWN : o->uid));
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
        remote_host_serve_send(sv);
}

static void send_checkpoint(Remote *r, HostRepl *hr);
static bool serve_blocks_checkpoint(const Serve *sv, const Actor *a);

bool remote_host_serve_owed(const Serve *sv) {
        /* Sent on a connection that may have gone, or ready while no connection was there to take it
         * (its send found none: never sent). */
        return sv->sent || sv->o->state != OBJECT_PENDING;
}

void remote_host_serve_free(Serve *sv) {
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
                /* Asked again (after a move, or a connection lost): answer again. */
                if (remote_host_serve_owed(sv))
                        remote_host_serve_send(sv);
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
                remote_host_serve_send(sv);
}

static void serve_error(Remote *r, uint64_t node, kactor_id object, kactor_id actor, kactor_error code,
                        const char *message) {
        PeerFrame f;
        int k = remote_frame_start(r, node, PEER_MSG_RESULT, 5, &f);
        if (k < 0)
                return;
        k = codec_pack_id(f.pk, CODEC_EXT_OBJECT, object);
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint32(f.pk, code));
        if (k >= 0)
                k = pack_cstr(f.pk, message);
        if (k >= 0)
                k = kactor_id_is_null(actor) ? remote_pk_ok(msgpack_pack_nil(f.pk))
                                             : codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint32(f.pk, REMOTE_UID_UNKNOWN));
        (void) cluster_frame_end(&f, k);
}

PeerHold *remote_host_hold_find(Remote *r, kactor_id actor, uint64_t node) {
        PeerHold *h, key = { .key = { .actor = actor, .node = node } };
        HASH_FIND(hh, r->holds, &key.key, sizeof(key.key), h);
        return h;
}

static void peer_hold_add(Remote *r, Actor *a, uint64_t node) {
        if (remote_host_hold_find(r, a->id, node))
                return;
        PeerHold *h = calloc(1, sizeof(*h));
        if (!h)
                return;
        h->key.actor = a->id;
        h->key.node = node;
        HASH_ADD(hh, r->holds, key, sizeof(h->key), h);
        actor_ref(a);
}

void remote_host_hold_drop(Remote *r, PeerHold *h) {
        kactor_id id = h->key.actor;
        HASH_DEL(r->holds, h);
        free(h);
        actor_unref_id(r->manager, id);
}

/* --- the host's side of replication ------------------------------------------------------------- */

HostRepl *remote_host_repl(const Actor *a) {
        return a->repl;
}

int remote_host_replica_index(HostRepl *hr, uint64_t node) {
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
                k = remote_frame_start(r, node, PEER_MSG_REPL_RECORD, 2, &f);
        if (k >= 0) {
                k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, a->id);
                if (k >= 0)
                        k = remote_pk_ok(msgpack_pack_bin(f.pk, (uint32_t) buffer_size(&b)) |
                                  msgpack_pack_bin_body(f.pk, b.data + b.start, buffer_size(&b)));
                k = cluster_frame_end(&f, k);
        }
        buffer_free(&b);
        return k;
}

/* Sends everything a replica needs: the actor's making, its checkpoint and its log. */
int remote_host_sync_replica(Remote *r, HostRepl *hr, uint64_t node) {
        Actor *a = hr->actor;
        PeerFrame f;
        int k = remote_frame_start(r, node, PEER_MSG_REPL_CREATE, 7, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, a->id);
        SpecWire sw = remote_spec_of_actor(a);
        if (k >= 0)
                k = spec_wire_pack(f.pk, &sw);
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_array(f.pk, (uint32_t) hr->n));
        for (size_t i = 0; k >= 0 && i < hr->n; i++) {
                char s[NODE_ID_STRING_MAX];
                node_id_format(hr->replicas[i], s);
                k = pack_cstr(f.pk, s);
        }
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint64(f.pk, a->lineage.checkpoint ? a->lineage.checkpoint_index : 0));
        if (k >= 0)
                k = remote_pk_ok(a->lineage.checkpoint
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
                remote_object_complete(m, d->o, d->code, d->message, d->data, d->len);
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
void remote_host_replicate(Remote *r, HostRepl *hr) {
        Actor *a = hr->actor;
        for (size_t i = 0; i < hr->n;) {
                if (!remote_node_alive(r, hr->replicas[i])) {
                        hr->replicas[i] = hr->replicas[hr->n - 1];
                        hr->acked[i] = hr->acked[hr->n - 1];
                        hr->n--;
                } else
                        i++;
        }
        /* The alive peers that are not replicas yet, the best scored first. */
        uint64_t peers[PEER_MAX];
        size_t n = remote_alive_peers(r, peers, PEER_MAX), n_candidates = 0;
        for (size_t i = 0; i < n; i++) {
                Member *mb = remote_member(r, peers[i]);
                if (remote_host_replica_index(hr, peers[i]) < 0 && mb && mb->state == MEMBER_ALIVE)
                        peers[n_candidates++] = peers[i];
        }
        placement_rendezvous_sort(a->id, peers, n_candidates);
        size_t want = MIN((size_t) r->replicas, (size_t) REMOTE_REPLICAS_MAX);
        bool added = false;
        for (size_t i = 0; i < n_candidates && hr->n < want; i++) {
                if (remote_host_replica_index(hr, peers[i]) >= 0)
                        continue;
                hr->replicas[hr->n] = peers[i];
                hr->acked[hr->n] = 0;
                hr->n++;
                hr->had_replicas = true;
                added = true;
        }
        if (added) /* every replica learns the new list (the order decides who rebuilds) */
                for (size_t i = 0; i < hr->n; i++)
                        (void) remote_host_sync_replica(r, hr, hr->replicas[i]);
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
        remote_host_replicate(r, hr);
}

int remote_defer_result(Actor *a, Call *c, bool logged, kactor_error code, const char *message, const char *data,
                        size_t len) {
        HostRepl *hr = remote_host_repl(a);
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
        HostRepl *hr = remote_host_repl(a);
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
                int k = remote_frame_start(r, hr->replicas[i], PEER_MSG_REPL_CHECKPOINT, 3, &f);
                if (k < 0)
                        continue;
                k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, a->id);
                if (k >= 0)
                        k = remote_pk_ok(msgpack_pack_uint64(f.pk, a->lineage.checkpoint_index) |
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
        HostRepl *hr = remote_host_repl(a);
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
        HostRepl *hr = remote_host_repl(a);
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
                        (void) remote_send_id_list(r, hr->replicas[i], PEER_MSG_REPL_DROP, CODEC_EXT_ACTOR, &a->id, 1);
        hr->n = 0;
}

void remote_actor_freed(Actor *a) {
        HostRepl *hr = remote_host_repl(a);
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

/* --- frames --------------------------------------------------------------------------------------- */

int remote_host_handle_create(Remote *r, uint64_t from, RemoteMessage *msg) {
        Manager *m = r->manager;
        ActorSpec spec = remote_spec_from_wire(&msg->spec, msg->body, msg->body_len);
        spec.id = msg->actor;
        Actor *a;
        ReqError e = {};
        int k = manager_find_actor(m, msg->actor) ? req_error(&e, KACTOR_ERROR_NAME_TAKEN, "the actor id is taken")
                                                  : actor_create(m, &spec, &a, &e);
        if (k >= 0)
                peer_hold_add(r, a, from);
        PeerFrame pf;
        if (remote_frame_start(r, from, PEER_MSG_CREATED, 3, &pf) >= 0) {
                int p = codec_pack_id(pf.pk, CODEC_EXT_ACTOR, msg->actor);
                if (p >= 0)
                        p = remote_pk_ok(msgpack_pack_uint32(pf.pk, k >= 0 ? KACTOR_OK : k == -EREMOTEIO ? e.code
                                                                                    : KACTOR_ERROR_NOT_SUPPORTED));
                if (p >= 0)
                        p = pack_cstr(pf.pk, k >= 0 ? NULL : e.message ?: strerror(-k));
                (void) cluster_frame_end(&pf, p);
        }
        req_error_done(&e);
        return 0;
}

int remote_host_handle_call(Remote *r, uint64_t from, RemoteMessage *msg) {
        Manager *m = r->manager;
        Actor *a = manager_find_actor(m, msg->actor);
        if (!a || (a->state == ACTOR_DEAD && a->fenced)) {
                Location *l = remote_location_find(r, msg->actor);
                if (l && l->node != r->self && remote_node_alive(r, l->node)) {
                        (void) remote_send_moved(r, from, msg->actor, l->node, NULL);
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
        int k = actor_submit_call(m, msg->actor, msg->object, msg->text, msg->text_len, msg->body ?: "\x90",
                                  msg->body ? msg->body_len : 1, (uid_t) msg->uid, &o, &e);
        if (k < 0) {
                serve_error(r, from, msg->object, msg->actor, k == -EREMOTEIO ? e.code : KACTOR_ERROR_TASK_FAILED,
                            e.message ?: strerror(-k));
                req_error_done(&e);
                return 0;
        }
        serve(r, from, o, msg->actor, true);
        return 0;
}

static void do_done(Remote *r, uint64_t from, kactor_id id) {
        Serve *sv, key = { .key = { .object = id, .node = from } };
        HASH_FIND(hh, r->serves, &key.key, sizeof(key.key), sv);
        if (sv)
                remote_host_serve_free(sv);
}

static void do_hold(Remote *r, uint64_t from, kactor_id id) {
        Actor *a = manager_find_actor(r->manager, id);
        if (a && a->state != ACTOR_DEAD)
                peer_hold_add(r, a, from);
}

static void do_release(Remote *r, uint64_t from, kactor_id id) {
        PeerHold *h = remote_host_hold_find(r, id, from);
        if (h)
                remote_host_hold_drop(r, h);
}

int remote_host_handle_fetch(Remote *r, uint64_t from, RemoteMessage *msg) {
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

int remote_host_handle_kill(Remote *r, uint64_t from, RemoteMessage *msg) {
        Actor *a = manager_find_actor(r->manager, msg->actor);
        if (!a)
                return 0;
        ReqError e = {};
        if (access_check_actor(r->manager, a, (uid_t) msg->uid, ACCESS_MANAGE, &e) < 0) {
                char node[NODE_ID_STRING_MAX];
                node_id_format(from, node);
                log_warning("Refused a kill from node %s: %s.", node, e.message ?: "access denied");
                req_error_done(&e);
                return 0;
        }
        (void) actor_kill_by_request(a, msg->flag, (uid_t) msg->uid);
        return 0;
}

int remote_host_handle_repl_ack(Remote *r, uint64_t from, RemoteMessage *msg) {
        Actor *a = manager_find_actor(r->manager, msg->actor);
        HostRepl *hr = a ? remote_host_repl(a) : NULL;
        int i = hr ? remote_host_replica_index(hr, from) : -1;
        if (i < 0)
                return 0;
        if (msg->flag) {
                hr->acked[i] = 0;
                (void) remote_host_sync_replica(r, hr, from);
                return 0;
        }
        hr->acked[i] = MAX(hr->acked[i], msg->index);
        host_deliver(r, hr);
        return 0;
}

int remote_host_handle_done(Remote *r, uint64_t from, RemoteMessage *msg) {
        return remote_for_each_id(r, from, msg, do_done);
}

int remote_host_handle_hold(Remote *r, uint64_t from, RemoteMessage *msg) {
        return remote_for_each_id(r, from, msg, do_hold);
}

int remote_host_handle_release(Remote *r, uint64_t from, RemoteMessage *msg) {
        return remote_for_each_id(r, from, msg, do_release);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Actors of peers, the caller's side: calls sent to where an actor lives and their results,
 * handles held on it, objects fetched from the node that made them, and moves. */

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

/* --- remote actors (the caller's side) ------------------------------------------------------------ */

RemoteActor *remote_actor_find(Remote *r, kactor_id id) {
        RemoteActor *ra;
        HASH_FIND(hh, r->actors, &id, sizeof(id), ra);
        return ra;
}

RemoteActor *remote_actor_get(Remote *r, kactor_id id) {
        RemoteActor *ra = remote_actor_find(r, id);
        if (ra)
                return ra;
        uint64_t node = remote_route(r, id);
        if (node == r->self || !remote_member(r, node))
                return NULL;
        ra = calloc(1, sizeof(*ra));
        if (!ra)
                return NULL;
        ra->id = id;
        ra->remote = r;
        ra->node = node;
        callqueue_init(&ra->queue);
        HASH_ADD(hh, r->actors, id, sizeof(ra->id), ra);
        if (!remote_node_alive(r, node)) {
                ra->lost = true;
                ra->lost_since = now_usec(CLOCK_MONOTONIC);
        }
        return ra;
}

void remote_actor_maybe_free(RemoteActor *ra) {
        Remote *r = ra->remote;
        if (ra->refs > 0 || ra->busy > 0 || !callqueue_is_empty(&ra->queue))
                return;
        if (ra->held && !ra->dead)
                (void) remote_send_id_list(r, ra->node, PEER_MSG_RELEASE, CODEC_EXT_ACTOR, &ra->id, 1);
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

void remote_actor_set_dead(RemoteActor *ra, const char *cause) {
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
        int k = remote_frame_start(r, node, PEER_MSG_CALL, 4, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = codec_pack_id(f.pk, CODEC_EXT_OBJECT, c->result->id);
        if (k >= 0)
                k = pack_cstr(f.pk, c->method);
        /* Who calls: the actor's node decides whether that user may (access.c). */
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint32(f.pk, c->result->uid));
        if (k >= 0)
                k = buffer_append(f.out, c->args, c->args_len);
        return cluster_frame_end(&f, k);
}

static void remote_actor_pump_calls(RemoteActor *ra);

/* Sends the calls whose arguments are ready, in their order. May free ra. */
void remote_actor_pump(RemoteActor *ra) {
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
            remote_send_id_list(r, ra->node, PEER_MSG_HOLD, CODEC_EXT_ACTOR, &ra->id, 1) >= 0)
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
        uint64_t node = remote_route(r, id);
        return node != r->self && remote_member(r, node);
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

int remote_kill_actor(Manager *m, kactor_id actor, uid_t uid, bool no_restart) {
        Remote *r = m->cluster_userdata;
        if (!r || !remote_actor_routable(m, actor))
                return -ENOENT;
        PeerFrame f;
        int k = remote_frame_start(r, remote_route(r, actor), PEER_MSG_KILL, 3, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = remote_pk_ok(no_restart ? msgpack_pack_true(f.pk) : msgpack_pack_false(f.pk));
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint32(f.pk, uid));
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
            remote_send_id_list(r, ra->node, PEER_MSG_HOLD, CODEC_EXT_ACTOR, &id, 1) >= 0)
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
        node_id_format(ra ? ra->node : remote_route(r, id), ret->node);
        return 0;
}

/* --- objects of peers --------------------------------------------------------------------------- */

Object *remote_fetch_object(Manager *m, kactor_id id) {
        Remote *r = m->cluster_userdata;
        if (!r || id.hi == r->self || !remote_node_alive(r, id.hi) || !remote_member(r, id.hi))
                return NULL;
        Object *o;
        if (objstore_add(&m->store, id, &o) < 0)
                return NULL;
        o->uid = OBJECT_UID_UNKNOWN; /* the owner comes with the value */
        Fetch *fe = calloc(1, sizeof(*fe));
        if (!fe) {
                objstore_unref(&m->store, o);
                return NULL;
        }
        *fe = (Fetch) { .id = id, .o = o, .node = id.hi };
        HASH_ADD(hh, r->fetches, id, sizeof(fe->id), fe);
        PeerFrame f;
        int k = remote_frame_start(r, id.hi, PEER_MSG_FETCH, 1, &f);
        if (k >= 0)
                k = cluster_frame_end(&f, codec_pack_id(f.pk, CODEC_EXT_OBJECT, id));
        if (k < 0)
                (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_OBJECT,
                                           "the node that made the object cannot be reached");
        return o;
}

void remote_fetch_free(Remote *r, Fetch *fe) {
        HASH_DEL(r->fetches, fe);
        objstore_unref(&r->manager->store, fe->o);
        free(fe);
}

/* --- moves ---------------------------------------------------------------------------------------- */

void remote_actor_moved(RemoteActor *ra, uint64_t node, const char *cause) {
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
                        if (remote_rebuild_claims(r, ra->id, c->result)) {
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

int remote_actor_handle_created(Remote *r, uint64_t from, RemoteMessage *msg) {
        RemoteActor *ra = msg->code != KACTOR_OK ? remote_actor_find(r, msg->actor) : NULL;
        if (!ra)
                return 0;
        _cleanup_free_ char *cause = NULL;
        if (asprintf(&cause, "it could not be made on its node: %.*s", (int) msg->text_len, msg->text ?: "") < 0)
                cause = NULL;
        remote_actor_set_dead(ra, cause ?: "it could not be made on its node");
        return 0;
}

int remote_actor_handle_result(Remote *r, uint64_t from, RemoteMessage *msg) {
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
                        remote_object_complete(m, c->result, code, text, msg->body, msg->body_len);
                        ra->busy++;
                        call_free(m, c);
                        ra->busy--;
                        remote_actor_maybe_free(ra);
                }
        } else {
                Fetch *fe;
                HASH_FIND(hh, r->fetches, &msg->object, sizeof(msg->object), fe);
                if (fe && fe->node == from) {
                        /* Its owner, told by the node that made it: who may read this copy. A value
                         * whose owner is not told is root's. */
                        fe->o->uid = msg->uid != REMOTE_UID_UNKNOWN ? (uid_t) msg->uid
                                : code == KACTOR_OK                 ? 0
                                                                    : OBJECT_UID_UNKNOWN;
                        remote_object_complete(m, fe->o, code, text, msg->body, msg->body_len);
                        remote_fetch_free(r, fe);
                }
        }
        /* Taken (or not wanted): the sender's copy may go. Handles inside were taken before this
         * goes out, and a peer handles our frames in order. */
        if (r->n_done == r->n_done_allocated) {
                size_t n = MAX(r->n_done_allocated * 2, (size_t) 64);
                struct PendingDone *v = realloc(r->done, n * sizeof(*v));
                if (!v)
                        return remote_send_id_list(r, from, PEER_MSG_DONE, CODEC_EXT_OBJECT, &msg->object, 1);
                r->done = v;
                r->n_done_allocated = n;
        }
        r->done[r->n_done++] = (struct PendingDone) { .node = from, .object = msg->object };
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Calls: what they hold, their arguments as the worker gets them, and their results. */

#include "access.h"
#include "actor.h"
#include "call.h"
#include "callqueue.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "direct-results.h"
#include "macro.h"
#include "manager.h"
#include "objstore.h"
#include "proto.h"
#include "req-error.h"
#include "tasks.h"
#include "transport.h"

static void call_store_direct(Manager *m, Worker *w, Call *c, kactor_error code, const char *message,
                              const char *data, size_t len);

void call_free(Manager *m, Call *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_ids; i++) {
                if (c->id_actor[i])
                        actor_unref_id(m, c->ids[i]);
                else
                        objstore_unref(&m->store, objstore_find(&m->store, c->ids[i]));
        }
        objstore_unref(&m->store, c->result);
        free(c->ids);
        free(c->id_actor);
        free(c->method);
        free(c->module);
        if (!c->args_inline)
                free(c->args);
        free(c);
}

void call_result_fail_new(Manager *m, Object *result, int r, ReqError *e) {
        (void) objstore_set_failed(&m->store, result, r == -EREMOTEIO ? e->code : KACTOR_ERROR_TASK_FAILED,
                                   e->message ?: strerror(-r));
        req_error_done(e);
}

void call_fail(Manager *m, Call *c, kactor_error code, const char *message) {
        if (call_result_unmade(c))
                call_store_direct(m, NULL, c, code, message, NULL, 0);
        if (c->result && c->result->state == OBJECT_PENDING)
                (void) objstore_set_failed(&m->store, c->result, code, message);
        /* The call may still wait for its arguments. */
        for (size_t i = 0; i < c->n_ids && c->deps.remaining > 0; i++)
                if (!c->id_actor[i]) {
                        Object *o = objstore_find(&m->store, c->ids[i]);
                        if (o)
                                objstore_unwait(o, &c->deps);
                }
        call_free(m, c);
}

int call_check_ids(Manager *m, const kactor_id *ids, const uint8_t *is_actor, size_t n, uid_t uid, ReqError *e) {
        for (size_t i = 0; i < n; i++) {
                if (is_actor[i])
                        continue;
                Object *o = objstore_find(&m->store, ids[i]);
                if (o && !access_object_allowed(o, uid))
                        return access_check_object(m, o, uid, e);
        }
        return 0;
}

int call_hold_ids(Manager *m, Call *c, ReqError *e) {
        for (size_t i = 0; i < c->n_ids; i++) {
                if (c->id_actor[i]) {
                        actor_ref_id(m, c->ids[i]);
                        continue;
                }
                Object *o = objstore_find(&m->store, c->ids[i]);
                if (!o && (o = cluster_hooks_fetch_object(m, c->ids[i]))) {
                        /* Made on a peer: the copy fetched here is held by the call too. */
                        objstore_ref(o);
                        continue;
                }
                if (!o) {
                        char s[KACTOR_ID_STRING_MAX];
                        kactor_id_to_string(c->ids[i], s);
                        /* Release what was taken so far; call_free() must not release it again. */
                        for (size_t j = 0; j < i; j++) {
                                if (c->id_actor[j])
                                        actor_unref_id(m, c->ids[j]);
                                else
                                        objstore_unref(&m->store, objstore_find(&m->store, c->ids[j]));
                        }
                        c->n_ids = 0;
                        return req_error(e, KACTOR_ERROR_NO_SUCH_OBJECT,
                                         "argument names object %s, which does not exist", s);
                }
                objstore_ref(o);
        }
        return 0;
}

static void call_dep_done(Waiter *w, Object *o) {
        Call *c = w->userdata;
        if (w->remaining > 0)
                return;
        if (c->remote)
                cluster_hooks_call_ready(c->manager, c);
        else if (c->owner)
                actor_dispatch(c->owner);
        else
                tasks_call_ready(c);
}

/* A call for result (held by it), or for a direct call's result id made by user uid (result NULL). */
static int call_build(Manager *m, Object *result, kactor_id id, uid_t uid, const char *args, size_t args_len,
                      Call **ret, ReqError *e) {
        /* One allocation for the call and its arguments. */
        Call *c = calloc(1, sizeof(*c) + args_len);
        int r;

        if (!c)
                return -ENOMEM;
        c->args = c->storage;
        c->args_inline = true;
        memcpy(c->args, args, args_len);
        c->args_len = args_len;
        c->deps = (Waiter){ .object_done = call_dep_done, .userdata = c };
        c->manager = m;

        r = codec_scan_ids(args, args_len, &c->ids, &c->id_actor, &c->n_ids, &c->top_refs);
        /* A call whose arguments name its own result would wait for itself forever, holding it. */
        for (size_t i = 0; r >= 0 && i < c->n_ids; i++)
                if (!c->id_actor[i] && kactor_id_equal(c->ids[i], id))
                        r = req_error(e, KACTOR_ERROR_INVALID_ARGS, "the arguments name the call's own result");
        /* Only what the caller may read can be passed: a reference gives no right by itself. */
        if (r >= 0)
                r = call_check_ids(m, c->ids, c->id_actor, c->n_ids, uid, e);
        if (r >= 0)
                r = call_hold_ids(m, c, e);
        if (r < 0) {
                c->n_ids = 0;
                call_free(m, c);
                return r;
        }
        if (result)
                objstore_ref(result);
        else
                c->direct_id = id;
        c->result = result;
        *ret = c;
        return 0;
}

int call_new(Manager *m, Object *result, const char *args, size_t args_len, Call **ret, ReqError *e) {
        return call_build(m, result, result->id, result->uid, args, args_len, ret, e);
}

int call_new_direct(Manager *m, kactor_id result, uid_t uid, const char *args, size_t args_len, Call **ret,
                    ReqError *e) {
        return call_build(m, NULL, result, uid, args, args_len, ret, e);
}

/* The connection of the caller of direct call c: among those its worker w was handed (w may be NULL,
 * or a later worker of the actor), else any with that id prefix. */
static Conn *direct_caller(Manager *m, Worker *w, const Call *c) {
        uint64_t prefix = c->direct_id.lo & ~ID_SEQ_MASK;
        for (size_t i = 0; w && i < w->n_direct_callers; i++)
                if (w->direct_callers[i].prefix == prefix)
                        return w->direct_callers[i].conn;
        return m->transport ? m->transport->find(m, prefix) : NULL;
}

/* Stores the result of direct call c, which nobody named before it came: kept for its caller, or an
 * object its caller owns when it is not one to keep that way (c->result then). */
static void call_store_direct(Manager *m, Worker *w, Call *c, kactor_error code, const char *message,
                              const char *data, size_t len) {
        Conn *caller = direct_caller(m, w, c);
        if (!caller)
                return; /* gone: it released everything, this too */
        if (direct_results_put(m, caller, c->direct_id.lo, code, message, data, len) != 0)
                return;
        Object *o;
        if (objstore_add(&m->store, c->direct_id, &o) < 0)
                return;
        o->uid = caller->uid;
        /* One reference for the call (dropped with it), one for the caller's connection. */
        objstore_ref(o);
        m->transport->own(caller, o);
        c->result = o;
}

int call_watch_deps(Manager *m, Call *c) {
        if (!c->top_refs)
                return 0;
        for (size_t i = 0; i < c->n_ids; i++) {
                if (c->id_actor[i])
                        continue;
                Object *o = objstore_find(&m->store, c->ids[i]);
                if (o) {
                        int r = objstore_wait_for(&m->store, o, &c->deps);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int call_resolve_args(Manager *m, Call *c, char **ret_data, size_t *ret_len, ReqError *e) {
        *ret_data = NULL;
        *ret_len = 0;
        if (!c->top_refs)
                return 0;

        msgpack_unpacked u;
        Buffer b = {};
        msgpack_packer pk;
        size_t off = 0;
        int r = 0;

        msgpack_unpacked_init(&u);
        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
        if (msgpack_unpack_next(&u, c->args, c->args_len, &off) != MSGPACK_UNPACK_SUCCESS ||
            u.data.type != MSGPACK_OBJECT_ARRAY) {
                r = -EBADMSG;
                goto finish;
        }
        if (msgpack_pack_array(&pk, u.data.via.array.size) < 0) {
                r = -ENOMEM;
                goto finish;
        }
        for (uint32_t i = 0; i < u.data.via.array.size; i++) {
                const msgpack_object *el = &u.data.via.array.ptr[i];
                kactor_id id;
                if (codec_object_to_id(el, CODEC_EXT_OBJECT, &id) >= 0) {
                        Object *o = objstore_find(&m->store, id);
                        if (o && o->evicted)
                                (void) objstore_make_resident(&m->store, o);
                        if (!o || o->state == OBJECT_PENDING || o->evicted) {
                                r = req_error(
                                        e, KACTOR_ERROR_NO_SUCH_OBJECT,
                                        o && o->state == OBJECT_PENDING
                                                ? "argument %u is not ready (or was evicted and is being rebuilt)"
                                                : "argument %u is not available",
                                        i);
                                goto finish;
                        }
                        /* A copy fetched from a peer learnt its owner with its value. */
                        if (c->result && !access_object_allowed(o, c->result->uid)) {
                                r = access_check_object(m, o, c->result->uid, e);
                                goto finish;
                        }
                        if (o->state == OBJECT_FAILED) {
                                r = req_error(e, o->error, "argument %u failed: %s", i, o->message);
                                goto finish;
                        }
                        r = buffer_append(&b, o->data, o->len);
                } else
                        r = msgpack_pack_object(&pk, *el) < 0 ? -ENOMEM : 0;
                if (r < 0)
                        goto finish;
        }
        *ret_data = b.data; /* starts at 0: nothing was consumed */
        *ret_len = b.end;
        b = (Buffer){};
finish:
        buffer_free(&b);
        msgpack_unpacked_destroy(&u);
        return r;
}

int call_prepare_args(Manager *m, Call *c, ReqError *e) {
        char *data;
        size_t len;
        int r;

        /* An argument evicted since it was ready must be had again first. */
        bool wait = false;
        for (size_t i = 0; c->top_refs && i < c->n_ids; i++) {
                if (c->id_actor[i])
                        continue;
                Object *o = objstore_find(&m->store, c->ids[i]);
                if (o && o->evicted) {
                        r = objstore_wait_for(&m->store, o, &c->deps);
                        if (r < 0)
                                return r;
                        wait = wait || r > 0;
                }
        }
        if (wait)
                return -EAGAIN;

        r = call_resolve_args(m, c, &data, &len, e);
        if (r < 0 || !data)
                return r;
        if (!c->args_inline)
                free(c->args);
        c->args_inline = false;
        c->args = data;
        c->args_len = len;
        c->top_refs = false;
        return 0;
}

int call_finish(Manager *m, Worker *w, uint64_t seq, kactor_error code, const char *message, const char *data,
                size_t len, uint32_t flags) {
        Call *c;
        Actor *a = w->actor;

        if (w->kind == WORKER_ACTOR) {
                if (!a)
                        return 0; /* the actor is gone; nobody waits */
                c = flags & RESULT_DIRECT ? callqueue_finish_direct(&a->queue) : callqueue_finish(&a->queue, seq);
                if (!c)
                        return -EBADMSG;
                /* From here on its seq is its place among the worker's results, which the journal
                 * and the worker's acknowledgements count (docs/protocol.md). */
                c->seq = w->results;
        } else {
                c = tasks_finish(w, seq);
                if (!c)
                        return -EBADMSG;
        }

        if (call_result_unmade(c))
                call_store_direct(m, w, c, code, message, data, len);

        /* A replicated actor's result waits until its record is on every replica. */
        bool deferred = w->kind == WORKER_ACTOR && a->repl && c->kind == CALL_NORMAL &&
                cluster_hooks_defer_result(a, c, !(flags & RESULT_READ_ONLY), code, message, data, len) > 0;
        if (!deferred && c->result && c->result->state == OBJECT_PENDING) {
                if (code == KACTOR_OK) {
                        _cleanup_free_ kactor_id *ids = NULL;
                        _cleanup_free_ uint8_t *is_actor = NULL;
                        size_t n = 0;
                        if (codec_scan_ids(data, len, &ids, &is_actor, &n, NULL) < 0)
                                (void) objstore_set_failed(&m->store, c->result, KACTOR_ERROR_TASK_FAILED,
                                                           "the worker sent a malformed result");
                        else
                                (void) objstore_set_ready(&m->store, c->result, data, len, ids, is_actor, n);
                } else
                        (void) objstore_set_failed(&m->store, c->result, code, message ?: "failed");
        }

        if (w->kind == WORKER_ACTOR)
                actor_call_finished(a, c, code, message, data, len, flags);
        else {
                call_free(m, c);
                tasks_task_done(w);
        }
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The native protocol's requests (lib/proto.h, docs/protocol.md): what clients and workers ask
 * over their connections (conn.c, the transport), handled one frame at a time.
 */

#include <sys/socket.h>

#include "access.h"
#include "actor.h"
#include "call.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "conn.h"
#include "get-request.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "native.h"
#include "persist.h"
#include "req-error.h"
#include "spec-check.h"
#include "tasks.h"
#include "worker-spawn.h"
#include "time-util.h"

/* The args of a request: the trailing value, which must be a list; none means no arguments. */
static int frame_args(const Frame *f, const char **ret, size_t *ret_len) {
        static const char empty_list[] = { (char) 0x90 };
        if (!f->has_body) {
                *ret = empty_list;
                *ret_len = 1;
                return 0;
        }
        if (f->body.data.type != MSGPACK_OBJECT_ARRAY)
                return -EBADMSG;
        *ret = f->body_raw;
        *ret_len = f->body_len;
        return 0;
}

/* Checks that an id a client made for a new object is in its own range. */
static int conn_object_id(Conn *c, uint64_t lo, kactor_id *ret) {
        if ((lo & ~ID_SEQ_MASK) != c->id_prefix || (lo & ID_SEQ_MASK) == 0)
                return -EBADMSG;
        c->max_lo = MAX(c->max_lo, lo);
        *ret = (kactor_id){ c->manager->node_hi, lo };
        return 0;
}

/* A resumed client sends again what it has no result for, and a client whose direct socket broke
 * sends again (flagged) the calls it did not answer: what is here already is not made twice. */
static bool conn_resent(Conn *c, kactor_id object, bool flagged) {
        Manager *m = c->manager;

        if (!c->resumed && !flagged)
                return false;
        c->direct_resent = c->direct_resent || flagged;
        if (objstore_find(&m->store, object))
                return true;
        /* A direct call whose record came and whose result did not yet: its object is made now,
         * for the result to land in (the caller asks for it next). */
        for (size_t i = 0; i < c->n_direct_actors; i++) {
                Actor *a = manager_find_actor(m, c->direct_actors[i]);
                Call *call = a ? callqueue_find_direct(&a->queue, object) : NULL;
                if (!call)
                        continue;
                Object *o;
                if (objstore_add(&m->store, object, &o) < 0)
                        return true; /* not run twice, whatever else fails */
                o->uid = c->uid;
                objstore_ref(o);
                call->result = o;
                conn_own(c, o);
                return true;
        }
        return false;
}

static WorkerDirectCaller *worker_direct_caller(Worker *w, uint64_t prefix);

void native_forget_direct_caller(Conn *c) {
        for (size_t i = 0; i < c->n_direct_actors; i++) {
                Actor *a = manager_find_actor(c->manager, c->direct_actors[i]);
                WorkerDirectCaller *dc = a && a->worker ? worker_direct_caller(a->worker, c->id_prefix) : NULL;
                if (dc && dc->conn == c)
                        dc->conn = NULL;
        }
}

void native_read_direct_records(Conn *c) {
        for (size_t i = 0; i < c->n_direct_actors; i++) {
                Actor *a = manager_find_actor(c->manager, c->direct_actors[i]);
                if (a && a->worker && a->worker->conn && a->worker->conn != c)
                        conn_drain(a->worker->conn);
        }
}

static int reply_req_error(Conn *c, uint64_t reqid, int r, ReqError *e) {
        if (r == -EREMOTEIO)
                r = conn_send_reply_error(c, reqid, e->code, e->message ?: "failed");
        else
                r = conn_send_reply_error(c, reqid, KACTOR_ERROR_PROTOCOL, strerror(-r));
        req_error_done(e);
        return r;
}

static int handle_hello(Conn *c, Frame *f) {
        uint64_t version;
        int r;

        if (frame_field_u64(f, 0, &version) < 0)
                return conn_protocol_error(c, "malformed HELLO");
        if (version != PROTO_VERSION) {
                char msg[128];
                snprintf(msg, sizeof(msg),
                         "unsupported protocol version %" PRIu64 " (this node manager speaks %u)", version,
                         PROTO_VERSION);
                return conn_protocol_error(c, msg);
        }
        ReqError e = {};
        r = access_check(c->manager, c->uid, &e);
        if (r < 0) {
                r = conn_refuse(c, r == -EREMOTEIO ? e.code : KACTOR_ERROR_ACCESS_DENIED,
                                e.message ?: "access denied");
                req_error_done(&e);
                return r;
        }

        /* A client that was connected before the node manager restarted asks for its session back:
         * its ids, and what it held (kept for it meanwhile). */
        uint64_t resume;
        if (frame_field_u64(f, 2, &resume) >= 0 && resume != 0) {
                Conn *g = conn_find_prefix(c->manager, resume);
                /* A client's session only: a worker's is its worker's, which re-attaches by itself. */
                if (g && g->ghost && g->uid == c->uid && !g->worker_session)
                        conn_take_over(c, g);
                else
                        log_debug("A client of UID %u asked for session %" PRIx64 ", which is not here: it gets a new one.",
                                  (unsigned) c->uid, resume);
        }

        size_t off = frame_begin(&c->out);
        r = msgpack_pack_array(&c->pk, 7) < 0 || msgpack_pack_uint32(&c->pk, MSG_WELCOME) < 0 ||
                        msgpack_pack_uint64(&c->pk, 0) < 0 ||
                        msgpack_pack_uint32(&c->pk, PROTO_VERSION) < 0 ||
                        pack_cstr(&c->pk, c->manager->node_id) < 0 ||
                        msgpack_pack_uint64(&c->pk, c->manager->node_hi) < 0 ||
                        msgpack_pack_uint64(&c->pk, c->id_prefix) < 0 ||
                        msgpack_pack_uint32(&c->pk, PROTO_FEATURE_DIRECT) < 0
                ? -ENOMEM
                : 0;
        r = conn_end_frame(c, off, r);
        if (r < 0)
                return r;
        c->welcomed = true;
        c->hello_timer = sd_event_source_disable_unref(c->hello_timer);
        persist_conn(c->manager, c->id_prefix, c->uid);
        return 0;
}

/* An actor's worker whose node manager restarted: it must be the very process the journal names,
 * in the actor's user, asking for the connection ids it had. */
static int handle_attach(Conn *c, Frame *f) {
        Manager *m = c->manager;
        uint64_t version, prefix, last_seq, flags;
        kactor_id id;

        if (frame_field_u64(f, 0, &version) < 0 || frame_field_id(f, 1, CODEC_EXT_ACTOR, &id) < 0 ||
            frame_field_u64(f, 2, &prefix) < 0 || frame_field_u64(f, 3, &last_seq) < 0 ||
            frame_field_u64(f, 4, &flags) < 0)
                return conn_protocol_error(c, "malformed ATTACH");
        const msgpack_object *list = frame_field(f, 5);
        Actor *a = manager_find_actor(m, id);
        Worker *w = a ? a->worker : NULL;
        if (version != PROTO_VERSION || !list || list->type != MSGPACK_OBJECT_ARRAY || !w || !w->adopted ||
            w->conn || w->exited || a->state == ACTOR_DEAD || w->pid != c->pid || w->uid != c->uid ||
            w->attach_prefix != prefix) {
                unsigned suppressed = 0;
                if (log_ratelimit_test(&m->attach_refused_log, now_usec(CLOCK_MONOTONIC), 10 * USEC_PER_SEC,
                                       &suppressed))
                        log_warning("Refused ATTACH from PID %d (UID %u): it is not the worker this node manager waits "
                                    "for%s.",
                                    (int) c->pid, (unsigned) c->uid,
                                    suppressed > 0 ? " (more refusals were not logged)" : "");
                return conn_refuse(c, KACTOR_ERROR_ACCESS_DENIED,
                                   "not a worker this node manager waits for");
        }
        conn_attach_worker(c);
        Conn *g = conn_find_prefix(m, prefix);
        if (g && g->ghost)
                conn_take_over(c, g);
        /* The answer goes first: calls dispatched now follow it. It leaves after the journal has
         * what the worker sent (manager.c's on_flush), which the worker may then forget. */
        int r = conn_send_reply_ok(c, 0, NULL);
        if (r < 0)
                return r;
        return actor_attach_worker(a, c, last_seq, (uint32_t) flags, list);
}

/* An option's value as a kactor value. A uint64 past 2^63-1 (which kactor values do not hold) comes
 * as a double, so that the limit it breaks can be named (spec-check.c takes integral doubles). */
static int option_value_from_object(const msgpack_object *o, kactor_value **ret) {
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 > INT64_MAX) {
                *ret = kactor_value_new_double((double) o->via.u64);
                return *ret ? 0 : -ENOMEM;
        }
        return codec_value_from_object(o, ret);
}

typedef int (*option_set_fn)(const char *key, size_t key_len, const kactor_value *v, void *userdata, ReqError *e);

/* Reads a map of options, each set by set_option (spec-check.c: the rules both transports share). */
static int parse_options(const msgpack_object *o, option_set_fn set_option, void *userdata, ReqError *e) {
        if (!o || o->type != MSGPACK_OBJECT_MAP)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "options must be a map");
        for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
                _cleanup_(kactor_value_freep) kactor_value *value = NULL;
                if (k->type != MSGPACK_OBJECT_STR)
                        return req_error(e, KACTOR_ERROR_INVALID_ARGS, "option names must be strings");
                int r = option_value_from_object(v, &value);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return req_error(e, KACTOR_ERROR_INVALID_ARGS, "an option's value is not a kactor value");
                r = set_option(k->via.str.size > 0 ? k->via.str.ptr : "", k->via.str.size, value, userdata, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct ActorOptions {
        ActorSpec *spec;
        ActorOptionStrings strings;
} ActorOptions;

static void actor_options_done(ActorOptions *o) {
        actor_option_strings_done(&o->strings);
}

static int set_actor_option(const char *key, size_t key_len, const kactor_value *v, void *userdata, ReqError *e) {
        ActorOptions *o = userdata;
        return actor_option_set(o->spec, &o->strings, key, key_len, v, e);
}

static int set_task_option(const char *key, size_t key_len, const kactor_value *v, void *userdata, ReqError *e) {
        return task_option_set(userdata, key, key_len, v, e);
}

/* A call or task refused before it was queued: it is not answered, so its result says why. */
static int conn_fail_object(Conn *c, kactor_id object, const ReqError *e) {
        Object *o;
        int r = objstore_add(&c->manager->store, object, &o);
        if (r < 0)
                return r;
        o->uid = c->uid;
        (void) objstore_set_failed(&c->manager->store, o, e->code, e->message ?: "invalid arguments");
        conn_own(c, o);
        return 0;
}

static int handle_create_actor(Conn *c, Frame *f) {
        _cleanup_free_ char *module = NULL, *class_name = NULL;
        ActorSpec spec = { .uid = c->uid };
        _cleanup_(actor_options_done) ActorOptions options = { .spec = &spec };
        ReqError e = {};
        Actor *a;
        kactor_id id;
        int r;

        if (frame_field_strdup(f, 0, &module) < 0 || frame_field_strdup(f, 1, &class_name) < 0 ||
            frame_args(f, &spec.args, &spec.args_len) < 0)
                return reply_req_error(
                        c, f->id, req_error(&e, KACTOR_ERROR_INVALID_ARGS, "malformed CreateActor request"),
                        &e);
        spec.module = module;
        spec.class_name = class_name;
        r = parse_options(frame_field(f, 2), set_actor_option, &options, &e);
        if (r < 0)
                return reply_req_error(c, f->id, r, &e);

        r = actor_create_anywhere(c->manager, &spec, &a, &id, &e);
        if (r < 0)
                return reply_req_error(c, f->id, r, &e);
        r = conn_hold(c, id, true);
        if (r < 0)
                return r;
        return conn_send_reply_ok(c, f->id, &id);
}

static int handle_get_actor(Conn *c, Frame *f) {
        _cleanup_free_ char *name = NULL;
        ReqError e = {};

        if (frame_field_strdup(f, 0, &name) < 0)
                return reply_req_error(
                        c, f->id, req_error(&e, KACTOR_ERROR_INVALID_ARGS, "malformed GetActor request"),
                        &e);
        int r = actor_name_check(name, strlen(name), &e);
        if (r < 0)
                return reply_req_error(c, f->id, r, &e);
        Actor *a = manager_find_actor_by_name(c->manager, name);
        if (!a || a->state == ACTOR_DEAD)
                return reply_req_error(
                        c, f->id, req_error(&e, KACTOR_ERROR_NO_SUCH_ACTOR, "no actor named '%s'", name),
                        &e);
        r = access_check_actor(c->manager, a, c->uid, ACCESS_CALL, &e);
        if (r < 0)
                return reply_req_error(c, f->id, r, &e);
        r = conn_hold(c, a->id, true);
        if (r < 0)
                return r;
        return conn_send_reply_ok(c, f->id, &a->id);
}

/* Calls, tasks and puts are not answered; their errors land in their result objects. A request
 * that cannot even name its result breaks the stream. */
static int handle_call(Conn *c, Frame *f) {
        kactor_id object, actor;
        const char *method, *args;
        size_t method_len, args_len;
        ReqError e = {};
        Object *o;
        int r;

        if (conn_object_id(c, f->id, &object) < 0 || frame_field_id(f, 0, CODEC_EXT_ACTOR, &actor) < 0 ||
            frame_field_str(f, 1, &method, &method_len) < 0 || frame_args(f, &args, &args_len) < 0)
                return conn_protocol_error(c, "malformed CALL");
        bool flagged = false;
        if (f->n_fields > 2 && frame_field_bool(f, 2, &flagged) < 0)
                return conn_protocol_error(c, "malformed CALL");
        if (conn_resent(c, object, flagged))
                return 0;
        r = actor_submit_call(c->manager, actor, object, method, method_len, args, args_len, c->uid, &o, &e);
        if (r == -EREMOTEIO) {
                r = conn_fail_object(c, object, &e);
                req_error_done(&e);
                if (r >= 0)
                        return 0;
        }
        if (r < 0) {
                req_error_done(&e);
                return conn_protocol_error(c, r == -EEXIST ? "CALL reuses an object id" : "CALL refused");
        }
        conn_own(c, o);
        return 0;
}

static int handle_submit(Conn *c, Frame *f) {
        _cleanup_free_ char *module = NULL, *function = NULL;
        kactor_id object;
        const char *args;
        size_t args_len;
        double num_cpus = 1;
        ReqError e = {};
        Object *o;
        int r;

        if (conn_object_id(c, f->id, &object) < 0 || frame_field_strdup(f, 0, &module) < 0 ||
            frame_field_strdup(f, 1, &function) < 0 || frame_args(f, &args, &args_len) < 0)
                return conn_protocol_error(c, "malformed SUBMIT");
        if (conn_resent(c, object, false))
                return 0;
        const msgpack_object *opts = frame_field(f, 2);
        r = opts ? parse_options(opts, set_task_option, &num_cpus, &e) : 0;
        if (r >= 0)
                r = tasks_submit(c->manager, object, module, function, num_cpus, args, args_len, c->uid, c,
                                 &o, &e);
        if (r == -EREMOTEIO) {
                r = conn_fail_object(c, object, &e);
                req_error_done(&e);
                if (r >= 0)
                        return 0;
        }
        if (r < 0) {
                req_error_done(&e);
                return conn_protocol_error(c,
                                           r == -EEXIST ? "SUBMIT reuses an object id" : "SUBMIT refused");
        }
        conn_own(c, o);
        return 0;
}

static int handle_put(Conn *c, Frame *f) {
        kactor_id object;
        ReqError e = {};
        Object *o;
        int r;

        if (conn_object_id(c, f->id, &object) < 0 || !f->has_body)
                return conn_protocol_error(c, "malformed PUT");
        if (conn_resent(c, object, false))
                return 0;
        r = manager_put(c->manager, object, f->body_raw, f->body_len, c->uid, c, &o, &e);
        if (r == -EREMOTEIO) {
                r = conn_fail_object(c, object, &e);
                req_error_done(&e);
                if (r >= 0)
                        return 0;
        }
        if (r < 0) {
                req_error_done(&e);
                return conn_protocol_error(c, r == -EEXIST ? "PUT reuses an object id" : "PUT refused");
        }
        conn_own(c, o);
        return 0;
}

static int read_id_list(const msgpack_object *o, int8_t type, kactor_id **ret, size_t *ret_n) {
        if (!o || o->type != MSGPACK_OBJECT_ARRAY)
                return -EBADMSG;
        kactor_id *ids = calloc(o->via.array.size ?: 1, sizeof(kactor_id));
        if (!ids)
                return -ENOMEM;
        for (uint32_t i = 0; i < o->via.array.size; i++)
                if (codec_object_to_id(&o->via.array.ptr[i], type, &ids[i]) < 0) {
                        free(ids);
                        return -EBADMSG;
                }
        *ret = ids;
        *ret_n = o->via.array.size;
        return 0;
}

/* --- Get and Wait ------------------------------------------------------------------------------ */

static int pack_error_value(msgpack_packer *pk, kactor_error code, const char *message) {
        size_t len = strlen(message ?: "");
        if (msgpack_pack_ext(pk, len + 1, CODEC_EXT_ERROR) < 0)
                return -ENOMEM;
        uint8_t b = (uint8_t) code;
        if (msgpack_pack_ext_body(pk, &b, 1) < 0 || (len > 0 && msgpack_pack_ext_body(pk, message, len) < 0))
                return -ENOMEM;
        return 0;
}

/* The bytes of the values a Get answers with: what its reply holds at least. */
static size_t get_values_size(const GetRequest *g) {
        size_t n = 0;
        for (size_t i = 0; i < g->n_objects; i++)
                if (g->objects[i]->state == OBJECT_READY)
                        n += g->objects[i]->len;
        return n;
}

/* At most how large the reply will be, frame header included: what the output budget counts.
 * 64 covers the frame header, [REPLY, reqid, code, nil] and the list's head; 16 an error value's
 * framing. */
static size_t get_reply_size(const GetRequest *g, bool timed_out) {
        size_t n = 64;
        if (timed_out && !g->wait)
                return n + 160; /* the Timeout error's message */
        if (g->wait)
                return n + g->n_objects;
        for (size_t i = 0; i < g->n_objects; i++) {
                const Object *o = g->objects[i];
                n += o->state == OBJECT_READY ? o->len : 16 + strlen(o->message ?: "");
        }
        return n;
}

static int native_get_build_reply(ConnGet *cg, bool timed_out) {
        GetRequest *g = cg->get;
        Conn *c = cg->conn;
        int r;

        /* Refused before it is built: a Get may name one large object many times. */
        if (!g->wait && !timed_out && get_values_size(g) > PROTO_FRAME_MAX)
                return conn_send_reply_error(
                        c, cg->reqid, KACTOR_ERROR_INVALID_ARGS,
                        "the values asked for are larger than a frame (64 MiB): get fewer at once");

        const Object *denied = get_request_denied(g);
        if (denied) {
                ReqError e = {};
                (void) access_check_object(g->manager, denied, g->uid, &e);
                r = conn_send_reply_error(c, cg->reqid, e.code, e.message ?: "access denied");
                req_error_done(&e);
                return r;
        }
        if (timed_out && !g->wait) {
                size_t ready = get_request_n_ready(g);
                char msg[160];
                snprintf(msg, sizeof(msg), "timed out: %zu of %zu object%s ready", ready, g->n_objects,
                         g->n_objects == 1 ? "" : "s");
                return conn_send_reply_error(c, cg->reqid, KACTOR_ERROR_TIMEOUT, msg);
        }

        size_t off = frame_begin(&c->out);
        r = msgpack_pack_array(&c->pk, 4) < 0 || msgpack_pack_uint32(&c->pk, MSG_REPLY) < 0 ||
                        msgpack_pack_uint64(&c->pk, cg->reqid) < 0 ||
                        msgpack_pack_uint32(&c->pk, KACTOR_OK) < 0 || msgpack_pack_nil(&c->pk) < 0 ||
                        msgpack_pack_array(&c->pk, g->n_objects) < 0
                ? -ENOMEM
                : 0;
        for (size_t i = 0; r >= 0 && i < g->n_objects; i++) {
                Object *o = g->objects[i];
                if (g->wait)
                        r = (o->state != OBJECT_PENDING ? msgpack_pack_true(&c->pk)
                                                        : msgpack_pack_false(&c->pk)) < 0
                                ? -ENOMEM
                                : 0;
                else if (o->state == OBJECT_READY) {
                        objstore_touch(&g->manager->store, o);
                        r = buffer_append(&c->out, o->data, o->len);
                        if (r >= 0 && o->n_contained > 0)
                                r = conn_hold_ids_in(c, o);
                } else
                        r = pack_error_value(&c->pk, o->error, o->message);
        }
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        r = frame_end(&c->out, off);
        if (r == -EMSGSIZE)
                return conn_send_reply_error(
                        c, cg->reqid, KACTOR_ERROR_INVALID_ARGS,
                        "the values asked for are larger than a frame (64 MiB): get fewer at once");
        if (r >= 0)
                conn_mark_dirty(c);
        return r;
}

static void native_get_answer(ConnGet *cg, bool timed_out) {
        int r = native_get_build_reply(cg, timed_out);
        if (r < 0)
                log_warning_errno(r, "Failed to answer a Get: %m");
        get_request_free(cg->get);
}

/* GetRequest.reply: a reply that does not fit the connection's output budget waits (parked), with
 * the objects it holds, until the client has read enough of what it was sent; parked replies are
 * answered in order by native_answer_parked() from the connection's flush. */
static void native_get_reply(GetRequest *g, bool timed_out) {
        ConnGet *cg = g->userdata;
        Conn *c = cg->conn;

        if (TAILQ_EMPTY(&c->parked) && conn_output_room(c, get_reply_size(g, timed_out))) {
                native_get_answer(cg, timed_out);
                return;
        }
        get_request_stop_waiting(g);
        cg->parked = true;
        cg->timed_out = timed_out;
        TAILQ_INSERT_TAIL(&c->parked, cg, parked_link);
        conn_mark_dirty(c);
}

/* GetRequest.done */
static void native_get_done(GetRequest *g) {
        ConnGet *cg = g->userdata;
        Conn *c = cg->conn;

        if (cg->parked)
                TAILQ_REMOVE(&c->parked, cg, parked_link);
        LIST_REMOVE(cg, link);
        if (c->worker)
                tasks_worker_blocked(c->worker, false);
        free(cg);
}

/* Answers the connection's parked Gets, in order, while their replies fit. Returns how many. */
unsigned native_answer_parked(Conn *c) {
        unsigned n = 0;
        ConnGet *cg;

        while ((cg = TAILQ_FIRST(&c->parked)) && conn_output_room(c, get_reply_size(cg->get, cg->timed_out))) {
                TAILQ_REMOVE(&c->parked, cg, parked_link);
                cg->parked = false;
                native_get_answer(cg, cg->timed_out);
                n++;
        }
        return n;
}

static int handle_get(Conn *c, Frame *f, bool wait) {
        _cleanup_free_ kactor_id *ids = NULL;
        size_t n;
        uint64_t timeout, num_returns = 0;
        ReqError e = {};
        GetRequest *g;
        int r;

        if (frame_field_u64(f, 0, &timeout) < 0 || (wait && frame_field_u64(f, 1, &num_returns) < 0) ||
            read_id_list(frame_field(f, wait ? 2 : 1), CODEC_EXT_OBJECT, &ids, &n) < 0)
                return reply_req_error(c, f->id,
                                       req_error(&e, KACTOR_ERROR_INVALID_ARGS, "malformed %s request",
                                                 wait ? "Wait" : "Get"),
                                       &e);
        if (wait && num_returns > n)
                return reply_req_error(c, f->id,
                                       req_error(&e, KACTOR_ERROR_INVALID_ARGS,
                                                 "num_returns %" PRIu64
                                                 " is more than the %zu objects given",
                                                 num_returns, n),
                                       &e);

        /* After a restart: a result of this client's own that no one has yet may be owed by a worker
         * still to re-attach (a direct call answered before the previous node manager had it). */
        for (size_t i = 0; c->manager->n_workers_to_attach > 0 && !c->worker && i < n; i++) {
                Object *o = manager_await_result(c->manager, ids[i], c->id_prefix, c->uid);
                if (o)
                        conn_own(c, o);
        }
        r = get_request_new(c->manager, ids, n, c->uid, wait, num_returns, timeout, &g, &e);
        if (r < 0)
                return reply_req_error(c, f->id, r, &e);
        ConnGet *cg = calloc(1, sizeof(ConnGet));
        if (!cg) {
                get_request_free(g);
                return -ENOMEM;
        }
        *cg = (ConnGet) { .get = g, .conn = c, .reqid = f->id };
        g->userdata = cg;
        g->reply = native_get_reply;
        g->done = native_get_done;
        LIST_INSERT_HEAD(&c->gets, cg, link);
        if (c->worker)
                tasks_worker_blocked(c->worker, true);
        return get_request_start(g);
}

static int handle_release(Conn *c, Frame *f) {
        _cleanup_free_ kactor_id *objects = NULL, *actors = NULL;
        size_t n_objects, n_actors;

        if (read_id_list(frame_field(f, 0), CODEC_EXT_OBJECT, &objects, &n_objects) < 0 ||
            read_id_list(frame_field(f, 1), CODEC_EXT_ACTOR, &actors, &n_actors) < 0)
                return conn_protocol_error(c, "malformed RELEASE");
        for (size_t i = 0; i < n_objects; i++)
                conn_release_object(c, objects[i]);
        for (size_t i = 0; i < n_actors; i++)
                conn_release_actor(c, actors[i]);
        return 0;
}

static int handle_kill(Conn *c, Frame *f) {
        kactor_id id;
        bool no_restart;
        ReqError e = {};

        if (frame_field_id(f, 0, CODEC_EXT_ACTOR, &id) < 0 || frame_field_bool(f, 1, &no_restart) < 0)
                return reply_req_error(
                        c, f->id, req_error(&e, KACTOR_ERROR_INVALID_ARGS, "malformed Kill request"), &e);
        Actor *a = manager_find_actor(c->manager, id);
        if (!a && cluster_hooks_kill_actor(c->manager, id, c->uid, no_restart) >= 0)
                return conn_send_reply_ok(c, f->id, NULL);
        if (!a) {
                char s[KACTOR_ID_STRING_MAX];
                kactor_id_to_string(id, s);
                return reply_req_error(c, f->id, req_error(&e, KACTOR_ERROR_NO_SUCH_ACTOR, "no actor %s", s),
                                       &e);
        }
        /* Another user's actor: its owner or root only; administrators who are not root go through
         * D-Bus, where polkit decides (kactorctl kill does). */
        int r = access_check_actor(c->manager, a, c->uid, ACCESS_MANAGE, &e);
        if (r < 0)
                return reply_req_error(c, f->id, r, &e);
        (void) actor_kill_by_request(a, no_restart, c->uid);
        return conn_send_reply_ok(c, f->id, NULL);
}

static int handle_init_done(Conn *c, Frame *f) {
        Worker *w = c->worker;
        uint64_t code, flags = 0;
        const char *msg = NULL;
        size_t len = 0;

        if (!w || w->ready || frame_field_u64(f, 0, &code) < 0)
                return conn_protocol_error(c, "unexpected INIT_DONE");
        (void) frame_field_str(f, 1, &msg, &len);
        (void) frame_field_u64(f, 2, &flags);
        _cleanup_free_ char *message = msg ? strndup(msg, len) : NULL;
        w->ready = code == KACTOR_OK;
        if (w->kind == WORKER_ACTOR)
                actor_worker_ready(w->actor,
                                   code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_PROTOCOL,
                                   message, (uint32_t) flags);
        else if (w->ready)
                tasks_worker_ready(w);
        return 0;
}

static int handle_result(Conn *c, Frame *f) {
        Worker *w = c->worker;
        uint64_t code, flags = 0;
        const char *msg = NULL;
        size_t len = 0;

        if (!w || !w->ready || frame_field_u64(f, 0, &code) < 0)
                return conn_protocol_error(c, "unexpected RESULT");
        (void) frame_field_str(f, 1, &msg, &len);
        (void) frame_field_u64(f, 2, &flags);
        /* Optional (newer workers): when the method ran, for tracing (manager_trace_call_stored()). */
        if (frame_field_u64(f, 3, &w->exec_start_ns) < 0 || frame_field_u64(f, 4, &w->exec_end_ns) < 0)
                w->exec_start_ns = w->exec_end_ns = 0;
        _cleanup_free_ char *message = code != KACTOR_OK && msg ? strndup(msg, len) : NULL;
        if (code == KACTOR_OK && !f->has_body)
                return conn_protocol_error(c, "RESULT without a value");
        if ((flags & RESULT_DIRECT) && w->kind != WORKER_ACTOR)
                return conn_protocol_error(c, "a direct RESULT from a task worker");
        if (w->kind == WORKER_ACTOR)
                w->results++;
        int r = call_finish(c->manager, w, f->id,
                            code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_TASK_FAILED, message,
                            f->body_raw, f->body_len, (uint32_t) flags);
        if (r == -EBADMSG)
                return conn_protocol_error(c, "RESULT for a call that is not running");
        if (r >= 0 && w->kind == WORKER_ACTOR)
                worker_note_result(w, w->results);
        return r;
}

static WorkerDirectCaller *worker_direct_caller(Worker *w, uint64_t prefix) {
        for (size_t i = 0; i < w->n_direct_callers; i++)
                if (w->direct_callers[i].prefix == prefix)
                        return &w->direct_callers[i];
        return NULL;
}

/* At most this many callers per worker have a direct socket; the others stay relayed. */
#define DIRECT_CALLERS_MAX 4096

static int handle_open_direct(Conn *c, Frame *f) {
        Manager *m = c->manager;
        _cleanup_close_pair_ int pair[2] = { -1, -1 };
        kactor_id id;
        ReqError e = {};
        int r;

        if (c->worker)
                return reply_req_error(c, f->id,
                                       req_error(&e, KACTOR_ERROR_NOT_SUPPORTED,
                                                 "a worker's calls go through the node manager"),
                                       &e);
        if (frame_field_id(f, 0, CODEC_EXT_ACTOR, &id) < 0)
                return reply_req_error(c, f->id, req_error(&e, KACTOR_ERROR_INVALID_ARGS, "malformed OPEN_DIRECT"),
                                       &e);
        Actor *a = manager_find_actor(m, id);
        r = actor_direct_check(m, a, id, c->uid, &e);
        if (r < 0)
                return reply_req_error(c, f->id, r, &e);
        Worker *w = a->worker;
        WorkerDirectCaller *dc = worker_direct_caller(w, c->id_prefix);
        if (!dc && w->n_direct_callers >= DIRECT_CALLERS_MAX)
                return reply_req_error(c, f->id,
                                       req_error(&e, KACTOR_ERROR_INSUFFICIENT_RESOURCES,
                                                 "actor %s has %u direct callers already", a->id_string,
                                                 DIRECT_CALLERS_MAX),
                                       &e);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return reply_req_error(c, f->id, req_error(&e, KACTOR_ERROR_INSUFFICIENT_RESOURCES,
                                                           "cannot make a direct socket: %m"),
                                       &e);
        if (!dc) {
                WorkerDirectCaller *n = reallocarray(w->direct_callers, w->n_direct_callers + 1, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                w->direct_callers = n;
                dc = &n[w->n_direct_callers++];
                *dc = (WorkerDirectCaller){ .prefix = c->id_prefix, .uid = c->uid };
        }
        dc->conn = c;
        bool known = false;
        for (size_t i = 0; i < c->n_direct_actors; i++)
                known = known || kactor_id_equal(c->direct_actors[i], id);
        if (!known) {
                kactor_id *n = reallocarray(c->direct_actors, c->n_direct_actors + 1, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                c->direct_actors = n;
                n[c->n_direct_actors++] = id;
        }

        /* The worker's end first: a caller never has a socket its worker does not know. */
        Conn *wc = w->conn;
        size_t off = frame_begin(&wc->out);
        /* The ids it made so far are not a direct call's to make again (the worker keeps the
         * highest it ran of each caller from then on). */
        r = msgpack_pack_array(&wc->pk, 6) < 0 || msgpack_pack_uint32(&wc->pk, MSG_DIRECT_OPEN) < 0 ||
                        msgpack_pack_uint64(&wc->pk, 0) < 0 || msgpack_pack_uint64(&wc->pk, c->uid) < 0 ||
                        msgpack_pack_uint64(&wc->pk, m->node_hi) < 0 ||
                        msgpack_pack_uint64(&wc->pk, c->id_prefix) < 0 ||
                        msgpack_pack_uint64(&wc->pk, c->max_lo) < 0
                ? -ENOMEM
                : 0;
        r = conn_end_frame_fd(wc, off, r, pair[0]);
        if (r >= 0) {
                /* The socket holds the actor until the worker says it closed: calls sent on it before
                 * the caller let go of the actor still run. */
                dc->n_open++;
                actor_ref(a);
                w->direct_close_sent = false;
        }
        if (r == -EAGAIN)
                return reply_req_error(c, f->id,
                                       req_error(&e, KACTOR_ERROR_TIMEOUT,
                                                 "the worker of actor %s is busy: ask again later", a->id_string),
                                       &e);
        if (r < 0)
                return reply_req_error(c, f->id, req_error(&e, KACTOR_ERROR_INSUFFICIENT_RESOURCES,
                                                           "cannot hand over a direct socket: %s", strerror(-r)),
                                       &e);

        off = frame_begin(&c->out);
        r = msgpack_pack_array(&c->pk, 4) < 0 || msgpack_pack_uint32(&c->pk, MSG_REPLY) < 0 ||
                        msgpack_pack_uint64(&c->pk, f->id) < 0 || msgpack_pack_uint32(&c->pk, KACTOR_OK) < 0 ||
                        msgpack_pack_nil(&c->pk) < 0
                ? -ENOMEM
                : 0;
        r = conn_end_frame_fd(c, off, r, pair[1]);
        if (r < 0)
                /* The worker sees its end close at once and forgets it. */
                return reply_req_error(c, f->id,
                                       req_error(&e, KACTOR_ERROR_TIMEOUT, "cannot hand over a direct socket now"),
                                       &e);
        return 0;
}

/* A direct socket of a caller closed (its calls on it ran): its hold on the actor goes. */
static int handle_direct_closed(Conn *c, Frame *f) {
        Worker *w = c->worker;
        uint64_t prefix;

        if (!w || w->kind != WORKER_ACTOR || frame_field_u64(f, 0, &prefix) < 0)
                return conn_protocol_error(c, "unexpected or malformed DIRECT_CLOSED");
        WorkerDirectCaller *dc = worker_direct_caller(w, prefix);
        /* A socket a previous node manager handed over is not counted here. */
        if (!dc || dc->n_open == 0 || !w->actor)
                return 0;
        dc->n_open--;
        actor_unref(w->actor);
        return 0;
}

/* The record of a direct call, before the worker runs it. */
static int handle_direct(Conn *c, Frame *f) {
        Worker *w = c->worker;
        kactor_id object;
        const char *method, *args;
        size_t method_len, args_len;
        uint64_t read_ns = 0;
        Object *o;

        if (!w || w->kind != WORKER_ACTOR || !w->ready || !w->actor ||
            frame_field_id(f, 0, CODEC_EXT_OBJECT, &object) < 0 || frame_field_str(f, 1, &method, &method_len) < 0 ||
            frame_field_u64(f, 2, &read_ns) < 0 || frame_args(f, &args, &args_len) < 0)
                return conn_protocol_error(c, "unexpected or malformed DIRECT");
        /* Only for the callers it was handed, in their ranges: a worker makes no object of its own
         * this way. */
        WorkerDirectCaller *dc = object.hi == c->manager->node_hi ? worker_direct_caller(w, object.lo & ~ID_SEQ_MASK)
                                                                  : NULL;
        if (!dc || (object.lo & ID_SEQ_MASK) == 0)
                return conn_protocol_error(c, "DIRECT for an object of no caller of this worker");
        Conn *holder = dc->conn;
        if (holder)
                holder->max_lo = MAX(holder->max_lo, object.lo);
        int r = actor_direct_call(w->actor, object, method, method_len, args, args_len, dc->uid, read_ns,
                                  !holder || holder->resumed || holder->direct_resent, &o);
        if (r < 0)
                return r == -ENOMEM ? r : conn_protocol_error(c, "DIRECT refused");
        if (o) {
                /* Held by its caller's connection, as if it had been sent there. */
                if (holder)
                        conn_own(holder, o);
                else
                        objstore_unref(&c->manager->store, o);
        }
        return 0;
}

static int handle_recalled(Conn *c, Frame *f) {
        _cleanup_free_ uint64_t *seqs = NULL;
        const msgpack_object *o = frame_field(f, 0);

        if (!c->worker || c->worker->kind != WORKER_TASK || !o || o->type != MSGPACK_OBJECT_ARRAY)
                return conn_protocol_error(c, "unexpected RECALLED");
        seqs = calloc(o->via.array.size ?: 1, sizeof(uint64_t));
        if (!seqs)
                return -ENOMEM;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
                if (o->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                        return conn_protocol_error(c, "malformed RECALLED");
                seqs[i] = o->via.array.ptr[i].via.u64;
        }
        tasks_recalled(c->worker, seqs, o->via.array.size);
        return 0;
}

int native_dispatch(Conn *c, Frame *f) {
        if (!c->welcomed) {
                if (f->type == MSG_ATTACH)
                        return handle_attach(c, f);
                if (f->type != MSG_HELLO)
                        return conn_protocol_error(c, "the first frame must be HELLO");
                return handle_hello(c, f);
        }
        switch (f->type) {
        case MSG_CREATE_ACTOR:
                return handle_create_actor(c, f);
        case MSG_GET_ACTOR:
                return handle_get_actor(c, f);
        case MSG_CALL:
                return handle_call(c, f);
        case MSG_SUBMIT:
                return handle_submit(c, f);
        case MSG_PUT:
                return handle_put(c, f);
        case MSG_GET:
                return handle_get(c, f, false);
        case MSG_WAIT:
                return handle_get(c, f, true);
        case MSG_RELEASE:
                return handle_release(c, f);
        case MSG_KILL:
                return handle_kill(c, f);
        case MSG_INIT_DONE:
                if (c->worker)
                        return handle_init_done(c, f);
                break;
        case MSG_RESULT:
                if (c->worker)
                        return handle_result(c, f);
                break;
        case MSG_RECALLED:
                if (c->worker)
                        return handle_recalled(c, f);
                break;
        case MSG_OPEN_DIRECT:
                return handle_open_direct(c, f);
        case MSG_DIRECT:
                if (c->worker)
                        return handle_direct(c, f);
                break;
        case MSG_DIRECT_CLOSED:
                if (c->worker)
                        return handle_direct_closed(c, f);
                break;
        }
        return conn_protocol_error(c, "unknown or unexpected frame type");
}

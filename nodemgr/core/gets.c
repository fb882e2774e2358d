/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Get and Wait: wait for objects, with a timeout, from a native connection or from D-Bus. */

#include <stdio.h>

#include "codec.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "probes.h"
#include "remote.h"

static size_t get_request_ready(const GetRequest *g) {
        size_t n = 0;
        for (size_t i = 0; i < g->n_objects; i++)
                n += g->objects[i]->state != OBJECT_PENDING;
        return n;
}

static bool get_request_satisfied(const GetRequest *g) {
        if (g->wait)
                return get_request_ready(g) >= g->num_returns;
        return g->waiter.remaining == 0;
}

static void get_object_done(Waiter *w, Object *o) {
        GetRequest *g = w->userdata;
        if (get_request_satisfied(g))
                get_request_complete(g, false);
}

static int on_get_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        get_request_complete(userdata, true);
        return 0;
}

int get_request_new(Manager *m, const kactor_id *ids, size_t n, bool wait, size_t num_returns,
                    uint64_t timeout_usec, GetRequest **ret, ReqError *e) {
        GetRequest *g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->manager = m;
        g->wait = wait;
        g->num_returns = num_returns;
        g->waiter = (Waiter){ .object_done = get_object_done, .userdata = g };
        g->objects = calloc(n ?: 1, sizeof(Object *));
        if (!g->objects) {
                free(g);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                Object *o = objstore_find(&m->store, ids[i]);
                if (!o && m->remote)
                        o = remote_fetch_object(m, ids[i]); /* made on a peer: its value is asked for */
                if (!o) {
                        char s[KACTOR_ID_STRING_MAX];
                        kactor_id_to_string(ids[i], s);
                        get_request_free(g);
                        return req_error(e, KACTOR_ERROR_NO_SUCH_OBJECT,
                                         "no object %s (never made, or released)", s);
                }
                objstore_ref(o);
                o->in_use++;
                g->objects[g->n_objects++] = o;
        }
        if (timeout_usec > 0) {
                int r = sd_event_add_time_relative(m->event, &g->timer, CLOCK_MONOTONIC, timeout_usec, 0,
                                                   on_get_timeout, g);
                /* A timeout past the end of the clock never comes: the request waits forever, as with 0. */
                if (r < 0 && r != -EOVERFLOW) {
                        get_request_free(g);
                        return r;
                }
                if (g->timer)
                        (void) sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
        }
        *ret = g;
        return 0;
}

int get_request_start(GetRequest *g) {
        for (size_t i = 0; i < g->n_objects; i++) {
                /* For Wait an evicted object is ready: it can be had. Get has it rebuilt. */
                if (g->wait && g->objects[i]->evicted)
                        continue;
                int r = objstore_wait_for(&g->manager->store, g->objects[i], &g->waiter);
                if (r < 0) {
                        get_request_free(g);
                        return r;
                }
        }
        if (get_request_satisfied(g)) {
                get_request_complete(g, false);
                return 0;
        }
        if (g->timer)
                (void) sd_event_source_set_enabled(g->timer, SD_EVENT_ONESHOT);
        return 0;
}

GetRequest *get_request_free(GetRequest *g) {
        if (!g)
                return NULL;
        Manager *m = g->manager;
        for (size_t i = 0; i < g->n_objects; i++) {
                objstore_unwait(g->objects[i], &g->waiter);
                g->objects[i]->in_use--;
                objstore_unref(&m->store, g->objects[i]);
        }
        free(g->objects);
        sd_event_source_disable_unref(g->timer);
        if (g->conn) {
                if (g->parked)
                        TAILQ_REMOVE(&g->conn->parked, g, parked_link);
                LIST_REMOVE(g, link);
                if (g->conn->worker)
                        tasks_worker_blocked(g->conn->worker, false);
        }
        sd_bus_message_unref(g->message);
        sd_bus_track_unref(g->track);
        free(g);
        return NULL;
}

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
static size_t get_request_values_size(const GetRequest *g) {
        size_t n = 0;
        for (size_t i = 0; i < g->n_objects; i++)
                if (g->objects[i]->state == OBJECT_READY)
                        n += g->objects[i]->len;
        return n;
}

/* At most how large the native reply will be, frame header included: what the output budget counts.
 * 64 covers the frame header, [REPLY, reqid, code, nil] and the list's head; 16 an error value's
 * framing. */
static size_t get_request_reply_size(const GetRequest *g, bool timed_out) {
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

static int get_request_reply_native(GetRequest *g, bool timed_out) {
        Conn *c = g->conn;
        int r;

        /* Refused before it is built: a Get may name one large object many times. */
        if (!g->wait && !timed_out && get_request_values_size(g) > PROTO_FRAME_MAX)
                return conn_send_reply_error(
                        c, g->reqid, KACTOR_ERROR_INVALID_ARGS,
                        "the values asked for are larger than a frame (64 MiB): get fewer at once");

        if (timed_out && !g->wait) {
                size_t ready = get_request_ready(g);
                char msg[160];
                snprintf(msg, sizeof(msg), "timed out: %zu of %zu object%s ready", ready, g->n_objects,
                         g->n_objects == 1 ? "" : "s");
                return conn_send_reply_error(c, g->reqid, KACTOR_ERROR_TIMEOUT, msg);
        }

        size_t off = frame_begin(&c->out);
        r = msgpack_pack_array(&c->pk, 4) < 0 || msgpack_pack_uint32(&c->pk, MSG_REPLY) < 0 ||
                        msgpack_pack_uint64(&c->pk, g->reqid) < 0 ||
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
                        c, g->reqid, KACTOR_ERROR_INVALID_ARGS,
                        "the values asked for are larger than a frame (64 MiB): get fewer at once");
        if (r >= 0)
                conn_mark_dirty(c);
        return r;
}

static void get_request_answer_native(GetRequest *g, bool timed_out) {
        int r = get_request_reply_native(g, timed_out);
        if (r < 0)
                log_warning_errno(r, "Failed to answer a Get: %m");
        get_request_free(g);
}

/* Its reply waits, with the objects it holds, until the client has read enough of what it was sent;
 * it is answered in order by get_request_answer_parked() from the connection's flush. */
static void get_request_park(GetRequest *g, bool timed_out) {
        for (size_t i = 0; i < g->n_objects; i++)
                objstore_unwait(g->objects[i], &g->waiter);
        if (g->timer)
                (void) sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
        g->parked = true;
        g->timed_out = timed_out;
        TAILQ_INSERT_TAIL(&g->conn->parked, g, parked_link);
        conn_mark_dirty(g->conn);
}

unsigned get_request_answer_parked(Conn *c) {
        unsigned n = 0;
        GetRequest *g;

        while ((g = TAILQ_FIRST(&c->parked)) && conn_output_room(c, get_request_reply_size(g, g->timed_out))) {
                TAILQ_REMOVE(&c->parked, g, parked_link);
                g->parked = false;
                get_request_answer_native(g, g->timed_out);
                n++;
        }
        return n;
}

void get_request_complete(GetRequest *g, bool timed_out) {
        KACTOR_PROBE(get_answered,
                     g->n_objects > 0 ? kactor_trace_id_hash(g->objects[0]->id.hi, g->objects[0]->id.lo) : 0,
                     g->n_objects, timed_out);
        if (g->conn) {
                if (!TAILQ_EMPTY(&g->conn->parked) ||
                    !conn_output_room(g->conn, get_request_reply_size(g, timed_out)))
                        get_request_park(g, timed_out);
                else
                        get_request_answer_native(g, timed_out);
                return;
        }
        if (g->message)
                (void) bus_get_request_reply(g, timed_out);
        get_request_free(g);
}

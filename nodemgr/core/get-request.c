/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Get and Wait: wait for objects, with a timeout. Whoever made the request (the native socket,
 * D-Bus) answers it through its reply() callback: this file knows neither. */

#include "access.h"
#include "cluster-hooks.h"
#include "get-request.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "probes.h"
#include "req-error.h"

size_t get_request_n_ready(const GetRequest *g) {
        size_t n = 0;
        for (size_t i = 0; i < g->n_objects; i++)
                n += g->objects[i]->state != OBJECT_PENDING;
        return n;
}

static bool get_request_satisfied(const GetRequest *g) {
        if (g->wait)
                return get_request_n_ready(g) >= g->num_returns;
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

int get_request_new(Manager *m, const kactor_id *ids, size_t n, uid_t uid, bool wait, size_t num_returns,
                    uint64_t timeout_usec, GetRequest **ret, ReqError *e) {
        GetRequest *g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->manager = m;
        g->uid = uid;
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
                if (!o)
                        o = cluster_hooks_fetch_object(m, ids[i]); /* made on a peer: its value is asked for */
                if (!o) {
                        char s[KACTOR_ID_STRING_MAX];
                        kactor_id_to_string(ids[i], s);
                        get_request_free(g);
                        return req_error(e, KACTOR_ERROR_NO_SUCH_OBJECT,
                                         OBJECT_UNKNOWN_FORMAT, s);
                }
                if (!access_object_allowed(o, uid)) {
                        int r = access_check_object(m, o, uid, e);
                        get_request_free(g);
                        return r;
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

const Object *get_request_denied(const GetRequest *g) {
        for (size_t i = 0; i < g->n_objects; i++)
                if (!access_object_allowed(g->objects[i], g->uid))
                        return g->objects[i];
        return NULL;
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
        if (g->done)
                g->done(g);
        free(g);
        return NULL;
}

void get_request_stop_waiting(GetRequest *g) {
        for (size_t i = 0; i < g->n_objects; i++)
                objstore_unwait(g->objects[i], &g->waiter);
        if (g->timer)
                (void) sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
}

void get_request_complete(GetRequest *g, bool timed_out) {
        KACTOR_PROBE(get_answered,
                     g->n_objects > 0 ? kactor_trace_id_hash(g->objects[0]->id.hi, g->objects[0]->id.lo) : 0,
                     g->n_objects, timed_out);
        if (g->reply)
                g->reply(g, timed_out);
        else
                get_request_free(g);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "direct-results.h"
#include "macro.h"
#include "manager.h"
#include "objstore.h"
#include "persist.h"
#include "transport.h"

#define DIRECT_RESULTS_SLOTS_MIN 256

_Static_assert(DIRECT_RESULT_MAX <= sizeof(((Object *) 0)->inline_data),
               "a result kept here would be evictable as an object");

static DirectResult *slot_of(DirectResults *t, uint64_t lo) {
        return &t->slots[(lo & ID_SEQ_MASK) & (t->n_slots - 1)];
}

static void slot_clear(Manager *m, DirectResult *d) {
        free(d->message);
        m->store.bytes -= d->len;
        m->store.n_elsewhere--;
        *d = (DirectResult){};
}

/* Doubles t's slots. Ids in distinct slots stay in distinct slots. */
static int grow(DirectResults *t) {
        size_t n = t->n_slots ? t->n_slots * 2 : DIRECT_RESULTS_SLOTS_MIN;
        DirectResult *slots = calloc(n, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        DirectResults bigger = { .slots = slots, .n_slots = n, .n = t->n };
        for (size_t i = 0; i < t->n_slots; i++)
                if (t->slots[i].lo != 0)
                        *slot_of(&bigger, t->slots[i].lo) = t->slots[i];
        free(t->slots);
        *t = bigger;
        return 0;
}

/* An id travels as a fixext16, 18 bytes: a value kept here is too short to name an object or actor. */
_Static_assert(DIRECT_RESULT_MAX < 18, "a result kept here could name an object or actor");

int direct_results_put(Manager *m, Conn *c, uint64_t lo, kactor_error code, const char *message, const char *data,
                       size_t len) {
        /* A placeholder of a client not back since a restart hands its objects to the connection
         * that takes its session over (conn_take_over()): an object, then. */
        if (!c || c->dead || c->ghost || (lo & ID_SEQ_MASK) == 0 || code > UINT16_MAX)
                return 0;
        if (code == KACTOR_OK && (!data || len > DIRECT_RESULT_MAX))
                return 0;
        if (!c->direct_results) {
                c->direct_results = calloc(1, sizeof(DirectResults));
                if (!c->direct_results)
                        return -ENOMEM;
                HASH_ADD(hh_direct, m->direct_result_conns, id_prefix, sizeof(c->id_prefix), c);
        }
        DirectResults *t = c->direct_results;
        if (t->n_slots == 0 && grow(t) < 0)
                return -ENOMEM;
        DirectResult *d = slot_of(t, lo);
        while (d->lo != 0) {
                /* An older result still held there (or this id again: not kept twice). */
                if (d->lo == lo || t->n_slots >= DIRECT_RESULTS_SLOTS_MAX || t->n < t->n_slots / 8)
                        return 0;
                if (grow(t) < 0)
                        return -ENOMEM;
                d = slot_of(t, lo);
        }

        DirectResult n = { .lo = lo, .error = (uint16_t) code };
        if (code != KACTOR_OK) {
                n.message = strdup(message ?: "failed");
                if (!n.message)
                        return -ENOMEM;
        } else {
                memcpy(n.data, data, len);
                n.len = (uint8_t) len;
        }
        *d = n;
        t->n++;
        m->store.n_elsewhere++;
        m->store.bytes += n.len;
        d->persisted = persist_direct_result(m, c, d);
        return 1;
}

bool direct_results_release(Manager *m, Conn *c, uint64_t lo) {
        DirectResults *t = c->direct_results;
        if (!t || t->n == 0)
                return false;
        DirectResult *d = slot_of(t, lo);
        if (d->lo != lo)
                return false;
        if (d->persisted)
                persist_direct_result_freed(m, (kactor_id){ m->node_hi, lo });
        slot_clear(m, d);
        t->n--;
        return true;
}

Object *direct_results_take(Manager *m, kactor_id id) {
        uint64_t prefix = id.lo & ~ID_SEQ_MASK;
        Conn *c;

        if (id.hi != m->node_hi || !m->transport)
                return NULL;
        HASH_FIND(hh_direct, m->direct_result_conns, &prefix, sizeof(prefix), c);
        DirectResults *t = c ? c->direct_results : NULL;
        if (!t || t->n == 0)
                return NULL;
        DirectResult *d = slot_of(t, id.lo);
        if (d->lo != id.lo)
                return NULL;

        /* Out of the table first: the store looks the id up again to add it. */
        DirectResult kept = *d;
        *d = (DirectResult){};
        t->n--;
        m->store.n_elsewhere--;
        m->store.bytes -= kept.len; /* the object counts it */
        Object *o;
        int r = objstore_add_finished(&m->store, id, (kactor_error) kept.error, kept.message, kept.data, kept.len,
                                      &o);
        free(kept.message);
        if (r < 0) {
                /* Out of memory: it is gone as if released (its record says so). */
                if (kept.persisted)
                        persist_direct_result_freed(m, id);
                return NULL;
        }
        o->uid = c->uid;
        o->persisted = kept.persisted;
        o->persisted_owner = kept.persisted ? c->id_prefix : 0;
        m->transport->own(c, o);
        return o;
}

void direct_results_free_all(Manager *m, Conn *c) {
        DirectResults *t = TAKE_PTR(c->direct_results);
        if (!t)
                return;
        HASH_DELETE(hh_direct, m->direct_result_conns, c);
        for (size_t i = 0; i < t->n_slots && t->n > 0; i++) {
                DirectResult *d = &t->slots[i];
                if (d->lo == 0)
                        continue;
                if (d->persisted)
                        persist_direct_result_freed(m, (kactor_id){ m->node_hi, d->lo });
                slot_clear(m, d);
                t->n--;
        }
        free(t->slots);
        free(t);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "objstore.h"

void objstore_init(ObjectStore *s, const ObjectStoreOps *ops, void *userdata) {
        *s = (ObjectStore){ .ops = ops, .userdata = userdata };
}

static void object_free_data(Object *o) {
        if (o->data != o->inline_data)
                free(o->data);
        o->data = NULL;
}

static void object_free_contents(Object *o) {
        object_free_data(o);
        free(o->message);
        free(o->contained);
        free(o->contained_actor);
        free(o->waiters);
        free(o);
}

void objstore_done(ObjectStore *s) {
        Object *o, *tmp;
        HASH_ITER(hh, s->objects, o, tmp) {
                if (s->ops && s->ops->object_freed)
                        s->ops->object_freed(s->userdata, o);
                HASH_DEL(s->objects, o);
                object_free_contents(o);
        }
        s->n_objects = 0;
        s->bytes = 0;
}

Object *objstore_find(ObjectStore *s, kactor_id id) {
        Object *o;
        HASH_FIND(hh, s->objects, &id, sizeof(id), o);
        if (!o && s->n_elsewhere > 0 && s->ops && s->ops->find_elsewhere)
                o = s->ops->find_elsewhere(s->userdata, id);
        return o;
}

int objstore_add(ObjectStore *s, kactor_id id, Object **ret) {
        if (objstore_find(s, id))
                return -EEXIST;
        Object *o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->id = id;
        o->refs = 1;
        o->state = OBJECT_PENDING;
        HASH_ADD(hh, s->objects, id, sizeof(o->id), o);
        s->n_objects++;
        *ret = o;
        return 0;
}

/* o becomes READY with its value: the copy made for it (taken), or data in its own record. */
static void object_set_value(ObjectStore *s, Object *o, char **copy, const void *data, size_t len) {
        if (*copy)
                o->data = TAKE_PTR(*copy);
        else {
                memcpy(o->inline_data, data, len);
                o->data = o->inline_data;
        }
        o->len = len;
        o->state = OBJECT_READY;
        s->bytes += len;
}

int objstore_add_finished(ObjectStore *s, kactor_id id, kactor_error code, const char *message, const void *data,
                          size_t len, Object **ret) {
        _cleanup_free_ char *copy = NULL, *msg = NULL;
        Object *o;

        if (code != KACTOR_OK) {
                msg = strdup(message ?: "failed");
                if (!msg)
                        return -ENOMEM;
        } else if (len > sizeof(o->inline_data)) {
                copy = memdup(data, len);
                if (!copy)
                        return -ENOMEM;
        }
        int r = objstore_add(s, id, &o);
        if (r < 0)
                return r;
        if (code != KACTOR_OK) {
                o->state = OBJECT_FAILED;
                o->error = code;
                o->message = TAKE_PTR(msg);
        } else
                object_set_value(s, o, &copy, data, len);
        *ret = o;
        return 0;
}

static void lru_remove(ObjectStore *s, Object *o);
static void lru_append(ObjectStore *s, Object *o);

static void objstore_notify(ObjectStore *s, Object *o) {
        if (s->ops && s->ops->object_done)
                s->ops->object_done(s->userdata, o);
        /* Waiters may unregister themselves and others from their callbacks, and free themselves:
         * while o is not pending, objstore_unwait() clears entries instead of moving them and
         * objstore_wait_for() adds none, so the list stays put while we walk it. A waiter may also
         * drop the last reference to o: it lives until every waiter has been told. */
        objstore_ref(o);
        for (size_t i = 0; i < o->n_waiters; i++) {
                Waiter *w = o->waiters[i];
                if (!w)
                        continue;
                o->waiters[i] = NULL;
                if (w->remaining > 0)
                        w->remaining--;
                w->object_done(w, o);
        }
        free(o->waiters);
        o->waiters = NULL;
        o->n_waiters = o->n_waiters_allocated = 0;
        objstore_unref(s, o);
}

int objstore_set_ready(ObjectStore *s, Object *o, const void *data, size_t len, const kactor_id *ids,
                       const uint8_t *is_actor, size_t n_ids) {
        if (o->state != OBJECT_PENDING)
                return -EALREADY;

        _cleanup_free_ char *copy = NULL;
        _cleanup_free_ kactor_id *contained = NULL;
        _cleanup_free_ uint8_t *kinds = NULL;
        if (len > sizeof(o->inline_data)) {
                copy = malloc(len);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, data, len);
        }
        if (n_ids > 0) {
                contained = malloc(n_ids * sizeof(kactor_id));
                kinds = malloc(n_ids);
                if (!contained || !kinds)
                        return -ENOMEM;
                memcpy(contained, ids, n_ids * sizeof(kactor_id));
                memcpy(kinds, is_actor, n_ids);
        }

        /* Hold what the value names before anyone can see it, and keep only what was held: an id
         * that names nothing yet (or this object itself) must not be released when this object goes. */
        size_t kept = 0;
        for (size_t i = 0; i < n_ids; i++) {
                bool held;
                if (kinds[i])
                        held = s->ops && s->ops->actor_ref && s->ops->actor_ref(s->userdata, contained[i]);
                else {
                        /* A value that names its own object does not hold it: that reference could
                         * never be dropped, and the object would outlive everyone who had it. */
                        Object *inner = objstore_find(s, contained[i]);
                        if (inner == o)
                                inner = NULL;
                        if (inner)
                                objstore_ref(inner);
                        held = inner;
                }
                if (held) {
                        contained[kept] = contained[i];
                        kinds[kept] = kinds[i];
                        kept++;
                }
        }
        n_ids = kept;

        object_set_value(s, o, &copy, data, len);
        o->contained = TAKE_PTR(contained);
        o->contained_actor = TAKE_PTR(kinds);
        o->n_contained = n_ids;
        if (o->rebuilding) {
                o->rebuilding = false;
                s->n_rebuilt++;
        }
        if (o->origin && o->data != o->inline_data && o->n_contained == 0) {
                /* Rebuilt, or made by something that can make it again; tiny values stay. */
                o->evictable = true;
                lru_append(s, o);
        }
        objstore_notify(s, o);
        return 0;
}

int objstore_set_failed(ObjectStore *s, Object *o, kactor_error code, const char *message) {
        if (o->state != OBJECT_PENDING)
                return -EALREADY;
        o->message = strdup(message ?: "");
        if (!o->message)
                return -ENOMEM;
        o->error = code;
        o->state = OBJECT_FAILED;
        objstore_notify(s, o);
        return 0;
}

void objstore_ref(Object *o) {
        o->refs++;
}

Object *objstore_unref(ObjectStore *s, Object *o) {
        if (!o)
                return NULL;
        if (o->refs > 1) {
                o->refs--;
                return NULL;
        }
        o->refs = 0;

        if (s->ops && s->ops->object_freed)
                s->ops->object_freed(s->userdata, o);

        HASH_DEL(s->objects, o);
        s->n_objects--;
        lru_remove(s, o);
        if (o->state == OBJECT_READY && !o->evicted)
                s->bytes -= o->len;

        /* Release what the value named; nested objects may go in turn. */
        kactor_id *ids = TAKE_PTR(o->contained);
        uint8_t *kinds = TAKE_PTR(o->contained_actor);
        size_t n = o->n_contained;
        object_free_contents(o);

        for (size_t i = 0; i < n; i++) {
                if (kinds[i]) {
                        if (s->ops && s->ops->actor_unref)
                                s->ops->actor_unref(s->userdata, ids[i]);
                } else
                        objstore_unref(s, objstore_find(s, ids[i]));
        }
        free(ids);
        free(kinds);
        return NULL;
}

static void lru_remove(ObjectStore *s, Object *o) {
        if (o->lru_prev)
                o->lru_prev->lru_next = o->lru_next;
        else if (s->lru_head == o)
                s->lru_head = o->lru_next;
        else
                return; /* not listed */
        if (o->lru_next)
                o->lru_next->lru_prev = o->lru_prev;
        else
                s->lru_tail = o->lru_prev;
        o->lru_prev = o->lru_next = NULL;
}

static void lru_append(ObjectStore *s, Object *o) {
        o->lru_next = NULL;
        o->lru_prev = s->lru_tail;
        if (s->lru_tail)
                s->lru_tail->lru_next = o;
        else
                s->lru_head = o;
        s->lru_tail = o;
}

void objstore_set_evictable(ObjectStore *s, Object *o) {
        /* A value that names actors or objects stays: a rebuilt one would name others. */
        if (o->state != OBJECT_READY || o->evicted || o->evictable || o->data == o->inline_data ||
            o->n_contained > 0)
                return;
        o->evictable = true;
        lru_append(s, o);
}

void objstore_touch(ObjectStore *s, Object *o) {
        if (!o->evictable || o->evicted || s->lru_tail == o)
                return;
        lru_remove(s, o);
        lru_append(s, o);
}

size_t objstore_evict(ObjectStore *s) {
        size_t n = 0;

        Object *next;
        for (Object *o = s->lru_head; o && s->max_bytes > 0 && s->bytes > s->max_bytes; o = next) {
                next = o->lru_next;
                if (o->in_use > 0)
                        continue;
                lru_remove(s, o);
                if (o->spilled && (!s->ops || !s->ops->spill || s->ops->spill(s->userdata, o) < 0)) {
                        /* Cannot be written out: it stays, out of the LRU list. */
                        o->evictable = false;
                        continue;
                }
                s->bytes -= o->len;
                object_free_data(o);
                o->evicted = true;
                s->n_evicted++;
                n++;
        }
        return n;
}

void objstore_set_resident(ObjectStore *s, Object *o, char *data) {
        o->data = data;
        o->evicted = false;
        s->bytes += o->len;
        lru_append(s, o);
}

static void object_release_contained(ObjectStore *s, Object *o) {
        kactor_id *ids = TAKE_PTR(o->contained);
        uint8_t *kinds = TAKE_PTR(o->contained_actor);
        size_t n = o->n_contained;
        o->n_contained = 0;
        for (size_t i = 0; i < n; i++) {
                if (kinds[i]) {
                        if (s->ops && s->ops->actor_unref)
                                s->ops->actor_unref(s->userdata, ids[i]);
                } else
                        objstore_unref(s, objstore_find(s, ids[i]));
        }
        free(ids);
        free(kinds);
}

void objstore_set_rebuilding(ObjectStore *s, Object *o) {
        o->rebuilding = true;
        o->evicted = false;
        o->evictable = false;
        o->state = OBJECT_PENDING;
        o->len = 0;
        object_release_contained(s, o);
}

int objstore_make_resident(ObjectStore *s, Object *o) {
        if (o->state != OBJECT_READY || !o->evicted)
                return o->state == OBJECT_PENDING ? 1 : 0;
        int r = s->ops && s->ops->restore ? s->ops->restore(s->userdata, o) : -EOPNOTSUPP;
        if (r < 0)
                return r;
        return o->state == OBJECT_PENDING ? 1 : 0;
}

int objstore_wait_for(ObjectStore *s, Object *o, Waiter *w) {
        if (o->evicted)
                (void) objstore_make_resident(s, o);
        if (o->state != OBJECT_PENDING)
                return 0;
        for (size_t i = 0; i < o->n_waiters; i++)
                if (o->waiters[i] == w)
                        return 1; /* the same object named twice: wait for it once */
        if (o->n_waiters == o->n_waiters_allocated) {
                size_t n = MAX(o->n_waiters_allocated * 2, (size_t) 2);
                Waiter **p = realloc(o->waiters, n * sizeof(Waiter *));
                if (!p)
                        return -ENOMEM;
                o->waiters = p;
                o->n_waiters_allocated = n;
        }
        o->waiters[o->n_waiters++] = w;
        w->remaining++;
        return 1;
}

void objstore_unwait(Object *o, Waiter *w) {
        for (size_t i = 0; i < o->n_waiters; i++)
                if (o->waiters[i] == w) {
                        if (o->state == OBJECT_PENDING)
                                o->waiters[i] = o->waiters[--o->n_waiters];
                        else
                                o->waiters[i] = NULL; /* being notified: see objstore_notify() */
                        if (w->remaining > 0)
                                w->remaining--;
                        return;
                }
}

const char *object_state_to_string(ObjectState s) {
        switch (s) {
        case OBJECT_PENDING:
                return "pending";
        case OBJECT_READY:
                return "ready";
        case OBJECT_FAILED:
                return "failed";
        }
        return "unknown";
}

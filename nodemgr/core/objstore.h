/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The object store: every object (the future result of a call or task, or a put value) by id, with
 * its state, its packed value, who holds it, and who waits for it. Pure bookkeeping: no I/O, no
 * D-Bus; waiters are told through callbacks.
 *
 * Reference counting: an object lives while it has holders — connections that hold it, a D-Bus pin
 * (objects made over D-Bus live until Release), values and call arguments that contain it, and the
 * call that will produce it. The ids contained in an object's value (actor handles, nested
 * references) are held by the object and released when it goes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "hashmap.h"

#include "kactor/value.h"

typedef enum ObjectState {
        OBJECT_PENDING,
        OBJECT_READY,
        OBJECT_FAILED,
} ObjectState;

typedef struct Object Object;

/* What a request naming an object the store does not have is told (the id as a string). */
#define OBJECT_UNKNOWN_FORMAT "no object %s (never made, or released)"

#define OBJECT_UID_UNKNOWN ((uid_t) -1)
typedef struct Waiter Waiter;
typedef struct ObjectStore ObjectStore;

/* Someone waiting for objects: a Get, a Wait, or a call whose arguments are not ready yet. */
struct Waiter {
        /* Called once per object that became ready (or failed) while this waiter waits for it. */
        void (*object_done)(Waiter *w, Object *o);
        void *userdata;
        unsigned remaining; /* objects still pending; maintained by objstore_wait_for() and done */
};

struct Object {
        kactor_id id;
        UT_hash_handle hh;
        ObjectState state;
        unsigned refs;

        char *data; /* READY: the packed value */
        size_t len;
        kactor_error error; /* FAILED */
        char *message;

        kactor_id *contained;     /* ids inside the value, held by this object */
        uint8_t *contained_actor; /* per contained id: 1 actor handle, 0 object */
        size_t n_contained;

        Waiter **waiters;
        size_t n_waiters, n_waiters_allocated;

        /* Who may read it: the user who made it, or called for it (access.c). A copy fetched from a
         * peer learns it with its value. */
        uid_t uid;
        bool pinned;                     /* made over D-Bus: held until Release */
        bool awaited;                    /* a placeholder (manager_await_result()) */
        bool persisted;                  /* in the state journal (persist.c) */
        uint64_t persisted_owner;        /* the owner's id prefix the journal has for it (0: none) */
        void *owner;                     /* the connection that made it and holds it (one reference) */
        Object *owner_next, *owner_prev; /* the owner's list */

        /* Eviction: READY objects whose value can be had again (rebuilt from lineage, or read back
         * from where it was spilled) are kept in LRU order; an evicted one is READY without data. */
        bool evictable;
        bool evicted;
        unsigned in_use; /* being read (a Get in progress): not evicted meanwhile */
        bool rebuilding; /* evicted, and being made again */
        bool spilled;    /* the value is in a file (a put) */
        Object *lru_prev, *lru_next;
        void *origin;         /* how to rebuild it: the manager's, freed through ops->object_freed */
        char inline_data[16]; /* small values live here, without an allocation of their own */
};

typedef struct ObjectStoreOps {
        /* A contained actor handle gained a holder: true when the actor exists (else the id is not
         * kept, so nothing is released for it later). */
        bool (*actor_ref)(void *userdata, kactor_id actor);
        /* ... or lost one. */
        void (*actor_unref)(void *userdata, kactor_id actor);
        /* An object is about to be freed. */
        void (*object_freed)(void *userdata, Object *o);
        /* An object became ready or failed. */
        void (*object_done)(void *userdata, Object *o);
        /* Evicting a spilled-kind object: write its value out. 0 when done (the data may go). */
        int (*spill)(void *userdata, Object *o);
        /* Someone needs an evicted object: read it back (and return 0, still READY) or start
         * rebuilding it (objstore_set_rebuilding(), then later ready or failed). */
        int (*restore)(void *userdata, Object *o);
        /* An id the table lacks while n_elsewhere > 0: the object, made now from what is kept for it
         * elsewhere (direct-results.h), or NULL. */
        Object *(*find_elsewhere)(void *userdata, kactor_id id);
} ObjectStoreOps;

struct ObjectStore {
        Object *objects; /* uthash by id */
        size_t n_objects;
        size_t bytes;                /* sum of resident READY data */
        size_t max_bytes;            /* evict past this; 0: never */
        Object *lru_head, *lru_tail; /* evictable resident objects, least recently used first */
        uint64_t n_evicted, n_rebuilt;
        size_t n_elsewhere; /* finished values kept outside the table, made objects when named */
        const ObjectStoreOps *ops;
        void *userdata;
};

void objstore_init(ObjectStore *s, const ObjectStoreOps *ops, void *userdata);
/* Frees every object (no callbacks for actors). */
void objstore_done(ObjectStore *s);

/* The object with this id, made now when it is kept elsewhere (ObjectStoreOps.find_elsewhere). */
Object *objstore_find(ObjectStore *s, kactor_id id);

/* Adds a PENDING object with one reference (its creator's). -EEXIST if the id is taken. */
int objstore_add(ObjectStore *s, kactor_id id, Object **ret);

/* Adds a finished object (ready with a copy of data, or failed with code and message) whose value
 * names nothing, without telling anyone: for one kept elsewhere until now, whose journal record
 * exists already. -EEXIST if the id is taken. */
int objstore_add_finished(ObjectStore *s, kactor_id id, kactor_error code, const char *message, const void *data,
                          size_t len, Object **ret);

/* Sets a pending object's value (copied) and the ids inside it (held from now on), then tells its
 * waiters. -EALREADY if it is not pending. */
int objstore_set_ready(ObjectStore *s, Object *o, const void *data, size_t len, const kactor_id *ids,
                       const uint8_t *is_actor, size_t n_ids);
/* Marks a pending object failed with a copied message, then tells its waiters. */
int objstore_set_failed(ObjectStore *s, Object *o, kactor_error code, const char *message);

void objstore_ref(Object *o);
/* Drops a reference; frees the object at zero. Returns NULL. */
Object *objstore_unref(ObjectStore *s, Object *o);

/* Registers w for o when o is pending (w->remaining grows by one). Returns 1 when registered, 0 when
 * o is done already. An evicted object is restored or rebuilt first (see ObjectStoreOps.restore). */
int objstore_wait_for(ObjectStore *s, Object *o, Waiter *w);

/* Makes a READY object evictable (its value can be had again) and puts it last in LRU order. */
void objstore_set_evictable(ObjectStore *s, Object *o);
/* Marks a use: last in LRU order. */
void objstore_touch(ObjectStore *s, Object *o);
/* Evicts least recently used objects while the store holds more than its limit. Returns how many. */
size_t objstore_evict(ObjectStore *s);
/* Makes a READY object resident again when it is evicted: restores or starts rebuilding it.
 * Returns 0 when its data is there, 1 when it is being rebuilt (PENDING now), or a negative errno
 * (then the object has FAILED with the reason). */
int objstore_make_resident(ObjectStore *s, Object *o);
/* For ops->restore: the evicted object becomes PENDING again while it is rebuilt; its contained
 * ids are released (the rebuilt value brings its own). */
void objstore_set_rebuilding(ObjectStore *s, Object *o);
/* For ops->restore of spilled objects: the value is back. */
void objstore_set_resident(ObjectStore *s, Object *o, char *data);
/* Unregisters w from o (no-op when not registered). */
void objstore_unwait(Object *o, Waiter *w);

const char *object_state_to_string(ObjectState s);

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Eviction and reconstruction. Past --object-store-memory the store evicts the least recently used
 * objects whose value can be had again: a put's value is spilled to a file under the runtime
 * directory; a task's result is dropped and the task runs again from its lineage when someone needs
 * it; an actor call's result is dropped and rebuilt by replaying the actor's lineage up to that call
 * in a temporary worker (actor_rebuild_object()) — never by running the call again on the live
 * actor.
 */

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "actor.h"
#include "call.h"
#include "direct-results.h"
#include "eviction.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "req-error.h"
#include "tasks.h"

typedef enum OriginKind {
        ORIGIN_PUT,
        ORIGIN_TASK,
        ORIGIN_ACTOR_CALL,
} OriginKind;

typedef struct Origin {
        OriginKind kind;
        /* ORIGIN_TASK: what to run again (arguments as the worker got them) */
        char *module;
        char *function;
        char *args;
        size_t args_len;
        uid_t uid; /* the user it ran as */
        gid_t gid;
        /* ORIGIN_ACTOR_CALL */
        kactor_id actor;
        uint64_t index;
} Origin;

static void origin_free(Origin *o) {
        if (!o)
                return;
        free(o->module);
        free(o->function);
        free(o->args);
        free(o);
}

static char *spill_path(Manager *m, const Object *o) {
        char id[KACTOR_ID_STRING_MAX], *p;
        kactor_id_to_string(o->id, id);
        if (asprintf(&p, "%s/spill/%s", m->runtime_dir, id) < 0)
                return NULL;
        return p;
}

static int eviction_spill(void *userdata, Object *o) {
        Manager *m = userdata;
        _cleanup_free_ char *dir = NULL, *path = spill_path(m, o);
        _cleanup_close_ int fd = -1;

        if (!path || asprintf(&dir, "%s/spill", m->runtime_dir) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        for (size_t done = 0; done < o->len;) {
                ssize_t n = write(fd, o->data + done, o->len - done);
                if (n < 0) {
                        int r = negative_errno();
                        (void) unlink(path);
                        return r;
                }
                done += (size_t) n;
        }
        return 0;
}

static int eviction_read_back(Manager *m, Object *o) {
        _cleanup_free_ char *path = spill_path(m, o);
        _cleanup_close_ int fd = -1;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        char *data = malloc(o->len ?: 1);
        if (!data)
                return -ENOMEM;
        for (size_t done = 0; done < o->len;) {
                ssize_t n = read(fd, data + done, o->len - done);
                if (n <= 0) {
                        free(data);
                        return n < 0 ? negative_errno() : -EIO;
                }
                done += (size_t) n;
        }
        objstore_set_resident(&m->store, o, data);
        (void) unlink(path);
        return 0;
}

static void eviction_fail(Manager *m, Object *o, const char *why) {
        char id[KACTOR_ID_STRING_MAX];
        _cleanup_free_ char *msg = NULL;
        kactor_id_to_string(o->id, id);
        if (asprintf(&msg, "object %s was evicted and cannot be rebuilt: %s", id, why) < 0)
                msg = NULL;
        objstore_set_rebuilding(&m->store, o);
        (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_OBJECT, msg ?: why);
}

static int eviction_restore(void *userdata, Object *o) {
        Manager *m = userdata;
        Origin *origin = o->origin;
        ReqError e = {};
        int r;

        if (!origin) {
                eviction_fail(m, o, "nothing records how it was made");
                return -ENOENT;
        }
        switch (origin->kind) {
        case ORIGIN_PUT:
                r = eviction_read_back(m, o);
                if (r < 0) {
                        eviction_fail(m, o, "its spilled copy could not be read back");
                        return r;
                }
                return 0;

        case ORIGIN_TASK: {
                /* Run the task again: its arguments are kept as the worker got them. */
                Call *c;
                objstore_set_rebuilding(&m->store, o);
                r = call_new(m, o, origin->args, origin->args_len, &c, &e);
                if (r >= 0) {
                        c->module = strdup(origin->module);
                        c->method = strdup(origin->function);
                        c->uid = origin->uid;
                        c->gid = origin->gid;
                        if (!c->module || !c->method) {
                                call_free(m, c);
                                r = -ENOMEM;
                        }
                }
                if (r < 0) {
                        (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_OBJECT,
                                                   e.message ?: "the task could not be submitted again");
                        req_error_done(&e);
                        return r;
                }
                c->top_refs = false; /* resolved already */
                tasks_call_ready(c);
                return 0;
        }

        case ORIGIN_ACTOR_CALL: {
                Actor *a = manager_find_actor(m, origin->actor);
                _cleanup_free_ char *why = NULL;
                if (!a || a->state == ACTOR_DEAD) {
                        eviction_fail(m, o, "the actor that made it is dead, and its lineage is gone");
                        return -ENOENT;
                }
                r = actor_rebuild_object(a, o, origin->index, &why);
                if (r < 0) {
                        eviction_fail(m, o, why ?: strerror(-r));
                        return r;
                }
                return 0;
        }
        }
        return -EINVAL;
}

static void eviction_object_freed(void *userdata, Object *o) {
        Manager *m = userdata;
        Origin *origin = o->origin;
        persist_object_freed(m, o);
        if (origin && origin->kind == ORIGIN_PUT && o->evicted) {
                _cleanup_free_ char *path = spill_path(m, o);
                if (path)
                        (void) unlink(path);
        }
        origin_free(origin);
        o->origin = NULL;
}

static void object_set_origin(Manager *m, Object *o, Origin *origin) {
        origin_free(o->origin);
        o->origin = origin;
        objstore_set_evictable(&m->store, o);
}

void eviction_note_put(Manager *m, Object *o) {
        Origin *origin = calloc(1, sizeof(*origin));
        if (!origin)
                return; /* then it is simply never evicted */
        origin->kind = ORIGIN_PUT;
        o->spilled = true;
        object_set_origin(m, o, origin);
}

void eviction_note_task(Manager *m, Object *o, const Call *c) {
        Origin *origin = calloc(1, sizeof(*origin));
        if (!origin)
                return;
        origin->kind = ORIGIN_TASK;
        origin->module = strdup(c->module);
        origin->function = strdup(c->method);
        origin->args = malloc(c->args_len ?: 1);
        if (!origin->module || !origin->function || !origin->args) {
                origin_free(origin);
                return;
        }
        memcpy(origin->args, c->args, c->args_len);
        origin->args_len = c->args_len;
        origin->uid = c->uid;
        origin->gid = c->gid;
        object_set_origin(m, o, origin);
}

void eviction_note_actor_call(Manager *m, Object *o, kactor_id actor, uint64_t index) {
        /* A result that is finished and that objstore_set_evictable() refuses (failed, kept inside its
         * object, or naming others) is never evicted, so nothing needs to say how to make it again:
         * most results are such small values, and this runs for every logged call. A pending one (a
         * replicated actor's, delivered later) gets its origin. */
        if (o->state == OBJECT_FAILED ||
            (o->state == OBJECT_READY && (o->data == o->inline_data || o->n_contained > 0)))
                return;
        Origin *origin = calloc(1, sizeof(*origin));
        if (!origin)
                return;
        origin->kind = ORIGIN_ACTOR_CALL;
        origin->actor = actor;
        origin->index = index;
        object_set_origin(m, o, origin);
}

/* A finished object goes into the state journal (persist.c). */
static void eviction_object_done(void *userdata, Object *o) {
        persist_object(userdata, o);
}

void eviction_setup(Manager *m, uint64_t max_bytes) {
        static const ObjectStoreOps ops = {
                .actor_ref = (bool (*)(void *, kactor_id)) actor_ref_id,
                .actor_unref = (void (*)(void *, kactor_id)) actor_unref_id,
                .object_freed = eviction_object_freed,
                .object_done = eviction_object_done,
                .spill = eviction_spill,
                .restore = eviction_restore,
                .find_elsewhere = (Object * (*) (void *, kactor_id)) direct_results_take,
        };
        m->store.ops = &ops;
        m->store.max_bytes = max_bytes;
}

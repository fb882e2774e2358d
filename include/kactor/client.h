/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libkactor: the client API.
 *
 * A kactor_client is one connection to a node manager over its unix socket (the native protocol;
 * see docs/protocol.md). It is not thread-safe: use one client per thread. Inside an actor or a
 * task, kactor_ctx_client() gives the worker's own client, which talks to the node manager over the
 * worker's connection.
 *
 * Calls return at once with a reference to the future result (kactor_ref); kactor_get() waits for
 * results. Calls on one actor run one at a time in the order they were made; calls on different
 * actors run in parallel.
 *
 * References and handles: the node manager counts, per connection, which actors and objects this
 * client holds (it gained them by creating, calling, putting, submitting, or by receiving them in a
 * value). kactor_actor_release() and kactor_ref_release() drop them; closing the client drops
 * everything it held. An actor that is not detached stops once no handle to it is left anywhere.
 *
 * Errors: functions return 0 (or a positive count) on success and a negative errno on failure.
 * When the node manager refused a request, the return is -EREMOTEIO and kactor_client_error()
 * says which kactor_error and why. Results of calls that failed are error values (see
 * kactor_value_is_error()).
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <kactor/value.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kactor_client kactor_client;

/* An actor handle and an object reference: small, plain structs, copied freely. */
typedef struct kactor_actor {
        kactor_id id;
} kactor_actor;

typedef struct kactor_ref {
        kactor_id id;
} kactor_ref;

#define KACTOR_DEFAULT_SOCKET "/run/kactor/nodemgr.sock"

struct kactor_connect_opts {
        size_t sz;                /* sizeof(struct kactor_connect_opts) */
        const char *socket_path;  /* default: $KACTOR_SOCKET, else KACTOR_DEFAULT_SOCKET */
        int reconnect_timeout_ms; /* how long to try to connect again when the connection breaks:
                                   * 0: $KACTOR_RECONNECT_TIMEOUT_MS, else 30000; negative: never */
        int direct_calls;         /* calls to actors on this node go straight to their workers
                                   * (docs/protocol.md, "Direct calls"): 0: unless
                                   * $KACTOR_DIRECT_CALLS is 0; negative: never; positive: always */
};

/*
 * Connects to the node manager. Returns 0 and a client, or a negative errno: -EACCES when the node
 * manager refuses the caller (only root, its own user and members of its access group, "kactor" by
 * default, may use it).
 *
 * The node manager may restart (an upgrade, a crash) while its actors go on running. When the
 * connection breaks, the client connects to the same socket again by itself, trying 10 ms apart at
 * first and 500 ms apart at most, for up to reconnect_timeout_ms, and asks for its session back.
 * It then sends again the calls, tasks and puts the node manager may not have had (those whose
 * value no kactor_get() delivered and that were not released; the node manager runs none twice)
 * and the request it was waiting on, and goes on: the caller sees nothing but the delay. A
 * kactor_create_actor() that was sent but not answered fails with -ECONNRESET (the actor may or
 * may not exist). When the node manager lost the session, the objects of the calls that had no
 * result yet give an error value, KACTOR_ERROR_NO_SUCH_OBJECT "the node manager restarted and lost
 * this client's session", and the client goes on with a new session. When the node manager does
 * not come back in time the call fails with -ECONNRESET, and the next call tries again. Copies of
 * those frames, up to 256 MiB, are the memory this costs.
 */
int kactor_connect(const struct kactor_connect_opts *opts, kactor_client **ret);

/* Closes the connection; the node manager releases every handle and reference it held. Accepts
 * NULL; returns NULL. Must not be called on the client of kactor_ctx_client(). */
kactor_client *kactor_client_free(kactor_client *c);

/* The last error the node manager reported to this client, and its message ("" if none). */
kactor_error kactor_client_error(const kactor_client *c);
const char *kactor_client_error_message(const kactor_client *c);

/* The node this client is connected to. */
const char *kactor_client_node_id(const kactor_client *c);

struct kactor_actor_opts {
        size_t sz;          /* sizeof(struct kactor_actor_opts) */
        uint32_t num_gpus;  /* GPUs to reserve */
        double num_cpus;    /* CPUs to reserve (0: none) */
        uint64_t memory_max; /* bytes, 0: no limit */
        const char *name;   /* a unique name for kactor_get_actor(), or NULL */
        int32_t max_restarts; /* -1: unlimited */
        bool detached;      /* lives until killed, not until the last handle is gone */
        const char *node;   /* in a cluster: the node id to place it on (NULL: here if it fits) */
        /* Who else may call it and look it up by name (its owner, the creating user, and root
         * always may): these users, and the members of these groups. Killing stays the owner's. */
        const uid_t *allow_users;
        size_t n_allow_users;
        const gid_t *allow_groups;
        size_t n_allow_groups;
};

/*
 * Creates an actor of class `class_name` in `module` (a path to a module .so, or a name looked up in
 * the node manager's module path); `args` (a list, or NULL for none) go to its constructor, which
 * runs in the actor's worker. Returns once the node manager accepted the actor: a constructor that
 * fails makes the actor die, and calls to it give ActorDied with the reason.
 */
int kactor_create_actor(kactor_client *c, const char *module, const char *class_name,
                        const kactor_value *args, const struct kactor_actor_opts *opts,
                        kactor_actor *ret);

/* Looks up a named actor. -EREMOTEIO with KACTOR_ERROR_NO_SUCH_ACTOR when there is none. */
int kactor_get_actor(kactor_client *c, const char *name, kactor_actor *ret);

/*
 * Calls `method` on an actor with `args` (a list, or NULL). Top-level object references in args are
 * replaced by their values before the method runs; handles and nested references are passed as
 * they are. Returns at once with a reference to the result. Never blocks on the actor.
 */
int kactor_call(kactor_client *c, kactor_actor actor, const char *method, const kactor_value *args,
                kactor_ref *ret);

struct kactor_task_opts {
        size_t sz;       /* sizeof(struct kactor_task_opts) */
        double num_cpus; /* default 1 */
};

/* Submits a remote function (a stateless task) from `module`; returns at once. */
int kactor_submit(kactor_client *c, const char *module, const char *function, const kactor_value *args,
                  const struct kactor_task_opts *opts, kactor_ref *ret);

/* Stores a value in the object store; returns its reference at once. */
int kactor_put(kactor_client *c, const kactor_value *value, kactor_ref *ret);

/*
 * Waits for `n` objects and returns their values (an array of n values the caller frees with
 * kactor_values_free()). A call that failed gives an error value in its slot. timeout_usec 0 waits
 * forever. Returns 0, -ETIMEDOUT when not all were ready in time, or another negative errno.
 */
int kactor_get(kactor_client *c, const kactor_ref *refs, size_t n, uint64_t timeout_usec,
               kactor_value ***ret_values);

/* Gets one object. */
int kactor_get1(kactor_client *c, kactor_ref ref, uint64_t timeout_usec, kactor_value **ret_value);

void kactor_values_free(kactor_value **values, size_t n);

/*
 * Waits until `num_returns` of the objects are ready or the timeout passes (0: forever). On return
 * ret_ready[i] says whether refs[i] is ready. Returns the number ready, or a negative errno.
 */
int kactor_wait(kactor_client *c, const kactor_ref *refs, size_t n, size_t num_returns,
                uint64_t timeout_usec, bool *ret_ready);

/* Drops this client's hold on objects / on an actor. Never blocks. */
int kactor_ref_release(kactor_client *c, const kactor_ref *refs, size_t n);
int kactor_actor_release(kactor_client *c, kactor_actor actor);

/* Kills an actor: its worker is stopped at once and pending calls fail with ActorDied. With
 * no_restart false an actor with restarts left is restarted. */
int kactor_kill(kactor_client *c, kactor_actor actor, bool no_restart);

/* Sends what is buffered. Calls are buffered and sent in batches; kactor_get(), kactor_wait() and
 * the other calls that wait for an answer flush first, so this is needed only before doing
 * something else for a long time. */
int kactor_flush(kactor_client *c);

/* Values that name actors and objects. */
static inline kactor_value *kactor_value_new_actor_handle(kactor_actor a) {
        return kactor_value_new_actor(a.id);
}
static inline kactor_value *kactor_value_new_ref(kactor_ref r) {
        return kactor_value_new_object(r.id);
}
/* Not compound literals: C++ has none, and this header is C++'s too. */
static inline kactor_actor kactor_value_get_actor(const kactor_value *v) {
        kactor_actor a = { kactor_value_get_id(v) };
        return a;
}
static inline kactor_ref kactor_value_get_ref(const kactor_value *v) {
        kactor_ref r = { kactor_value_get_id(v) };
        return r;
}

#ifdef __cplusplus
}
#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * How the core reaches the cluster layer (nodemgr/cluster/) without knowing it: the cluster installs
 * a ClusterHooks table on the manager when it is set up (cluster_hooks_install()), as a unit's
 * bus queue does in systemd; a single node has none (NULL) and every helper below does then what a
 * node without peers does. The bus and native layers, siblings of the cluster, use the same helpers.
 * The hooks find the cluster's state in m->cluster_userdata.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "manager.h"
#include "req-error.h"

/* A member of the cluster as the bus shows it (Peers). The strings live as long as the member table
 * is unchanged: use them at once. */
typedef struct ClusterPeer {
        const char *id;
        const char *address;
        const char *state;
        uint32_t incarnation;
        double cpus_total, cpus_free;
        uint32_t gpus_total, gpus_free;
        uint64_t memory_total, memory_free;
} ClusterPeer;

/* What this node knows of an actor that lives on a peer, for the bus to show. death_cause points into
 * the cluster's state: use it at once. */
typedef struct RemoteActorView {
        kactor_id id;
        char node[KACTOR_ID_STRING_MAX]; /* the node it lives on */
        ActorState state;
        const char *death_cause;         /* NULL: none known */
} RemoteActorView;

typedef struct ClusterHooks {
        /* The manager is being freed: the cluster's state goes first, while the manager is still
         * whole; every hook is still called afterwards, and does then what a single node does. */
        void (*free)(Manager *m);
        /* At the end of each event loop iteration: what was gathered goes out. */
        void (*flush)(Manager *m);
        /* This node's free CPUs and GPUs changed. */
        void (*resources_changed)(Manager *m);
        /* The i-th member (this node first): false past the last one. */
        bool (*peer_at)(Manager *m, size_t i, ClusterPeer *ret);

        /* Placement: 1 when the actor is to be made on a peer (*ret_node, malloc'd), 0 for this node,
         * or -EREMOTEIO with e set. */
        int (*place_actor)(Manager *m, const ActorSpec *spec, char **ret_node, ReqError *e);
        int (*create_actor)(Manager *m, const ActorSpec *spec, const char *node, kactor_id *ret_id, ReqError *e);

        /* Actors and objects of peers. */
        bool (*actor_routable)(Manager *m, kactor_id id);
        int (*submit_call)(Manager *m, kactor_id actor, Object *o, const char *method, size_t method_len,
                           const char *args, size_t args_len, ReqError *e);
        int (*kill_actor)(Manager *m, kactor_id actor, uid_t uid, bool no_restart);
        bool (*actor_ref)(Manager *m, kactor_id id);
        void (*actor_unref)(Manager *m, kactor_id id);
        Object *(*fetch_object)(Manager *m, kactor_id id);
        /* 0 with *ret filled, -ENOENT when the id names no actor reachable here. */
        int (*actor_view)(Manager *m, kactor_id id, RemoteActorView *ret);
        /* A call on an actor of a peer has its arguments (c->remote is set). */
        void (*call_ready)(Call *c);

        /* The host's side of replication. */
        void (*actor_started)(Actor *a);
        int (*defer_result)(Actor *a, Call *c, bool logged, kactor_error code, const char *message,
                            const char *data, size_t len);
        void (*record_logged)(Actor *a, uint64_t index);
        void (*checkpointed)(Actor *a);
        void (*replayed)(Actor *a, uint64_t index, kactor_error code, const char *message, const char *data,
                         size_t len);
        void (*actor_died)(Actor *a);
        int (*actor_replicas)(const Actor *a, char ***ret);
        void (*actor_freed)(Actor *a);
} ClusterHooks;

/* Installs the cluster's hooks and its state (the cluster layer does, at setup). */
static inline void cluster_hooks_install(Manager *m, const ClusterHooks *hooks, void *userdata) {
        m->cluster_hooks = hooks;
        m->cluster_userdata = userdata;
}

static inline bool cluster_hooks_enabled(const Manager *m) {
        return m->cluster_hooks;
}

/* Frees the cluster's state (m->cluster_userdata becomes NULL). The hooks stay: actors freed
 * afterwards still give back what the cluster kept on them (their replicas). */
static inline void cluster_hooks_free(Manager *m) {
        if (m->cluster_hooks)
                m->cluster_hooks->free(m);
}

static inline void cluster_hooks_flush(Manager *m) {
        if (m->cluster_hooks)
                m->cluster_hooks->flush(m);
}

static inline void cluster_hooks_resources_changed(Manager *m) {
        if (m->cluster_hooks)
                m->cluster_hooks->resources_changed(m);
}

static inline bool cluster_hooks_peer_at(Manager *m, size_t i, ClusterPeer *ret) {
        return m->cluster_hooks && m->cluster_hooks->peer_at(m, i, ret);
}

static inline int cluster_hooks_place_actor(Manager *m, const ActorSpec *spec, char **ret_node, ReqError *e) {
        return m->cluster_hooks ? m->cluster_hooks->place_actor(m, spec, ret_node, e) : 0;
}

static inline int cluster_hooks_create_actor(Manager *m, const ActorSpec *spec, const char *node, kactor_id *ret_id,
                                             ReqError *e) {
        if (!m->cluster_hooks)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "node %s is not this node, and there is no cluster",
                                 node);
        return m->cluster_hooks->create_actor(m, spec, node, ret_id, e);
}

static inline bool cluster_hooks_actor_routable(Manager *m, kactor_id id) {
        return m->cluster_hooks && m->cluster_hooks->actor_routable(m, id);
}

static inline int cluster_hooks_submit_call(Manager *m, kactor_id actor, Object *o, const char *method,
                                            size_t method_len, const char *args, size_t args_len, ReqError *e) {
        if (!m->cluster_hooks)
                return -ENOENT;
        return m->cluster_hooks->submit_call(m, actor, o, method, method_len, args, args_len, e);
}

static inline int cluster_hooks_kill_actor(Manager *m, kactor_id actor, uid_t uid, bool no_restart) {
        return m->cluster_hooks ? m->cluster_hooks->kill_actor(m, actor, uid, no_restart) : -ENOENT;
}

static inline bool cluster_hooks_actor_ref(Manager *m, kactor_id id) {
        return m->cluster_hooks && m->cluster_hooks->actor_ref(m, id);
}

static inline void cluster_hooks_actor_unref(Manager *m, kactor_id id) {
        if (m->cluster_hooks)
                m->cluster_hooks->actor_unref(m, id);
}

static inline Object *cluster_hooks_fetch_object(Manager *m, kactor_id id) {
        return m->cluster_hooks ? m->cluster_hooks->fetch_object(m, id) : NULL;
}

static inline int cluster_hooks_actor_view(Manager *m, kactor_id id, RemoteActorView *ret) {
        return m->cluster_hooks ? m->cluster_hooks->actor_view(m, id, ret) : -ENOENT;
}

static inline void cluster_hooks_call_ready(Manager *m, Call *c) {
        if (m->cluster_hooks)
                m->cluster_hooks->call_ready(c);
}

static inline void cluster_hooks_actor_started(Actor *a) {
        if (a->manager->cluster_hooks)
                a->manager->cluster_hooks->actor_started(a);
}

static inline int cluster_hooks_defer_result(Actor *a, Call *c, bool logged, kactor_error code, const char *message,
                                             const char *data, size_t len) {
        if (!a->manager->cluster_hooks)
                return 0;
        return a->manager->cluster_hooks->defer_result(a, c, logged, code, message, data, len);
}

static inline void cluster_hooks_record_logged(Actor *a, uint64_t index) {
        if (a->manager->cluster_hooks)
                a->manager->cluster_hooks->record_logged(a, index);
}

static inline void cluster_hooks_checkpointed(Actor *a) {
        if (a->manager->cluster_hooks)
                a->manager->cluster_hooks->checkpointed(a);
}

static inline void cluster_hooks_replayed(Actor *a, uint64_t index, kactor_error code, const char *message,
                                          const char *data, size_t len) {
        if (a->manager->cluster_hooks)
                a->manager->cluster_hooks->replayed(a, index, code, message, data, len);
}

static inline void cluster_hooks_actor_died(Actor *a) {
        if (a->manager->cluster_hooks)
                a->manager->cluster_hooks->actor_died(a);
}

/* The nodes that keep the actor's lineage (NULL-terminated, malloc'd; empty when none). */
static inline int cluster_hooks_actor_replicas(const Actor *a, char ***ret) {
        if (a->manager->cluster_hooks)
                return a->manager->cluster_hooks->actor_replicas(a, ret);
        *ret = calloc(1, sizeof(char *));
        return *ret ? 0 : -ENOMEM;
}

static inline void cluster_hooks_actor_freed(Actor *a) {
        if (a->manager->cluster_hooks)
                a->manager->cluster_hooks->actor_freed(a);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The node manager's state and the core operations that both the D-Bus service (manager-bus.c)
 * and the native protocol (native.c) drive.
 *
 * The call path, with the points where tracing probes and the lineage log attach:
 *   submit (actor_submit_call) -> queued at the actor (callqueue) -> arguments resolved ->
 *   dispatched to the worker (actor_dispatch) -> started/finished in the worker ->
 *   result stored (call_finish) -> Get answered (waiters).
 */

#include <stdbool.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-event.h>
#include "hashmap.h"

#include "callqueue.h"
#include "cgroup-manager.h"
#include "core-forward.h"
#include "gpu-discovery.h"
#include "kactor/value.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"
#include "proto.h"
#include "resources.h"


typedef enum ActorState {
        ACTOR_PENDING,    /* worker starting, constructor running */
        ACTOR_ALIVE,
        ACTOR_RESTARTING,
        ACTOR_DEAD,
        _ACTOR_STATE_MAX,
} ActorState;

/* Ids a connection makes: its prefix | a sequence number of ID_SEQ_BITS. */
#define ID_SEQ_BITS PROTO_ID_SEQ_BITS
#define ID_SEQ_MASK PROTO_ID_SEQ_MASK

/* A connection's hold on an actor or an object it received (beyond objects it made itself). */
typedef struct Hold {
        kactor_id id;
        bool actor;
        UT_hash_handle hh;
} Hold;

/* A native protocol connection: a libkactor client, or a worker's socketpair. */
struct Conn {
        Manager *manager;
        unsigned n_ref;
        int fd;
        sd_event_source *io;
        Buffer in, out;
        msgpack_packer pk;
        size_t read_chunk;

        bool welcomed;     /* HELLO done (workers start welcomed) */
        bool ghost;        /* a placeholder after a restart (persist.c): no socket, holds only */
        bool resumed;      /* took a session back after a restart: CALL/SUBMIT/PUT may repeat */
        bool worker_session; /* a ghost of a worker's connection: only that worker takes it back */
        bool closing;      /* flush what is queued, then close */
        bool dead;
        bool dirty;        /* in the manager's flush list */
        LIST_ENTRY(Conn) dirty_link;
        LIST_ENTRY(Conn) link;

        uint64_t id_prefix;  /* the low half of ids this connection makes: prefix | seq */
        uid_t uid;
        pid_t pid;

        Worker *worker;      /* when this is a worker's connection */
        Hold *holds;         /* uthash */
        Object *owned;       /* objects this connection made and holds */
        LIST_HEAD(, ConnGet) gets; /* pending Get/Wait (native.c) */

        /* Clients: the count of their user's connections, and the HELLO deadline (native.c). */
        struct ConnUser *user;
        sd_event_source *hello_timer;
        /* Output is capped before replies are built: completed Gets whose replies do not fit wait
         * here, in order, and a client's further requests are not read meanwhile (paused). */
        TAILQ_HEAD(, ConnGet) parked;
        bool paused;
        /* Actors whose workers were handed a direct socket to this client (native.c): their records
         * are read before this client's requests, which may name those calls' results. */
        kactor_id *direct_actors;
        size_t n_direct_actors;
        uint64_t max_lo; /* the highest object id it made (low half): a direct call names a higher one */
        bool direct_resent;            /* sent a direct call again relayed (its socket broke) */
        DirectResults *direct_results; /* its direct calls' results, kept without objects */
        UT_hash_handle hh_direct;      /* in Manager.direct_result_conns while it has them */
};

typedef struct WorkerDirectCaller {
        uint64_t prefix;
        uid_t uid;
        Conn *conn;      /* its connection, which holds its results (NULL once it closed) */
        unsigned n_open; /* its sockets the worker has open: each holds the actor, as a handle does */
} WorkerDirectCaller;

/* A worker process: one per actor, or one of the task pool. */
struct Worker {
        Manager *manager;
        pid_t pid;
        sd_event_source *child;
        Conn *conn;
        WorkerKind kind;
        uid_t uid;           /* the user it runs as; its connection acts as that user */
        gid_t gid;
        Actor *actor;        /* WORKER_ACTOR; NULL once the actor is forgotten */
        bool ready;          /* INIT_DONE received */
        bool exited;
        int exit_code, exit_status; /* siginfo's si_code and si_status */
        CallQueue tasks;     /* WORKER_TASK: tasks sent to it, in order (the first one runs) */
        bool recalling;      /* asked to give back the tasks it has not started */
        uint64_t task_avg_usec; /* how long its tasks take, on average */
        uint64_t last_done_usec;
        unsigned blocked;    /* waits in a Get/Wait of its own */
        uint64_t next_seq;
        /* Surviving a restart (persist.c): the last seq whose result was handled, the last one
         * journaled (durable), the last durable seq the worker was told of. */
        uint64_t handled_seq, durable_seq, ack_sent;
        bool ack_queued;             /* in the manager's ack list */
        LIST_ENTRY(Worker) ack_link;
        /* A worker a previous node manager started (not our child): watched through a pidfd, it
         * re-attaches on the socket, with the id prefix its connection had. */
        bool adopted;
        uint64_t starttime;  /* its start time (pid_starttime()): with pid, what the journal names */
        int pidfd;
        sd_event_source *pidfd_source;
        sd_event_source *attach_timer;
        uint64_t attach_prefix;
        bool to_attach;      /* adopted, not attached nor gone yet (Manager.n_workers_to_attach) */
        uint64_t exec_start_ns, exec_end_ns; /* the RESULT being handled: when the method ran (0: not sent) */
        uint64_t results;    /* RESULTs it sent (relayed and direct): what acks count (docs/protocol.md) */
        /* WORKER_ACTOR: the callers handed a direct socket to it (their connections' id prefix and
         * user), for its records of direct calls. */
        struct WorkerDirectCaller *direct_callers;
        size_t n_direct_callers;
        bool direct_close_sent; /* DIRECT_CLOSE went, and no socket was handed over since */
        ActorCgroup *cgroup; /* WORKER_TASK: its own cgroup, handed over when the worker goes */
        sd_event_source *idle_timer; /* WORKER_TASK: stops it once it has had no task for a while */
        bool idle;           /* WORKER_TASK: idle_timer is armed */
        char *start_error;   /* WORKER_TASK: why it could not start, for the task that waited for it */
        LIST_ENTRY(Worker) link;
        LIST_ENTRY(Worker) task_link;
};

struct Actor {
        Manager *manager;
        kactor_id id;
        char id_string[KACTOR_ID_STRING_MAX];
        char *path; /* D-Bus object path */
        UT_hash_handle hh;
        UT_hash_handle hh_name;
        char *name;
        char *module;       /* resolved path */
        char *module_arg;   /* as given */
        char *class_name;
        char *args;         /* constructor arguments, packed */
        size_t args_len;
        kactor_id *arg_ids; /* ids held by the constructor arguments */
        uint8_t *arg_id_actor;
        size_t n_arg_ids;

        ActorState state;
        char *death_cause;
        uint32_t *gpus;     /* stay visible on a dead actor, whose GPUs went back to the pool */
        size_t n_gpus;
        double num_cpus;
        bool holds_resources; /* GPUs and CPUs are reserved in the node's pool */
        uint64_t memory_max;
        int32_t max_restarts;
        uint32_t restarts;
        bool detached;
        uid_t uid;          /* its owner (who made it); the worker runs as run_uid/run_gid (isolation.c) */
        uid_t run_uid;
        gid_t run_gid;
        uint64_t tasks_max;
        /* Who else may call it (AllowUsers=, AllowGroups=): access.c. */
        uid_t *allow_users;
        size_t n_allow_users;
        gid_t *allow_groups;
        size_t n_allow_groups;
        ActorCgroup *cgroup; /* until the cgroup is empty after the worker ended */
        char *unit;          /* the scope (systemd), kept after death for status */
        char *control_group;
        struct TraceActor *trace; /* manager-trace.c, while calls are traced */

        unsigned refs;      /* handles held anywhere (connections, objects, call arguments, D-Bus) */
        bool stopping;      /* no handles left: stop once the queue is empty */

        Worker *worker;
        CallQueue queue;
        uint64_t calls_submitted, calls_completed;
        uint64_t calls_direct; /* of those submitted, the direct ones (from the worker's records) */

        /* Lineage and restarts. */
        LineageLog lineage;
        bool can_save;            /* the class has save and restore hooks */
        uint32_t checkpoint_interval; /* logged calls between checkpoints; 0: never */
        uint64_t calls_since_checkpoint;
        bool save_inflight;
        bool force_checkpoint;    /* the node's lineage memory is over its limit */
        size_t replaying;         /* replayed calls in flight: new calls wait until 0 (the barrier) */
        unsigned failures;        /* restarts in a row that did not get back to alive */
        bool no_restart;          /* killed with no_restart */
        /* A temporary actor that rebuilds one evicted result: not listed, not on the bus. */
        bool shadow;
        Object *rebuild_target;
        uint64_t rebuild_index;
        sd_event_source *restart_timer;
        /* Restored by persist.c: its worker's last seq whose result the journal has (what the
         * worker sends again on ATTACH up to it is known already). */
        uint64_t journaled_seq;
        /* persist.c: 1 + its slot among this iteration's seqs to journal (0: none), while the slot
         * still names it. */
        size_t persist_seq_slot;
        bool restoring;           /* listed again, the rest of its restore to come */
        bool restored_unready;    /* restored before its constructor was known to be done */
        /* Results its re-attached worker sent again for calls whose callers have not sent them again
         * yet (actor.c): they answer those calls when they come, for a while. */
        struct HeldResult *held_results;
        sd_event_source *held_timer;
        /* The D-Bus connection (unique name) that owns it (Detached=false over D-Bus): the service
         * sets it; the journal keeps it; a restored one is tracked again once the bus is up. */
        char *bus_owner;
        bool bus_owner_restored;
        struct HostRepl *repl;    /* remote.c: its replicas, in a cluster */
        bool fenced;              /* stopped because the cluster declared this node dead */
        LIST_ENTRY(Actor) dead_link; /* recently dead actors, kept for a while for status */
        uint64_t dead_usec;          /* when it died (CLOCK_MONOTONIC) */
        /* What the D-Bus service has yet to say about it (actor_queue_change()). */
        unsigned bus_changes;     /* ActorChange */
        bool bus_announced;       /* InterfacesAdded went out: changes and the removal are sent */
        TAILQ_ENTRY(Actor) bus_link;
};

/* A pending Get or Wait, from a native connection or from D-Bus. Whoever made it sets reply and
 * done, and keeps its own state about the request (the caller to answer) in userdata. */
typedef struct GetRequest GetRequest;
struct GetRequest {
        Waiter waiter;
        Manager *manager;
        uid_t uid;             /* whose request: who may read the objects (access.c) */
        bool wait;             /* Wait, not Get */
        size_t num_returns;    /* Wait */
        Object **objects;      /* referenced while waiting */
        size_t n_objects;
        sd_event_source *timer;
        /* Answers the completed request (timed_out: the timeout came first, which for Get is the
         * Timeout error), then frees it with get_request_free() or keeps it to answer later. */
        void (*reply)(GetRequest *g, bool timed_out);
        /* Called by get_request_free(): the requester lets go of its state. */
        void (*done)(GetRequest *g);
        void *userdata;
};

typedef struct ManagerConfig {
        const char *bus_address;   /* for manager_bus_setup(); NULL: the system bus */
        const char *runtime_dir;
        char **module_path;        /* NULL-terminated */
        char **gpu_devices;        /* NULL-terminated, or NULL */
        unsigned n_gpus;
        double num_cpus;
        const char *worker_path;
        const char *cgroup_manager; /* "systemd", "cgroupfs", "none"; NULL: automatic */
        const char *cgroup_name;    /* our cgroup subtree's name; NULL: from the runtime dir */
        uint64_t lineage_max;         /* 0: the default */
        uint32_t checkpoint_interval; /* UINT32_MAX: the default */
        uint64_t dead_grace_usec;     /* UINT64_MAX: the default */
        uint64_t object_store_max;    /* 0: the default */
        const char *access_group;     /* NULL: "kactor" */
        /* The cluster (peer.c): off unless listen or join is set. */
        const char *cluster_listen;       /* ADDR:PORT */
        char **cluster_join;              /* seeds, NULL-terminated */
        const char *cluster_secret_file;
        const char *cluster_cert_file, *cluster_key_file, *cluster_ca_file; /* instead of the secret */
        uint64_t probe_interval_usec, probe_timeout_usec, suspect_timeout_usec; /* 0: defaults */
        unsigned replicas;                /* UINT_MAX: the default */
} ManagerConfig;

struct Manager {
        sd_event *event;
        sd_event_source *listen_source;
        sd_event_source *flush_source;
        sd_event_source *trim_source;
        int listen_fd;
        bool listen_stored;   /* the listening socket is in systemd's fd store: kept across restarts */
        char *socket_path;
        char *runtime_dir;
        char **module_path;
        char *worker_path;

        uint64_t node_hi;
        char node_id[KACTOR_ID_STRING_MAX];
        uint64_t next_conn;   /* id prefixes for connections */
        uint64_t next_local;  /* ids the manager makes itself (D-Bus) */

        struct ModuleCacheEntry *module_cache; /* uthash: module name -> path, for a while */
        struct TaskOrigin *task_origins;       /* uthash: who callers' tasks run as (tasks.c) */
        bool tasks_idle_dirty;                 /* task workers' idle timers to update (tasks_flush()) */
        Resources resources;
        GpuInventory gpu_inventory; /* the GPUs' device nodes, by GPU id */
        CgroupManager *cgroups;     /* NULL: actors run without cgroups */
        const char *cgroup_manager_kind, *cgroup_name; /* from the config, for manager_start() */
        ObjectStore store;
        Conn *direct_result_conns; /* uthash (hh_direct) by id prefix: those with DirectResults */
        Actor *actors;        /* uthash by id */
        Actor *actors_by_name;
        unsigned n_actors_live;
        LIST_HEAD(, Actor) dead_actors;  /* newest first */
        unsigned n_dead_actors;
        uint64_t dead_grace_usec;        /* how long a dead actor stays listed (and on the bus) */
        sd_event_source *forget_timer;   /* at the oldest dead actor's end of grace */

        const struct TransportOps *transport; /* native/conn.c, installed by native_setup() */
        LIST_HEAD(, Conn) conns;
        LIST_HEAD(, Conn) dirty_conns;
        /* Client connections and their caps (native.c, docs/protocol.md "Limits"). */
        struct ConnUser *conn_users; /* uthash by uid */
        unsigned n_client_conns;
        unsigned conn_max;           /* in all; other users than root share conn_max - conn_root_reserve */
        unsigned conn_root_reserve;
        unsigned conn_max_per_uid;
        sd_event_source *listen_retry; /* accept() ran out of fds: listening resumes after a pause */
        LogRateLimit conn_refused_log, accept_failed_log, attach_refused_log;

        /* The task pool. */
        CallQueue tasks;
        LIST_HEAD(, Worker) task_workers;
        unsigned n_task_workers;
        unsigned n_task_workers_starting;
        uint64_t next_task_worker; /* names task workers' cgroups */

        /* Lineage: the memory all actors' logs may hold, and the default checkpoint interval. */
        uint64_t lineage_bytes;
        uint64_t lineage_max;
        uint32_t checkpoint_interval;

        /* The changes the D-Bus service sends, coalesced, once per event loop iteration: queued by
         * the core, drained by bus_flush, which the service installs at its setup. */
        bool resources_changed; /* FreeGpus, FreeCpus, Actors: PropertiesChanged due */
        bool peers_owe_resources; /* the cluster tells its peers at the next flush */
        bool peers_changed;     /* Peers */
        TAILQ_HEAD(, Actor) bus_queue; /* actors with bus_changes */
        char **bus_removed;     /* the paths of announced actors freed since: InterfacesRemoved due */
        void (*bus_flush)(Manager *m);
        /* Lets go of the service's state (bus_userdata: its connection, the owners of the actors made
         * with Detached=false), after the last bus_flush. */
        void (*bus_free)(Manager *m);
        void *bus_userdata;

        /* The fork server (zygote.c). */
        char *access_group;     /* besides root and our own user, its members may use us */
        gid_t access_gid;       /* (gid_t) -1: no such group */
        struct AccessEntry *access_cache;
        Frame frame;            /* the frame being handled, whichever connection it came from */
        int zygote_fd;
        pid_t zygote_pid;
        sd_event_source *zygote_source;

        LIST_HEAD(, Worker) workers; /* every live worker process */
        unsigned n_workers;
        /* After a restart: adopted workers not re-attached yet, and the results their callers asked
         * for meanwhile that only such a worker can have (manager_await_result()). */
        unsigned n_workers_to_attach;
        kactor_id *awaited_results;
        size_t n_awaited_results, cap_awaited_results;
        bool stopping;
        bool detaching;         /* exiting while actors keep running (persist.c) */
        sd_event_source *stop_timer;
        /* What outlives the process (persist.c), and the workers owed an ACK. */
        struct Persist *persist;
        LIST_HEAD(, Worker) ack_workers;
        sd_event_source *ack_timer;
        struct ManagerTrace *trace; /* manager-trace.c */
        bool trace_calls;           /* calls are counted in the histograms (manager-trace.c) */
        /* The cluster layer (cluster-hooks.h): NULL on a single node. */
        const struct ClusterHooks *cluster_hooks;
        void *cluster_userdata;
};

/* manager.c */
int manager_new(const ManagerConfig *config, Manager **ret);
Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m) {
        manager_free(*m);
}
/* Starts what the core runs; the transports are set up after it (nodemgr.c), then the service
 * says it is ready. */
int manager_start(Manager *m);
void manager_notify_ready(Manager *m);
/* Begins a clean shutdown: workers are stopped; the loop exits when they are gone. Nothing is left
 * for a next node manager (the state journal is removed). */
void manager_stop(Manager *m);
/* Exits, leaving the actors running for the next node manager started with the same runtime
 * directory (persist.c): what SIGTERM does. */
void manager_detach(Manager *m);
kactor_id manager_new_local_id(Manager *m);
/* FreeGpus, FreeCpus, Actors (and what the peers learn of them) changed: sent once per iteration. */
void manager_queue_resources_changed(Manager *m);
/* The cluster's members changed: PropertiesChanged for Peers, once per iteration. */
void manager_queue_peers_changed(Manager *m);
Actor *manager_find_actor(Manager *m, kactor_id id);
/* A Get of its own result id by the connection with that id prefix, which the object store does not
 * have (else NULL) while adopted workers are still to re-attach: a direct call's result its caller was answered
 * before the previous node manager had it, which the actor's worker sends again when it re-attaches.
 * Returns a pending placeholder for it (one reference: the caller's), or NULL when none can be owed. */
Object *manager_await_result(Manager *m, kactor_id id, uint64_t prefix, uid_t uid);
/* An adopted worker re-attached or went: once none is left to, the placeholders still pending fail
 * ("never made, or released"). */
void manager_worker_attach_settled(Manager *m, Worker *w);
/* An object by id. One of this node's that is not (yet) here may be the result of a direct call
 * whose record its worker has sent and this node manager not read: those records are read first
 * (docs/protocol.md, "Direct calls"). */
Object *manager_find_object(Manager *m, kactor_id id);
/* Reads what a's worker has sent when it has direct callers: their calls' records (and the results
 * sent with them), before a's state is shown; and writes them to the journal, before the answer that
 * shows them goes. */
void manager_read_direct_records(Manager *m, Actor *a);
Actor *manager_find_actor_by_name(Manager *m, const char *name);
/* Resolves a module argument (a path, or a name in the module path) to a path. */
int manager_resolve_module(Manager *m, const char *module, char **ret_path, ReqError *e);
/* Stores a value user uid put (packed) as a ready object with the given id; the caller takes it over
 * (a connection owns it, D-Bus pins it). -EEXIST when the id is taken; -EREMOTEIO with e set when
 * the value is malformed or names an object of another user. */
int manager_put(Manager *m, kactor_id object, const char *data, size_t len, uid_t uid, Conn *owner, Object **ret,
                ReqError *e);

/* The request as built by either front end. args is a packed list (msgpack). */
typedef struct ActorSpec {
        uint32_t checkpoint_interval; /* 0: the node's default */
        const char *module;
        const char *class_name;
        const char *args;
        size_t args_len;
        const char *name;
        uint32_t num_gpus;
        double num_cpus;
        uint64_t memory_max;
        int32_t max_restarts;
        bool detached;
        uid_t uid;
        const char *user;   /* User option (root callers only) */
        uint64_t tasks_max; /* TasksMax option */
        const uid_t *allow_users;   /* AllowUsers option */
        size_t n_allow_users;
        const gid_t *allow_groups;  /* AllowGroups option */
        size_t n_allow_groups;
        const char *node;   /* Node option: the cluster node to place it on */
        kactor_id id;       /* a given id (made by the node that placed it here, or rebuilt); null: new */
        LineageLog *lineage; /* rebuilt from a replica: its log (taken over on success) */
        bool detach_if_placed; /* D-Bus: an owner here cannot hold an actor on a peer */
} ActorSpec;

/* Ends the event loop once stopping and every child is gone. */
void manager_maybe_exit(Manager *m);



/* log.c-like helpers */

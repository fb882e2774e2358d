/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The node manager's state and the core operations that both the D-Bus service (manager-bus.c)
 * and the native protocol (native.c) drive.
 *
 * The call path, with the points where tracing probes and the lineage log attach:
 *   submit (manager_submit_call) -> queued at the actor (callqueue) -> arguments resolved ->
 *   dispatched to the worker (actor_dispatch) -> started/finished in the worker ->
 *   result stored (manager_call_finished) -> Get answered (waiters).
 */

#include <stdbool.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include "hashmap.h"

#include "callqueue.h"
#include "cgroup-manager.h"
#include "gpu-discovery.h"
#include "kactor/value.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"
#include "proto.h"
#include "resources.h"

typedef struct Manager Manager;
typedef struct Conn Conn;
typedef struct Actor Actor;
typedef struct Worker Worker;

/* An error for the requester: a kactor_error and a message. Functions that fill one return
 * -EREMOTEIO. */
typedef struct ReqError {
        kactor_error code;
        char *message;
} ReqError;

int req_error(ReqError *e, kactor_error code, const char *format, ...) __attribute__((format(printf, 3, 4)));
/* Wraps the error e holds, as crun_error_wrap() does: the message becomes "FORMAT: <old message>"
 * (FORMAT alone when e held none) and the code `code`. The new message is made before the old one
 * is freed, as req_error() does too. Returns -EREMOTEIO. */
int req_error_wrap(ReqError *e, kactor_error code, const char *format, ...) __attribute__((format(printf, 3, 4)));
void req_error_done(ReqError *e);

typedef enum ActorState {
        ACTOR_PENDING,    /* worker starting, constructor running */
        ACTOR_ALIVE,
        ACTOR_RESTARTING,
        ACTOR_DEAD,
        _ACTOR_STATE_MAX,
} ActorState;

const char *actor_state_to_string(ActorState s);

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
        LIST_HEAD(, GetRequest) gets; /* pending Get/Wait */

        /* Clients: the count of their user's connections, and the HELLO deadline (native.c). */
        struct ConnUser *user;
        sd_event_source *hello_timer;
        /* Output is capped before replies are built: completed Gets whose replies do not fit wait
         * here, in order, and a client's further requests are not read meanwhile (paused). */
        TAILQ_HEAD(, GetRequest) parked;
        bool paused;
};

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
        uint64_t exec_start_ns, exec_end_ns; /* the RESULT being handled: when the method ran (0: not sent) */
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
        int detached;       /* an int for sd-bus's "b" */
        uid_t uid;          /* the caller's; the worker runs as run_uid/run_gid (isolation.c) */
        uid_t run_uid;
        gid_t run_gid;
        uint64_t tasks_max;
        ActorCgroup *cgroup; /* until the cgroup is empty after the worker ended */
        char *unit;          /* the scope (systemd), kept after death for status */
        char *control_group;
        struct TraceActor *trace; /* manager-trace.c, while calls are traced */

        unsigned refs;      /* handles held anywhere (connections, objects, call arguments, D-Bus) */
        bool stopping;      /* no handles left: stop once the queue is empty */
        sd_bus_track *track;  /* owner over D-Bus with Detached=false */

        Worker *worker;
        CallQueue queue;
        uint64_t calls_submitted, calls_completed;

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
        struct HostRepl *repl;    /* remote.c: its replicas, in a cluster */
        bool fenced;              /* stopped because the cluster declared this node dead */
        char *remote_node;        /* a D-Bus view of an actor that lives on this peer (remote.c) */
        LIST_ENTRY(Actor) dead_link; /* recently dead actors, kept for a while for status */
};

/* A pending Get or Wait, from a native connection or from D-Bus. */
typedef struct GetRequest {
        Waiter waiter;
        Manager *manager;
        bool wait;             /* Wait, not Get */
        size_t num_returns;    /* Wait */
        Object **objects;      /* referenced while waiting */
        size_t n_objects;
        sd_event_source *timer;
        Conn *conn;            /* native */
        uint64_t reqid;
        sd_bus_message *message; /* D-Bus */
        sd_bus_track *track;     /* the D-Bus caller: its request goes when it does */
        LIST_ENTRY(GetRequest) link;
        bool parked;             /* complete, its reply waiting for room in conn's output */
        bool timed_out;
        TAILQ_ENTRY(GetRequest) parked_link;
} GetRequest;

typedef struct ManagerConfig {
        const char *bus_address;   /* NULL: the system bus */
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
        uint64_t object_store_max;    /* 0: the default */
        const char *access_group;     /* NULL: "kactor" */
        /* The cluster (peer.c): off unless listen or join is set. */
        const char *cluster_listen;       /* ADDR:PORT */
        char **cluster_join;              /* seeds, NULL-terminated */
        const char *cluster_secret_file;
        uint64_t probe_interval_usec, probe_timeout_usec, suspect_timeout_usec; /* 0: defaults */
        unsigned replicas;                /* UINT_MAX: the default */
} ManagerConfig;

struct Manager {
        sd_event *event;
        sd_bus *bus;
        char *bus_address;
        sd_event_source *listen_source;
        sd_event_source *flush_source;
        sd_event_source *trim_source;
        int listen_fd;
        char *socket_path;
        char *runtime_dir;
        char **module_path;
        char *worker_path;

        uint64_t node_hi;
        char node_id[KACTOR_ID_STRING_MAX];
        uint64_t next_conn;   /* id prefixes for connections */
        uint64_t next_local;  /* ids the manager makes itself (D-Bus) */

        struct ModuleCacheEntry *module_cache; /* uthash: module name -> path, for a while */
        Resources resources;
        GpuInventory gpu_inventory; /* the GPUs' device nodes, by GPU id */
        CgroupManager *cgroups;     /* NULL: actors run without cgroups */
        const char *cgroup_manager_kind, *cgroup_name; /* from the config, for manager_start() */
        ObjectStore store;
        Actor *actors;        /* uthash by id */
        Actor *actors_by_name;
        unsigned n_actors_live;
        LIST_HEAD(, Actor) dead_actors;
        unsigned n_dead_actors;

        LIST_HEAD(, Conn) conns;
        LIST_HEAD(, Conn) dirty_conns;
        /* Client connections and their caps (native.c, docs/protocol.md "Limits"). */
        struct ConnUser *conn_users; /* uthash by uid */
        unsigned n_client_conns;
        unsigned conn_max;           /* in all; other users than root share conn_max - conn_root_reserve */
        unsigned conn_root_reserve;
        unsigned conn_max_per_uid;
        sd_event_source *listen_retry; /* accept() ran out of fds: listening resumes after a pause */
        LogRateLimit conn_refused_log, accept_failed_log;

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

        /* The fork server (zygote.c). */
        bool resources_changed; /* FreeGpus, FreeCpus, Actors: PropertiesChanged due */
        char *access_group;     /* besides root and our own user, its members may use us */
        gid_t access_gid;       /* (gid_t) -1: no such group */
        struct AccessEntry *access_cache;
        Frame frame;            /* the frame being handled, whichever connection it came from */
        int zygote_fd;
        pid_t zygote_pid;
        sd_event_source *zygote_source;

        LIST_HEAD(, Worker) workers; /* every live worker process */
        unsigned n_workers;
        bool stopping;
        sd_event_source *stop_timer;
        struct ManagerTrace *trace; /* manager-trace.c */
        bool trace_calls;           /* calls are counted in the histograms (manager-trace.c) */
        struct Cluster *cluster;    /* peer.c; NULL on a single node */
        struct Remote *remote;      /* remote.c; NULL on a single node */
};

/* manager.c */
int manager_new(const ManagerConfig *config, Manager **ret);
Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m) {
        manager_free(*m);
}
int manager_start(Manager *m);
/* Begins a clean shutdown: workers are stopped; the loop exits when they are gone. */
void manager_stop(Manager *m);
kactor_id manager_new_local_id(Manager *m);
Actor *manager_find_actor(Manager *m, kactor_id id);
Actor *manager_find_actor_by_name(Manager *m, const char *name);
/* Resolves a module argument (a path, or a name in the module path) to a path. */
int manager_resolve_module(Manager *m, const char *module, char **ret_path, ReqError *e);

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
        const char *node;   /* Node option: the cluster node to place it on */
        kactor_id id;       /* a given id (made by the node that placed it here, or rebuilt); null: new */
        LineageLog *lineage; /* rebuilt from a replica: its log (taken over on success) */
        bool detach_if_placed; /* D-Bus: an owner here cannot hold an actor on a peer */
} ActorSpec;

/* actor.c */
int manager_create_actor(Manager *m, const ActorSpec *spec, Actor **ret, ReqError *e);
/* Here, or on a peer (the Node option, or when it does not fit here): *ret_local is NULL then. */
int manager_create_actor_anywhere(Manager *m, const ActorSpec *spec, Actor **ret_local, kactor_id *ret_id,
                                  ReqError *e);
/* A call made elsewhere that the actor takes over, in order (it came back on this node). */
void actor_adopt_call(Actor *a, Call *c);
void actor_ref(Actor *a);
void actor_unref(Actor *a);
bool manager_actor_ref_id(Manager *m, kactor_id id);
void manager_actor_unref_id(Manager *m, kactor_id id);
/* Kills an actor's worker; pending calls fail with ActorDied. */
int actor_kill(Actor *a, bool no_restart, const char *why);
/* Tries to send queued calls to the actor's worker. */
void actor_dispatch(Actor *a);
void actor_worker_ready(Actor *a, kactor_error code, const char *message, uint32_t flags);
void actor_worker_gone(Actor *a, const char *cause);
void actor_set_state(Actor *a, ActorState state);
void actor_free(Actor *a);
/* Returns the actor's GPUs and CPUs to the pool. */
void actor_release_resources(Actor *a);

/* isolation.c: cgroups, device access, users */
int manager_isolation_setup(Manager *m, const ManagerConfig *config);
int actor_isolation_check_limits(Manager *m, const ActorSpec *spec, ReqError *e);
int actor_isolation_check_module(const char *path, uid_t uid, ReqError *e);
int actor_isolation_resolve_user(const ActorSpec *spec, uid_t *ret_uid, gid_t *ret_gid, ReqError *e);
/* Places the new worker in the actor's cgroup; INIT is sent once it is placed. */
int actor_isolation_start(Actor *a, Worker *w, ReqError *e);
void actor_isolation_kill(Actor *a);
void actor_isolation_worker_gone(Actor *a);
void actor_isolation_free(Actor *a);
/* Kills what is left in the actor's cgroup and removes it (before a restart makes a new one). */
void actor_isolation_free_cgroup(Actor *a);
/* Places a new task worker in a cgroup of its own; INIT is sent once it is placed (at once without
 * cgroups). When it cannot be placed, now (< 0) or later (the worker is killed), w->start_error says why. */
int task_isolation_start(Worker *w);
/* The task worker is gone: what it left in its cgroup is killed, and the cgroup removed once empty. */
void task_isolation_worker_gone(Worker *w);

/*
 * Submits a call. The result object (id chosen by the caller) is created held by `owner` (a
 * connection) or pinned (D-Bus, owner NULL). args: a packed list. Errors that concern the call
 * itself (no such actor, dead actor) make the object fail rather than the submission; a request
 * outside the limits (spec-check.h) is refused before any object is made (-EREMOTEIO, InvalidArgs).
 */
int manager_submit_call(Manager *m, kactor_id actor, kactor_id object, const char *method, size_t method_len,
                        const char *args, size_t args_len, Conn *owner, Object **ret, ReqError *e);
/* The task runs as uid, the caller (its primary group), in a task worker of that user. */
int manager_submit_task(Manager *m, kactor_id object, const char *module, const char *function, double num_cpus,
                        const char *args, size_t args_len, uid_t uid, Conn *owner, Object **ret, ReqError *e);
int manager_put(Manager *m, kactor_id object, const char *data, size_t len, Conn *owner, Object **ret, ReqError *e);

/* A worker reported the result of call `seq`. data is the packed value when code is 0. */
int manager_call_finished(Manager *m, Worker *w, uint64_t seq, kactor_error code, const char *message,
                          const char *data, size_t len, uint32_t flags);

/* Scans a packed value for ids; used for results and arguments. Returns malloc'd arrays. */
int manager_scan_ids(const char *data, size_t len, kactor_id **ret_ids, uint8_t **ret_actor, size_t *ret_n,
                     bool *ret_top_refs);

/* Calls: built from packed arguments (holding what they name), freed, failed. */
int call_new(Manager *m, Object *result, const char *args, size_t args_len, Call **ret, ReqError *e);
int call_watch_deps(Manager *m, Call *c);
void call_free(Manager *m, Call *c);
void call_fail(Manager *m, Call *c, kactor_error code, const char *message);
/* Resolves a call's top-level references in place. -EREMOTEIO with e set when one failed. */
int call_prepare_args(Manager *m, Call *c, ReqError *e);

/* tasks.c */
void tasks_dispatch(Manager *m);
/* A task's arguments are ready: it joins the queue. */
void tasks_call_ready(Call *c);
/* A task worker finished its task. */
void tasks_task_done(Worker *w);
void tasks_worker_ready(Worker *w);
void tasks_worker_gone(Worker *w, const char *cause);
void tasks_worker_blocked(Worker *w, bool blocked);
/* The worker gave back tasks it had not started (RECALLED). */
void tasks_recalled(Worker *w, const uint64_t *seqs, size_t n);
/* The task a worker finished (RESULT seq): NULL when it is not the one it runs. */
Call *tasks_finish(Worker *w, uint64_t seq);

/* access.c: who may use the node manager */
int access_setup(Manager *m, const char *group);
void access_done(Manager *m);
/* 0 when uid may use the node manager; -EREMOTEIO with AccessDenied in e otherwise. */
int access_check(Manager *m, uid_t uid, ReqError *e);

/* Spawns kactor-worker (or the fork server) with fd as its fd 3 and default signal handling. */
int spawn_worker_process(const char *path, char *const *env, int fd, pid_t *ret_pid);

/* zygote.c: the fork server */
int zygote_start(Manager *m);
void zygote_stop(Manager *m);
/* Forks a worker with this environment and fd as its fd 3; -ENOTCONN without a fork server. */
int zygote_spawn(Manager *m, char *const *env, int fd, pid_t *ret_pid);

/* Ends the event loop once stopping and every child is gone. */
void manager_maybe_exit(Manager *m);

/* worker.c (the launcher) */
/* An actor's worker runs as the actor's run_uid/run_gid, a task worker as uid/gid; both without
 * capabilities. */
int worker_spawn(Manager *m, WorkerKind kind, Actor *actor, Worker **ret);
int worker_spawn_task(Manager *m, uid_t uid, gid_t gid, Worker **ret);
int worker_send_init(Worker *w);
int worker_send_call(Worker *w, Call *c);
int worker_send_save(Worker *w, Call *c);
int worker_send_recall(Worker *w);
void worker_stop(Worker *w);
Worker *worker_free(Worker *w);
/* "exited with status 3", "killed by signal 9", ...; malloc'd. */
char *worker_exit_description(const Worker *w);

/* native.c */
int conn_new(Manager *m, int fd, Worker *worker, Conn **ret);
void conn_ref(Conn *c);
void conn_unref(Conn *c);
void conn_close(Conn *c);
void conn_mark_dirty(Conn *c);
/* Finishes a frame begun at off with frame_begin(): when r (what packing it returned) is negative
 * the frame is dropped and r returned; else it is closed and the connection flushed soon. */
int conn_end_frame(Conn *c, size_t off, int r);
/* Drops every hold, owned object and pending Get of the connection. */
void conn_release_all(Conn *c);
/* Reads and handles whatever the peer has sent (a worker that exited). */
void conn_drain(Conn *c);
int conn_flush(Conn *c);
void manager_flush_all(Manager *m);
int manager_listen(Manager *m);
/* The connection holds (one reference on) an actor or object it received. */
int conn_hold(Conn *c, kactor_id id, bool actor);
int conn_hold_ids_in(Conn *c, const Object *o);
int conn_send_reply_error(Conn *c, uint64_t reqid, kactor_error code, const char *message);
/* Whether a reply of n bytes may be built now: the output stays within its budget (or is empty). */
bool conn_output_room(const Conn *c, size_t n);

/* gets.c */
int get_request_new(Manager *m, const kactor_id *ids, size_t n, bool wait, size_t num_returns,
                    uint64_t timeout_usec, GetRequest **ret, ReqError *e);
/* Arms the request: completes at once when it can. */
int get_request_start(GetRequest *g);
GetRequest *get_request_free(GetRequest *g);
/* Completes it: sends the answer (timeout: the Timeout error for Get). A native answer that does
 * not fit the connection's output budget is parked until it does. */
void get_request_complete(GetRequest *g, bool timed_out);
/* Answers the connection's parked Gets, in order, while their replies fit. Returns how many. */
unsigned get_request_answer_parked(Conn *c);

/* eviction.c */
void eviction_setup(Manager *m, uint64_t max_bytes);
/* Records how an object can be had again once evicted. */
void eviction_note_put(Manager *m, Object *o);
void eviction_note_task(Manager *m, Object *o, const Call *c);
void eviction_note_actor_call(Manager *m, Object *o, kactor_id actor, uint64_t index);
/* actor.c: rebuilds the result of logged call `index` of actor a in a temporary worker. On failure
 * *ret_why says why it cannot be done. */
int actor_rebuild_object(Actor *a, Object *o, uint64_t index, char **ret_why);

/* manager-bus.c */
int manager_bus_setup(Manager *m);
void manager_bus_actor_added(Manager *m, Actor *a);
void manager_bus_resources_changed(Manager *m);
/* Sends the coalesced manager property changes. */
void manager_bus_flush(Manager *m);
/* The cluster's members changed: PropertiesChanged for Peers. */
void manager_bus_peers_changed(Manager *m);
void manager_bus_actor_removed(Manager *m, Actor *a);
void manager_bus_actor_changed(Manager *m, Actor *a, const char *property);
int bus_get_request_reply(GetRequest *g, bool timed_out);

/* log.c-like helpers */
uint64_t now_usec(void);

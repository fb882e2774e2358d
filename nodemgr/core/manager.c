/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-id128.h>
#include <time.h>

#include "access.h"
#include "actor-isolation.h"
#include "actor.h"
#include "call.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "eviction.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "req-error.h"
#include "transport.h"
#include "manager-trace.h"
#include "privileges.h"
#include "strv.h"
#include "tasks.h"
#include "time-util.h"
#include "worker-spawn.h"
#include "zygote.h"

/* Lineage: what all actors' logs may hold together, and how often an actor whose class can save is
 * checkpointed (in logged calls). */
/* Placeholders for results owed by workers still to re-attach (manager_await_result()). */
#define MANAGER_AWAITED_RESULTS_MAX 65536u
#define MANAGER_LINEAGE_MAX_DEFAULT (1024ULL * 1024 * 1024)
#define MANAGER_CHECKPOINT_INTERVAL_DEFAULT 1000
/* Values the object store keeps in memory before it evicts what can be had again. */
#define MANAGER_OBJECT_STORE_MAX_DEFAULT (2048ULL * 1024 * 1024)

/* How long a dead actor stays listed (its state and DeathCause readable) before it is forgotten. */
#define MANAGER_DEAD_GRACE_USEC_DEFAULT (300 * USEC_PER_SEC)

/* How long stopping workers get before they are killed. */
#define MANAGER_STOP_TIMEOUT_USEC (3 * 1000000ULL)

int manager_put(Manager *m, kactor_id object, const char *data, size_t len, uid_t uid, Conn *owner, Object **ret,
                ReqError *e) {
        _cleanup_free_ kactor_id *ids = NULL;
        _cleanup_free_ uint8_t *actor = NULL;
        size_t n;
        Object *o;
        int r;

        r = codec_scan_ids(data, len, &ids, &actor, &n, NULL);
        if (r < 0)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "malformed value");
        /* A value may name only objects its maker may read. */
        r = call_check_ids(m, ids, actor, n, uid, e);
        if (r < 0)
                return r;
        r = objstore_add(&m->store, object, &o);
        if (r < 0)
                return r;
        o->uid = uid;
        /* The journal records its owner with it (the owner takes it over once it returns). */
        if (owner)
                o->persisted_owner = owner->id_prefix;
        r = objstore_set_ready(&m->store, o, data, len, ids, actor, n);
        if (r < 0) {
                objstore_unref(&m->store, o);
                return r;
        }
        eviction_note_put(m, o);
        *ret = o;
        return 0;
}

void manager_queue_resources_changed(Manager *m) {
        /* The bus sends PropertiesChanged at its flush; the peers learn it with our next message,
         * rather than at the next protocol period, with or without a bus. */
        m->resources_changed = true;
        m->peers_owe_resources = true;
}

void manager_queue_peers_changed(Manager *m) {
        m->peers_changed = true;
}

kactor_id manager_new_local_id(Manager *m) {
        return (kactor_id) { m->node_hi, ++m->next_local };
}

Actor *manager_find_actor(Manager *m, kactor_id id) {
        Actor *a;
        HASH_FIND(hh, m->actors, &id, sizeof(id), a);
        return a;
}

Object *manager_await_result(Manager *m, kactor_id id, uint64_t prefix, uid_t uid) {
        Object *o;

        /* Bounded: a client asking for ids it never made gets no more than these. */
        if (m->n_workers_to_attach == 0 || id.hi != m->node_hi || (id.lo & ~ID_SEQ_MASK) != prefix ||
            (id.lo & ID_SEQ_MASK) == 0 || m->n_awaited_results >= MANAGER_AWAITED_RESULTS_MAX)
                return NULL;
        if (m->n_awaited_results == m->cap_awaited_results) {
                size_t cap = MAX(m->cap_awaited_results * 2, (size_t) 16);
                kactor_id *n = reallocarray(m->awaited_results, cap, sizeof(*n));
                if (!n)
                        return NULL;
                m->awaited_results = n;
                m->cap_awaited_results = cap;
        }
        /* The store has it (-EEXIST): nothing is owed. */
        if (objstore_add(&m->store, id, &o) < 0)
                return NULL;
        o->uid = uid;
        o->awaited = true;
        m->awaited_results[m->n_awaited_results++] = id;
        return o;
}

void manager_worker_attach_settled(Manager *m, Worker *w) {
        if (!w->to_attach)
                return;
        w->to_attach = false;
        assert(m->n_workers_to_attach > 0);
        if (--m->n_workers_to_attach > 0)
                return;
        /* Every worker that could send one again has re-attached or gone. */
        for (size_t i = 0; i < m->n_awaited_results; i++) {
                Object *o = objstore_find(&m->store, m->awaited_results[i]);
                if (!o || !o->awaited || o->state != OBJECT_PENDING)
                        continue;
                char s[KACTOR_ID_STRING_MAX], message[KACTOR_ID_STRING_MAX + 64];
                kactor_id_to_string(o->id, s);
                snprintf(message, sizeof(message), OBJECT_UNKNOWN_FORMAT, s);
                o->awaited = false;
                (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_OBJECT, message);
        }
        m->awaited_results = mfree(m->awaited_results);
        m->n_awaited_results = m->cap_awaited_results = 0;
}

Object *manager_find_object(Manager *m, kactor_id id) {
        Object *o = objstore_find(&m->store, id);
        if (o || id.hi != m->node_hi)
                return o;
        Actor *a, *tmp;
        HASH_ITER(hh, m->actors, a, tmp)
                manager_read_direct_records(m, a);
        return objstore_find(&m->store, id);
}

void manager_read_direct_records(Manager *m, Actor *a) {
        if (!a->worker || !a->worker->conn || a->worker->n_direct_callers == 0)
                return;
        transport_drain(m, a->worker->conn);
        /* sd-bus sends its answer at once, not at the end of the iteration: what it shows of the
         * records just read is in the journal first. */
        persist_flush(m);
}

Actor *manager_find_actor_by_name(Manager *m, const char *name) {
        Actor *a;
        HASH_FIND(hh_name, m->actors_by_name, name, strlen(name), a);
        return a;
}

static bool is_regular_file(const char *path) {
        struct stat st;
        return stat(path, &st) >= 0 && S_ISREG(st.st_mode);
}

/* Module names resolve to the same file for a while: tasks are submitted by the thousand, and each
 * lookup costs a realpath() and stats. */
#define MODULE_CACHE_USEC (2 * 1000000ULL)

typedef struct ModuleCacheEntry {
        char *name;
        char *path;
        uint64_t until;
        UT_hash_handle hh;
} ModuleCacheEntry;

static void module_cache_free(Manager *m) {
        ModuleCacheEntry *e, *tmp;
        HASH_ITER(hh, m->module_cache, e, tmp) {
                HASH_DEL(m->module_cache, e);
                free(e->name);
                free(e->path);
                free(e);
        }
}

static int manager_resolve_module_uncached(Manager *m, const char *module, char **ret_path, ReqError *e);

int manager_resolve_module(Manager *m, const char *module, char **ret_path, ReqError *e) {
        ModuleCacheEntry *c;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (module) {
                HASH_FIND_STR(m->module_cache, module, c);
                if (c && c->until > now) {
                        char *p = strdup(c->path);
                        if (!p)
                                return -ENOMEM;
                        *ret_path = p;
                        return 0;
                }
                if (c) {
                        HASH_DEL(m->module_cache, c);
                        free(c->name);
                        free(c->path);
                        free(c);
                }
        }
        int r = manager_resolve_module_uncached(m, module, ret_path, e);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (c && (c->name = strdup(module)) && (c->path = strdup(*ret_path))) {
                c->until = now + MODULE_CACHE_USEC;
                HASH_ADD_KEYPTR(hh, m->module_cache, c->name, strlen(c->name), c);
        } else if (c) {
                free(c->name);
                free(c);
        }
        return 0;
}

static int manager_resolve_module_uncached(Manager *m, const char *module, char **ret_path, ReqError *e) {
        char *p;

        if (!module || !*module)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "no module given");
        if (strchr(module, '/')) {
                if (!is_regular_file(module))
                        return req_error(e, KACTOR_ERROR_MODULE_NOT_FOUND, "module %s not found: no such file", module);
                p = realpath(module, NULL);
                if (!p)
                        return -ENOMEM;
                *ret_path = p;
                return 0;
        }

        for (char **d = m->module_path; d && *d; d++) {
                static const char *const suffixes[] = { ".so", "" };
                for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                        if (asprintf(&p, "%s/%s%s", *d, module, suffixes[i]) < 0)
                                return -ENOMEM;
                        if (is_regular_file(p)) {
                                char *real = realpath(p, NULL);
                                free(p);
                                if (!real)
                                        return -ENOMEM;
                                *ret_path = real;
                                return 0;
                        }
                        free(p);
                }
        }

        _cleanup_free_ char *joined = NULL;
        for (char **d = m->module_path; d && *d; d++) {
                char *t;
                if (asprintf(&t, "%s%s%s", joined ?: "", joined ? ":" : "", *d) < 0)
                        return -ENOMEM;
                free(joined);
                joined = t;
        }
        return req_error(e, KACTOR_ERROR_MODULE_NOT_FOUND, "module '%s' not found in the module path (%s)", module,
                         joined ?: "empty");
}

static int on_flush(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        (void) objstore_evict(&m->store);
        tasks_flush(m);
        if (m->peers_owe_resources) {
                m->peers_owe_resources = false;
                cluster_hooks_resources_changed(m);
        }
        /* The journal first: what goes out below may say what it records (persist.c). */
        persist_flush(m);
        if (m->bus_flush)
                m->bus_flush(m);
        transport_flush_all(m);
        cluster_hooks_flush(m);
        return 0;
}

/* Memory freed after a burst (a large Get, many calls) goes back to the system now and then. */
#define MANAGER_TRIM_USEC (5 * 1000000ULL)

static int on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) malloc_trim(0);
        (void) sd_event_source_set_time_relative(s, MANAGER_TRIM_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        /* SIGTERM (systemctl stop and restart, an upgrade) leaves the actors running for the next node
         * manager; SIGINT (Ctrl-C on one run by hand), as kactorctl shutdown, stops them too. */
        log_info("Received %s.", strsignal((int) si->ssi_signo));
        if (si->ssi_signo == SIGINT)
                manager_stop(m);
        else
                manager_detach(m);
        return 0;
}

void manager_detach(Manager *m) {
        Worker *w, *next;

        if (m->stopping)
                return;
        m->stopping = m->detaching = true;
        (void) sd_notify(false, "STOPPING=1");
        log_info("Stopping; %u actor%s keep%s running, for the next node manager started with %s to take over "
                 "(kactorctl shutdown stops them too).",
                 m->n_actors_live, m->n_actors_live == 1 ? "" : "s", m->n_actors_live == 1 ? "s" : "", m->runtime_dir);
        manager_trace_stop(m);

        m->listen_source = sd_event_source_disable_unref(m->listen_source);
        m->listen_fd = safe_close(m->listen_fd);
        /* The workers wait for the socket to be made again (persist.c, docs/restart.md), or, when
         * systemd's fd store keeps it, connect to it meanwhile and wait to be answered. */
        if (m->socket_path && !m->listen_stored)
                (void) unlink(m->socket_path);

        for (w = m->workers.lh_first; w; w = next) {
                next = w->link.le_next;
                if (w->kind == WORKER_ACTOR && w->actor && !w->actor->shadow && w->actor->state != ACTOR_DEAD)
                        w->exited = true; /* not ours to end: it re-attaches to the next node manager */
                else
                        worker_stop(w);
        }
        persist_close(m, true);
        zygote_stop(m);
        (void) sd_event_exit(m->event, 0);
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        Worker *w;
        log_warning("Workers did not stop in time, killing %u.", m->n_workers);
        LIST_FOREACH(w, &m->workers, link)
                if (!w->exited)
                        (void) kill(w->pid, SIGKILL);
        return 0;
}

void manager_maybe_exit(Manager *m) {
        if (m->stopping && m->n_workers == 0 && m->zygote_pid == 0)
                (void) sd_event_exit(m->event, 0);
}

void manager_stop(Manager *m) {
        Worker *w;
        Actor *a, *tmp;

        if (m->stopping)
                return;
        m->stopping = true;
        (void) sd_notify(false, "STOPPING=1");
        manager_trace_stop(m);
        /* Nothing is left to take over: the journal goes, and the socket from systemd's fd store. */
        persist_close(m, false);
        if (m->listen_stored)
                (void) sd_notify(false, "FDSTOREREMOVE=1\nFDNAME=native");

        m->listen_source = sd_event_source_disable_unref(m->listen_source);
        m->listen_fd = safe_close(m->listen_fd);
        if (m->socket_path)
                (void) unlink(m->socket_path);

        /* Stop every actor: pending calls fail with ActorDied. */
        HASH_ITER(hh, m->actors, a, tmp)
                if (a->state != ACTOR_DEAD)
                        (void) actor_kill(a, true, "the node manager stopped");
        LIST_FOREACH(w, &m->workers, link)
                worker_stop(w);

        zygote_stop(m);
        if (m->n_workers == 0 && m->zygote_pid == 0) {
                (void) sd_event_exit(m->event, 0);
                return;
        }
        (void) sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_MONOTONIC, MANAGER_STOP_TIMEOUT_USEC, 0,
                                          on_stop_timeout, m);
}

/* The node's id: the high half of every id made here, so ids are unique across a cluster. */
static int manager_setup_ids(Manager *m) {
        sd_id128_t rnd;
        int r;

        r = sd_id128_randomize(&rnd);
        if (r < 0)
                return r;
        m->node_hi = rnd.qwords[0] ?: 1;
        snprintf(m->node_id, sizeof(m->node_id), "%016" PRIx64, m->node_hi);
        return 0;
}

/* What the configuration names: paths, the module path, limits, the cgroup settings (the bus is
 * the D-Bus service's, manager_bus_setup()). */
static int manager_setup_config(Manager *m, const ManagerConfig *config) {
        int r;

        m->runtime_dir = strdup(config->runtime_dir ?: "/run/kactor");
        if (!m->runtime_dir)
                return -ENOMEM;
        if (asprintf(&m->socket_path, "%s/nodemgr.sock", m->runtime_dir) < 0)
                return -ENOMEM;

        if (config->module_path)
                for (char **p = config->module_path; *p; p++) {
                        _cleanup_strv_free_ char **parts = NULL;

                        r = strv_split(*p, ":", &parts);
                        if (r < 0)
                                return r;
                        r = strv_extend_strv_consume(&m->module_path, parts);
                        if (r < 0)
                                return r;
                        TAKE_PTR(parts);
                }
        if (!m->module_path) {
                r = strv_split(KACTOR_MODULEDIR, ":", &m->module_path);
                if (r < 0)
                        return r;
        }

        m->worker_path = strdup(config->worker_path);
        if (!m->worker_path)
                return -ENOMEM;

        m->lineage_max = config->lineage_max ?: MANAGER_LINEAGE_MAX_DEFAULT;
        m->dead_grace_usec = config->dead_grace_usec != UINT64_MAX ? config->dead_grace_usec
                                                                   : MANAGER_DEAD_GRACE_USEC_DEFAULT;
        m->checkpoint_interval = config->checkpoint_interval != UINT32_MAX ? config->checkpoint_interval
                                                                           : MANAGER_CHECKPOINT_INTERVAL_DEFAULT;

        m->cgroup_manager_kind = config->cgroup_manager;
        m->cgroup_name = config->cgroup_name;
        return 0;
}

/* The CPUs and GPUs actors and tasks are scheduled on. */
static int manager_setup_resources(Manager *m, const ManagerConfig *config) {
        int r;

        double cpus = config->num_cpus > 0 ? config->num_cpus : (double) sysconf(_SC_NPROCESSORS_ONLN);
        /* GPUs: an explicit list of device nodes, a bare count, or what the driver shows. */
        if (config->gpu_devices)
                r = gpu_inventory_from_list(config->gpu_devices, &m->gpu_inventory);
        else if (config->n_gpus == 0)
                r = gpu_discover("", &m->gpu_inventory);
        else
                r = 0;
        if (r < 0)
                return log_error_errno(r, "Failed to find the GPUs' device nodes: %m");
        if (m->gpu_inventory.n_gpus > 0) {
                _cleanup_free_ char **paths = gpu_inventory_paths(&m->gpu_inventory);
                if (!paths)
                        return -ENOMEM;
                r = resources_init_devices(&m->resources, paths, m->gpu_inventory.n_gpus, cpus);
        } else
                r = resources_init(&m->resources, config->n_gpus, cpus);
        return r < 0 ? r : 0;
}

int manager_new(const ManagerConfig *config, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->listen_fd = -1;
        m->zygote_fd = -1;
        frame_init(&m->frame);
        LIST_INIT(&m->conns);
        LIST_INIT(&m->dirty_conns);
        LIST_INIT(&m->workers);
        LIST_INIT(&m->ack_workers);
        LIST_INIT(&m->task_workers);
        LIST_INIT(&m->dead_actors);
        TAILQ_INIT(&m->bus_queue);
        callqueue_init(&m->tasks);

        r = manager_setup_ids(m);
        if (r < 0)
                return r;
        r = manager_setup_config(m, config);
        if (r < 0)
                return r;
        r = manager_setup_resources(m, config);
        if (r < 0)
                return r;
        r = access_setup(m, config->access_group);
        if (r < 0)
                return r;

        objstore_init(&m->store, NULL, m);
        eviction_setup(m, config->object_store_max ?: MANAGER_OBJECT_STORE_MAX_DEFAULT);

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;

        /* What a previous node manager left: the node id at once (before the cluster announces it),
         * its actors after the transports are up (persist_restore()); read before the cgroup manager
         * reaps what it does not know. */
        r = persist_open(m);
        if (r < 0)
                return r; /* logged */

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        manager_trace_stop(m);
        cluster_hooks_free(m);

        Conn *c;
        while ((c = LIST_FIRST(&m->conns))) {
                transport_close(m, c);
                if (LIST_FIRST(&m->conns) == c)
                        break; /* still referenced elsewhere: give up on the rest */
        }

        Worker *w;
        /* Nobody waits for their results any more. */
        LIST_FOREACH(w, &m->workers, link)
                w->to_attach = false;
        m->n_workers_to_attach = 0;
        while ((w = LIST_FIRST(&m->workers)))
                worker_free(w);

        Actor *a, *tmp;
        HASH_ITER(hh, m->actors, a, tmp)
                actor_free(a);
        /* Detaching: the actors' cgroups and scopes stay, with their workers in them. */
        m->cgroups = m->detaching ? cgroup_manager_free_keep(m->cgroups) : cgroup_manager_free(m->cgroups);
        gpu_inventory_done(&m->gpu_inventory);

        Call *call;
        while ((call = callqueue_pop_any(&m->tasks)))
                call_free(m, call);

        objstore_done(&m->store);
        module_cache_free(m);
        tasks_free_caches(m);
        access_done(m);
        frame_done(&m->frame);
        resources_done(&m->resources);
        sd_event_source_disable_unref(m->listen_source);
        sd_event_source_disable_unref(m->flush_source);
        sd_event_source_disable_unref(m->stop_timer);
        sd_event_source_disable_unref(m->trim_source);
        m->forget_timer = sd_event_source_disable_unref(m->forget_timer);
        sd_event_source_disable_unref(m->ack_timer);
        persist_free(m);
        sd_event_source_disable_unref(m->zygote_source);
        safe_close(m->zygote_fd);
        if (m->zygote_pid > 0)
                (void) kill(m->zygote_pid, SIGKILL);
        safe_close(m->listen_fd);
        if (m->socket_path && !m->stopping)
                (void) unlink(m->socket_path);
        /* D-Bus clients still learn that the actors went (InterfacesRemoved), as before the bus
         * closes; the resources, whose owner is leaving, need no word. */
        m->resources_changed = false;
        if (m->peers_owe_resources) {
                m->peers_owe_resources = false;
                cluster_hooks_resources_changed(m);
        }
        if (m->bus_flush)
                m->bus_flush(m);
        if (m->bus_free)
                m->bus_free(m);
        strv_free(m->bus_removed);
        sd_event_unref(m->event);
        free(m->awaited_results);
        free(m->socket_path);
        free(m->runtime_dir);
        free(m->worker_path);
        strv_free(m->module_path);
        free(m);
        return NULL;
}

int manager_start(Manager *m) {
        int r;

        /* Children are watched with child event sources; termination is an event too. A shell that
         * started us in the background may have set SIGINT to be ignored: signalfd would never see it. */
        (void) signal(SIGINT, SIG_DFL);
        (void) signal(SIGTERM, SIG_DFL);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGTERM: %m");
        r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGINT: %m");

        r = sd_event_add_time_relative(m->event, &m->trim_source, CLOCK_MONOTONIC, MANAGER_TRIM_USEC, 0, on_trim, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the trim timer: %m");
        (void) sd_event_source_set_enabled(m->trim_source, SD_EVENT_ON);

        r = sd_event_add_post(m->event, &m->flush_source, on_flush, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add flush source: %m");

        /* Keep only the capabilities the node manager needs (cgroups/privileges.c says which). */
        r = privileges_limit_manager();
        if (r < 0)
                return log_error_errno(r, "Failed to drop capabilities: %m");

        ManagerConfig isolation = { .cgroup_manager = m->cgroup_manager_kind, .cgroup_name = m->cgroup_name };
        r = actor_isolation_setup(m, &isolation);
        if (r < 0)
                return r; /* logged */

        r = zygote_start(m);
        if (r < 0)
                log_warning_errno(r, "Failed to start the fork server, workers are spawned directly: %m");

        manager_trace_start(m);
        return 0;
}

void manager_notify_ready(Manager *m) {
        log_info("kactor-nodemgr %s ready: node %s, %zu GPU%s, %g CPUs, socket %s.", KACTOR_VERSION, m->node_id,
                 m->resources.n_gpus, m->resources.n_gpus == 1 ? "" : "s", m->resources.cpus_total, m->socket_path);
        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving node %s", m->node_id);
}

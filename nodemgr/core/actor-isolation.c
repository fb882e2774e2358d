/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The node manager's side of isolation: each actor's cgroup (or scope) around its worker, the
 * device cgroup for its GPUs, and the return of its GPUs once that cgroup is empty; each task
 * worker's cgroup, which goes with everything in it once the worker is gone. The launcher
 * (worker.c) starts the worker; the worker waits for INIT, which is sent here once the backend has
 * placed it: at once (cgroupfs) or when systemd's job is done (on_actor_placed).
 */

#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "actor-isolation.h"
#include "actor.h"
#include "cgroup-manager.h"
#include "hash-util.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "manager-trace.h"
#include "req-error.h"
#include "tasks.h"
#include "worker-spawn.h"

/* A name for our cgroup subtree: none for the default runtime directory, else one derived from it,
 * so that node managers with their own runtime directories (tests, clusters on one host) never
 * reap each other's cgroups. */
static char *isolation_instance_name(const Manager *m, const ManagerConfig *config) {
        if (config->cgroup_name)
                return strdup(config->cgroup_name);
        if (streq(m->runtime_dir, "/run/kactor"))
                return NULL;
        uint64_t h = hash_fnv1a64(m->runtime_dir, strlen(m->runtime_dir));
        char *s;
        return asprintf(&s, "rt-%016" PRIx64, h) < 0 ? NULL : s;
}

/* The cgroups of actors a previous node manager left for us stay (persist.c). */
static bool isolation_keep_cgroup(const char *kind, const char *id, void *userdata) {
        return persist_keeps_cgroup(userdata, kind, id);
}

int actor_isolation_setup(Manager *m, const ManagerConfig *config) {
        _cleanup_free_ char *name = isolation_instance_name(m, config);
        int kind = CGROUP_MANAGER_AUTO, r;

        if (config->cgroup_manager) {
                kind = cgroup_manager_kind_from_string(config->cgroup_manager);
                if (kind < 0)
                        return log_error_errno(kind, "Unknown cgroup manager '%s'.", config->cgroup_manager);
        }
        r = cgroup_manager_new(m->event, kind, name, &m->cgroups);
        if (r < 0 && kind == CGROUP_MANAGER_AUTO) {
                log_warning_errno(r, "No cgroup manager available, actors run without cgroups: %m");
                r = cgroup_manager_new(m->event, CGROUP_MANAGER_NONE, name, &m->cgroups);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the none cgroup manager: %m");
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to set up the %s cgroup manager: %m",
                                       cgroup_manager_kind_to_string(kind));
        r = cgroup_manager_reap_orphans(m->cgroups, isolation_keep_cgroup, m);
        if (r < 0)
                log_warning_errno(r, "Failed to remove every cgroup a previous node manager left: %m");
        log_info("Cgroup manager: %s%s%s.", cgroup_manager_name(m->cgroups), m->cgroups->root ? ", subtree " : "",
                 m->cgroups->root ?: "");
        return 0;
}

static void actor_isolation_done(Actor *a) {
        if (!a->cgroup)
                return;
        a->cgroup->userdata = NULL;
        if (a->manager->detaching && !a->shadow && a->state != ACTOR_DEAD) {
                /* It keeps running, in its cgroup, for the next node manager (persist.c). */
                actor_cgroup_abandon(a->cgroup);
                a->cgroup = NULL;
        } else
                a->cgroup = actor_cgroup_free(a->cgroup);
}

static void on_actor_cgroup_empty(ActorCgroup *cg, void *userdata) {
        Actor *a = userdata;
        if (!a || a->worker)
                return; /* the worker has not been reaped yet: actor_isolation_worker_gone() follows */
        /* Everything the actor started is gone: its GPUs can go to someone else — unless it is
         * restarting, when its next worker keeps them. */
        if (a->state == ACTOR_DEAD)
                actor_release_resources(a);
        actor_isolation_done(a);
        actor_queue_change(a, ACTOR_CHANGE_GPU_IDS);
}

static void on_actor_placed(ActorCgroup *cg, int r, const char *message, void *userdata) {
        Actor *a = userdata;
        if (!a)
                return;
        if (r >= 0 && a->worker) {
                free(a->unit);
                a->unit = cg->unit ? strdup(cg->unit) : NULL;
                free(a->control_group);
                a->control_group = cg->path ? strdup(cg->path) : NULL;
                /* Tracing follows the actor's threads by their cgroup (v2 id: the directory's inode). */
                struct stat st;
                if (cg->v2_dir && stat(cg->v2_dir, &st) >= 0)
                        manager_trace_actor_cgroup(a->manager, a, (uint64_t) st.st_ino);
                r = worker_send_init(a->worker);
        }
        if (r < 0) {
                _cleanup_free_ char *why = NULL;
                if (asprintf(&why, "could not place the worker in its cgroup: %s", message ?: strerror(-r)) < 0)
                        why = NULL;
                log_actor(LOG_ERR, a->id_string, NULL, "Actor %s: %s", a->id_string, why ?: "placement failed");
                (void) actor_kill(a, true, why ?: "could not place the worker in its cgroup");
        }
}

void actor_isolation_adopt(Actor *a, const ActorCgroupAdopt *spec) {
        Manager *m = a->manager;
        if (!m->cgroups)
                return;
        int r = actor_cgroup_adopt(m->cgroups, spec, on_actor_cgroup_empty, a, &a->cgroup);
        if (r < 0) {
                log_actor(LOG_WARNING, a->id_string, NULL, "Cannot take over the cgroup %s of actor %s: %s",
                          spec->v2_dir, a->id_string, strerror(-r));
                return;
        }
        if (!a->cgroup)
                return;
        free(a->unit);
        a->unit = a->cgroup->unit ? strdup(a->cgroup->unit) : NULL;
        free(a->control_group);
        a->control_group = a->cgroup->path ? strdup(a->cgroup->path) : NULL;
        struct stat st;
        if (a->cgroup->v2_dir && stat(a->cgroup->v2_dir, &st) >= 0)
                manager_trace_actor_cgroup(m, a, (uint64_t) st.st_ino);
}

int actor_isolation_start(Actor *a, Worker *w, ReqError *e) {
        Manager *m = a->manager;
        _cleanup_free_ DeviceRule *rules = NULL;
        _cleanup_free_ char *message = NULL, *description = NULL;
        size_t n_rules = 0;
        int r;

        r = gpu_inventory_rules(&m->gpu_inventory, a->gpus, a->n_gpus, &rules, &n_rules);
        if (r < 0)
                return r;
        if (asprintf(&description, "kactor actor %s (%s)", a->id_string, a->class_name) < 0)
                return -ENOMEM;
        ActorCgroupSpec spec = {
                .id = a->id_string,
                .description = description,
                .pid = w->pid,
                .limits = { .memory_max = a->memory_max, .cpus = a->num_cpus, .tasks_max = a->tasks_max },
                .devices = rules,
                .n_devices = n_rules,
        };
        r = actor_cgroup_new(m->cgroups, &spec, on_actor_placed, on_actor_cgroup_empty, a, &a->cgroup, &message);
        if (r < 0)
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "cannot isolate the actor with %s: %s",
                                 cgroup_manager_name(m->cgroups), message ?: strerror(-r));
        if (r > 0 && !a->cgroup)
                return worker_send_init(w); /* placed in no cgroup (none): nothing to record */
        if (r > 0)
                on_actor_placed(a->cgroup, 0, NULL, a);
        return 0;
}

int actor_isolation_check_limits(Manager *m, const ActorSpec *spec, ReqError *e) {
        CgroupLimits l = {
                .memory_max = spec->memory_max,
                .cpus = spec->num_cpus, /* without cgroups (none) a reservation only, as in Ray */
                .tasks_max = spec->tasks_max,
        };
        const char *missing = NULL;
        int r = cgroup_manager_check_limits(m->cgroups, &l, &missing);
        if (r < 0)
                return r;
        if (missing)
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "cannot apply %s", missing);
        return 0;
}

void actor_isolation_kill(Actor *a) {
        if (a->cgroup)
                (void) actor_cgroup_kill(a->cgroup);
        else if (a->worker && !a->worker->exited)
                (void) kill(a->worker->pid, SIGKILL);
}

void actor_isolation_worker_gone(Actor *a) {
        if (!a->cgroup) {
                actor_release_resources(a);
                return;
        }
        /* Whatever the worker left behind goes with it; the GPUs return once the cgroup is empty
         * (on_actor_cgroup_empty, from cgroup.events). */
        (void) actor_cgroup_kill(a->cgroup);
}

char *actor_isolation_death_cause(Actor *a, const Worker *w, const char *cause) {
        uint64_t kills;
        char *s;
        int r;

        /* The OOM killer sends SIGKILL. A worker of a previous node manager left no status: its cgroup's
         * counter alone tells. */
        if (!a->cgroup || !w || !(w->adopted || (w->exit_code == CLD_KILLED && w->exit_status == SIGKILL)))
                return NULL;
        if (actor_cgroup_oom_kills(a->cgroup, &kills) < 0 || kills == 0)
                return NULL;
        if (a->cgroup->limits.memory_max > 0)
                r = asprintf(&s, "out of memory: the worker was killed by the kernel's OOM killer at "
                             "MemoryMax=%" PRIu64 " bytes (%s)", a->cgroup->limits.memory_max, cause);
        else
                r = asprintf(&s, "out of memory: the worker was killed by the kernel's OOM killer, the node "
                             "being out of memory (it has no MemoryMax) (%s)", cause);
        return r < 0 ? NULL : s;
}

void actor_isolation_free_cgroup(Actor *a) {
        actor_isolation_done(a);
}

void actor_isolation_free(Actor *a) {
        actor_isolation_done(a);
        free(a->unit);
        free(a->control_group);
        a->unit = a->control_group = NULL;
}

/* --- task workers ---------------------------------------------------------------------------- */

static void on_task_cgroup_empty(ActorCgroup *cg, void *userdata) {
        if (userdata)
                return; /* the worker has not been reaped yet: task_isolation_worker_gone() follows */
        actor_cgroup_free(cg);
}

static void task_worker_set_start_error(Worker *w, int r, const char *message) {
        free(w->start_error);
        if (asprintf(&w->start_error, "could not place it in its cgroup: %s", message ?: strerror(-r)) < 0)
                w->start_error = NULL;
}

static void on_task_worker_placed(ActorCgroup *cg, int r, const char *message, void *userdata) {
        Worker *w = userdata;

        if (w && r >= 0)
                r = worker_send_init(w);
        if (w && r >= 0)
                return;
        if (w) {
                /* Reaped by the launcher; tasks_worker_gone() fails the task that waited for it. */
                task_worker_set_start_error(w, r, message);
                w->cgroup = NULL;
                (void) kill(w->pid, SIGKILL);
        }
        /* Failed, or its worker went before it was placed: nothing will use it. */
        actor_cgroup_free(cg);
}

int task_isolation_start(Worker *w) {
        Manager *m = w->manager;
        _cleanup_free_ char *id = NULL, *description = NULL, *message = NULL;
        int r;

        if (asprintf(&id, "%u-%" PRIu64, (unsigned) w->uid, ++m->next_task_worker) < 0 ||
            asprintf(&description, "kactor task worker of user %u", (unsigned) w->uid) < 0)
                return -ENOMEM;
        /* No GPUs and no limits: the device program denies every GPU, NumCpus is a reservation. */
        ActorCgroupSpec spec = {
                .kind = "task",
                .id = id,
                .description = description,
                .pid = w->pid,
        };
        r = actor_cgroup_new(m->cgroups, &spec, on_task_worker_placed, on_task_cgroup_empty, w, &w->cgroup,
                             &message);
        if (r < 0) {
                task_worker_set_start_error(w, r, message);
                return r;
        }
        if (r > 0 && !w->cgroup)
                return worker_send_init(w); /* placed in no cgroup (none) */
        if (r > 0)
                on_task_worker_placed(w->cgroup, 0, NULL, w);
        return 0;
}

void task_isolation_worker_gone(Worker *w) {
        ActorCgroup *cg = TAKE_PTR(w->cgroup);
        if (!cg)
                return;
        /* The cgroup outlives the worker until it is empty (on_task_cgroup_empty), or until the
         * cgroup manager goes at the node manager's stop, which kills what is left. */
        cg->userdata = NULL;
        if (cg->placed)
                (void) actor_cgroup_kill(cg);
}

/*
 * A module file is loaded into a process that runs as the caller: refuse one that anyone but root
 * or the caller could have written (the file, or a directory on its path without the sticky bit).
 */
int actor_isolation_check_module(const char *path, uid_t uid, ReqError *e) {
        _cleanup_free_ char *p = strdup(path);
        struct stat st;

        if (!p)
                return -ENOMEM;
        for (bool file = true;; file = false) {
                if (stat(p, &st) < 0)
                        return req_error(e, KACTOR_ERROR_MODULE_NOT_FOUND, "cannot check %s: %m", p);
                bool sticky_dir = !file && (st.st_mode & S_ISVTX);
                if ((st.st_uid != 0 && st.st_uid != uid) || (!sticky_dir && (st.st_mode & (S_IWGRP | S_IWOTH))))
                        return req_error(e, KACTOR_ERROR_ACCESS_DENIED,
                                         "refusing module %s: %s is writable by others than root and the caller "
                                         "(owner %u, mode %04o)",
                                         path, p, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
                char *slash = strrchr(p, '/');
                if (!slash || slash == p)
                        break;
                *slash = 0;
        }
        return 0;
}

/* The uid and gid a worker runs as: the caller's, or for root a User option. */
int actor_isolation_resolve_user(const ActorSpec *spec, uid_t *ret_uid, gid_t *ret_gid, ReqError *e) {
        struct passwd pw, *res = NULL;
        char buf[4096];

        if (spec->user) {
                if (spec->uid != 0)
                        return req_error(e, KACTOR_ERROR_ACCESS_DENIED, "only root may choose the User of an actor");
                char *end;
                unsigned long n = strtoul(spec->user, &end, 10);
                if (*spec->user && !*end)
                        (void) getpwuid_r((uid_t) n, &pw, buf, sizeof(buf), &res);
                else
                        (void) getpwnam_r(spec->user, &pw, buf, sizeof(buf), &res);
                if (!res && *spec->user && !*end) {
                        *ret_uid = (uid_t) n;
                        *ret_gid = (gid_t) n;
                        return 0;
                }
                if (!res)
                        return req_error(e, KACTOR_ERROR_INVALID_ARGS, "no such user: %s", spec->user);
                *ret_uid = res->pw_uid;
                *ret_gid = res->pw_gid;
                return 0;
        }
        (void) getpwuid_r(spec->uid, &pw, buf, sizeof(buf), &res);
        *ret_uid = spec->uid;
        *ret_gid = res ? res->pw_gid : (gid_t) spec->uid;
        return 0;
}

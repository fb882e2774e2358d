/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The systemd backend: a transient scope kactor-actor-<id>.scope (kactor-task-<id>.scope for a task
 * worker) in kactor.slice (or kactor-NAME.slice, which systemd puts inside kactor.slice), made with
 * StartTransientUnit (PIDs, Delegate=yes, Slice, Description, CollectMode=inactive-or-failed, and the
 * limits as scope properties). Placement is asynchronous: the JobRemoved match is installed once,
 * before any call, and the job's result must be "done". The worker is then moved into a leaf
 * "worker" inside the delegated scope, where our device program is attached: systemd never touches
 * what is below a delegated cgroup, so a daemon-reload cannot strip it.
 */

#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cgroup-manager.h"
#include "macro.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"

/* The bus allows a connection only so many calls awaiting replies (128 by default): past this many,
 * scope requests wait their turn. */
#define SD_CALLS_MAX 64

typedef struct SdCgroup SdCgroup;

typedef struct SdManager {
        sd_bus *bus;
        sd_bus_slot *job_removed;
        char *slice;
        unsigned n_calls;           /* StartTransientUnit / ResetFailedUnit awaiting replies */
        SdCgroup *waiting_head, *waiting_tail; /* scopes to ask for once there is room */
} SdManager;

struct SdCgroup {
        ActorCgroup *cg;
        sd_bus_slot *call;
        char *job;
        bool retried;
        bool waiting;
        SdCgroup *next_waiting;
};

static int sd_start_scope_now(ActorCgroup *cg);

/* A reply came: the next waiting scope may be asked for. */
static void sd_call_done(SdManager *sm) {
        if (sm->n_calls > 0)
                sm->n_calls--;
        while (sm->waiting_head && sm->n_calls < SD_CALLS_MAX) {
                SdCgroup *sc = sm->waiting_head;
                sm->waiting_head = sc->next_waiting;
                if (!sm->waiting_head)
                        sm->waiting_tail = NULL;
                sc->waiting = false;
                sc->next_waiting = NULL;
                int r = sd_start_scope_now(sc->cg);
                if (r < 0)
                        actor_cgroup_placed(sc->cg, r, "cannot ask systemd for the scope");
        }
}

static void sd_unqueue(SdManager *sm, SdCgroup *sc) {
        if (!sc->waiting)
                return;
        SdCgroup **pp = &sm->waiting_head, *prev = NULL;
        for (; *pp; prev = *pp, pp = &(*pp)->next_waiting)
                if (*pp == sc) {
                        *pp = sc->next_waiting;
                        if (sm->waiting_tail == sc)
                                sm->waiting_tail = prev;
                        break;
                }
        sc->waiting = false;
}

/* Whether the unified hierarchy has the controller (pure v2, or a hybrid host that moved it). */
static bool sd_v2_has(CgroupManager *m, const char *ctrl) {
        const char *p = m->v2_controllers;
        size_t n = strlen(ctrl);
        while (p && *p) {
                while (*p == ' ' || *p == '\n')
                        p++;
                size_t k = strcspn(p, " \n");
                if (k == n && strncmp(p, ctrl, n) == 0)
                        return true;
                p += k;
        }
        return false;
}

/* Whether a v1 hierarchy holds the controller (hybrid and legacy hosts) where systemd can make
 * cgroups: a container may see it mounted read-only, where no limit of it would apply. */
static bool sd_v1_has(const char *ctrl) {
        char path[128];
        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", ctrl);
        return access(path, W_OK) >= 0;
}

static int sd_start_scope(ActorCgroup *cg);

static void sd_place_finish(ActorCgroup *cg, const char *result) {
        CgroupManager *m = cg->manager;
        SdCgroup *sc = cg->backend;
        _cleanup_free_ char *message = NULL;
        int r;

        free(sc->job);
        sc->job = NULL;
        if (!streq(result, "done")) {
                if (asprintf(&message, "the job for %s finished with result '%s'", cg->unit, result) < 0)
                        message = NULL;
                actor_cgroup_placed(cg, -EIO, message);
                return;
        }
        /* The leaf inside the delegated scope: ours to manage. */
        if (asprintf(&cg->path, "/%s/%s/worker", m->root, cg->unit) < 0 ||
            asprintf(&cg->v2_dir, "%s%s", m->v2_mount, cg->path) < 0) {
                actor_cgroup_placed(cg, -ENOMEM, NULL);
                return;
        }
        if (mkdir(cg->v2_dir, 0755) < 0 && errno != EEXIST) {
                r = negative_errno();
                if (asprintf(&message, "cannot create %s in the delegated scope: %s", cg->path, strerror(-r)) < 0)
                        message = NULL;
                free(cg->v2_dir);
                cg->v2_dir = NULL;
                actor_cgroup_placed(cg, r, message);
                return;
        }
        r = actor_cgroup_setup_leaf(cg);
        if (r < 0) {
                if (asprintf(&message, "cannot set up %s (device program, cgroup.procs): %s", cg->path, strerror(-r)) < 0)
                        message = NULL;
                actor_cgroup_placed(cg, r, message);
                return;
        }
        actor_cgroup_placed(cg, 0, NULL);
}

static int on_job_removed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        CgroupManager *m = userdata;
        const char *job, *unit, *result;
        uint32_t id;
        ActorCgroup *cg;

        if (sd_bus_message_read(msg, "uoss", &id, &job, &unit, &result) < 0)
                return 0;
        LIST_FOREACH(cg, &m->cgroups, link) {
                SdCgroup *sc = cg->backend;
                if (sc && sc->job && streq(sc->job, job)) {
                        sd_place_finish(cg, result);
                        break;
                }
        }
        return 0;
}

static int on_reset_failed(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ActorCgroup *cg = userdata;
        SdCgroup *sc = cg->backend;
        sc->call = sd_bus_slot_unref(sc->call);
        sd_call_done(cg->manager->backend);
        int r = sd_start_scope(cg);
        if (r < 0)
                actor_cgroup_placed(cg, r, "cannot start the scope again");
        return 0;
}

static int on_start_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        ActorCgroup *cg = userdata;
        SdCgroup *sc = cg->backend;
        CgroupManager *m = cg->manager;
        SdManager *sm = m->backend;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *job;
        int r;

        sc->call = sd_bus_slot_unref(sc->call);
        sd_call_done(sm);
        if (e) {
                if (sd_bus_error_has_name(e, "org.freedesktop.systemd1.UnitExists") && !sc->retried) {
                        /* A failed scope of that name still lingers: reset it and try once more. */
                        sc->retried = true;
                        r = sd_bus_call_method_async(sm->bus, &sc->call, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                                     "ResetFailedUnit", on_reset_failed, cg, "s", cg->unit);
                        if (r >= 0) {
                                sm->n_calls++;
                                return 0;
                        }
                }
                _cleanup_free_ char *message = NULL;
                if (asprintf(&message, "StartTransientUnit(%s): %s", cg->unit, e->message ?: e->name) < 0)
                        message = NULL;
                actor_cgroup_placed(cg, -sd_bus_error_get_errno(e) ?: -EIO, message);
                return 0;
        }
        r = sd_bus_message_read(reply, "o", &job);
        if (r < 0 || !(sc->job = strdup(job)))
                actor_cgroup_placed(cg, r < 0 ? r : -ENOMEM, "bad reply to StartTransientUnit");
        return 0;
}

static int sd_start_scope(ActorCgroup *cg) {
        SdManager *sm = cg->manager->backend;
        SdCgroup *sc = cg->backend;

        if (sm->n_calls < SD_CALLS_MAX)
                return sd_start_scope_now(cg);
        sc->cg = cg;
        sc->waiting = true;
        if (sm->waiting_tail)
                sm->waiting_tail->next_waiting = sc;
        else
                sm->waiting_head = sc;
        sm->waiting_tail = sc;
        return 0;
}

static int sd_start_scope_now(ActorCgroup *cg) {
        CgroupManager *m = cg->manager;
        SdManager *sm = m->backend;
        SdCgroup *sc = cg->backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        _cleanup_free_ char *description = NULL;
        int r;

        if (asprintf(&description, "kactor %s %s", cg->kind, cg->id) < 0)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(sm->bus, &msg, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                           "StartTransientUnit");
        if (r >= 0)
                r = sd_bus_message_append(msg, "ss", cg->unit, "fail");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(sv)");
        if (r >= 0)
                r = sd_bus_message_append(msg, "(sv)(sv)(sv)(sv)", "Slice", "s", sm->slice, "Description", "s",
                                          description, "Delegate", "b", 1, "CollectMode", "s", "inactive-or-failed");
        if (r >= 0)
                r = sd_bus_message_append(msg, "(sv)", "PIDs", "au", 1, (uint32_t) cg->pid);
        if (r >= 0 && cg->limits.memory_max > 0)
                r = sd_bus_message_append(msg, "(sv)", sd_v2_has(cg->manager, "memory") ? "MemoryMax" : "MemoryLimit", "t",
                                          cg->limits.memory_max);
        if (r >= 0 && cg->limits.cpus > 0)
                r = sd_bus_message_append(msg, "(sv)", "CPUQuotaPerSecUSec", "t",
                                          (uint64_t) (cg->limits.cpus * 1000000 + 0.5));
        if (r >= 0 && cg->limits.tasks_max > 0)
                r = sd_bus_message_append(msg, "(sv)", "TasksMax", "t", cg->limits.tasks_max);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_append(msg, "a(sa(sv))", 0);
        if (r < 0)
                return r;
        r = sd_bus_call_async(sm->bus, &sc->call, msg, on_start_reply, cg, 0);
        if (r >= 0)
                sm->n_calls++;
        return r;
}

static int sd_init(CgroupManager *m) {
        SdManager *sm = calloc(1, sizeof(*sm));
        _cleanup_free_ char *root = NULL;
        int r;

        if (!sm)
                return -ENOMEM;
        m->backend = sm;
        /* kactor-NAME.slice lies inside kactor.slice by systemd's naming rule. */
        const char *name = strchr(m->root, '/');
        if (name) {
                if (asprintf(&sm->slice, "kactor-%s.slice", name + 1) < 0 ||
                    asprintf(&root, "kactor.slice/%s", sm->slice) < 0)
                        return -ENOMEM;
        } else if (!(sm->slice = strdup("kactor.slice")) || !(root = strdup("kactor.slice")))
                return -ENOMEM;
        free(m->root);
        m->root = TAKE_PTR(root);

        r = sd_bus_open_system(&sm->bus);
        if (r < 0)
                return r;
        /* Before any StartTransientUnit: JobRemoved for our jobs must not be missed. */
        r = sd_bus_match_signal(sm->bus, &sm->job_removed, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "JobRemoved",
                                on_job_removed, m);
        if (r < 0)
                return r;
        r = sd_bus_call_method(sm->bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "Subscribe", NULL, NULL, NULL);
        if (r < 0)
                return r;
        return sd_bus_attach_event(sm->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
}

static void sd_done(CgroupManager *m, bool keep_subtree) {
        SdManager *sm = m->backend;
        if (!sm)
                return;
        sd_bus_slot_unref(sm->job_removed);
        if (sm->bus) {
                (void) sd_bus_flush(sm->bus);
                sd_bus_detach_event(sm->bus);
        }
        sd_bus_flush_close_unref(sm->bus);
        free(sm->slice);
        free(sm);
        m->backend = NULL;
}

/* systemd applies a limit on the hierarchy that holds its controller — through a property of that
 * hierarchy: MemoryMax= on v2, MemoryLimit= on v1 (a MemoryMax= systemd shows there is enforced
 * nowhere). A controller in neither is refused, never silently ignored. */
static int sd_check_limits(CgroupManager *m, const CgroupLimits *l, const char **ret_missing) {
        *ret_missing = NULL;
        if (l->memory_max > 0 && !sd_v2_has(m, "memory") && !sd_v1_has("memory"))
                *ret_missing = "MemoryMax (no memory controller systemd can use: none on cgroup v2, and v1's is missing or read-only)";
        else if (l->tasks_max > 0 && !sd_v2_has(m, "pids") && !sd_v1_has("pids"))
                *ret_missing = "TasksMax (no pids controller systemd can use: none on cgroup v2, and v1's is missing or read-only)";
        else if (l->cpus > 0 && !sd_v2_has(m, "cpu") && !sd_v1_has("cpu"))
                *ret_missing = "NumCpus (no cpu controller systemd can use: none on cgroup v2, and v1's is missing or read-only)";
        return 0;
}

static int sd_place(ActorCgroup *cg, char **ret_message) {
        SdCgroup *sc = calloc(1, sizeof(*sc));
        if (!sc)
                return -ENOMEM;
        sc->cg = cg;
        cg->backend = sc;
        if (asprintf(&cg->unit, "kactor-%s-%s.scope", cg->kind, cg->id) < 0) {
                cg->unit = NULL;
                return -ENOMEM;
        }
        int r = sd_start_scope(cg);
        if (r < 0 && asprintf(ret_message, "cannot ask systemd for %s: %s", cg->unit, strerror(-r)) < 0)
                *ret_message = NULL;
        return r < 0 ? r : 0;
}

static int sd_adopt(ActorCgroup *cg) {
        CgroupManager *m = cg->manager;
        SdCgroup *sc;
        int r;

        r = actor_cgroup_adopt_name(&cg->unit, "kactor-%s-%s.scope", cg->kind, cg->id);
        if (r >= 0)
                r = actor_cgroup_adopt_name(&cg->path, "/%s/%s/worker", m->root, cg->unit);
        if (r >= 0)
                r = actor_cgroup_adopt_name(&cg->v2_dir, "%s%s", m->v2_mount, cg->path);
        if (r < 0)
                return r;
        /* The leaf lives as long as the scope: systemd removes the scope's cgroup when it stops. */
        if (access(cg->v2_dir, F_OK) < 0)
                return negative_errno();
        sc = calloc(1, sizeof(*sc));
        if (!sc)
                return -ENOMEM;
        sc->cg = cg;
        cg->backend = sc; /* placed long ago: no call, no job */
        return 0;
}

/* Forgets the scope's pending call or job; asks systemd for nothing. */
static void sd_abandon(ActorCgroup *cg) {
        SdManager *sm = cg->manager->backend;
        SdCgroup *sc = cg->backend;

        if (sc) {
                if (sm)
                        sd_unqueue(sm, sc);
                if (sc->call && sm)
                        sd_call_done(sm); /* its reply will not be counted now */
                sd_bus_slot_unref(sc->call);
                free(sc->job);
        }
        free(sc);
        cg->backend = NULL;
}

static void sd_destroy(ActorCgroup *cg) {
        SdManager *sm = cg->manager->backend;

        if (cg->v2_dir)
                (void) rmdir(cg->v2_dir);
        if (cg->unit && sm && sm->bus)
                /* Fire and forget: the scope is empty; CollectMode= lets systemd forget it. */
                (void) sd_bus_call_method_async(sm->bus, NULL, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "StopUnit",
                                                NULL, NULL, "ss", cg->unit, "replace");
        sd_abandon(cg);
}

/* Scopes a node manager that crashed left in our slice: stop them (systemd kills what is inside),
 * except those the caller keeps to adopt. */
static int sd_reap_orphans(CgroupManager *m, actor_cgroup_keep_t keep, void *userdata) {
        SdManager *sm = m->backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name;
        int r;

        r = sd_bus_call_method(sm->bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "ListUnitsByPatterns", NULL,
                               &reply, "asas", 0, 2, "kactor-actor-*.scope", "kactor-task-*.scope");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(ssssssouso)", &name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                        NULL)) > 0) {
                _cleanup_free_ char *dir = NULL;
                if (asprintf(&dir, "%s/%s/%s", m->v2_mount, m->root, name) < 0)
                        return -ENOMEM;
                if (access(dir, F_OK) < 0)
                        continue; /* another node manager's */
                /* kactor-<kind>-<id>.scope, as the patterns guarantee */
                size_t len = strlen(name), pre = strlen("kactor-"), suf = strlen(".scope");
                if (len > pre + suf && actor_cgroup_name_kept(name + pre, len - pre - suf, keep, userdata))
                        continue;
                (void) sd_bus_call_method(sm->bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "StopUnit", NULL, NULL,
                                          "ss", name, "replace");
        }
        return r;
}

/* The memory cgroup with the limit is the scope's, where systemd put it (the worker's leaf below it on
 * v2 counts in the scope's memory.events; on v1 the worker stays in the scope's own memory cgroup). */
static int sd_oom_kills(ActorCgroup *cg, uint64_t *ret) {
        CgroupManager *m = cg->manager;
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!cg->unit)
                return -ENODATA;
        if (sd_v2_has(m, "memory")) {
                if (asprintf(&dir, "%s/%s/%s", m->v2_mount, m->root, cg->unit) < 0)
                        return -ENOMEM;
                r = cg_read_keyed(dir, "memory.events", "oom_kill", ret);
        } else {
                if (asprintf(&dir, "/sys/fs/cgroup/memory/%s/%s", m->root, cg->unit) < 0)
                        return -ENOMEM;
                r = cg_read_keyed(dir, "memory.oom_control", "oom_kill", ret);
        }
        /* Without a memory limit or accounting systemd gives the scope no memory cgroup: none counts. */
        return r == -ENOENT ? -ENODATA : r;
}

const CgroupBackendOps cgroup_backend_systemd = {
        .name = "systemd",
        .init = sd_init,
        .done = sd_done,
        .check_limits = sd_check_limits,
        .reap_orphans = sd_reap_orphans,
        .place = sd_place,
        .adopt = sd_adopt,
        .destroy = sd_destroy,
        .abandon = sd_abandon,
        .oom_kills = sd_oom_kills,
};

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The cgroupfs backend: actor-<id> (task-<id> for a task worker) under the kactor subtree of the v2
 * hierarchy (cgroupfs directly: mkdir, cgroup.procs, cgroup.kill, cgroup.events, the device
 * program), and, for limits whose controller is bound to cgroup v1 (hybrid hosts), the same path in
 * that controller's hierarchy through libcgroup. Controller cgroups are made only for the limits an
 * actor asks for.
 */

#include <dirent.h>
#include <inttypes.h>
#include <libcgroup.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cgroup-manager.h"
#include "macro.h"

#define ORPHAN_TIMEOUT_USEC (5 * 1000000ULL)

typedef enum ControllerPlace { CONTROLLER_MISSING, CONTROLLER_V2, CONTROLLER_V1 } ControllerPlace;

enum { CTRL_MEMORY, CTRL_CPU, CTRL_PIDS, _CTRL_MAX };
static const char *const controller_names[_CTRL_MAX] = { "memory", "cpu", "pids" };
/* The limit each controller enforces, as CreateActor names it. */
static const char *const limit_names[_CTRL_MAX] = { "MemoryMax", "NumCpus", "TasksMax" };

/* Why a limit cannot be applied, per controller: what check_limits answers, so CreateActor fails naming
 * the limit and the reason. */
static const char *const missing_absent[_CTRL_MAX] = {
        "MemoryMax (no memory controller on this host: none on cgroup v2, none mounted writable on v1)",
        "NumCpus (no cpu controller on this host: none on cgroup v2, none mounted writable on v1)",
        "TasksMax (no pids controller on this host: none on cgroup v2, none mounted writable on v1)",
};
static const char *const missing_undelegated[_CTRL_MAX] = {
        "MemoryMax (the memory controller of cgroup v2 cannot be enabled for kactor's cgroups: "
        "cgroup.subtree_control refused it)",
        "NumCpus (the cpu controller of cgroup v2 cannot be enabled for kactor's cgroups: "
        "cgroup.subtree_control refused it)",
        "TasksMax (the pids controller of cgroup v2 cannot be enabled for kactor's cgroups: "
        "cgroup.subtree_control refused it)",
};
static const char *const missing_no_libcgroup[_CTRL_MAX] = {
        "MemoryMax (memory is a cgroup v1 controller here, and libcgroup cannot reach it)",
        "NumCpus (cpu is a cgroup v1 controller here, and libcgroup cannot reach it)",
        "TasksMax (pids is a cgroup v1 controller here, and libcgroup cannot reach it)",
};

/* CFS bandwidth: periods of 100 ms (the kernel's default); 1 s ones where 100 ms would give less than
 * the kernel's minimum quota of 1 ms (CGROUP_CPUS_MIN is what 1 s allows). */
#define CPU_PERIOD_USEC 100000ULL
#define CPU_PERIOD_LONG_USEC 1000000ULL
#define CPU_QUOTA_MIN_USEC 1000ULL

typedef struct FsManager {
        ControllerPlace place[_CTRL_MAX];
        const char *missing[_CTRL_MAX]; /* why, where place is CONTROLLER_MISSING */
        char *v1_mount[_CTRL_MAX];
        bool libcgroup_ready;
} FsManager;

typedef struct FsCgroup {
        bool v1_used[_CTRL_MAX];
        char *rel; /* root/<kind>-<id> */
} FsCgroup;

static bool word_in(const char *list, const char *word) {
        size_t n = strlen(word);
        for (const char *p = list; p && (p = strstr(p, word)); p += n)
                if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ' || p[n] == '\n'))
                        return true;
        return false;
}

static void fs_cpu_bandwidth(double cpus, uint64_t *ret_quota, uint64_t *ret_period) {
        bool short_ok = (uint64_t) (cpus * CPU_PERIOD_USEC + 0.5) >= CPU_QUOTA_MIN_USEC;
        uint64_t period = short_ok ? CPU_PERIOD_USEC : CPU_PERIOD_LONG_USEC;
        *ret_period = period;
        *ret_quota = (uint64_t) (cpus * (double) period + 0.5);
}

static int mkdir_p(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                                return negative_errno();
                        *s = '/';
                }
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

static int fs_init(CgroupManager *m) {
        FsManager *fm = calloc(1, sizeof(*fm));
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!fm)
                return -ENOMEM;
        m->backend = fm;

        for (int i = 0; i < _CTRL_MAX; i++) {
                if (word_in(m->v2_controllers, controller_names[i])) {
                        fm->place[i] = CONTROLLER_V2;
                        continue;
                }
                _cleanup_free_ char *v1 = NULL;
                if (asprintf(&v1, "/sys/fs/cgroup/%s/cgroup.procs", controller_names[i]) < 0)
                        return -ENOMEM;
                if (access(v1, F_OK) >= 0)
                        fm->place[i] = CONTROLLER_V1;
                else
                        fm->missing[i] = missing_absent[i];
        }
        bool any_v1 = false;
        for (int i = 0; i < _CTRL_MAX; i++)
                any_v1 |= fm->place[i] == CONTROLLER_V1;
        if (any_v1) {
                r = cgroup_init();
                if (r != 0) {
                        /* Without libcgroup the v1 controllers are out of reach: limits on them are refused. */
                        for (int i = 0; i < _CTRL_MAX; i++)
                                if (fm->place[i] == CONTROLLER_V1) {
                                        fm->place[i] = CONTROLLER_MISSING;
                                        fm->missing[i] = missing_no_libcgroup[i];
                                }
                } else {
                        fm->libcgroup_ready = true;
                        for (int i = 0; i < _CTRL_MAX; i++) {
                                if (fm->place[i] != CONTROLLER_V1)
                                        continue;
                                const char *name = controller_names[i];
                                if (cgroup_get_subsys_mount_point(name, &fm->v1_mount[i]) != 0) {
                                        fm->place[i] = CONTROLLER_MISSING;
                                        fm->missing[i] = missing_no_libcgroup[i];
                                } else if (access(fm->v1_mount[i], W_OK) < 0) {
                                        /* Read-only (a container's view): no cgroup of ours there. */
                                        fm->place[i] = CONTROLLER_MISSING;
                                        fm->missing[i] = missing_absent[i];
                                }
                        }
                }
        }

        if (asprintf(&dir, "%s/%s", m->v2_mount, m->root) < 0)
                return -ENOMEM;
        /* Another node manager that stops removes "kactor" once it is empty, maybe between our mkdir of
         * it and of our subtree: make it again (a few times; each is a stop of another manager). */
        for (int i = 0; i < 3; i++) {
                r = mkdir_p(dir);
                if (r != -ENOENT)
                        break;
        }
        if (r < 0)
                return r;

        /* Pure v2: hand the controllers down to the actors (inner nodes hold no processes). */
        _cleanup_free_ char *enable = NULL;
        for (int i = 0; i < _CTRL_MAX; i++)
                if (fm->place[i] == CONTROLLER_V2) {
                        char *t;
                        if (asprintf(&t, "%s+%s ", enable ?: "", controller_names[i]) < 0)
                                return -ENOMEM;
                        free(enable);
                        enable = t;
                }
        if (enable) {
                _cleanup_free_ char *p = strdup(m->root);
                if (!p)
                        return -ENOMEM;
                (void) cg_write_file(m->v2_mount, "cgroup.subtree_control", enable);
                for (char *s = p; ; s++)
                        if (*s == '/' || *s == 0) {
                                char saved = *s;
                                _cleanup_free_ char *d = NULL;
                                *s = 0;
                                if (asprintf(&d, "%s/%s", m->v2_mount, p) < 0)
                                        return -ENOMEM;
                                (void) cg_write_file(d, "cgroup.subtree_control", enable);
                                *s = saved;
                                if (!saved)
                                        break;
                        }
                /* A controller our subtree does not hand down has no files in the actors' cgroups: its
                 * limit is refused at CreateActor, not found missing at placement. */
                _cleanup_free_ char *enabled = NULL;
                (void) cg_read_file(dir, "cgroup.subtree_control", &enabled);
                for (int i = 0; i < _CTRL_MAX; i++)
                        if (fm->place[i] == CONTROLLER_V2 && !word_in(enabled, controller_names[i])) {
                                fm->place[i] = CONTROLLER_MISSING;
                                fm->missing[i] = missing_undelegated[i];
                        }
        }
        return 0;
}

/* Removes our subtree (and "kactor" when no other node manager uses it); best effort. */
static void fs_remove_root(CgroupManager *m) {
        FsManager *fm = m->backend;
        _cleanup_free_ char *p = strdup(m->root);
        if (!p)
                return;
        for (;;) {
                _cleanup_free_ char *d = NULL;
                if (asprintf(&d, "%s/%s", m->v2_mount, p) >= 0)
                        (void) rmdir(d);
                for (int i = 0; fm && i < _CTRL_MAX; i++) {
                        _cleanup_free_ char *v1 = NULL;
                        if (fm->v1_mount[i] && asprintf(&v1, "%s/%s", fm->v1_mount[i], p) >= 0)
                                (void) rmdir(v1);
                }
                char *slash = strrchr(p, '/');
                if (!slash)
                        break;
                *slash = 0;
        }
}

static void fs_done(CgroupManager *m, bool keep_subtree) {
        FsManager *fm = m->backend;
        if (!keep_subtree && m->v2_mount && m->root)
                fs_remove_root(m);
        if (fm)
                for (int i = 0; i < _CTRL_MAX; i++)
                        free(fm->v1_mount[i]);
        free(fm);
        m->backend = NULL;
}

static int fs_check_limits(CgroupManager *m, const CgroupLimits *l, const char **ret_missing) {
        FsManager *fm = m->backend;
        bool asked[_CTRL_MAX] = {
                [CTRL_MEMORY] = l->memory_max > 0,
                [CTRL_CPU] = l->cpus > 0,
                [CTRL_PIDS] = l->tasks_max > 0,
        };
        *ret_missing = NULL;
        for (int i = 0; i < _CTRL_MAX; i++)
                if (asked[i] && fm->place[i] == CONTROLLER_MISSING) {
                        *ret_missing = fm->missing[i] ?: missing_absent[i];
                        break;
                }
        return 0;
}

/* Writes a limit file, saying which limit it was for when it fails. */
static int fs_write_limit(const char *dir, const char *file, const char *value, int ctrl, const char *path,
                          char **ret_message) {
        int r = cg_write_file(dir, file, value);
        if (r < 0 && asprintf(ret_message, "cannot apply %s to cgroup %s: writing %s %s: %s",
                              limit_names[ctrl], path, file, value, strerror(-r)) < 0)
                *ret_message = NULL;
        return r;
}

/* The v1 memory cgroup's files beyond the limit libcgroup wrote: swap must not take what the limit
 * keeps out, so memory+swap gets the same limit where swap is accounted (memsw), and the cgroup's
 * reclaim does not swap at all. */
static int fs_v1_memory_no_swap(const char *dir, uint64_t memory_max, const char *path, char **ret_message) {
        _cleanup_free_ char *memsw = NULL;
        char v[32];
        int r;

        if (asprintf(&memsw, "%s/memory.memsw.limit_in_bytes", dir) < 0)
                return -ENOMEM;
        if (access(memsw, F_OK) >= 0) {
                snprintf(v, sizeof(v), "%" PRIu64, memory_max);
                r = fs_write_limit(dir, "memory.memsw.limit_in_bytes", v, CTRL_MEMORY, path, ret_message);
                if (r < 0)
                        return r;
        }
        return fs_write_limit(dir, "memory.swappiness", "0", CTRL_MEMORY, path, ret_message);
}

/* The v1 controller cgroups for the limits asked for, with the pid in them (libcgroup). */
static int fs_place_v1(ActorCgroup *cg, FsCgroup *fc, char **ret_message) {
        FsManager *fm = cg->manager->backend;
        const CgroupLimits *l = &cg->limits;
        bool want[_CTRL_MAX] = {
                [CTRL_MEMORY] = l->memory_max > 0 && fm->place[CTRL_MEMORY] == CONTROLLER_V1,
                [CTRL_CPU] = l->cpus > 0 && fm->place[CTRL_CPU] == CONTROLLER_V1,
                [CTRL_PIDS] = l->tasks_max > 0 && fm->place[CTRL_PIDS] == CONTROLLER_V1,
        };
        char limits[64] = ""; /* "MemoryMax, TasksMax": what a failure names */
        for (int i = 0; i < _CTRL_MAX; i++)
                if (want[i])
                        snprintf(limits + strlen(limits), sizeof(limits) - strlen(limits), "%s%s",
                                 limits[0] ? ", " : "", limit_names[i]);
        if (!limits[0])
                return 0;

        struct cgroup *g = cgroup_new_cgroup(fc->rel);
        const char *step = NULL;
        int r = 0, k = 0;
        if (!g)
                return -ENOMEM;
        for (int i = 0; i < _CTRL_MAX && r >= 0; i++) {
                if (!want[i])
                        continue;
                struct cgroup_controller *c = cgroup_add_controller(g, controller_names[i]);
                if (!c) {
                        r = -ENOMEM;
                        break;
                }
                if (i == CTRL_MEMORY)
                        k = cgroup_add_value_uint64(c, "memory.limit_in_bytes", l->memory_max);
                else if (i == CTRL_CPU) {
                        uint64_t quota, period;
                        fs_cpu_bandwidth(l->cpus, &quota, &period);
                        k = cgroup_add_value_uint64(c, "cpu.cfs_period_us", period) ?:
                            cgroup_add_value_int64(c, "cpu.cfs_quota_us", (int64_t) quota);
                } else
                        k = cgroup_add_value_uint64(c, "pids.max", l->tasks_max);
                if (k != 0) {
                        r = -EINVAL;
                        step = "to take the values";
                }
                fc->v1_used[i] = true;
        }
        if (r >= 0 && (k = cgroup_create_cgroup(g, 1)) != 0) {
                r = -EIO;
                step = "to create the cgroups with the limits";
        }
        if (r >= 0 && want[CTRL_MEMORY]) {
                _cleanup_free_ char *dir = NULL;
                if (asprintf(&dir, "%s/%s", fm->v1_mount[CTRL_MEMORY], fc->rel) < 0)
                        r = -ENOMEM;
                else
                        r = fs_v1_memory_no_swap(dir, l->memory_max, cg->path, ret_message);
        }
        /* Only now, limited, does the worker enter them: before INIT, so before any module code. */
        if (r >= 0 && (k = cgroup_attach_task_pid(g, cg->pid)) != 0) {
                r = -EIO;
                step = "to move the worker into them";
        }
        cgroup_free(&g);
        if (step &&
            asprintf(ret_message, "cannot apply %s to cgroup %s on cgroup v1: libcgroup failed %s: %s", limits,
                     cg->path, step, cgroup_strerror(k)) < 0)
                *ret_message = NULL;
        return r;
}

static int fs_place_v2_limits(ActorCgroup *cg, char **ret_message) {
        FsManager *fm = cg->manager->backend;
        const CgroupLimits *l = &cg->limits;
        char v[64];
        int r;

        if (l->memory_max > 0 && fm->place[CTRL_MEMORY] == CONTROLLER_V2) {
                snprintf(v, sizeof(v), "%" PRIu64, l->memory_max);
                r = fs_write_limit(cg->v2_dir, "memory.max", v, CTRL_MEMORY, cg->path, ret_message);
                if (r < 0)
                        return r;
                /* Swap is limited apart on v2: none, or the limit would hold only what stays in memory.
                 * The file is there only where swap is accounted. */
                _cleanup_free_ char *swap = NULL;
                if (asprintf(&swap, "%s/memory.swap.max", cg->v2_dir) < 0)
                        return -ENOMEM;
                if (access(swap, F_OK) >= 0) {
                        r = fs_write_limit(cg->v2_dir, "memory.swap.max", "0", CTRL_MEMORY, cg->path,
                                           ret_message);
                        if (r < 0)
                                return r;
                }
        }
        if (l->cpus > 0 && fm->place[CTRL_CPU] == CONTROLLER_V2) {
                uint64_t quota, period;
                fs_cpu_bandwidth(l->cpus, &quota, &period);
                snprintf(v, sizeof(v), "%" PRIu64 " %" PRIu64, quota, period);
                r = fs_write_limit(cg->v2_dir, "cpu.max", v, CTRL_CPU, cg->path, ret_message);
                if (r < 0)
                        return r;
        }
        if (l->tasks_max > 0 && fm->place[CTRL_PIDS] == CONTROLLER_V2) {
                snprintf(v, sizeof(v), "%" PRIu64, l->tasks_max);
                r = fs_write_limit(cg->v2_dir, "pids.max", v, CTRL_PIDS, cg->path, ret_message);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int fs_place(ActorCgroup *cg, char **ret_message) {
        CgroupManager *m = cg->manager;
        FsCgroup *fc = calloc(1, sizeof(*fc));
        _cleanup_free_ char *message = NULL;
        int r;

        if (!fc)
                return -ENOMEM;
        cg->backend = fc;
        if (asprintf(&fc->rel, "%s/%s-%s", m->root, cg->kind, cg->id) < 0 ||
            asprintf(&cg->v2_dir, "%s/%s", m->v2_mount, fc->rel) < 0 ||
            asprintf(&cg->path, "/%s", fc->rel) < 0)
                return -ENOMEM;
        if (mkdir(cg->v2_dir, 0755) < 0) {
                r = negative_errno();
                free(cg->v2_dir);
                cg->v2_dir = NULL; /* not ours */
                if (asprintf(ret_message, "cannot create cgroup %s: %s", cg->path, strerror(-r)) < 0)
                        *ret_message = NULL;
                return r;
        }
        /* The limits first, the worker (still waiting for INIT) into them after. */
        r = fs_place_v2_limits(cg, &message);
        if (r >= 0)
                r = fs_place_v1(cg, fc, &message);
        if (r < 0) {
                if (message)
                        *ret_message = TAKE_PTR(message);
                else if (asprintf(ret_message, "cannot apply the limits to cgroup %s: %s", cg->path,
                                  strerror(-r)) < 0)
                        *ret_message = NULL;
                return r;
        }
        r = actor_cgroup_setup_leaf(cg);
        if (r < 0) {
                if (asprintf(ret_message, "cannot set up cgroup %s (device program, cgroup.procs): %s", cg->path,
                             strerror(-r)) < 0)
                        *ret_message = NULL;
                return r;
        }
        return 1;
}

/* The actor's v1 controller cgroups: empty once its processes are gone. */
static void fs_remove_v1(CgroupManager *m, FsCgroup *fc) {
        FsManager *fm = m->backend;
        for (int i = 0; i < _CTRL_MAX; i++) {
                _cleanup_free_ char *d = NULL;
                if (fc->v1_used[i] && fm->v1_mount[i] && asprintf(&d, "%s/%s", fm->v1_mount[i], fc->rel) >= 0)
                        (void) rmdir(d);
        }
}

static void fs_abandon(ActorCgroup *cg) {
        FsCgroup *fc = cg->backend;
        if (fc)
                free(fc->rel);
        free(fc);
        cg->backend = NULL;
}

static void fs_destroy(ActorCgroup *cg) {
        FsCgroup *fc = cg->backend;

        if (cg->v2_dir)
                (void) rmdir(cg->v2_dir);
        if (fc)
                fs_remove_v1(cg->manager, fc);
        fs_abandon(cg);
}

static int fs_adopt(ActorCgroup *cg) {
        CgroupManager *m = cg->manager;
        FsManager *fm = m->backend;
        FsCgroup *fc;
        int r;

        if (cg->unit)
                return -EINVAL; /* a scope: the systemd backend's */
        r = actor_cgroup_adopt_name(&cg->path, "/%s/%s-%s", m->root, cg->kind, cg->id);
        if (r >= 0)
                r = actor_cgroup_adopt_name(&cg->v2_dir, "%s%s", m->v2_mount, cg->path);
        if (r < 0)
                return r;

        fc = calloc(1, sizeof(*fc));
        if (!fc)
                return -ENOMEM;
        cg->backend = fc;
        fc->rel = strdup(cg->path + 1);
        if (!fc->rel)
                return -ENOMEM;
        /* Which controller cgroups it has: those its limits asked for when it was placed. */
        for (int i = 0; i < _CTRL_MAX; i++) {
                _cleanup_free_ char *d = NULL;
                if (!fm->v1_mount[i])
                        continue;
                if (asprintf(&d, "%s/%s", fm->v1_mount[i], fc->rel) < 0)
                        return -ENOMEM;
                fc->v1_used[i] = access(d, F_OK) >= 0;
        }
        if (access(cg->v2_dir, F_OK) < 0) {
                r = negative_errno();
                /* Gone, with its processes: what it left in the v1 hierarchies is nobody's now. */
                if (r == -ENOENT)
                        fs_remove_v1(m, fc);
                return r;
        }
        return 0;
}

/* Ours: what actor_cgroup_new() names (actor-<id>, task-<id>). */
static bool fs_is_ours(const char *name) {
        return strncmp(name, "actor-", 6) == 0 || strncmp(name, "task-", 5) == 0;
}

/* A node manager that crashed left actor and task cgroups (maybe with processes): kill and remove them,
 * except those the caller keeps to adopt. */
static int fs_reap_orphans(CgroupManager *m, actor_cgroup_keep_t keep, void *userdata) {
        FsManager *fm = m->backend;
        _cleanup_free_ char *dir = NULL;
        int r = 0;

        if (asprintf(&dir, "%s/%s", m->v2_mount, m->root) < 0)
                return -ENOMEM;
        /* The root stays; what is below it goes. */
        DIR *d = opendir(dir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *child = NULL;
                        if (de->d_type != DT_DIR || !fs_is_ours(de->d_name) ||
                            actor_cgroup_name_kept(de->d_name, strlen(de->d_name), keep, userdata))
                                continue;
                        if (asprintf(&child, "%s/%s", dir, de->d_name) < 0) {
                                r = -ENOMEM;
                                break;
                        }
                        int k = cg_kill_and_remove_tree(child, ORPHAN_TIMEOUT_USEC);
                        if (k < 0 && r >= 0)
                                r = k;
                }
                closedir(d);
        }
        /* v1 controller cgroups are empty once their processes are: remove them. */
        for (int i = 0; i < _CTRL_MAX; i++) {
                _cleanup_free_ char *v1 = NULL;
                if (!fm->v1_mount[i] || asprintf(&v1, "%s/%s", fm->v1_mount[i], m->root) < 0)
                        continue;
                d = opendir(v1);
                if (!d)
                        continue;
                struct dirent *de;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *child = NULL;
                        if (de->d_type != DT_DIR || !fs_is_ours(de->d_name) ||
                            actor_cgroup_name_kept(de->d_name, strlen(de->d_name), keep, userdata))
                                continue;
                        if (asprintf(&child, "%s/%s", v1, de->d_name) >= 0 && rmdir(child) < 0 && r >= 0)
                                r = negative_errno();
                }
                closedir(d);
        }
        return r;
}

/* The memory cgroup that holds the worker with its limit: the actor's v2 cgroup where memory is a v2
 * controller, its v1 memory cgroup where it has one (only with a MemoryMax), else none of its own. */
static int fs_oom_kills(ActorCgroup *cg, uint64_t *ret) {
        FsManager *fm = cg->manager->backend;
        FsCgroup *fc = cg->backend;
        _cleanup_free_ char *dir = NULL;

        if (fm->place[CTRL_MEMORY] == CONTROLLER_V2 && cg->v2_dir)
                return cg_read_keyed(cg->v2_dir, "memory.events", "oom_kill", ret);
        if (fm->place[CTRL_MEMORY] != CONTROLLER_V1 || !fc || !fc->v1_used[CTRL_MEMORY])
                return -ENODATA;
        if (asprintf(&dir, "%s/%s", fm->v1_mount[CTRL_MEMORY], fc->rel) < 0)
                return -ENOMEM;
        return cg_read_keyed(dir, "memory.oom_control", "oom_kill", ret);
}

const CgroupBackendOps cgroup_backend_cgroupfs = {
        .name = "cgroupfs",
        .init = fs_init,
        .done = fs_done,
        .check_limits = fs_check_limits,
        .reap_orphans = fs_reap_orphans,
        .place = fs_place,
        .adopt = fs_adopt,
        .destroy = fs_destroy,
        .abandon = fs_abandon,
        .oom_kills = fs_oom_kills,
};

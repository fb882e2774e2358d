/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One cgroup per actor, and one per task worker (the same, of kind "task"). Three backends sit behind
 * one small ops table (crun's model):
 *
 *   systemd   a transient scope kactor-<kind>-<id>.scope in kactor.slice (StartTransientUnit, PIDs,
 *             Delegate=yes), with the worker moved into a leaf inside it, so that the device program
 *             attached there is ours and a daemon-reload cannot strip it. Placement is asynchronous
 *             (the JobRemoved signal).
 *   cgroupfs  a cgroup <kind>-<id> under a kactor subtree: cgroup v2 directly (core files, BPF attach,
 *             cgroup.kill, cgroup.events), plus v1 controller cgroups through libcgroup on hybrid
 *             hosts for the limits whose controllers are bound to v1.
 *   none      no cgroups (cgroup-none.c): workers are placed at once into none, limits that need a
 *             cgroup are refused.
 *
 * The caller never asks which backend it has. It spawns the worker (which waits for INIT), asks for
 * the actor's cgroup with actor_cgroup_new(), and sends INIT once placement is done: at once when
 * actor_cgroup_new() returns 1, or from the placed callback when it returns 0. The empty callback
 * fires once the whole cgroup is empty (cgroup.events, through inotify on the event loop).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "device-filter.h"

typedef enum CgroupManagerKind {
        CGROUP_MANAGER_AUTO,
        CGROUP_MANAGER_NONE,
        CGROUP_MANAGER_CGROUPFS,
        CGROUP_MANAGER_SYSTEMD,
        _CGROUP_MANAGER_KIND_MAX,
} CgroupManagerKind;

const char *cgroup_manager_kind_to_string(CgroupManagerKind k);
/* Returns the kind, or -EINVAL. */
int cgroup_manager_kind_from_string(const char *s);

typedef struct CgroupLimits {
        uint64_t memory_max; /* bytes; 0 = no limit */
        double cpus;         /* CPU quota in CPUs; 0 = no limit */
        uint64_t tasks_max;  /* 0 = no limit */
} CgroupLimits;

typedef struct CgroupManager CgroupManager;
typedef struct ActorCgroup ActorCgroup;
typedef struct CgroupBackendOps CgroupBackendOps;

/* Placement finished: r >= 0 placed; r < 0 failed, message (may be NULL) says why. */
typedef void (*actor_cgroup_placed_t)(ActorCgroup *cg, int r, const char *message, void *userdata);
/* The cgroup has become empty: every process in it is gone. */
typedef void (*actor_cgroup_empty_t)(ActorCgroup *cg, void *userdata);

typedef struct ActorCgroupSpec {
        const char *kind;        /* "actor" (NULL) or "task" (a task worker): a static string */
        const char *id;          /* names the cgroup (<kind>-<id>) and scope (kactor-<kind>-<id>.scope) */
        const char *description; /* the scope's Description= */
        pid_t pid;               /* the worker, not yet running anything */
        CgroupLimits limits;
        const DeviceRule *devices; /* allowed beyond the standard pseudo-devices */
        size_t n_devices;
} ActorCgroupSpec;

struct ActorCgroup {
        CgroupManager *manager;
        const char *kind; /* "actor" or "task" */
        char *id;
        char *unit;       /* the scope (systemd backend), else NULL */
        char *path;       /* the leaf's path in the v2 hierarchy, as /proc/PID/cgroup shows it */
        char *v2_dir;     /* the leaf's directory */
        pid_t pid;
        CgroupLimits limits;
        DeviceRule *devices;
        size_t n_devices;
        int prog_fd;      /* our device program (a private one when the actor has devices) */
        int wd;           /* inotify watch on cgroup.events; -1 = none */
        bool placed, populated, empty_notified, destroyed;
        actor_cgroup_placed_t on_placed;
        actor_cgroup_empty_t on_empty;
        void *userdata;
        void *backend;    /* the backend's per-actor data */
        sd_event_source *defer; /* deferred empty notification */
        LIST_ENTRY(ActorCgroup) link;
};

struct CgroupBackendOps {
        const char *name;
        int (*init)(CgroupManager *m);
        void (*done)(CgroupManager *m);
        /* Sets *ret_missing (static string) to the first limit this host cannot apply, else NULL. */
        int (*check_limits)(CgroupManager *m, const CgroupLimits *l, const char **ret_missing);
        /* Removes what a previous instance left behind (after a crash). */
        int (*reap_orphans)(CgroupManager *m);
        /* Places cg->pid: 1 placed now, 0 pending (the backend calls actor_cgroup_placed()), < 0 error.
         * NULL: the backend gives workers no cgroup at all (none). */
        int (*place)(ActorCgroup *cg, char **ret_message);
        /* Removes the (empty) cgroup or stops the scope; best effort. */
        void (*destroy)(ActorCgroup *cg);
};

struct CgroupManager {
        sd_event *event;
        CgroupManagerKind kind;
        const CgroupBackendOps *ops;
        char *v2_mount;       /* /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified (hybrid) */
        char *root;           /* our subtree, relative to the hierarchy roots: "kactor[/NAME]" */
        char *v2_controllers; /* cgroup.controllers of the v2 root (may be empty) */
        int inotify_fd;
        sd_event_source *inotify_source;
        int shared_prog_fd;   /* the device program of actors without devices */
        LIST_HEAD(, ActorCgroup) cgroups;
        unsigned n_cgroups;
        void *backend;        /* the backend's data */
};

extern const CgroupBackendOps cgroup_backend_cgroupfs;
extern const CgroupBackendOps cgroup_backend_systemd;
extern const CgroupBackendOps cgroup_backend_none;

/*
 * The manager for `kind` (AUTO: systemd when PID 1 is systemd and org.freedesktop.systemd1 is on the
 * system bus, else cgroupfs). `name` distinguishes node managers on one host: the subtree is
 * "kactor" for NULL, else "kactor/NAME" (NONE has no subtree: root is NULL).
 */
int cgroup_manager_new(sd_event *event, CgroupManagerKind kind, const char *name, CgroupManager **ret);
/* Kills and removes every actor cgroup still there, then our subtree. Accepts NULL. */
CgroupManager *cgroup_manager_free(CgroupManager *m);
const char *cgroup_manager_name(const CgroupManager *m);
int cgroup_manager_reap_orphans(CgroupManager *m);
/* Sets *ret_missing to the limit the host cannot apply ("MemoryMax (no memory controller)"), or NULL. */
int cgroup_manager_check_limits(CgroupManager *m, const CgroupLimits *l, const char **ret_missing);

/* Returns 1 when placed now, 0 when the placed callback comes later, < 0 on error (*ret_message may
 * say why; malloc'd). With a backend that makes no cgroups (none) it returns 1 and *ret = NULL: the
 * worker runs in no cgroup of its own. */
int actor_cgroup_new(CgroupManager *m, const ActorCgroupSpec *spec, actor_cgroup_placed_t on_placed,
                     actor_cgroup_empty_t on_empty, void *userdata, ActorCgroup **ret, char **ret_message);
/* SIGKILLs every process in the cgroup (cgroup.kill; fallback: freeze, signal each, thaw). */
int actor_cgroup_kill(ActorCgroup *cg);
bool actor_cgroup_is_empty(ActorCgroup *cg);
/* Kills what is left, removes the cgroup (waiting, bounded, for it to empty) and frees. */
ActorCgroup *actor_cgroup_free(ActorCgroup *cg);

/* For backends. */
void actor_cgroup_placed(ActorCgroup *cg, int r, const char *message);
/* Finishes placement in the v2 leaf: moves the pid, attaches the device program, watches
 * cgroup.events. */
int actor_cgroup_setup_leaf(ActorCgroup *cg);
int cg_write_file(const char *dir, const char *file, const char *value);
int cg_read_file(const char *dir, const char *file, char **ret);
/* Kills everything in a v2 cgroup dir and its children, waits (bounded) until empty, removes them. */
int cg_kill_and_remove_tree(const char *dir, uint64_t timeout_usec);

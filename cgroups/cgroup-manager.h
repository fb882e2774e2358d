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
 *
 * Across a restart of the node manager: the old instance lets go of its cgroups with
 * cgroup_manager_free_keep() (or simply dies), the new one calls cgroup_manager_reap_orphans() with a
 * keep() that spares what it means to take over, and actor_cgroup_adopt() for each of those, from the
 * five names it recorded (ActorCgroup's kind, id, unit, path, v2_dir).
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

/* The smallest CPU quota: the kernel's CFS bandwidth needs at least 1 ms of runtime per period, and a
 * period is at most 1 s. A smaller NumCpus is refused (cgroup_manager_check_limits()), never rounded up. */
#define CGROUP_CPUS_MIN 0.001

typedef struct CgroupManager CgroupManager;
typedef struct ActorCgroup ActorCgroup;
typedef struct CgroupBackendOps CgroupBackendOps;

/* Placement finished: r >= 0 placed; r < 0 failed, message (may be NULL) says why. */
typedef void (*actor_cgroup_placed_t)(ActorCgroup *cg, int r, const char *message, void *userdata);
/* The cgroup has become empty: every process in it is gone. */
typedef void (*actor_cgroup_empty_t)(ActorCgroup *cg, void *userdata);
/* Whether cgroup_manager_reap_orphans() leaves the cgroup (scope) of kind ("actor" or "task") and id
 * alone, for the caller to adopt. */
typedef bool (*actor_cgroup_keep_t)(const char *kind, const char *id, void *userdata);

typedef struct ActorCgroupSpec {
        const char *kind;        /* "actor" (NULL) or "task" (a task worker): a static string */
        const char *id;          /* names the cgroup (<kind>-<id>) and scope (kactor-<kind>-<id>.scope) */
        const char *description; /* the scope's Description= */
        pid_t pid;               /* the worker, not yet running anything */
        CgroupLimits limits;
        const DeviceRule *devices; /* allowed beyond the standard pseudo-devices */
        size_t n_devices;
} ActorCgroupSpec;

/* A cgroup (scope) that a previous instance of the manager placed with actor_cgroup_new(), on the
 * same backend and subtree, as that instance's ActorCgroup named it. unit, path and v2_dir follow
 * from kind and id: NULL takes them from there, anything else must be equal to them. */
typedef struct ActorCgroupAdopt {
        const char *kind;    /* "actor" (NULL) or "task" */
        const char *id;
        const char *unit;    /* the scope (systemd backend); NULL on cgroupfs */
        const char *path;    /* the leaf's path in the v2 hierarchy, as /proc/PID/cgroup shows it */
        const char *v2_dir;  /* the leaf's directory */
        pid_t pid;           /* the worker, or 0; recorded only while it is still in the cgroup */
        CgroupLimits limits; /* what it was placed with (they stay applied; nothing is written) */
} ActorCgroupAdopt;

struct ActorCgroup {
        CgroupManager *manager;
        /* What a caller records to adopt the cgroup after a restart (ActorCgroupAdopt): kind, id,
         * unit, path, v2_dir. Set once placed; an adopted one has the same five. */
        const char *kind; /* "actor" or "task" (static) */
        char *id;
        char *unit;       /* the scope (systemd backend), else NULL */
        char *path;       /* the leaf's path in the v2 hierarchy, as /proc/PID/cgroup shows it */
        char *v2_dir;     /* the leaf's directory */
        pid_t pid;
        CgroupLimits limits;
        DeviceRule *devices; /* none for an adopted one: its rules are in the program already attached */
        size_t n_devices;
        /* Our device program (a private one when the actor has devices). -1 for an adopted cgroup: the
         * program the previous instance attached stays attached (an attachment holds the program,
         * not the process that loaded it), and nothing detaches it. */
        int prog_fd;
        int wd;           /* inotify watch on cgroup.events; -1 = none */
        /* The OOM killer's count of kills in the cgroup when it was placed (adopted), which later kills
         * are counted from (actor_cgroup_oom_kills()); UINT64_MAX: not counted for this cgroup. */
        uint64_t oom_kills_placed;
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
        /* Frees the backend's data; removes our subtree (best effort) unless keep_subtree. */
        void (*done)(CgroupManager *m, bool keep_subtree);
        /* Sets *ret_missing (static string) to the first limit this host cannot apply, else NULL. */
        int (*check_limits)(CgroupManager *m, const CgroupLimits *l, const char **ret_missing);
        /* Removes what a previous instance left behind (after a crash), except what keep() (may be
         * NULL) keeps. */
        int (*reap_orphans)(CgroupManager *m, actor_cgroup_keep_t keep, void *userdata);
        /* Places cg->pid: 1 placed now, 0 pending (the backend calls actor_cgroup_placed()), < 0 error.
         * NULL: the backend gives workers no cgroup at all (none). */
        int (*place)(ActorCgroup *cg, char **ret_message);
        /* Takes over a cgroup a previous instance placed: cg's kind, id, unit, path and v2_dir are the
         * record's. -EINVAL when they are not what place names for kind and id, -ENOENT when it is
         * gone; else makes the backend's per-actor data. */
        int (*adopt)(ActorCgroup *cg);
        /* Removes the (empty) cgroup or stops the scope, best effort, and frees the per-actor data. */
        void (*destroy)(ActorCgroup *cg);
        /* Frees the per-actor data and touches nothing else: the cgroup or scope stays as it is. */
        void (*abandon)(ActorCgroup *cg);
        /* Sets *ret to the oom_kill counter of the memory cgroup that holds the placed worker and its
         * limit (memory.events on v2, memory.oom_control on v1): how many of its processes the kernel's
         * OOM killer killed. -ENODATA where the worker has no memory cgroup of its own or the kernel
         * counts no kills (v1 before 4.13). NULL: never counted. */
        int (*oom_kills)(ActorCgroup *cg, uint64_t *ret);
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
/* For a manager that exits while its actors keep running: abandons every actor cgroup still there
 * (actor_cgroup_abandon()) and leaves the subtree in place. Accepts NULL. */
CgroupManager *cgroup_manager_free_keep(CgroupManager *m);
const char *cgroup_manager_name(const CgroupManager *m);
/* Kills and removes the actor cgroups (stops the scopes) that a previous instance on this subtree
 * left, except those for which keep(kind, id, userdata) returns true, which are left exactly as they
 * are for actor_cgroup_adopt(). keep NULL: reaps them all. kind and id are those actor_cgroup_new()
 * was given (kind "actor" or "task"). Returns the first error; goes on past it. */
int cgroup_manager_reap_orphans(CgroupManager *m, actor_cgroup_keep_t keep, void *userdata);
/* Sets *ret_missing to the limit the host cannot apply, naming it and why ("MemoryMax (no memory
 * controller ...)"), or NULL: every limit asked for is enforced once the worker is placed. */
int cgroup_manager_check_limits(CgroupManager *m, const CgroupLimits *l, const char **ret_missing);

/* Returns 1 when placed now, 0 when the placed callback comes later, < 0 on error (*ret_message may
 * say why; malloc'd). With a backend that makes no cgroups (none) it returns 1 and *ret = NULL: the
 * worker runs in no cgroup of its own. */
int actor_cgroup_new(CgroupManager *m, const ActorCgroupSpec *spec, actor_cgroup_placed_t on_placed,
                     actor_cgroup_empty_t on_empty, void *userdata, ActorCgroup **ret, char **ret_message);
/*
 * Takes over a cgroup a previous instance of the manager placed with actor_cgroup_new() (same
 * backend, same subtree), from the names that instance's ActorCgroup had: the result is placed, its
 * limits and device program are the ones it had, and on_empty fires once it is empty, like a fresh
 * one's (from the event loop, also when it is empty already). Returns 0 and *ret; with a backend that
 * makes no cgroups (none) 0 and *ret = NULL. -EINVAL when the record does not name a cgroup of this
 * manager's subtree (kind other than "actor"/"task", an id that is no single name, a path or v2_dir
 * that is not the one actor_cgroup_new() gives that kind and id, a unit other than
 * kactor-<kind>-<id>.scope on systemd or any unit on cgroupfs), -ENOENT when the cgroup is gone,
 * -EEXIST when this manager already holds it; *ret is written only on success.
 */
int actor_cgroup_adopt(CgroupManager *m, const ActorCgroupAdopt *spec, actor_cgroup_empty_t on_empty,
                       void *userdata, ActorCgroup **ret);
/* SIGKILLs every process in the cgroup (cgroup.kill; fallback: freeze, signal each, thaw). */
int actor_cgroup_kill(ActorCgroup *cg);
bool actor_cgroup_is_empty(ActorCgroup *cg);
/* Sets *ret to how many processes of the cgroup the kernel's OOM killer killed since it was placed
 * (adopted). -ENODATA when nothing counts them for this cgroup (see CgroupBackendOps.oom_kills), other
 * negative errnos when the counter cannot be read (the cgroup is gone). */
int actor_cgroup_oom_kills(ActorCgroup *cg, uint64_t *ret);
/* Kills what is left, removes the cgroup (waiting, bounded, for it to empty) and frees. */
ActorCgroup *actor_cgroup_free(ActorCgroup *cg);
/* Lets go of the cgroup: frees our bookkeeping (watch, backend data, pending notification) and
 * leaves the cgroup or scope, and every process in it, exactly as they are, for a later
 * actor_cgroup_adopt(). No callback fires. Accepts NULL. */
void actor_cgroup_abandon(ActorCgroup *cg);

/* For backends. */
void actor_cgroup_placed(ActorCgroup *cg, int r, const char *message);
/* For adopt: the record's *name must be what format gives (-EINVAL otherwise); NULL takes that. */
int actor_cgroup_adopt_name(char **name, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* For reap_orphans: whether keep keeps the cgroup named "<kind>-<id>" (the first len bytes of name;
 * false for NULL keep and for names that are not ours). */
bool actor_cgroup_name_kept(const char *name, size_t len, actor_cgroup_keep_t keep, void *userdata);
/* Finishes placement in the v2 leaf: moves the pid, attaches the device program, watches
 * cgroup.events. */
int actor_cgroup_setup_leaf(ActorCgroup *cg);
int cg_write_file(const char *dir, const char *file, const char *value);
int cg_read_file(const char *dir, const char *file, char **ret);
/* The number after "key " on a line of a flat keyed file (memory.events, memory.oom_control);
 * -ENODATA when no line has the key. */
int cg_read_keyed(const char *dir, const char *file, const char *key, uint64_t *ret);
/* Kills everything in a v2 cgroup dir and its children, waits (bounded) until empty, removes them. */
int cg_kill_and_remove_tree(const char *dir, uint64_t timeout_usec);

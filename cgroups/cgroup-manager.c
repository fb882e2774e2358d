/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What both backends share: the v2 leaf (device program, cgroup.procs, cgroup.events through
 * inotify), kill, removal, and the choice of backend. */

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "cgroup-manager.h"
#include "macro.h"
#include "time-util.h"

#define CGROUP_EMPTY_TIMEOUT_USEC (5 * 1000000ULL)

static void closedirp_(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static const char *const kind_table[_CGROUP_MANAGER_KIND_MAX] = {
        [CGROUP_MANAGER_AUTO] = "auto",
        [CGROUP_MANAGER_NONE] = "none",
        [CGROUP_MANAGER_CGROUPFS] = "cgroupfs",
        [CGROUP_MANAGER_SYSTEMD] = "systemd",
};

const char *cgroup_manager_kind_to_string(CgroupManagerKind k) {
        return k < _CGROUP_MANAGER_KIND_MAX ? kind_table[k] : NULL;
}

int cgroup_manager_kind_from_string(const char *s) {
        for (int i = 0; i < _CGROUP_MANAGER_KIND_MAX; i++)
                if (s && streq(s, kind_table[i]))
                        return i;
        return -EINVAL;
}

int cg_write_file(const char *dir, const char *file, const char *value) {
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = strlen(value);

        if (asprintf(&p, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        fd = open(p, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        ssize_t n = write(fd, value, len);
        if (n < 0)
                return negative_errno();
        return (size_t) n == len ? 0 : -EIO;
}

int cg_read_file(const char *dir, const char *file, char **ret) {
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int fd = -1;
        char buf[4096];

        if (asprintf(&p, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = 0;
        char *s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int cg_read_keyed(const char *dir, const char *file, const char *key, uint64_t *ret) {
        _cleanup_free_ char *s = NULL;
        size_t n = strlen(key);
        int r;

        r = cg_read_file(dir, file, &s);
        if (r < 0)
                return r;
        for (char *line = s, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (strncmp(line, key, n) != 0 || line[n] != ' ')
                        continue;
                char *end;
                errno = 0;
                unsigned long long v = strtoull(line + n + 1, &end, 10);
                if (errno != 0 || end == line + n + 1 || *end)
                        return -EBADMSG;
                *ret = v;
                return 0;
        }
        return -ENODATA;
}

/* 1 populated, 0 empty, < 0 error (-ENOENT: gone, which is empty too). */
static int cg_is_populated(const char *dir) {
        _cleanup_free_ char *s = NULL;
        int r = cg_read_file(dir, "cgroup.events", &s);
        if (r < 0)
                return r;
        const char *p = strstr(s, "populated ");
        if (!p)
                return -EBADMSG;
        return p[10] == '1';
}

/* SIGKILLs every process in a v2 cgroup and its children. */
static int cg_kill(const char *dir) {
        int r = cg_write_file(dir, "cgroup.kill", "1");
        if (r != -ENOENT || access(dir, F_OK) < 0)
                return r;

        /* Before 5.14: freeze, so that nothing forks while we go through the list, signal, thaw. */
        bool frozen = cg_write_file(dir, "cgroup.freeze", "1") >= 0;
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/cgroup.procs", dir) < 0)
                return -ENOMEM;
        FILE *f = fopen(p, "re");
        if (f) {
                int pid;
                while (fscanf(f, "%d", &pid) == 1)
                        (void) kill(pid, SIGKILL);
                fclose(f);
        }
        if (frozen)
                (void) cg_write_file(dir, "cgroup.freeze", "0");
        return 0;
}

/* Waits, bounded, until a v2 cgroup is empty: inotify on cgroup.events, no polling. */
static int cg_wait_empty(const char *dir, uint64_t timeout_usec) {
        _cleanup_close_ int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        _cleanup_free_ char *p = NULL;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        int r;

        if (fd < 0)
                return negative_errno();
        if (asprintf(&p, "%s/cgroup.events", dir) < 0)
                return -ENOMEM;
        if (inotify_add_watch(fd, p, IN_MODIFY) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        for (;;) {
                r = cg_is_populated(dir);
                if (r == -ENOENT || r == 0)
                        return 0;
                if (r < 0)
                        return r;
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= deadline)
                        return -ETIMEDOUT;
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                if (poll(&pfd, 1, (int) ((deadline - now + 999) / 1000)) < 0 && errno != EINTR)
                        return negative_errno();
                char buf[4096];
                while (read(fd, buf, sizeof(buf)) > 0)
                        ;
        }
}

int cg_kill_and_remove_tree(const char *dir, uint64_t timeout_usec) {
        _cleanup_(closedirp_) DIR *d = NULL;
        int r = 0, k;

        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *child = NULL;
                if (asprintf(&child, "%s/%s", dir, de->d_name) < 0)
                        return -ENOMEM;
                k = cg_kill_and_remove_tree(child, timeout_usec);
                if (k < 0 && r >= 0)
                        r = k;
        }
        (void) cg_kill(dir);
        k = cg_wait_empty(dir, timeout_usec);
        if (k < 0 && r >= 0)
                r = k;
        if (rmdir(dir) < 0 && errno != ENOENT && r >= 0)
                r = negative_errno();
        return r;
}

/* --- the manager ----------------------------------------------------------------------------- */

static void actor_cgroup_check_empty(ActorCgroup *cg);

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CgroupManager *m = userdata;
        _Alignas(struct inotify_event) char buf[4096];

        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        struct inotify_event *e = (struct inotify_event *) p;
                        ActorCgroup *cg, *next;
                        for (cg = LIST_FIRST(&m->cgroups); cg; cg = next) {
                                next = LIST_NEXT(cg, link);
                                if (cg->wd == e->wd) {
                                        actor_cgroup_check_empty(cg);
                                        break;
                                }
                        }
                        p += sizeof(struct inotify_event) + e->len;
                }
        }
        return 0;
}

static int v2_mount_find(char **ret) {
        if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0)
                *ret = strdup("/sys/fs/cgroup");
        else if (access("/sys/fs/cgroup/unified/cgroup.controllers", F_OK) >= 0)
                *ret = strdup("/sys/fs/cgroup/unified");
        else
                return -EOPNOTSUPP; /* v1 only: no cgroup.kill, cgroup.events or device programs */
        return *ret ? 0 : -ENOMEM;
}

/* systemd is PID 1 and org.freedesktop.systemd1 answers on the system bus. */
static bool systemd_available(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        if (sd_booted() <= 0)
                return false;
        if (sd_bus_open_system(&bus) < 0)
                return false;
        int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                   "NameHasOwner", NULL, NULL, "s", "org.freedesktop.systemd1");
        return r >= 0;
}

int cgroup_manager_new(sd_event *event, CgroupManagerKind kind, const char *name, CgroupManager **ret) {
        int r;

        if (kind == CGROUP_MANAGER_AUTO) {
                if (systemd_available()) {
                        r = cgroup_manager_new(event, CGROUP_MANAGER_SYSTEMD, name, ret);
                        if (r != -EOPNOTSUPP)
                                return r;
                }
                kind = CGROUP_MANAGER_CGROUPFS;
        }

        CgroupManager *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->kind = kind;
        m->ops = kind == CGROUP_MANAGER_SYSTEMD ? &cgroup_backend_systemd :
                 kind == CGROUP_MANAGER_NONE    ? &cgroup_backend_none :
                                                  &cgroup_backend_cgroupfs;
        m->inotify_fd = -1;
        m->shared_prog_fd = -1;
        LIST_INIT(&m->cgroups);

        if (kind == CGROUP_MANAGER_NONE) {
                /* No hierarchy to find and no cgroup.events to watch. */
                r = m->ops->init(m);
                if (r < 0) {
                        cgroup_manager_free(m);
                        return r;
                }
                *ret = m;
                return 0;
        }

        r = v2_mount_find(&m->v2_mount);
        if (r >= 0)
                r = cg_read_file(m->v2_mount, "cgroup.controllers", &m->v2_controllers);
        if (r >= 0) {
                if (name && asprintf(&m->root, "kactor/%s", name) < 0)
                        m->root = NULL;
                else if (!name)
                        m->root = strdup("kactor");
                if (!m->root)
                        r = -ENOMEM;
        }
        if (r >= 0) {
                m->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
                if (m->inotify_fd < 0)
                        r = negative_errno();
        }
        if (r >= 0)
                r = sd_event_add_io(event, &m->inotify_source, m->inotify_fd, EPOLLIN, on_inotify, m);
        if (r >= 0)
                (void) sd_event_source_set_description(m->inotify_source, "cgroup-events");
        if (r >= 0)
                r = m->ops->init(m);
        if (r < 0) {
                cgroup_manager_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

static CgroupManager *cgroup_manager_free_full(CgroupManager *m, bool keep) {
        ActorCgroup *cg;

        if (!m)
                return NULL;
        while ((cg = LIST_FIRST(&m->cgroups))) {
                if (keep)
                        actor_cgroup_abandon(cg);
                else
                        actor_cgroup_free(cg);
        }
        if (m->ops && m->ops->done)
                m->ops->done(m, keep);
        sd_event_source_disable_unref(m->inotify_source);
        safe_close(m->inotify_fd);
        safe_close(m->shared_prog_fd);
        sd_event_unref(m->event);
        free(m->v2_mount);
        free(m->v2_controllers);
        free(m->root);
        free(m);
        return NULL;
}

CgroupManager *cgroup_manager_free(CgroupManager *m) {
        return cgroup_manager_free_full(m, false);
}

CgroupManager *cgroup_manager_free_keep(CgroupManager *m) {
        return cgroup_manager_free_full(m, true);
}

const char *cgroup_manager_name(const CgroupManager *m) {
        return m->ops->name;
}

int cgroup_manager_reap_orphans(CgroupManager *m, actor_cgroup_keep_t keep, void *userdata) {
        return m->ops->reap_orphans ? m->ops->reap_orphans(m, keep, userdata) : 0;
}

bool actor_cgroup_name_kept(const char *name, size_t len, actor_cgroup_keep_t keep, void *userdata) {
        const char *kind;
        size_t skip;

        if (!keep)
                return false;
        if (len > 6 && strncmp(name, "actor-", 6) == 0)
                kind = "actor", skip = 6;
        else if (len > 5 && strncmp(name, "task-", 5) == 0)
                kind = "task", skip = 5;
        else
                return false;
        _cleanup_free_ char *id = strndup(name + skip, len - skip);
        /* Without memory to ask, keep it: a later reap can still remove it, a killed actor is lost. */
        return !id || keep(kind, id, userdata);
}

int cgroup_manager_check_limits(CgroupManager *m, const CgroupLimits *l, const char **ret_missing) {
        int r;

        *ret_missing = NULL;
        r = m->ops->check_limits(m, l, ret_missing);
        if (r < 0 || *ret_missing)
                return r;
        /* Rounded up to the kernel's minimum, the quota would not be the one asked for. */
        if (l->cpus > 0 && l->cpus < CGROUP_CPUS_MIN)
                *ret_missing = "NumCpus (a CPU quota below 0.001 CPUs: the kernel's minimum is 1 ms per "
                               "second)";
        return 0;
}

/* --- actor cgroups --------------------------------------------------------------------------- */

static int on_defer_empty(sd_event_source *s, void *userdata) {
        ActorCgroup *cg = userdata;
        cg->defer = sd_event_source_disable_unref(cg->defer);
        actor_cgroup_check_empty(cg);
        return 0;
}

/* Where the count of OOM kills starts for this cgroup: what the counter says now. */
static void actor_cgroup_count_oom_kills(ActorCgroup *cg) {
        uint64_t n;
        cg->oom_kills_placed = UINT64_MAX;
        if (cg->manager->ops->oom_kills && cg->manager->ops->oom_kills(cg, &n) >= 0)
                cg->oom_kills_placed = n;
}

int actor_cgroup_oom_kills(ActorCgroup *cg, uint64_t *ret) {
        uint64_t n;
        int r;

        if (!cg->placed || cg->oom_kills_placed == UINT64_MAX || !cg->manager->ops->oom_kills)
                return -ENODATA;
        r = cg->manager->ops->oom_kills(cg, &n);
        if (r < 0)
                return r;
        *ret = n >= cg->oom_kills_placed ? n - cg->oom_kills_placed : 0;
        return 0;
}

static void actor_cgroup_check_empty(ActorCgroup *cg) {
        if (!cg->placed || cg->empty_notified || !cg->v2_dir)
                return;
        int r = cg_is_populated(cg->v2_dir);
        if (r > 0)
                return;
        cg->populated = false;
        if (cg->on_empty)
                cg->on_empty(cg, cg->userdata); /* may free cg */
}

int actor_cgroup_new(CgroupManager *m, const ActorCgroupSpec *spec, actor_cgroup_placed_t on_placed,
                     actor_cgroup_empty_t on_empty, void *userdata, ActorCgroup **ret, char **ret_message) {
        ActorCgroup *cg;
        int r;

        if (!m->ops->place) {
                *ret = NULL;
                return 1;
        }

        cg = calloc(1, sizeof(*cg));
        if (!cg)
                return -ENOMEM;
        cg->manager = m;
        cg->pid = spec->pid;
        cg->limits = spec->limits;
        cg->prog_fd = -1;
        cg->wd = -1;
        cg->oom_kills_placed = UINT64_MAX;
        cg->on_placed = on_placed;
        cg->on_empty = on_empty;
        cg->userdata = userdata;
        cg->kind = spec->kind ?: "actor";
        cg->id = strdup(spec->id);
        if (spec->n_devices > 0) {
                cg->devices = calloc(spec->n_devices, sizeof(DeviceRule));
                if (cg->devices) {
                        memcpy(cg->devices, spec->devices, spec->n_devices * sizeof(DeviceRule));
                        cg->n_devices = spec->n_devices;
                }
        }
        LIST_INSERT_HEAD(&m->cgroups, cg, link);
        m->n_cgroups++;
        if (!cg->id || (spec->n_devices > 0 && !cg->devices)) {
                actor_cgroup_free(cg);
                return -ENOMEM;
        }

        r = m->ops->place(cg, ret_message);
        if (r < 0) {
                actor_cgroup_free(cg);
                return r;
        }
        if (r > 0) {
                cg->placed = true;
                actor_cgroup_count_oom_kills(cg);
        }
        *ret = cg;
        return r;
}

void actor_cgroup_placed(ActorCgroup *cg, int r, const char *message) {
        if (r >= 0) {
                cg->placed = true;
                actor_cgroup_count_oom_kills(cg);
        }
        if (cg->on_placed)
                cg->on_placed(cg, r, message, cg->userdata);
}

int actor_cgroup_setup_leaf(ActorCgroup *cg) {
        CgroupManager *m = cg->manager;
        char pid[32];
        int r;

        /* The device program first: the worker never runs in the cgroup without it. */
        if (cg->n_devices == 0) {
                if (m->shared_prog_fd < 0) {
                        r = device_filter_load(NULL, 0);
                        if (r < 0)
                                return r;
                        m->shared_prog_fd = r;
                }
                r = device_filter_attach(m->shared_prog_fd, cg->v2_dir);
        } else {
                r = device_filter_load(cg->devices, cg->n_devices);
                if (r < 0)
                        return r;
                cg->prog_fd = r;
                r = device_filter_attach(cg->prog_fd, cg->v2_dir);
        }
        if (r < 0)
                return r;

        snprintf(pid, sizeof(pid), "%d", (int) cg->pid);
        r = cg_write_file(cg->v2_dir, "cgroup.procs", pid);
        if (r < 0)
                return r;

        _cleanup_free_ char *events = NULL;
        if (asprintf(&events, "%s/cgroup.events", cg->v2_dir) < 0)
                return -ENOMEM;
        cg->wd = inotify_add_watch(m->inotify_fd, events, IN_MODIFY);
        if (cg->wd < 0)
                return negative_errno();
        cg->populated = true;
        return 0;
}

int actor_cgroup_kill(ActorCgroup *cg) {
        if (!cg->v2_dir)
                return cg->pid > 0 ? (kill(cg->pid, SIGKILL) < 0 ? negative_errno() : 0) : 0;
        int r = cg_kill(cg->v2_dir);
        if (r < 0 && cg->pid > 0)
                (void) kill(cg->pid, SIGKILL);
        /* If it is empty already, no event will come: say so from the loop, not from here. */
        if (!cg->defer && cg->manager->event)
                (void) sd_event_add_defer(cg->manager->event, &cg->defer, on_defer_empty, cg);
        return r;
}

bool actor_cgroup_is_empty(ActorCgroup *cg) {
        return !cg->v2_dir || cg_is_populated(cg->v2_dir) <= 0;
}

int actor_cgroup_adopt_name(char **name, const char *format, ...) {
        _cleanup_free_ char *expected = NULL;
        va_list ap;

        va_start(ap, format);
        int k = vasprintf(&expected, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        if (!*name)
                *name = TAKE_PTR(expected);
        else if (!streq(*name, expected))
                return -EINVAL;
        return 0;
}

/* Whether pid is in the v2 cgroup path now (its "0::" line in /proc/PID/cgroup). */
static bool pid_in_cgroup(pid_t pid, const char *path) {
        _cleanup_free_ char *p = NULL, *line = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t n = 0;

        if (pid <= 0 || asprintf(&p, "/proc/%d/cgroup", (int) pid) < 0)
                return false;
        f = fopen(p, "re");
        if (!f)
                return false;
        while (getline(&line, &n, f) > 0) {
                if (strncmp(line, "0::", 3) != 0)
                        continue;
                line[strcspn(line, "\n")] = 0;
                return streq(line + 3, path);
        }
        return false;
}

int actor_cgroup_adopt(CgroupManager *m, const ActorCgroupAdopt *spec, actor_cgroup_empty_t on_empty,
                       void *userdata, ActorCgroup **ret) {
        const char *kind;
        ActorCgroup *cg;
        int r;

        if (!m->ops->place) {
                *ret = NULL;
                return 0;
        }
        if (!spec->kind || streq(spec->kind, "actor"))
                kind = "actor";
        else if (streq(spec->kind, "task"))
                kind = "task";
        else
                return -EINVAL;
        /* One name below our subtree: never one that reaches into another directory. */
        if (!spec->id || !spec->id[0] || strchr(spec->id, '/'))
                return -EINVAL;

        cg = calloc(1, sizeof(*cg));
        if (!cg)
                return -ENOMEM;
        cg->manager = m;
        cg->kind = kind;
        cg->limits = spec->limits;
        cg->prog_fd = -1;
        cg->wd = -1;
        cg->oom_kills_placed = UINT64_MAX;
        cg->on_empty = on_empty;
        cg->userdata = userdata;
        LIST_INSERT_HEAD(&m->cgroups, cg, link);
        m->n_cgroups++;
        cg->id = strdup(spec->id);
        if (!cg->id || (spec->unit && !(cg->unit = strdup(spec->unit))) ||
            (spec->path && !(cg->path = strdup(spec->path))) ||
            (spec->v2_dir && !(cg->v2_dir = strdup(spec->v2_dir)))) {
                actor_cgroup_abandon(cg);
                return -ENOMEM;
        }

        r = m->ops->adopt(cg);
        /* Two of ours on one cgroup would share one inotify watch, and the first freed would take it. */
        for (ActorCgroup *i = LIST_FIRST(&m->cgroups); i && r >= 0; i = LIST_NEXT(i, link))
                if (i != cg && streq(i->kind, kind) && streq(i->id, cg->id))
                        r = -EEXIST;
        if (r < 0) {
                actor_cgroup_abandon(cg);
                return r;
        }

        /* A pid that has left the cgroup may be another process by now: never signal that one. */
        if (pid_in_cgroup(spec->pid, cg->path))
                cg->pid = spec->pid;

        _cleanup_free_ char *events = NULL;
        if (asprintf(&events, "%s/cgroup.events", cg->v2_dir) < 0) {
                actor_cgroup_abandon(cg);
                return -ENOMEM;
        }
        cg->wd = inotify_add_watch(m->inotify_fd, events, IN_MODIFY);
        r = cg->wd < 0 ? negative_errno() : cg_is_populated(cg->v2_dir);
        /* Empty already: no event will come, so say it from the loop, as after a kill. */
        if (r == 0)
                r = sd_event_add_defer(m->event, &cg->defer, on_defer_empty, cg);
        if (r < 0) {
                actor_cgroup_abandon(cg);
                return r;
        }
        cg->populated = !cg->defer;
        cg->placed = true;
        /* Kills while no manager held it are not told apart from earlier ones: they count for none. */
        actor_cgroup_count_oom_kills(cg);
        *ret = cg;
        return 0;
}

/* What freeing and abandoning share, once the cgroup itself is dealt with. */
static void actor_cgroup_release(ActorCgroup *cg) {
        CgroupManager *m = cg->manager;

        sd_event_source_disable_unref(cg->defer);
        LIST_REMOVE(cg, link);
        m->n_cgroups--;
        /* Detaches nothing: the attachment holds the program, whoever loaded it. */
        safe_close(cg->prog_fd);
        free(cg->id);
        free(cg->unit);
        free(cg->path);
        free(cg->v2_dir);
        free(cg->devices);
        free(cg);
}

ActorCgroup *actor_cgroup_free(ActorCgroup *cg) {
        if (!cg)
                return NULL;
        CgroupManager *m = cg->manager;

        if (cg->v2_dir && !cg->destroyed) {
                (void) cg_kill(cg->v2_dir);
                (void) cg_wait_empty(cg->v2_dir, CGROUP_EMPTY_TIMEOUT_USEC);
        }
        if (cg->wd >= 0)
                (void) inotify_rm_watch(m->inotify_fd, cg->wd);
        if (!cg->destroyed) {
                cg->destroyed = true;
                m->ops->destroy(cg);
        }
        actor_cgroup_release(cg);
        return NULL;
}

void actor_cgroup_abandon(ActorCgroup *cg) {
        if (!cg)
                return;
        CgroupManager *m = cg->manager;

        if (cg->wd >= 0)
                (void) inotify_rm_watch(m->inotify_fd, cg->wd);
        if (!cg->destroyed && m->ops->abandon)
                m->ops->abandon(cg);
        actor_cgroup_release(cg);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * kactor's task-latency tracing, the loader: opens, loads and attaches bpf/trace.bpf.c through its
 * skeleton, maps the call histograms, pins the maps under /sys/fs/bpf/kactor/NODE/, and gives the
 * node manager what it needs to register its actors, count its calls and read what the programs
 * gathered. No D-Bus, no logging: errors are returned (trace_new() also says why in words).
 */

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "trace-loader.h"
#include "trace.skel.h"

#define TRACE_BPFFS "/sys/fs/bpf"

struct Trace {
        struct trace_bpf *skel;
        struct bpf_link *sched_links[3];
        struct kt_call_stats *hists; /* the `hists` map, mapped */
        size_t hists_size;
        struct kt_call_key slot_keys[TRACE_CALL_SLOTS]; /* what `calls` holds (actor 0: free) */
        uint32_t free_slots[TRACE_CALL_SLOTS];          /* a stack of the free ones */
        size_t n_free_slots;
        char *pin_dir;
        bool attached;
        bool mounted_bpffs;
        struct ring_buffer *rb;
        trace_event_fn event_fn;
        void *event_userdata;
};

/* libbpf's last complaint, for the reason given when loading fails. */
static char libbpf_last[512];

static int libbpf_print(enum libbpf_print_level level, const char *format, va_list ap) {
        if (level == LIBBPF_DEBUG)
                return 0;
        vsnprintf(libbpf_last, sizeof(libbpf_last), format, ap);
        size_t n = strlen(libbpf_last);
        while (n > 0 && (libbpf_last[n - 1] == '\n' || libbpf_last[n - 1] == ' '))
                libbpf_last[--n] = 0;
        return 0;
}

static bool is_bpffs(const char *path) {
        struct statfs st;
        return statfs(path, &st) >= 0 && st.f_type == BPF_FS_MAGIC;
}

/* Node managers of one host pin and unpin under this lock, so that one never unmounts the bpffs it
 * mounted while another is about to pin there. */
static int pin_lock(void) {
        int fd = open("/sys/fs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0)
                (void) flock(fd, LOCK_EX);
        return fd;
}

static void pin_unlock(int fd) {
        if (fd >= 0)
                close(fd);
}

/* Mounts bpffs at /sys/fs/bpf when nothing is mounted there (called under the lock). */
static int trace_ensure_bpffs(Trace *t) {
        if (is_bpffs(TRACE_BPFFS))
                return 0;
        if (mount("bpf", TRACE_BPFFS, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0)
                return -errno;
        t->mounted_bpffs = true;
        return 0;
}

/* Next to each node's pin directory an empty directory "owner-NODE-PID" (bpffs allows no dots) says which process pins
 * there; pins of a node manager that was killed are removed by the next one that starts. */
static char *owner_dir(const char *node, pid_t pid) {
        char *p;
        if (asprintf(&p, "%s/owner-%s-%d", TRACE_PIN_ROOT, node, (int) pid) < 0)
                return NULL;
        return p;
}

static void remove_pin_dir(const char *dir) {
        DIR *d = opendir(dir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                closedir(d);
        }
        (void) rmdir(dir);
}

static void trace_reap_stale_locked(void) {
        DIR *d = opendir(TRACE_PIN_ROOT);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                char node[64];
                int pid;
                if (strncmp(de->d_name, "owner-", 6) != 0 ||
                    sscanf(de->d_name + 6, "%63[0-9a-f]-%d", node, &pid) != 2 || pid <= 0)
                        continue;
                if (kill(pid, 0) >= 0 || errno != ESRCH)
                        continue; /* alive (or not ours to judge) */
                char *p;
                if (asprintf(&p, "%s/%s", TRACE_PIN_ROOT, node) >= 0) {
                        remove_pin_dir(p);
                        free(p);
                }
                (void) unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        }
        closedir(d);
}

static void trace_unpin_locked(Trace *t) {
        if (t->pin_dir) {
                const char *node = strrchr(t->pin_dir, '/');
                char *owner = node ? owner_dir(node + 1, getpid()) : NULL;
                if (owner) {
                        (void) rmdir(owner);
                        free(owner);
                }
                struct bpf_map *map;
                bpf_object__for_each_map(map, t->skel->obj)
                        if (bpf_map__is_pinned(map))
                                (void) bpf_map__unpin(map, NULL);
                (void) rmdir(t->pin_dir);
                free(t->pin_dir);
                t->pin_dir = NULL;
        }
        /* Fails while other node managers pin there: fine. Only what we mounted is unmounted, and
         * only once nobody pins there. */
        if (rmdir(TRACE_PIN_ROOT) >= 0 || errno == ENOENT)
                if (t->mounted_bpffs && umount2(TRACE_BPFFS, UMOUNT_NOFOLLOW) >= 0)
                        t->mounted_bpffs = false;
}

static void trace_unpin(Trace *t) {
        if (!t->pin_dir && !t->mounted_bpffs)
                return;
        int fd = pin_lock();
        trace_unpin_locked(t);
        pin_unlock(fd);
}

static int trace_pin_locked(Trace *t, const char *node) {
        static const char *const pinned[] = { "hists", "calls", "sched", "actors", "methods", "tasks", "cgroups" };
        int r = trace_ensure_bpffs(t);
        if (r < 0)
                return r;
        if (mkdir(TRACE_PIN_ROOT, 0755) < 0 && errno != EEXIST)
                return -errno;
        trace_reap_stale_locked();
        char *owner = owner_dir(node, getpid());
        if (!owner)
                return -ENOMEM;
        r = mkdir(owner, 0755) < 0 && errno != EEXIST ? -errno : 0;
        free(owner);
        if (r < 0)
                return r;
        if (asprintf(&t->pin_dir, "%s/%s", TRACE_PIN_ROOT, node) < 0) {
                t->pin_dir = NULL;
                return -ENOMEM;
        }
        if (mkdir(t->pin_dir, 0755) < 0 && errno != EEXIST) {
                r = -errno;
                free(t->pin_dir);
                t->pin_dir = NULL;
                return r;
        }
        for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
                struct bpf_map *map = bpf_object__find_map_by_name(t->skel->obj, pinned[i]);
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", t->pin_dir, pinned[i]);
                (void) unlink(path); /* a stale pin of a node manager that was killed */
                r = map ? bpf_map__pin(map, path) : -ENOENT;
                if (r < 0) {
                        trace_unpin_locked(t);
                        return r;
                }
        }
        return 0;
}

static int trace_pin(Trace *t, const char *node) {
        int fd = pin_lock();
        int r = trace_pin_locked(t, node);
        pin_unlock(fd);
        return r;
}

static int trace_attach(Trace *t) {
        if (t->attached)
                return 0;
        struct bpf_program *sched[] = { t->skel->progs.sched_wakeup, t->skel->progs.sched_wakeup_new,
                                        t->skel->progs.sched_switch };
        for (size_t i = 0; i < 3; i++) {
                t->sched_links[i] = bpf_program__attach(sched[i]);
                if (!t->sched_links[i]) {
                        int r = -errno;
                        t->sched_links[i] = NULL;
                        return r;
                }
        }
        t->attached = true;
        return 0;
}

static void trace_detach(Trace *t) {
        for (size_t i = 0; i < 3; i++) {
                bpf_link__destroy(t->sched_links[i]);
                t->sched_links[i] = NULL;
        }
        t->attached = false;
}

Trace *trace_free(Trace *t) {
        if (!t)
                return NULL;
        ring_buffer__free(t->rb);
        trace_detach(t);
        if (t->hists)
                (void) munmap(t->hists, t->hists_size);
        if (t->skel)
                trace_unpin(t);
        trace_bpf__destroy(t->skel);
        free(t);
        return NULL;
}

static char *reason_dup(const char *format, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

static int on_rb_event(void *ctx, void *data, size_t size) {
        Trace *t = ctx;
        if (size >= sizeof(struct kt_event) && t->event_fn)
                t->event_fn(data, t->event_userdata);
        return 0;
}

int trace_new(const TraceOptions *opts, Trace **ret, char **ret_reason) {
        Trace *t;
        int r;

        *ret_reason = NULL;
        libbpf_set_print(libbpf_print);
        libbpf_last[0] = 0;

        if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
                *ret_reason = reason_dup("the kernel has no BTF (/sys/kernel/btf/vmlinux)");
                return -EOPNOTSUPP;
        }
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < TRACE_CALL_SLOTS; i++)
                t->free_slots[i] = TRACE_CALL_SLOTS - 1 - i; /* slot 0 first */
        t->n_free_slots = TRACE_CALL_SLOTS;
        t->event_fn = opts->event_fn;
        t->event_userdata = opts->event_userdata;

        t->skel = trace_bpf__open();
        if (!t->skel) {
                r = -errno;
                *ret_reason = reason_dup("cannot open the BPF object: %s", strerror(-r));
                trace_free(t);
                return r;
        }
        t->skel->rodata->sched_events = opts->sched_events;
        if (opts->ringbuf_size > 0)
                (void) bpf_map__set_max_entries(t->skel->maps.events, opts->ringbuf_size);

        r = trace_bpf__load(t->skel);
        if (r < 0) {
                if (r == -EPERM || r == -EACCES)
                        *ret_reason = reason_dup("not permitted to load BPF programs (needs root, or CAP_BPF "
                                                 "and CAP_PERFMON)");
                else
                        *ret_reason = reason_dup("loading the BPF programs failed: %s%s%s", strerror(-r),
                                                 libbpf_last[0] ? ": " : "", libbpf_last);
                trace_free(t);
                return r;
        }
        /* The call histograms: the node manager adds to them in this mapping. */
        t->hists_size = (size_t) TRACE_CALL_SLOTS * sizeof(struct kt_call_stats);
        t->hists = mmap(NULL, t->hists_size, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(t->skel->maps.hists), 0);
        if (t->hists == MAP_FAILED) {
                r = -errno;
                t->hists = NULL;
                *ret_reason = reason_dup("cannot map the call histograms: %s", strerror(-r));
                trace_free(t);
                return r;
        }
        r = trace_attach(t);
        if (r < 0) {
                *ret_reason = reason_dup("attaching the BPF programs failed: %s%s%s",
                                         strerror(-r), libbpf_last[0] ? ": " : "", libbpf_last);
                trace_free(t);
                return r;
        }
        if (opts->node_id) {
                r = trace_pin(t, opts->node_id);
                if (r < 0) {
                        *ret_reason = reason_dup("pinning the maps under %s failed: %s", TRACE_PIN_ROOT,
                                                 strerror(-r));
                        trace_free(t);
                        return r;
                }
        }
        t->rb = ring_buffer__new(bpf_map__fd(t->skel->maps.events), on_rb_event, t, NULL);
        if (!t->rb) {
                r = -errno;
                *ret_reason = reason_dup("cannot read the BPF ring buffer: %s", strerror(-r));
                trace_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

int trace_set_enabled(Trace *t, bool enabled) {
        if (!enabled) {
                trace_detach(t);
                return 0;
        }
        return trace_attach(t);
}

bool trace_is_enabled(const Trace *t) {
        return t->attached;
}

const char *trace_pin_dir(const Trace *t) {
        return t->pin_dir;
}

int trace_actor_add(Trace *t, uint64_t key, uint64_t id_hi, uint64_t id_lo, pid_t pid) {
        struct kt_actor_info info = { .id_hi = id_hi, .id_lo = id_lo, .pid = (uint32_t) pid }, old;
        if (bpf_map__lookup_elem(t->skel->maps.actors, &key, sizeof(key), &old, sizeof(old), 0) >= 0)
                info.cgroup_id = old.cgroup_id;
        int r = bpf_map__update_elem(t->skel->maps.actors, &key, sizeof(key), &info, sizeof(info), BPF_ANY);
        if (r < 0)
                return r;
        /* Followed by its cgroup when it has one, else by its process. */
        if (pid > 0 && !info.cgroup_id) {
                uint32_t tgid = (uint32_t) pid;
                r = bpf_map__update_elem(t->skel->maps.tasks, &tgid, sizeof(tgid), &key, sizeof(key), BPF_NOEXIST);
                if (r >= 0)
                        t->skel->bss->n_tasks++;
                else if (r == -EEXIST)
                        r = 0;
        }
        return r;
}

/* The actor's worker is followed by its cgroup from now on: its process needs no entry of its own. */
static void trace_actor_drop_task(Trace *t, uint32_t tgid) {
        if (tgid && bpf_map__delete_elem(t->skel->maps.tasks, &tgid, sizeof(tgid), 0) >= 0)
                t->skel->bss->n_tasks--;
}

int trace_actor_set_cgroup(Trace *t, uint64_t key, uint64_t cgroup_id) {
        struct kt_actor_info info;
        int r = bpf_map__lookup_elem(t->skel->maps.actors, &key, sizeof(key), &info, sizeof(info), 0);
        if (r < 0)
                return r;
        if (info.cgroup_id && info.cgroup_id != cgroup_id &&
            bpf_map__delete_elem(t->skel->maps.cgroups, &info.cgroup_id, sizeof(uint64_t), 0) >= 0)
                t->skel->bss->n_cgroups--;
        info.cgroup_id = cgroup_id;
        r = bpf_map__update_elem(t->skel->maps.actors, &key, sizeof(key), &info, sizeof(info), BPF_ANY);
        if (r >= 0 && cgroup_id) {
                r = bpf_map__update_elem(t->skel->maps.cgroups, &cgroup_id, sizeof(cgroup_id), &key, sizeof(key),
                                         BPF_NOEXIST);
                if (r >= 0)
                        t->skel->bss->n_cgroups++;
                else if (r == -EEXIST)
                        r = 0;
                if (r >= 0)
                        trace_actor_drop_task(t, info.pid);
        }
        return r;
}

int trace_actor_gone(Trace *t, uint64_t key) {
        struct kt_actor_info info;
        if (bpf_map__lookup_elem(t->skel->maps.actors, &key, sizeof(key), &info, sizeof(info), 0) < 0)
                return 0;
        trace_actor_drop_task(t, info.pid);
        if (info.cgroup_id && bpf_map__delete_elem(t->skel->maps.cgroups, &info.cgroup_id, sizeof(uint64_t), 0) >= 0)
                t->skel->bss->n_cgroups--;
        info.pid = 0;
        info.cgroup_id = 0;
        /* Still an actor of this node (its figures stay readable) until trace_actor_forget(). */
        return bpf_map__update_elem(t->skel->maps.actors, &key, sizeof(key), &info, sizeof(info), BPF_ANY);
}

int trace_actor_forget(Trace *t, uint64_t key) {
        (void) trace_actor_gone(t, key);
        (void) bpf_map__delete_elem(t->skel->maps.actors, &key, sizeof(key), 0);
        (void) bpf_map__delete_elem(t->skel->maps.sched, &key, sizeof(key), 0);
        return 0;
}

int trace_method_add(Trace *t, uint32_t id, const char *name) {
        char v[64] = {};
        strncpy(v, name, sizeof(v) - 1);
        return bpf_map__update_elem(t->skel->maps.methods, &id, sizeof(id), v, sizeof(v), BPF_ANY);
}

int trace_call_slot_new(Trace *t, uint64_t actor, uint32_t method) {
        if (t->n_free_slots == 0)
                return -ENOSPC;
        uint32_t slot = t->free_slots[t->n_free_slots - 1];
        struct kt_call_key key = { .actor = actor, .method = method };
        int r = bpf_map__update_elem(t->skel->maps.calls, &slot, sizeof(slot), &key, sizeof(key), BPF_ANY);
        if (r < 0)
                return r;
        t->n_free_slots--;
        t->slot_keys[slot] = key;
        memset(&t->hists[slot], 0, sizeof(t->hists[slot]));
        return (int) slot;
}

void trace_call_slot_free(Trace *t, int slot) {
        if (slot < 0 || slot >= TRACE_CALL_SLOTS || t->slot_keys[slot].actor == 0)
                return;
        struct kt_call_key key = {};
        uint32_t i = (uint32_t) slot;
        (void) bpf_map__update_elem(t->skel->maps.calls, &i, sizeof(i), &key, sizeof(key), BPF_ANY);
        t->slot_keys[slot] = key;
        memset(&t->hists[slot], 0, sizeof(t->hists[slot]));
        t->free_slots[t->n_free_slots++] = i;
}

struct kt_call_stats *trace_call_stats(Trace *t, int slot) {
        return &t->hists[slot];
}

void trace_set_timeline(Trace *t, bool on) {
        t->skel->bss->timeline_on = on;
}

uint64_t trace_dropped(const Trace *t) {
        return t->skel->bss->dropped;
}

int trace_ringbuf_fd(const Trace *t) {
        return ring_buffer__epoll_fd(t->rb);
}

int trace_ringbuf_consume(Trace *t) {
        return ring_buffer__consume(t->rb);
}

int trace_foreach_call(Trace *t, trace_call_fn fn, void *userdata) {
        for (size_t i = 0; i < TRACE_CALL_SLOTS; i++)
                if (t->slot_keys[i].actor != 0 && t->hists[i].calls > 0)
                        fn(&t->slot_keys[i], &t->hists[i], userdata);
        return 0;
}

int trace_foreach_sched(Trace *t, trace_sched_fn fn, void *userdata) {
        int fd = bpf_map__fd(t->skel->maps.sched);
        uint64_t key, next, *prev = NULL;
        struct kt_sched_stats *st = malloc(sizeof(*st));
        if (!st)
                return -ENOMEM;
        while (bpf_map_get_next_key(fd, prev, &next) == 0) {
                key = next;
                prev = &key;
                if (bpf_map_lookup_elem(fd, &key, st) < 0)
                        continue;
                fn(key, st, userdata);
        }
        free(st);
        return 0;
}

int trace_foreach_thread(Trace *t, trace_thread_fn fn, void *userdata) {
        int fd = bpf_map__fd(t->skel->maps.threads);
        uint32_t key, next, *prev = NULL;
        struct kt_thread th;
        while (bpf_map_get_next_key(fd, prev, &next) == 0) {
                key = next;
                prev = &key;
                if (bpf_map_lookup_elem(fd, &key, &th) < 0)
                        continue;
                fn(key, &th, userdata);
        }
        return 0;
}

static void map_clear(int fd, size_t key_size) {
        char key[64], next[64];
        /* Deleting the key in hand makes get_next_key start over: take the first key each time. */
        while (key_size <= sizeof(key) && bpf_map_get_next_key(fd, NULL, next) == 0) {
                memcpy(key, next, key_size);
                if (bpf_map_delete_elem(fd, key) < 0)
                        break;
        }
}

void trace_reset(Trace *t) {
        memset(t->hists, 0, t->hists_size);
        map_clear(bpf_map__fd(t->skel->maps.sched), sizeof(uint64_t));
        t->skel->bss->dropped = 0;
}

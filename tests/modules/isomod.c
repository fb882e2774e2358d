/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Probe: what an actor sees of its isolation and its limits (tests/integration/test-isolation.c,
 * test-limits.c). */

#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kactor/module.h"
#include "proc-status.h"

typedef struct Probe {
        char *cgroup_at_init; /* /proc/self/cgroup as the constructor (module code) first saw it */
} Probe;

static char *read_self_cgroup(void) {
        char buf[4096];
        size_t n = 0;
        FILE *f = fopen("/proc/self/cgroup", "re");
        if (!f)
                return NULL;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        return strdup(buf);
}

static int probe_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        Probe *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->cgroup_at_init = read_self_cgroup();
        *ret_state = p;
        return 0;
}

static void probe_destroy(void *state) {
        Probe *p = state;
        if (p)
                free(p->cgroup_at_init);
        free(p);
}

/* cgroup_at_init() -> /proc/self/cgroup as it was when the constructor ran */
static int probe_cgroup_at_init(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Probe *p = state;
        *ret = kactor_value_new_string(p->cgroup_at_init ?: "");
        return *ret ? 0 : -ENOMEM;
}

/* allocate(bytes) -> bytes, once every page of them was written (then they are given back) */
static int probe_allocate(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t n;
        int r = kactor_arg_int(ctx, args, 0, &n);
        if (r < 0)
                return r;
        if (n <= 0)
                return -EINVAL;
        char *m = mmap(NULL, (size_t) n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
                return -errno;
        long page = sysconf(_SC_PAGESIZE);
        for (int64_t i = 0; i < n; i += page)
                ((volatile char *) m)[i] = 1;
        munmap(m, (size_t) n);
        *ret = kactor_value_new_int(n);
        return 0;
}

/* fork_many(n) -> {"forked": children that fork() made, "errno": of the first failure (0: none),
 * "threads": the worker's threads}. The children wait for the end of the call; all are reaped before
 * it returns. */
static int probe_fork_many(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t n, forked = 0, err = 0;
        int fds[2], r;

        r = kactor_arg_int(ctx, args, 0, &n);
        if (r < 0)
                return r;
        if (n < 0 || n > 1024)
                return -EINVAL;
        pid_t *pids = calloc((size_t) n + 1, sizeof(pid_t));
        if (!pids)
                return -ENOMEM;
        if (pipe2(fds, O_CLOEXEC) < 0) {
                free(pids);
                return -errno;
        }
        while (forked < n) {
                pid_t pid = fork();
                if (pid < 0) {
                        err = errno;
                        break;
                }
                if (pid == 0) {
                        char c;
                        close(fds[1]);
                        (void) read(fds[0], &c, 1); /* end of file once the call is done */
                        _exit(0);
                }
                pids[forked++] = pid;
        }
        char *threads = status_field("Threads");
        close(fds[1]);
        for (int64_t i = 0; i < forked; i++)
                (void) waitpid(pids[i], NULL, 0);
        close(fds[0]);
        free(pids);

        kactor_value *m = kactor_value_new_map();
        if (!m || kactor_value_map_set(m, "forked", kactor_value_new_int(forked)) < 0 ||
            kactor_value_map_set(m, "errno", kactor_value_new_int(err)) < 0 ||
            kactor_value_map_set(m, "threads", kactor_value_new_int(threads ? atoi(threads) : -1)) < 0)
                m = kactor_value_free(m);
        free(threads);
        *ret = m;
        return m ? 0 : -ENOMEM;
}

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void *spin_until(void *deadline) {
        while (clock_usec(CLOCK_MONOTONIC) < *(const uint64_t *) deadline)
                ;
        return NULL;
}

/* spin(ms, threads) -> the CPU time (µs) the worker used while that many threads spun for ms of wall
 * time */
static int probe_spin(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t ms, n;
        pthread_t t[16];
        int r = kactor_arg_int(ctx, args, 0, &ms);
        if (r >= 0)
                r = kactor_arg_int(ctx, args, 1, &n);
        if (r < 0)
                return r;
        if (ms < 0 || ms > 60000 || n < 1 || n > 16)
                return -EINVAL;
        uint64_t cpu0 = clock_usec(CLOCK_PROCESS_CPUTIME_ID);
        uint64_t deadline = clock_usec(CLOCK_MONOTONIC) + (uint64_t) ms * 1000;
        int64_t started = 0;
        for (; started < n - 1; started++)
                if (pthread_create(&t[started], NULL, spin_until, &deadline) != 0)
                        break;
        spin_until(&deadline);
        for (int64_t i = 0; i < started; i++)
                pthread_join(t[i], NULL);
        *ret = kactor_value_new_int((int64_t) (clock_usec(CLOCK_PROCESS_CPUTIME_ID) - cpu0));
        return 0;
}

/* open_errno(path) -> 0 when open(path, O_RDWR) succeeded, else its errno (ENXIO, EPERM, ...) */
static int probe_open_errno(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        const char *path;
        int r = kactor_arg_string(ctx, args, 0, &path);
        if (r < 0)
                return r;
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        int e = fd < 0 ? errno : 0;
        if (fd >= 0)
                close(fd);
        *ret = kactor_value_new_int(e);
        return 0;
}

/* identity() -> {"uid", "gid", "euid", "cap_eff", "cap_prm", "cap_bnd", "no_new_privs", "cgroup"} */
static int probe_identity(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        kactor_value *m = kactor_value_new_map();
        char *eff = status_field("CapEff"), *prm = status_field("CapPrm"), *bnd = status_field("CapBnd");
        char cg[1024] = "";
        FILE *f = fopen("/proc/self/cgroup", "re");
        if (f) {
                char line[1024];
                while (fgets(line, sizeof(line), f))
                        if (strncmp(line, "0::", 3) == 0) {
                                snprintf(cg, sizeof(cg), "%s", line + 3);
                                cg[strcspn(cg, "\n")] = 0;
                        }
                fclose(f);
        }
        if (!m || kactor_value_map_set(m, "uid", kactor_value_new_int(getuid())) < 0 ||
            kactor_value_map_set(m, "gid", kactor_value_new_int(getgid())) < 0 ||
            kactor_value_map_set(m, "euid", kactor_value_new_int(geteuid())) < 0 ||
            kactor_value_map_set(m, "cap_eff", kactor_value_new_string(eff ?: "?")) < 0 ||
            kactor_value_map_set(m, "cap_prm", kactor_value_new_string(prm ?: "?")) < 0 ||
            kactor_value_map_set(m, "cap_bnd", kactor_value_new_string(bnd ?: "?")) < 0 ||
            kactor_value_map_set(m, "no_new_privs", kactor_value_new_int(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0))) < 0 ||
            kactor_value_map_set(m, "cgroup", kactor_value_new_string(cg)) < 0)
                m = kactor_value_free(m);
        free(eff);
        free(prm);
        free(bnd);
        *ret = m;
        return m ? 0 : -ENOMEM;
}

/* spawn_child() -> the pid of a child that sleeps in its own session (it must not outlive a Kill) */
static int probe_spawn_child(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void) setsid();
                (void) prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
                for (int i = 0; i < 3; i++)
                        close(i);
                for (;;)
                        pause();
        }
        *ret = kactor_value_new_int(pid);
        return 0;
}

/* session_keyring() -> the id of the worker's session keyring (keys another actor must not see) */
static int probe_session_keyring(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
        if (id < 0)
                return -errno;
        *ret = kactor_value_new_int(id);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method probe_methods[] = {
        { .name = "open_errno", .fn = probe_open_errno },
        { .name = "identity", .fn = probe_identity },
        { .name = "spawn_child", .fn = probe_spawn_child },
        { .name = "cgroup_at_init", .fn = probe_cgroup_at_init },
        { .name = "allocate", .fn = probe_allocate },
        { .name = "fork_many", .fn = probe_fork_many },
        { .name = "spin", .fn = probe_spin },
        { .name = "session_keyring", .fn = probe_session_keyring },
        {},
};

static const kactor_class probe_class = {
        .name = "Probe",
        .init = probe_init,
        .destroy = probe_destroy,
        .methods = probe_methods,
};

KACTOR_MODULE(.name = "isomod", .classes = (const kactor_class *const[]) { &probe_class, NULL });

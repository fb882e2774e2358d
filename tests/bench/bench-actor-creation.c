/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Actor creation and memory:
 *
 *   actor_creation            create KACTOR_BENCH_ACTORS Counters (default 1000), then call each
 *                             once; the rate counts from the first create to the last answer
 *   nodemgr_rss_idle_actors   the node manager's VmRSS with those actors alive and idle, beside its
 *                             VmRSS before they were made
 *   counter_worker_rss        VmRSS of one Counter's worker (its PID from the actor's D-Bus property
 *                             Pid, else a new child of the node manager), beside /bin/sleep's
 *   actor_release             release every handle; the rate counts until every worker has exited
 *                             (watched with pidfds)
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

extern char **environ;

static int cmp_pid(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;

        return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static char proc_state(pid_t pid) {
        char path[64], buf[512], *p, state = '?';
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return '?';
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0) {
                buf[n] = '\0';
                p = strrchr(buf, ')');
                if (p)
                        (void) sscanf(p + 1, " %c", &state);
        }
        return state;
}

/* VmRSS of a trivial dynamically linked program once it sleeps: the floor for a process. */
static int sleep_rss(uint64_t *ret) {
        char *argv[] = { "/bin/sleep", "30", NULL };
        struct timespec ms = { 0, 1000 * 1000 };
        pid_t pid;
        int r;

        r = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
        if (r != 0)
                return -r;
        /* Until it is asleep it may still be loading; a bounded wait. */
        for (unsigned i = 0; i < 1000 && proc_state(pid) != 'S'; i++)
                nanosleep(&ms, NULL);
        r = bench_proc_rss(pid, ret, NULL, NULL);
        kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        return r;
}

/* The elements of `after` not in `before` (both sorted here), into a malloc'd array. */
static size_t pid_difference(pid_t *before, size_t n_before, pid_t *after, size_t n_after, pid_t **ret) {
        pid_t *out = calloc(n_after ?: 1, sizeof(pid_t));
        size_t n = 0;

        if (!out)
                return 0;
        qsort(before, n_before, sizeof(pid_t), cmp_pid);
        qsort(after, n_after, sizeof(pid_t), cmp_pid);
        for (size_t i = 0; i < n_after; i++)
                if (!bsearch(&after[i], before, n_before, sizeof(pid_t), cmp_pid))
                        out[n++] = after[i];
        *ret = out;
        return n;
}

static void report_worker_memory(kactor_actor actor, const pid_t *workers, size_t n_workers) {
        uint64_t rss = 0, anon = 0, file = 0, base = 0, *all;
        char detail[128];
        const char *how;
        pid_t pid = 0;
        size_t n = 0;

        if (bench_actor_pid(actor, &pid) >= 0)
                how = "PID from D-Bus";
        else if (n_workers > 0) {
                pid = workers[0];
                how = "PID from /proc";
        } else {
                bench_line("counter_worker_rss", "?", "worker PID not found: no Pid property, no children",
                           BENCH_MISS, "target <= 4 MiB");
                return;
        }
        if (bench_proc_rss(pid, &rss, &anon, &file) < 0) {
                bench_line("counter_worker_rss", "?", "cannot read /proc/PID/status", BENCH_MISS, "target <= 4 MiB");
                return;
        }
        (void) sleep_rss(&base);
        snprintf(detail, sizeof(detail), "anon %.1f + file %.1f MiB; %s", (double) anon / 1048576.0,
                 (double) file / 1048576.0, how);
        bench_report_memory("counter_worker_rss", rss, base, "/bin/sleep", 4ULL << 20, detail);

        /* The median over all the new workers, to show the one above is typical. */
        all = calloc(n_workers ?: 1, sizeof(uint64_t));
        for (size_t i = 0; all && i < n_workers; i++)
                if (bench_proc_rss(workers[i], &all[n], NULL, NULL) >= 0)
                        n++;
        if (n > 0) {
                qsort(all, n, sizeof(uint64_t), cmp_u64);
                snprintf(detail, sizeof(detail), "median of %zu workers, max %.1f MiB", n,
                         (double) all[n - 1] / 1048576.0);
                bench_report_memory("counter_worker_rss_median", all[n / 2], 0, NULL, 0, detail);
        }
        free(all);
}

/* Waits until every pid has exited, up to timeout_ms; returns how many did. */
static size_t wait_exited(const pid_t *pids, size_t n, int timeout_ms) {
        struct pollfd *pfd = calloc(n ?: 1, sizeof(struct pollfd));
        uint64_t deadline = bench_now_ns() + (uint64_t) timeout_ms * 1000000ULL;
        size_t left = 0, done = 0;

        if (!pfd)
                return 0;
        for (size_t i = 0; i < n; i++) {
                int fd = (int) syscall(SYS_pidfd_open, pids[i], 0);

                /* ESRCH: already gone (and reaped). */
                pfd[i] = (struct pollfd) { .fd = fd, .events = POLLIN };
                if (fd >= 0)
                        left++;
                else if (errno == ESRCH)
                        done++;
        }
        while (left > 0) {
                uint64_t now = bench_now_ns();
                int k;

                if (now >= deadline)
                        break;
                k = poll(pfd, n, (int) ((deadline - now) / 1000000ULL) + 1);
                if (k < 0 && errno != EINTR)
                        break;
                for (size_t i = 0; k > 0 && i < n; i++)
                        if (pfd[i].fd >= 0 && pfd[i].revents) {
                                close(pfd[i].fd);
                                pfd[i].fd = -1;
                                left--;
                                done++;
                        }
        }
        for (size_t i = 0; i < n; i++)
                if (pfd[i].fd >= 0)
                        close(pfd[i].fd);
        free(pfd);
        return done;
}

int main(int argc, char *argv[]) {
        const char *name = "actor_creation";
        unsigned n = bench_env_unsigned("KACTOR_BENCH_ACTORS", 1000);
        pid_t nodemgr = bench_nodemgr_pid(), *before = NULL, *after = NULL, *workers = NULL;
        uint64_t rss_before = 0, rss = 0, t0, t_accepted, t1, t2, t3;
        int n_before = 0, n_after = 0;
        size_t n_workers = 0, exited;
        kactor_value **values = NULL;
        kactor_actor *actors;
        kactor_ref *refs;
        struct rlimit rl;
        kactor_client *c;
        char figure[64], count[32], ratio[128];
        int r;

        signal(SIGPIPE, SIG_IGN);
        /* One pidfd per worker below. */
        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        actors = calloc(n, sizeof(kactor_actor));
        refs = calloc(n, sizeof(kactor_ref));
        if (!actors || !refs)
                bench_fail(name, NULL, -ENOMEM, "allocating");
        c = bench_connect(name);

        /* Warm-up: one actor through its whole life (loads the module into the page cache). */
        r = kactor_create_actor(c, bench_counter_module(), "Counter", NULL, NULL, &actors[0]);
        if (r < 0)
                bench_fail(name, c, r, "creating Counter in %s", bench_counter_module());
        r = kactor_call(c, actors[0], "get", NULL, &refs[0]);
        if (r >= 0)
                r = kactor_get(c, refs, 1, BENCH_GET_TIMEOUT_USEC, &values);
        if (r < 0)
                bench_fail(name, c, r, "calling Counter.get");
        kactor_values_free(values, 1);
        (void) kactor_ref_release(c, refs, 1);
        (void) kactor_actor_release(c, actors[0]);

        if (nodemgr > 0) {
                (void) bench_proc_rss(nodemgr, &rss_before, NULL, NULL);
                n_before = bench_proc_children(nodemgr, &before);
        }

        t0 = bench_now_ns();
        for (unsigned i = 0; i < n; i++) {
                r = kactor_create_actor(c, bench_counter_module(), "Counter", NULL, NULL, &actors[i]);
                if (r < 0)
                        bench_fail(name, c, r, "creating Counter %u of %u", i + 1, n);
        }
        t_accepted = bench_now_ns();
        for (unsigned i = 0; i < n; i++) {
                r = kactor_call(c, actors[i], "get", NULL, &refs[i]);
                if (r < 0)
                        bench_fail(name, c, r, "calling Counter %u", i + 1);
        }
        r = kactor_get(c, refs, n, BENCH_GET_TIMEOUT_USEC, &values);
        if (r < 0)
                bench_fail(name, c, r, "waiting for %u Counters to answer", n);
        t1 = bench_now_ns();
        for (unsigned i = 0; i < n; i++)
                if (kactor_value_type(values[i]) != KACTOR_TYPE_INT || kactor_value_get_int(values[i]) != 0)
                        bench_fail(name, c, 0, "Counter %u answered %s: %s", i + 1,
                                   kactor_type_to_string(kactor_value_type(values[i])),
                                   kactor_value_is_error(values[i]) ? kactor_value_error_message(values[i]) : "not 0");
        kactor_values_free(values, n);

        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(n / ((double) (t1 - t0) / 1e9), count, sizeof(count)));
        snprintf(ratio, sizeof(ratio), "%.3fx posix_spawn; %u actors, accepted in %.0f ms",
                 bench_baseline_spawn_rate() > 0 ? n / ((double) (t1 - t0) / 1e9) / bench_baseline_spawn_rate() : 0,
                 n, (double) (t_accepted - t0) / 1e6);
        bench_line(name, figure, ratio, n / ((double) (t1 - t0) / 1e9) >= 1000 ? BENCH_PASS : BENCH_MISS,
                   "target >= 1,000/s");

        if (nodemgr > 0) {
                char detail[64];

                snprintf(detail, sizeof(detail), "%u idle actors", n);
                if (bench_proc_rss(nodemgr, &rss, NULL, NULL) >= 0)
                        bench_report_memory("nodemgr_rss_idle_actors", rss, rss_before, "before", 64ULL << 20, detail);
                n_after = bench_proc_children(nodemgr, &after);
                if (n_before >= 0 && n_after >= 0)
                        n_workers = pid_difference(before, (size_t) n_before, after, (size_t) n_after, &workers);
        } else
                bench_line("nodemgr_rss_idle_actors", "?", "KACTOR_BENCH_NODEMGR_PID not set", BENCH_MISS,
                           "target <= 64 MiB");
        report_worker_memory(actors[n / 2], workers, n_workers);

        /* Release: every worker should go once its last handle is gone. */
        t2 = bench_now_ns();
        (void) kactor_ref_release(c, refs, n);
        for (unsigned i = 0; i < n; i++) {
                r = kactor_actor_release(c, actors[i]);
                if (r < 0)
                        bench_fail("actor_release", c, r, "releasing actor %u", i + 1);
        }
        r = kactor_flush(c);
        if (r < 0)
                bench_fail("actor_release", c, r, "flushing");
        if (n_workers > 0) {
                exited = wait_exited(workers, n_workers, 30 * 1000);
                t3 = bench_now_ns();
                snprintf(figure, sizeof(figure), "%s/s",
                         bench_format_count(exited / ((double) (t3 - t2) / 1e9), count, sizeof(count)));
                snprintf(ratio, sizeof(ratio), "%zu of %zu workers exited in %.0f ms", exited, n_workers,
                         (double) (t3 - t2) / 1e6);
                bench_line("actor_release", figure, ratio, exited == n_workers ? BENCH_INFO : BENCH_MISS,
                           exited == n_workers ? "" : "every released actor must stop");
        }

        kactor_client_free(c);
        free(before);
        free(after);
        free(workers);
        free(actors);
        free(refs);
        return 0;
}

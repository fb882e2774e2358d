/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

extern char **environ;

uint64_t bench_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

double bench_env_double(const char *name, double def) {
        const char *s = getenv(name);
        char *end;
        double v;

        if (!s || !*s)
                return def;
        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0)
                return def;
        return v;
}

unsigned bench_env_unsigned(const char *name, unsigned def) {
        double v = bench_env_double(name, def);

        return v >= 1 && v <= 100000000 ? (unsigned) v : def;
}

double bench_duration_s(void) {
        return bench_env_double("KACTOR_BENCH_DURATION", 1.5);
}

double bench_warmup_s(void) {
        return bench_env_double("KACTOR_BENCH_WARMUP", 0.3);
}

unsigned bench_batch(void) {
        return bench_env_unsigned("KACTOR_BENCH_BATCH", 1000);
}

static const char *env_or(const char *name, const char *def) {
        const char *s = getenv(name);

        return s && *s ? s : def;
}

const char *bench_counter_module(void) {
        return env_or("KACTOR_BENCH_COUNTER_MODULE", "counter");
}

const char *bench_noop_module(void) {
        return env_or("KACTOR_BENCH_NOOP_MODULE", "benchmod");
}

_Noreturn void bench_fail(const char *name, kactor_client *c, int r, const char *format, ...) {
        va_list ap;

        fflush(stdout);
        fprintf(stdout, "%-30s ERROR: ", name);
        va_start(ap, format);
        vfprintf(stdout, format, ap);
        va_end(ap);
        if (r == -EREMOTEIO && c)
                fprintf(stdout, ": %s: %s", kactor_error_name(kactor_client_error(c)) ?: "?",
                        kactor_client_error_message(c));
        else if (r < 0)
                fprintf(stdout, ": %s", strerror(-r));
        fputc('\n', stdout);
        fflush(stdout);
        exit(BENCH_EXIT_ERROR);
}

kactor_client *bench_connect_direct(const char *name, int direct_calls) {
        struct kactor_connect_opts opts = { .sz = sizeof(opts), .direct_calls = direct_calls };
        kactor_client *c = NULL;
        int r;

        r = kactor_connect(&opts, &c);
        if (r < 0)
                bench_fail(name, NULL, r, "connecting to %s", getenv("KACTOR_SOCKET") ?: KACTOR_DEFAULT_SOCKET);
        return c;
}

kactor_client *bench_connect(const char *name) {
        return bench_connect_direct(name, 0);
}

int bench_measure_for(bench_step_fn step, void *userdata, double warmup_s, double duration_s, double *ret_rate) {
        uint64_t warmup_end, start, now, ops = 0, end;
        int r;

        warmup_end = bench_now_ns() + (uint64_t) (warmup_s * 1e9);
        while (bench_now_ns() < warmup_end) {
                r = step(userdata, &ops);
                if (r < 0)
                        return r;
        }

        ops = 0;
        start = bench_now_ns();
        end = start + (uint64_t) (duration_s * 1e9);
        do {
                r = step(userdata, &ops);
                if (r < 0)
                        return r;
                now = bench_now_ns();
        } while (now < end);

        *ret_rate = (double) ops / ((double) (now - start) / 1e9);
        return 0;
}

int bench_measure(bench_step_fn step, void *userdata, double *ret_rate) {
        return bench_measure_for(step, userdata, bench_warmup_s(), bench_duration_s(), ret_rate);
}

int bench_write_full(int fd, const void *p, size_t n) {
        const char *b = p;

        while (n > 0) {
                ssize_t k = write(fd, b, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                b += k;
                n -= (size_t) k;
        }
        return 0;
}

int bench_read_full(int fd, void *p, size_t n) {
        char *b = p;
        size_t got = 0;

        while (got < n) {
                ssize_t k = read(fd, b + got, n - got);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return got == 0 ? 0 : -EPIPE;
                got += (size_t) k;
        }
        return 1;
}

int bench_reap(pid_t pid) {
        int status;

        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -ECHILD;
        return 0;
}

/* In a helper process: closes every descriptor above stderr but keep_a and keep_b (-1: none), so
 * that no helper holds another's socket (or a kactor connection) open. */
static void close_all_but(int keep_a, int keep_b) {
        int lo = keep_a < keep_b ? keep_a : keep_b, hi = keep_a < keep_b ? keep_b : keep_a;

        if (lo < 3)
                lo = hi;
        if (lo < 3) {
                (void) close_range(3, ~0U, 0);
                return;
        }
        if (lo > 3)
                (void) close_range(3, (unsigned) lo - 1, 0);
        if (hi > lo + 1)
                (void) close_range((unsigned) lo + 1, (unsigned) hi - 1, 0);
        (void) close_range((unsigned) hi + 1, ~0U, 0);
}

static _Noreturn void echo_loop(int fd) {
        char buf[BENCH_PING_SIZE];
        int r;

        close_all_but(fd, -1);
        for (;;) {
                r = bench_read_full(fd, buf, sizeof(buf));
                if (r <= 0)
                        _exit(r < 0 ? 1 : 0);
                if (bench_write_full(fd, buf, sizeof(buf)) < 0)
                        _exit(1);
        }
}

/* Forwards each message from the client to the echo process and the answer back. */
static _Noreturn void relay_loop(int client_fd, int echo_fd) {
        char buf[BENCH_PING_SIZE];
        int r;

        close_all_but(client_fd, echo_fd);
        for (;;) {
                r = bench_read_full(client_fd, buf, sizeof(buf));
                if (r <= 0)
                        _exit(r < 0 ? 1 : 0);
                if (bench_write_full(echo_fd, buf, sizeof(buf)) < 0 ||
                    bench_read_full(echo_fd, buf, sizeof(buf)) <= 0 ||
                    bench_write_full(client_fd, buf, sizeof(buf)) < 0)
                        _exit(1);
        }
}

int bench_echo_start(bool relay, bool one_cpu, BenchEcho *ret) {
        BenchEcho e = { .fd = -1 };
        int a[2], b[2] = { -1, -1 }, r = 0;
        cpu_set_t saved, one;

        fflush(stdout);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0)
                return -errno;
        if (relay && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) < 0) {
                r = -errno;
                close(a[0]);
                close(a[1]);
                return r;
        }
        if (one_cpu) {
                /* Children inherit the affinity; ours is restored below. */
                CPU_ZERO(&one);
                CPU_SET(sched_getcpu(), &one);
                if (sched_getaffinity(0, sizeof(saved), &saved) < 0 || sched_setaffinity(0, sizeof(one), &one) < 0)
                        one_cpu = false;
        }

        e.pids[e.n_pids] = fork();
        if (e.pids[e.n_pids] < 0)
                r = -errno;
        else if (e.pids[e.n_pids] == 0) {
                close(a[0]);
                if (relay) {
                        close(a[1]);
                        close(b[0]);
                        echo_loop(b[1]);
                }
                echo_loop(a[1]);
        } else
                e.n_pids++;
        if (r >= 0 && relay) {
                e.pids[e.n_pids] = fork();
                if (e.pids[e.n_pids] < 0)
                        r = -errno;
                else if (e.pids[e.n_pids] == 0) {
                        close(a[0]);
                        close(b[1]);
                        relay_loop(a[1], b[0]);
                } else
                        e.n_pids++;
        }
        if (one_cpu)
                (void) sched_setaffinity(0, sizeof(saved), &saved);
        close(a[1]);
        if (relay) {
                close(b[0]);
                close(b[1]);
        }
        e.fd = a[0];
        if (r < 0) {
                (void) bench_echo_stop(&e);
                return r;
        }
        *ret = e;
        return 0;
}

int bench_echo_step(void *userdata, uint64_t *ops) {
        BenchEcho *e = userdata;
        int r;

        for (unsigned i = 0; i < 16; i++) {
                r = bench_write_full(e->fd, e->buf, sizeof(e->buf));
                if (r < 0)
                        return r;
                r = bench_read_full(e->fd, e->buf, sizeof(e->buf));
                if (r <= 0)
                        return r < 0 ? r : -EPIPE;
        }
        *ops += 16;
        return 0;
}

int bench_echo_stop(BenchEcho *e) {
        int r = 0;

        if (e->fd >= 0)
                close(e->fd);
        e->fd = -1;
        for (unsigned i = 0; i < e->n_pids; i++) {
                int k = bench_reap(e->pids[i]);
                if (k < 0 && r >= 0)
                        r = k;
        }
        e->n_pids = 0;
        return r;
}

/* One measured slice of a path: adds its operations, seconds and the CPU times to *acc, and returns
 * the slice's time per operation in *ret_ns. */
typedef struct SyncAccount {
        double ops, secs;
        uint64_t nodemgr_ns, worker_ns, client_ns;
} SyncAccount;

static int sync_slice(const BenchSyncPath *p, double seconds, SyncAccount *acc, double *ret_ns) {
        uint64_t nodemgr = bench_proc_cpu_ns(p->nodemgr_pid), worker = bench_proc_cpu_ns(p->worker_pid);
        uint64_t client = bench_self_cpu_ns();
        double rate;
        int r;

        r = bench_measure_for(p->step, p->userdata, 0, seconds, &rate);
        if (r < 0)
                return r;
        acc->client_ns += bench_self_cpu_ns() - client;
        if (p->nodemgr_pid > 0)
                acc->nodemgr_ns += bench_proc_cpu_ns(p->nodemgr_pid) - nodemgr;
        if (p->worker_pid > 0)
                acc->worker_ns += bench_proc_cpu_ns(p->worker_pid) - worker;
        acc->ops += rate * seconds;
        acc->secs += seconds;
        *ret_ns = rate > 0 ? 1e9 / rate : 0;
        return 0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

/* The median of the quotients a[i] / b[i], with their range. */
static double median_ratio(const double *a, const double *b, unsigned n, double *ret_min, double *ret_max) {
        double q[BENCH_SYNC_MAX_ROUNDS];

        for (unsigned i = 0; i < n; i++)
                q[i] = b[i] > 0 ? a[i] / b[i] : 0;
        qsort(q, n, sizeof(double), cmp_double);
        if (ret_min)
                *ret_min = q[0];
        if (ret_max)
                *ret_max = q[n - 1];
        return n % 2 ? q[n / 2] : (q[n / 2 - 1] + q[n / 2]) / 2;
}

#define SYNC_MAX_PATHS 4

int bench_measure_sync_paths(const BenchSyncPath *paths, unsigned n_paths, BenchSync *ret) {
        /* Each path is measured for the configured duration in all, the baselines for half of it; with
         * several paths in more, shorter rounds, so that each round's slices see much the same load
         * and the order of the paths turns evenly. */
        const unsigned rounds = n_paths > 1 ? 10 : 3;
        double slice = bench_duration_s() / rounds, base_slice = slice / 2, rate;
        double raw_ns[BENCH_SYNC_MAX_ROUNDS], relay_ns[BENCH_SYNC_MAX_ROUNDS];
        double path_ns[SYNC_MAX_PATHS][BENCH_SYNC_MAX_ROUNDS];
        SyncAccount acc[SYNC_MAX_PATHS] = {}, raw_acc = {}, relay_acc = {};
        BenchEcho raw, relay;
        const BenchSyncPath rp = { .step = bench_echo_step, .userdata = &raw };
        const BenchSyncPath lp = { .step = bench_echo_step, .userdata = &relay };
        int r = 0;

        if (n_paths < 1 || n_paths > SYNC_MAX_PATHS)
                return -EINVAL;
        r = bench_echo_start(false, false, &raw);
        if (r < 0)
                return r;
        r = bench_echo_start(true, false, &relay);
        if (r < 0) {
                (void) bench_echo_stop(&raw);
                return r;
        }
        /* Warm all the paths, then alternate: the machine's load changes by the second. */
        for (unsigned i = 0; r >= 0 && i < n_paths; i++)
                r = bench_measure_for(paths[i].step, paths[i].userdata, 0, bench_warmup_s(), &rate);
        for (unsigned round = 0; r >= 0 && round < rounds; round++) {
                r = sync_slice(&rp, base_slice, &raw_acc, &raw_ns[round]);
                if (r >= 0)
                        r = sync_slice(&lp, base_slice, &relay_acc, &relay_ns[round]);
                for (unsigned k = 0; r >= 0 && k < n_paths; k++) {
                        unsigned i = (k + round) % n_paths; /* each path in each position */

                        r = sync_slice(&paths[i], slice, &acc[i], &path_ns[i][round]);
                }
        }
        if (bench_echo_stop(&raw) < 0 && r >= 0)
                r = -ECHILD;
        if (bench_echo_stop(&relay) < 0 && r >= 0)
                r = -ECHILD;
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n_paths; i++) {
                double ops = acc[i].ops > 0 ? acc[i].ops : 1;
                BenchSync *m = &ret[i];

                *m = (BenchSync) {
                        .rate = acc[i].ops / acc[i].secs,
                        .rtt_ns = 1e9 * raw_acc.secs / raw_acc.ops,
                        .relay_ns = 1e9 * relay_acc.secs / relay_acc.ops,
                        .nodemgr_cpu_ns = (double) acc[i].nodemgr_ns / ops,
                        .worker_cpu_ns = (double) acc[i].worker_ns / ops,
                        .client_cpu_ns = (double) acc[i].client_ns / ops,
                        .rounds = rounds,
                };
                memcpy(m->round_ns, path_ns[i], rounds * sizeof(double));
                memcpy(m->round_rtt_ns, raw_ns, rounds * sizeof(double));
                m->rtt_ratio = median_ratio(path_ns[i], raw_ns, rounds, &m->rtt_ratio_min, &m->rtt_ratio_max);
                m->relay_ratio = median_ratio(path_ns[i], relay_ns, rounds, NULL, NULL);
        }
        return 0;
}

int bench_measure_sync(bench_step_fn step, void *userdata, BenchSync *ret) {
        const BenchSyncPath path = { .step = step, .userdata = userdata };

        return bench_measure_sync_paths(&path, 1, ret);
}

double bench_baseline_rtt_ns(void) {
        return bench_env_double("KACTOR_BENCH_RTT_NS", 0);
}

double bench_baseline_relay_ns(void) {
        return bench_env_double("KACTOR_BENCH_RELAY_NS", 0);
}

double bench_baseline_pipe_rate(void) {
        return bench_env_double("KACTOR_BENCH_PIPE_RATE", 0);
}

double bench_baseline_spawn_rate(void) {
        return bench_env_double("KACTOR_BENCH_SPAWN_RATE", 0);
}

const char *bench_format_count(double v, char *buf, size_t size) {
        char digits[64];
        size_t n, i, o = 0;

        if (v >= 1e18 || v < 0) {
                snprintf(buf, size, "%.3g", v);
                return buf;
        }
        if (v < 100 && v != floor(v)) {
                snprintf(buf, size, "%.1f", v);
                return buf;
        }
        snprintf(digits, sizeof(digits), "%.0f", v);
        n = strlen(digits);
        for (i = 0; i < n && o + 2 < size; i++) {
                if (i > 0 && (n - i) % 3 == 0)
                        buf[o++] = ',';
                buf[o++] = digits[i];
        }
        buf[o] = '\0';
        return buf;
}

static const char *verdict_string(BenchVerdict v) {
        switch (v) {
        case BENCH_PASS:
                return "PASS";
        case BENCH_MISS:
                return "MISS";
        default:
                return "info";
        }
}

void bench_line(const char *name, const char *figure, const char *ratio, BenchVerdict v, const char *target) {
        char r[320];

        snprintf(r, sizeof(r), "(%s)", ratio ?: "no baseline");
        printf("%-30s %15s  %-58s %-4s  %s\n", name, figure, r, verdict_string(v), target ?: "");
        fflush(stdout);
}

static BenchVerdict verdict_min(BenchVerdict v, bool ok) {
        if (!ok)
                return BENCH_MISS;
        return v == BENCH_INFO ? BENCH_PASS : v;
}

void bench_report_sync(const char *name, const BenchSync *m, double min_rate, double max_rtt_ratio) {
        bench_report_sync_detail(name, m, min_rate, max_rtt_ratio, NULL);
}

void bench_report_sync_detail(const char *name, const BenchSync *m, double min_rate, double max_rtt_ratio,
                              const char *detail) {
        double rtt = m->rtt_ns > 0 ? m->rtt_ns : bench_baseline_rtt_ns();
        double relay = m->relay_ns > 0 ? m->relay_ns : bench_baseline_relay_ns();
        double rate = m->rate, per_op_ns = rate > 0 ? 1e9 / rate : 0, ratio = 0;
        char figure[64], count[32], ratio_text[256] = "", target[96] = "", min[32];
        BenchVerdict v = BENCH_INFO;

        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(rate, count, sizeof(count)));
        if (m->rtt_ratio > 0) {
                /* The rounds' ratios, not the totals': a round where the load hit one side counts once. */
                ratio = m->rtt_ratio;
                snprintf(ratio_text, sizeof(ratio_text),
                         "%.1f µs/op, raw RTT %.1f µs: %.2fx (median of %u rounds, %.2f-%.2f), %.2fx relay",
                         per_op_ns / 1e3, rtt / 1e3, ratio, m->rounds, m->rtt_ratio_min, m->rtt_ratio_max,
                         m->relay_ratio);
        } else if (rtt > 0) {
                ratio = per_op_ns / rtt;
                snprintf(ratio_text, sizeof(ratio_text), "%.1f µs/op = %.2fx raw RTT %.1f µs", per_op_ns / 1e3,
                         ratio, rtt / 1e3);
                if (relay > 0)
                        snprintf(ratio_text + strlen(ratio_text), sizeof(ratio_text) - strlen(ratio_text),
                                 ", %.2fx relay", per_op_ns / relay);
        } else
                snprintf(ratio_text, sizeof(ratio_text), "%.1f µs/op, no baseline", per_op_ns / 1e3);
        if (detail)
                snprintf(ratio_text + strlen(ratio_text), sizeof(ratio_text) - strlen(ratio_text), "; %s", detail);

        if (min_rate > 0) {
                v = verdict_min(v, rate >= min_rate);
                snprintf(target, sizeof(target), "target >= %s/s", bench_format_count(min_rate, min, sizeof(min)));
        }
        if (max_rtt_ratio > 0) {
                if (ratio > 0)
                        v = verdict_min(v, ratio <= max_rtt_ratio);
                else
                        v = BENCH_MISS; /* a target nobody can check is not met */
                snprintf(target + strlen(target), sizeof(target) - strlen(target), "%s<= %.1fx raw RTT",
                         min_rate > 0 ? ", " : "target ", max_rtt_ratio);
        }
        bench_line(name, figure, ratio_text, v, target);
}

static void report_vs_rate(const char *name, double rate, double min_rate, double base, const char *base_name) {
        char figure[64], count[32], ratio_text[96], target[64] = "", min[32];
        BenchVerdict v = BENCH_INFO;

        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(rate, count, sizeof(count)));
        if (base > 0)
                snprintf(ratio_text, sizeof(ratio_text), "%.3fx %s", rate / base, base_name);
        else
                snprintf(ratio_text, sizeof(ratio_text), "no %s baseline", base_name);
        if (min_rate > 0) {
                v = verdict_min(v, rate >= min_rate);
                snprintf(target, sizeof(target), "target >= %s/s", bench_format_count(min_rate, min, sizeof(min)));
        }
        bench_line(name, figure, ratio_text, v, target);
}

void bench_report_async(const char *name, double rate, double min_rate) {
        report_vs_rate(name, rate, min_rate, bench_baseline_pipe_rate(), "pipelined socket");
}

void bench_report_spawn(const char *name, double rate, double min_rate) {
        report_vs_rate(name, rate, min_rate, bench_baseline_spawn_rate(), "posix_spawn");
}

void bench_report_memory(const char *name, uint64_t bytes, uint64_t ref_bytes, const char *ref_name,
                         uint64_t max_bytes, const char *detail) {
        char figure[64], ratio_text[128], target[64] = "";
        BenchVerdict v = BENCH_INFO;

        snprintf(figure, sizeof(figure), "%.1f MiB", (double) bytes / (1024.0 * 1024.0));
        if (ref_bytes > 0)
                snprintf(ratio_text, sizeof(ratio_text), "%.2fx %s%s%s", (double) bytes / (double) ref_bytes,
                         ref_name, detail ? "; " : "", detail ?: "");
        else
                snprintf(ratio_text, sizeof(ratio_text), "%s", detail ?: "no baseline");
        if (max_bytes > 0) {
                v = verdict_min(v, bytes <= max_bytes);
                snprintf(target, sizeof(target), "target <= %.0f MiB", (double) max_bytes / (1024.0 * 1024.0));
        }
        bench_line(name, figure, ratio_text, v, target);
}

int bench_proc_rss(pid_t pid, uint64_t *ret_rss, uint64_t *ret_anon, uint64_t *ret_file) {
        char path[64], line[256];
        uint64_t rss = 0, anon = 0, file = 0, kb;
        bool found = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1) {
                        rss = kb * 1024;
                        found = true;
                } else if (sscanf(line, "RssAnon: %" SCNu64, &kb) == 1)
                        anon = kb * 1024;
                else if (sscanf(line, "RssFile: %" SCNu64, &kb) == 1)
                        file = kb * 1024;
        }
        fclose(f);
        if (!found)
                return -ESRCH; /* a zombie or a kernel thread */
        if (ret_rss)
                *ret_rss = rss;
        if (ret_anon)
                *ret_anon = anon;
        if (ret_file)
                *ret_file = file;
        return 0;
}

pid_t bench_nodemgr_pid(void) {
        return (pid_t) bench_env_unsigned("KACTOR_BENCH_NODEMGR_PID", 0);
}

uint64_t bench_proc_cpu_ns(pid_t pid) {
        char path[64], line[256];
        struct dirent *de;
        uint64_t sum = 0;
        DIR *d;

        if (pid <= 0)
                return 0;
        snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
        d = opendir(path);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char p[sizeof(path) + sizeof(de->d_name) + 16];
                FILE *f;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s/schedstat", path, de->d_name);
                f = fopen(p, "re");
                if (!f)
                        continue;
                if (fgets(line, sizeof(line), f))
                        sum += strtoull(line, NULL, 10);
                fclose(f);
        }
        closedir(d);
        return sum;
}

uint64_t bench_self_cpu_ns(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* Reads "PID (comm) S PPID" from /proc/PID/stat; comm may hold spaces and parentheses. */
static int proc_parent(pid_t pid, pid_t *ret_ppid, char *ret_state) {
        char path[64], buf[512], *p;
        int ppid;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -EIO;
        buf[n] = '\0';
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 1, " %c %d", ret_state, &ppid) != 2)
                return -EBADMSG;
        *ret_ppid = ppid;
        return 0;
}

int bench_proc_children(pid_t parent, pid_t **ret_pids) {
        pid_t *pids = NULL, ppid;
        size_t n = 0, cap = 0;
        struct dirent *de;
        char state;
        DIR *d;

        d = opendir("/proc");
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end != '\0' || pid <= 0)
                        continue;
                if (proc_parent((pid_t) pid, &ppid, &state) < 0 || ppid != parent || state == 'Z')
                        continue;
                if (n == cap) {
                        pid_t *p = realloc(pids, (cap = cap ? cap * 2 : 64) * sizeof(pid_t));
                        if (!p) {
                                free(pids);
                                closedir(d);
                                return -ENOMEM;
                        }
                        pids = p;
                }
                pids[n++] = (pid_t) pid;
        }
        closedir(d);
        *ret_pids = pids;
        return (int) n;
}

int bench_bus_property(const char *path, const char *interface, const char *property, char *buf, size_t size) {
        const char *bus = getenv("KACTOR_BENCH_BUS");
        posix_spawn_file_actions_t fa;
        char address[512];
        int p[2], status, r;
        size_t o = 0;
        ssize_t n;
        pid_t child;

        if (!bus || !*bus)
                return -ENOENT;
        if (size == 0)
                return -EINVAL;
        snprintf(address, sizeof(address), "--address=%s", bus);
        char *argv[] = { "busctl", address, "get-property", "io.kactor.NodeManager1", (char *) path,
                         (char *) interface, (char *) property, NULL };

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        r = posix_spawnp(&child, "busctl", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        if (r != 0) {
                close(p[0]);
                return -r;
        }
        while (o < size - 1 && (n = read(p[0], buf + o, size - 1 - o)) > 0)
                o += (size_t) n;
        buf[o] = '\0';
        close(p[0]);
        if (waitpid(child, &status, 0) < 0)
                return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -ENOENT;
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

int bench_actor_pid(kactor_actor actor, pid_t *ret) {
        char id[KACTOR_ID_STRING_MAX], path[128], out[128];
        unsigned long pid;
        int r;

        kactor_id_to_string(actor.id, id);
        snprintf(path, sizeof(path), "/io/kactor/NodeManager1/actor/%s", id);
        r = bench_bus_property(path, "io.kactor.Actor1", "Pid", out, sizeof(out));
        if (r < 0)
                return r;
        if (sscanf(out, "u %lu", &pid) != 1 || pid == 0)
                return -EBADMSG;
        *ret = (pid_t) pid;
        return 0;
}

int bench_actor_property_u64(kactor_actor actor, const char *property, uint64_t *ret) {
        char id[KACTOR_ID_STRING_MAX], path[128], out[128];
        unsigned long long v;
        int r;

        kactor_id_to_string(actor.id, id);
        snprintf(path, sizeof(path), "/io/kactor/NodeManager1/actor/%s", id);
        r = bench_bus_property(path, "io.kactor.Actor1", property, out, sizeof(out));
        if (r < 0)
                return r;
        if (sscanf(out, "t %llu", &v) != 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* n Counter.increment calls on actor, in batches of 1000, each result checked (1, 2, ... n). */
void bench_fill_counter(const char *name, kactor_client *c, kactor_actor actor, unsigned n) {
        kactor_ref refs[1000];
        kactor_value **values = NULL;
        unsigned done = 0;
        int r;

        while (done < n) {
                unsigned k = n - done < 1000 ? n - done : 1000;

                for (unsigned i = 0; i < k; i++) {
                        r = kactor_call(c, actor, "increment", NULL, &refs[i]);
                        if (r < 0)
                                bench_fail(name, c, r, "calling Counter.increment");
                }
                r = kactor_get(c, refs, k, BENCH_GET_TIMEOUT_USEC, &values);
                if (r < 0)
                        bench_fail(name, c, r, "waiting for Counter.increment");
                for (unsigned i = 0; i < k; i++)
                        if (kactor_value_type(values[i]) != KACTOR_TYPE_INT ||
                            kactor_value_get_int(values[i]) != (int64_t) (done + i + 1))
                                bench_fail(name, c, 0, "Counter.increment answered %s, expected %u",
                                           kactor_value_is_error(values[i]) ? kactor_value_error_message(values[i])
                                                                            : "another value",
                                           done + i + 1);
                kactor_values_free(values, k);
                (void) kactor_ref_release(c, refs, k);
                done += k;
        }
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Paired call benchmarks for bench-lineage, bench-isolation and bench-cluster: the same call
 * benchmark against two variants (two methods of a Counter, two node managers, or a Counter here and
 * one on another node), measured in one run in interleaved rounds (A B, B A, A B, ...), so load that
 * comes and goes on a shared machine hits both alike. The figure is the median over the rounds of
 * B's rate ÷ A's rate in the same round.
 *
 * Every client is a process of its own (1 for the 1_1 benchmarks, KACTOR_BENCH_CLIENTS for n_n),
 * with a connection and a Counter per variant (on the node the variant names, in a cluster); the
 * parent tells all of them to run one variant for one slice at a time and sums what they did
 * (calls ÷ the longest client's time, as n_n_actor_calls_async does). Every result is checked:
 * `increment` must return the next value, `get` the current one.
 *
 * A variant may also name the call path (direct_calls, as in struct kactor_connect_opts) and ask for
 * the CPU time per call of the node manager ($KACTOR_BENCH_NODEMGR_PID, read by the parent around
 * each slice), of the Counters' workers and of the clients (each client reads its own and its
 * worker's, whose PID it takes from the actor's D-Bus property Pid).
 *
 * Header-only (static functions): the Makefile links each benchmark with bench-util.o alone.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"

#define COMPARE_MAX_ROUNDS 32

typedef enum CompareKind {
        COMPARE_ASYNC, /* batches of KACTOR_BENCH_BATCH calls, one get of all */
        COMPARE_SYNC,  /* call, get, repeat */
} CompareKind;

typedef struct CompareVariant {
        const char *label;  /* "cgroupfs", "increment (logged)" */
        const char *socket; /* the node manager's native socket; NULL: $KACTOR_SOCKET */
        const char *method; /* "increment" or "get" */
        const char *node;   /* in a cluster: the node id to place the Counter on; NULL: the client's node */
        int direct_calls;   /* kactor_connect_opts.direct_calls: 0 the default, < 0 relayed, > 0 direct */
        bool cpu;           /* measure the CPU time per call (CompareResult.*_cpu_ns) */
} CompareVariant;

typedef struct CompareResult {
        unsigned rounds;
        double rate[2][COMPARE_MAX_ROUNDS]; /* calls/s of each variant in each round */
        double median[2];                   /* median rate of each variant */
        double ratio;                       /* median of rate[1][r] / rate[0][r] */
        double ratio_min, ratio_max;
        /* With CompareVariant.cpu: CPU time per call (ns), the median over the rounds of each slice's
         * CPU time ÷ its calls; the workers' and the clients' summed over all clients. 0: not measured. */
        double nodemgr_cpu_ns[2], worker_cpu_ns[2], client_cpu_ns[2];
} CompareResult;

typedef struct CompareClientResult {
        int error; /* 0 or a positive errno */
        unsigned variant;
        uint64_t calls;
        uint64_t ns;
        uint64_t client_cpu_ns, worker_cpu_ns; /* with CompareVariant.cpu */
} CompareClientResult;

typedef struct CompareSide {
        kactor_client *client;
        kactor_actor actor;
        const char *method;
        bool increments;
        int64_t expected;
        kactor_ref *refs;
        unsigned batch;
        pid_t worker_pid; /* with CompareVariant.cpu, where known */
} CompareSide;

static int compare_cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double compare_median(const double *v, unsigned n) {
        double s[COMPARE_MAX_ROUNDS];

        if (n == 0)
                return 0;
        memcpy(s, v, n * sizeof(double));
        qsort(s, n, sizeof(double), compare_cmp_double);
        return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int compare_check(const char *name, CompareSide *s, const kactor_value *v) {
        int64_t want = s->increments ? ++s->expected : s->expected;

        if (kactor_value_is_error(v)) {
                fprintf(stderr, "%s: %s failed: %s: %s\n", name, s->method,
                        kactor_error_name(kactor_value_error_code(v)) ?: "?", kactor_value_error_message(v));
                return -EREMOTEIO;
        }
        if (kactor_value_type(v) != KACTOR_TYPE_INT || kactor_value_get_int(v) != want) {
                fprintf(stderr, "%s: %s returned %s, expected %lld\n", name, s->method,
                        kactor_type_to_string(kactor_value_type(v)), (long long) want);
                return -EBADMSG;
        }
        return 0;
}

static int compare_step(const char *name, CompareKind kind, CompareSide *s, uint64_t *calls) {
        kactor_value **values = NULL, *v = NULL;
        int r = 0;

        if (kind == COMPARE_SYNC) {
                kactor_ref ref;

                r = kactor_call(s->client, s->actor, s->method, NULL, &ref);
                if (r < 0)
                        return r;
                r = kactor_get1(s->client, ref, BENCH_GET_TIMEOUT_USEC, &v);
                if (r >= 0)
                        r = compare_check(name, s, v);
                kactor_value_free(v);
                if (r >= 0)
                        r = kactor_ref_release(s->client, &ref, 1);
                if (r >= 0)
                        (*calls)++;
                return r;
        }
        for (unsigned i = 0; i < s->batch; i++) {
                r = kactor_call(s->client, s->actor, s->method, NULL, &s->refs[i]);
                if (r < 0)
                        return r;
        }
        r = kactor_get(s->client, s->refs, s->batch, BENCH_GET_TIMEOUT_USEC, &values);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < s->batch && r >= 0; i++)
                r = compare_check(name, s, values[i]);
        kactor_values_free(values, s->batch);
        if (r >= 0)
                r = kactor_ref_release(s->client, s->refs, s->batch);
        if (r >= 0)
                *calls += s->batch;
        return r;
}

/* Runs the step until `seconds` have passed; 0 or the step's error. */
static int compare_run_for(const char *name, CompareKind kind, CompareSide *s, double seconds,
                           CompareClientResult *res) {
        uint64_t start = bench_now_ns(), end = start + (uint64_t) (seconds * 1e9);
        uint64_t client = bench_self_cpu_ns(), worker = bench_proc_cpu_ns(s->worker_pid);
        int r;

        res->calls = 0;
        do
                r = compare_step(name, kind, s, &res->calls);
        while (r >= 0 && bench_now_ns() < end);
        res->ns = bench_now_ns() - start;
        res->client_cpu_ns = bench_self_cpu_ns() - client;
        res->worker_cpu_ns = s->worker_pid > 0 ? bench_proc_cpu_ns(s->worker_pid) - worker : 0;
        return r;
}

/* A client process: a connection and a Counter per variant, a warm-up of each, "ready" (one byte,
 * 1), then one slice per command byte ('0' or '1') until 'q' or EOF. */
static _Noreturn void compare_client(const char *name, CompareKind kind, const CompareVariant v[2],
                                     double slice_s, int cmd_fd, int result_fd) {
        CompareSide sides[2] = {};
        CompareClientResult res = {};
        char x = 0;
        int r;

        /* Never outlive the benchmark (run.sh's timeout kills it alone). */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (unsigned i = 0; i < 2; i++) {
                struct kactor_connect_opts opts = {
                        .sz = sizeof(opts),
                        .socket_path = v[i].socket,
                        .direct_calls = v[i].direct_calls,
                };
                struct kactor_actor_opts actor_opts = { .sz = sizeof(actor_opts), .node = v[i].node };
                CompareSide *s = &sides[i];

                s->method = v[i].method;
                s->increments = strcmp(v[i].method, "increment") == 0;
                s->batch = kind == COMPARE_ASYNC ? bench_batch() : 1;
                s->refs = calloc(s->batch, sizeof(kactor_ref));
                if (!s->refs)
                        bench_fail(name, NULL, -ENOMEM, "allocating");
                r = kactor_connect(&opts, &s->client);
                if (r < 0)
                        bench_fail(name, NULL, r, "connecting to %s", v[i].socket ?: getenv("KACTOR_SOCKET") ?: "?");
                r = kactor_create_actor(s->client, bench_counter_module(), "Counter", NULL,
                                        v[i].node ? &actor_opts : NULL, &s->actor);
                if (r < 0)
                        bench_fail(name, s->client, r, "creating Counter in %s (%s)", bench_counter_module(),
                                   v[i].label);
                /* Unknown (another node's actor, no bus): its CPU time is not counted. */
                if (v[i].cpu && bench_actor_pid(s->actor, &s->worker_pid) < 0)
                        s->worker_pid = 0;
        }
        for (unsigned i = 0; i < 2; i++) {
                r = compare_run_for(name, kind, &sides[i], bench_warmup_s() / 2, &res);
                if (r < 0)
                        bench_fail(name, sides[i].client, r, "warming up %s on %s", sides[i].method, v[i].label);
        }
        x = 1;
        if (write(result_fd, &x, 1) != 1)
                _exit(BENCH_EXIT_ERROR);
        while (read(cmd_fd, &x, 1) == 1 && (x == '0' || x == '1')) {
                res = (CompareClientResult) { .variant = (unsigned) (x - '0') };
                r = compare_run_for(name, kind, &sides[res.variant], slice_s, &res);
                res.error = r < 0 ? -r : 0;
                if (write(result_fd, &res, sizeof(res)) != sizeof(res))
                        _exit(BENCH_EXIT_ERROR);
                if (r < 0)
                        bench_fail(name, sides[res.variant].client, r, "calling %s on %s", sides[res.variant].method,
                                   v[res.variant].label);
        }
        for (unsigned i = 0; i < 2; i++) {
                (void) kactor_actor_release(sides[i].client, sides[i].actor);
                kactor_client_free(sides[i].client);
                free(sides[i].refs);
        }
        _exit(0);
}

/* Reads exactly n bytes within timeout_ms; 0, or -ETIMEDOUT / -EPIPE. */
static int compare_read(int fd, void *p, size_t n, int timeout_ms) {
        size_t o = 0;

        while (o < n) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                ssize_t k;

                if (poll(&pfd, 1, timeout_ms) != 1)
                        return -ETIMEDOUT;
                k = read(fd, (char *) p + o, n - o);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -EPIPE;
                o += (size_t) k;
        }
        return 0;
}

/*
 * Runs `rounds` rounds of both variants with `n_clients` client processes, each slice `slice_s`
 * long. Returns 0, or a negative errno when a client failed (it said why on stderr).
 */
static int compare_calls(const char *name, CompareKind kind, const CompareVariant v[2], unsigned n_clients,
                         unsigned rounds, double slice_s, CompareResult *ret) {
        int result[2], *cmd = calloc(n_clients, sizeof(int));
        pid_t *pids = calloc(n_clients, sizeof(pid_t)), nodemgr = bench_nodemgr_pid();
        double ratios[COMPARE_MAX_ROUNDS], cpu[3][2][COMPARE_MAX_ROUNDS] = {};
        unsigned started = 0;
        int r = 0;

        if (rounds > COMPARE_MAX_ROUNDS)
                rounds = COMPARE_MAX_ROUNDS;
        if (!cmd || !pids || pipe2(result, O_CLOEXEC) < 0) {
                free(cmd);
                free(pids);
                return -ENOMEM;
        }
        *ret = (CompareResult) { .rounds = rounds };
        fflush(stdout);
        fflush(stderr);
        for (unsigned i = 0; i < n_clients; i++) {
                int p[2];

                if (pipe2(p, O_CLOEXEC) < 0) {
                        r = -errno;
                        break;
                }
                pids[i] = fork();
                if (pids[i] < 0) {
                        r = -errno;
                        close(p[0]);
                        close(p[1]);
                        break;
                }
                if (pids[i] == 0) {
                        close(p[1]);
                        close(result[0]);
                        for (unsigned j = 0; j < i; j++)
                                close(cmd[j]);
                        compare_client(name, kind, v, slice_s, p[0], result[1]);
                }
                close(p[0]);
                cmd[i] = p[1];
                started++;
        }
        close(result[1]);

        /* One "ready" byte from each; a client that fails in setup closes its end without one. */
        for (unsigned i = 0; r >= 0 && i < started; i++) {
                char x;

                r = compare_read(result[0], &x, 1, 60 * 1000);
                if (r >= 0 && x != 1)
                        r = -EPROTO;
        }
        for (unsigned round = 0; r >= 0 && round < rounds; round++)
                for (unsigned k = 0; r >= 0 && k < 2; k++) {
                        unsigned variant = round % 2 == 0 ? k : 1 - k; /* A B, B A, ... */
                        char x = (char) ('0' + variant);
                        uint64_t calls = 0, max_ns = 0, client_cpu = 0, worker_cpu = 0;
                        uint64_t nodemgr_cpu = v[variant].cpu ? bench_proc_cpu_ns(nodemgr) : 0;

                        for (unsigned i = 0; i < started; i++)
                                if (write(cmd[i], &x, 1) != 1)
                                        r = -EPIPE;
                        for (unsigned i = 0; r >= 0 && i < started; i++) {
                                CompareClientResult res;

                                r = compare_read(result[0], &res, sizeof(res), (int) (slice_s * 1000) + 60 * 1000);
                                if (r >= 0 && res.error != 0)
                                        r = -res.error;
                                if (r < 0)
                                        break;
                                calls += res.calls;
                                client_cpu += res.client_cpu_ns;
                                worker_cpu += res.worker_cpu_ns;
                                if (res.ns > max_ns)
                                        max_ns = res.ns;
                        }
                        if (r < 0)
                                break;
                        ret->rate[variant][round] = max_ns > 0 ? (double) calls / ((double) max_ns / 1e9) : 0;
                        if (v[variant].cpu && calls > 0) {
                                if (nodemgr > 0)
                                        cpu[0][variant][round] =
                                                (double) (bench_proc_cpu_ns(nodemgr) - nodemgr_cpu) / (double) calls;
                                cpu[1][variant][round] = (double) worker_cpu / (double) calls;
                                cpu[2][variant][round] = (double) client_cpu / (double) calls;
                        }
                }

        /* 'q' (EOF) ends the clients; a client still stuck after that is killed. */
        for (unsigned i = 0; i < started; i++)
                close(cmd[i]);
        for (unsigned i = 0; i < started; i++) {
                int status = 0;

                for (unsigned t = 0; t < 300; t++) {
                        pid_t k = waitpid(pids[i], &status, WNOHANG);
                        if (k != 0)
                                break;
                        if (t == 299) {
                                kill(pids[i], SIGKILL);
                                (void) waitpid(pids[i], &status, 0);
                                if (r >= 0)
                                        r = -ETIMEDOUT;
                        }
                        usleep(10 * 1000);
                }
                if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
                        r = -ECHILD;
        }
        close(result[0]);
        free(cmd);
        free(pids);
        if (r < 0)
                return r;

        for (unsigned k = 0; k < 2; k++) {
                ret->median[k] = compare_median(ret->rate[k], rounds);
                ret->nodemgr_cpu_ns[k] = compare_median(cpu[0][k], rounds);
                ret->worker_cpu_ns[k] = compare_median(cpu[1][k], rounds);
                ret->client_cpu_ns[k] = compare_median(cpu[2][k], rounds);
        }
        ret->ratio_min = 1e300;
        ret->ratio_max = 0;
        for (unsigned round = 0; round < rounds; round++) {
                ratios[round] = ret->rate[0][round] > 0 ? ret->rate[1][round] / ret->rate[0][round] : 0;
                if (ratios[round] < ret->ratio_min)
                        ret->ratio_min = ratios[round];
                if (ratios[round] > ret->ratio_max)
                        ret->ratio_max = ratios[round];
        }
        ret->ratio = compare_median(ratios, rounds);
        return 0;
}

/* Rounds and slice length of the paired benchmarks: KACTOR_BENCH_ROUNDS (default 15), slice =
 * KACTOR_BENCH_DURATION / 10 (0.15 s by default), at least 0.05 s: many short rounds, so the two
 * slices of a round see much the same load. */
static inline unsigned compare_rounds(void) {
        return bench_env_unsigned("KACTOR_BENCH_ROUNDS", 15);
}

static inline double compare_slice_s(void) {
        double s = bench_duration_s() / 10;

        return s < 0.05 ? 0.05 : s;
}

static inline unsigned compare_n_clients(void) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

        return bench_env_unsigned("KACTOR_BENCH_CLIENTS", ncpu > 2 ? (unsigned) ncpu : 2);
}

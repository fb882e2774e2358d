/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Actor-call benchmarks, after Ray's microbenchmarks, against Counter actors
 * (build/examples/counter.so; `increment` returns the new value, so every result is checked):
 *
 *   1_1_actor_calls_sync    one client, one actor: call, get, repeat; on the default path (direct
 *                           calls, docs/protocol.md), in rounds alternating with the raw and the
 *                           relayed socket round trip and with
 *   1_1_actor_calls_sync_relayed
 *                           the same on a connection whose calls the node manager relays
 *                           (direct_calls = -1), its own client and actor (bench_measure_sync_paths());
 *                           with each, the CPU time per call of the node manager, the worker and the
 *                           client, and the node manager's direct ÷ relayed
 *   1_1_actor_calls_async   one client, one actor: KACTOR_BENCH_BATCH calls, then one get of all
 *   1_n_actor_calls_async   one client, KACTOR_BENCH_ACTORS_1N actors (default 4), calls spread
 *                           round-robin, one get per batch
 *   n_n_actor_calls_async   KACTOR_BENCH_CLIENTS client processes (default nproc, at least 2), each
 *                           with its own connection and actor, batches as above; the aggregate rate
 *   n_n_actor_calls_async_direct_vs_relayed
 *                           n_n_actor_calls_async on the default (direct) path and relayed, in paired
 *                           rounds (bench-compare.h): direct ÷ relayed, and the CPU times per call
 *
 * The async benchmarks run on the default path. The nodemgr_cpu_per_call lines are the node
 * manager's CPU time ($KACTOR_BENCH_NODEMGR_PID, /proc) over the calls made meanwhile.
 *
 * Usage: bench-actor-calls [NAME...] — runs the named benchmarks, or all ("direct" for the two that
 * compare the paths).
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-compare.h"
#include "bench-util.h"

typedef struct CallBench {
        const char *name;
        kactor_client *client;
        kactor_actor *actors;
        int64_t *expected; /* each actor's counter as it should be */
        unsigned n_actors;
        unsigned batch;
        kactor_ref *refs;
} CallBench;

static int check_int(CallBench *b, const kactor_value *v, int64_t want) {
        if (kactor_value_is_error(v)) {
                fprintf(stderr, "%s: call failed: %s: %s\n", b->name,
                        kactor_error_name(kactor_value_error_code(v)) ?: "?", kactor_value_error_message(v));
                return -EREMOTEIO;
        }
        if (kactor_value_type(v) != KACTOR_TYPE_INT || kactor_value_get_int(v) != want) {
                fprintf(stderr, "%s: increment returned %s, expected %lld\n", b->name,
                        kactor_type_to_string(kactor_value_type(v)), (long long) want);
                return -EBADMSG;
        }
        return 0;
}

static int sync_step(void *userdata, uint64_t *ops) {
        CallBench *b = userdata;
        kactor_value *v = NULL;
        kactor_ref ref;
        int r;

        r = kactor_call(b->client, b->actors[0], "increment", NULL, &ref);
        if (r < 0)
                return r;
        r = kactor_get1(b->client, ref, BENCH_GET_TIMEOUT_USEC, &v);
        if (r >= 0)
                r = check_int(b, v, ++b->expected[0]);
        kactor_value_free(v);
        if (r < 0)
                return r;
        r = kactor_ref_release(b->client, &ref, 1);
        if (r < 0)
                return r;
        (*ops)++;
        return 0;
}

/* One batch: b->batch calls spread round-robin over the actors, one get of all, checks, release. */
static int async_step(void *userdata, uint64_t *ops) {
        CallBench *b = userdata;
        kactor_value **values = NULL;
        int r = 0;

        for (unsigned i = 0; i < b->batch; i++) {
                r = kactor_call(b->client, b->actors[i % b->n_actors], "increment", NULL, &b->refs[i]);
                if (r < 0)
                        return r;
        }
        r = kactor_get(b->client, b->refs, b->batch, BENCH_GET_TIMEOUT_USEC, &values);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < b->batch && r >= 0; i++)
                r = check_int(b, values[i], ++b->expected[i % b->n_actors]);
        kactor_values_free(values, b->batch);
        if (r < 0)
                return r;
        r = kactor_ref_release(b->client, b->refs, b->batch);
        if (r < 0)
                return r;
        *ops += b->batch;
        return 0;
}

/* A bus property's text as busctl prints it: `then` when it is `value`, else `otherwise`. */
static const char *streq_or(const char *text, const char *value, const char *then, const char *otherwise) {
        return strcmp(text, value) == 0 ? then : otherwise;
}

/* direct_calls: as in struct kactor_connect_opts (0: the default path). */
static void call_bench_setup(CallBench *b, const char *name, int direct_calls, unsigned n_actors,
                             unsigned batch) {
        int r;

        *b = (CallBench) {
                .name = name,
                .client = bench_connect_direct(name, direct_calls),
                .n_actors = n_actors,
                .batch = batch,
                .actors = calloc(n_actors, sizeof(kactor_actor)),
                .expected = calloc(n_actors, sizeof(int64_t)),
                .refs = calloc(batch, sizeof(kactor_ref)),
        };
        if (!b->actors || !b->expected || !b->refs)
                bench_fail(name, NULL, -ENOMEM, "allocating");
        for (unsigned i = 0; i < n_actors; i++) {
                r = kactor_create_actor(b->client, bench_counter_module(), "Counter", NULL, NULL, &b->actors[i]);
                if (r < 0)
                        bench_fail(name, b->client, r, "creating Counter in %s", bench_counter_module());
        }
}

static void call_bench_done(CallBench *b) {
        for (unsigned i = 0; i < b->n_actors; i++)
                (void) kactor_actor_release(b->client, b->actors[i]);
        kactor_client_free(b->client);
        free(b->actors);
        free(b->expected);
        free(b->refs);
}

/* The node manager's CPU time per call on the two paths ([0] direct, [1] relayed), with the workers' and
 * the clients' beside it, as two lines under the benchmark they were measured in (`loop`). */
static void report_cpu(const char *loop, const double nodemgr[2], const double worker[2], const double client[2]) {
        static const char *const names[2] = { "  nodemgr_cpu_per_call_direct", "  nodemgr_cpu_per_call_relayed" };
        const char *target = "target <= 0.25x relayed";
        char figure[64], ratio[200], vs[64] = "", a[32], b[32], c[32];

        if (bench_nodemgr_pid() <= 0) {
                bench_line(names[0], "?", "no node manager PID ($KACTOR_BENCH_NODEMGR_PID)", BENCH_MISS, target);
                return;
        }
        snprintf(vs, sizeof(vs), "%.3fx relayed %s ns; ", nodemgr[1] > 0 ? nodemgr[0] / nodemgr[1] : 0,
                 bench_format_count(nodemgr[1], a, sizeof(a)));
        for (unsigned i = 0; i < 2; i++) {
                snprintf(figure, sizeof(figure), "%s ns", bench_format_count(nodemgr[i], a, sizeof(a)));
                snprintf(ratio, sizeof(ratio), "%sworker %s ns, client %s ns a call; %s", i == 0 ? vs : "",
                         bench_format_count(worker[i], b, sizeof(b)), bench_format_count(client[i], c, sizeof(c)), loop);
                if (i == 0)
                        bench_line(names[i], figure, ratio,
                                   nodemgr[1] > 0 && nodemgr[0] <= 0.25 * nodemgr[1] ? BENCH_PASS : BENCH_MISS, target);
                else
                        bench_line(names[i], figure, ratio, BENCH_INFO, "");
        }
}

/* How many of an actor's calls took the direct path, as text ("100% of 31,234 calls direct"). */
static void direct_share(kactor_actor actor, char *buf, size_t size) {
        uint64_t submitted, direct;
        char n[32];

        if (bench_actor_property_u64(actor, "CallsSubmitted", &submitted) < 0 ||
            bench_actor_property_u64(actor, "CallsDirect", &direct) < 0)
                snprintf(buf, size, "calls direct: unknown (no CallsDirect)");
        else
                snprintf(buf, size, "%.0f%% of %s calls direct",
                         submitted ? 100.0 * (double) direct / (double) submitted : 0,
                         bench_format_count((double) submitted, n, sizeof(n)));
}

static void run_1_1_sync(void) {
        static const char *const names[2] = { "1_1_actor_calls_sync", "1_1_actor_calls_sync_relayed" };
        CallBench b[2];
        BenchSyncPath paths[2];
        BenchSync m[2];
        char detail[2][200], tracing[32] = "?";
        double q[BENCH_SYNC_MAX_ROUNDS];
        int r;

        /* The default path (direct calls), then one the node manager relays. */
        call_bench_setup(&b[0], names[0], 0, 1, 1);
        call_bench_setup(&b[1], names[1], -1, 1, 1);
        for (unsigned i = 0; i < 2; i++) {
                paths[i] = (BenchSyncPath) {
                        .step = sync_step,
                        .userdata = &b[i],
                        .nodemgr_pid = bench_nodemgr_pid(),
                };
                if (bench_actor_pid(b[i].actors[0], &paths[i].worker_pid) < 0)
                        paths[i].worker_pid = 0;
        }
        r = bench_measure_sync_paths(paths, 2, m);
        if (r < 0)
                bench_fail(names[0], NULL, r, "calling Counter.increment");

        (void) bench_bus_property("/io/kactor/NodeManager1", "io.kactor.Trace1", "Enabled", tracing,
                                  sizeof(tracing));
        for (unsigned i = 0; i < 2; i++) {
                direct_share(b[i].actors[0], detail[i], sizeof(detail[i]));
                snprintf(detail[i] + strlen(detail[i]), sizeof(detail[i]) - strlen(detail[i]), "; tracing %s",
                         streq_or(tracing, "b true", "on", streq_or(tracing, "b false", "off", "?")));
        }
        /* Relayed ÷ direct time per call, round by round. */
        for (unsigned k = 0; k < m[0].rounds; k++)
                q[k] = m[0].round_ns[k] > 0 ? m[1].round_ns[k] / m[0].round_ns[k] : 0;
        snprintf(detail[1] + strlen(detail[1]), sizeof(detail[1]) - strlen(detail[1]),
                 "; %.2fx the direct path's time (median of the rounds)", compare_median(q, m[0].rounds));
        bench_report_sync_detail(names[0], &m[0], 10000, 1.5, detail[0]);
        bench_report_sync_detail(names[1], &m[1], 10000, 0, detail[1]);
        report_cpu("1_1 sync",
                   (const double[2]) { m[0].nodemgr_cpu_ns, m[1].nodemgr_cpu_ns },
                   (const double[2]) { m[0].worker_cpu_ns, m[1].worker_cpu_ns },
                   (const double[2]) { m[0].client_cpu_ns, m[1].client_cpu_ns });
        call_bench_done(&b[0]);
        call_bench_done(&b[1]);
}

static void run_n_n_direct_vs_relayed(void) {
        const char *name = "n_n_actor_calls_async_direct_vs_relayed";
        const CompareVariant v[2] = {
                { .label = "relayed", .method = "increment", .direct_calls = -1, .cpu = true },
                { .label = "direct (the default)", .method = "increment", .cpu = true },
        };
        unsigned n_clients = compare_n_clients();
        char figure[64], ratio[200], a[32], b[32];
        CompareResult res;
        int r;

        r = compare_calls(name, COMPARE_ASYNC, v, n_clients, compare_rounds(), compare_slice_s(), &res);
        if (r < 0)
                bench_fail(name, NULL, r, "running the paired call benchmark");
        snprintf(figure, sizeof(figure), "%.2fx", res.ratio);
        snprintf(ratio, sizeof(ratio), "direct %s/s vs relayed %s/s; range %.2f-%.2f, %u rounds, %u clients",
                 bench_format_count(res.median[1], a, sizeof(a)), bench_format_count(res.median[0], b, sizeof(b)),
                 res.ratio_min, res.ratio_max, res.rounds, n_clients);
        bench_line(name, figure, ratio, res.ratio >= 1.5 ? BENCH_PASS : BENCH_MISS, "target direct >= 1.5x relayed");
        report_cpu("n_n async, medians of the rounds",
                   (const double[2]) { res.nodemgr_cpu_ns[1], res.nodemgr_cpu_ns[0] },
                   (const double[2]) { res.worker_cpu_ns[1], res.worker_cpu_ns[0] },
                   (const double[2]) { res.client_cpu_ns[1], res.client_cpu_ns[0] });
}

static void run_async(const char *name, unsigned n_actors, double min_rate) {
        CallBench b;
        double rate;
        int r;

        call_bench_setup(&b, name, 0, n_actors, bench_batch());
        r = bench_measure(async_step, &b, &rate);
        if (r < 0)
                bench_fail(name, b.client, r, "calling Counter.increment");
        bench_report_async(name, rate, min_rate);
        call_bench_done(&b);
}

/* In a client process of n_n: the ready pipe, until "ready" (1) or "failed" (0) was sent. */
static int n_n_ready_fd = -1;

static void n_n_send_ready(char x) {
        if (n_n_ready_fd >= 0) {
                (void) !write(n_n_ready_fd, &x, 1);
                close(n_n_ready_fd);
                n_n_ready_fd = -1;
        }
}

/* A client that fails in setup exits through bench_fail(): tell the parent, which waits for all. */
static void n_n_client_atexit(void) {
        n_n_send_ready(0);
}

typedef struct ClientResult {
        int error;      /* 0 or a positive errno */
        uint64_t calls;
        uint64_t ns;
} ClientResult;

/* A client process of n_n: connect, create its actor, warm up, say ready, wait for go, run. */
static _Noreturn void n_n_client(const char *name, int ready_fd, int go_fd, int result_fd) {
        ClientResult res = {};
        uint64_t start, end, warm_end;
        CallBench b;
        char x;
        int r;

        n_n_ready_fd = ready_fd;
        atexit(n_n_client_atexit);
        call_bench_setup(&b, name, 0, 1, bench_batch());
        warm_end = bench_now_ns() + (uint64_t) (bench_warmup_s() * 1e9);
        do
                r = async_step(&b, &res.calls);
        while (r >= 0 && bench_now_ns() < warm_end);
        if (r < 0)
                bench_fail(name, b.client, r, "warming up");
        n_n_send_ready(1);
        if (read(go_fd, &x, 1) < 0) /* EOF when the parent closes it: go */
                _exit(BENCH_EXIT_ERROR);

        res.calls = 0;
        start = bench_now_ns();
        end = start + (uint64_t) (bench_duration_s() * 1e9);
        do
                r = async_step(&b, &res.calls);
        while (r >= 0 && bench_now_ns() < end);
        res.ns = bench_now_ns() - start;
        res.error = r < 0 ? -r : 0;
        if (write(result_fd, &res, sizeof(res)) != sizeof(res))
                _exit(BENCH_EXIT_ERROR);
        if (r < 0)
                bench_fail(name, b.client, r, "calling Counter.increment");
        call_bench_done(&b);
        _exit(0);
}

static void run_n_n(void) {
        const char *name = "n_n_actor_calls_async";
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned n = bench_env_unsigned("KACTOR_BENCH_CLIENTS", ncpu > 2 ? (unsigned) ncpu : 2);
        int ready[2], go[2], result[2];
        uint64_t calls = 0, max_ns = 0;
        bool failed = false;
        pid_t *pids;
        char x;

        pids = calloc(n, sizeof(pid_t));
        if (!pids || pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(result, O_CLOEXEC) < 0)
                bench_fail(name, NULL, -errno, "setting up");
        fflush(stdout);
        for (unsigned i = 0; i < n; i++) {
                pids[i] = fork();
                if (pids[i] < 0)
                        bench_fail(name, NULL, -errno, "forking client %u", i);
                if (pids[i] == 0) {
                        close(ready[0]);
                        close(go[1]);
                        close(result[0]);
                        n_n_client(name, ready[1], go[0], result[1]);
                }
        }
        close(ready[1]);
        close(go[0]);
        close(result[1]);

        /* Each client says ready (1) or failed (0); one that crashes says nothing, hence the poll. */
        for (unsigned i = 0; i < n; i++) {
                struct pollfd pfd = { .fd = ready[0], .events = POLLIN };

                if (poll(&pfd, 1, 60 * 1000) != 1 || read(ready[0], &x, 1) != 1 || x != 1) {
                        failed = true;
                        break;
                }
        }
        close(go[1]);
        for (unsigned i = 0; i < n && !failed; i++) {
                ClientResult res;

                if (read(result[0], &res, sizeof(res)) != sizeof(res) || res.error != 0) {
                        failed = true;
                        break;
                }
                calls += res.calls;
                if (res.ns > max_ns)
                        max_ns = res.ns;
        }
        for (unsigned i = 0; i < n; i++) {
                int status;

                if (waitpid(pids[i], &status, 0) < 0)
                        bench_fail(name, NULL, -errno, "waiting for client %u", i);
                if (WIFSIGNALED(status)) {
                        printf("%-30s ERROR: client process %d killed by signal %d\n", name, (int) pids[i],
                               WTERMSIG(status));
                        exit(128 + WTERMSIG(status));
                }
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        failed = true;
        }
        close(ready[0]);
        close(result[0]);
        free(pids);
        if (failed || max_ns == 0)
                bench_fail(name, NULL, 0, "a client process failed (see above)");

        bench_report_async(name, (double) calls / ((double) max_ns / 1e9), 250000);
        printf("%-30s %15u  (client processes, one actor each)\n", "  clients", n);
}

/* Whether NAME (or its GROUP; NULL: none) was asked for, or nothing was. */
static bool wanted(int argc, char *argv[], const char *name, const char *group) {
        if (argc <= 1)
                return true;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0 || (group && strcmp(argv[i], group) == 0))
                        return true;
        return false;
}

int main(int argc, char *argv[]) {
        uint64_t rss;

        signal(SIGPIPE, SIG_IGN);

        if (wanted(argc, argv, "1_1_actor_calls_sync", "direct") ||
            wanted(argc, argv, "1_1_actor_calls_sync_relayed", NULL))
                run_1_1_sync();
        if (wanted(argc, argv, "1_1_actor_calls_async", NULL))
                run_async("1_1_actor_calls_async", 1, 200000);
        if (wanted(argc, argv, "1_n_actor_calls_async", NULL))
                run_async("1_n_actor_calls_async", bench_env_unsigned("KACTOR_BENCH_ACTORS_1N", 4), 0);
        if (wanted(argc, argv, "n_n_actor_calls_async", NULL))
                run_n_n();
        if (wanted(argc, argv, "n_n_actor_calls_async_direct_vs_relayed", "direct"))
                run_n_n_direct_vs_relayed();

        /* Lineage of every call above is kept while its actor lives; once all the actors are
         * released it should be gone. What the node manager still holds is worth seeing. */
        if (bench_nodemgr_pid() > 0 && bench_proc_rss(bench_nodemgr_pid(), &rss, NULL, NULL) >= 0) {
                char lineage[32] = "?", actors[32] = "?", detail[128];

                (void) bench_bus_property("/io/kactor/NodeManager1", "io.kactor.NodeManager1", "LineageBytes",
                                          lineage, sizeof(lineage));
                (void) bench_bus_property("/io/kactor/NodeManager1", "io.kactor.NodeManager1", "Actors", actors,
                                          sizeof(actors));
                snprintf(detail, sizeof(detail), "all actors released: LineageBytes %s, Actors %s",
                         lineage[0] == 't' ? lineage + 2 : lineage, actors[0] == 'u' ? actors + 2 : actors);
                bench_report_memory("nodemgr_rss_after_calls", rss, 0, NULL, 0, detail);
        }
        return 0;
}

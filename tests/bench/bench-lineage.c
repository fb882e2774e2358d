/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Lineage benchmarks (docs/lineage.md), against run.sh's node manager and Counter actors
 * (build/examples/counter.so: `increment` is logged, `get` is read-only and is not):
 *
 *   restart_empty_log          kill -9 of the worker of a Counter with MaxRestarts -1 and an empty
 *                              log (PID from the actor's D-Bus property Pid), until the actor is
 *                              `alive` again: timed from kill() to the answer of a `get` sent right
 *                              after it (new calls are admitted only once the actor is alive again,
 *                              after the replay: docs/lineage.md, "replay barrier"), so the figure
 *                              is the restart plus one call round trip. Median of
 *                              KACTOR_BENCH_RESTARTS rounds (11).
 *   restart_1000_calls         the same with 1,000 logged increments (constructor + replay)
 *   restart_10000_calls        the same with 10,000
 *   replay_rate                10,000 ÷ (restart_10000_calls − restart_empty_log), per round
 *                              (the three actors are restarted in turn in each round), median
 *   lineage_cost_1_1_actor_calls_async
 *   lineage_cost_n_n_actor_calls_async
 *                              the call benchmarks with the log and without: the same Counter
 *                              workload with `increment` (logged) and with `get` (read-only: not
 *                              logged; the same work in the worker, an int result), interleaved
 *                              rounds (bench-compare.h); cost = 1 − logged ÷ not logged. Both on
 *                              the default path: direct calls (docs/protocol.md), where the
 *                              worker sends the node manager each call's record and result
 *
 * Every restart is checked: the `get` must return the number of logged increments (the replay
 * rebuilt the state), the actor's Pid must have changed and its State must be "alive".
 *
 * Usage: bench-lineage [NAME...] ("restart" for the restarts and replay_rate, "lineage_cost" for both
 * costs) — runs the named benchmarks, or all.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-compare.h"
#include "bench-util.h"

#define N_ACTORS 3
static const unsigned logged_calls[N_ACTORS] = { 0, 1000, 10000 };
static const char *const restart_names[N_ACTORS] = { "restart_empty_log", "restart_1000_calls", "restart_10000_calls" };

static bool wanted(int argc, char *argv[], const char *name, const char *group) {
        if (argc <= 1)
                return true;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0 || strcmp(argv[i], group) == 0)
                        return true;
        return false;
}


static void actor_property(kactor_actor actor, const char *property, char *buf, size_t size) {
        char id[KACTOR_ID_STRING_MAX], path[128];

        kactor_id_to_string(actor.id, id);
        snprintf(path, sizeof(path), "/io/kactor/NodeManager1/actor/%s", id);
        if (bench_bus_property(path, "io.kactor.Actor1", property, buf, size) < 0)
                snprintf(buf, size, "?");
}

/* Kills the actor's worker and times until a `get` sent right after the kill answers. */
static double restart_once(const char *name, kactor_client *c, kactor_actor actor, int64_t want) {
        kactor_value *v = NULL;
        pid_t pid, pid_after = 0;
        uint64_t t0, t1;
        kactor_ref ref;
        char state[64];
        int r;

        r = bench_actor_pid(actor, &pid);
        if (r < 0)
                bench_fail(name, c, r, "reading the worker's PID (D-Bus property Pid on $KACTOR_BENCH_BUS)");
        t0 = bench_now_ns();
        if (kill(pid, SIGKILL) < 0)
                bench_fail(name, c, -errno, "kill -9 %d", (int) pid);
        r = kactor_call(c, actor, "get", NULL, &ref);
        if (r >= 0)
                r = kactor_get1(c, ref, BENCH_GET_TIMEOUT_USEC, &v);
        t1 = bench_now_ns();
        if (r < 0)
                bench_fail(name, c, r, "calling Counter.get after killing its worker");
        if (kactor_value_type(v) != KACTOR_TYPE_INT || kactor_value_get_int(v) != want)
                bench_fail(name, c, 0, "after the restart Counter.get answered %s, expected %lld",
                           kactor_value_is_error(v) ? kactor_value_error_message(v) : "another value", (long long) want);
        kactor_value_free(v);
        (void) kactor_ref_release(c, &ref, 1);

        r = bench_actor_pid(actor, &pid_after);
        actor_property(actor, "State", state, sizeof(state));
        if (r < 0 || pid_after == pid || strcmp(state, "s \"alive\"") != 0)
                bench_fail(name, c, 0, "after the restart: Pid %d (was %d), State %s", (int) pid_after, (int) pid, state);
        return (double) (t1 - t0) / 1e6;
}

static void run_restarts(void) {
        const char *name = "restart_empty_log";
        unsigned rounds = bench_env_unsigned("KACTOR_BENCH_RESTARTS", 11);
        struct kactor_actor_opts opts = { .sz = sizeof(opts), .max_restarts = -1 };
        double ms[N_ACTORS][COMPARE_MAX_ROUNDS], med[N_ACTORS], rates[COMPARE_MAX_ROUNDS];
        kactor_actor actors[N_ACTORS];
        char figure[64], ratio[160], target[64], count[32], length[64];
        kactor_client *c;
        int r;

        if (rounds > COMPARE_MAX_ROUNDS)
                rounds = COMPARE_MAX_ROUNDS;
        c = bench_connect(name);
        for (unsigned a = 0; a < N_ACTORS; a++) {
                r = kactor_create_actor(c, bench_counter_module(), "Counter", NULL, &opts, &actors[a]);
                if (r < 0)
                        bench_fail(name, c, r, "creating Counter in %s", bench_counter_module());
                bench_fill_counter(restart_names[a], c, actors[a], logged_calls[a]);
                actor_property(actors[a], "LineageLength", length, sizeof(length));
                if (strncmp(length, "t ", 2) != 0 || strtoull(length + 2, NULL, 10) != logged_calls[a])
                        bench_fail(restart_names[a], c, 0, "LineageLength is %s, expected %u", length, logged_calls[a]);
        }
        /* A first restart of each, not counted: the module and the worker's pages are warm after it. */
        for (unsigned a = 0; a < N_ACTORS; a++)
                (void) restart_once(restart_names[a], c, actors[a], logged_calls[a]);
        for (unsigned round = 0; round < rounds; round++)
                for (unsigned k = 0; k < N_ACTORS; k++) {
                        unsigned a = (round + k) % N_ACTORS; /* each actor in each position */

                        ms[a][round] = restart_once(restart_names[a], c, actors[a], logged_calls[a]);
                }

        for (unsigned a = 0; a < N_ACTORS; a++) {
                med[a] = compare_median(ms[a], rounds);
                snprintf(figure, sizeof(figure), "%.1f ms", med[a]);
                if (a == 0) {
                        double lo = ms[a][0], hi = ms[a][0];

                        for (unsigned i = 1; i < rounds; i++) {
                                lo = ms[a][i] < lo ? ms[a][i] : lo;
                                hi = ms[a][i] > hi ? ms[a][i] : hi;
                        }
                        snprintf(ratio, sizeof(ratio), "kill -9 to alive + 1 call; median of %u, range %.1f-%.1f ms",
                                 rounds, lo, hi);
                        bench_line(restart_names[a], figure, ratio, med[a] <= 50 ? BENCH_PASS : BENCH_MISS,
                                   "target <= 50 ms");
                } else {
                        double lo = ms[a][0];

                        for (unsigned i = 1; i < rounds; i++)
                                lo = ms[a][i] < lo ? ms[a][i] : lo;
                        snprintf(ratio, sizeof(ratio), "%s logged calls: empty-log restart %.1f ms + replay %.1f ms; min %.1f ms",
                                 bench_format_count(logged_calls[a], count, sizeof(count)), med[0], med[a] - med[0], lo);
                        snprintf(target, sizeof(target), "target <= 50 ms + replay (%.1f ms)", 50 + med[a] - med[0]);
                        bench_line(restart_names[a], figure, ratio, med[0] <= 50 ? BENCH_PASS : BENCH_MISS, target);
                }
        }

        /* Per round: the 10,000-call restart minus the empty one of the same round. */
        for (unsigned round = 0; round < rounds; round++) {
                double d = ms[N_ACTORS - 1][round] - ms[0][round];

                rates[round] = d > 0 ? logged_calls[N_ACTORS - 1] / (d / 1e3) : 0;
        }
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(compare_median(rates, rounds), count, sizeof(count)));
        snprintf(ratio, sizeof(ratio), "calls replayed: 10,000 ÷ (restart_10000_calls − restart_empty_log), median of %u",
                 rounds);
        if (bench_baseline_pipe_rate() > 0)
                snprintf(ratio + strlen(ratio), sizeof(ratio) - strlen(ratio), "; %.3fx pipelined socket",
                         compare_median(rates, rounds) / bench_baseline_pipe_rate());
        bench_line("replay_rate", figure, ratio, BENCH_INFO, "");

        for (unsigned a = 0; a < N_ACTORS; a++)
                (void) kactor_kill(c, actors[a], true);
        kactor_client_free(c);
}

static void run_cost(const char *name, unsigned n_clients) {
        static const CompareVariant v[2] = {
                { .label = "get (not logged)", .method = "get" },
                { .label = "increment (logged)", .method = "increment" },
        };
        char figure[64], ratio[200], a[32], b[32];
        CompareResult res;
        double cost;
        int r;

        r = compare_calls(name, COMPARE_ASYNC, v, n_clients, compare_rounds(), compare_slice_s(), &res);
        if (r < 0)
                bench_fail(name, NULL, r, "running the paired call benchmark");
        cost = 1 - res.ratio;
        snprintf(figure, sizeof(figure), "%+.1f%%", cost * 100);
        snprintf(ratio, sizeof(ratio), "logged %s/s vs not %s/s; logged/not %.3f, range %.3f-%.3f, %u rounds, %u client%s",
                 bench_format_count(res.median[1], a, sizeof(a)), bench_format_count(res.median[0], b, sizeof(b)),
                 res.ratio, res.ratio_min, res.ratio_max, res.rounds, n_clients, n_clients > 1 ? "s" : "");
        bench_line(name, figure, ratio, cost <= 0.10 ? BENCH_PASS : BENCH_MISS, "target cost <= 10%");
}

int main(int argc, char *argv[]) {
        signal(SIGPIPE, SIG_IGN);

        if (wanted(argc, argv, "restart_empty_log", "restart") || wanted(argc, argv, "restart_10000_calls", "restart") ||
            wanted(argc, argv, "replay_rate", "restart"))
                run_restarts();
        if (wanted(argc, argv, "lineage_cost_1_1_actor_calls_async", "lineage_cost"))
                run_cost("lineage_cost_1_1_actor_calls_async", 1);
        if (wanted(argc, argv, "lineage_cost_n_n_actor_calls_async", "lineage_cost"))
                run_cost("lineage_cost_n_n_actor_calls_async", compare_n_clients());
        return 0;
}

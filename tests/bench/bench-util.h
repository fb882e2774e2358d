/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared parts of the kactor benchmarks (tests/bench/run.sh runs them; docs/benchmarks.md says
 * how to read them): clocks, a warm-up-then-measure loop, the baselines measured earlier in the
 * same run (handed over in the environment by run.sh), and one output line per figure:
 *
 *   name   figure   (ratio vs baseline)   PASS|MISS|info   target
 *
 * A benchmark that cannot run (connection refused, an error reply) prints why and exits with
 * BENCH_EXIT_ERROR; a missed target is reported, never an exit status.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <kactor/client.h>

#define BENCH_EXIT_ERROR 2

/* Waits of kactor_get() in the benchmarks: generous, but bounded. */
#define BENCH_GET_TIMEOUT_USEC (60ULL * 1000 * 1000)

typedef enum BenchVerdict {
        BENCH_INFO,
        BENCH_PASS,
        BENCH_MISS,
} BenchVerdict;

uint64_t bench_now_ns(void);

/* Environment knobs: the value of `name`, or `def` when unset or unparsable. */
double bench_env_double(const char *name, double def);
unsigned bench_env_unsigned(const char *name, unsigned def);

/* KACTOR_BENCH_DURATION (seconds measured, default 1.5) and KACTOR_BENCH_WARMUP (default 0.3). */
double bench_duration_s(void);
double bench_warmup_s(void);
/* KACTOR_BENCH_BATCH: calls per kactor_get() in the async benchmarks (default 1000). */
unsigned bench_batch(void);

/* Module names (looked up in the node manager's module path) or paths. */
const char *bench_counter_module(void); /* KACTOR_BENCH_COUNTER_MODULE, default "counter" */
const char *bench_noop_module(void);    /* KACTOR_BENCH_NOOP_MODULE, default "benchmod" */

/* Prints "name  ERROR: ..." with the node manager's message when r is -EREMOTEIO, and exits with
 * BENCH_EXIT_ERROR. c may be NULL. */
/* n Counter.increment calls, in batches of 1000, each result checked (the counter starts at 0). */
void bench_fill_counter(const char *name, kactor_client *c, kactor_actor actor, unsigned n);

_Noreturn void bench_fail(const char *name, kactor_client *c, int r, const char *format, ...)
        __attribute__((format(printf, 4, 5)));

/* Connects to $KACTOR_SOCKET or fails the benchmark `name`. bench_connect_direct() sets
 * kactor_connect_opts.direct_calls (0: the default, $KACTOR_DIRECT_CALLS; negative: every call
 * relayed by the node manager; positive: calls to this node's actors straight to their workers). */
kactor_client *bench_connect(const char *name);
kactor_client *bench_connect_direct(const char *name, int direct_calls);

/* One step of a benchmark: does some work and adds the operations done to *ops. A negative return
 * ends the measurement with that error. */
typedef int (*bench_step_fn)(void *userdata, uint64_t *ops);

/* Runs step() for the warm-up time, then for the measured time; returns 0 and the operations per
 * second over the measured part, or the step's error. bench_measure() uses the configured times. */
int bench_measure_for(bench_step_fn step, void *userdata, double warmup_s, double duration_s, double *ret_rate);
int bench_measure(bench_step_fn step, void *userdata, double *ret_rate);

/* write()/read() all of n bytes. read returns 1, 0 on EOF before any byte, or -errno. */
int bench_write_full(int fd, const void *p, size_t n);
int bench_read_full(int fd, void *p, size_t n);
/* Waits for a child: 0 when it exited with 0, -ECHILD otherwise. */
int bench_reap(pid_t pid);

/* The raw baselines' helpers: a process that echoes BENCH_PING_SIZE-byte messages over a unix
 * stream socket, optionally behind a relay process that forwards each one (client -> relay ->
 * echo and back: what any brokered design such as client -> nodemgr -> worker pays at least).
 * one_cpu pins the helpers to the CPU the caller runs on. */
#define BENCH_PING_SIZE 64
typedef struct BenchEcho {
        int fd;
        pid_t pids[2];
        unsigned n_pids;
        char buf[BENCH_PING_SIZE];
} BenchEcho;
int bench_echo_start(bool relay, bool one_cpu, BenchEcho *ret);
int bench_echo_step(void *userdata, uint64_t *ops); /* a bench_step_fn: 16 round trips */
int bench_echo_stop(BenchEcho *e);                  /* closes and reaps; -ECHILD if a helper failed */

/* A sync benchmark measured in rounds that alternate with the raw round trip and the relayed one,
 * so the ratios compare figures taken under the same load. */
#define BENCH_SYNC_MAX_ROUNDS 16
typedef struct BenchSync {
        double rate;     /* operations per second */
        double rtt_ns;   /* raw round trip, measured between the rounds */
        double relay_ns; /* relayed round trip, likewise */
        /* Per round: the time per operation and the raw round trip of that round (ns); the median of
         * their quotients, and its range, is the ratio to the raw round trip (rtt_ratio, 0: unknown),
         * likewise to the relayed one (relay_ratio). */
        unsigned rounds;
        double round_ns[BENCH_SYNC_MAX_ROUNDS], round_rtt_ns[BENCH_SYNC_MAX_ROUNDS];
        double rtt_ratio, rtt_ratio_min, rtt_ratio_max, relay_ratio;
        /* CPU time per operation (ns) over the measured slices, of the processes BenchSyncPath names
         * (0: not asked for, or unreadable) and of this process (the client). */
        double nodemgr_cpu_ns, worker_cpu_ns, client_cpu_ns;
} BenchSync;
int bench_measure_sync(bench_step_fn step, void *userdata, BenchSync *ret);

/* One of the paths bench_measure_sync_paths() compares: its step, and the processes whose CPU time
 * it charges to each operation (0: none). */
typedef struct BenchSyncPath {
        bench_step_fn step;
        void *userdata;
        pid_t nodemgr_pid;
        pid_t worker_pid;
} BenchSyncPath;

/* Several sync benchmarks measured together: each round has a raw slice, a relayed slice and one slice
 * of each path (the paths' order turning from round to round), so that all of them, and the ratios
 * between them, are taken under the same load (10 rounds; 3 for a single path, as
 * bench_measure_sync()). ret[i] is path i's; all share the round trips. */
int bench_measure_sync_paths(const BenchSyncPath *paths, unsigned n_paths, BenchSync *ret);

/* Baselines from run.sh (0 when unknown): raw unix-socket round trip in ns, pipelined messages
 * per second, posix_spawn()s per second, and the relayed round trip below. */
double bench_baseline_rtt_ns(void);
double bench_baseline_pipe_rate(void);
/* The raw round trip through a relay process (client -> relay -> echo and back), in ns. */
double bench_baseline_relay_ns(void);
double bench_baseline_spawn_rate(void);

/* The raw output line. Any of ratio/target may be NULL. */
void bench_line(const char *name, const char *figure, const char *ratio, BenchVerdict v, const char *target);

/* A sync benchmark (one round trip per operation): the rate, the time per operation as a multiple
 * of the raw round trip (and of the relayed one) measured beside it, else of run.sh's baselines,
 * checked against min_rate and max_rtt_ratio (0: no target). bench_report_sync_detail() adds `detail`
 * (NULL: nothing) to the ratio's text. */
void bench_report_sync(const char *name, const BenchSync *m, double min_rate, double max_rtt_ratio);
void bench_report_sync_detail(const char *name, const BenchSync *m, double min_rate, double max_rtt_ratio,
                              const char *detail);
/* A throughput benchmark: the rate as a fraction of the pipelined socket's message rate. */
void bench_report_async(const char *name, double rate, double min_rate);
/* A rate compared with posix_spawn() of /bin/true. */
void bench_report_spawn(const char *name, double rate, double min_rate);
/* A memory figure in bytes, beside a reference (ref_bytes 0: none) and a maximum (0: none). */
void bench_report_memory(const char *name, uint64_t bytes, uint64_t ref_bytes, const char *ref_name,
                         uint64_t max_bytes, const char *detail);

/* "1,234,567" into buf. */
const char *bench_format_count(double v, char *buf, size_t size);

/* Memory of a process from /proc/PID/status, in bytes: VmRSS, RssAnon, RssFile. -errno on failure. */
int bench_proc_rss(pid_t pid, uint64_t *ret_rss, uint64_t *ret_anon, uint64_t *ret_file);

/* $KACTOR_BENCH_NODEMGR_PID, or 0. */
pid_t bench_nodemgr_pid(void);

/* The CPU time a process has run so far, all its threads (ns; from each /proc/PID/task/TID/schedstat,
 * so it can be read from outside at any time). 0 when pid is 0 or gone. */
uint64_t bench_proc_cpu_ns(pid_t pid);
/* This process's CPU time so far (ns). */
uint64_t bench_self_cpu_ns(void);

/* The live (not zombie) children of `parent`, from a /proc scan, in a malloc'd array. Returns
 * their number or -errno. */
int bench_proc_children(pid_t parent, pid_t **ret_pids);

/* A property of the node manager's D-Bus service (busctl on $KACTOR_BENCH_BUS) as busctl prints
 * it ("u 12", "t 345", "s \"x\""), first line only. 0 or -errno. */
int bench_bus_property(const char *path, const char *interface, const char *property, char *buf, size_t size);

/* The worker PID of an actor from its D-Bus property Pid (busctl on $KACTOR_BENCH_BUS).
 * 0 and the pid, or -errno when it is unknown. */
int bench_actor_pid(kactor_actor actor, pid_t *ret);
/* A uint64 ("t") property of an actor's io.kactor.Actor1 (CallsSubmitted, CallsDirect, ...), read as
 * bench_actor_pid() does. 0 and the value, or -errno (-ENOENT also where the node manager has no such
 * property). */
int bench_actor_property_u64(kactor_actor actor, const char *property, uint64_t *ret);

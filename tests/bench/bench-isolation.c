/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Isolation benchmarks (docs/isolation.md). This program starts two private node managers of its
 * own, each with its own dbus-daemon and runtime directory (as run.sh starts its one), one with
 * --cgroup-manager=cgroupfs and one with --cgroup-manager=none, and stops both (by PID) at the end:
 *
 *   actor_creation_none        KACTOR_BENCH_ISO_ACTORS (100) Counters created, then `get` on each;
 *   actor_creation_cgroupfs    from the first create to the last answer; then all released and the
 *                              node's Actors property back at 0 before the next round. Rounds
 *                              alternate between the two nodes (A B, B A, ...); the median of
 *                              KACTOR_BENCH_ISO_ROUNDS (5) rounds each, and of the rounds' ratios
 *   actor_creation_*_burst     one burst of KACTOR_BENCH_ISO_BURST (400) creates per node: how many
 *                              start (with systemd, dbus-daemon allows a connection 128 pending
 *                              replies by default: as many StartTransientUnit calls in flight)
 *   isolation_1_1_actor_calls_sync
 *   isolation_1_1_actor_calls_async
 *   isolation_n_n_actor_calls_async
 *                              the call benchmarks (Counter.increment, as bench-actor-calls) against
 *                              the cgroupfs node and the none node in interleaved rounds
 *                              (bench-compare.h): cgroupfs ÷ none, the median of the rounds' ratios
 *
 * With --creation LABEL SOCKET BUS [...] it measures only the creation figures, against the node
 * managers given (their native socket, and their bus for the Actors property):
 * tests/bench/bench-systemd-node.sh runs it so inside a systemd-nspawn node, for the systemd backend
 * beside a cgroupfs node manager in the same node.
 *
 * Usage: bench-isolation [NAME...] ("isolation", "actor_creation_backends" or "isolation_calls"
 *        select groups)
 *        bench-isolation --creation LABEL SOCKET BUS [LABEL SOCKET BUS...]
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-compare.h"
#include "bench-util.h"

typedef struct Node {
        const char *manager; /* --cgroup-manager */
        char dir[256];
        char bus[PATH_MAX];
        char socket[PATH_MAX];
        pid_t dbus_pid;
        pid_t nodemgr_pid;
} Node;

#define N_NODES 2
static Node nodes[N_NODES] = { { .manager = "none" }, { .manager = "cgroupfs" } };
/* Only this process stops them: the call benchmarks' client processes are forks of it. */
static pid_t main_pid;

static bool wanted(int argc, char *argv[], const char *name, const char *group) {
        if (argc <= 1)
                return true;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0 || strcmp(argv[i], group) == 0 || strcmp(argv[i], "isolation") == 0)
                        return true;
        return false;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

/* --- private node managers ----------------------------------------------------------------------- */

/* fork + exec with output to `log`; the child gets SIGTERM when we die (run.sh's timeout kills this
 * program alone). */
static pid_t spawn(char *const argv[], const char *log) {
        pid_t parent = getpid(), pid;

        pid = fork();
        if (pid != 0)
                return pid;
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
                _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
                (void) dup2(fd, STDOUT_FILENO);
                (void) dup2(fd, STDERR_FILENO);
        }
        /* Actors hold descriptors in the node manager (run.sh does the same). */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        execvp(argv[0], argv);
        _exit(127);
}

static bool child_alive(pid_t pid) {
        return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

/* sig, up to 10 s, then SIGKILL; reaped. A node manager gets SIGINT, which stops its actors too. */
static void stop_pid(pid_t *pid, int sig) {
        if (*pid <= 0)
                return;
        if (kill(*pid, sig) == 0) {
                for (unsigned i = 0; i < 200 && waitpid(*pid, NULL, WNOHANG) == 0; i++)
                        sleep_ms(50);
                if (kill(*pid, SIGKILL) == 0)
                        (void) waitpid(*pid, NULL, 0);
        }
        *pid = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void node_stop(Node *n) {
        stop_pid(&n->nodemgr_pid, SIGINT);
        stop_pid(&n->dbus_pid, SIGTERM);
        if (n->dir[0] && !getenv("KACTOR_BENCH_KEEP_NODES"))
                (void) nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        n->dir[0] = '\0';
}

static void stop_all(void) {
        if (getpid() != main_pid)
                return;
        for (unsigned i = 0; i < N_NODES; i++)
                node_stop(&nodes[i]);
}

static void on_signal(int sig) {
        /* The node managers stop their actors on SIGINT; we do not wait for them. */
        if (getpid() != main_pid)
                _exit(128 + sig);
        for (unsigned i = 0; i < N_NODES; i++) {
                if (nodes[i].nodemgr_pid > 0)
                        kill(nodes[i].nodemgr_pid, SIGINT);
                if (nodes[i].dbus_pid > 0)
                        kill(nodes[i].dbus_pid, SIGTERM);
        }
        _exit(128 + sig);
}

static void print_log_tail(const char *name, const char *path) {
        char line[512];
        FILE *f = fopen(path, "re");

        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                fprintf(stderr, "%s: %s", name, line);
        fclose(f);
}

/* The build directory: this program is BUILD/tests/bench/bench-isolation. */
static void build_dir(char *buf, size_t size) {
        ssize_t n = readlink("/proc/self/exe", buf, size - 1);

        if (n <= 0) {
                snprintf(buf, size, "build");
                return;
        }
        buf[n] = '\0';
        for (unsigned i = 0; i < 3; i++) {
                char *slash = strrchr(buf, '/');
                if (slash)
                        *slash = '\0';
        }
}

static void node_start(const char *name, Node *n) {
        char build[PATH_MAX], path[PATH_MAX + 64], nodemgr[PATH_MAX + 32], modules[2 * PATH_MAX + 64], cpus[32],
                bus_arg[2 * PATH_MAX], manager_arg[64], log[PATH_MAX + 32], prop[128];
        struct kactor_connect_opts opts = { .sz = sizeof(opts) };
        kactor_client *c = NULL;
        const char *tmp = getenv("TMPDIR");
        FILE *f;
        int r = -ETIMEDOUT;

        build_dir(build, sizeof(build));
        snprintf(n->dir, sizeof(n->dir), "%.200s/kactor-bench-iso-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", n->manager);
        if (!mkdtemp(n->dir)) {
                n->dir[0] = '\0';
                bench_fail(name, NULL, -errno, "creating a temporary directory");
        }

        snprintf(path, sizeof(path), "%s/bus.conf", n->dir);
        f = fopen(path, "we");
        if (!f)
                bench_fail(name, NULL, -errno, "writing %s", path);
        fprintf(f,
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <listen>unix:path=%s/bus</listen>\n"
                "  <auth>EXTERNAL</auth>\n"
                "  <policy context=\"default\">\n"
                "    <allow user=\"*\"/>\n"
                "    <allow own=\"*\"/>\n"
                "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                "    <allow receive_sender=\"*\"/>\n"
                "  </policy>\n"
                "</busconfig>\n",
                n->dir);
        fclose(f);
        snprintf(n->bus, sizeof(n->bus), "unix:path=%s/bus", n->dir);
        snprintf(n->socket, sizeof(n->socket), "%s/run/nodemgr.sock", n->dir);
        snprintf(bus_arg, sizeof(bus_arg), "--config-file=%s", path);
        snprintf(log, sizeof(log), "%s/dbus.log", n->dir);
        char *dbus_argv[] = { "dbus-daemon", bus_arg, "--nofork", "--nopidfile", NULL };
        n->dbus_pid = spawn(dbus_argv, log);
        if (n->dbus_pid < 0)
                bench_fail(name, NULL, -errno, "starting dbus-daemon");
        snprintf(path, sizeof(path), "%s/bus", n->dir);
        for (unsigned i = 0; i < 200 && access(path, F_OK) < 0 && child_alive(n->dbus_pid); i++)
                sleep_ms(25);
        if (access(path, F_OK) < 0) {
                print_log_tail(name, log);
                bench_fail(name, NULL, -ENOENT, "dbus-daemon did not start");
        }

        snprintf(path, sizeof(path), "%s/run", n->dir);
        (void) mkdir(path, 0755);
        snprintf(nodemgr, sizeof(nodemgr), "%s/kactor-nodemgr", build);
        snprintf(modules, sizeof(modules), "%s/examples:%s/tests/modules", build, build);
        snprintf(cpus, sizeof(cpus), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
        snprintf(bus_arg, sizeof(bus_arg), "--bus=%s", n->bus);
        snprintf(manager_arg, sizeof(manager_arg), "--cgroup-manager=%s", n->manager);
        snprintf(log, sizeof(log), "%s/nodemgr.log", n->dir);
        char *nodemgr_argv[] = { nodemgr, bus_arg, "--runtime-dir", path, "--module-path", modules,
                                 "--num-cpus", cpus, manager_arg, NULL };
        n->nodemgr_pid = spawn(nodemgr_argv, log);
        if (n->nodemgr_pid < 0)
                bench_fail(name, NULL, -errno, "starting kactor-nodemgr");
        opts.socket_path = n->socket;
        for (unsigned i = 0; i < 400 && child_alive(n->nodemgr_pid); i++) {
                r = kactor_connect(&opts, &c);
                if (r >= 0)
                        break;
                sleep_ms(25);
        }
        if (r < 0) {
                print_log_tail(name, log);
                bench_fail(name, NULL, r, "kactor-nodemgr --cgroup-manager=%s did not become ready", n->manager);
        }
        kactor_client_free(c);

        /* The bus name too, and the backend it says it runs. */
        setenv("KACTOR_BENCH_BUS", n->bus, 1);
        r = -ENOENT;
        for (unsigned i = 0; i < 100 && r < 0; i++) {
                r = bench_bus_property("/io/kactor/NodeManager1", "io.kactor.NodeManager1", "CgroupManager", prop,
                                       sizeof(prop));
                if (r < 0)
                        sleep_ms(50);
        }
        char want[96];
        snprintf(want, sizeof(want), "s \"%s\"", n->manager);
        if (r < 0 || strcmp(prop, want) != 0) {
                print_log_tail(name, log);
                bench_fail(name, NULL, r < 0 ? r : 0, "the node manager's CgroupManager is %s, not %s",
                           r < 0 ? "unknown" : prop, want);
        }
}

/* --- actor creation ------------------------------------------------------------------------------ */

/* Waits (bounded) until the node on $KACTOR_BENCH_BUS has no actors. */
static bool wait_no_actors(unsigned timeout_ms) {
        char prop[64];
        uint64_t end = bench_now_ns() + (uint64_t) timeout_ms * 1000000ULL;

        do {
                if (bench_bus_property("/io/kactor/NodeManager1", "io.kactor.NodeManager1", "Actors", prop,
                                       sizeof(prop)) >= 0 && strcmp(prop, "u 0") == 0)
                        return true;
                sleep_ms(20);
        } while (bench_now_ns() < end);
        return false;
}

/* One round: k Counters created, `get` on each, from the first create to the last answer; then all
 * released and gone. Returns actors/s. With ret_failed, actors that died (their `get` failed) are
 * counted there, the first one's message kept in msg, instead of failing the benchmark. */
static double creation_round(const char *name, kactor_client *c, unsigned k, unsigned *ret_failed, char *msg,
                             size_t msg_size) {
        kactor_actor *actors = calloc(k, sizeof(kactor_actor));
        kactor_ref *refs = calloc(k, sizeof(kactor_ref));
        kactor_value **values = NULL;
        unsigned failed = 0;
        uint64_t t0, t1;
        int r;

        if (!actors || !refs)
                bench_fail(name, c, -ENOMEM, "allocating");
        t0 = bench_now_ns();
        for (unsigned i = 0; i < k; i++) {
                r = kactor_create_actor(c, bench_counter_module(), "Counter", NULL, NULL, &actors[i]);
                if (r < 0)
                        bench_fail(name, c, r, "creating Counter %u of %u", i + 1, k);
        }
        for (unsigned i = 0; i < k; i++) {
                r = kactor_call(c, actors[i], "get", NULL, &refs[i]);
                if (r < 0)
                        bench_fail(name, c, r, "calling Counter %u", i + 1);
        }
        r = kactor_get(c, refs, k, BENCH_GET_TIMEOUT_USEC, &values);
        if (r < 0)
                bench_fail(name, c, r, "waiting for %u Counters to answer", k);
        t1 = bench_now_ns();
        for (unsigned i = 0; i < k; i++)
                if (kactor_value_type(values[i]) != KACTOR_TYPE_INT || kactor_value_get_int(values[i]) != 0) {
                        const char *why = kactor_value_is_error(values[i]) ? kactor_value_error_message(values[i]) : "not 0";

                        if (!ret_failed)
                                bench_fail(name, c, 0, "Counter %u of %u answered %s", i + 1, k, why);
                        if (failed++ == 0)
                                snprintf(msg, msg_size, "Counter %u of %u: %s", i + 1, k, why);
                }
        kactor_values_free(values, k);
        (void) kactor_ref_release(c, refs, k);
        for (unsigned i = 0; i < k; i++)
                (void) kactor_actor_release(c, actors[i]);
        r = kactor_flush(c);
        if (r < 0)
                bench_fail(name, c, r, "releasing the actors");
        if (!wait_no_actors(30 * 1000))
                bench_fail(name, c, -ETIMEDOUT, "the released actors did not go within 30 s");
        free(actors);
        free(refs);
        if (ret_failed)
                *ret_failed = failed;
        return (k - failed) / ((double) (t1 - t0) / 1e9);
}

static void report_creation(const char *name, const char *manager, double rate, const double *rates,
                            unsigned rounds, unsigned k) {
        double lo = rates[0], hi = rates[0], target = strcmp(manager, "systemd") == 0 ? 250
                                                      : strcmp(manager, "cgroupfs") == 0 ? 500 : 0;
        char figure[64], ratio[200], count[32], tgt[64] = "", a[32], b[32];

        for (unsigned i = 1; i < rounds; i++) {
                lo = rates[i] < lo ? rates[i] : lo;
                hi = rates[i] > hi ? rates[i] : hi;
        }
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(rate, count, sizeof(count)));
        if (bench_baseline_spawn_rate() > 0)
                snprintf(ratio, sizeof(ratio), "%.3fx posix_spawn; %s, median of %u rounds of %u, range %s-%s/s",
                         rate / bench_baseline_spawn_rate(), manager, rounds, k, bench_format_count(lo, a, sizeof(a)),
                         bench_format_count(hi, b, sizeof(b)));
        else
                snprintf(ratio, sizeof(ratio), "%s, median of %u rounds of %u, range %s-%s/s", manager, rounds, k,
                         bench_format_count(lo, a, sizeof(a)), bench_format_count(hi, b, sizeof(b)));
        if (target > 0)
                snprintf(tgt, sizeof(tgt), "target >= %s/s", bench_format_count(target, count, sizeof(count)));
        bench_line(name, figure, ratio, target <= 0 ? BENCH_INFO : rate >= target ? BENCH_PASS : BENCH_MISS, tgt);
}

static unsigned creation_actors(void) {
        return bench_env_unsigned("KACTOR_BENCH_ISO_ACTORS", 100);
}

/* Where actors are created: a node manager's native socket and its bus (for its Actors property). */
typedef struct Target {
        const char *label;
        const char *socket;
        const char *bus;
} Target;

#define MAX_TARGETS 4

/* One burst of KACTOR_BENCH_ISO_BURST (400) creates: every actor must start, however many
 * placements (StartTransientUnit calls, with systemd) are in flight at once. */
static void creation_burst(const char *name, kactor_client *c) {
        unsigned burst = bench_env_unsigned("KACTOR_BENCH_ISO_BURST", 400), failed = 0;
        char figure[64], ratio[128], msg[300] = "", count[32], bname[300];
        double rate;

        snprintf(bname, sizeof(bname), "%s_burst", name);
        rate = creation_round(bname, c, burst, &failed, msg, sizeof(msg));
        snprintf(figure, sizeof(figure), "%u/%u", burst - failed, burst);
        if (failed == 0)
                snprintf(ratio, sizeof(ratio), "actors alive of one burst of creates; %s/s",
                         bench_format_count(rate, count, sizeof(count)));
        else
                snprintf(ratio, sizeof(ratio), "actors alive of one burst of creates; %u died", failed);
        bench_line(bname, figure, ratio, failed == 0 ? BENCH_PASS : BENCH_MISS, "target: all of them");
        if (failed > 0)
                printf("%-30s %15s  first: %s\n", "", "", msg);
}

/* Creation rounds on each target in turn (A B, B A, ...), the median of each, the median of the
 * rounds' ratios of each target to the first, then a burst on each. */
static void run_creation(const Target *t, unsigned n) {
        unsigned rounds = bench_env_unsigned("KACTOR_BENCH_ISO_ROUNDS", 5), k = creation_actors();
        double rates[MAX_TARGETS][COMPARE_MAX_ROUNDS], ratios[COMPARE_MAX_ROUNDS];
        kactor_client *c[MAX_TARGETS];
        char name[MAX_TARGETS][64];

        if (rounds > COMPARE_MAX_ROUNDS)
                rounds = COMPARE_MAX_ROUNDS;
        for (unsigned i = 0; i < n; i++) {
                struct kactor_connect_opts opts = { .sz = sizeof(opts), .socket_path = t[i].socket };
                int r;

                snprintf(name[i], sizeof(name[i]), "actor_creation_%s", t[i].label);
                r = kactor_connect(&opts, &c[i]);
                if (r < 0)
                        bench_fail(name[i], NULL, r, "connecting to %s", t[i].socket);
                setenv("KACTOR_BENCH_BUS", t[i].bus, 1);
                (void) creation_round(name[i], c[i], k / 10 ?: 1, NULL, NULL, 0); /* warm-up */
        }
        for (unsigned round = 0; round < rounds; round++)
                for (unsigned j = 0; j < n; j++) {
                        unsigned i = round % 2 == 0 ? j : n - 1 - j;

                        setenv("KACTOR_BENCH_BUS", t[i].bus, 1);
                        rates[i][round] = creation_round(name[i], c[i], k, NULL, NULL, 0);
                }
        for (unsigned i = 0; i < n; i++)
                report_creation(name[i], t[i].label, compare_median(rates[i], rounds), rates[i], rounds, k);
        for (unsigned i = 1; i < n; i++) {
                char rname[64], figure[32], ratio[128];

                for (unsigned round = 0; round < rounds; round++)
                        ratios[round] = rates[i][round] / rates[0][round];
                snprintf(rname, sizeof(rname), "actor_creation_%s/%s", t[i].label, t[0].label);
                snprintf(figure, sizeof(figure), "%.3fx", compare_median(ratios, rounds));
                snprintf(ratio, sizeof(ratio), "median of the %u rounds' ratios", rounds);
                bench_line(rname, figure, ratio, BENCH_INFO, "");
        }
        for (unsigned i = 0; i < n; i++) {
                setenv("KACTOR_BENCH_BUS", t[i].bus, 1);
                creation_burst(name[i], c[i]);
                kactor_client_free(c[i]);
        }
}

/* --- calls with isolation on and off ------------------------------------------------------------- */

static void run_calls(const char *name, CompareKind kind, unsigned n_clients) {
        const CompareVariant v[2] = {
                { .label = "none", .socket = nodes[0].socket, .method = "increment" },
                { .label = "cgroupfs", .socket = nodes[1].socket, .method = "increment" },
        };
        char figure[64], ratio[220], a[32], b[32];
        CompareResult res;
        int r;

        r = compare_calls(name, kind, v, n_clients, compare_rounds(), compare_slice_s(), &res);
        if (r < 0)
                bench_fail(name, NULL, r, "running the paired call benchmark");
        snprintf(figure, sizeof(figure), "%.3fx", res.ratio);
        if (kind == COMPARE_SYNC)
                snprintf(ratio, sizeof(ratio), "cgroupfs %.1f µs/op vs none %.1f µs/op; range %.3f-%.3f, %u rounds",
                         1e6 / res.median[1], 1e6 / res.median[0], res.ratio_min, res.ratio_max, res.rounds);
        else
                snprintf(ratio, sizeof(ratio), "cgroupfs %s/s vs none %s/s; range %.3f-%.3f, %u rounds, %u client%s",
                         bench_format_count(res.median[1], a, sizeof(a)), bench_format_count(res.median[0], b, sizeof(b)),
                         res.ratio_min, res.ratio_max, res.rounds, n_clients, n_clients > 1 ? "s" : "");
        bench_line(name, figure, ratio, res.ratio >= 0.95 ? BENCH_PASS : BENCH_MISS, "target >= 0.95x (within 5%)");
}

int main(int argc, char *argv[]) {
        bool creation, calls_sync, calls_async, calls_n_n;

        signal(SIGPIPE, SIG_IGN);
        if (argc >= 2 && strcmp(argv[1], "--creation") == 0) {
                Target t[MAX_TARGETS];
                unsigned n = 0;

                for (int i = 2; i + 2 < argc && n < MAX_TARGETS; i += 3)
                        t[n++] = (Target) { .label = argv[i], .socket = argv[i + 1], .bus = argv[i + 2] };
                if (n == 0 || argc != 2 + 3 * (int) n) {
                        fprintf(stderr, "usage: %s --creation LABEL SOCKET BUS [LABEL SOCKET BUS...] (at most %d)\n",
                                argv[0], MAX_TARGETS);
                        return BENCH_EXIT_ERROR;
                }
                run_creation(t, n);
                return 0;
        }

        creation = wanted(argc, argv, "actor_creation_cgroupfs", "actor_creation_backends") ||
                   wanted(argc, argv, "actor_creation_none", "actor_creation_backends");
        calls_sync = wanted(argc, argv, "isolation_1_1_actor_calls_sync", "isolation_calls");
        calls_async = wanted(argc, argv, "isolation_1_1_actor_calls_async", "isolation_calls");
        calls_n_n = wanted(argc, argv, "isolation_n_n_actor_calls_async", "isolation_calls");
        if (!creation && !calls_sync && !calls_async && !calls_n_n)
                return 0;

        main_pid = getpid();
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        atexit(stop_all); /* bench_fail() exits too */
        for (unsigned i = 0; i < N_NODES; i++)
                node_start("isolation", &nodes[i]);
        printf("%-30s %15s  (node managers %d (none) and %d (cgroupfs), each on its own bus)\n", "  private nodes", "",
               (int) nodes[0].nodemgr_pid, (int) nodes[1].nodemgr_pid);

        if (creation) {
                Target t[N_NODES];

                for (unsigned i = 0; i < N_NODES; i++)
                        t[i] = (Target) { .label = nodes[i].manager, .socket = nodes[i].socket, .bus = nodes[i].bus };
                run_creation(t, N_NODES);
        }
        if (calls_sync)
                run_calls("isolation_1_1_actor_calls_sync", COMPARE_SYNC, 1);
        if (calls_async)
                run_calls("isolation_1_1_actor_calls_async", COMPARE_ASYNC, 1);
        if (calls_n_n)
                run_calls("isolation_n_n_actor_calls_async", COMPARE_ASYNC, compare_n_clients());

        for (unsigned i = 0; i < N_NODES; i++)
                if (!child_alive(nodes[i].nodemgr_pid)) {
                        printf("%-30s ERROR: the %s node manager died\n", "isolation", nodes[i].manager);
                        return 1;
                }
        stop_all();
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Restart benchmarks: actors outlive the node manager (nodemgr/core/persist.c). This program starts
 * private nodes of its own (each a dbus-daemon, a runtime directory, --cgroup-manager=cgroupfs and a
 * --cgroup-name of its own, kactor-bench-restart-PID-LABEL), restarts their node managers on the same
 * runtime directory, and stops everything by PID at the end (the last node manager with SIGINT, so
 * its actors stop too), then checks that no process and no cgroup of its own is left:
 *
 *   nodemgr_restart_1000_actors  KACTOR_BENCH_RESTART_ACTORS (1000) idle Counters, each called once
 *                                (creation not timed). A round: SIGTERM to the node manager, and at
 *                                once a thread sends `increment` to every actor on the client that
 *                                created them (libkactor reconnects by itself and sends again what
 *                                was not answered); the node manager's exit is awaited and a new one
 *                                started on the same runtime directory. Timed from the kill() until
 *                                both the new one serves D-Bus (an sd-bus Get of one actor's
 *                                io.kactor.Actor1 State says "alive") and every actor answered.
 *                                After each round, not timed: every answer is the next value, every
 *                                actor's Pid (D-Bus) is the worker it had before the first restart,
 *                                every State is "alive". KACTOR_BENCH_RESTART_ROUNDS (3) rounds;
 *                                the median, target <= 1 s.
 *   nodemgr_cold_start           the baseline, measured between those rounds on a second node (its
 *                                own bus and runtime directory): from fork() of a node manager with
 *                                an empty runtime directory until it serves D-Bus (Get of its Actors
 *                                property) and its socket (kactor_connect()); the median. The
 *                                restart's ratio is to this: what starting a node manager costs
 *                                anyway, where the restart adds the old one's exit and taking over
 *                                the actors.
 *   nodemgr_restart_0_actors     information: the same node, SIGTERM and a new node manager on its
 *                                runtime directory with no actors (journal of nothing), to serving
 *                                D-Bus and the socket; what the 1,000 actors add is the difference.
 *   restart_under_load           3 caller threads, each with a client and a Journal actor of its own
 *                                (build/tests/modules/lineagemod.so: add(caller, seq) returns the
 *                                number of entries), stream batches of KACTOR_BENCH_RESTART_INFLIGHT
 *                                (64) `add` calls (one get of each batch) while the node manager is
 *                                restarted KACTOR_BENCH_RESTART_COUNT (5) times, alternately with
 *                                SIGTERM and SIGKILL, a new one started on the same runtime directory
 *                                at once, KACTOR_BENCH_RESTART_GAP (1.0 s) of load between restarts.
 *                                Every result must be its position in the caller's stream, and at the
 *                                end each Journal's entries() exactly the calls made, in order: none
 *                                lost, none run twice. Then per restart: the longest time any caller
 *                                went without a result across it (and the longest that all of them
 *                                together did), the mean of those (restart_under_load_stall); and
 *                                calls/s outside restarts (restart_under_load_rate: batches completed
 *                                outside [kill, last caller's first result after its stall]).
 *
 * Every wait is bounded (the node managers' exits and starts 10-30 s, kactor_get() 20 s, clients'
 * reconnection 20 s) and workers left behind give up after KACTOR_WORKER_REATTACH_SEC (20) set in the
 * node managers' environment; should this program be killed, the node managers get SIGINT
 * (PR_SET_PDEATHSIG), the dbus-daemons SIGTERM and the temporary directories are removed. Killed in
 * the few milliseconds between two node managers, its actors' workers wait those 20 s and exit, and
 * their (then empty) cgroups stay.
 *
 * Usage: bench-restart [NAME...] ("restart" selects both)
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bench-util.h"

#define BUS_NAME "io.kactor.NodeManager1"
#define BUS_PATH "/io/kactor/NodeManager1"
#define BUS_IFACE "io.kactor.NodeManager1"
#define ACTOR_IFACE "io.kactor.Actor1"

#define MSEC_NS 1000000ULL
#define SEC_NS 1000000000ULL
#define N_CALLERS 3
#define MAX_ROUNDS 16
#define MAX_RESTARTS 16
#define MAX_BATCH 1024
#define CG_PATH_MAX 256

typedef struct Node {
        const char *label;
        char dir[256];
        char run_dir[300];
        char socket[320];
        char bus_address[300];
        char cgroup_name[64];
        pid_t dbus_pid;
        pid_t nodemgr_pid;
        sd_bus *bus;
        unsigned starts; /* node managers started on it */
} Node;

/* The node the actors live on, and the one the baseline is measured on. */
static Node node_main = { .label = "main" }, node_cold = { .label = "cold" };
static pid_t main_pid;
static char build[PATH_MAX];

static bool wanted(int argc, char *argv[], const char *name) {
        if (argc <= 1)
                return true;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], name) == 0 || strcmp(argv[i], "restart") == 0)
                        return true;
        return false;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

static double ms_since(uint64_t t0, uint64_t t1) {
        return (double) (t1 - t0) / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double median(const double *v, unsigned n) {
        double s[MAX_ROUNDS > MAX_RESTARTS ? MAX_ROUNDS : MAX_RESTARTS];

        if (n == 0)
                return 0;
        memcpy(s, v, n * sizeof(double));
        qsort(s, n, sizeof(double), cmp_double);
        return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void range(const double *v, unsigned n, double *ret_lo, double *ret_hi) {
        double lo = v[0], hi = v[0];

        for (unsigned i = 1; i < n; i++) {
                lo = v[i] < lo ? v[i] : lo;
                hi = v[i] > hi ? v[i] : hi;
        }
        *ret_lo = lo;
        *ret_hi = hi;
}

/* --- processes ------------------------------------------------------------------------------------ */

/* The build directory: this program is BUILD/tests/bench/bench-restart. */
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

/* fork + exec with output appended to `log`; the child gets `deathsig` when this process dies. */
static pid_t spawn(char *const argv[], const char *log, int deathsig, bool nodemgr) {
        pid_t parent = getpid(), pid;

        fflush(stdout);
        pid = fork();
        if (pid != 0)
                return pid;
        (void) prctl(PR_SET_PDEATHSIG, deathsig);
        if (getppid() != parent)
                _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
                (void) dup2(fd, STDOUT_FILENO);
                (void) dup2(fd, STDERR_FILENO);
        }
        if (nodemgr) {
                /* 1,000 actors hold descriptors in the node manager (run.sh does the same). */
                struct rlimit rl;
                if (getrlimit(RLIMIT_NOFILE, &rl) >= 0) {
                        rl.rlim_cur = rl.rlim_max;
                        (void) setrlimit(RLIMIT_NOFILE, &rl);
                }
                /* Workers left behind (this program killed between two node managers) give up
                 * after 20 s instead of the default 5 minutes. They inherit the environment. */
                if (!getenv("KACTOR_WORKER_REATTACH_SEC"))
                        (void) setenv("KACTOR_WORKER_REATTACH_SEC", "20", 1);
                /* run.sh's node manager is not ours. */
                (void) unsetenv("KACTOR_SOCKET");
        }
        execvp(argv[0], argv);
        _exit(127);
}

/* Waits up to timeout_ms for our child to exit (its pidfd) and reaps it: its wait status, or
 * -ETIMEDOUT (still running), or -errno. */
static int child_wait(pid_t pid, unsigned timeout_ms) {
        int status, fd;

        fd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int k;

                do
                        k = poll(&p, 1, (int) timeout_ms);
                while (k < 0 && errno == EINTR);
                close(fd);
                if (k == 0)
                        return -ETIMEDOUT;
        }
        if (waitpid(pid, &status, fd >= 0 ? 0 : WNOHANG) <= 0) {
                if (fd >= 0)
                        return -errno;
                /* No pidfds: poll the old way. */
                for (unsigned i = 0; i < timeout_ms / 10; i++) {
                        if (waitpid(pid, &status, WNOHANG) == pid)
                                return status;
                        sleep_ms(10);
                }
                return -ETIMEDOUT;
        }
        return status;
}

/* sig, up to timeout_ms, then SIGKILL; reaped. Returns the wait status of the first exit, or
 * -ETIMEDOUT when it had to be killed. */
static int stop_pid(pid_t *pid, int sig, unsigned timeout_ms) {
        int status = 0;

        if (*pid <= 0)
                return 0;
        if (kill(*pid, sig) == 0) {
                status = child_wait(*pid, timeout_ms);
                if (status == -ETIMEDOUT) {
                        (void) kill(*pid, SIGKILL);
                        (void) child_wait(*pid, 5000);
                }
        } else
                (void) waitpid(*pid, NULL, WNOHANG);
        *pid = 0;
        return status;
}

static void describe_status(int status, char *buf, size_t size) {
        if (status == -ETIMEDOUT)
                snprintf(buf, size, "did not exit in time");
        else if (status < 0)
                snprintf(buf, size, "wait: %s", strerror(-status));
        else if (WIFEXITED(status))
                snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(buf, size, "killed by signal %d", WTERMSIG(status));
        else
                snprintf(buf, size, "status 0x%x", (unsigned) status);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

/* The end of the node's log on stderr: its node managers' last 20 lines (the workers' lines, one per
 * actor at each restart, counted only), and the node managers' last line in last (may be NULL). */
static void print_log_tail_last(const Node *n, char *last, size_t last_size) {
        char path[300], line[512];
        unsigned total = 0, skip, workers = 0;
        FILE *f;

        if (last && last_size > 0)
                last[0] = '\0';
        snprintf(path, sizeof(path), "%s/nodemgr.log", n->dir);
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "kactor-worker:", 14) != 0)
                        total++;
        rewind(f);
        skip = total > 20 ? total - 20 : 0;
        for (unsigned i = 0; fgets(line, sizeof(line), f);) {
                if (strncmp(line, "kactor-worker:", 14) == 0) {
                        workers++;
                        continue;
                }
                if (i++ < skip)
                        continue;
                fprintf(stderr, "%s node manager: %s", n->label, line);
                if (last && last_size > 0) {
                        snprintf(last, last_size, "%.250s", line);
                        last[strcspn(last, "\n")] = '\0';
                }
        }
        fprintf(stderr, "%s node manager: (and %u lines of its workers)\n", n->label, workers);
        fclose(f);
}

static void print_log_tail(const Node *n) {
        print_log_tail_last(n, NULL, 0);
}

/* The cgroups of a node (its --cgroup-name under every hierarchy's kactor/), written into paths;
 * how many exist. */
static unsigned node_cgroups(const Node *n, char paths[][CG_PATH_MAX], unsigned max) {
        char pattern[128];
        unsigned k = 0;
        glob_t g;

        if (!n->cgroup_name[0])
                return 0;
        snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/kactor/%s", n->cgroup_name);
        if (access(pattern, F_OK) >= 0 && k < max)
                snprintf(paths[k++], CG_PATH_MAX, "%s", pattern);
        snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/*/kactor/%s", n->cgroup_name);
        if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc && k < max; i++)
                        snprintf(paths[k++], CG_PATH_MAX, "%s", g.gl_pathv[i]);
                globfree(&g);
        }
        return k;
}

static int rmdir_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_DP)
                (void) rmdir(path);
        return 0;
}

/* Kills what is left in the node's cgroups and removes them. */
static void node_cgroups_remove(const Node *n) {
        char paths[16][CG_PATH_MAX], file[CG_PATH_MAX + 32], buf[256];
        unsigned k = node_cgroups(n, paths, 16);

        for (unsigned i = 0; i < k; i++) {
                snprintf(file, sizeof(file), "%.*s/cgroup.kill", CG_PATH_MAX - 1, paths[i]);
                int fd = open(file, O_WRONLY | O_CLOEXEC);
                if (fd >= 0) {
                        (void) !write(fd, "1", 1);
                        close(fd);
                }
                snprintf(file, sizeof(file), "%.*s/cgroup.events", CG_PATH_MAX - 1, paths[i]);
                for (unsigned j = 0; j < 50; j++) {
                        ssize_t len = -1;
                        fd = open(file, O_RDONLY | O_CLOEXEC);
                        if (fd >= 0) {
                                len = read(fd, buf, sizeof(buf) - 1);
                                close(fd);
                        }
                        if (len <= 0)
                                break;
                        buf[len] = '\0';
                        if (!strstr(buf, "populated 1"))
                                break;
                        sleep_ms(100);
                }
                (void) nftw(paths[i], rmdir_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
}

/* Children of ours that are none of the processes we started: the workers (and zygotes) that node
 * managers left when they went, which came to us (PR_SET_CHILD_SUBREAPER). Zombies are reaped; with
 * kill, live ones are killed and reaped. Returns how many were alive. */
static unsigned strays_collect(bool kill_them, char *example, size_t size) {
        unsigned alive = 0;
        struct dirent *de;
        DIR *d;

        d = opendir("/proc");
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char path[64], buf[512], *p, state;
                int ppid, fd;
                ssize_t len;
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end != '\0' || pid <= 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                len = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (len <= 0)
                        continue;
                buf[len] = '\0';
                p = strrchr(buf, ')');
                if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid != main_pid)
                        continue;
                if (pid == node_main.dbus_pid || pid == node_main.nodemgr_pid || pid == node_cold.dbus_pid ||
                    pid == node_cold.nodemgr_pid)
                        continue;
                if (state != 'Z') {
                        alive++;
                        if (example && alive == 1) {
                                char *comm = strchr(buf, '(');
                                snprintf(example, size, "%ld %.*s", pid, comm ? (int) (p - comm + 1) : 0,
                                         comm ?: "");
                        }
                        if (!kill_them)
                                continue;
                        (void) kill((pid_t) pid, SIGKILL);
                }
                (void) waitpid((pid_t) pid, NULL, 0);
        }
        closedir(d);
        return alive;
}

static void node_stop(Node *n) {
        stop_pid(&n->nodemgr_pid, SIGINT, 15000);
        n->bus = sd_bus_flush_close_unref(n->bus);
        stop_pid(&n->dbus_pid, SIGTERM, 5000);
        node_cgroups_remove(n);
        if (n->dir[0] && !getenv("KACTOR_BENCH_KEEP_NODES"))
                (void) nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        n->dir[0] = '\0';
}

static void stop_all(void) {
        if (getpid() != main_pid)
                return;
        node_stop(&node_main);
        node_stop(&node_cold);
        (void) strays_collect(true, NULL, 0);
}

static void on_signal(int sig) {
        Node *nodes[] = { &node_main, &node_cold };

        /* The node managers stop their actors on SIGINT; we do not wait for them. */
        if (getpid() != main_pid)
                _exit(128 + sig);
        for (unsigned i = 0; i < 2; i++) {
                if (nodes[i]->nodemgr_pid > 0)
                        kill(nodes[i]->nodemgr_pid, SIGINT);
                if (nodes[i]->dbus_pid > 0)
                        kill(nodes[i]->dbus_pid, SIGTERM);
        }
        /* The temporary directories go too, by an rm of their own: nftw() is no function for a
         * signal handler (fork() and execve() are). */
        if (!getenv("KACTOR_BENCH_KEEP_NODES") && fork() == 0) {
                char *argv[] = { "rm", "-rf", node_main.dir[0] ? node_main.dir : "/nonexistent",
                                 node_cold.dir[0] ? node_cold.dir : "/nonexistent", NULL };
                char *envp[] = { NULL };

                execve("/bin/rm", argv, envp);
                _exit(127);
        }
        _exit(128 + sig);
}

/* --- a private node ------------------------------------------------------------------------------- */

static void node_bus_start(const char *name, Node *n) {
        char path[320], conf_arg[340], log[300];
        const char *tmp = getenv("TMPDIR");
        FILE *f;
        int r;

        snprintf(n->dir, sizeof(n->dir), "%.200s/kactor-bench-restart-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
                 n->label);
        if (!mkdtemp(n->dir)) {
                n->dir[0] = '\0';
                bench_fail(name, NULL, -errno, "creating a temporary directory");
        }
        snprintf(n->run_dir, sizeof(n->run_dir), "%s/run", n->dir);
        (void) mkdir(n->run_dir, 0755);
        snprintf(n->socket, sizeof(n->socket), "%s/nodemgr.sock", n->run_dir);
        snprintf(n->cgroup_name, sizeof(n->cgroup_name), "kactor-bench-restart-%d-%s", (int) main_pid,
                 n->label);

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
        snprintf(n->bus_address, sizeof(n->bus_address), "unix:path=%s/bus", n->dir);
        snprintf(conf_arg, sizeof(conf_arg), "--config-file=%s", path);
        snprintf(log, sizeof(log), "%s/dbus.log", n->dir);
        char *argv[] = { "dbus-daemon", conf_arg, "--nofork", "--nopidfile", NULL };
        n->dbus_pid = spawn(argv, log, SIGTERM, false);
        if (n->dbus_pid < 0)
                bench_fail(name, NULL, -errno, "starting dbus-daemon");
        snprintf(path, sizeof(path), "%s/bus", n->dir);
        for (unsigned i = 0; i < 200 && access(path, F_OK) < 0 && waitpid(n->dbus_pid, NULL, WNOHANG) == 0;
             i++)
                sleep_ms(25);
        if (access(path, F_OK) < 0)
                bench_fail(name, NULL, -ENOENT, "dbus-daemon did not start (%s)", log);

        r = sd_bus_new(&n->bus);
        if (r >= 0)
                r = sd_bus_set_address(n->bus, n->bus_address);
        if (r >= 0)
                r = sd_bus_set_bus_client(n->bus, true);
        if (r >= 0)
                r = sd_bus_start(n->bus);
        /* Wakes the waits below when the node manager takes its name. */
        if (r >= 0)
                r = sd_bus_match_signal(n->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "NameOwnerChanged", NULL, NULL);
        if (r < 0)
                bench_fail(name, NULL, r, "connecting to the private bus %s", n->bus_address);
}

/* Starts a node manager on the node's runtime directory (what is there, it takes over). */
static void nodemgr_spawn(const char *name, Node *n) {
        char nodemgr[PATH_MAX + 32], modules[2 * PATH_MAX + 64], cpus[32], bus_arg[340], cgroup_arg[96],
                log[300];

        snprintf(nodemgr, sizeof(nodemgr), "%s/kactor-nodemgr", build);
        snprintf(modules, sizeof(modules), "%s/examples:%s/tests/modules", build, build);
        snprintf(cpus, sizeof(cpus), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
        snprintf(bus_arg, sizeof(bus_arg), "--bus=%s", n->bus_address);
        snprintf(cgroup_arg, sizeof(cgroup_arg), "--cgroup-name=%s", n->cgroup_name);
        snprintf(log, sizeof(log), "%s/nodemgr.log", n->dir);
        char *argv[] = { nodemgr,
                         bus_arg,
                         "--runtime-dir",
                         n->run_dir,
                         "--module-path",
                         modules,
                         "--num-cpus",
                         cpus,
                         "--cgroup-manager=cgroupfs",
                         cgroup_arg,
                         NULL };
        /* SIGINT, not SIGTERM: should we die, the actors go too. */
        n->nodemgr_pid = spawn(argv, log, SIGINT, true);
        if (n->nodemgr_pid < 0)
                bench_fail(name, NULL, -errno, "starting kactor-nodemgr");
        n->starts++;
}

/* Waits for something on the node's bus (the NameOwnerChanged match, a reply), up to ms. */
static void bus_wait(Node *n, unsigned ms) {
        while (sd_bus_process(n->bus, NULL) > 0)
                ;
        (void) sd_bus_wait(n->bus, (uint64_t) ms * 1000);
}

/* Until the node manager serves D-Bus: a Get of the actor's State says "alive" (actor_path), or
 * of the manager's Actors property succeeds (NULL). Event-driven: between attempts, waits for
 * traffic on the bus (its NameOwnerChanged) for at most 5 ms. Returns 0, or -ETIMEDOUT, or -ESRCH
 * when the node manager exited. With ret_first_ns, when the first Get was answered at all (the
 * State then in first_state). */
static int nodemgr_wait_bus(Node *n, const char *actor_path, uint64_t deadline, char *state,
                            size_t state_size, uint64_t *ret_first_ns, char *first_state,
                            size_t first_size) {
        if (ret_first_ns)
                *ret_first_ns = 0;
        for (;;) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                char *s = NULL;
                uint32_t u;
                int r;

                if (actor_path) {
                        r = sd_bus_get_property_string(n->bus, BUS_NAME, actor_path, ACTOR_IFACE, "State",
                                                       &e, &s);
                        if (r >= 0) {
                                snprintf(state, state_size, "%s", s);
                                if (ret_first_ns && *ret_first_ns == 0) {
                                        *ret_first_ns = bench_now_ns();
                                        snprintf(first_state, first_size, "%s", s);
                                }
                                if (strcmp(s, "alive") != 0)
                                        r = -EAGAIN;
                        } else
                                snprintf(state, state_size, "%s", e.name ?: strerror(-r));
                        free(s);
                } else
                        r = sd_bus_get_property_trivial(n->bus, BUS_NAME, BUS_PATH, BUS_IFACE, "Actors", &e,
                                                        'u', &u);
                sd_bus_error_free(&e);
                if (r >= 0)
                        return 0;
                if (waitpid(n->nodemgr_pid, NULL, WNOHANG) != 0)
                        return -ESRCH;
                if (bench_now_ns() >= deadline)
                        return -ETIMEDOUT;
                bus_wait(n, 5);
        }
}

/* Until the native socket answers a HELLO (kactor_connect()). Connection attempts are cheap, and
 * the socket appears before the bus name (native_setup() comes first): a short wait between them. */
static int nodemgr_wait_socket(Node *n, uint64_t deadline) {
        struct kactor_connect_opts opts = { .sz = sizeof(opts),
                                            .socket_path = n->socket,
                                            .reconnect_timeout_ms = -1 };
        kactor_client *c = NULL;

        for (;;) {
                if (kactor_connect(&opts, &c) >= 0) {
                        kactor_client_free(c);
                        return 0;
                }
                if (waitpid(n->nodemgr_pid, NULL, WNOHANG) != 0)
                        return -ESRCH;
                if (bench_now_ns() >= deadline)
                        return -ETIMEDOUT;
                bus_wait(n, 1);
        }
}

/* A node manager started on n, timed from fork() to serving D-Bus and its socket: ms. */
static double nodemgr_start_timed(const char *name, Node *n) {
        uint64_t t0 = bench_now_ns(), deadline = t0 + 30 * SEC_NS;
        char unused[8];
        int r;

        nodemgr_spawn(name, n);
        r = nodemgr_wait_bus(n, NULL, deadline, unused, sizeof(unused), NULL, NULL, 0);
        if (r >= 0)
                r = nodemgr_wait_socket(n, deadline);
        if (r < 0) {
                print_log_tail(n);
                bench_fail(name, NULL, r, "the %s node's node manager did not come up", n->label);
        }
        return ms_since(t0, bench_now_ns());
}

/* Ends the node manager with sig and waits for it; fails the benchmark when it does not exit (or,
 * on SIGTERM and SIGINT, exits with other than 0). */
static void nodemgr_end(const char *name, Node *n, int sig) {
        char why[64];
        int status = stop_pid(&n->nodemgr_pid, sig, 15000);

        if (status < 0 || (sig != SIGKILL && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))) {
                describe_status(status, why, sizeof(why));
                print_log_tail(n);
                bench_fail(name, NULL, 0, "the %s node's node manager (signal %d): %s", n->label, sig, why);
        }
}

static void actor_path(kactor_actor a, char *buf, size_t size) {
        char id[KACTOR_ID_STRING_MAX];

        kactor_id_to_string(a.id, id);
        snprintf(buf, size, BUS_PATH "/actor/%s", id);
}

/* --- nodemgr_restart_1000_actors ------------------------------------------------------------------ */

typedef struct CallAll {
        kactor_client *client;
        const kactor_actor *actors;
        kactor_ref *refs;
        unsigned n;
        int64_t want;
        uint64_t t_done;
        unsigned answered; /* results equal to want */
        int r;
        char msg[256];
} CallAll;

/* `increment` on every actor, one get of all. */
static void *call_all_run(void *userdata) {
        CallAll *a = userdata;
        kactor_value **values = NULL;
        int r = 0;

        a->answered = 0;
        a->msg[0] = '\0';
        for (unsigned i = 0; r >= 0 && i < a->n; i++)
                r = kactor_call(a->client, a->actors[i], "increment", NULL, &a->refs[i]);
        if (r >= 0)
                r = kactor_get(a->client, a->refs, a->n, 20 * SEC_NS / 1000, &values);
        a->t_done = bench_now_ns();
        a->r = r;
        if (r < 0) {
                snprintf(a->msg, sizeof(a->msg), "%s%s%s", strerror(-r), r == -EREMOTEIO ? ": " : "",
                         r == -EREMOTEIO ? kactor_client_error_message(a->client) : "");
                return NULL;
        }
        for (unsigned i = 0; i < a->n; i++) {
                if (kactor_value_type(values[i]) == KACTOR_TYPE_INT &&
                    kactor_value_get_int(values[i]) == a->want)
                        a->answered++;
                else if (!a->msg[0]) {
                        char got[64] = "another value";
                        if (kactor_value_type(values[i]) == KACTOR_TYPE_INT)
                                snprintf(got, sizeof(got), "%lld", (long long) kactor_value_get_int(values[i]));
                        snprintf(a->msg, sizeof(a->msg), "actor %u answered %s, expected %lld", i,
                                 kactor_value_is_error(values[i]) ? kactor_value_error_message(values[i]) : got,
                                 (long long) a->want);
                }
        }
        kactor_values_free(values, a->n);
        (void) kactor_ref_release(a->client, a->refs, a->n);
        return NULL;
}

typedef struct RestartRound {
        double total_ms, exit_ms, bus_ms, calls_ms;
        unsigned answered, same_pid, alive;
        pid_t nodemgr_pid;    /* the new one */
        double first_get_ms;  /* the first Get of State answered (restored, maybe not re-attached yet) */
        char first_state[32]; /* what it said */
} RestartRound;

/* The actors' Pids and States over D-Bus (not timed): how many have the pid in pids (or, with
 * record, store it there) and how many are alive. */
static void check_actors(const char *name, Node *n, const kactor_actor *actors, unsigned k, pid_t *pids,
                         bool record, unsigned *ret_same, unsigned *ret_alive, char *msg, size_t msg_size) {
        unsigned same = 0, alive = 0;

        for (unsigned i = 0; i < k; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                char path[128], *s = NULL;
                uint32_t pid = 0;
                int r;

                actor_path(actors[i], path, sizeof(path));
                r = sd_bus_get_property_trivial(n->bus, BUS_NAME, path, ACTOR_IFACE, "Pid", &e, 'u', &pid);
                if (r < 0 && msg && !msg[0])
                        snprintf(msg, msg_size, "actor %u: Pid: %s", i, e.message ?: strerror(-r));
                sd_bus_error_free(&e);
                if (record) {
                        if (r < 0 || pid == 0)
                                bench_fail(name, NULL, r, "reading actor %u's Pid", i);
                        pids[i] = (pid_t) pid;
                }
                if (r >= 0 && (pid_t) pid == pids[i])
                        same++;
                else if (msg && !msg[0])
                        snprintf(msg, msg_size, "actor %u: Pid %u, was %d", i, pid, (int) pids[i]);
                r = sd_bus_get_property_string(n->bus, BUS_NAME, path, ACTOR_IFACE, "State", &e, &s);
                if (r >= 0 && strcmp(s, "alive") == 0)
                        alive++;
                else if (msg && !msg[0])
                        snprintf(msg, msg_size, "actor %u: State %s", i, r >= 0 ? s : e.message ?: strerror(-r));
                sd_bus_error_free(&e);
                free(s);
        }
        *ret_same = same;
        *ret_alive = alive;
}

/* One restart of node_main with k actors: SIGTERM, the calls at once, a new node manager. */
static RestartRound restart_round(const char *name, kactor_client *c, const kactor_actor *actors,
                                  kactor_ref *refs, unsigned k, int64_t want, pid_t *pids) {
        CallAll call = { .client = c, .actors = actors, .refs = refs, .n = k, .want = want };
        RestartRound res = {};
        char path[128], state[128] = "", msg[256] = "", first_state[32] = "";
        uint64_t t0, t_exit, t_bus, t_first, deadline;
        pthread_t thread;
        int r;

        actor_path(actors[k / 2], path, sizeof(path));
        t0 = bench_now_ns();
        if (kill(node_main.nodemgr_pid, SIGTERM) < 0)
                bench_fail(name, c, -errno, "kill -TERM %d", (int) node_main.nodemgr_pid);
        r = -pthread_create(&thread, NULL, call_all_run, &call);
        if (r < 0)
                bench_fail(name, c, r, "starting the calling thread");
        r = child_wait(node_main.nodemgr_pid, 15000);
        t_exit = bench_now_ns();
        if (r < 0 || !WIFEXITED(r) || WEXITSTATUS(r) != 0) {
                describe_status(r, msg, sizeof(msg));
                print_log_tail(&node_main);
                bench_fail(name, NULL, 0, "the node manager on SIGTERM: %s",
                           msg); /* exits: the thread with it */
        }
        node_main.nodemgr_pid = 0;
        nodemgr_spawn(name, &node_main);
        deadline = bench_now_ns() + 30 * SEC_NS;
        r = nodemgr_wait_bus(&node_main, path, deadline, state, sizeof(state), &t_first, first_state,
                             sizeof(first_state));
        t_bus = bench_now_ns();
        (void) pthread_join(thread, NULL); /* bounded: kactor_get()'s timeout, the reconnection's */
        if (r < 0) {
                char last[300];

                print_log_tail_last(&node_main, last, sizeof(last));
                bench_fail(name, NULL, r,
                           "the new node manager did not serve D-Bus (State %s); its log ends: \"%s\"",
                           state, last);
        }
        if (call.r < 0) {
                print_log_tail(&node_main);
                bench_fail(name, c, 0, "calling the %u actors after the restart: %s", k, call.msg);
        }
        res.exit_ms = ms_since(t0, t_exit);
        res.bus_ms = ms_since(t0, t_bus);
        res.first_get_ms = t_first ? ms_since(t0, t_first) : res.bus_ms;
        snprintf(res.first_state, sizeof(res.first_state), "%s", first_state);
        res.calls_ms = ms_since(t0, call.t_done);
        res.total_ms = res.bus_ms > res.calls_ms ? res.bus_ms : res.calls_ms;
        res.answered = call.answered;
        res.nodemgr_pid = node_main.nodemgr_pid;
        check_actors(name, &node_main, actors, k, pids, false, &res.same_pid, &res.alive, msg, sizeof(msg));
        if (call.msg[0] || msg[0])
                printf("%-30s %15s  round answered %u/%u, same Pid %u, alive %u; first problem: %s\n", "",
                       "", res.answered, k, res.same_pid, res.alive, call.msg[0] ? call.msg : msg);
        return res;
}

/* The baselines on node_cold: a cold start, then a restart with no actors; ms each. */
static void cold_round(const char *name, double *ret_cold, double *ret_empty) {
        char path[400];

        /* Cold: nothing to take over (SIGINT removed the journal; make sure). */
        snprintf(path, sizeof(path), "%s/state", node_cold.run_dir);
        (void) unlink(path);
        *ret_cold = nodemgr_start_timed(name, &node_cold);
        uint64_t t0 = bench_now_ns();
        nodemgr_end(name, &node_cold, SIGTERM);
        double exit_ms = ms_since(t0, bench_now_ns());
        *ret_empty = exit_ms + nodemgr_start_timed(name, &node_cold);
        nodemgr_end(name, &node_cold, SIGINT);
}

static double cold_ms[MAX_ROUNDS], empty_ms[MAX_ROUNDS];
static unsigned n_cold;

static void report_baselines(void) {
        char figure[64], ratio[200];
        double lo, hi;

        range(cold_ms, n_cold, &lo, &hi);
        snprintf(figure, sizeof(figure), "%.1f ms", median(cold_ms, n_cold));
        snprintf(ratio, sizeof(ratio),
                 "fork to serving D-Bus and socket, no actors; median of %u, range %.1f-%.1f", n_cold, lo,
                 hi);
        bench_line("nodemgr_cold_start", figure, ratio, BENCH_INFO, "the baseline");
        range(empty_ms, n_cold, &lo, &hi);
        snprintf(figure, sizeof(figure), "%.1f ms", median(empty_ms, n_cold));
        snprintf(ratio, sizeof(ratio),
                 "SIGTERM to a new one serving, no actors; %.2fx cold start; range %.1f-%.1f",
                 median(empty_ms, n_cold) / median(cold_ms, n_cold), lo, hi);
        bench_line("nodemgr_restart_0_actors", figure, ratio, BENCH_INFO, "");
}

static void ensure_baselines(const char *name) {
        if (n_cold > 0)
                return;
        if (!node_cold.bus)
                node_bus_start(name, &node_cold);
        for (unsigned i = 0; i < 3; i++) {
                cold_round(name, &cold_ms[n_cold], &empty_ms[n_cold]);
                n_cold++;
        }
        report_baselines();
}

static void run_restart_actors(void) {
        const char *name = "nodemgr_restart_1000_actors";
        unsigned k = bench_env_unsigned("KACTOR_BENCH_RESTART_ACTORS", 1000);
        unsigned rounds = bench_env_unsigned("KACTOR_BENCH_RESTART_ROUNDS", 3);
        struct kactor_connect_opts opts = { .sz = sizeof(opts), .reconnect_timeout_ms = 20000 };
        RestartRound res[MAX_ROUNDS];
        double total[MAX_ROUNDS], med, lo, hi;
        char figure[64], ratio[400], count[32], created_msg[64];
        kactor_value **values = NULL;
        kactor_actor *actors;
        kactor_ref *refs;
        kactor_client *c;
        pid_t *pids;
        uint64_t t0;
        bool ok = true;
        int r;

        if (rounds > MAX_ROUNDS)
                rounds = MAX_ROUNDS;
        actors = calloc(k, sizeof(*actors));
        refs = calloc(k, sizeof(*refs));
        pids = calloc(k, sizeof(*pids));
        if (!actors || !refs || !pids)
                bench_fail(name, NULL, -ENOMEM, "allocating");

        node_bus_start(name, &node_main);
        node_bus_start(name, &node_cold);
        (void) nodemgr_start_timed(name, &node_main);
        opts.socket_path = node_main.socket;
        r = kactor_connect(&opts, &c);
        if (r < 0)
                bench_fail(name, NULL, r, "connecting to %s", node_main.socket);

        /* The actors, each called once (not timed). */
        t0 = bench_now_ns();
        for (unsigned i = 0; i < k; i++) {
                r = kactor_create_actor(c, bench_counter_module(), "Counter", NULL, NULL, &actors[i]);
                if (r < 0)
                        bench_fail(name, c, r, "creating Counter %u of %u (an fd or process limit?)", i + 1,
                                   k);
        }
        for (unsigned i = 0; i < k; i++) {
                r = kactor_call(c, actors[i], "increment", NULL, &refs[i]);
                if (r < 0)
                        bench_fail(name, c, r, "calling Counter %u", i + 1);
        }
        r = kactor_get(c, refs, k, 60 * SEC_NS / 1000, &values);
        if (r < 0)
                bench_fail(name, c, r, "waiting for %u Counters' first increment", k);
        for (unsigned i = 0; i < k; i++)
                if (kactor_value_type(values[i]) != KACTOR_TYPE_INT || kactor_value_get_int(values[i]) != 1)
                        bench_fail(name, c, 0, "Counter %u of %u answered %s, expected 1", i + 1, k,
                                   kactor_value_is_error(values[i]) ? kactor_value_error_message(values[i])
                                                                    : "another value");
        kactor_values_free(values, k);
        (void) kactor_ref_release(c, refs, k);
        snprintf(created_msg, sizeof(created_msg), "%.1f s", ms_since(t0, bench_now_ns()) / 1e3);
        {
                unsigned same, alive;
                check_actors(name, &node_main, actors, k, pids, true, &same, &alive, NULL, 0);
        }
        printf("%-30s %15s  (%s Counters created and called once in %s; node managers on their own buses)\n",
               "  setup", "", bench_format_count(k, count, sizeof(count)), created_msg);
        fflush(stdout);

        /* Rounds: a baseline pair on the other node, then a restart of this one. */
        for (unsigned round = 0; round < rounds; round++) {
                cold_round(name, &cold_ms[n_cold], &empty_ms[n_cold]);
                n_cold++;
                res[round] = restart_round(name, c, actors, refs, k, 2 + round, pids);
                total[round] = res[round].total_ms;
                ok &= res[round].answered == k && res[round].same_pid == k && res[round].alive == k;
                printf("%-30s %15s  round %u: %.0f ms (old exited %.0f, first Get %.0f (State %s), State alive %.0f, "
                       "%u calls answered %.0f ms after the kill); cold start %.0f ms; node manager PID %d\n",
                       "", "", round + 1, res[round].total_ms, res[round].exit_ms, res[round].first_get_ms,
                       res[round].first_state, res[round].bus_ms, k, res[round].calls_ms,
                       cold_ms[n_cold - 1], (int) res[round].nodemgr_pid);
                fflush(stdout);
        }
        report_baselines();

        med = median(total, rounds);
        range(total, rounds, &lo, &hi);
        {
                double exit_ms[MAX_ROUNDS], bus_ms[MAX_ROUNDS], calls_ms[MAX_ROUNDS];
                unsigned lost = 0, moved = 0, dead = 0;

                for (unsigned i = 0; i < rounds; i++) {
                        exit_ms[i] = res[i].exit_ms;
                        bus_ms[i] = res[i].bus_ms;
                        calls_ms[i] = res[i].calls_ms;
                        lost += k - res[i].answered;
                        moved += k - res[i].same_pid;
                        dead += k - res[i].alive;
                }
                snprintf(figure, sizeof(figure), "%.0f ms", med);
                snprintf(
                        ratio, sizeof(ratio),
                        "%.2fx cold start %.1f ms; exit %.0f, D-Bus %.0f, calls %.0f ms; range %.0f-%.0f, %u rounds; "
                        "%u lost, %u other Pid, %u not alive",
                        med / median(cold_ms, n_cold), median(cold_ms, n_cold), median(exit_ms, rounds),
                        median(bus_ms, rounds), median(calls_ms, rounds), lo, hi, rounds, lost, moved, dead);
        }
        if (k != 1000)
                snprintf(ratio + strlen(ratio), sizeof(ratio) - strlen(ratio), "; %u actors", k);
        bench_line(name, figure, ratio, ok && med <= 1000 ? BENCH_PASS : BENCH_MISS,
                   "target <= 1 s, none lost, same workers");

        kactor_client_free(c);
        free(actors);
        free(refs);
        free(pids);
}

/* --- restart_under_load --------------------------------------------------------------------------- */

typedef struct Caller {
        unsigned index;
        unsigned batch;
        kactor_client *client;
        kactor_actor journal;
        pthread_t thread;
        uint64_t *done_ns; /* when each batch's results came */
        size_t n_done, allocated;
        int64_t seq; /* calls acknowledged, each checked */
        int r;
        char msg[256];
} Caller;

static atomic_bool callers_stop;
static atomic_uint callers_running;

static void *caller_run(void *userdata) {
        Caller *c = userdata;
        kactor_ref refs[MAX_BATCH];
        kactor_value **values = NULL;
        int r = 0;

        while (!atomic_load(&callers_stop)) {
                for (unsigned i = 0; r >= 0 && i < c->batch; i++) {
                        kactor_value *args = kactor_value_new_list();
                        if (!args || kactor_value_list_append(args, kactor_value_new_int(c->index)) < 0 ||
                            kactor_value_list_append(args, kactor_value_new_int(c->seq + i)) < 0)
                                r = -ENOMEM;
                        if (r >= 0)
                                r = kactor_call(c->client, c->journal, "add", args, &refs[i]);
                        kactor_value_free(args);
                }
                if (r >= 0)
                        r = kactor_get(c->client, refs, c->batch, 20 * SEC_NS / 1000, &values);
                if (r < 0) {
                        snprintf(c->msg, sizeof(c->msg), "after %lld calls: %s%s%s", (long long) c->seq,
                                 strerror(-r), r == -EREMOTEIO ? ": " : "",
                                 r == -EREMOTEIO ? kactor_client_error_message(c->client) : "");
                        break;
                }
                uint64_t now = bench_now_ns();
                for (unsigned i = 0; i < c->batch; i++)
                        if (kactor_value_type(values[i]) != KACTOR_TYPE_INT ||
                            kactor_value_get_int(values[i]) != c->seq + i + 1) {
                                snprintf(c->msg, sizeof(c->msg), "call %lld answered %s, expected %lld",
                                         (long long) (c->seq + i),
                                         kactor_value_is_error(values[i])
                                                 ? kactor_value_error_message(values[i])
                                                 : kactor_value_type(values[i]) == KACTOR_TYPE_INT
                                                 ? "another count"
                                                 : "not an int",
                                         (long long) (c->seq + i + 1));
                                r = -EBADMSG;
                                break;
                        }
                kactor_values_free(values, c->batch);
                (void) kactor_ref_release(c->client, refs, c->batch);
                if (r < 0)
                        break;
                c->seq += c->batch;
                if (c->n_done == c->allocated) {
                        size_t n = c->allocated ? c->allocated * 2 : 4096;
                        uint64_t *p = realloc(c->done_ns, n * sizeof(uint64_t));
                        if (!p) {
                                r = -ENOMEM;
                                snprintf(c->msg, sizeof(c->msg), "out of memory");
                                break;
                        }
                        c->done_ns = p;
                        c->allocated = n;
                }
                c->done_ns[c->n_done++] = now;
        }
        c->r = r;
        atomic_fetch_sub(&callers_running, 1);
        return NULL;
}

/* The caller's Journal holds exactly [index, 0], [index, 1], ... [index, seq - 1]: 0, or -EBADMSG
 * with why in msg. */
static int caller_verify(Caller *c, char *msg, size_t size) {
        kactor_value *v = NULL;
        kactor_ref ref;
        size_t n;
        int r;

        r = kactor_call(c->client, c->journal, "entries", NULL, &ref);
        if (r >= 0)
                r = kactor_get1(c->client, ref, 20 * SEC_NS / 1000, &v);
        if (r < 0) {
                snprintf(msg, size, "entries(): %s", strerror(-r));
                return r;
        }
        (void) kactor_ref_release(c->client, &ref, 1);
        if (kactor_value_type(v) != KACTOR_TYPE_LIST) {
                snprintf(msg, size, "entries() answered %s",
                         kactor_value_is_error(v) ? kactor_value_error_message(v) : "not a list");
                kactor_value_free(v);
                return -EBADMSG;
        }
        n = kactor_value_list_size(v);
        r = 0;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const kactor_value *e = kactor_value_list_get(v, i);
                const kactor_value *a = kactor_value_list_size(e) == 2 ? kactor_value_list_get(e, 0) : NULL;
                const kactor_value *b = a ? kactor_value_list_get(e, 1) : NULL;

                if (!a || kactor_value_type(a) != KACTOR_TYPE_INT ||
                    kactor_value_type(b) != KACTOR_TYPE_INT || kactor_value_get_int(a) != c->index ||
                    kactor_value_get_int(b) != (int64_t) i) {
                        snprintf(msg, size, "entry %zu is [%lld, %lld], expected [%u, %zu]", i,
                                 a ? (long long) kactor_value_get_int(a) : -1LL,
                                 b ? (long long) kactor_value_get_int(b) : -1LL, c->index, i);
                        r = -EBADMSG;
                }
        }
        if (r >= 0 && n != (size_t) c->seq) {
                snprintf(msg, size, "%zu entries for %lld calls acknowledged", n, (long long) c->seq);
                r = -EBADMSG;
        }
        kactor_value_free(v);
        return r;
}

/* The longest gap between consecutive times of the sorted t[0..n) from the last one at or before
 * from up to (not past) until; its end in *ret_end. */
static double longest_gap(const uint64_t *t, size_t n, uint64_t from, uint64_t until, uint64_t *ret_end) {
        size_t i = 0;
        uint64_t prev, best = 0, end = from;

        while (i < n && t[i] <= from)
                i++;
        prev = i > 0 ? t[i - 1] : from;
        for (; i < n && t[i] <= until; i++) {
                if (t[i] - prev > best) {
                        best = t[i] - prev;
                        end = t[i];
                }
                prev = t[i];
        }
        if (i == n || t[i] > until) {
                /* Nothing more before `until`: the gap runs on to it. */
                if (until > prev && until - prev > best) {
                        best = until - prev;
                        end = until;
                }
        }
        *ret_end = end;
        return (double) best / 1e6;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static void run_restart_load(void) {
        const char *name = "restart_under_load";
        unsigned n_restarts = bench_env_unsigned("KACTOR_BENCH_RESTART_COUNT", 5);
        unsigned batch = bench_env_unsigned("KACTOR_BENCH_RESTART_INFLIGHT", 64);
        double gap_s = bench_env_double("KACTOR_BENCH_RESTART_GAP", 1.0);
        uint64_t t_kill[MAX_RESTARTS], t_ready[MAX_RESTARTS], t_start, t_end, win_end[MAX_RESTARTS];
        uint64_t journal_bytes[MAX_RESTARTS];
        pid_t new_pid[MAX_RESTARTS];
        double stall[MAX_RESTARTS], stall_all[MAX_RESTARTS];
        Caller callers[N_CALLERS] = {};
        char figure[64], ratio[400], count[32], msg[256] = "";
        uint64_t calls = 0, *merged;
        size_t n_merged = 0;
        unsigned bad = 0, done_restarts = 0;
        int r;

        if (n_restarts > MAX_RESTARTS)
                n_restarts = MAX_RESTARTS;
        if (batch > MAX_BATCH)
                batch = MAX_BATCH;
        ensure_baselines(name);
        /* A fresh node (the actors of the benchmark above stopped with their node manager). */
        if (node_main.nodemgr_pid > 0)
                nodemgr_end(name, &node_main, SIGINT);
        (void) strays_collect(false, NULL, 0); /* the workers it stopped that had come to us */
        if (!node_main.bus)
                node_bus_start(name, &node_main);
        (void) nodemgr_start_timed(name, &node_main);

        for (unsigned i = 0; i < N_CALLERS; i++) {
                struct kactor_connect_opts opts = { .sz = sizeof(opts),
                                                    .socket_path = node_main.socket,
                                                    .reconnect_timeout_ms = 20000 };
                Caller *c = &callers[i];

                c->index = i;
                c->batch = batch;
                r = kactor_connect(&opts, &c->client);
                if (r < 0)
                        bench_fail(name, NULL, r, "connecting to %s", node_main.socket);
                r = kactor_create_actor(c->client, "lineagemod", "Journal", NULL, NULL, &c->journal);
                if (r < 0)
                        bench_fail(name, c->client, r, "creating a Journal (lineagemod)");
        }
        atomic_store(&callers_stop, false);
        atomic_store(&callers_running, N_CALLERS);
        t_start = bench_now_ns();
        for (unsigned i = 0; i < N_CALLERS; i++) {
                r = -pthread_create(&callers[i].thread, NULL, caller_run, &callers[i]);
                if (r < 0)
                        bench_fail(name, NULL, r, "starting caller %u", i);
        }
        sleep_ms((unsigned) (gap_s * 1000));

        for (unsigned k = 0; k < n_restarts && atomic_load(&callers_running) > 0; k++) {
                int sig = k % 2 == 0 ? SIGTERM : SIGKILL;
                char unused[8], state[400];
                struct stat st;

                /* What the next node manager reads: the journal grows with every logged call. */
                snprintf(state, sizeof(state), "%s/state", node_main.run_dir);
                journal_bytes[k] = stat(state, &st) >= 0 ? (uint64_t) st.st_size : 0;
                t_kill[k] = bench_now_ns();
                if (kill(node_main.nodemgr_pid, sig) < 0)
                        bench_fail(name, NULL, -errno, "kill -%d %d", sig, (int) node_main.nodemgr_pid);
                r = child_wait(node_main.nodemgr_pid, 15000);
                if (r < 0 || (sig == SIGTERM && (!WIFEXITED(r) || WEXITSTATUS(r) != 0))) {
                        describe_status(r, msg, sizeof(msg));
                        print_log_tail(&node_main);
                        atomic_store(&callers_stop, true);
                        bench_fail(name, NULL, 0, "the node manager on signal %d: %s", sig, msg);
                }
                node_main.nodemgr_pid = 0;
                nodemgr_spawn(name, &node_main);
                r = nodemgr_wait_bus(&node_main, NULL, bench_now_ns() + 30 * SEC_NS, unused, sizeof(unused),
                                     NULL, NULL, 0);
                t_ready[k] = bench_now_ns();
                new_pid[k] = node_main.nodemgr_pid;
                if (r < 0) {
                        char last[300];

                        print_log_tail_last(&node_main, last, sizeof(last));
                        atomic_store(&callers_stop, true);
                        bench_fail(name, NULL, r,
                                   "the node manager started at restart %u did not serve D-Bus; its log "
                                   "ends: \"%s\"",
                                   k + 1, last);
                }
                done_restarts++;
                sleep_ms((unsigned) (gap_s * 1000));
        }
        atomic_store(&callers_stop, true);
        for (unsigned i = 0; i < N_CALLERS; i++)
                (void) pthread_join(callers[i].thread, NULL); /* bounded: kactor_get()'s timeout */
        t_end = bench_now_ns();

        /* Exactly once: every result was checked as it came; now each Journal's entries. */
        for (unsigned i = 0; i < N_CALLERS; i++) {
                Caller *c = &callers[i];
                char why[256] = "";

                calls += (uint64_t) c->seq;
                if (c->r < 0) {
                        bad++;
                        printf("%-30s %15s  caller %u: %s\n", "", "", i, c->msg);
                }
                if (caller_verify(c, why, sizeof(why)) < 0) {
                        bad++;
                        printf("%-30s %15s  caller %u: %s\n", "", "", i, why);
                }
        }

        /* Stalls: per restart, the longest any caller went without a result (from its last result
         * before the kill until the next kill), and the longest all of them did. */
        merged = calloc(calls / batch + 1, sizeof(uint64_t));
        if (!merged)
                bench_fail(name, NULL, -ENOMEM, "allocating");
        for (unsigned i = 0; i < N_CALLERS; i++) {
                memcpy(merged + n_merged, callers[i].done_ns, callers[i].n_done * sizeof(uint64_t));
                n_merged += callers[i].n_done;
        }
        qsort(merged, n_merged, sizeof(uint64_t), cmp_u64);
        for (unsigned k = 0; k < done_restarts; k++) {
                uint64_t until = k + 1 < done_restarts ? t_kill[k + 1] : t_end, end;

                stall[k] = 0;
                win_end[k] = t_kill[k];
                for (unsigned i = 0; i < N_CALLERS; i++) {
                        double g =
                                longest_gap(callers[i].done_ns, callers[i].n_done, t_kill[k], until, &end);
                        stall[k] = g > stall[k] ? g : stall[k];
                        win_end[k] = end > win_end[k] ? end : win_end[k];
                }
                stall_all[k] = longest_gap(merged, n_merged, t_kill[k], until, &end);
                printf("%-30s %15s  restart %u (%s): stall %.0f ms (all callers without a result %.0f ms); "
                       "new node manager (PID %d) serving D-Bus %.0f ms after the kill; journal %.1f MiB\n",
                       "", "", k + 1, k % 2 == 0 ? "SIGTERM" : "SIGKILL", stall[k], stall_all[k],
                       (int) new_pid[k], ms_since(t_kill[k], t_ready[k]),
                       (double) journal_bytes[k] / (1024.0 * 1024.0));
        }

        /* Calls/s outside the restarts: batches done outside [kill, last caller's end of stall]. */
        {
                uint64_t outside_ns = t_end - t_start, outside_calls = 0;

                for (unsigned k = 0; k < done_restarts; k++)
                        outside_ns -= win_end[k] - t_kill[k];
                for (size_t j = 0; j < n_merged; j++) {
                        bool in = false;
                        for (unsigned k = 0; k < done_restarts && !in; k++)
                                in = merged[j] > t_kill[k] && merged[j] <= win_end[k];
                        if (!in)
                                outside_calls += batch;
                }
                double rate = outside_ns > 0 ? outside_calls / ((double) outside_ns / 1e9) : 0;
                double lo = 0, hi = 0, mean = 0, mean_all = 0;

                for (unsigned k = 0; k < done_restarts; k++) {
                        mean += stall[k] / done_restarts;
                        mean_all += stall_all[k] / done_restarts;
                }
                if (done_restarts > 0)
                        range(stall, done_restarts, &lo, &hi);

                snprintf(figure, sizeof(figure), "%u bad", bad);
                snprintf(ratio, sizeof(ratio),
                         "%s calls by %u callers, %u restarts (TERM/KILL): none lost, none twice",
                         bench_format_count((double) calls, count, sizeof(count)), N_CALLERS, done_restarts);
                if (bad > 0)
                        snprintf(ratio, sizeof(ratio),
                                 "%s calls by %u callers, %u restarts: %u callers lost, "
                                 "duplicated or failed calls",
                                 bench_format_count((double) calls, count, sizeof(count)), N_CALLERS,
                                 done_restarts, bad);
                bench_line(name, figure, ratio,
                           bad == 0 && done_restarts == n_restarts ? BENCH_PASS : BENCH_MISS,
                           "target: 0 acknowledged calls lost or duplicated");

                snprintf(figure, sizeof(figure), "%.0f ms", mean);
                snprintf(ratio, sizeof(ratio),
                         "mean of %u restarts, range %.0f-%.0f; all callers %.0f ms; %.2fx cold start%s",
                         done_restarts, lo, hi, mean_all, n_cold ? mean / median(cold_ms, n_cold) : 0,
                         bad > 0 ? "; callers failed: until the end" : "");
                bench_line("restart_under_load_stall", figure, ratio, BENCH_INFO,
                           "longest gap without a result");

                snprintf(figure, sizeof(figure), "%s/s", bench_format_count(rate, count, sizeof(count)));
                if (bench_baseline_pipe_rate() > 0)
                        snprintf(ratio, sizeof(ratio),
                                 "%.4fx pipelined socket; outside restarts, %u callers, %u in flight each",
                                 rate / bench_baseline_pipe_rate(), N_CALLERS, batch);
                else
                        snprintf(ratio, sizeof(ratio), "outside restarts, %u callers, %u in flight each",
                                 N_CALLERS, batch);
                bench_line("restart_under_load_rate", figure, ratio, BENCH_INFO, "");
        }
        free(merged);
        for (unsigned i = 0; i < N_CALLERS; i++) {
                kactor_client_free(callers[i].client);
                free(callers[i].done_ns);
        }
}

/* --- the end: everything stopped, nothing left ---------------------------------------------------- */

/* Stops both nodes (the node managers with SIGINT: their actors stop too), then looks for what
 * should be gone: processes that came to us and cgroups of our names. Prints what it found and
 * removes it. Returns whether something was left. */
static bool finish(void) {
        char paths[16][CG_PATH_MAX], example[300] = "";
        unsigned cgroups = 0, strays;
        int status_main, status_cold;
        char why_main[64], why_cold[64];

        status_main = stop_pid(&node_main.nodemgr_pid, SIGINT, 20000);
        status_cold = stop_pid(&node_cold.nodemgr_pid, SIGINT, 20000);
        /* Workers the node managers stopped exit as they do; give them a moment to be reaped. */
        strays = strays_collect(false, example, sizeof(example));
        for (unsigned i = 0; strays > 0 && i < 30; i++) {
                sleep_ms(100);
                strays = strays_collect(false, example, sizeof(example));
        }
        cgroups += node_cgroups(&node_main, paths, 16);
        cgroups += node_cgroups(&node_cold, paths, 16);
        describe_status(status_main, why_main, sizeof(why_main));
        describe_status(status_cold, why_cold, sizeof(why_cold));
        if (strays > 0 || cgroups > 0 || status_main != 0 || status_cold != 0) {
                printf("%-30s ERROR: after SIGINT (node managers: %s, %s): %u processes left (%s), %u cgroups left\n",
                       "restart cleanup", why_main, why_cold, strays, example, cgroups);
                (void) strays_collect(true, NULL, 0);
        }
        stop_all();
        return strays > 0 || cgroups > 0;
}

int main(int argc, char *argv[]) {
        bool actors = wanted(argc, argv, "nodemgr_restart_1000_actors"),
             load = wanted(argc, argv, "restart_under_load");

        if (!actors && !load)
                return 0;
        signal(SIGPIPE, SIG_IGN);
        main_pid = getpid();
        build_dir(build, sizeof(build));
        /* Workers a node manager leaves behind come to us, so that none outlives us unseen. */
        (void) prctl(PR_SET_CHILD_SUBREAPER, 1);
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        atexit(stop_all); /* bench_fail() exits too */

        if (actors)
                run_restart_actors();
        if (load)
                run_restart_load();
        return finish() ? 1 : 0;
}

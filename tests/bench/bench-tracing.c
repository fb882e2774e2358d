/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The cost of tracing (bpf/, docs/tracing.md), measured in one run against the node manager run.sh
 * started: 1_1_actor_calls_async and n_n_actor_calls_async (run by bench-actor-calls, next to this
 * program) with tracing off (io.kactor.Trace1.SetEnabled(false): every program detached, no call
 * counted), always-on (the histograms) and timeline mode (a Timeline recording spans the benchmark).
 * The modes take turns, KACTOR_BENCH_TRACE_ROUNDS times (default 3), so that the load of a shared
 * machine falls on all of them alike, and each mode's median rate counts. Targets: at most 3%
 * throughput loss always-on, 15% in timeline mode. Then one more run per mode with
 * kernel.bpf_stats_enabled on (restored after; the accounting has a cost of its own, so the rates
 * are not taken from it): each of this node manager's programs' run_time_ns/run_cnt.
 *
 * Needs $KACTOR_SOCKET, $KACTOR_BENCH_BUS (the node manager's bus) and root.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <systemd/sd-bus.h>

#include "bench-util.h"

#define TRACE_IFACE "io.kactor.Trace1"
#define BUS_NAME "io.kactor.NodeManager1"
#define BUS_PATH "/io/kactor/NodeManager1"

enum { MODE_OFF, MODE_ON, MODE_TIMELINE, _MODE_MAX };
static const char *const mode_names[_MODE_MAX] = { "off", "always-on", "timeline" };
static const char *const programs[] = { "sched_wakeup", "sched_wakeup_new", "sched_switch" };
#define N_PROGRAMS (sizeof(programs) / sizeof(programs[0]))

typedef struct ProgStats {
        uint64_t run_time_ns, run_cnt;
} ProgStats;

static sd_bus *bus_open(void) {
        const char *address = getenv("KACTOR_BENCH_BUS");
        sd_bus *bus = NULL;
        if (!address || sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, address) < 0 ||
            sd_bus_set_bus_client(bus, true) < 0 || sd_bus_start(bus) < 0)
                return sd_bus_unref(bus);
        return bus;
}

static int set_enabled(sd_bus *bus, bool on) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, TRACE_IFACE, "SetEnabled", &error, NULL, "b", (int) on);
        if (r < 0)
                fprintf(stderr, "SetEnabled: %s\n", error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        return r;
}

/* The ids of maps pinned in our node manager's directory: its programs use them (other node
 * managers on the host, such as those of tests running beside us, have programs of the same names). */
static uint32_t our_maps[2];

static void find_our_maps(sd_bus *bus) {
        static const char *const names[] = { "sched", "actors" };
        char *pin = NULL;
        if (sd_bus_get_property_string(bus, BUS_NAME, BUS_PATH, TRACE_IFACE, "PinPath", NULL, &pin) < 0)
                return;
        for (size_t i = 0; i < 2; i++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", pin, names[i]);
                int fd = bpf_obj_get(path);
                struct bpf_map_info info = {};
                uint32_t len = sizeof(info);
                if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
                        our_maps[i] = info.id;
                if (fd >= 0)
                        close(fd);
        }
        free(pin);
}

static bool prog_is_ours(int fd) {
        uint32_t ids[64];
        struct bpf_prog_info info = { .nr_map_ids = 64, .map_ids = (uint64_t) (uintptr_t) ids };
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
                return false;
        for (uint32_t i = 0; i < info.nr_map_ids && i < 64; i++)
                if (ids[i] && (ids[i] == our_maps[0] || ids[i] == our_maps[1]))
                        return true;
        return false;
}

/* The run counters of our node manager's tracing programs. */
static void prog_stats(ProgStats ret[N_PROGRAMS]) {
        uint32_t id = 0;
        memset(ret, 0, sizeof(ProgStats) * N_PROGRAMS);
        while (bpf_prog_get_next_id(id, &id) == 0) {
                int fd = bpf_prog_get_fd_by_id(id);
                if (fd < 0)
                        continue;
                struct bpf_prog_info info = {};
                uint32_t len = sizeof(info);
                if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
                        for (size_t i = 0; i < N_PROGRAMS; i++)
                                if (strncmp(info.name, programs[i], sizeof(info.name) - 1) == 0 && prog_is_ours(fd)) {
                                        ret[i].run_time_ns += info.run_time_ns;
                                        ret[i].run_cnt += info.run_cnt;
                                }
                close(fd);
        }
}

/* The node manager's CPU time so far (ns, all its threads): on a shared machine its CPU time per call
 * is a steadier measure of what tracing adds than the rate, which other tenants' load swings. */
static pid_t nodemgr_pid;

static uint64_t nodemgr_cpu_ns(void) {
        return bench_proc_cpu_ns(nodemgr_pid);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof(double), cmp_double);
        return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs bench-actor-calls NAME and returns the rate it printed (calls/s). */
static double run_calls(const char *self_dir, const char *name) {
        char cmd[8192], line[512];
        double rate = -1;
        snprintf(cmd, sizeof(cmd), "%s/bench-actor-calls %s", self_dir, name);
        FILE *p = popen(cmd, "re");
        if (!p)
                return -1;
        while (fgets(line, sizeof(line), p)) {
                size_t n = strlen(name);
                if (strncmp(line, name, n) != 0 || line[n] != ' ')
                        continue;
                /* "name   301,249/s  (...)": drop the thousands separators. */
                char digits[64] = "";
                size_t k = 0;
                for (const char *s = line + n; *s && *s != '/' && k + 1 < sizeof(digits); s++)
                        if ((*s >= '0' && *s <= '9') || *s == '.')
                                digits[k++] = *s;
                digits[k] = 0;
                rate = strtod(digits, NULL);
        }
        if (pclose(p) != 0)
                return -1;
        return rate;
}

/* Runs one benchmark in one mode; adds the programs' counters to stats (when not NULL), sets
 * *ret_cpu to the node manager's CPU time per call (ns). Returns the rate, or < 0. */
static double run_mode(sd_bus *bus, const char *self_dir, int mode, const char *bench, ProgStats *stats,
                       double *ret_cpu) {
        ProgStats before[N_PROGRAMS], after[N_PROGRAMS];
        sd_bus_message *pending = NULL;
        sd_bus_slot *slot = NULL;
        double span = bench_warmup_s() + bench_duration_s() + 2.0; /* a Timeline covering one run */
        int devnull = -1;
        double rate = -1;

        if (set_enabled(bus, mode != MODE_OFF) < 0)
                return -1;
        if (mode == MODE_TIMELINE) {
                devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (sd_bus_message_new_method_call(bus, &pending, BUS_NAME, BUS_PATH, TRACE_IFACE, "Timeline") < 0 ||
                    sd_bus_message_append(pending, "ht", devnull, (uint64_t) (span * 1e6)) < 0 ||
                    sd_bus_call_async(bus, &slot, pending, NULL, NULL, 0) < 0)
                        goto finish;
                (void) sd_bus_flush(bus);
                /* Recording before the benchmark starts. */
                for (unsigned i = 0; i < 100; i++) {
                        int tl = 0;
                        if (sd_bus_get_property_trivial(bus, BUS_NAME, BUS_PATH, TRACE_IFACE, "TimelineActive", NULL,
                                                        'b', &tl) < 0 || tl)
                                break;
                        usleep(10000);
                }
        }
        if (stats)
                prog_stats(before);
        uint64_t cpu = nodemgr_cpu_ns();
        rate = run_calls(self_dir, bench);
        /* The calls of the warm-up and of the measurement, at about the rate measured. */
        if (ret_cpu && rate > 0)
                *ret_cpu = (double) (nodemgr_cpu_ns() - cpu) / (rate * (bench_warmup_s() + bench_duration_s()));
        if (stats) {
                prog_stats(after);
                for (size_t i = 0; i < N_PROGRAMS; i++) {
                        stats[i].run_time_ns += after[i].run_time_ns - before[i].run_time_ns;
                        stats[i].run_cnt += after[i].run_cnt - before[i].run_cnt;
                }
        }
        if (slot) {
                /* Wait for the recording to end before the next mode. */
                sd_bus_slot_unref(slot);
                for (unsigned i = 0; i < 100; i++) {
                        int tl = 1;
                        if (sd_bus_get_property_trivial(bus, BUS_NAME, BUS_PATH, TRACE_IFACE, "TimelineActive", NULL,
                                                        'b', &tl) < 0 || !tl)
                                break;
                        usleep(100000);
                }
        }
finish:
        sd_bus_message_unref(pending);
        if (devnull >= 0)
                close(devnull);
        return rate;
}

#define MAX_ROUNDS 16

int main(int argc, char *argv[]) {
        char self_dir[4096];
        ssize_t n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
        if (n <= 0) {
                printf("bench-tracing  ERROR: cannot find myself\n");
                return BENCH_EXIT_ERROR;
        }
        self_dir[n] = 0;
        *strrchr(self_dir, '/') = 0;

        sd_bus *bus = bus_open();
        if (!bus) {
                printf("bench-tracing  ERROR: cannot connect to $KACTOR_BENCH_BUS\n");
                return BENCH_EXIT_ERROR;
        }
        int enabled = 0;
        if (sd_bus_get_property_trivial(bus, BUS_NAME, BUS_PATH, TRACE_IFACE, "Enabled", NULL, 'b', &enabled) < 0 ||
            !enabled) {
                printf("tracing_overhead  ERROR: tracing is off in the node manager (needs root)\n");
                return BENCH_EXIT_ERROR;
        }
        find_our_maps(bus);
        uint32_t pid = 0;
        sd_bus_creds *creds = NULL;
        if (sd_bus_get_name_creds(bus, BUS_NAME, SD_BUS_CREDS_PID, &creds) >= 0 &&
            sd_bus_creds_get_pid(creds, (pid_t *) &pid) >= 0)
                nodemgr_pid = (pid_t) pid;
        sd_bus_creds_unref(creds);

        static const char *const benches[] = { "1_1_actor_calls_async", "n_n_actor_calls_async" };
        double rates[2][_MODE_MAX][MAX_ROUNDS] = {}, cpu[2][_MODE_MAX][MAX_ROUNDS] = {};
        ProgStats per_mode[_MODE_MAX][N_PROGRAMS] = {};
        unsigned rounds = bench_env_unsigned("KACTOR_BENCH_TRACE_ROUNDS", 3);
        int fail = 0;

        if (rounds < 1)
                rounds = 1;
        if (rounds > MAX_ROUNDS)
                rounds = MAX_ROUNDS;
        /* Interleaved: every round runs each benchmark in each mode, the mode order turning. */
        for (unsigned round = 0; round < rounds && !fail; round++)
                for (size_t b = 0; b < 2 && !fail; b++)
                        for (int k = 0; k < _MODE_MAX && !fail; k++) {
                                int mode = (k + round) % _MODE_MAX;
                                double rate = run_mode(bus, self_dir, mode, benches[b], NULL, &cpu[b][mode][round]);
                                if (rate <= 0) {
                                        printf("%s  ERROR: %s failed in mode %s\n", benches[b], benches[b],
                                               mode_names[mode]);
                                        fail = 1;
                                }
                                rates[b][mode][round] = rate;
                        }

        /* The programs' own cost, with the kernel's accounting on for these runs only. */
        char old_stats[16] = "0";
        int sfd = open("/proc/sys/kernel/bpf_stats_enabled", O_RDWR | O_CLOEXEC);
        if (sfd >= 0) {
                ssize_t k = read(sfd, old_stats, sizeof(old_stats) - 1);
                old_stats[k > 0 ? k : 0] = 0;
                (void) !pwrite(sfd, "1\n", 2, 0);
        }
        for (int mode = MODE_ON; mode < _MODE_MAX && !fail; mode++)
                for (size_t b = 0; b < 2 && !fail; b++)
                        if (run_mode(bus, self_dir, mode, benches[b], per_mode[mode], NULL) <= 0)
                                fail = 1;
        (void) set_enabled(bus, true);
        if (sfd >= 0) {
                (void) !pwrite(sfd, old_stats, strlen(old_stats), 0);
                close(sfd);
        }
        if (fail)
                return BENCH_EXIT_ERROR;

        char buf[64];
        for (size_t b = 0; b < 2; b++) {
                double med[_MODE_MAX];
                for (int mode = 0; mode < _MODE_MAX; mode++) {
                        /* Every round's rate, for judging the noise. */
                        printf("%s_%s_rounds ", benches[b], mode_names[mode]);
                        for (unsigned i = 0; i < rounds; i++)
                                printf(" %s", bench_format_count(rates[b][mode][i], buf, sizeof(buf)));
                        printf("  info\n");
                        med[mode] = median(rates[b][mode], rounds);
                }
                double off = med[MODE_OFF];
                for (int mode = MODE_ON; mode < _MODE_MAX; mode++) {
                        double loss = off > 0 ? 100.0 * (off - med[mode]) / off : 0;
                        double target = mode == MODE_ON ? 3.0 : 15.0;
                        char name[96];
                        snprintf(name, sizeof(name), "%s_trace_%s", benches[b], mode == MODE_ON ? "on" : "timeline");
                        printf("%-36s %14s/s  (%.1f%% loss vs %s/s off; medians of %u)%*s %s  target <= %.0f%% loss\n",
                               name, bench_format_count(med[mode], buf, sizeof(buf)), loss,
                               bench_format_count(off, buf + 32, 32), rounds, 4, "", loss <= target ? "PASS" : "MISS",
                               target);
                }
                double cpu_off = median(cpu[b][MODE_OFF], rounds);
                for (int mode = MODE_ON; mode < _MODE_MAX && cpu_off > 0; mode++) {
                        double c = median(cpu[b][mode], rounds);
                        char name[96];
                        snprintf(name, sizeof(name), "%s_nodemgr_cpu_%s", benches[b],
                                 mode == MODE_ON ? "on" : "timeline");
                        printf("%-36s %10.0f ns/call  (%+.1f%% vs %.0f ns/call off; medians of %u)  info\n", name, c,
                               100.0 * (c - cpu_off) / cpu_off, cpu_off, rounds);
                }
        }
        for (int mode = MODE_ON; mode < _MODE_MAX; mode++)
                for (size_t i = 0; i < N_PROGRAMS; i++) {
                        const ProgStats *st = &per_mode[mode][i];
                        char name[96];
                        snprintf(name, sizeof(name), "bpf_%s_%s", programs[i], mode == MODE_ON ? "on" : "timeline");
                        printf("%-36s %10.0f ns/run  (%s runs)  info\n", name,
                               st->run_cnt ? (double) st->run_time_ns / (double) st->run_cnt : 0.0,
                               bench_format_count((double) st->run_cnt, buf, sizeof(buf)));
                }
        sd_bus_flush_close_unref(bus);
        return 0;
}

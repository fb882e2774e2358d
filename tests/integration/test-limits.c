/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Limits, each tested by exceeding it (docs/isolation.md "Limits"), on the host as it is: the cgroupfs
 * backend, on the CI machine hybrid cgroups (memory, cpu and pids are v1 controllers there). An actor
 * over its MemoryMax is killed by the kernel's OOM killer, and its DeathCause, the ActorDied error of
 * its calls and, when it restarts, the log say so; one under it works. A fork loop stops at TasksMax
 * with EAGAIN and the actor answers afterwards. NumCpus is a CPU quota: two spinning threads get at
 * most about half a CPU. The worker is in its limited cgroups before the module's constructor runs.
 * Without a cgroup manager every limit is refused, naming it (MemoryMax there: test-isolation.c).
 *
 * The systemd backend's limits need systemd as PID 1, which this host does not have: its enforcement
 * or refusal is tested in a systemd node (tests/integration/systemd-node.sh, in nspawn).
 */

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../skip.h"
#include "bus-value.h"
#include "harness.h"
#include "macro.h"

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER
#define ACTOR HARNESS_IFACE_ACTOR

#define MIB (UINT64_C(1) << 20)
/* Above what the worker itself holds (more under ASan), far below what the test allocates. */
#define MEMORY_MAX (64 * MIB)
#define MEMORY_OVER "[268435456]" /* 256 MiB */
#define MEMORY_UNDER "[16777216]" /* 16 MiB */
#define TASKS_MAX 8
/* NumCpus 0.5 for 1 s with two spinning threads: 0.5 s of CPU, plus at most one period's quota
 * (50 ms) for where the window starts. Unbounded, two threads would get up to 2 s. */
#define SPIN_MS 1000
#define SPIN_CPU_MAX_USEC 750000

static Harness *h;

static void need_root(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (cgroups)");
        if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) < 0 &&
            access("/sys/fs/cgroup/cgroup.procs", F_OK) < 0)
                kactor_skip_test("no cgroup v2 hierarchy");
}

static void start(const char *arg) {
        const char *const args[] = { arg, NULL };
        need_root();
        h = harness_start(arg ? &(HarnessOptions) { .extra_args = args } : NULL);
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(limits, .fini = teardown, .timeout = 60);

static const char *v2_mount(void) {
        return access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0 ? "/sys/fs/cgroup"
                                                                      : "/sys/fs/cgroup/unified";
}

/* CreateActor(isomod, Probe) over D-Bus, the options given as sd-bus a{sv} arguments: their number,
 * then each ("MemoryMax", "t", (uint64_t) n, ...). Returns the actor's path, or NULL with *e set. */
static const char *create(sd_bus_error *e, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *bus = harness_bus(h);
        const char *path;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor");
        cr_assert_geq(r, 0);
        cr_assert_geq(sd_bus_message_append(m, "ssav", harness_module(h, "isomod"), "Probe", 0), 0);
        va_start(ap, e);
        r = sd_bus_message_appendv(m, "a{sv}", ap);
        va_end(ap);
        cr_assert_geq(r, 0, "appending the options: %s", strerror(-r));
        if (sd_bus_call(bus, m, HARNESS_TIMEOUT_USEC, e, &reply) < 0)
                return NULL;
        cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
        return harness_printf(h, "%s", path);
}

#define create_ok(...)                                                                                  \
        ({                                                                                              \
                sd_bus_error _e = SD_BUS_ERROR_NULL;                                                    \
                const char *_p = create(&_e, __VA_ARGS__);                                              \
                cr_assert_not_null(_p, "CreateActor: %s: %s\nnodemgr log:\n%s", _e.name, _e.message,    \
                                   harness_nodemgr_log(h));                                             \
                _p;                                                                                     \
        })

/* Asserts that CreateActor fails with NotSupported, naming the limit. */
#define assert_refused(limit, ...)                                                                      \
        do {                                                                                            \
                sd_bus_error _e = SD_BUS_ERROR_NULL;                                                    \
                const char *_p = create(&_e, __VA_ARGS__);                                              \
                cr_assert_null(_p, "created an actor whose %s cannot be applied", limit);               \
                cr_assert(sd_bus_error_has_name(&_e, "io.kactor.Error.NotSupported"), "%s: %s", _e.name, \
                          _e.message);                                                                  \
                cr_assert(strstr(_e.message, limit), "the refusal does not name %s: %s", limit, _e.message); \
                sd_bus_error_free(&_e);                                                                 \
        } while (0)

static kactor_value *call(const char *path, const char *method, const char *args_json) {
        kactor_type t;
        kactor_id id;
        cr_assert_eq(bus_path_parse(path, &t, &id), 0);
        return harness_call(harness_client(h), (kactor_actor) { id }, method, args_json);
}

static int64_t map_int(const kactor_value *m, const char *key) {
        const kactor_value *v = kactor_value_map_get(m, key);
        cr_assert(v && kactor_value_type(v) == KACTOR_TYPE_INT, "no %s in %s", key, harness_value_str(h, m));
        return kactor_value_get_int(v);
}

/* A limit file of the actor's cgroup: on v2 where the controller is there, else in its v1 hierarchy. */
static char *limit_file(const char *cg, const char *v2_file, const char *v1_ctrl, const char *v1_file) {
        char *p;
        cr_assert_geq(asprintf(&p, "%s%s/%s", v2_mount(), cg, v2_file), 0);
        if (access(p, F_OK) >= 0)
                return p;
        free(p);
        cr_assert_geq(asprintf(&p, "/sys/fs/cgroup/%s%s/%s", v1_ctrl, cg, v1_file), 0);
        return p;
}

/* The first line of a file, without its newline ("" for an empty file). */
static char *read_line(const char *path) {
        char *s = NULL;
        size_t n = 0;
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s: %m", path);
        if (getline(&s, &n, f) < 0) {
                free(s);
                s = strdup("");
        }
        fclose(f);
        cr_assert_not_null(s);
        s[strcspn(s, "\n")] = 0;
        return s;
}

/* Whether a /proc/PID/cgroup text puts the process in path for controller ctrl (a v1 line naming it),
 * or, for ctrl NULL, in the v2 hierarchy. -1 when no line is about ctrl. */
static int cgroup_text_has(const char *text, const char *ctrl, const char *path) {
        _cleanup_free_ char *copy = strdup(text);
        char *save = NULL;
        cr_assert_not_null(copy);
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
                if (!p)
                        continue;
                *c++ = 0;
                *p++ = 0;
                bool about = false;
                if (!ctrl)
                        about = streq(line, "0") && !*c;
                else
                        for (char *s2 = NULL, *w = strtok_r(c, ",", &s2); w; w = strtok_r(NULL, ",", &s2))
                                about |= streq(w, ctrl);
                if (about)
                        return streq(p, path);
        }
        return -1;
}

/* Whether ctrl ("memory", "pids") is a v1 controller here: then the actor has a cgroup in its
 * hierarchy. */
static bool v1_controller(const char *ctrl) {
        _cleanup_free_ char *p = NULL, *v2 = NULL;
        cr_assert_geq(asprintf(&p, "/sys/fs/cgroup/%s/cgroup.procs", ctrl), 0);
        cr_assert_geq(asprintf(&v2, "%s/cgroup.controllers", v2_mount()), 0);
        _cleanup_free_ char *controllers = read_line(v2);
        bool on_v2 = false;
        char *save = NULL;
        for (char *w = strtok_r(controllers, " ", &save); w; w = strtok_r(NULL, " ", &save))
                on_v2 |= streq(w, ctrl);
        return !on_v2 && access(p, F_OK) >= 0;
}

static const char *nodemgr_log_all(void) {
        char *s = NULL;
        size_t n = 0;
        FILE *f = fopen(h->nodemgr_log, "re");
        cr_assert_not_null(f, "%s: %m", h->nodemgr_log);
        if (getdelim(&s, &n, 0, f) < 0)
                s = strdup("");
        fclose(f);
        return harness_keep(h, s);
}

/* --- memory ------------------------------------------------------------------------------------ */

Test(limits, worker_is_in_its_limited_cgroups_before_module_code_runs) {
        start(NULL);
        const char *a = create_ok(2, "MemoryMax", "t", MEMORY_MAX, "TasksMax", "t", (uint64_t) 64);
        kactor_value *v = call(a, "cgroup_at_init", NULL);
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_STRING, "%s", harness_value_str(h, v));
        const char *at_init = harness_printf(h, "%s", kactor_value_get_string(v, NULL));
        kactor_value_free(v);
        const char *cg = harness_property_string(h, a, ACTOR, "ControlGroup");

        /* The constructor is the module's first code: it ran in the actor's cgroups, limits applied. */
        cr_assert_eq(cgroup_text_has(at_init, NULL, cg), 1, "at init: %s; ControlGroup %s", at_init, cg);
        if (v1_controller("memory"))
                cr_assert_eq(cgroup_text_has(at_init, "memory", cg), 1, "memory at init: %s", at_init);
        if (v1_controller("pids"))
                cr_assert_eq(cgroup_text_has(at_init, "pids", cg), 1, "pids at init: %s", at_init);

        /* So is every thread of the worker (v1 moves threads one by one). */
        pid_t pid = (pid_t) harness_property_uint(h, a, ACTOR, "Pid");
        _cleanup_free_ char *tasks = NULL;
        cr_assert_geq(asprintf(&tasks, "/proc/%d/task", (int) pid), 0);
        DIR *d = opendir(tasks);
        cr_assert_not_null(d, "%s: %m", tasks);
        unsigned n = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_free_ char *p = NULL, *text = NULL;
                cr_assert_geq(asprintf(&p, "%s/%s/cgroup", tasks, de->d_name), 0);
                FILE *f = fopen(p, "re");
                if (!f)
                        continue; /* the thread ended */
                size_t len = 0;
                if (getdelim(&text, &len, 0, f) < 0) {
                        fclose(f);
                        continue;
                }
                fclose(f);
                if (v1_controller("memory"))
                        cr_assert_eq(cgroup_text_has(text, "memory", cg), 1, "thread %s: %s", de->d_name,
                                     text);
                cr_assert_eq(cgroup_text_has(text, NULL, cg), 1, "thread %s: %s", de->d_name, text);
                n++;
        }
        closedir(d);
        cr_assert_gt(n, 0);
}

Test(limits, actor_under_memory_max_works) {
        start(NULL);
        const char *a = create_ok(1, "MemoryMax", "t", MEMORY_MAX);
        for (int i = 0; i < 3; i++) {
                kactor_value *v = call(a, "allocate", MEMORY_UNDER);
                harness_assert_value(v, "16777216");
                kactor_value_free(v);
        }
        cr_assert_str_eq(harness_property_string(h, a, ACTOR, "State"), "alive");
        cr_assert_str_eq(harness_property_string(h, a, ACTOR, "DeathCause"), "");
}

Test(limits, actor_over_memory_max_dies_of_oom_and_says_so) {
        start(NULL);
        const char *a = create_ok(1, "MemoryMax", "t", MEMORY_MAX);
        const char *cg = harness_property_string(h, a, ACTOR, "ControlGroup");
        _cleanup_free_ char *limit = limit_file(cg, "memory.max", "memory", "memory.limit_in_bytes");
        _cleanup_free_ char *value = read_line(limit);
        cr_assert_str_eq(value, "67108864", "%s", limit);

        kactor_value *v = call(a, "allocate", MEMORY_OVER);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, "out of memory");
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, "MemoryMax=67108864 bytes");
        kactor_value_free(v);

        cr_assert(harness_wait_actor_state(h, a, "dead", HARNESS_TIMEOUT_MS));
        const char *cause = harness_property_string(h, a, ACTOR, "DeathCause");
        cr_assert(strstr(cause, "out of memory: the worker was killed by the kernel's OOM killer at "
                                "MemoryMax=67108864 bytes"),
                  "DeathCause: %s", cause);
        cr_assert(strstr(cause, "SIGKILL"), "DeathCause: %s", cause);
        /* And later calls say the same. */
        v = call(a, "allocate", MEMORY_UNDER);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, "out of memory");
        kactor_value_free(v);
}

Test(limits, oom_killed_actor_with_max_restarts_restarts_and_the_cause_is_logged) {
        start(NULL);
        const char *a = create_ok(2, "MemoryMax", "t", MEMORY_MAX, "MaxRestarts", "i", 1);

        /* The call is replayed in the restarted worker, which it kills again: then the actor is dead. */
        kactor_value *v = call(a, "allocate", MEMORY_OVER);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, "out of memory");
        kactor_value_free(v);
        cr_assert(harness_wait_actor_state(h, a, "dead", HARNESS_TIMEOUT_MS));
        cr_assert_eq(harness_property_uint(h, a, ACTOR, "Restarts"), 1);
        cr_assert(strstr(harness_property_string(h, a, ACTOR, "DeathCause"), "out of memory"));

        /* The restart's log line gives the cause. */
        const char *log = nodemgr_log_all(), *line = NULL;
        for (const char *p = log; (p = strstr(p, "restarting it (restart 1 of 1)")); p++) {
                const char *b = p;
                while (b > log && b[-1] != '\n')
                        b--;
                if (memmem(b, (size_t) (p - b), "out of memory", strlen("out of memory")))
                        line = b;
        }
        cr_assert_not_null(line, "no restart logged with its cause:\n%s", harness_nodemgr_log(h));
}

/* --- tasks ------------------------------------------------------------------------------------- */

Test(limits, fork_loop_stops_at_tasks_max_and_the_actor_survives) {
        start(NULL);
        const char *a = create_ok(1, "TasksMax", "t", (uint64_t) TASKS_MAX);
        kactor_value *v = call(a, "fork_many", "[64]");
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_MAP, "fork_many: %s", harness_value_str(h, v));
        int64_t forked = map_int(v, "forked"), err = map_int(v, "errno"), threads = map_int(v, "threads");
        kactor_value_free(v);

        cr_assert_eq(err, EAGAIN, "the fork loop ended with errno %" PRIi64 " after %" PRIi64 " forks", err,
                     forked);
        cr_assert_gt(threads, 0);
        /* Every task in the cgroup counts: the worker's threads and the children. */
        cr_assert_leq(forked, TASKS_MAX - threads,
                      "%" PRIi64 " forks beside %" PRIi64 " threads under TasksMax=%d", forked, threads,
                      TASKS_MAX);
        cr_assert_geq(forked, 1);

        /* The actor answers, and its children are gone: only the worker is left in its cgroup. */
        v = call(a, "identity", NULL);
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_MAP, "identity: %s", harness_value_str(h, v));
        kactor_value_free(v);
        cr_assert_str_eq(harness_property_string(h, a, ACTOR, "State"), "alive");
        const char *cg = harness_property_string(h, a, ACTOR, "ControlGroup");
        _cleanup_free_ char *procs = NULL;
        cr_assert_geq(asprintf(&procs, "%s%s/cgroup.procs", v2_mount(), cg), 0);
        _cleanup_free_ char *pids = read_line(procs);
        char expected[32];
        snprintf(expected, sizeof(expected), "%" PRIu64, harness_property_uint(h, a, ACTOR, "Pid"));
        cr_assert_str_eq(pids, expected, "%s", procs);
}

/* --- CPUs -------------------------------------------------------------------------------------- */

Test(limits, num_cpus_is_a_cpu_quota) {
        start(NULL);
        const char *a = create_ok(1, "NumCpus", "d", 0.5);
        kactor_value *v = call(a, "spin", harness_printf(h, "[%d, 2]", SPIN_MS));
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "spin: %s", harness_value_str(h, v));
        int64_t cpu = kactor_value_get_int(v);
        kactor_value_free(v);
        cr_assert_gt(cpu, 0);
        cr_assert_leq(cpu, SPIN_CPU_MAX_USEC,
                      "two threads spinning %d ms under NumCpus=0.5 used %" PRIi64 " µs of CPU", SPIN_MS,
                      cpu);
}

Test(limits, num_cpus_quota_below_the_kernel_minimum_is_refused_and_small_ones_get_long_periods) {
        start(NULL);
        assert_refused("NumCpus", 1, "NumCpus", "d", 0.0005);

        /* 0.005 CPUs: 0.5 ms per 100 ms is below the kernel's 1 ms, 5 ms per second is not. */
        const char *a = create_ok(1, "NumCpus", "d", 0.005);
        const char *cg = harness_property_string(h, a, ACTOR, "ControlGroup");
        _cleanup_free_ char *v2 = NULL;
        cr_assert_geq(asprintf(&v2, "%s%s/cpu.max", v2_mount(), cg), 0);
        if (access(v2, F_OK) >= 0) {
                _cleanup_free_ char *max = read_line(v2);
                cr_assert_str_eq(max, "5000 1000000", "%s", v2);
        } else {
                _cleanup_free_ char *qf = NULL, *pf = NULL;
                cr_assert_geq(asprintf(&qf, "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us", cg), 0);
                cr_assert_geq(asprintf(&pf, "/sys/fs/cgroup/cpu%s/cpu.cfs_period_us", cg), 0);
                _cleanup_free_ char *quota = read_line(qf), *period = read_line(pf);
                cr_assert_str_eq(quota, "5000", "%s", qf);
                cr_assert_str_eq(period, "1000000", "%s", pf);
        }
}

/* --- without cgroups --------------------------------------------------------------------------- */

Test(limits, without_a_cgroup_manager_tasks_max_and_num_cpus_are_refused) {
        start("--cgroup-manager=none");
        cr_assert_str_eq(harness_property_string(h, MGR, IFACE, "CgroupManager"), "none");
        assert_refused("TasksMax", 1, "TasksMax", "t", (uint64_t) TASKS_MAX);
        assert_refused("NumCpus", 1, "NumCpus", "d", 0.5);
        /* Without limits it runs. */
        const char *a = create_ok(0);
        kactor_value *v = call(a, "identity", NULL);
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_MAP, "identity: %s", harness_value_str(h, v));
        kactor_value_free(v);
}

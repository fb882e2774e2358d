/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Actor cgroups across a restart of the manager (cgroups/cgroup-manager.c, the cgroupfs backend on the
 * host as it is; hybrid on the CI machine): a manager that lets go leaves each cgroup, its processes
 * and its device program as they are; the next one on the same subtree spares what keep() keeps when
 * it reaps, adopts it from the five recorded names and then owns it like one of its own (kill, the
 * empty callback, removal down to the v1 controller cgroups); it refuses records that are not of its
 * subtree. Each test has a subtree of its own and leaves nothing under it.
 */

#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../skip.h"
#include "cgroup-manager.h"
#include "macro.h"
#include "time-util.h"

#define EMPTY_TIMEOUT_USEC (5 * 1000000ULL)

static const char *const v1_controllers[] = { "memory", "cpu", "pids" };

static sd_event *event;
static CgroupManager *first, *second;
static char name[64];
static pid_t children[4];
static size_t n_children;

/* What a caller records of an ActorCgroup to adopt it later. */
typedef struct Record {
        const char *kind;
        char *id, *unit, *path, *v2_dir;
} Record;

static const char *v2_mount(void) {
        return access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0 ? "/sys/fs/cgroup"
                                                                      : "/sys/fs/cgroup/unified";
}

static void setup(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (cgroups, BPF)");
        if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) < 0 &&
            access("/sys/fs/cgroup/cgroup.procs", F_OK) < 0)
                kactor_skip_test("no cgroup v2 hierarchy");
        snprintf(name, sizeof(name), "utest-adopt-%d", (int) getpid());
        cr_assert_geq(sd_event_new(&event), 0);
}

static void teardown(void) {
        first = cgroup_manager_free(first);
        second = cgroup_manager_free(second);
        for (size_t i = 0; i < n_children; i++)
                if (children[i] > 0) {
                        (void) kill(children[i], SIGKILL);
                        (void) waitpid(children[i], NULL, 0);
                }
        n_children = 0;
        /* Whatever a failed test left. */
        _cleanup_free_ char *dir = NULL;
        if (asprintf(&dir, "%s/kactor/%s", v2_mount(), name) >= 0)
                (void) cg_kill_and_remove_tree(dir, EMPTY_TIMEOUT_USEC);
        for (size_t i = 0; i < ELEMENTSOF(v1_controllers); i++) {
                char cmd[300];
                snprintf(cmd, sizeof(cmd),
                         "find /sys/fs/cgroup/%s/kactor/%s -depth -type d -exec rmdir {} + 2>/dev/null",
                         v1_controllers[i], name);
                (void) system(cmd);
        }
        event = sd_event_unref(event);
}

TestSuite(cgroup_adopt, .init = setup, .fini = teardown, .timeout = 60);

/* A worker that waits, as one does before INIT; it goes with this test if the test dies. */
static pid_t spawn_sleeper(void) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;)
                        pause();
        }
        cr_assert_lt(n_children, ELEMENTSOF(children));
        children[n_children++] = pid;
        return pid;
}

static bool alive(pid_t pid) {
        return waitpid(pid, NULL, WNOHANG) == 0;
}

static void assert_killed(pid_t pid) {
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%d was not killed", (int) pid);
        for (size_t i = 0; i < n_children; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

/* pid's cgroup in the v2 hierarchy (controller NULL) or in a v1 controller's; NULL if none. */
static char *pid_cgroup(pid_t pid, const char *controller) {
        _cleanup_free_ char *p = NULL, *want = NULL;
        char *line = NULL;
        size_t n = 0;

        cr_assert_geq(asprintf(&p, "/proc/%d/cgroup", (int) pid), 0);
        want = controller ? NULL : strdup("0::");
        if (controller)
                cr_assert_geq(asprintf(&want, ":%s:", controller), 0);
        cr_assert_not_null(want);
        FILE *f = fopen(p, "re");
        if (!f)
                return NULL;
        while (getline(&line, &n, f) > 0) {
                char *s = controller ? strstr(line, want) : (strncmp(line, want, 3) == 0 ? line : NULL);
                if (!s)
                        continue;
                s += strlen(want);
                s[strcspn(s, "\n")] = 0;
                char *r = strdup(s);
                free(line);
                fclose(f);
                return r;
        }
        free(line);
        fclose(f);
        return NULL;
}

static void assert_in_cgroup(pid_t pid, const char *controller, const char *path) {
        _cleanup_free_ char *cg = pid_cgroup(pid, controller);
        cr_assert_not_null(cg, "%d has no %s cgroup", (int) pid, controller ?: "v2");
        cr_assert_str_eq(cg, path, "%d is in %s cgroup %s, not %s", (int) pid, controller ?: "v2", cg, path);
}

static bool exists(const char *path) {
        return access(path, F_OK) >= 0;
}

static char *v1_dir(const char *controller, const char *path) {
        char *d;
        cr_assert_geq(asprintf(&d, "/sys/fs/cgroup/%s%s", controller, path), 0);
        return d;
}

/* Nothing of this test's subtree is left, in the v2 hierarchy or any v1 one. */
static void assert_subtree_gone(void) {
        _cleanup_free_ char *dir = NULL;
        cr_assert_geq(asprintf(&dir, "%s/kactor/%s", v2_mount(), name), 0);
        cr_assert(!exists(dir), "%s is left behind", dir);
        for (size_t i = 0; i < ELEMENTSOF(v1_controllers); i++) {
                _cleanup_free_ char *v1 = NULL;
                cr_assert_geq(asprintf(&v1, "/sys/fs/cgroup/%s/kactor/%s", v1_controllers[i], name), 0);
                cr_assert(!exists(v1), "%s is left behind", v1);
        }
}

static unsigned n_device_programs(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        __u32 ids[8], n = ELEMENTSOF(ids), flags = 0;
        cr_assert_geq(fd, 0, "%s: %m", dir);
        cr_assert_eq(bpf_prog_query(fd, BPF_CGROUP_DEVICE, 0, &flags, ids, &n), 0, "%s: %m", dir);
        return n;
}

static CgroupManager *manager_new(void) {
        CgroupManager *m;
        int r = cgroup_manager_new(event, CGROUP_MANAGER_CGROUPFS, name, &m);
        cr_assert_geq(r, 0, "cgroup_manager_new: %s", strerror(-r));
        return m;
}

static ActorCgroup *place(CgroupManager *m, const char *kind, const char *id, pid_t pid,
                          CgroupLimits limits) {
        ActorCgroup *cg = NULL;
        _cleanup_free_ char *message = NULL;
        ActorCgroupSpec spec = {
                .kind = kind, .id = id, .description = "test", .pid = pid, .limits = limits
        };
        int r = actor_cgroup_new(m, &spec, NULL, NULL, NULL, &cg, &message);
        cr_assert_eq(r, 1, "actor_cgroup_new: %s (%s)", strerror(-r), message ?: "");
        cr_assert_not_null(cg);
        return cg;
}

static Record record(const ActorCgroup *cg) {
        Record rec = { .kind = cg->kind,
                       .id = strdup(cg->id),
                       .unit = cg->unit ? strdup(cg->unit) : NULL,
                       .path = strdup(cg->path),
                       .v2_dir = strdup(cg->v2_dir) };
        cr_assert(rec.id && rec.path && rec.v2_dir);
        return rec;
}

static void record_done(Record *rec) {
        free(rec->id);
        free(rec->unit);
        free(rec->path);
        free(rec->v2_dir);
}

static ActorCgroupAdopt adopt_spec(const Record *rec, pid_t pid) {
        return (ActorCgroupAdopt){ .kind = rec->kind,
                                   .id = rec->id,
                                   .unit = rec->unit,
                                   .path = rec->path,
                                   .v2_dir = rec->v2_dir,
                                   .pid = pid };
}

typedef struct Keep {
        const char *kind, *id;
        unsigned n_asked;
} Keep;

static bool keep_one(const char *kind, const char *id, void *userdata) {
        Keep *k = userdata;
        k->n_asked++;
        return streq(kind, k->kind) && streq(id, k->id);
}

static bool keep_none(const char *kind, const char *id, void *userdata) {
        return false;
}

static void on_empty(ActorCgroup *cg, void *userdata) {
        (*(unsigned *) userdata)++;
}

/* Runs the loop until *counter is set or the time is up (bounded: no test waits forever). */
static void run_until(const unsigned *counter, uint64_t timeout_usec) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        while (!*counter && now_usec(CLOCK_MONOTONIC) < deadline)
                cr_assert_geq(sd_event_run(event, 50 * 1000), 0);
}

Test(cgroup_adopt, kept_cgroup_outlives_its_manager_and_is_adopted) {
        first = manager_new();
        pid_t a = spawn_sleeper(), b = spawn_sleeper();
        ActorCgroup *cga = place(first, "task", "00aa", a, (CgroupLimits){});
        Record rec = record(cga);
        ActorCgroup *cgb = place(first, NULL, "00bb", b, (CgroupLimits){});
        _cleanup_free_ char *b_dir = strdup(cgb->v2_dir);
        cr_assert_str_eq(rec.kind, "task");
        cr_assert_null(rec.unit);
        assert_in_cgroup(a, NULL, rec.path);
        cr_assert_eq(n_device_programs(rec.v2_dir), 1);

        /* The manager exits; its actors do not. */
        first = cgroup_manager_free_keep(first);
        cr_assert(alive(a) && alive(b));
        assert_in_cgroup(a, NULL, rec.path);
        cr_assert_eq(n_device_programs(rec.v2_dir), 1, "the device program went with the manager");

        /* The next one keeps what it will adopt and reaps the rest. */
        second = manager_new();
        Keep keep = { .kind = "task", .id = "00aa" };
        cr_assert_geq(cgroup_manager_reap_orphans(second, keep_one, &keep), 0);
        cr_assert_geq(keep.n_asked, 2);
        assert_killed(b);
        cr_assert(!exists(b_dir), "%s was not reaped", b_dir);
        cr_assert(alive(a), "the kept actor was killed");
        assert_in_cgroup(a, NULL, rec.path);

        unsigned n_empty = 0;
        ActorCgroup *cg = NULL;
        ActorCgroupAdopt spec = adopt_spec(&rec, a);
        cr_assert_eq(actor_cgroup_adopt(second, &spec, on_empty, &n_empty, &cg), 0);
        cr_assert_not_null(cg);
        cr_assert(cg->placed);
        cr_assert_str_eq(cg->kind, "task");
        cr_assert_str_eq(cg->id, rec.id);
        cr_assert_null(cg->unit);
        cr_assert_str_eq(cg->path, rec.path);
        cr_assert_str_eq(cg->v2_dir, rec.v2_dir);
        cr_assert_eq(cg->pid, a);
        cr_assert_eq(cg->prog_fd, -1);
        cr_assert_eq(second->n_cgroups, 1);
        cr_assert_eq(n_device_programs(rec.v2_dir), 1);

        ActorCgroup *again = (ActorCgroup *) 0x1;
        cr_assert_eq(actor_cgroup_adopt(second, &spec, on_empty, &n_empty, &again), -EEXIST);
        cr_assert_eq(again, (ActorCgroup *) 0x1);

        /* Populated: no word of emptiness until it is. */
        for (int i = 0; i < 3; i++)
                cr_assert_geq(sd_event_run(event, 20 * 1000), 0);
        cr_assert_eq(n_empty, 0);

        cr_assert_eq(actor_cgroup_kill(cg), 0);
        assert_killed(a);
        run_until(&n_empty, EMPTY_TIMEOUT_USEC);
        cr_assert_gt(n_empty, 0, "the empty callback did not fire");
        cg = actor_cgroup_free(cg);
        cr_assert(!exists(rec.v2_dir), "%s was not removed", rec.v2_dir);
        cr_assert_eq(second->n_cgroups, 0);

        /* Gone: nothing to adopt. */
        cg = (ActorCgroup *) 0x1;
        cr_assert_eq(actor_cgroup_adopt(second, &spec, on_empty, &n_empty, &cg), -ENOENT);
        cr_assert_eq(cg, (ActorCgroup *) 0x1);

        second = cgroup_manager_free(second);
        assert_subtree_gone();
        record_done(&rec);
}

Test(cgroup_adopt, empty_cgroup_reports_empty_from_the_loop_once_adopted) {
        first = manager_new();
        pid_t a = spawn_sleeper();
        Record rec = record(place(first, NULL, "00cc", a, (CgroupLimits){}));
        first = cgroup_manager_free_keep(first);

        /* The worker died while no manager was there. */
        cr_assert_eq(kill(a, SIGKILL), 0);
        assert_killed(a);

        second = manager_new();
        Keep keep = { .kind = "actor", .id = "00cc" };
        cr_assert_geq(cgroup_manager_reap_orphans(second, keep_one, &keep), 0);
        cr_assert(exists(rec.v2_dir));
        unsigned n_empty = 0;
        ActorCgroup *cg = NULL;
        ActorCgroupAdopt spec = adopt_spec(&rec, a);
        cr_assert_eq(actor_cgroup_adopt(second, &spec, on_empty, &n_empty, &cg), 0);
        cr_assert_eq(n_empty, 0, "the empty callback must come from the loop, not from adopt");
        cr_assert_eq(cg->pid, 0, "a pid no longer in the cgroup must not be recorded (it may be another's)");
        run_until(&n_empty, EMPTY_TIMEOUT_USEC);
        cr_assert_gt(n_empty, 0);

        cg = actor_cgroup_free(cg);
        second = cgroup_manager_free(second);
        assert_subtree_gone();
        record_done(&rec);
}

Test(cgroup_adopt, abandoned_cgroup_is_left_as_it_is) {
        first = manager_new();
        pid_t a = spawn_sleeper();
        ActorCgroup *cg = place(first, NULL, "00dd", a, (CgroupLimits){});
        Record rec = record(cg);
        actor_cgroup_abandon(cg);
        actor_cgroup_abandon(NULL);
        cr_assert_eq(first->n_cgroups, 0);
        cr_assert(alive(a));
        assert_in_cgroup(a, NULL, rec.path);

        /* The same manager can take it back. */
        ActorCgroupAdopt spec = adopt_spec(&rec, a);
        cr_assert_eq(actor_cgroup_adopt(first, &spec, NULL, NULL, &cg), 0);
        cg = actor_cgroup_free(cg);
        assert_killed(a);
        first = cgroup_manager_free(first);
        assert_subtree_gone();
        record_done(&rec);
}

Test(cgroup_adopt, refuses_records_that_are_not_of_its_subtree) {
        first = manager_new();
        pid_t a = spawn_sleeper();
        ActorCgroup *held = place(first, "task", "00ee", a, (CgroupLimits){});
        Record rec = record(held);
        _cleanup_free_ char *other = NULL, *dotdot = NULL, *dotdot_dir = NULL, *actor_path = NULL;
        cr_assert_geq(asprintf(&other, "%s/kactor/%s-other/task-00ee", v2_mount(), name), 0);
        cr_assert_geq(asprintf(&dotdot, "/kactor/%s/../%s/task-00ee", name, name), 0);
        cr_assert_geq(asprintf(&dotdot_dir, "%s%s", v2_mount(), dotdot), 0);
        cr_assert_geq(asprintf(&actor_path, "/kactor/%s/actor-00ee", name), 0);

        const struct {
                ActorCgroupAdopt spec;
                int r;
        } cases[] = {
                { { .kind = "task", .id = "00ee", .v2_dir = other }, -EINVAL },
                { { .kind = "task", .id = "00ee", .v2_dir = "/sys/fs/cgroup/unified" }, -EINVAL },
                { { .kind = "task", .id = "00ee", .path = dotdot, .v2_dir = dotdot_dir }, -EINVAL },
                { { .kind = "task", .id = "00ee", .path = "/" }, -EINVAL },
                { { .kind = NULL, .id = "00ee", .path = rec.path, .v2_dir = rec.v2_dir }, -EINVAL },
                { { .kind = "task", .id = "00ff", .path = rec.path }, -EINVAL },
                { { .kind = "task", .id = "../../x" }, -EINVAL },
                { { .kind = "task", .id = "" }, -EINVAL },
                { { .kind = "task", .id = NULL }, -EINVAL },
                { { .kind = "worker", .id = "00ee" }, -EINVAL },
                { { .kind = "task", .id = "00ee", .unit = "kactor-task-00ee.scope" }, -EINVAL },
                { { .kind = "actor", .id = "00ee", .path = actor_path }, -ENOENT },
                { { .kind = "actor", .id = "0123" }, -ENOENT },
                { { .kind = "task", .id = "00ee", .path = rec.path, .v2_dir = rec.v2_dir }, -EEXIST },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ActorCgroup *cg = (ActorCgroup *) 0x1;
                int r = actor_cgroup_adopt(first, &cases[i].spec, NULL, NULL, &cg);
                cr_assert_eq(r, cases[i].r, "case %zu: %s, expected %s", i, strerror(-r),
                             strerror(-cases[i].r));
                cr_assert_eq(cg, (ActorCgroup *) 0x1, "case %zu wrote *ret", i);
        }
        cr_assert_eq(first->n_cgroups, 1);
        cr_assert(alive(a));

        /* Derived from kind and id alone, once nobody holds it. */
        actor_cgroup_abandon(held);
        ActorCgroup *cg = NULL;
        cr_assert_eq(actor_cgroup_adopt(first, &(ActorCgroupAdopt){ .kind = "task", .id = "00ee" }, NULL,
                                        NULL, &cg),
                     0);
        cr_assert_str_eq(cg->path, rec.path);
        cr_assert_str_eq(cg->v2_dir, rec.v2_dir);

        first = cgroup_manager_free(first);
        assert_killed(a);
        assert_subtree_gone();
        record_done(&rec);
}

Test(cgroup_adopt, none_backend_adopts_nothing) {
        CgroupManager *m = NULL;
        cr_assert_eq(cgroup_manager_new(event, CGROUP_MANAGER_NONE, name, &m), 0);
        ActorCgroup *cg = (ActorCgroup *) 0x1;
        cr_assert_eq(actor_cgroup_adopt(m, &(ActorCgroupAdopt){ .id = "00aa" }, NULL, NULL, &cg), 0);
        cr_assert_null(cg);
        cr_assert_eq(cgroup_manager_reap_orphans(m, keep_none, NULL), 0);
        cgroup_manager_free_keep(m);
}

Test(cgroup_adopt, reap_kills_what_keep_does_not_keep) {
        first = manager_new();
        pid_t a = spawn_sleeper();
        Record rec = record(place(first, NULL, "0a0a", a, (CgroupLimits){}));
        first = cgroup_manager_free_keep(first);
        cr_assert(alive(a));

        second = manager_new();
        cr_assert_geq(cgroup_manager_reap_orphans(second, keep_none, NULL), 0);
        assert_killed(a);
        cr_assert(!exists(rec.v2_dir), "%s was not reaped", rec.v2_dir);
        record_done(&rec);

        /* No keep at all: the same, as before adoption existed. */
        pid_t b = spawn_sleeper();
        rec = record(place(second, "task", "0b0b", b, (CgroupLimits){}));
        second = cgroup_manager_free_keep(second);
        first = manager_new();
        cr_assert_geq(cgroup_manager_reap_orphans(first, NULL, NULL), 0);
        assert_killed(b);
        cr_assert(!exists(rec.v2_dir), "%s was not reaped", rec.v2_dir);
        first = cgroup_manager_free(first);
        assert_subtree_gone();
        record_done(&rec);
}

Test(cgroup_adopt, v1_controller_cgroups_are_adopted_and_removed_with_it) {
        first = manager_new();
        CgroupLimits limits = { .memory_max = 256 << 20, .tasks_max = 64 };
        const char *missing = NULL;
        cr_assert_eq(cgroup_manager_check_limits(first, &limits, &missing), 0);
        if (missing)
                kactor_skip_test(missing);
        if (!exists("/sys/fs/cgroup/pids/cgroup.procs") || !exists("/sys/fs/cgroup/memory/cgroup.procs"))
                kactor_skip_test("pids and memory are on cgroup v2 here: no v1 controller cgroups to adopt");

        pid_t a = spawn_sleeper();
        Record rec = record(place(first, NULL, "0c0c", a, limits));
        _cleanup_free_ char *pids = v1_dir("pids", rec.path), *memory = v1_dir("memory", rec.path);
        _cleanup_free_ char *cpu = v1_dir("cpu", rec.path);
        cr_assert(exists(pids) && exists(memory), "%s, %s", pids, memory);
        cr_assert(!exists(cpu), "%s without a CPU limit", cpu);
        assert_in_cgroup(a, "pids", rec.path);
        assert_in_cgroup(a, "memory", rec.path);

        first = cgroup_manager_free_keep(first);
        cr_assert(alive(a));
        cr_assert(exists(pids) && exists(memory));
        assert_in_cgroup(a, "pids", rec.path);

        second = manager_new();
        Keep keep = { .kind = "actor", .id = "0c0c" };
        cr_assert_geq(cgroup_manager_reap_orphans(second, keep_one, &keep), 0);
        cr_assert(exists(pids) && exists(memory), "the kept actor's v1 cgroups were reaped");
        assert_in_cgroup(a, "pids", rec.path);
        ActorCgroup *cg = NULL;
        ActorCgroupAdopt spec = adopt_spec(&rec, a);
        spec.limits = limits;
        cr_assert_eq(actor_cgroup_adopt(second, &spec, NULL, NULL, &cg), 0);
        cr_assert_eq(cg->limits.tasks_max, 64);

        cg = actor_cgroup_free(cg);
        assert_killed(a);
        cr_assert(!exists(rec.v2_dir), "%s is left behind", rec.v2_dir);
        cr_assert(!exists(pids), "%s is left behind", pids);
        cr_assert(!exists(memory), "%s is left behind", memory);
        second = cgroup_manager_free(second);
        assert_subtree_gone();
        record_done(&rec);
}

Test(cgroup_adopt, adopt_of_a_vanished_cgroup_removes_its_v1_remains) {
        first = manager_new();
        CgroupLimits limits = { .tasks_max = 32 };
        const char *missing = NULL;
        cr_assert_eq(cgroup_manager_check_limits(first, &limits, &missing), 0);
        if (missing)
                kactor_skip_test(missing);
        if (!exists("/sys/fs/cgroup/pids/cgroup.procs"))
                kactor_skip_test("pids is on cgroup v2 here");

        pid_t a = spawn_sleeper();
        Record rec = record(place(first, "task", "0d0d", a, limits));
        _cleanup_free_ char *pids = v1_dir("pids", rec.path);
        first = cgroup_manager_free_keep(first);

        /* Someone killed it and removed its v2 cgroup while no manager was there. */
        cr_assert_eq(kill(a, SIGKILL), 0);
        assert_killed(a);
        cr_assert_eq(rmdir(rec.v2_dir), 0, "%s: %m", rec.v2_dir);
        cr_assert(exists(pids));

        second = manager_new();
        ActorCgroup *cg = (ActorCgroup *) 0x1;
        ActorCgroupAdopt spec = adopt_spec(&rec, a);
        cr_assert_eq(actor_cgroup_adopt(second, &spec, NULL, NULL, &cg), -ENOENT);
        cr_assert_eq(cg, (ActorCgroup *) 0x1);
        cr_assert(!exists(pids), "%s is left behind", pids);
        second = cgroup_manager_free(second);
        assert_subtree_gone();
        record_done(&rec);
}

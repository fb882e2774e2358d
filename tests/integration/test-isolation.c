/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Isolation on the host as it is (the cgroupfs backend; on the CI machine hybrid cgroups): every
 * actor in its own cgroup, limits applied or refused, Kill leaving nothing behind, orphans reaped at
 * start, GPUs enforced by the device cgroup (fake nodes: ENXIO = allowed, EPERM = denied, tried from
 * inside the actor), and workers running as the caller without capabilities.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../skip.h"
#include "bus-value.h"
#include "harness.h"
#include "macro.h"

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER
#define ACTOR HARNESS_IFACE_ACTOR

static Harness *h;
static char devdir[] = "/tmp/kactor-gpus-XXXXXX";
static char *gpu0, *gpu1, *ctl;
/* What the orphan test made, removed even when it fails. */
static pid_t orphan_child;
static char orphan_dir[256], orphan_parent[256];

static void need_root(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (cgroups, BPF, mknod)");
        if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) < 0 && access("/sys/fs/cgroup/cgroup.procs", F_OK) < 0)
                kactor_skip_test("no cgroup v2 hierarchy");
}

static const char *v2_mount(void) {
        return access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
}

static void start(const HarnessOptions *o) {
        need_root();
        h = harness_start(o);
}

static void teardown(void) {
        h = harness_stop(h);
        if (orphan_child > 0) {
                (void) kill(orphan_child, SIGKILL);
                (void) waitpid(orphan_child, NULL, 0);
                orphan_child = 0;
        }
        if (orphan_dir[0]) {
                (void) rmdir(orphan_dir);
                (void) rmdir(orphan_parent);
                orphan_dir[0] = 0;
        }
        if (gpu0) {
                unlink(gpu0);
                unlink(gpu1);
                unlink(ctl);
                rmdir(devdir);
                free(gpu0);
                free(gpu1);
                free(ctl);
                gpu0 = gpu1 = ctl = NULL;
        }
}

TestSuite(isolation, .fini = teardown, .timeout = 60);

/* Fake GPUs: device nodes with no driver behind them (TESTING.md). */
static const char *make_fake_gpus(void) {
        need_root();
        cr_assert_not_null(mkdtemp(devdir));
        cr_assert_geq(asprintf(&gpu0, "%s/nvidia0", devdir), 0);
        cr_assert_geq(asprintf(&gpu1, "%s/nvidia1", devdir), 0);
        cr_assert_geq(asprintf(&ctl, "%s/nvidiactl", devdir), 0);
        cr_assert_eq(mknod(gpu0, S_IFCHR | 0666, makedev(195, 0)), 0, "mknod: %m");
        cr_assert_eq(mknod(gpu1, S_IFCHR | 0666, makedev(195, 1)), 0, "mknod: %m");
        cr_assert_eq(mknod(ctl, S_IFCHR | 0666, makedev(195, 255)), 0, "mknod: %m");
        char *list;
        cr_assert_geq(asprintf(&list, "%s,%s,%s", gpu0, gpu1, ctl), 0);
        return list;
}

/* CreateActor over D-Bus with options given as sd-bus varargs ("NumGpus", "u", 1, ...). */
static int create_with(sd_bus_error *e, const char **ret_path, unsigned n_opts, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *bus = harness_bus(h);
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor");
        cr_assert_geq(r, 0);
        r = sd_bus_message_append(m, "ssav", harness_module(h, "isomod"), "Probe", 0);
        cr_assert_geq(r, 0);
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        cr_assert_geq(r, 0);
        va_start(ap, n_opts);
        for (unsigned i = 0; i < n_opts; i++) {
                const char *key = va_arg(ap, const char *), *type = va_arg(ap, const char *);
                cr_assert_geq(sd_bus_message_open_container(m, 'e', "sv"), 0);
                cr_assert_geq(sd_bus_message_append(m, "s", key), 0);
                cr_assert_geq(sd_bus_message_open_container(m, 'v', type), 0);
                if (type[0] == 'u')
                        r = sd_bus_message_append(m, "u", va_arg(ap, unsigned));
                else if (type[0] == 't')
                        r = sd_bus_message_append(m, "t", va_arg(ap, uint64_t));
                else if (type[0] == 'd')
                        r = sd_bus_message_append(m, "d", va_arg(ap, double));
                else
                        r = sd_bus_message_append(m, "s", va_arg(ap, const char *));
                cr_assert_geq(r, 0);
                cr_assert_geq(sd_bus_message_close_container(m), 0);
                cr_assert_geq(sd_bus_message_close_container(m), 0);
        }
        va_end(ap);
        cr_assert_geq(sd_bus_message_close_container(m), 0);
        r = sd_bus_call(bus, m, HARNESS_TIMEOUT_USEC, e, &reply);
        if (r < 0)
                return r;
        const char *path;
        cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
        *ret_path = harness_printf(h, "%s", path);
        return 0;
}

#define CREATE_OK(n, ...)                                                                          \
        ({                                                                                         \
                sd_bus_error _e = SD_BUS_ERROR_NULL;                                               \
                const char *_p = NULL;                                                             \
                int _r = create_with(&_e, &_p, (n), ##__VA_ARGS__);                                \
                cr_assert_geq(_r, 0, "CreateActor: %s: %s\nnodemgr log:\n%s", _e.name, _e.message, \
                              harness_nodemgr_log(h));                                             \
                _p;                                                                                \
        })

static kactor_actor actor_of(const char *path) {
        kactor_type t;
        kactor_id id;
        cr_assert_eq(bus_path_parse(path, &t, &id), 0);
        return (kactor_actor) { id };
}

static kactor_value *probe(const char *path, const char *method, const char *args_json) {
        kactor_client *c = harness_client(h);
        return harness_call(c, actor_of(path), method, args_json);
}

static int64_t open_errno(const char *path, const char *node) {
        _cleanup_free_ char *args = NULL;
        cr_assert_geq(asprintf(&args, "[\"%s\"]", node), 0);
        kactor_value *v = probe(path, "open_errno", args);
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "open_errno: %s", harness_value_str(h, v));
        int64_t e = kactor_value_get_int(v);
        kactor_value_free(v);
        return e;
}

static const char *identity_str(kactor_value *id, const char *key) {
        const kactor_value *v = kactor_value_map_get(id, key);
        cr_assert_not_null(v, "no %s", key);
        return kactor_value_get_string(v, NULL);
}

static int64_t identity_int(kactor_value *id, const char *key) {
        const kactor_value *v = kactor_value_map_get(id, key);
        cr_assert_not_null(v, "no %s", key);
        return kactor_value_get_int(v);
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* Bounded wait for a path to disappear (the daemon removes it from its event loop). */
static bool wait_gone(const char *path, unsigned timeout_ms) {
        for (unsigned i = 0; i < timeout_ms / 10; i++) {
                if (access(path, F_OK) < 0)
                        return true;
                sleep_ms(10);
        }
        return access(path, F_OK) < 0;
}

/* --- cgroups ------------------------------------------------------------------------------------- */

Test(isolation, actor_runs_in_its_own_cgroup) {
        start(NULL);
        cr_assert_str_eq(harness_property_string(h, MGR, IFACE, "CgroupManager"), "cgroupfs");
        const char *a = CREATE_OK(0), *b = CREATE_OK(0);
        kactor_value *ida = probe(a, "identity", NULL), *idb = probe(b, "identity", NULL);
        const char *cga = harness_property_string(h, a, ACTOR, "ControlGroup");
        const char *cgb = harness_property_string(h, b, ACTOR, "ControlGroup");

        cr_assert(strstr(cga, "/kactor/") == cga, "ControlGroup %s", cga);
        cr_assert_str_eq(identity_str(ida, "cgroup"), cga, "the actor is in %s", identity_str(ida, "cgroup"));
        cr_assert_str_eq(identity_str(idb, "cgroup"), cgb);
        cr_assert_str_neq(cga, cgb);
        cr_assert_str_eq(harness_property_string(h, a, ACTOR, "Unit"), "");
        _cleanup_free_ char *procs = NULL;
        cr_assert_geq(asprintf(&procs, "%s%s/cgroup.procs", v2_mount(), cga), 0);
        cr_assert_eq(access(procs, F_OK), 0, "%s: %m", procs);
        kactor_value_free(ida);
        kactor_value_free(idb);
}

/* The limit file of a controller, on v2 or v1. */
static char *limit_file(const char *cg, const char *v2_file, const char *v1_ctrl, const char *v1_file) {
        char *p;
        cr_assert_geq(asprintf(&p, "%s%s/%s", v2_mount(), cg, v2_file), 0);
        if (access(p, F_OK) >= 0)
                return p;
        free(p);
        cr_assert_geq(asprintf(&p, "/sys/fs/cgroup/%s%s/%s", v1_ctrl, cg, v1_file), 0);
        return p;
}

static char *read_trimmed(const char *path) {
        char buf[256] = "";
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s: %m", path);
        cr_assert_not_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        buf[strcspn(buf, "\n")] = 0;
        return strdup(buf);
}

Test(isolation, limits_go_to_the_controllers) {
        start(NULL);
        const char *a = CREATE_OK(3, "MemoryMax", "t", (uint64_t) 64 << 20, "NumCpus", "d", 0.5, "TasksMax", "t",
                                  (uint64_t) 32);
        kactor_value *id = probe(a, "identity", NULL);
        kactor_value_free(id);
        const char *cg = harness_property_string(h, a, ACTOR, "ControlGroup");

        _cleanup_free_ char *mem = limit_file(cg, "memory.max", "memory", "memory.limit_in_bytes");
        _cleanup_free_ char *cpu = limit_file(cg, "cpu.max", "cpu", "cpu.cfs_quota_us");
        _cleanup_free_ char *pids = limit_file(cg, "pids.max", "pids", "pids.max");
        _cleanup_free_ char *vm = read_trimmed(mem), *vc = read_trimmed(cpu), *vp = read_trimmed(pids);
        cr_assert_str_eq(vm, "67108864", "%s", mem);
        cr_assert(strncmp(vc, "50000", 5) == 0, "%s: %s", cpu, vc);
        cr_assert_str_eq(vp, "32", "%s", pids);
}

Test(isolation, limit_without_cgroups_is_refused) {
        const char *const args[] = { "--cgroup-manager=none", NULL };
        start(&(HarnessOptions) { .extra_args = args });
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *p;
        int r = create_with(&e, &p, 1, "MemoryMax", "t", (uint64_t) 64 << 20);
        cr_assert_lt(r, 0, "created an actor whose MemoryMax cannot be applied");
        cr_assert(sd_bus_error_has_name(&e, "io.kactor.Error.NotSupported"), "%s: %s", e.name, e.message);
        cr_assert(strstr(e.message, "MemoryMax"), "%s", e.message);
        sd_bus_error_free(&e);
        cr_assert_str_eq(harness_property_string(h, MGR, IFACE, "CgroupManager"), "none");
}

Test(isolation, kill_leaves_no_process_and_no_cgroup) {
        start(NULL);
        const char *a = CREATE_OK(0);
        kactor_value *v = probe(a, "spawn_child", NULL);
        pid_t child = (pid_t) kactor_value_get_int(v);
        kactor_value_free(v);
        const char *cg = harness_property_string(h, a, ACTOR, "ControlGroup");
        _cleanup_free_ char *dir = NULL;
        cr_assert_geq(asprintf(&dir, "%s%s", v2_mount(), cg), 0);
        cr_assert(harness_pid_alive(child));

        harness_busctl_call_ok(h, a, ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(h, a, "dead", HARNESS_TIMEOUT_MS));
        cr_assert(harness_wait_pid_exit(child, HARNESS_TIMEOUT_MS), "the actor's child %d survived Kill", child);
        cr_assert(wait_gone(dir, HARNESS_TIMEOUT_MS), "%s is still there", dir);
}

Test(isolation, orphans_of_a_crashed_node_manager_are_reaped_at_start) {
        need_root();
        char name[64], dir[256];
        snprintf(name, sizeof(name), "itest-%d", (int) getpid());
        snprintf(dir, sizeof(dir), "%s/kactor/%s/actor-0000000000000000000000000000dead", v2_mount(), name);
        snprintf(orphan_dir, sizeof(orphan_dir), "%s", dir);
        snprintf(orphan_parent, sizeof(orphan_parent), "%s/kactor/%s", v2_mount(), name);
        _cleanup_free_ char *parent = NULL, *grand = NULL;
        cr_assert_geq(asprintf(&grand, "%s/kactor", v2_mount()), 0);
        cr_assert_geq(asprintf(&parent, "%s/kactor/%s", v2_mount(), name), 0);
        (void) mkdir(grand, 0755);
        cr_assert(mkdir(parent, 0755) == 0 || errno == EEXIST);
        cr_assert_eq(mkdir(dir, 0755), 0, "%s: %m", dir);

        /* What a crashed node manager leaves: a populated actor cgroup. */
        pid_t child = fork();
        cr_assert_geq(child, 0);
        if (child == 0) {
                for (;;)
                        pause();
        }
        orphan_child = child;
        char pid[32], procs[300];
        snprintf(pid, sizeof(pid), "%d", (int) child);
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
        FILE *f = fopen(procs, "we");
        cr_assert_not_null(f);
        fputs(pid, f);
        cr_assert_eq(fclose(f), 0, "moving %d: %m", (int) child);

        const char *const args[] = { "--cgroup-name", name, NULL };
        h = harness_start(&(HarnessOptions) { .extra_args = args });
        int status;
        cr_assert_eq(waitpid(child, &status, 0), child);
        orphan_child = 0;
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the orphan was not killed");
        cr_assert_neq(access(dir, F_OK), 0, "%s was not removed", dir);
}

/* A node manager started on another runtime directory (no journal to take the actors over from)
 * treats what a crashed one left in its cgroup subtree as orphans. */
Test(isolation, kill_9_of_the_node_manager_leaves_nothing_once_another_starts) {
        char name[64];
        snprintf(name, sizeof(name), "itest-crash-%d", (int) getpid());
        const char *const args[] = { "--cgroup-name", name, NULL };
        start(&(HarnessOptions) { .extra_args = args });

        /* An actor whose worker started a child in a session of its own: it outlives the worker. */
        const char *a = CREATE_OK(0);
        kactor_value *v = probe(a, "spawn_child", NULL);
        pid_t child = (pid_t) kactor_value_get_int(v);
        kactor_value_free(v);
        const char *cg = harness_property_string(h, a, ACTOR, "ControlGroup");
        _cleanup_free_ char *dir = NULL;
        cr_assert_geq(asprintf(&dir, "%s%s", v2_mount(), cg), 0);
        cr_assert(harness_pid_alive(child));

        pid_t worker = harness_actor_pid(h, actor_of(a));

        /* The node manager crashes: its worker and the child stay (the worker waits to re-attach to
         * the next node manager on its runtime directory). Orphans go to init meanwhile, not to this
         * test (a subreaper), as they would on a host. */
        cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
        pid_t nodemgr = h->nodemgr_pid;
        cr_assert_eq(kill(nodemgr, SIGKILL), 0);
        cr_assert_eq(waitpid(nodemgr, NULL, 0), nodemgr);
        h->nodemgr_pid = 0; /* gone on purpose: not a failure of this harness */
        cr_assert(harness_pid_alive(worker), "the worker should outlive its node manager");
        cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        cr_assert(harness_pid_alive(child), "the child should have outlived the crash");
        cr_assert_eq(access(dir, F_OK), 0, "%s should still be there after the crash", dir);
        h = harness_stop(h);

        /* The next node manager on that subtree (a fresh runtime directory) reaps it all at start. */
        h = harness_start(&(HarnessOptions) { .extra_args = args });
        cr_assert(harness_wait_pid_exit(child, HARNESS_TIMEOUT_MS), "the orphan %d survived", child);
        cr_assert(harness_wait_pid_exit(worker, HARNESS_TIMEOUT_MS), "the orphaned worker %d survived", worker);
        cr_assert(wait_gone(dir, HARNESS_TIMEOUT_MS), "%s is still there", dir);
}

Test(isolation, subtree_is_removed_when_the_node_manager_stops) {
        need_root();
        const char *const args[] = { "--cgroup-name", "itest-stop", NULL };
        h = harness_start(&(HarnessOptions) { .extra_args = args });
        const char *a = CREATE_OK(0);
        kactor_value_free(probe(a, "identity", NULL));
        _cleanup_free_ char *dir = NULL;
        cr_assert_geq(asprintf(&dir, "%s/kactor/itest-stop", v2_mount()), 0);
        cr_assert_eq(access(dir, F_OK), 0);
        h = harness_stop(h);
        cr_assert_neq(access(dir, F_OK), 0, "%s is left behind", dir);
}

/* --- GPUs through the device cgroup -------------------------------------------------------------- */

Test(isolation, gpu_actor_opens_its_own_gpu_and_no_other) {
        const char *list = make_fake_gpus();
        start(&(HarnessOptions) { .gpu_devices = list });
        const char *a = CREATE_OK(1, "NumGpus", "u", 1u);
        kactor_value *v = probe(a, "open_errno", "[\"/dev/null\"]");
        harness_assert_value(v, "0");
        kactor_value_free(v);
        cr_assert_str_eq(harness_property_string(h, MGR, IFACE, "CgroupManager"), "cgroupfs");
        /* GPU 0 is its own (ENXIO: allowed, no driver); GPU 1 is not (EPERM: the device program). */
        cr_assert_eq(open_errno(a, gpu0), ENXIO);
        cr_assert_eq(open_errno(a, ctl), ENXIO);
        cr_assert_eq(open_errno(a, gpu1), EPERM);
        free((char *) list);
}

Test(isolation, gpu_less_actor_opens_no_gpu) {
        const char *list = make_fake_gpus();
        start(&(HarnessOptions) { .gpu_devices = list });
        const char *a = CREATE_OK(0);
        cr_assert_eq(open_errno(a, gpu0), EPERM);
        cr_assert_eq(open_errno(a, gpu1), EPERM);
        cr_assert_eq(open_errno(a, ctl), EPERM);
        cr_assert_eq(open_errno(a, "/dev/zero"), 0);
        free((char *) list);
}

Test(isolation, gpus_are_exclusive_and_return_once_the_cgroup_is_empty) {
        const char *list = make_fake_gpus();
        start(&(HarnessOptions) { .gpu_devices = list });
        const char *a = CREATE_OK(1, "NumGpus", "u", 1u), *b = CREATE_OK(1, "NumGpus", "u", 1u);
        cr_assert_eq(open_errno(a, gpu0), ENXIO);
        cr_assert_eq(open_errno(a, gpu1), EPERM);
        cr_assert_eq(open_errno(b, gpu1), ENXIO);
        cr_assert_eq(open_errno(b, gpu0), EPERM);

        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *p;
        int r = create_with(&e, &p, 1, "NumGpus", "u", 1u);
        cr_assert_lt(r, 0);
        cr_assert(sd_bus_error_has_name(&e, "io.kactor.Error.InsufficientResources"), "%s", e.name);
        cr_assert(strstr(e.message, "GPU"), "%s", e.message);
        sd_bus_error_free(&e);

        /* Killing a frees its GPU, once everything in its cgroup is gone. */
        kactor_value *v = probe(a, "spawn_child", NULL);
        pid_t child = (pid_t) kactor_value_get_int(v);
        kactor_value_free(v);
        harness_busctl_call_ok(h, a, ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_pid_exit(child, HARNESS_TIMEOUT_MS));
        const char *c = NULL;
        for (unsigned i = 0; i < 500 && !c; i++) {
                r = create_with(&e, &p, 1, "NumGpus", "u", 1u);
                if (r >= 0)
                        c = p;
                else {
                        cr_assert(sd_bus_error_has_name(&e, "io.kactor.Error.InsufficientResources"), "%s", e.name);
                        sd_bus_error_free(&e);
                        sleep_ms(10);
                }
        }
        cr_assert_not_null(c, "the killed actor's GPU never came back");
        cr_assert_eq(open_errno(c, gpu0), ENXIO);
        cr_assert_eq(open_errno(c, gpu1), EPERM);
        free((char *) list);
}

/* --- least privilege ----------------------------------------------------------------------------- */

Test(isolation, root_caller_worker_has_no_capabilities) {
        start(NULL);
        const char *a = CREATE_OK(0);
        kactor_value *id = probe(a, "identity", NULL);
        cr_assert_eq(identity_int(id, "uid"), 0);
        cr_assert_str_eq(identity_str(id, "cap_eff"), "0000000000000000");
        cr_assert_str_eq(identity_str(id, "cap_prm"), "0000000000000000");
        cr_assert_str_eq(identity_str(id, "cap_bnd"), "0000000000000000");
        cr_assert_eq(identity_int(id, "no_new_privs"), 1);
        kactor_value_free(id);
}

/* Keys are per process session: a worker that kept the node manager's session keyring would share it
 * with every other actor (of any user) and with the node manager. */
Test(isolation, actors_do_not_share_a_session_keyring) {
        start(NULL);
        const char *a = CREATE_OK(0), *b = CREATE_OK(1, "User", "s", "daemon");
        kactor_value *ka = probe(a, "session_keyring", NULL), *kb = probe(b, "session_keyring", NULL);
        cr_assert_eq(kactor_value_type(ka), KACTOR_TYPE_INT);
        cr_assert_eq(kactor_value_type(kb), KACTOR_TYPE_INT);
        long mine = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
        cr_assert_neq(kactor_value_get_int(ka), kactor_value_get_int(kb), "two actors share a session keyring");
        cr_assert_neq(kactor_value_get_int(ka), mine, "an actor has the test's (the node manager's) session keyring");
        kactor_value_free(ka);
        kactor_value_free(kb);
}

Test(isolation, root_may_choose_the_user) {
        start(NULL);
        const char *a = CREATE_OK(1, "User", "s", "daemon");
        kactor_value *id = probe(a, "identity", NULL);
        cr_assert_eq(identity_int(id, "uid"), 1);
        cr_assert_eq(identity_int(id, "gid"), 1);
        cr_assert_str_eq(identity_str(id, "cap_eff"), "0000000000000000");
        kactor_value_free(id);
        cr_assert_eq(harness_property_uint(h, a, ACTOR, "User"), 1);
}

/* Runs fn in a child as uid/gid 65534 (nobody/nogroup) and returns its exit status; what it writes
 * to the fd it gets lands in buf. */
static int as_nobody(int (*fn)(int fd, void *userdata), void *userdata, char *buf, size_t size) {
        int pipefd[2];
        cr_assert_eq(pipe(pipefd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(2);
                _exit(fn(pipefd[1], userdata));
        }
        close(pipefd[1]);
        ssize_t n = read(pipefd[0], buf, size - 1);
        buf[MAX(n, (ssize_t) 0)] = 0;
        close(pipefd[0]);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int dbus_create_as_caller(int fd, void *userdata) {
        sd_bus *bus = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, h->bus_address) < 0 || sd_bus_set_bus_client(bus, true) < 0 ||
            sd_bus_start(bus) < 0)
                return 3;
        int r = sd_bus_call_method(bus, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor", &e, &reply, "ssava{sv}",
                                   harness_module(h, "isomod"), "Probe", 0, 0);
        dprintf(fd, "%s\n%s", r >= 0 ? "OK" : e.name ?: "", r >= 0 ? "" : e.message ?: "");
        return r >= 0 ? 0 : 4;
}

static int native_connect_as_caller(int fd, void *userdata) {
        kactor_client *c = NULL;
        int r = kactor_connect(&(struct kactor_connect_opts) { .sz = sizeof(struct kactor_connect_opts),
                                                               .socket_path = h->socket_path },
                               &c);
        dprintf(fd, "%d", r);
        kactor_client_free(c);
        return r >= 0 ? 0 : 4;
}

Test(isolation, caller_outside_the_access_group_is_refused) {
        start(NULL); /* the access group is "kactor", which nobody is not in */
        cr_assert_eq(chmod(h->dir, 0755), 0);
        char buf[512];

        cr_assert_eq(as_nobody(dbus_create_as_caller, NULL, buf, sizeof(buf)), 4, "%s", buf);
        cr_assert(strncmp(buf, "io.kactor.Error.AccessDenied\n", 29) == 0, "%s", buf);
        cr_assert(strstr(buf, "65534"), "the message names the user: %s", buf);

        cr_assert_eq(as_nobody(native_connect_as_caller, NULL, buf, sizeof(buf)), 4, "%s", buf);
        cr_assert_eq(atoi(buf), -EACCES, "%s", buf);

        /* Everyone else is still served. */
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "Actors"), 0);
}

Test(isolation, non_root_caller_gets_a_worker_of_its_own_user) {
        const char *const args[] = { "--access-group", "nogroup", NULL };
        start(&(HarnessOptions) { .extra_args = args });
        /* The bus socket lies in the harness's private directory. */
        cr_assert_eq(chmod(h->dir, 0755), 0);
        const char *module = harness_module(h, "isomod");
        int pipefd[2];
        cr_assert_eq(pipe(pipefd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                sd_bus *bus = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *path = "";
                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(2);
                if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, h->bus_address) < 0 ||
                    sd_bus_set_bus_client(bus, true) < 0 || sd_bus_start(bus) < 0)
                        _exit(3);
                int r = sd_bus_call_method(bus, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor", &e, &reply, "ssava{sv}",
                                           module, "Probe", 0, 0);
                if (r >= 0)
                        (void) sd_bus_message_read(reply, "o", &path);
                dprintf(pipefd[1], "%s\n%s", r >= 0 ? path : "ERROR", r >= 0 ? "" : e.message ?: "");
                _exit(r >= 0 ? 0 : 4);
        }
        close(pipefd[1]);
        char buf[512] = "";
        ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
        close(pipefd[0]);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "caller failed (%d): %.*s", status, (int) MAX(n, 0), buf);
        buf[strcspn(buf, "\n")] = 0;
        const char *a = harness_printf(h, "%s", buf);

        kactor_value *id = probe(a, "identity", NULL);
        cr_assert_eq(identity_int(id, "uid"), 65534, "%s", harness_value_str(h, id));
        cr_assert_eq(identity_int(id, "euid"), 65534);
        cr_assert_str_eq(identity_str(id, "cap_eff"), "0000000000000000");
        cr_assert_str_eq(identity_str(id, "cap_bnd"), "0000000000000000");
        cr_assert_eq(identity_int(id, "no_new_privs"), 1);
        kactor_value_free(id);
}

Test(isolation, module_writable_by_others_is_refused) {
        start(NULL);
        char dir[] = "/tmp/kactor-mod-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        _cleanup_free_ char *copy = NULL, *cmd = NULL;
        cr_assert_geq(asprintf(&copy, "%s/isomod.so", dir), 0);
        cr_assert_geq(asprintf(&cmd, "cp '%s' '%s'", harness_module(h, "isomod"), copy), 0);
        cr_assert_eq(system(cmd), 0);
        cr_assert_eq(chmod(copy, 0666), 0);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", copy, "Probe", 0, 0);
        unlink(copy);
        rmdir(dir);
        cr_assert_lt(r, 0, "a world-writable module was loaded");
        cr_assert(sd_bus_error_has_name(&e, "io.kactor.Error.AccessDenied"), "%s: %s", e.name, e.message);
        sd_bus_error_free(&e);
}

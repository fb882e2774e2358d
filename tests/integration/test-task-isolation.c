/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tasks run as their caller, as actors do. Two users made for the test (members of a group made for
 * it, the node manager's access group) submit tasks from modules of their own, over the native
 * socket and over D-Bus, and the tasks report who they are: their user, no capabilities,
 * no_new_privs, and a cgroup of their own worker under the node's subtree. A task's daemon dies with
 * its worker and with the node manager; modules others could have written are refused; two users
 * never share a worker.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../skip.h"
#include "harness.h"
#include "macro.h"
#include "users.h"

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER

#define NO_CAPS "0000000000000000"
#define DAEMONS_MAX 8

static Harness *h;
static TestGroup group; /* the access group, A's and B's primary group */
static TestUser ua, ub;
static char cgname[64];
static char moddir[] = "/tmp/kactor-taskmod-XXXXXX";
static bool moddir_made;
static pid_t daemons[DAEMONS_MAX]; /* killed at the end should a test fail */
static size_t n_daemons;

static void make_users(void) {
        users_group_make(&group, "ktask", "", USERS_GID_DEFAULT);
        users_make(&ua, "ktask", "a", &group, NULL);
        users_make(&ub, "ktask", "b", &group, NULL);
}

static void setup(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (users, cgroups)");
        if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) < 0 && access("/sys/fs/cgroup/cgroup.procs", F_OK) < 0)
                kactor_skip_test("no cgroup v2 hierarchy");
        make_users();
        snprintf(cgname, sizeof(cgname), "itask-%d", (int) getpid());
}

static void teardown(void) {
        char cmd[256];
        for (size_t i = 0; i < n_daemons; i++)
                (void) kill(daemons[i], SIGKILL);
        n_daemons = 0;
        if (moddir_made) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", moddir);
                (void) system(cmd);
                moddir_made = false;
                memcpy(moddir + strlen(moddir) - 6, "XXXXXX", 6);
        }
        /* Before harness_stop(), which exits the test process when the node manager misbehaved; -f:
         * its workers may still run as them. */
        users_remove(&ua);
        users_remove(&ub);
        users_group_remove(&group);
        h = harness_stop(h);
}

TestSuite(task_isolation, .init = setup, .fini = teardown, .timeout = 60);

/* A node manager whose access group is the test's, on a cgroup subtree of the test's. */
static void start(const HarnessOptions *base, const char *extra) {
        const char *args[] = { "--access-group", group.name, "--cgroup-name", cgname, extra, NULL };
        HarnessOptions o = base ? *base : (HarnessOptions) {};
        o.extra_args = args;
        h = harness_start(&o);
        /* The bus and the socket lie in the harness's private directory. */
        cr_assert_eq(chmod(h->dir, 0755), 0);
}

/* A copy of taskmod owned by uid with mode `mode`, in a directory of root's; harness-owned path. */
static const char *module_copy(const char *name, uid_t uid, mode_t mode) {
        if (!moddir_made) {
                cr_assert_not_null(mkdtemp(moddir));
                moddir_made = true;
                cr_assert_eq(chmod(moddir, 0755), 0);
        }
        const char *path = harness_printf(h, "%s/%s.so", moddir, name);
        _cleanup_free_ char *cmd = NULL;
        cr_assert_geq(asprintf(&cmd, "cp '%s' '%s'", harness_module(h, "taskmod"), path), 0);
        cr_assert_eq(system(cmd), 0);
        cr_assert_eq(chown(path, uid, group.gid), 0);
        cr_assert_eq(chmod(path, mode), 0);
        return path;
}

/* --- a caller of another user ------------------------------------------------------------------- */

typedef struct Request {
        const char *module;
        const char *function;
        const char *args_json; /* NULL: none */
        double num_cpus;       /* 0: the default */
        unsigned n;            /* tasks submitted together; 0: one */
        bool dbus;             /* SubmitTask over D-Bus instead of the native socket */
} Request;

static const char *const report_keys[] = { "uid", "euid", "gid", "pid", "cap_eff", "cap_bnd", "no_new_privs",
                                           "cgroup", "daemon", "worker", NULL };

static void report_value(FILE *f, const kactor_value *v) {
        if (kactor_value_is_error(v)) {
                fprintf(f, "ERROR %s %s\n", kactor_error_name(kactor_value_error_code(v)) ?: "?",
                        kactor_value_error_message(v) ?: "");
                return;
        }
        for (size_t i = 0; report_keys[i]; i++) {
                const kactor_value *x = kactor_value_map_get(v, report_keys[i]);
                if (!x)
                        continue;
                if (kactor_value_type(x) == KACTOR_TYPE_INT)
                        fprintf(f, "%s=%lld ", report_keys[i], (long long) kactor_value_get_int(x));
                else if (kactor_value_type(x) == KACTOR_TYPE_STRING)
                        fprintf(f, "%s=%s ", report_keys[i], kactor_value_get_string(x, NULL));
        }
        fputc('\n', f);
}

static int submit_native(FILE *f, const Request *q) {
        kactor_client *c = NULL;
        kactor_value *args = q->args_json ? harness_value(q->args_json) : NULL;
        unsigned n = q->n ?: 1;
        kactor_ref refs[64];
        kactor_value **values = NULL;
        struct kactor_task_opts opts = { .sz = sizeof(opts), .num_cpus = q->num_cpus ?: 1 };

        if (n > ELEMENTSOF(refs))
                return 10;
        int r = kactor_connect(&(struct kactor_connect_opts) { .sz = sizeof(struct kactor_connect_opts),
                                                               .socket_path = h->socket_path },
                               &c);
        if (r < 0) {
                fprintf(f, "CONNECT %d\n", r);
                return 11;
        }
        for (unsigned i = 0; i < n; i++)
                if (kactor_submit(c, q->module, q->function, args, &opts, &refs[i]) < 0) {
                        fprintf(f, "SUBMIT %s\n", kactor_client_error_message(c));
                        return 12;
                }
        r = kactor_get(c, refs, n, HARNESS_TIMEOUT_USEC, &values);
        if (r < 0) {
                fprintf(f, "GET %d %s\n", r, kactor_client_error_message(c));
                return 13;
        }
        for (unsigned i = 0; i < n; i++)
                report_value(f, values[i]);
        kactor_values_free(values, n);
        kactor_value_free(args);
        kactor_client_free(c);
        return 0;
}

/* SubmitTask and Get over D-Bus: "OK PATH" (the result is read back as root), or "ERROR NAME MESSAGE". */
static int submit_dbus(FILE *f, const Request *q) {
        sd_bus *bus = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;

        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, h->bus_address) < 0 || sd_bus_set_bus_client(bus, true) < 0 ||
            sd_bus_start(bus) < 0)
                return 20;
        int r = sd_bus_call_method(bus, HARNESS_BUS_NAME, MGR, IFACE, "SubmitTask", &e, &reply, "ssava{sv}", q->module,
                                   q->function, 0, 0);
        if (r >= 0) {
                /* A module can be refused at once or when the task is run: Get says which. */
                if (sd_bus_message_read(reply, "o", &path) < 0)
                        return 21;
                path = strdupa(path);
                reply = sd_bus_message_unref(reply);
                r = sd_bus_call_method(bus, HARNESS_BUS_NAME, MGR, IFACE, "Get", &e, &reply, "aot", 1, path,
                                       HARNESS_TIMEOUT_USEC);
        }
        if (r < 0)
                fprintf(f, "ERROR %s %s\n", e.name ?: "?", e.message ?: "");
        else
                fprintf(f, "OK %s\n", path);
        return 0;
}

/* Runs q as uid (in the test's group only) in a child; returns what it reported, one line per task. */
static const char *submit_as(uid_t uid, const Request *q) {
        int pipefd[2];
        cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                if (setgroups(1, &group.gid) < 0 || setresgid(group.gid, group.gid, group.gid) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        _exit(2);
                FILE *f = fdopen(pipefd[1], "w");
                if (!f)
                        _exit(3);
                int r = q->dbus ? submit_dbus(f, q) : submit_native(f, q);
                fclose(f);
                _exit(r);
        }
        close(pipefd[1]);
        char *out = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&out, &size);
        cr_assert_not_null(mem);
        char buf[4096];
        ssize_t n;
        while ((n = read(pipefd[0], buf, sizeof(buf))) > 0)
                fwrite(buf, 1, (size_t) n, mem);
        close(pipefd[0]);
        fclose(mem);
        harness_keep(h, out);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the caller (uid %u) failed (status %d): %s\n%s",
                  (unsigned) uid, status, out, harness_nodemgr_log(h));
        return out;
}

/* The value of key=VALUE in a report line (harness-owned), or NULL. */
static const char *field(const char *line, const char *key) {
        _cleanup_free_ char *k = NULL;
        cr_assert_geq(asprintf(&k, "%s=", key), 0);
        for (const char *p = line; (p = strstr(p, k)); p++)
                if (p == line || p[-1] == ' ') {
                        p += strlen(k);
                        return harness_printf(h, "%.*s", (int) strcspn(p, " \n"), p);
                }
        return NULL;
}

static long long field_int(const char *line, const char *key) {
        const char *v = field(line, key);
        cr_assert_not_null(v, "no %s in: %s", key, line);
        return atoll(v);
}

/* The cgroup (v2) a process is in, as /proc/PID/cgroup shows it. */
static const char *cgroup_of(pid_t pid) {
        char path[64], line[1024];
        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s: %m", path);
        const char *cg = NULL;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "0::", 3) == 0) {
                        line[strcspn(line, "\n")] = 0;
                        cg = harness_printf(h, "%s", line + 3);
                }
        fclose(f);
        cr_assert_not_null(cg);
        return cg;
}

/* A task's report says it ran as uid, without capabilities, in a cgroup of its own under the node's
 * subtree. Returns that cgroup. */
static const char *assert_isolated(const char *line, uid_t uid) {
        cr_assert_null(strstr(line, "ERROR"), "%s", line);
        cr_assert_eq(field_int(line, "uid"), (long long) uid, "the task ran as uid %lld, not %u: %s",
                     field_int(line, "uid"), (unsigned) uid, line);
        cr_assert_eq(field_int(line, "euid"), (long long) uid, "%s", line);
        cr_assert_str_eq(field(line, "cap_eff"), NO_CAPS, "%s", line);
        cr_assert_str_eq(field(line, "cap_bnd"), NO_CAPS, "%s", line);
        cr_assert_eq(field_int(line, "no_new_privs"), 1, "%s", line);
        const char *cg = field(line, "cgroup");
        const char *subtree = harness_printf(h, "/kactor/%s/", cgname);
        cr_assert_not_null(cg);
        cr_assert_str_neq(cg, "/", "the task has no cgroup of its own: %s", line);
        cr_assert_str_neq(cg, cgroup_of(h->nodemgr_pid), "the task is in the node manager's cgroup: %s", line);
        cr_assert(strncmp(cg, subtree, strlen(subtree)) == 0, "the task's cgroup %s is not under %s", cg, subtree);
        return cg;
}

/* The i-th line of a report (harness-owned). */
static const char *line_of(const char *out, size_t i) {
        const char *p = out;
        for (size_t k = 0; k < i; k++) {
                p = strchr(p, '\n');
                cr_assert_not_null(p, "no line %zu in: %s", i, out);
                p++;
        }
        return harness_printf(h, "%.*s", (int) strcspn(p, "\n"), p);
}

static void keep_daemon(pid_t pid) {
        cr_assert_lt(n_daemons, DAEMONS_MAX);
        daemons[n_daemons++] = pid;
}

/* --- tests ------------------------------------------------------------------------------------- */

Test(task_isolation, member_task_runs_as_the_caller_without_capabilities_in_a_cgroup_of_its_own) {
        start(NULL, NULL);
        const char *module = module_copy("mine", ua.uid, 0755);
        const char *out = submit_as(ua.uid, &(Request) { .module = module, .function = "identity" });
        const char *cg = assert_isolated(line_of(out, 0), ua.uid);
        cr_assert_eq(field_int(out, "gid"), (long long) group.gid, "%s", out);
        cr_assert(strstr(cg, "/task-"), "%s", cg);
}

Test(task_isolation, member_task_over_dbus_runs_as_the_caller) {
        start(NULL, NULL);
        const char *module = module_copy("mine", ua.uid, 0755);
        const char *out = submit_as(ua.uid, &(Request) { .module = module, .function = "identity", .dbus = true });
        cr_assert(strncmp(out, "OK ", 3) == 0, "%s", out);
        const char *path = harness_printf(h, "%.*s", (int) strcspn(out + 3, "\n"), out + 3);
        const char *v = harness_busctl_call_ok(h, MGR, IFACE, "Get", "aot", "1", path, "10000000", NULL);
        const char *uid = harness_printf(h, "\"uid\" x %u ", (unsigned) ua.uid);
        cr_assert(strstr(v, uid), "the task did not run as %u: %s", (unsigned) ua.uid, v);
        cr_assert(strstr(v, "\"cap_eff\" s \"" NO_CAPS "\""), "%s", v);
        cr_assert(strstr(v, "\"no_new_privs\" x 1 "), "%s", v);
        cr_assert(strstr(v, harness_printf(h, "\"cgroup\" s \"/kactor/%s/task-", cgname)), "%s", v);
}

Test(task_isolation, root_task_has_its_own_cgroup_and_no_capabilities) {
        start(NULL, NULL);
        kactor_client *c = harness_client(h);
        kactor_ref ref;
        cr_assert_eq(kactor_submit(c, harness_module(h, "taskmod"), "identity", NULL, NULL, &ref), 0);
        kactor_value *v = harness_get(c, ref);
        char *line = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&line, &size);
        report_value(f, v);
        fclose(f);
        kactor_value_free(v);
        harness_keep(h, line);
        assert_isolated(line, 0);
}

Test(task_isolation, module_writable_by_others_or_owned_by_another_user_is_refused) {
        start(NULL, NULL);
        const char *mine = module_copy("mine", ua.uid, 0755);
        const char *writable = module_copy("writable", ua.uid, 0666);
        const char *theirs = module_copy("theirs", ub.uid, 0755);

        for (int dbus = 0; dbus <= 1; dbus++) {
                const char *bad[] = { writable, theirs };
                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        const char *out =
                                submit_as(ua.uid, &(Request) { .module = bad[i], .function = "identity", .dbus = dbus });
                        cr_assert(strncmp(out, "ERROR io.kactor.Error.AccessDenied ", 35) == 0,
                                  "%s: %s loaded %s: %s", dbus ? "D-Bus" : "native", ua.name, bad[i], out);
                        cr_assert(strstr(out, bad[i]), "the refusal names the module: %s", out);
                }
        }
        /* Their own module is theirs to run. */
        assert_isolated(line_of(submit_as(ua.uid, &(Request) { .module = mine, .function = "identity" }), 0), ua.uid);
}

static pid_t spawn_daemon_as(uid_t uid, const char *module, pid_t *ret_worker) {
        const char *out = submit_as(uid, &(Request) { .module = module, .function = "spawn_daemon" });
        pid_t daemon = (pid_t) field_int(out, "daemon");
        keep_daemon(daemon);
        cr_assert(harness_pid_alive(daemon));
        if (ret_worker)
                *ret_worker = (pid_t) field_int(out, "worker");
        return daemon;
}

Test(task_isolation, task_daemon_dies_when_the_node_manager_stops) {
        start(NULL, NULL);
        pid_t of_member = spawn_daemon_as(ua.uid, module_copy("mine", ua.uid, 0755), NULL);
        pid_t of_root = spawn_daemon_as(0, harness_module(h, "taskmod"), NULL);
        /* SIGTERM, and wait until it has exited. */
        h = harness_stop(h);
        cr_assert(harness_wait_pid_exit(of_member, HARNESS_TIMEOUT_MS), "the member's task's daemon %d survived",
                  of_member);
        cr_assert(harness_wait_pid_exit(of_root, HARNESS_TIMEOUT_MS), "root's task's daemon %d survived", of_root);
        _cleanup_free_ char *dir = NULL;
        const char *v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0 ? "/sys/fs/cgroup"
                                                                                   : "/sys/fs/cgroup/unified";
        cr_assert_geq(asprintf(&dir, "%s/kactor/%s", v2, cgname), 0);
        cr_assert_neq(access(dir, F_OK), 0, "%s is left behind", dir);
}

Test(task_isolation, task_daemon_dies_with_its_worker) {
        start(NULL, NULL);
        const char *module = module_copy("mine", ua.uid, 0755);
        pid_t worker;
        pid_t daemon = spawn_daemon_as(ua.uid, module, &worker);
        cr_assert_neq(worker, h->nodemgr_pid);
        cr_assert_eq(kill(worker, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(daemon, HARNESS_TIMEOUT_MS), "the daemon %d outlived its worker %d", daemon,
                  worker);
        /* The user's next task gets a worker again. */
        const char *out = submit_as(ua.uid, &(Request) { .module = module, .function = "identity" });
        assert_isolated(line_of(out, 0), ua.uid);
        cr_assert_neq(field_int(out, "pid"), (long long) worker);
}

Test(task_isolation, two_users_never_share_a_worker) {
        start(NULL, NULL);
        const char *module = module_copy("mine", ua.uid, 0755), *module_b = module_copy("b", ub.uid, 0755);
        long long pids_a[8], pids_b[8];
        size_t n_a = 0, n_b = 0;
        const char *cgroups_a[8];

        /* Turns: each finds the other's idle workers, which it must not use. */
        for (int round = 0; round < 2; round++) {
                const char *out = submit_as(ua.uid, &(Request) { .module = module, .function = "identity", .n = 4 });
                for (size_t i = 0; i < 4; i++) {
                        const char *line = line_of(out, i);
                        cgroups_a[n_a] = assert_isolated(line, ua.uid);
                        pids_a[n_a++] = field_int(line, "pid");
                }
                out = submit_as(ub.uid, &(Request) { .module = module_b, .function = "identity", .n = 4 });
                for (size_t i = 0; i < 4; i++) {
                        const char *line = line_of(out, i);
                        const char *cg = assert_isolated(line, ub.uid);
                        for (size_t k = 0; k < n_a; k++)
                                cr_assert_str_neq(cg, cgroups_a[k], "A and B share cgroup %s", cg);
                        pids_b[n_b++] = field_int(line, "pid");
                }
        }
        for (size_t i = 0; i < n_a; i++)
                for (size_t k = 0; k < n_b; k++)
                        cr_assert_neq(pids_a[i], pids_b[k], "A and B ran in the same worker %lld", pids_a[i]);
}

Test(task_isolation, tasks_with_num_cpus_run_as_the_caller) {
        start(&(HarnessOptions) { .num_cpus = 4 }, NULL);
        const char *module = module_copy("mine", ua.uid, 0755);
        const double cpus[] = { 0.5, 1, 2, 4 };
        for (size_t i = 0; i < ELEMENTSOF(cpus); i++) {
                const char *out = submit_as(
                        ua.uid, &(Request) { .module = module, .function = "identity", .num_cpus = cpus[i], .n = 8 });
                for (size_t k = 0; k < 8; k++)
                        assert_isolated(line_of(out, k), ua.uid);
        }
}

Test(task_isolation, without_cgroups_a_member_task_still_runs_as_the_caller) {
        start(NULL, "--cgroup-manager=none");
        const char *module = module_copy("mine", ua.uid, 0755);
        const char *line = line_of(submit_as(ua.uid, &(Request) { .module = module, .function = "identity" }), 0);
        cr_assert_null(strstr(line, "ERROR"), "%s", line);
        cr_assert_eq(field_int(line, "uid"), (long long) ua.uid, "%s", line);
        cr_assert_str_eq(field(line, "cap_eff"), NO_CAPS, "%s", line);
        cr_assert_eq(field_int(line, "no_new_privs"), 1, "%s", line);
}

Test(task_isolation, what_a_member_task_asks_for_runs_as_the_member) {
        start(NULL, NULL);
        const char *module = module_copy("mine", ua.uid, 0755);
        const char *args = harness_printf(h, "[\"%s\"]", module);
        /* A task it submits, and an actor it creates: not as root. */
        const char *out = submit_as(ua.uid, &(Request) { .module = module, .function = "nested_identity", .args_json = args });
        assert_isolated(line_of(out, 0), ua.uid);
        out = submit_as(ua.uid, &(Request) { .module = module, .function = "actor_identity", .args_json = args });
        cr_assert_null(strstr(out, "ERROR"), "%s", out);
        cr_assert_eq(field_int(out, "uid"), (long long) ua.uid, "the task's actor runs as %lld: %s",
                     field_int(out, "uid"), out);
        cr_assert_str_eq(field(out, "cap_eff"), NO_CAPS, "%s", out);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Actors outlive the node manager (docs/restart.md): after SIGTERM or kill -9 of kactor-nodemgr and
 * a new one started on the same runtime directory, every actor runs on in the same worker with its
 * state, id, path, name and GPUs; objects survive; lineage too (a worker killed afterwards is rebuilt
 * exactly); calls in flight are applied exactly once; what cannot be restored is said.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "macro.h"

static Harness *h;

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(restart, .fini = teardown, .timeout = 120);

/* Workers wait this long for a node manager that went away (the default is minutes). */
static const HarnessOptions opts = { .extra_env = "KACTOR_WORKER_REATTACH_SEC=30" };

static const char *state_path(void) {
        return harness_printf(h, "%s/state", h->runtime_dir);
}

static int64_t call_int(kactor_client *c, kactor_actor a, const char *method, const char *args) {
        kactor_value *v = harness_call(c, a, method, args);
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "%s returned %s\n%s", method, harness_value_str(h, v),
                     harness_nodemgr_log(h));
        int64_t n = kactor_value_get_int(v);
        kactor_value_free(v);
        return n;
}

static const char *node_id(void) {
        return harness_property_string(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "NodeId");
}

/* The same actor, process and state, before and after. */
static void restart_keeps_counter(int sig) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        for (int i = 1; i <= 5; i++)
                cr_assert_eq(call_int(c, a, "increment", NULL), i);
        pid_t pid = harness_actor_pid(h, a);
        const char *path = harness_actor_path(h, a);
        const char *node = node_id();
        const char *cgroup = harness_property_string(h, path, HARNESS_IFACE_ACTOR, "ControlGroup");

        harness_restart_nodemgr(h, sig);

        cr_assert_str_eq(node_id(), node, "the node id changed");
        cr_assert(strcmp(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"), "alive") == 0,
                  "the actor is %s after the restart\n%s", harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"),
                  harness_nodemgr_log(h));
        cr_assert_eq(harness_actor_pid(h, a), pid, "the actor has another worker\n%s", harness_nodemgr_log(h));
        cr_assert_str_eq(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "ControlGroup"), cgroup);
        /* The same client, reconnected by itself; and a new one. */
        cr_assert_eq(call_int(c, a, "increment", NULL), 6, "%s", harness_nodemgr_log(h));
        kactor_client *c2 = harness_client(h);
        cr_assert_eq(call_int(c2, a, "get", NULL), 6);
        cr_assert_eq(harness_actor_pid(h, a), pid);
}

Test(restart, sigterm_keeps_the_actor_its_worker_and_its_state) {
        restart_keeps_counter(SIGTERM);
}

Test(restart, kill_9_keeps_the_actor_its_worker_and_its_state) {
        restart_keeps_counter(SIGKILL);
}

Test(restart, objects_and_named_actors_survive) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_value *v = harness_value("{\"weights\": [1, 2, 3], \"name\": \"model\"}");
        kactor_ref put;
        cr_assert_eq(kactor_put(c, v, &put), 0);
        kactor_value_free(v);
        struct kactor_actor_opts o = { .sz = sizeof(o), .name = "keeper", .detached = true };
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, &o);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        kactor_ref r;
        cr_assert_eq(kactor_call(c, a, "increment", NULL, &r), 0);
        cr_assert_eq(kactor_flush(c), 0);
        /* Its result is there before the restart, not fetched yet. */
        v = harness_get(c, r);
        harness_assert_value(v, "2");
        kactor_value_free(v);

        harness_restart_nodemgr(h, SIGKILL);

        v = harness_get(c, put);
        harness_assert_value(v, "{\"weights\": [1, 2, 3], \"name\": \"model\"}");
        kactor_value_free(v);
        v = harness_get(c, r);
        harness_assert_value(v, "2");
        kactor_value_free(v);
        /* Found again by name, from another client, over D-Bus too. */
        kactor_client *c2 = harness_client(h);
        kactor_actor found;
        cr_assert_eq(kactor_get_actor(c2, "keeper", &found), 0, "%s", kactor_client_error_message(c2));
        cr_assert(kactor_id_equal(found.id, a.id));
        cr_assert_eq(call_int(c2, found, "increment", NULL), 3);
        const char *out = harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "GetActor", "s",
                                                 "keeper", NULL);
        cr_assert_str_eq(harness_busctl_path(h, out), harness_actor_path(h, a));
}

/* Calls sent without waiting, the node manager killed in the middle: each is applied exactly once,
 * in order, and every caller gets its result. `early`: killed before the actor's constructor is
 * done; else while its worker runs the calls. */
static void calls_in_flight(bool early) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "lineagemod", "Journal", NULL, NULL);
        enum { N = 400 };
        kactor_ref refs[N];
        for (int i = 0; i < N; i++) {
                kactor_value *args = kactor_value_new_list();
                kactor_value_list_append(args, kactor_value_new_int(1));
                kactor_value_list_append(args, kactor_value_new_int(i));
                cr_assert_eq(kactor_call(c, a, "add", args, &refs[i]), 0);
                kactor_value_free(args);
                if (!early && i == 20) {
                        /* The worker is running calls now. */
                        kactor_value *v = harness_get(c, refs[10]);
                        kactor_value_free(v);
                }
                if (i == N / 2) {
                        cr_assert_eq(kactor_flush(c), 0);
                        harness_restart_nodemgr(h, SIGKILL);
                }
        }
        for (int i = 0; i < N; i++) {
                kactor_value *v = harness_get(c, refs[i]);
                cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "call %d: %s\n%s", i, harness_value_str(h, v),
                             harness_nodemgr_log(h));
                /* add returns the journal's length: call i made it i + 1, once. */
                cr_assert_eq(kactor_value_get_int(v), i + 1, "call %d returned %s", i, harness_value_str(h, v));
                kactor_value_free(v);
        }
        cr_assert_eq(call_int(c, a, "count", NULL), N);
}

Test(restart, calls_in_flight_at_kill_9_run_exactly_once) {
        calls_in_flight(false);
}

/* Several calls queued and a slow one running when the node manager goes: the worker flushes before
 * the slow method, finds the connection gone, and must run on (and re-attach), not exit. */
static void slow_calls_in_flight(int sig) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        pid_t pid = harness_actor_pid(h, a);
        kactor_ref r[3];
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                kactor_value *args = harness_value(harness_printf(h, "[400, \"slow %zu\"]", i));
                cr_assert_eq(kactor_call(c, a, "sleep_then", args, &r[i]), 0);
                kactor_value_free(args);
        }
        cr_assert_eq(kactor_flush(c), 0);
        usleep(100000); /* the first one runs */
        harness_restart_nodemgr(h, sig);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                kactor_value *v = harness_get(c, r[i]);
                harness_assert_value(v, harness_printf(h, "\"slow %zu\"", i));
                kactor_value_free(v);
        }
        cr_assert_eq(harness_actor_pid(h, a), pid, "the actor has another worker\n%s", harness_nodemgr_log(h));
}

Test(restart, slow_calls_in_flight_at_sigterm_finish_in_the_same_worker) {
        slow_calls_in_flight(SIGTERM);
}

Test(restart, slow_calls_in_flight_at_kill_9_finish_in_the_same_worker) {
        slow_calls_in_flight(SIGKILL);
}

/* A D-Bus caller sends nothing again after a restart: the call it made (running) and a task it
 * submitted (pending) are made again by the next node manager, at the paths it was given. */
static void dbus_requests_in_flight(int sig) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        pid_t pid = harness_actor_pid(h, a);
        const char *call = harness_busctl_path(
                h, harness_busctl_call_ok(h, harness_actor_path(h, a), HARNESS_IFACE_ACTOR, "Call", "sav",
                                          "sleep_then", "2", "x", "400", "s", "over D-Bus", NULL));
        const char *task = harness_busctl_path(
                h, harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "SubmitTask", "ssava{sv}",
                                          "testmod", "add", "2", "x", "40", "x", "2", "0", NULL));
        usleep(100000); /* the call runs */
        harness_restart_nodemgr(h, sig);
        cr_assert_str_eq(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", call,
                                                "10000000", NULL),
                         "av 1 s \"over D-Bus\"", "%s", harness_nodemgr_log(h));
        cr_assert_str_eq(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", task,
                                                "10000000", NULL),
                         "av 1 x 42");
        cr_assert_eq(harness_actor_pid(h, a), pid, "the call ran in another worker");
        /* Still pinned: released once, then gone. */
        harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Release", "ao", "2", call, task, NULL);
        char *out = NULL;
        cr_assert_neq(harness_busctl_call(h, &out, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", call,
                                          "0", NULL),
                      0);
        harness_keep(h, out);
}

Test(restart, dbus_calls_and_tasks_in_flight_at_sigterm_are_answered_after_it) {
        dbus_requests_in_flight(SIGTERM);
}

Test(restart, dbus_calls_and_tasks_in_flight_at_kill_9_are_answered_after_it) {
        dbus_requests_in_flight(SIGKILL);
}

/* Stopped while its constructor runs (its last handle gone at once): the worker reads its STOP, even
 * though its INIT_DONE could not be written any more, and ends; it does not take the closed
 * connection for a node manager gone and try to re-attach (it did, one time in six). */
Test(restart, a_worker_stopped_during_its_constructor_ends_quietly) {
        h = harness_start(&opts);
        for (int i = 0; i < 60; i++) {
                kactor_client *c = harness_client(h);
                (void) harness_create(h, c, "counter", "Counter", NULL, NULL);
                harness_client_close(h, c);
        }
        /* One more, waited for: the others' workers have long read what they were sent. */
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        cr_assert_null(strstr(harness_nodemgr_log(h), "went away"), "%s", harness_nodemgr_log(h));
        cr_assert_null(strstr(harness_nodemgr_log(h), "Refused ATTACH"), "%s", harness_nodemgr_log(h));
}

Test(restart, calls_sent_before_the_constructor_finished_survive_kill_9) {
        calls_in_flight(true);
}

/* The lineage survives: a worker killed after the restart is rebuilt with its exact state. */
Test(restart, lineage_survives_and_rebuilds_a_worker_killed_afterwards) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        struct kactor_actor_opts o = { .sz = sizeof(o), .max_restarts = -1 };
        kactor_actor a = harness_create(h, c, "lineagemod", "Journal", NULL, &o);
        for (int i = 0; i < 10; i++)
                cr_assert_eq(call_int(c, a, "add", harness_printf(h, "[1, %d]", i)), i + 1);
        pid_t pid = harness_actor_pid(h, a);

        harness_restart_nodemgr(h, SIGTERM);
        cr_assert_eq(call_int(c, a, "add", "[1, 10]"), 11);

        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS));
        kactor_value *v = harness_call(c, a, "entries", NULL);
        harness_assert_value(v, "[[1, 0], [1, 1], [1, 2], [1, 3], [1, 4], [1, 5], [1, 6], [1, 7], [1, 8], [1, 9], [1, 10]]");
        kactor_value_free(v);
        cr_assert_neq(harness_actor_pid(h, a), pid, "the worker was not replaced");
        cr_assert_eq(harness_property_uint(h, harness_actor_path(h, a), HARNESS_IFACE_ACTOR, "Restarts"), 1);
}

Test(restart, gpus_and_limits_stay_with_the_actor) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        struct kactor_actor_opts o = { .sz = sizeof(o), .num_gpus = 1, .num_cpus = 2 };
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, &o);
        const char *path = harness_actor_path(h, a);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        _cleanup_free_ char *gpus_before = NULL;
        const char *out = harness_busctl(h, &gpus_before, "get-property", HARNESS_BUS_NAME, path, HARNESS_IFACE_ACTOR,
                                         "GpuIds", NULL) == 0
                                  ? gpus_before
                                  : NULL;
        cr_assert_not_null(out);

        harness_restart_nodemgr(h, SIGKILL);

        _cleanup_free_ char *gpus_after = NULL;
        cr_assert_eq(harness_busctl(h, &gpus_after, "get-property", HARNESS_BUS_NAME, path, HARNESS_IFACE_ACTOR,
                                    "GpuIds", NULL),
                     0);
        cr_assert_str_eq(gpus_after, gpus_before);
        /* One of two GPUs and 2 of 16 CPUs are still taken. */
        _cleanup_free_ char *free_gpus = NULL;
        cr_assert_eq(harness_busctl(h, &free_gpus, "get-property", HARNESS_BUS_NAME, HARNESS_BUS_PATH,
                                    HARNESS_IFACE_MANAGER, "FreeGpus", NULL),
                     0);
        cr_assert_eq(strncmp(free_gpus, "au 1 ", 5), 0, "FreeGpus: %s", free_gpus);
        _cleanup_free_ char *free_cpus = NULL;
        cr_assert_eq(harness_busctl(h, &free_cpus, "get-property", HARNESS_BUS_NAME, HARNESS_BUS_PATH,
                                    HARNESS_IFACE_MANAGER, "FreeCpus", NULL),
                     0);
        cr_assert_str_eq(free_cpus, "d 14");
        cr_assert_eq(call_int(c, a, "increment", NULL), 2);
}

/* A worker that died while no node manager ran: its actor says so (and is rebuilt when it may be). */
Test(restart, a_worker_that_died_meanwhile_is_named_in_the_death_cause) {
        /* The node manager and the worker die together here: a relayed call's answer comes once the
         * journal has it, a direct call's as soon as it ran (docs/restart.md, "Direct calls"). */
        cr_assert_eq(setenv("KACTOR_DIRECT_CALLS", "0", 1), 0);
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor gone = harness_create(h, c, "counter", "Counter", NULL, NULL);
        struct kactor_actor_opts o = { .sz = sizeof(o), .max_restarts = -1 };
        kactor_actor rebuilt = harness_create(h, c, "lineagemod", "Journal", NULL, &o);
        cr_assert_eq(call_int(c, gone, "increment", NULL), 1);
        cr_assert_eq(call_int(c, rebuilt, "add", "[1, 7]"), 1);
        pid_t p1 = harness_actor_pid(h, gone), p2 = harness_actor_pid(h, rebuilt);
        const char *path = harness_actor_path(h, gone);

        cr_assert_eq(kill(h->nodemgr_pid, SIGKILL), 0);
        cr_assert_eq(kill(p1, SIGKILL), 0);
        cr_assert_eq(kill(p2, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(p1, HARNESS_TIMEOUT_MS) && harness_wait_pid_exit(p2, HARNESS_TIMEOUT_MS));
        harness_restart_nodemgr(h, 0);

        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS));
        cr_assert_str_eq(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "DeathCause"),
                         "the worker exited while the node manager was down");
        kactor_value *v = harness_call(c, rebuilt, "entries", NULL);
        harness_assert_value(v, "[[1, 7]]");
        kactor_value_free(v);
}

static void damage(const char *path, long at, const char *bytes, size_t n) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "open %s: %m", path);
        cr_assert_eq(pwrite(fd, bytes, n, at), (ssize_t) n);
        close(fd);
}

Test(restart, a_damaged_journal_restores_what_precedes_the_damage_and_says_where) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        cr_assert_eq(kill(h->nodemgr_pid, SIGKILL), 0);
        /* The header and the first records stay; damage comes after them. */
        struct stat st;
        cr_assert_eq(stat(state_path(), &st), 0);
        damage(state_path(), st.st_size - 3, "\xff\xff\xff", 3);
        harness_restart_nodemgr(h, 0);
        cr_assert(strstr(harness_nodemgr_log(h), "is damaged at byte"), "%s", harness_nodemgr_log(h));
        /* The node still serves. */
        kactor_actor b = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, b, "increment", NULL), 1);
}

Test(restart, a_journal_of_another_format_version_is_set_aside) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        pid_t pid = harness_actor_pid(h, a);
        cr_assert_eq(kill(h->nodemgr_pid, SIGKILL), 0);
        /* The first batch: [length][CRC-32][records: the header [1, 0, "kactor-state", version, ...]
         * first]: version 99, with a CRC that matches, as a journal another format version wrote. */
        int fd = open(state_path(), O_RDWR | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        uint8_t buf[4096];
        ssize_t got = pread(fd, buf, sizeof(buf), 0);
        cr_assert_gt(got, 8);
        uint32_t len = buf[0] | (uint32_t) buf[1] << 8 | (uint32_t) buf[2] << 16 | (uint32_t) buf[3] << 24;
        cr_assert_leq(len + 8, (size_t) got, "the first batch is larger than expected");
        uint8_t *magic = memmem(buf + 8, len, "kactor-state", 12);
        cr_assert_not_null(magic);
        cr_assert_eq(magic[12], 2, "format version byte");
        magic[12] = 99;
        uint32_t crc = (uint32_t) crc32(0, buf + 8, len);
        uint8_t le[4] = { crc, crc >> 8, crc >> 16, crc >> 24 };
        memcpy(buf + 4, le, 4);
        cr_assert_eq(pwrite(fd, buf, len + 8, 0), (ssize_t) (len + 8));
        close(fd);
        harness_restart_nodemgr(h, 0);
        cr_assert(strstr(harness_nodemgr_log(h), "has format version 99"), "%s", harness_nodemgr_log(h));
        cr_assert_eq(access(harness_printf(h, "%s.unreadable", state_path()), F_OK), 0);
        /* Nothing was restored: the old worker is an orphan, reaped. */
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS), "the orphaned worker %d survived", pid);
}

Test(restart, shutdown_stops_every_actor_and_leaves_no_journal) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        pid_t pid = harness_actor_pid(h, a);
        /* Root only: another user's call is refused by the bus's policy for unprivileged methods. */
        sd_bus_error error = SD_BUS_ERROR_NULL;
        cr_assert_geq(harness_bus_call(h, &error, NULL, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Shutdown", ""),
                      0, "%s", error.message);
        sd_bus_error_free(&error);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS), "the worker survived Shutdown");
        cr_assert(harness_wait_pid_exit(h->nodemgr_pid, HARNESS_TIMEOUT_MS), "the node manager did not exit");
        cr_assert_neq(access(state_path(), F_OK), 0, "the journal is left");
        /* harness_stop() expects a running node manager: start one for it (nothing to restore). */
        harness_restart_nodemgr(h, 0);
        cr_assert(strstr(harness_nodemgr_log(h), "Read the state journal") == NULL ||
                  strstr(harness_nodemgr_log(h), "0 actors"));
}

Test(restart, a_second_node_manager_on_the_same_runtime_directory_is_refused) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        char *out = NULL;
        const char *argv_dir = h->runtime_dir;
        _cleanup_free_ char *cmd = NULL;
        cr_assert_geq(asprintf(&cmd, "%s/kactor-nodemgr --bus unix:path=/nonexistent --runtime-dir %s 2>&1", h->build,
                               argv_dir),
                      0);
        FILE *p = popen(cmd, "re");
        cr_assert_not_null(p);
        char line[512] = {};
        size_t n = fread(line, 1, sizeof(line) - 1, p);
        line[n] = 0;
        int status = pclose(p);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "a second node manager ran");
        cr_assert(strstr(line, "Another node manager runs with the runtime directory"), "%s", line);
        free(out);
        /* The first one and its actor are untouched. */
        cr_assert_eq(call_int(c, a, "increment", NULL), 2);
}

/* An actor a D-Bus connection owns (Detached=false) stays owned by it across a restart: it lives
 * while that connection does, and stops once it goes. */
static void dbus_owner_survives(int sig, unsigned restarts) {
        h = harness_start(&opts);
        sd_bus *owner = harness_bus_new(h);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        cr_assert_geq(sd_bus_call_method(owner, HARNESS_BUS_NAME, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER,
                                         "CreateActor", &e, &reply, "ssava{sv}", "counter", "Counter", 0, 1,
                                         "Detached", "b", 0),
                      0, "CreateActor: %s", e.message);
        cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
        path = harness_keep(h, strdup(path));
        sd_bus_message_unref(reply);
        cr_assert(harness_wait_actor_state(h, path, "alive", HARNESS_TIMEOUT_MS));
        pid_t pid = (pid_t) harness_property_uint(h, path, HARNESS_IFACE_ACTOR, "Pid");

        for (unsigned i = 0; i < restarts; i++)
                harness_restart_nodemgr(h, sig);
        cr_assert_str_eq(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"), "alive");
        cr_assert_eq((pid_t) harness_property_uint(h, path, HARNESS_IFACE_ACTOR, "Pid"), pid);

        /* Its owner goes: so does the actor. */
        sd_bus_flush_close_unref(owner);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS),
                  "the actor of a D-Bus connection that closed after the restart still runs\n%s",
                  harness_nodemgr_log(h));
}

Test(restart, a_dbus_owned_actor_stays_owned_across_sigterm) {
        dbus_owner_survives(SIGTERM, 1);
}

Test(restart, a_dbus_owned_actor_stays_owned_across_kill_9) {
        dbus_owner_survives(SIGKILL, 1);
}

/* The journal a restarted node manager starts with keeps the owner too. */
Test(restart, a_dbus_owned_actor_stays_owned_across_two_restarts) {
        dbus_owner_survives(SIGTERM, 2);
}

/* GPUs on fake device nodes (TESTING.md): after a restart, the actor still opens the GPU it was given
 * (ENXIO: allowed, no driver behind it) and not the other (EPERM: its device program, attached to its
 * cgroup by the previous node manager, is still there), and the GPU is still taken. */
Test(restart, an_actors_gpu_stays_its_own_through_its_device_program) {
        char dir[] = "/tmp/kactor-gpus-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char g0[64], g1[64], ctl[64], list[256];
        snprintf(g0, sizeof(g0), "%s/nvidia0", dir);
        snprintf(g1, sizeof(g1), "%s/nvidia1", dir);
        snprintf(ctl, sizeof(ctl), "%s/nvidiactl", dir);
        cr_assert_eq(mknod(g0, S_IFCHR | 0666, makedev(195, 0)), 0, "mknod: %m");
        cr_assert_eq(mknod(g1, S_IFCHR | 0666, makedev(195, 1)), 0, "mknod: %m");
        cr_assert_eq(mknod(ctl, S_IFCHR | 0666, makedev(195, 255)), 0, "mknod: %m");
        snprintf(list, sizeof(list), "%s,%s,%s", g0, g1, ctl);
        HarnessOptions o = opts;
        o.gpu_devices = list;
        const char *const args[] = { "--cgroup-manager", "cgroupfs", NULL };
        o.extra_args = args;
        h = harness_start(&o);
        kactor_client *c = harness_client(h);
        struct kactor_actor_opts ao = { .sz = sizeof(ao), .num_gpus = 1 };
        kactor_actor a = harness_create(h, c, "isomod", "Probe", NULL, &ao);
        cr_assert_eq(call_int(c, a, "open_errno", harness_printf(h, "[\"%s\"]", g0)), ENXIO);
        cr_assert_eq(call_int(c, a, "open_errno", harness_printf(h, "[\"%s\"]", g1)), EPERM);

        for (int sig = 0; sig < 2; sig++) {
                harness_restart_nodemgr(h, sig == 0 ? SIGTERM : SIGKILL);
                cr_assert_eq(call_int(c, a, "open_errno", harness_printf(h, "[\"%s\"]", g0)), ENXIO,
                             "its own GPU after the restart\n%s", harness_nodemgr_log(h));
                cr_assert_eq(call_int(c, a, "open_errno", harness_printf(h, "[\"%s\"]", g1)), EPERM,
                             "another GPU after the restart");
                _cleanup_free_ char *free_gpus = NULL;
                cr_assert_eq(harness_busctl(h, &free_gpus, "get-property", HARNESS_BUS_NAME, HARNESS_BUS_PATH,
                                            HARNESS_IFACE_MANAGER, "FreeGpus", NULL),
                             0);
                cr_assert_eq(strncmp(free_gpus, "au 1 1", 6), 0, "FreeGpus: %s", free_gpus);
        }
        h = harness_stop(h);
        (void) unlink(g0);
        (void) unlink(g1);
        (void) unlink(ctl);
        (void) rmdir(dir);
}

/* How many results the worker of the actor sent again when it re-attached last, from the log. */
static long last_results_sent_again(void) {
        const char *log = harness_nodemgr_log(h), *p, *last = NULL;
        for (p = log; (p = strstr(p, "re-attached (")); p++)
                last = p;
        cr_assert_not_null(last, "no re-attach in the log:\n%s", log);
        return strtol(last + strlen("re-attached ("), NULL, 10);
}

/* A worker's results are acknowledged once the journal has them, after it re-attached as before:
 * at the second restart it sends a handful again, not every call since the first (the count of its
 * results once started from 0 again in the new node manager, acknowledgements never reached the
 * worker again, and it kept them all: a restart under load hung sorting through them). */
Test(restart, results_are_acknowledged_after_a_restart_too) {
        enum { N = 2000 };
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        static kactor_ref refs[N];
        kactor_value **values;

        /* N results before the first restart, N after it: a count started again from 0 would lag N
         * behind the worker's. */
        for (int round = 0; round < 2; round++) {
                if (round == 1)
                        harness_restart_nodemgr(h, SIGTERM);
                for (int i = 0; i < N; i++)
                        cr_assert_eq(kactor_call(c, a, "increment", NULL, &refs[i]), 0);
                cr_assert_eq(kactor_get(c, refs, N, 0, &values), 0, "%s", harness_nodemgr_log(h));
                cr_assert_eq(kactor_value_get_int(values[N - 1]), (round + 1) * N);
                kactor_values_free(values, N);
        }
        /* A relayed call after them carries the acknowledgement of what the journal has by then. */
        cr_assert_eq(setenv("KACTOR_DIRECT_CALLS", "0", 1), 0);
        kactor_client *relayed = harness_client(h);
        cr_assert_eq(call_int(relayed, a, "get", NULL), 2 * N);

        harness_restart_nodemgr(h, SIGTERM);
        cr_assert_eq(call_int(c, a, "increment", NULL), 2 * N + 1, "%s", harness_nodemgr_log(h));
        long again = last_results_sent_again();
        cr_assert_leq(again, 2, "the worker sent %ld results again at the second restart:\n%s", again,
                      harness_nodemgr_log(h));
}

/* A client that does not talk to the node manager between two restarts (its calls all went to the
 * workers, or it was idle) comes back to its session after the second: the journal the second node
 * manager starts writes the sessions it restored and is still waiting for, and what they hold. */
Test(restart, a_client_that_stays_away_keeps_its_session_across_two_restarts) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        for (int i = 1; i <= 3; i++)
                cr_assert_eq(call_int(c, a, "increment", NULL), i);
        kactor_value *kept = harness_value("\"kept across two restarts\"");
        kactor_ref put;
        cr_assert_eq(kactor_put(c, kept, &put), 0);
        kactor_value_free(kept);
        cr_assert_eq(kactor_flush(c), 0);
        pid_t pid = harness_actor_pid(h, a);

        harness_restart_nodemgr(h, SIGTERM);
        harness_restart_nodemgr(h, SIGTERM);

        /* What it holds is still there, and so is its actor. */
        kactor_value *v = harness_get(c, put);
        cr_assert_str_eq(harness_value_str(h, v), "\"kept across two restarts\"", "%s", harness_nodemgr_log(h));
        kactor_value_free(v);
        cr_assert_eq(call_int(c, a, "increment", NULL), 4, "%s", harness_nodemgr_log(h));
        cr_assert_eq(harness_actor_pid(h, a), pid);
}

/* Exactly once across a broken direct socket and two restarts: a direct call its worker could not
 * run (the node manager went away first) is sent again relayed after a later relayed call of the
 * same client; once its result was got and released, the next restart sends it nowhere again (the
 * client's log of frames to send again stays in the order of their ids). */
static void direct_call_sent_again_runs_once(int sig) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        kactor_actor b = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1); /* a's direct socket is open */
        pid_t worker = harness_actor_pid(h, a);

        /* a's worker cannot read its socket: the call waits there. Then a relayed call of b (its
         * argument names an object, so it cannot go direct), made after it. */
        cr_assert_eq(kill(worker, SIGSTOP), 0);
        kactor_ref late, relayed, put;
        cr_assert_eq(kactor_call(c, a, "increment", NULL, &late), 0);
        kactor_value *one = harness_value("1");
        cr_assert_eq(kactor_put(c, one, &put), 0);
        kactor_value_free(one);
        kactor_value *args = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_ref(put)), 0);
        cr_assert_eq(kactor_call(c, b, "increment", args, &relayed), 0);
        kactor_value_free(args);
        cr_assert_eq(kactor_flush(c), 0);
        cr_assert_lt(late.id.lo, relayed.id.lo);

        /* The node manager goes before the worker could record the call: it does not run it, and
         * closes its socket once it re-attached; the client sends it again, relayed. */
        harness_restart_nodemgr(h, sig);
        cr_assert_eq(kill(worker, SIGCONT), 0);
        kactor_value *v = harness_get(c, late);
        cr_assert_eq(kactor_value_get_int(v), 2, "%s\n%s", harness_value_str(h, v), harness_nodemgr_log(h));
        kactor_value_free(v);
        v = harness_get(c, relayed);
        cr_assert_eq(kactor_value_get_int(v), 1);
        kactor_value_free(v);
        kactor_ref done[] = { late, relayed, put };
        cr_assert_eq(kactor_ref_release(c, done, ELEMENTSOF(done)), 0);
        cr_assert_eq(kactor_flush(c), 0);

        /* The next restart: nothing of those is sent again to run once more. */
        harness_restart_nodemgr(h, sig);
        cr_assert_eq(call_int(c, a, "get", NULL), 2, "the call ran again after the second restart\n%s",
                     harness_nodemgr_log(h));
        cr_assert_eq(call_int(c, b, "get", NULL), 1);
        cr_assert_eq(harness_actor_pid(h, a), worker);
}

Test(restart, a_direct_call_sent_again_after_a_restart_runs_once_across_the_next) {
        direct_call_sent_again_runs_once(SIGTERM);
}

Test(restart, a_direct_call_sent_again_after_a_kill_9_runs_once_across_the_next) {
        direct_call_sent_again_runs_once(SIGKILL);
}

/* The lineage file (docs/restart.md): there is one, lineage.<generation>, beside the state. */
static const char *lineage_file(void) {
        glob_t g = {};
        cr_assert_eq(glob(harness_printf(h, "%s/lineage.*", h->runtime_dir), 0, NULL, &g), 0, "no lineage file in %s",
                     h->runtime_dir);
        cr_assert_eq(g.gl_pathc, 1, "%zu lineage files in %s", g.gl_pathc, h->runtime_dir);
        const char *path = harness_printf(h, "%s", g.gl_pathv[0]);
        globfree(&g);
        return path;
}

/* Direct calls are answered before the node manager has read their records: showing the actor
 * over D-Bus reads them first (and the iteration that does writes them to the journal). */
static void records_read(kactor_actor a, uint64_t calls) {
        cr_assert_eq(harness_property_uint(h, harness_actor_path(h, a), HARNESS_IFACE_ACTOR, "CallsCompleted"), calls);
}

/* A Journal (lineagemod) that restarts, with n entries [caller, 0..n-1], their records read. */
static kactor_actor journal_with_entries(kactor_client *c, int caller, int n) {
        struct kactor_actor_opts o = { .sz = sizeof(o), .max_restarts = -1 };
        kactor_actor a = harness_create(h, c, "lineagemod", "Journal", NULL, &o);
        for (int i = 0; i < n; i++)
                cr_assert_eq(call_int(c, a, "add", harness_printf(h, "[%d, %d]", caller, i)), i + 1);
        records_read(a, (uint64_t) n);
        return a;
}

/* Kills a's worker (pid): the worker rebuilt from the lineage has exactly the n entries of caller. */
static void assert_rebuilt_exactly(kactor_client *c, kactor_actor a, pid_t pid, int caller, int n) {
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS));
        char *want = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&want, &size);
        for (int i = 0; i < n; i++)
                fprintf(f, "%s[%d, %d]", i ? ", " : "[", caller, i);
        fputs(n ? "]" : "[]", f);
        fclose(f);
        kactor_value *v = harness_call(c, a, "entries", NULL);
        harness_assert_value(v, want);
        kactor_value_free(v);
        free(want);
        cr_assert_neq(harness_actor_pid(h, a), pid, "the worker was not replaced");
}

static kactor_value *big_string_args(size_t len) {
        char *s = malloc(len + 1);
        cr_assert_not_null(s);
        memset(s, 'x', len);
        s[len] = 0;
        kactor_value *args = kactor_value_new_list();
        kactor_value_list_append(args, kactor_value_new_string(s));
        free(s);
        return args;
}

/* A logged call's record is written once: snapshots of the state (here after 24 MiB of objects put
 * and released, which the state journal then holds no more) leave the lineage file as it was, and the
 * lineage still rebuilds the actor exactly after a kill -9 of the node manager. */
Test(restart, a_snapshot_of_the_state_does_not_rewrite_the_lineage) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = journal_with_entries(c, 1, 10);
        const char *lineage = lineage_file();
        struct stat l_before, s_before, l_after, s_after;
        cr_assert_eq(stat(lineage, &l_before), 0);
        cr_assert_eq(stat(state_path(), &s_before), 0);

        for (int i = 0; i < 24; i++) {
                kactor_value *v = big_string_args(1024 * 1024);
                kactor_ref r;
                cr_assert_eq(kactor_put(c, v, &r), 0, "%s", kactor_client_error_message(c));
                kactor_value_free(v);
                cr_assert_eq(kactor_ref_release(c, &r, 1), 0);
        }
        /* Answered after the iterations that wrote the puts (and the snapshot) are done. */
        records_read(a, 10);
        cr_assert_eq(stat(state_path(), &s_after), 0);
        cr_assert_eq(stat(lineage, &l_after), 0);
        cr_assert_neq(s_after.st_ino, s_before.st_ino, "the state journal was not rewritten as a snapshot");
        cr_assert_lt(s_after.st_size, 16 * 1024 * 1024, "the snapshot holds %lld bytes", (long long) s_after.st_size);
        cr_assert_eq(l_after.st_ino, l_before.st_ino, "the lineage file was replaced");
        cr_assert_eq(l_after.st_size, l_before.st_size, "the lineage file changed: %lld bytes, %lld before",
                     (long long) l_after.st_size, (long long) l_before.st_size);

        pid_t pid = harness_actor_pid(h, a);
        harness_restart_nodemgr(h, SIGKILL);
        cr_assert_eq(call_int(c, a, "add", "[1, 10]"), 11);
        assert_rebuilt_exactly(c, a, pid, 1, 11);
}

/* The lineage file is rewritten, as its next generation, once most of it is dead: here 20 MiB of
 * an actor that was then killed. The old file goes; the other actor's lineage is in the new one and
 * rebuilds it exactly after a kill -9 of the node manager. */
Test(restart, a_lineage_file_mostly_dead_is_rewritten_as_the_next_generation) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor keep = journal_with_entries(c, 2, 5);
        kactor_actor big = harness_create(h, c, "counter", "Counter", NULL, NULL);
        kactor_value *args = big_string_args(128 * 1024);
        for (int i = 0; i < 160; i++) {
                kactor_ref r;
                cr_assert_eq(kactor_call(c, big, "increment", args, &r), 0);
                cr_assert_eq(kactor_ref_release(c, &r, 1), 0);
        }
        kactor_value_free(args);
        cr_assert_eq(call_int(c, big, "get", NULL), 160);
        records_read(big, 161);
        const char *before = lineage_file();
        struct stat st;
        cr_assert_eq(stat(before, &st), 0);
        cr_assert_gt(st.st_size, 20 * 1024 * 1024, "the lineage file has %lld bytes", (long long) st.st_size);

        pid_t big_pid = harness_actor_pid(h, big);
        cr_assert_eq(kactor_kill(c, big, true), 0, "%s", kactor_client_error_message(c));
        cr_assert(harness_wait_pid_exit(big_pid, HARNESS_TIMEOUT_MS));
        /* Anything written after it: the iteration that writes it rewrites the lineage file. */
        cr_assert_eq(call_int(c, keep, "add", "[2, 5]"), 6);
        records_read(keep, 6);
        const char *after = lineage_file();
        cr_assert_str_neq(after, before, "the lineage file was not rewritten\n%s", harness_nodemgr_log(h));
        cr_assert_eq(access(before, F_OK), -1, "the old generation %s is left", before);
        cr_assert_eq(stat(after, &st), 0);
        cr_assert_lt(st.st_size, 1024 * 1024, "the new generation has %lld bytes", (long long) st.st_size);

        pid_t pid = harness_actor_pid(h, keep);
        harness_restart_nodemgr(h, SIGKILL);
        assert_rebuilt_exactly(c, keep, pid, 2, 6);
}

static uint32_t le32(const uint8_t *p) {
        return p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = v;
        p[1] = v >> 8;
        p[2] = v >> 16;
        p[3] = v >> 24;
}

/* Appends one batch of the records in [data, data + len) to out, less the records of type drop. */
static void copy_batch(FILE *out, const uint8_t *data, uint32_t len, unsigned drop) {
        uint8_t *keep = malloc(len ?: 1);
        uint32_t k = 0;
        for (uint32_t at = 0; at < len;) {
                uint32_t rlen = le32(data + at);
                const uint8_t *payload = data + at + 4;
                /* [type, ...]: a fixarray's type comes next, an array 16's after its two length bytes. */
                unsigned type = (payload[0] & 0xf0) == 0x90 ? payload[1] : payload[3];
                if (type != drop) {
                        memcpy(keep + k, data + at, 4 + rlen);
                        k += 4 + rlen;
                }
                at += 4 + rlen;
        }
        uint8_t head[8];
        put_le32(head, k);
        put_le32(head + 4, (uint32_t) crc32(0, keep, k));
        fwrite(head, 1, 8, out);
        fwrite(keep, 1, k, out);
        free(keep);
}

/* An upgrade: a journal of format version 1 (before the lineage file: its J_LOG records inline, no
 * J_LINEAGE, which is type 17) is read, lineage and all. Made here from the current files, as the
 * previous release wrote it: the header says 1, the lineage's batches follow the state's. */
Test(restart, a_journal_of_format_version_1_with_the_lineage_inline_is_read) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = journal_with_entries(c, 3, 7);
        pid_t pid = harness_actor_pid(h, a);
        cr_assert_eq(kill(h->nodemgr_pid, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(h->nodemgr_pid, HARNESS_TIMEOUT_MS));

        size_t state_size, lineage_size;
        const char *lineage = lineage_file();
        uint8_t *state = (uint8_t *) harness_read_file(h, state_path(), &state_size);
        const uint8_t *log = (const uint8_t *) harness_read_file(h, lineage, &lineage_size);
        uint8_t *magic = memmem(state + 8, le32(state), "kactor-state", 12);
        cr_assert_not_null(magic);
        cr_assert_eq(magic[12], 2, "format version byte");
        magic[12] = 1;
        FILE *out = fopen(state_path(), "we");
        cr_assert_not_null(out);
        for (size_t at = 0; at + 8 <= state_size; at += 8 + le32(state + at))
                copy_batch(out, state + at + 8, le32(state + at), 17);
        for (size_t at = 0; at + 8 <= lineage_size; at += 8 + le32(log + at))
                copy_batch(out, log + at + 8, le32(log + at), 17);
        cr_assert_eq(fclose(out), 0);
        cr_assert_eq(unlink(lineage), 0);

        harness_restart_nodemgr(h, 0);
        cr_assert_eq(harness_actor_pid(h, a), pid, "the worker was not taken back\n%s", harness_nodemgr_log(h));
        /* Written in the new format at once: a lineage file again. */
        lineage_file();
        assert_rebuilt_exactly(c, a, pid, 3, 7);
}

/* A restart goes on appending to the lineage file it read (not written again whole), cut to the
 * length the state names: bytes a crash left past it (here, garbage) are not read and are gone. */
Test(restart, a_restart_appends_to_the_lineage_file_past_what_a_crash_left) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = journal_with_entries(c, 4, 4);
        const char *lineage = lineage_file();
        struct stat before, after;
        cr_assert_eq(stat(lineage, &before), 0);
        cr_assert_eq(kill(h->nodemgr_pid, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(h->nodemgr_pid, HARNESS_TIMEOUT_MS));
        int fd = open(lineage, O_WRONLY | O_APPEND | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        static const char garbage[] = "\x20\0\0\0garbage a crash left behind";
        cr_assert_eq(write(fd, garbage, sizeof(garbage) - 1), (ssize_t) sizeof(garbage) - 1);
        close(fd);

        harness_restart_nodemgr(h, 0);
        cr_assert_str_eq(lineage_file(), lineage, "the lineage file was written again as another generation");
        cr_assert_eq(stat(lineage, &after), 0);
        cr_assert_eq(after.st_ino, before.st_ino);
        cr_assert_eq(after.st_size, before.st_size, "the bytes past its length are still there");
        cr_assert(!strstr(harness_nodemgr_log(h), "damaged"), "%s", harness_nodemgr_log(h));
        pid_t pid = harness_actor_pid(h, a);
        cr_assert_eq(call_int(c, a, "add", "[4, 4]"), 5);
        assert_rebuilt_exactly(c, a, pid, 4, 5);
}

/* A direct call answered by the worker before the node manager read its result, the node manager
 * then killed: after the restart its caller's Get of it (the first one took the answer) waits for the
 * actor's worker to re-attach and send the result again, rather than saying it does not exist. Here
 * the node manager is stopped before the call and the worker before the restart, so that it is so. */
static void direct_result_never_read(bool worker_dies) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        const char *path = harness_actor_path(h, a);
        /* Called until its calls go direct (the client asks for the socket again a while after the
         * actor was not ready for one). */
        int64_t n = 0;
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        while (harness_property_uint(h, path, HARNESS_IFACE_ACTOR, "CallsDirect") == 0) {
                cr_assert_eq(call_int(c, a, "increment", NULL), ++n);
                cr_assert_lt(harness_now_ms(), deadline, "the calls did not go direct");
        }
        pid_t pid = harness_actor_pid(h, a);

        cr_assert_eq(kill(h->nodemgr_pid, SIGSTOP), 0);
        kactor_ref r;
        cr_assert_eq(kactor_call(c, a, "increment", NULL, &r), 0);
        kactor_value *v = harness_get(c, r);
        cr_assert_eq(kactor_value_get_int(v), n + 1);
        kactor_value_free(v);
        cr_assert_eq(kill(pid, SIGSTOP), 0);
        harness_restart_nodemgr(h, SIGKILL);

        v = NULL;
        int k = kactor_get1(c, r, 300 * 1000, &v);
        cr_assert_eq(k, -ETIMEDOUT, "Get of the result before its worker re-attached: %d (%s), %s", k,
                     kactor_client_error_message(c), v ? harness_value_str(h, v) : "no value");
        if (worker_dies) {
                /* It will not send it again: the Get ends, saying so. */
                cr_assert_eq(kill(pid, SIGKILL), 0);
                v = harness_get(c, r);
                cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_ERROR, "%s", harness_value_str(h, v));
                cr_assert(strstr(harness_value_str(h, v), "never made, or released"), "%s", harness_value_str(h, v));
                kactor_value_free(v);
                return;
        }
        cr_assert_eq(kill(pid, SIGCONT), 0);
        v = harness_get(c, r);
        cr_assert_eq(kactor_value_get_int(v), n + 1);
        kactor_value_free(v);
        cr_assert_eq(call_int(c, a, "get", NULL), n + 1);
        cr_assert_eq(harness_actor_pid(h, a), pid);
}

Test(restart, a_direct_result_the_killed_node_manager_never_read_is_waited_for) {
        direct_result_never_read(false);
}

/* And when that worker dies instead of re-attaching, the Get ends with "no object". */
Test(restart, a_direct_result_the_worker_never_sends_again_ends_the_get_with_no_object) {
        direct_result_never_read(true);
}

/* A damaged lineage file (here, a byte of its last batch changed, which holds the fourth call's record
 * alone: the first three were read and written before it was made): what precedes the damage is
 * restored, the damaged record is not, the log says where, and the node serves on. */
Test(restart, a_damaged_lineage_file_restores_what_precedes_the_damage_and_says_where) {
        h = harness_start(&opts);
        kactor_client *c = harness_client(h);
        kactor_actor a = journal_with_entries(c, 5, 3);
        cr_assert_eq(call_int(c, a, "add", "[5, 3]"), 4);
        records_read(a, 4);
        const char *lineage = lineage_file();
        struct stat st;
        cr_assert_eq(stat(lineage, &st), 0);
        pid_t pid = harness_actor_pid(h, a);
        cr_assert_eq(kill(h->nodemgr_pid, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(h->nodemgr_pid, HARNESS_TIMEOUT_MS));
        damage(lineage, st.st_size - 1, "\x7f", 1);

        harness_restart_nodemgr(h, 0);
        cr_assert(strstr(harness_nodemgr_log(h), "is damaged at byte"), "%s", harness_nodemgr_log(h));
        /* Its worker, taken back, has all four; rebuilt from the lineage, the three before the damage. */
        cr_assert_eq(call_int(c, a, "count", NULL), 4, "the worker was not taken back\n%s", harness_nodemgr_log(h));
        assert_rebuilt_exactly(c, a, pid, 5, 3);
        kactor_actor b = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, b, "increment", NULL), 1);
}

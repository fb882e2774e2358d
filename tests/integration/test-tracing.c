/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tracing on real events (bpf/, nodemgr/core/manager-trace.c, io.kactor.Trace1, kactorctl): the call
 * histograms count exactly the calls made, a CPU-bound actor beside a CPU hog shows run-queue
 * delay, a sleeping actor shows off-CPU time, a timeline parses, nests and has one track per actor,
 * and a node manager without the privileges says why tracing is off. Needs root (CI is).
 */

#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../skip.h"
#include "harness.h"

#define TRACE_IFACE "io.kactor.Trace1"

static Harness *h;

static void setup(void) {
        h = harness_start(NULL);
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(tracing, .init = setup, .fini = teardown, .timeout = 90);

static bool trace_property_bool(const char *name) {
        int b = 0;
        int r = sd_bus_get_property_trivial(harness_bus(h), HARNESS_BUS_NAME, HARNESS_BUS_PATH, TRACE_IFACE, name, NULL,
                                            'b', &b);
        cr_assert(r >= 0, "cannot read %s.%s: %s", TRACE_IFACE, name, strerror(-r));
        return b;
}

/* Tracing must be on: as root it loads, and CI runs as root. */
static void require_tracing(void) {
        if (geteuid() != 0)
                kactor_skip_test("tracing needs root (or CAP_BPF and CAP_PERFMON)");
        cr_assert(trace_property_bool("Enabled"), "tracing is off as root: %s",
                  harness_property_string(h, HARNESS_BUS_PATH, TRACE_IFACE, "Reason"));
}

static const char *actor_id(kactor_actor a) {
        const char *p = harness_actor_path(h, a);
        return strrchr(p, '/') + 1;
}

typedef struct Hist {
        uint64_t count, sum_ns;
} Hist;

/* The histogram of (actor, method or "" for the scheduler, phase or kind). */
static Hist stats(bool sched, const char *actor, const char *method, const char *kind) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        Hist found = {};
        int r;

        if (sched)
                r = harness_bus_call(h, &error, &reply, HARNESS_BUS_PATH, TRACE_IFACE, "GetSchedStats", "s", actor);
        else
                r = harness_bus_call(h, &error, &reply, HARNESS_BUS_PATH, TRACE_IFACE, "GetCallStats", "ss", actor,
                                     method);
        cr_assert(r >= 0, "Get%sStats failed: %s", sched ? "Sched" : "Call", error.message ?: strerror(-r));
        cr_assert(sd_bus_message_enter_container(reply, 'a', "(ssssttat)") >= 0);
        while (sd_bus_message_enter_container(reply, 'r', "ssssttat") > 0) {
                const char *a, *c, *w, *k;
                uint64_t count, sum;
                const void *slots;
                size_t size;
                cr_assert(sd_bus_message_read(reply, "sssstt", &a, &c, &w, &k, &count, &sum) >= 0);
                cr_assert(sd_bus_message_read_array(reply, 't', &slots, &size) >= 0);
                cr_assert(sd_bus_message_exit_container(reply) >= 0);
                uint64_t in_buckets = 0;
                for (size_t i = 0; i < size / sizeof(uint64_t); i++)
                        in_buckets += ((const uint64_t *) slots)[i];
                cr_assert_eq(in_buckets, count, "the buckets of %s/%s/%s hold %lu, the count says %lu", a, w, k,
                             (unsigned long) in_buckets, (unsigned long) count);
                if (strcmp(a, actor) == 0 && strcmp(w, sched ? "" : method) == 0 && strcmp(k, kind) == 0)
                        found = (Hist) { count, sum };
        }
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return found;
}

static void calls(kactor_client *c, kactor_actor a, const char *method, const char *args, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                kactor_value_free(harness_call(c, a, method, args));
}

Test(tracing, histogram_counts_equal_the_calls_made) {
        require_tracing();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        kactor_actor b = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);

        calls(c, a, "noop", NULL, 40);
        calls(c, b, "noop", NULL, 25);
        calls(c, b, "sleep", "[1]", 3);

        static const char *const phases[] = { "queue", "dispatch", "exec", "deliver", "total" };
        for (size_t i = 0; i < 5; i++) {
                cr_expect_eq(stats(false, actor_id(a), "noop", phases[i]).count, 40, "phase %s of a", phases[i]);
                cr_expect_eq(stats(false, actor_id(b), "noop", phases[i]).count, 25, "phase %s of b", phases[i]);
                cr_expect_eq(stats(false, actor_id(b), "sleep", phases[i]).count, 3, "phase %s of b.sleep", phases[i]);
        }
        /* sleep(1) runs for at least a millisecond each time. */
        cr_expect_geq(stats(false, actor_id(b), "sleep", "exec").sum_ns, 3 * 1000000ULL);
        cr_expect_eq(stats(false, actor_id(a), "sleep", "total").count, 0);
}

static pid_t start_hog(int cpu) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                cpu_set_t set;
                CPU_ZERO(&set);
                CPU_SET(cpu, &set);
                (void) sched_setaffinity(0, sizeof(set), &set);
                for (volatile uint64_t x = 0;; x++)
                        ;
        }
        return pid;
}

static void stop_child(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

Test(tracing, cpu_bound_actor_beside_a_cpu_hog_shows_run_queue_delay) {
        require_tracing();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        pid_t worker = harness_actor_pid(h, a);

        /* The actor and the hog share CPU 0: while one runs, the other waits in the run queue. */
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        cr_assert(sched_setaffinity(worker, sizeof(set), &set) == 0, "sched_setaffinity: %m");
        Hist before = stats(true, actor_id(a), "", "runq");
        pid_t hog = start_hog(0);
        calls(c, a, "spin", "[30]", 5);
        stop_child(hog);

        Hist runq = stats(true, actor_id(a), "", "runq");
        Hist oncpu = stats(true, actor_id(a), "", "oncpu");
        cr_expect_gt(runq.count, before.count + 2, "run-queue waits: %lu", (unsigned long) runq.count);
        cr_expect_geq(runq.sum_ns - before.sum_ns, 10 * 1000000ULL, "run-queue delay only %lu ns",
                      (unsigned long) (runq.sum_ns - before.sum_ns));
        cr_expect_geq(oncpu.sum_ns, 30 * 1000000ULL, "on-CPU only %lu ns", (unsigned long) oncpu.sum_ns);
}

Test(tracing, sleeping_actor_shows_off_cpu_time) {
        require_tracing();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);

        calls(c, a, "sleep", "[40]", 3);
        Hist off = stats(true, actor_id(a), "", "offcpu");
        Hist on = stats(true, actor_id(a), "", "oncpu");
        cr_expect_geq(off.count, 3);
        cr_expect_geq(off.sum_ns, 110 * 1000000ULL, "off-CPU only %lu ns", (unsigned long) off.sum_ns);
        cr_expect_lt(on.sum_ns, off.sum_ns, "a sleeper runs less than it sleeps");
}

/* Checks a Chrome trace file: it parses, has `actors` process tracks (each named), the slices on
 * every thread track and every call's async slices nest, and otherData counts dropped events. */
static const char timeline_check[] =
        "import json, sys\n"
        "d = json.load(open(sys.argv[1]))\n"
        "want = int(sys.argv[2]); calls = int(sys.argv[3])\n"
        "ev = d['traceEvents']\n"
        "assert 'dropped_events' in d['otherData'], 'no dropped_events'\n"
        "names = {e['pid'] for e in ev if e['ph'] == 'M' and e['name'] == 'process_name'}\n"
        "pids = {e['pid'] for e in ev if e['ph'] != 'M'}\n"
        "assert len(pids) == want and pids <= names, (pids, names)\n"
        "outer = [e for e in ev if e['ph'] == 'b' and e['name'] not in ('queue','dispatch','run','deliver')]\n"
        "assert len(outer) == calls, ('calls', len(outer), calls)\n"
        "tracks = {}\n"
        "for e in ev:\n"
        "    if e['ph'] == 'X': tracks.setdefault((e['pid'], e['tid']), []).append((e['ts'], e['ts'] + e['dur']))\n"
        "for k, v in tracks.items():\n"
        "    v.sort(key=lambda s: (s[0], -s[1])); stack = []\n"
        "    for s in v:\n"
        "        while stack and s[0] >= stack[-1][1] - 1e-3: stack.pop()\n"
        "        assert not stack or s[1] <= stack[-1][1] + 1e-3, ('overlap', k, s, stack[-1])\n"
        "        stack.append(s)\n"
        "asyncs = {}\n"
        "for e in ev:\n"
        "    if e['ph'] in 'be': asyncs.setdefault((e['pid'], e['id']), []).append(e)\n"
        "for k, v in asyncs.items():\n"
        "    stack = []\n"
        "    for e in v:\n"
        "        if e['ph'] == 'b':\n"
        "            assert not stack or e['ts'] >= stack[-1]['ts'], ('child before parent', k)\n"
        "            stack.append(e)\n"
        "        else:\n"
        "            assert stack and stack[-1]['name'] == e['name'], ('unbalanced', k, e)\n"
        "            assert e['ts'] >= stack.pop()['ts'], ('ends before it begins', k)\n"
        "    assert not stack, ('unclosed', k)\n"
        "print('timeline ok:', len(ev), 'events,', len(pids), 'actors,', len(outer), 'calls')\n";

Test(tracing, timeline_parses_nests_and_has_one_track_per_actor) {
        require_tracing();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        kactor_actor b = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        const char *file = harness_printf(h, "%s/timeline.json", h->dir);
        const char *check = harness_printf(h, "%s/check.py", h->dir);
        FILE *f = fopen(check, "we");
        cr_assert(f);
        fputs(timeline_check, f);
        fclose(f);

        /* kactorctl records for 1.5 s; the calls fall inside. */
        const char *ctl = harness_printf(h, "%s/kactorctl", h->build);
        const char *bus = harness_printf(h, "--bus=%s", h->bus_address);
        char *argv[] = { (char *) ctl, (char *) bus, "timeline", "-o", (char *) file, "--duration", "1.5", NULL };
        pid_t pid;
        cr_assert(posix_spawn(&pid, ctl, NULL, NULL, argv, environ) == 0);
        for (unsigned i = 0; i < 250 && !trace_property_bool("TimelineActive"); i++)
                usleep(20000);
        cr_assert(trace_property_bool("TimelineActive"), "no timeline started");
        calls(c, a, "noop", NULL, 20);
        calls(c, b, "sleep", "[2]", 10);
        int status;
        cr_assert(waitpid(pid, &status, 0) == pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "kactorctl timeline failed");

        const char *cmd = harness_printf(h, "python3 %s %s 2 30", check, file);
        cr_assert_eq(system(cmd), 0, "the timeline is not right (%s)", cmd);
}

Test(tracing, prometheus_text_has_the_histograms) {
        require_tracing();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        calls(c, a, "noop", NULL, 7);

        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *text;
        cr_assert(harness_bus_call(h, &error, &reply, HARNESS_BUS_PATH, TRACE_IFACE, "Prometheus", NULL) >= 0);
        cr_assert(sd_bus_message_read(reply, "s", &text) >= 0);
        const char *want = harness_printf(h, "kactor_call_phase_seconds_count{actor=\"%s\",class=\"Tracee\","
                                          "method=\"noop\",phase=\"total\"} 7\n", actor_id(a));
        cr_expect(strstr(text, want), "no '%s' in:\n%.2000s", want, text);
        cr_expect(strstr(text, "le=\"+Inf\"} 7\n"));
        cr_expect(strstr(text, "# TYPE kactor_sched_seconds histogram"));
        sd_bus_message_unref(reply);
}

Test(tracing, maps_are_pinned_while_running_and_unpinned_on_stop) {
        require_tracing();
        const char *pin = harness_property_string(h, HARNESS_BUS_PATH, TRACE_IFACE, "PinPath");
        cr_assert(strncmp(pin, "/sys/fs/bpf/kactor/", 19) == 0, "pinned at '%s'", pin);
        const char *hists = harness_printf(h, "%s/hists", pin);
        cr_assert(access(hists, F_OK) == 0, "%s: %m", hists);
        const char *cmd = harness_printf(h, "bpftool map dump pinned %s >/dev/null", hists);
        cr_expect_eq(system(cmd), 0, "bpftool cannot read %s", hists);
        /* Whose each slot of hists is. */
        cmd = harness_printf(h, "bpftool map dump pinned %s/calls >/dev/null", pin);
        cr_expect_eq(system(cmd), 0, "bpftool cannot read %s/calls", pin);
        char *copy = strdup(pin);
        h = harness_stop(h);
        cr_expect(access(copy, F_OK) < 0, "%s is still there after the node manager stopped", copy);
        free(copy);
}

Test(tracing, status_says_why_tracing_is_off_without_privileges) {
        if (geteuid() != 0)
                kactor_skip_test("needs root to run a node manager as another user");
        const char *cmd = harness_printf(h, "tests/integration/tracing-unprivileged.sh %s", h->build);
        cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

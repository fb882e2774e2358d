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
#include "probes.h"

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
        /* The node manager has a direct call's result a moment after its caller: wait for the last. */
        for (unsigned i = 0; i < 1000 && stats(false, actor_id(b), "sleep", "total").count < 3; i++)
                (void) usleep(2000);

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

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        cr_assert(f, "%s: %m", path);
        fputs(text, f);
        fclose(f);
}

/* Starts `kactorctl timeline -o file --duration sec` and returns once the recording runs. */
static pid_t timeline_start(const char *file, const char *sec) {
        const char *ctl = harness_printf(h, "%s/kactorctl", h->build);
        const char *bus = harness_printf(h, "--bus=%s", h->bus_address);
        char *argv[] = { (char *) ctl, (char *) bus, "timeline", "-o", (char *) file, "--duration", (char *) sec, NULL };
        pid_t pid;
        cr_assert(posix_spawn(&pid, ctl, NULL, NULL, argv, environ) == 0);
        for (unsigned i = 0; i < 250 && !trace_property_bool("TimelineActive"); i++)
                usleep(20000);
        cr_assert(trace_property_bool("TimelineActive"), "no timeline started");
        return pid;
}

static void timeline_wait(pid_t pid) {
        int status;
        cr_assert(waitpid(pid, &status, 0) == pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "kactorctl timeline failed");
}

/* As a Chrome trace reader sees the recording: nothing before time 0 or after the end; the span an
 * idle actor began asleep before the recording starts at 0, marked clipped; the failed call on its
 * actor's worker track (a named thread) with its error; the calls still open at the end there as
 * unfinished, ending at the end, with their workers (dispatched: the node manager sends a worker many
 * calls ahead). */
static const char timeline_semantics_check[] =
        "import json, sys\n"
        "d = json.load(open(sys.argv[1])); limit = float(sys.argv[2])\n"
        "ev = [e for e in d['traceEvents'] if e['ph'] != 'M']\n"
        "threads = {(e['pid'], e['tid']) for e in d['traceEvents'] if e['ph'] == 'M' and e['name'] == 'thread_name'}\n"
        "for e in ev:\n"
        "    assert e['ts'] >= 0, ('before the origin', e)\n"
        "    assert e['ts'] + e.get('dur', 0) <= limit, ('after the end', e)\n"
        "end = max(e['ts'] + e.get('dur', 0) for e in ev)\n"
        "clipped = [e for e in ev if e['ph'] == 'X' and e['cat'] == 'sched' and e.get('args', {}).get('clipped')]\n"
        "assert clipped, 'no span that began before the recording'\n"
        "assert all(e['ts'] == 0 for e in clipped), ('a clipped span not at the origin', clipped[:3])\n"
        "phases = ('queue', 'dispatch', 'run', 'deliver')\n"
        "outer = [e for e in ev if e['ph'] == 'b' and e['cat'] == 'call' and e['name'] not in phases]\n"
        "failed = [e for e in outer if 'error' in e.get('args', {})]\n"
        "assert len(failed) == 1 and 'NoSuchMethod' in failed[0]['args']['error'], ('failed calls', failed)\n"
        "f = failed[0]\n"
        "assert f['tid'] != 0 and (f['pid'], f['tid']) in threads, ('the failed call is not on a worker track', f)\n"
        "open_calls = [e for e in outer if e.get('args', {}).get('unfinished')]\n"
        "assert len(open_calls) == 2 and all(e['name'] == 'sleep' for e in open_calls), ('unfinished', open_calls)\n"
        "dispatched = 0\n"
        "for u in open_calls:\n"
        "    mine = [e for e in ev if e['ph'] in 'be' and e['pid'] == u['pid'] and e['id'] == u['id']]\n"
        "    last = [e for e in mine if e['ph'] == 'e' and e['name'] == 'sleep']\n"
        "    assert len(last) == 1 and abs(last[0]['ts'] - end) < 1e-3, ('does not end at the end', u, last, end)\n"
        "    dispatched += any(e['name'] == 'dispatch' for e in mine)\n"
        "assert dispatched == 2, ('open calls not with their worker', dispatched)\n"
        "print('timeline semantics ok: end', end, 'us,', len(clipped), 'clipped spans')\n";

Test(tracing, timeline_starts_at_the_recording_and_keeps_open_and_failed_calls) {
        require_tracing();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        kactor_actor b = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        calls(c, a, "noop", NULL, 1);
        calls(c, b, "noop", NULL, 1);
        const char *file = harness_printf(h, "%s/timeline.json", h->dir);
        const char *check = harness_printf(h, "%s/check.py", h->dir);
        const char *semantics = harness_printf(h, "%s/semantics.py", h->dir);
        write_file(check, timeline_check);
        write_file(semantics, timeline_semantics_check);

        /* Both actors sleep in their workers for a second before the recording begins: the old time
         * origin was the start of such a span. */
        usleep(1000 * 1000);
        pid_t pid = timeline_start(file, "1.5");
        calls(c, a, "noop", NULL, 5);
        kactor_value *v = harness_call(c, a, "nosuch", NULL);
        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_METHOD, "nosuch");
        kactor_value_free(v);
        /* Open at the end: one running in b's worker, one sent to it behind that one. */
        kactor_value *ms = harness_value("[20000]");
        kactor_ref open_calls[2];
        for (size_t i = 0; i < 2; i++)
                cr_assert_eq(kactor_call(c, b, "sleep", ms, &open_calls[i]), 0);
        kactor_value_free(ms);
        cr_assert_eq(kactor_flush(c), 0);
        timeline_wait(pid);
        cr_assert_eq(kactor_kill(c, b, true), 0); /* the sleeps end with it */
        (void) kactor_ref_release(c, open_calls, 2);

        /* 3 actors' worth of structure: a, b; 5 + 1 calls of a, 2 of b. */
        const char *cmd = harness_printf(h, "python3 %s %s 2 8 && python3 %s %s %u", check, file, semantics, file,
                                         1500000u + 500000u);
        cr_assert_eq(system(cmd), 0, "the timeline is not right (%s)", cmd);
}

/* Runs cmd and returns its stdout, without a trailing newline (harness-owned). */
static const char *command_output(const char *cmd) {
        FILE *p = popen(cmd, "re");
        cr_assert(p, "%s: %m", cmd);
        char *out = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&out, &len);
        cr_assert(m);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
                fwrite(buf, 1, n, m);
        int status = pclose(p);
        fclose(m);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed: %s", cmd, out);
        while (len > 0 && out[len - 1] == '\n')
                out[--len] = 0;
        return harness_keep(h, out);
}

static const char *prometheus_text(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *text;
        int r = harness_bus_call(h, &error, &reply, HARNESS_BUS_PATH, TRACE_IFACE, "Prometheus", NULL);
        cr_assert(r >= 0, "Prometheus: %s", error.message ?: strerror(-r));
        cr_assert(sd_bus_message_read(reply, "s", &text) >= 0);
        const char *copy = harness_printf(h, "%s", text);
        sd_bus_message_unref(reply);
        return copy;
}

/* The names in the pinned `methods` map, sorted, comma-separated (bpftool shows char[64] as a string). */
static const char *pinned_method_names(void) {
        const char *pin = harness_property_string(h, HARNESS_BUS_PATH, TRACE_IFACE, "PinPath");
        return command_output(harness_printf(
                h,
                "bpftool -j map dump pinned %s/methods | python3 -c '"
                "import json, sys\n"
                "def name(e):\n"
                "    v = e.get(\"formatted\", {}).get(\"value\", e[\"value\"])\n"
                "    return v if isinstance(v, str) else bytes(int(x, 16) for x in v).split(b\"\\0\")[0].decode()\n"
                "print(\",\".join(sorted(name(e) for e in json.load(sys.stdin))))'",
                pin));
}

Test(tracing, garbage_method_names_count_under_unknown) {
        require_tracing();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        calls(c, a, "noop", NULL, 3);

        /* A caller sends 1000 names the class has no method of. */
        enum { N = 1000 };
        kactor_ref refs[N];
        for (unsigned i = 0; i < N; i++) {
                char name[64];
                snprintf(name, sizeof(name), "garbage-%u", i);
                cr_assert_eq(kactor_call(c, a, name, NULL, &refs[i]), 0);
        }
        kactor_value **values = NULL;
        cr_assert_eq(kactor_get(c, refs, N, HARNESS_TIMEOUT_USEC, &values), 0);
        for (unsigned i = 0; i < N; i++)
                harness_assert_error(values[i], KACTOR_ERROR_NO_SUCH_METHOD, "garbage-");
        kactor_values_free(values, N);
        (void) kactor_ref_release(c, refs, N);

        /* The map learned the class's method and one name for the rest. */
        const char *names = pinned_method_names();
        cr_expect_str_eq(names, "(unknown),noop", "the methods map holds: %.300s", names);
        cr_expect_eq(stats(false, actor_id(a), "(unknown)", "total").count, N);
        cr_expect_eq(stats(false, actor_id(a), "noop", "total").count, 3);
        cr_expect_eq(stats(false, actor_id(a), "garbage-1", "total").count, 0);

        const char *text = prometheus_text();
        const char *want = harness_printf(h, "kactor_call_phase_seconds_count{actor=\"%s\",class=\"Tracee\","
                                          "method=\"(unknown)\",phase=\"total\"} %u\n", actor_id(a), N);
        cr_expect(strstr(text, want), "no '%s' in the Prometheus text", want);
        cr_expect_null(strstr(text, "garbage"), "a caller's name is in the Prometheus text");
}

typedef struct Removed {
        const char *path;
        bool seen;
} Removed;

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Removed *r = userdata;
        const char *path;
        if (sd_bus_message_read(m, "o", &path) >= 0 && strcmp(path, r->path) == 0)
                r->seen = true;
        return 0;
}

/* The keys of the actor in the pinned maps that hold actors (actors, sched) and in calls' slots. */
static unsigned pinned_entries_of(uint64_t key) {
        const char *pin = harness_property_string(h, HARNESS_BUS_PATH, TRACE_IFACE, "PinPath");
        return (unsigned) atoi(command_output(harness_printf(
                h,
                "for m in actors sched calls; do bpftool -j map dump pinned %s/$m; echo; done | python3 -c '"
                "import json, sys\n"
                "n = 0\n"
                "for line in sys.stdin.read().split(\"\\n\"):\n"
                "    for e in json.loads(line) if line.strip() else []:\n"
                "        f = e.get(\"formatted\", {})\n"
                "        k, v = f.get(\"key\"), f.get(\"value\")\n"
                "        n += k == %llu or (isinstance(v, dict) and v.get(\"actor\") == %llu)\n"
                "print(n)'",
                pin, (unsigned long long) key, (unsigned long long) key)));
}

Test(tracing, a_forgotten_actors_series_leave_prometheus_and_the_maps) {
        require_tracing();
        /* A node manager that forgets dead actors after 1 s. */
        h = harness_stop(h);
        const char *const args[] = { "--forget-dead-after", "1", NULL };
        HarnessOptions opts = { .extra_args = args };
        h = harness_start(&opts);
        require_tracing();

        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, harness_module(h, "tracemod"), "Tracee", NULL, NULL);
        calls(c, a, "sleep", "[2]", 5);
        const char *id = actor_id(a), *path = harness_actor_path(h, a);
        uint64_t key = kactor_trace_id_hash(a.id.hi, a.id.lo);
        cr_assert(strstr(prometheus_text(), id), "the live actor has no series");
        cr_assert_gt(pinned_entries_of(key), 0, "the live actor is in no pinned map");

        /* Dead, its figures stay readable for the grace period... */
        sd_bus_slot *slot = NULL;
        Removed removed = { .path = path };
        cr_assert_geq(sd_bus_match_signal(harness_bus(h), &slot, NULL, NULL, "org.freedesktop.DBus.ObjectManager",
                                          "InterfacesRemoved", on_interfaces_removed, &removed),
                      0);
        cr_assert_eq(kactor_kill(c, a, true), 0);
        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS));
        cr_expect(strstr(prometheus_text(), id), "the dead actor's series went before its grace period");

        /* ... until the node manager forgets it (InterfacesRemoved says when). */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                int r = sd_bus_process(harness_bus(h), NULL);
                cr_assert_geq(r, 0);
                if (removed.seen)
                        break;
                clock_gettime(CLOCK_MONOTONIC, &t1);
                cr_assert_lt(t1.tv_sec - t0.tv_sec, 10, "the dead actor was not forgotten within 10 s");
                if (r == 0)
                        cr_assert_geq(sd_bus_wait(harness_bus(h), 500 * 1000), 0);
        }
        sd_bus_slot_unref(slot);
        const char *text = prometheus_text();
        cr_expect_null(strstr(text, id), "the forgotten actor's series are still there:\n%.1000s", strstr(text, id));
        cr_expect_eq(pinned_entries_of(key), 0, "the forgotten actor is still in the pinned maps");
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

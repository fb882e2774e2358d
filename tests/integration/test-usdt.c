/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kactor's USDT probes as an operator meets them (docs/tracing.md, "USDT probes"): a tool attaches to
 * usdt:BINARY:kactor:NAME — here libbpf's bpf_program__attach_usdt(), what bpftrace's usdt: probes
 * are made of — and sees every call with the ids it can match against the node manager's view. A
 * direct call fires direct_call_sent in the caller (libkactor), direct_call_received in the actor's
 * worker and direct_result_received in the caller again, all three with the call's object, and the
 * node manager's call_stored with the same object once its result is stored; a relayed call fires
 * call_stored only.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <linux/types.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "../skip.h"
#include "harness.h"
#include "probes.h"
#include "test-usdt.h"
#include "test-usdt.skel.h"

#define N_DIRECT 20
#define N_RELAYED 5
#define SEEN_MAX 64

static Harness *h;
static struct test_usdt_bpf *skel;
static struct ring_buffer *rb;

typedef struct Seen {
        struct usdt_event ev[_USDT_PROBE_MAX][SEEN_MAX];
        size_t n[_USDT_PROBE_MAX];
        size_t dropped;
} Seen;
static Seen seen;
/* The worker probe is attached in every kactor-worker (their pids are not known before they run):
 * only this test's actor's worker counts (Criterion runs other tests' node managers beside it). */
static pid_t worker_pid;

static void teardown(void) {
        ring_buffer__free(rb);
        rb = NULL;
        /* Detaches every probe (the links are the skeleton's): nothing stays behind. */
        test_usdt_bpf__destroy(skel);
        skel = NULL;
        h = harness_stop(h);
}

TestSuite(usdt, .fini = teardown, .timeout = 60);

static int on_event(void *ctx, void *data, size_t len) {
        Seen *s = ctx;
        const struct usdt_event *e = data;

        if (len < sizeof(*e) || e->probe == 0 || e->probe >= _USDT_PROBE_MAX || s->n[e->probe] >= SEEN_MAX) {
                s->dropped++;
                return 0;
        }
        if (e->probe == USDT_DIRECT_CALL_RECEIVED && e->pid != (__u32) worker_pid)
                return 0;
        s->ev[e->probe][s->n[e->probe]++] = *e;
        return 0;
}

static struct bpf_link *attach(struct bpf_program *p, pid_t pid, const char *binary, const char *name) {
        struct bpf_link *l = bpf_program__attach_usdt(p, pid, binary, "kactor", name, NULL);

        cr_assert_not_null(l, "attaching usdt:%s:kactor:%s (pid %d): %s", binary, name, (int) pid, strerror(errno));
        return l;
}

/* Loads the programs and attaches them: the caller's probes in this process (libkactor is linked
 * in), the worker's in every process of kactor-worker, call_stored in the node manager. */
static void attach_all(void) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        cr_assert_gt(n, 0);
        self[n] = '\0';
        if (geteuid() != 0)
                kactor_skip_test("attaching USDT probes (uprobes and BPF) needs root");
        skel = test_usdt_bpf__open_and_load();
        cr_assert_not_null(skel, "loading the USDT test programs: %s", strerror(errno));
        skel->links.direct_call_sent = attach(skel->progs.direct_call_sent, getpid(), self, "direct_call_sent");
        skel->links.direct_result_received =
                attach(skel->progs.direct_result_received, getpid(), self, "direct_result_received");
        skel->links.direct_call_received = attach(skel->progs.direct_call_received, -1,
                                                  harness_printf(h, "%s/kactor-worker", h->build),
                                                  "direct_call_received");
        skel->links.call_stored = attach(skel->progs.call_stored, h->nodemgr_pid,
                                         harness_printf(h, "%s/kactor-nodemgr", h->build), "call_stored");
        rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &seen, NULL);
        cr_assert_not_null(rb);
}

/* Reads hits until probe has want of them (the node manager stores a direct result a moment after
 * its caller had it), for at most HARNESS_TIMEOUT_MS; then a little longer for strays. */
static void wait_hits(int probe, size_t want) {
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;

        while (seen.n[probe] < want && harness_now_ms() < deadline)
                (void) ring_buffer__poll(rb, 50);
        (void) ring_buffer__poll(rb, 100);
        cr_assert_eq(seen.n[probe], want, "probe %d: %zu hits, wanted %zu", probe, seen.n[probe], want);
}

/* n increments, sent together and then got: their refs in order. */
static void increments(kactor_client *c, kactor_actor a, size_t n, kactor_ref *refs, int64_t first) {
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(kactor_call(c, a, "increment", NULL, &refs[i]), 0);
        for (size_t i = 0; i < n; i++) {
                kactor_value *v = harness_get(c, refs[i]);
                cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT);
                cr_assert_eq(kactor_value_get_int(v), first + (int64_t) i);
                kactor_value_free(v);
        }
}

Test(usdt, direct_calls_fire_the_callers_the_workers_and_the_node_managers_probes) {
        h = harness_start(NULL);
        attach_all();
        kactor_client *c = harness_client_direct(h, 1);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        worker_pid = harness_actor_pid(h, a);
        /* One call first, so that the direct socket is open for the ones counted. */
        kactor_ref first;
        increments(c, a, 1, &first, 1);
        /* Its result is stored a moment after it was answered: its hit is not one of those counted. */
        wait_hits(USDT_CALL_STORED, 1);
        seen = (Seen){};

        kactor_ref refs[N_DIRECT];
        increments(c, a, N_DIRECT, refs, 2);
        uint64_t actor = kactor_trace_id_hash(a.id.hi, a.id.lo);
        uint64_t method = kactor_trace_method_id("increment", strlen("increment"));

        wait_hits(USDT_DIRECT_CALL_SENT, N_DIRECT);
        wait_hits(USDT_DIRECT_CALL_RECEIVED, N_DIRECT);
        wait_hits(USDT_DIRECT_RESULT_RECEIVED, N_DIRECT);
        wait_hits(USDT_CALL_STORED, N_DIRECT);
        cr_assert_eq(seen.dropped, 0);
        cr_assert_eq(harness_actor_pid(h, a), worker_pid);
        for (size_t i = 0; i < N_DIRECT; i++) {
                uint64_t obj = kactor_trace_id_hash(refs[i].id.hi, refs[i].id.lo);
                const struct usdt_event *sent = &seen.ev[USDT_DIRECT_CALL_SENT][i];
                const struct usdt_event *recv = &seen.ev[USDT_DIRECT_CALL_RECEIVED][i];
                const struct usdt_event *res = &seen.ev[USDT_DIRECT_RESULT_RECEIVED][i];
                const struct usdt_event *stored = &seen.ev[USDT_CALL_STORED][i];

                /* The caller, in the order of the calls, with the actor, the object and the method. */
                cr_assert_eq(sent->pid, (__u32) getpid());
                cr_assert_eq(sent->args[0], actor);
                cr_assert_eq(sent->args[1], obj, "call %zu: direct_call_sent for another object", i);
                cr_assert_eq(sent->args[2], method);
                /* The actor's worker read the same calls in the same order. */
                cr_assert_eq(recv->pid, (__u32) worker_pid);
                cr_assert_eq(recv->args[0], actor);
                cr_assert_eq(recv->args[1], obj, "call %zu: direct_call_received for another object", i);
                cr_assert_eq(recv->args[2], method);
                /* Their answers came back to the caller, each a success. */
                cr_assert_eq(res->pid, (__u32) getpid());
                cr_assert_eq(res->args[0], obj);
                cr_assert_eq(res->args[1], KACTOR_OK);
                /* And the node manager stored each result: the object a tool joins the three on. */
                cr_assert_eq(stored->pid, (__u32) h->nodemgr_pid);
                cr_assert_eq(stored->args[0], actor);
                cr_assert_eq(stored->args[1], obj, "call %zu: call_stored for another object", i);
                cr_assert_eq(stored->args[2] & UINT32_MAX, method);
                cr_assert(stored->args[2] & USDT_TIMES_ORDERED, "call %zu: queued after dispatched", i);
        }
}

Test(usdt, relayed_calls_fire_no_direct_probe) {
        h = harness_start(NULL);
        attach_all();
        kactor_client *c = harness_client_direct(h, -1);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        worker_pid = harness_actor_pid(h, a);
        (void) ring_buffer__poll(rb, 100);
        seen = (Seen){};

        kactor_ref refs[N_RELAYED];
        increments(c, a, N_RELAYED, refs, 1);
        wait_hits(USDT_CALL_STORED, N_RELAYED);
        for (size_t i = 0; i < N_RELAYED; i++)
                cr_assert_eq(seen.ev[USDT_CALL_STORED][i].args[1], kactor_trace_id_hash(refs[i].id.hi, refs[i].id.lo));
        cr_assert_eq(seen.n[USDT_DIRECT_CALL_SENT], 0);
        cr_assert_eq(seen.n[USDT_DIRECT_CALL_RECEIVED], 0);
        cr_assert_eq(seen.n[USDT_DIRECT_RESULT_RECEIVED], 0);
}

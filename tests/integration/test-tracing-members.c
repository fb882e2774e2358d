/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tracing for members of the access group (docs/tracing.md): a member reads the histograms
 * (GetCallStats, GetSchedStats, Prometheus) of the actors it created, and no one else's; changing
 * how the node traces (Reset, SetEnabled, Timeline) stays root's. Driven as an operator would, with
 * busctl run as the member (setpriv).
 */

#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../skip.h"
#include "harness.h"
#include "users.h"

#define TRACE_IFACE "io.kactor.Trace1"

static Harness *h;
static TestGroup group;
static TestUser member;

static void setup(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (a user and a group)");
        users_group_make(&group, "ktm", "", USERS_GID_DEFAULT);
        users_make(&member, "ktm", "u", &group, NULL);
        const char *const args[] = { "--access-group", group.name, NULL };
        h = harness_start(&(HarnessOptions) { .extra_args = args });
        cr_assert_eq(chmod(h->dir, 0755), 0);
}

static void teardown(void) {
        h = harness_stop(h);
        users_remove(&member);
        users_group_remove(&group);
}

TestSuite(tracing_members, .init = setup, .fini = teardown, .timeout = 90);

/* Creates a Counter as the member and calls it 3 times; returns its path. */
static const char *member_counter(void) {
        const char *out;
        cr_assert_eq(
                users_busctl(h, &member, &out,
                             "call io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1 "
                             "CreateActor ssava{sv} counter Counter 0 0"),
                0, "the member's CreateActor: %s\n%s", out, harness_nodemgr_log(h));
        const char *path = harness_busctl_path(h, out);
        for (int i = 0; i < 3; i++) {
                const char *o;
                cr_assert_eq(
                        users_busctl(h, &member, &o,
                                     "call io.kactor.NodeManager1 %s io.kactor.Actor1 Call sav increment 0",
                                     path),
                        0, "%s", o);
                const char *obj = harness_busctl_path(h, o);
                cr_assert_eq(users_busctl_get(h, &member, &o, obj), 0, "%s", o);
        }
        return path;
}

static const char *id_of(const char *path) {
        return strrchr(path, '/') + 1;
}

Test(tracing_members, a_member_reads_the_histograms_of_its_own_actors_only) {
        const char *mine = member_counter();
        /* Root's actor, called too. */
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        for (int i = 0; i < 3; i++)
                kactor_value_free(harness_call(c, a, "increment", NULL));
        const char *roots = harness_actor_path(h, a);

        const char *out;
        cr_assert_eq(users_busctl(h, &member, &out,
                                  "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                  " GetCallStats ss \"\" \"\""),
                     0, "a member's GetCallStats: %s", out);
        cr_assert(strstr(out, id_of(mine)), "the member does not see its actor: %s", out);
        cr_assert_null(strstr(out, id_of(roots)), "the member sees root's actor: %s", out);

        cr_assert_eq(users_busctl(h, &member, &out,
                                  "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                  " Prometheus"),
                     0, "a member's Prometheus: %s", out);
        cr_assert(strstr(out, id_of(mine)), "the member's Prometheus lacks its actor: %.2000s", out);
        cr_assert_null(strstr(out, id_of(roots)), "the member's Prometheus shows root's actor");

        cr_assert_eq(users_busctl(h, &member, &out,
                                  "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                  " GetSchedStats s \"\""),
                     0, "a member's GetSchedStats: %s", out);
        cr_assert_null(strstr(out, id_of(roots)), "the member's GetSchedStats shows root's actor");

        /* Root sees both. */
        const char *all = harness_busctl_call_ok(h, HARNESS_BUS_PATH, TRACE_IFACE, "GetCallStats", "ss", "", "", NULL);
        cr_assert(strstr(all, id_of(mine)) && strstr(all, id_of(roots)), "root does not see every actor: %s", all);

        /* Changing how the node traces stays root's. */
        cr_assert_neq(users_busctl(h, &member, &out,
                                   "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                   " Reset"),
                      0, "a member reset the histograms: %s", out);
        cr_assert_neq(users_busctl(h, &member, &out,
                                   "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                   " SetEnabled b false"),
                      0, "a member turned tracing off: %s", out);
}

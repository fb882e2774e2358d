/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tracing for members of the access group (docs/tracing.md): a member reads the histograms
 * (GetCallStats, GetSchedStats, Prometheus) of the actors it created, and no one else's; changing
 * how the node traces (Reset, SetEnabled, Timeline) stays root's. Driven as an operator would, with
 * busctl run as the member (setpriv).
 */

#include <criterion/criterion.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../skip.h"
#include "harness.h"
#include "macro.h"

#define TRACE_IFACE "io.kactor.Trace1"

static Harness *h;
static char group[32], user[32];
static bool made;

static int sh(const char *cmd) {
        int status = system(cmd);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void setup(void) {
        char cmd[256];
        if (geteuid() != 0)
                kactor_skip_test("needs root (a user and a group)");
        snprintf(group, sizeof(group), "ktm%d", (int) getpid());
        snprintf(user, sizeof(user), "ktm%du", (int) getpid());
        snprintf(cmd, sizeof(cmd), "groupadd %s && useradd -M -N -g %s -s /usr/sbin/nologin %s", group, group, user);
        cr_assert_eq(sh(cmd), 0, "%s failed", cmd);
        made = true;
        const char *const args[] = { "--access-group", group, NULL };
        h = harness_start(&(HarnessOptions) { .extra_args = args });
        cr_assert_eq(chmod(h->dir, 0755), 0);
}

static void teardown(void) {
        char cmd[256];
        h = harness_stop(h);
        if (made) {
                snprintf(cmd, sizeof(cmd), "userdel -f %s 2>/dev/null; groupdel %s 2>/dev/null", user, group);
                (void) sh(cmd);
                made = false;
        }
}

TestSuite(tracing_members, .init = setup, .fini = teardown, .timeout = 90);

/* Runs busctl as the member; returns its exit status and its output (harness-owned). */
static int busctl_as_member(const char **ret_out, const char *args) {
        _cleanup_free_ char *cmd = NULL;
        cr_assert_geq(asprintf(&cmd, "setpriv --reuid=%s --regid=%s --init-groups busctl --address=%s --timeout=10 %s 2>&1",
                               user, group, h->bus_address, args),
                      0);
        FILE *p = popen(cmd, "re");
        cr_assert_not_null(p);
        char *out = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&out, &size);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
                fwrite(buf, 1, n, mem);
        fclose(mem);
        int status = pclose(p);
        *ret_out = harness_keep(h, out);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Creates a Counter as the member and calls it 3 times; returns its path. */
static const char *member_counter(void) {
        const char *out;
        cr_assert_eq(busctl_as_member(&out, "call io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1 "
                                            "CreateActor ssava{sv} counter Counter 0 0"),
                     0, "the member's CreateActor: %s\n%s", out, harness_nodemgr_log(h));
        const char *path = harness_busctl_path(h, out);
        for (int i = 0; i < 3; i++) {
                const char *o;
                cr_assert_eq(busctl_as_member(&o, harness_printf(h, "call io.kactor.NodeManager1 %s io.kactor.Actor1 "
                                                                    "Call sav increment 0", path)),
                             0, "%s", o);
                const char *obj = harness_busctl_path(h, o);
                cr_assert_eq(busctl_as_member(&o, harness_printf(h, "call io.kactor.NodeManager1 /io/kactor/NodeManager1 "
                                                                    "io.kactor.NodeManager1 Get aot 1 %s 10000000", obj)),
                             0, "%s", o);
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
        cr_assert_eq(busctl_as_member(&out, "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                            " GetCallStats ss \"\" \"\""),
                     0, "a member's GetCallStats: %s", out);
        cr_assert(strstr(out, id_of(mine)), "the member does not see its actor: %s", out);
        cr_assert_null(strstr(out, id_of(roots)), "the member sees root's actor: %s", out);

        cr_assert_eq(busctl_as_member(&out, "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                            " Prometheus"),
                     0, "a member's Prometheus: %s", out);
        cr_assert(strstr(out, id_of(mine)), "the member's Prometheus lacks its actor: %.2000s", out);
        cr_assert_null(strstr(out, id_of(roots)), "the member's Prometheus shows root's actor");

        cr_assert_eq(busctl_as_member(&out, "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                            " GetSchedStats s \"\""),
                     0, "a member's GetSchedStats: %s", out);
        cr_assert_null(strstr(out, id_of(roots)), "the member's GetSchedStats shows root's actor");

        /* Root sees both. */
        const char *all = harness_busctl_call_ok(h, HARNESS_BUS_PATH, TRACE_IFACE, "GetCallStats", "ss", "", "", NULL);
        cr_assert(strstr(all, id_of(mine)) && strstr(all, id_of(roots)), "root does not see every actor: %s", all);

        /* Changing how the node traces stays root's. */
        cr_assert_neq(busctl_as_member(&out, "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                             " Reset"),
                      0, "a member reset the histograms: %s", out);
        cr_assert_neq(busctl_as_member(&out, "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                             " SetEnabled b false"),
                      0, "a member turned tracing off: %s", out);
}

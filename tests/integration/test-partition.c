/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Partitions and rejoins (docs/cluster.md): a node cut off from the others by nftables is declared
 * dead, its actor is rebuilt on a replica and keeps answering with its exact state, and when the
 * partition heals the node is a member again and its stale copy of the actor stops; a node that
 * crashed and is started again on the same address joins as a new member.
 *
 * The cut is an nftables table of the test's own, `inet kactor_test_<pid>`, that drops every packet
 * from or to the cut node's address on input (as a lost link would: the sender sees nothing; nodes
 * dial their peers from the address they listen on). The table goes when the partition heals, in the suite's teardown whatever the test's outcome,
 * and, for a test that was killed (a timeout, a crash), in a sweep when the run ends.
 */

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../skip.h"
#include "cluster.h"
#include "macro.h"

/* Healing: the sides find each other again through pings to dead members (every tenth protocol
 * period) and TCP's retransmissions of what the cut held (after its backoff: seconds by then). */
#define HEAL_WAIT_MS 30000u
#define TABLE_PREFIX "kactor_test_"

static char nft_path[128];
static char nft_table[64];
static bool nft_table_made;

/* --- nftables -------------------------------------------------------------------------------------- */

static bool find_nft(void) {
        static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(nft_path, sizeof(nft_path), "%s/nft", dirs[i]);
                if (access(nft_path, X_OK) == 0)
                        return true;
        }
        return false;
}

/* Runs `nft -f -` with script on its standard input; returns its wait status (-errno when it could
 * not run) and its output, stdout and stderr together, in *ret_out (malloc'd). */
static int nft_exec(const char *script, char **ret_out) {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(out, O_CLOEXEC) < 0) {
                close(in[0]);
                close(in[1]);
                return -errno;
        }
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(in[0]);
                close(in[1]);
                close(out[0]);
                close(out[1]);
                return r;
        }
        if (pid == 0) {
                if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
                        _exit(127);
                execl(nft_path, "nft", "-f", "-", (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        size_t len = strlen(script), done = 0;
        while (done < len) {
                ssize_t n = write(in[1], script + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                done += (size_t) n;
        }
        close(in[1]);

        char *buf = NULL;
        size_t size = 0;
        FILE *o = open_memstream(&buf, &size);
        char chunk[4096];
        for (;;) {
                ssize_t n = read(out[0], chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (o)
                        fwrite(chunk, 1, (size_t) n, o);
        }
        close(out[0]);
        if (o)
                fclose(o);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        free(buf);
                        return -errno;
                }
        if (ret_out)
                *ret_out = buf;
        else
                free(buf);
        return status;
}

static void nft_run(const char *script) {
        _cleanup_free_ char *out = NULL;
        int status = nft_exec(script, &out);
        cr_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "nft failed (status %d) on:\n%s\n%s", status, script, out ?: "");
}

/* Deletes the test's table if it made one; false when nft failed to. */
static bool nft_table_delete(char **ret_out) {
        if (!nft_table_made)
                return true;
        _cleanup_free_ char *script = NULL;
        cr_assert(asprintf(&script, "delete table inet %s\n", nft_table) >= 0);
        int status = nft_exec(script, ret_out);
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return false;
        nft_table_made = false;
        return true;
}

/*
 * Tables of test processes that are gone: a test killed by its timeout or a crash did not run its
 * teardown. Run by the runner when every test is done (Criterion's report hooks run there).
 */
static void nft_sweep_orphans(void) {
        if (geteuid() != 0 || !find_nft())
                return;
        _cleanup_free_ char *out = NULL;
        int status = nft_exec("list tables\n", &out);
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !out)
                return;
        char *save = NULL;
        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char name[64];
                int pid;
                if (sscanf(line, "table inet %63s", name) != 1 ||
                    sscanf(name, TABLE_PREFIX "%d", &pid) != 1 || pid <= 0)
                        continue;
                if (kill(pid, 0) == 0 || errno != ESRCH)
                        continue;
                char script[128];
                snprintf(script, sizeof(script), "delete table inet %s\n", name);
                (void) nft_exec(script, NULL);
        }
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
        nft_sweep_orphans();
}

/* --- the cut ---------------------------------------------------------------------------------------- */

/* "127.X.Y.N" of node n. */
static const char *node_host(unsigned n) {
        static char buf[CLUSTER_NODES_MAX][32];
        snprintf(buf[n], sizeof(buf[n]), "%s", cluster_node_address(n));
        *strrchr(buf[n], ':') = 0;
        return buf[n];
}

/* Cuts node `cut` off from the others, both ways. */
static void partition_cut(unsigned cut) {
        _cleanup_free_ char *script = NULL;
        const char *self = node_host(cut);
        int r = asprintf(&script,
                         "table inet %s {\n"
                         "        chain input {\n"
                         "                type filter hook input priority filter; policy accept;\n"
                         "                ip saddr %s drop\n"
                         "                ip daddr %s drop\n"
                         "        }\n"
                         "}\n",
                         nft_table, self, self);
        cr_assert(r >= 0);
        nft_run(script);
        nft_table_made = true;
}

static void partition_heal(void) {
        _cleanup_free_ char *out = NULL;
        cr_assert(nft_table_delete(&out), "nft could not delete table inet %s: %s", nft_table, out ?: "");
}

/* --- the suite ---------------------------------------------------------------------------------------- */

static void partition_setup(void) {
        snprintf(nft_table, sizeof(nft_table), TABLE_PREFIX "%d", (int) getpid());
        cluster_setup();
}

static void partition_teardown(void) {
        /* First: stopping the nodes exits the process when one misbehaved. */
        _cleanup_free_ char *out = NULL;
        bool deleted = nft_table_delete(&out);
        cluster_teardown();
        cr_assert(deleted, "nft could not delete table inet %s: %s", nft_table, out ?: "");
}

TestSuite(partition, .init = partition_setup, .fini = partition_teardown, .timeout = 180);

static void need_nft(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (nftables)");
        if (!find_nft())
                kactor_skip_test("nft is not installed");
}

static void wait_peer_state(unsigned observer, const char *id, const char *state, uint32_t min_inc,
                            unsigned timeout_ms, const char *what) {
        cr_assert(cluster_wait_peer_state(cluster_nodes[observer], id, state, min_inc, timeout_ms),
                  "node %u: %s (it has it %s); its log:\n%s", observer, what,
                  cluster_peer_state(cluster_nodes[observer], id, NULL),
                  harness_nodemgr_log(cluster_nodes[observer]));
}

/* A detached Counter (examples/counter.c) from 0 on node `on`, made through node 0's client c. */
static kactor_actor create_detached_counter_on(kactor_client *c, Harness *on) {
        struct kactor_actor_opts o = { .sz = sizeof(o), .node = cluster_node_id(on), .detached = true };
        return harness_create(cluster_nodes[0], c, harness_module(cluster_nodes[0], "counter"), "Counter",
                              "[0]", &o);
}

Test(partition, partition_by_nftables) {
        need_nft();
        cluster_start(3, NULL);
        const char *cut_id = cluster_node_id(cluster_nodes[1]);
        kactor_client *c0 = harness_client(cluster_nodes[0]);
        /* Detached: an actor that is not would stop on node 1 as soon as node 1 counts its holder,
         * node 0, dead ("no handles left"), and the fence would not be what stops it. */
        kactor_actor a = create_detached_counter_on(c0, cluster_nodes[1]);
        int64_t acked = 0;
        for (int i = 0; i < 10; i++)
                cr_assert_eq(cluster_call_int(c0, a, "increment"), ++acked);
        const char *path = harness_actor_path(cluster_nodes[1], a);
        cr_assert(harness_wait_actor_state(cluster_nodes[1], path, "alive", CLUSTER_WAIT_MS));
        uint64_t completed =
                harness_property_uint(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "CallsCompleted");
        cr_assert_eq(completed, (uint64_t) acked);
        uint32_t inc_before = 0;
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[0], cut_id, &inc_before), "alive");

        partition_cut(1);

        /* Calls made at the cut go towards node 1 and are lost on the way: they are answered by the
         * actor rebuilt on its replica, in order, with the state it had. */
        kactor_ref refs[3];
        for (int i = 0; i < 3; i++)
                cr_assert_eq(kactor_call(c0, a, "increment", NULL, &refs[i]), 0);
        for (unsigned i = 0; i < 3; i += 2)
                wait_peer_state(i, cut_id, "dead", 0, CLUSTER_WAIT_MS, "did not declare the cut node dead");
        for (int i = 0; i < 3; i++) {
                kactor_value *v = harness_get(c0, refs[i]);
                int64_t n = -1;
                bool ok = kactor_value_as_int(v, &n) == 0 && n == acked + 1;
                const char *s = harness_value_str(cluster_nodes[0], v);
                kactor_value_free(v);
                cr_assert(ok, "call %d at the cut returned %s, not %" PRId64 "\n%s", i, s, acked + 1,
                          cluster_logs());
                acked++;
        }
        for (int i = 0; i < 5; i++)
                cr_assert_eq(cluster_call_int(c0, a, "increment"), ++acked);
        /* The live side is whole. */
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[0], cluster_node_id(cluster_nodes[2]), NULL),
                         "alive");
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[2], cluster_node_id(cluster_nodes[0]), NULL),
                         "alive");
        /* Nothing reached node 1: its copy ran none of these calls. */
        cr_assert_eq(harness_property_uint(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "CallsCompleted"),
                     completed);

        partition_heal();

        /* Node 1 is a member again, with a newer incarnation; it stops its copy, which ran none of
         * the calls that the cut held. */
        for (unsigned i = 0; i < 3; i += 2)
                wait_peer_state(i, cut_id, "alive", inc_before + 1, HEAL_WAIT_MS,
                                "did not take node 1 back");
        cr_assert(harness_wait_actor_state(cluster_nodes[1], path, "dead", HEAL_WAIT_MS),
                  "node 1 kept its copy of the actor (State=%s); its log:\n%s",
                  harness_property_string(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "State"),
                  harness_nodemgr_log(cluster_nodes[1]));
        const char *cause =
                harness_property_string(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "DeathCause");
        cr_assert(strstr(cause, "declared dead"), "DeathCause: %s\n%s", cause, cluster_logs());
        cr_assert_eq(harness_property_uint(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "CallsCompleted"),
                     completed, "node 1 ran calls that the rebuilt actor answered");
        cluster_wait_formed(3);

        /* One actor, with every acknowledged increment, from every node. */
        cr_assert_eq(cluster_call_int(c0, a, "get"), acked);
        kactor_client *c1 = harness_client(cluster_nodes[1]), *c2 = harness_client(cluster_nodes[2]);
        cr_assert_eq(cluster_call_int(c1, a, "increment"), ++acked);
        cr_assert_eq(cluster_call_int(c2, a, "increment"), ++acked);
        cr_assert_eq(cluster_call_int(c0, a, "get"), acked);
        for (size_t i = 0; i < 3; i++)
                harness_assert_running(cluster_nodes[i]);
}

Test(partition, crashed_node_rejoins_as_a_new_member) {
        cluster_start(3, NULL);
        const char *old_id = harness_keep(cluster_nodes[0], strdup(cluster_node_id(cluster_nodes[2])));

        cluster_crash_node(2);
        for (unsigned i = 0; i < 2; i++)
                wait_peer_state(i, old_id, "dead", 0, CLUSTER_WAIT_MS,
                                "did not declare the crashed node dead");
        cluster_nodes[2] = harness_stop(cluster_nodes[2]);

        /* A fresh node manager on the same address: a new member, the old one stays dead. */
        cluster_start_node(2, cluster_secret_path, NULL, NULL);
        const char *new_id = cluster_node_id(cluster_nodes[2]);
        cr_assert_str_neq(new_id, old_id);
        cluster_wait_formed(3);
        for (unsigned i = 0; i < 2; i++)
                cr_assert_str_eq(cluster_peer_state(cluster_nodes[i], old_id, NULL), "dead", "node %u", i);

        /* It takes actors. */
        kactor_client *c0 = harness_client(cluster_nodes[0]);
        kactor_actor b = cluster_create_counter_on(cluster_nodes[0], c0, cluster_nodes[2], 100);
        for (int i = 1; i <= 5; i++)
                cr_assert_eq(cluster_call_int(c0, b, "increment"), 100 + i);
        cr_assert(harness_wait_actor_state(cluster_nodes[2], harness_actor_path(cluster_nodes[2], b),
                                           "alive", CLUSTER_WAIT_MS));
        kactor_client *c1 = harness_client(cluster_nodes[1]);
        cr_assert_eq(cluster_call_int(c1, b, "increment"), 106);
        cr_assert_eq(cluster_call_int(c0, b, "get"), 106);

        /* Through all of this, nobody took the old id back. */
        for (unsigned i = 0; i < 3; i++) {
                const char *s = cluster_peer_state(cluster_nodes[i], old_id, NULL);
                cr_assert(streq(s, "dead") || (i == 2 && streq(s, "")), "node %u has the old node %s", i, s);
        }
        for (size_t i = 0; i < 3; i++)
                harness_assert_running(cluster_nodes[i]);
}

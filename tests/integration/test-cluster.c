/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cluster's first layer (docs/cluster.md): node managers on loopback addresses find each other
 * through one seed, authenticate with the cluster secret, detect a hung node (SIGSTOP) SWIM-style
 * and take it back when it wakes; peers with the wrong secret and raw TCP clients that send garbage
 * are dropped without disturbing the cluster.
 *
 * Each test runs in its own process (Criterion forks), so its nodes listen on 127.X.Y.N with X.Y
 * taken from the PID: parallel tests never share an address. Nothing waits on a fixed sleep for
 * the outcome it checks: the tests wait for the state they expect with generous bounds.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "macro.h"

TestSuite(cluster, .init = cluster_setup, .fini = cluster_teardown, .timeout = 120);

Test(cluster, three_nodes_form_a_cluster_through_one_seed) {
        cluster_start(3, NULL);
        for (size_t i = 0; i < 3; i++) {
                PeerView v[8];
                cr_assert_eq(cluster_read_peers(cluster_nodes[i], v, 8), 3);
                cr_assert_str_eq(v[0].id, cluster_node_id(cluster_nodes[i]), "this node comes first");
                for (size_t j = 0; j < 3; j++) {
                        cr_assert_str_eq(v[j].state, "alive");
                        cr_assert(v[j].cpus == 4 && v[j].gpus == 1, "resources travel with membership");
                }
        }

        /* kactorctl peers shows the same. */
        char *cmd, out[4096] = {};
        cr_assert(asprintf(&cmd, "%s/kactorctl --bus '%s' peers --json", cluster_nodes[1]->build, cluster_nodes[1]->bus_address) >= 0);
        FILE *p = popen(cmd, "re");
        cr_assert_not_null(p);
        size_t len = fread(out, 1, sizeof(out) - 1, p);
        cr_assert_eq(pclose(p), 0, "%s: %s", cmd, out);
        free(cmd);
        out[len] = 0;
        for (size_t j = 0; j < 3; j++)
                cr_assert(strstr(out, cluster_node_id(cluster_nodes[j])), "kactorctl peers lacks node %zu: %s", j, out);
        cr_assert(strstr(out, "\"alive\""), "%s", out);
}

Test(cluster, stopped_node_is_declared_dead_then_refutes_and_rejoins) {
        cluster_start(3, NULL);
        const char *victim = cluster_node_id(cluster_nodes[2]);
        uint32_t inc0 = 0;
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[0], victim, &inc0), "alive");

        cr_assert(kill(cluster_nodes[2]->nodemgr_pid, SIGSTOP) == 0);
        for (size_t i = 0; i < 2; i++)
                cr_assert(cluster_wait_peer_state(cluster_nodes[i], victim, "dead", 0, CLUSTER_WAIT_MS),
                          "node %zu did not declare the stopped node dead; its log:\n%s", i,
                          harness_nodemgr_log(cluster_nodes[i]));
        /* The others are not disturbed by it. */
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[0], cluster_node_id(cluster_nodes[1]), NULL), "alive");
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[1], cluster_node_id(cluster_nodes[0]), NULL), "alive");

        cr_assert(kill(cluster_nodes[2]->nodemgr_pid, SIGCONT) == 0);
        /* It refutes with a newer incarnation and is alive again everywhere. */
        for (size_t i = 0; i < 2; i++)
                cr_assert(cluster_wait_peer_state(cluster_nodes[i], victim, "alive", inc0 + 1, CLUSTER_WAIT_MS),
                          "node %zu did not take the woken node back; its log:\n%s", i,
                          harness_nodemgr_log(cluster_nodes[i]));
        cluster_wait_formed(3);
        for (size_t i = 0; i < 3; i++)
                harness_assert_running(cluster_nodes[i]);
}

Test(cluster, short_stop_within_the_suspicion_timeout_is_no_death) {
        /* Suspicion lasts 8 s here; the node is stopped for 0.3 s: a wide margin on a loaded machine. */
        cluster_start(3, "8000");
        const char *victim = cluster_node_id(cluster_nodes[2]);

        cr_assert(kill(cluster_nodes[2]->nodemgr_pid, SIGSTOP) == 0);
        usleep(300 * 1000);
        cr_assert(kill(cluster_nodes[2]->nodemgr_pid, SIGCONT) == 0);

        /* For 3 s, neither other node ever says dead. */
        uint64_t end = cluster_now_ms() + 3000;
        do {
                for (size_t i = 0; i < 2; i++)
                        cr_assert_str_neq(cluster_peer_state(cluster_nodes[i], victim, NULL), "dead",
                                          "a short stop was taken for a death");
                usleep(50 * 1000);
        } while (cluster_now_ms() < end);
        cluster_wait_formed(3);
}

Test(cluster, peer_with_the_wrong_secret_is_refused) {
        cluster_start(2, NULL);
        Harness *bad = cluster_start_node(2, cluster_bad_secret_path, NULL, NULL);
        const char *bad_id = cluster_node_id(bad);

        /* Give it time to try (it redials every 0.5 s), then check nobody took it in. */
        usleep(2500 * 1000);
        for (size_t i = 0; i < 2; i++) {
                PeerView v[8];
                cr_assert_eq(cluster_read_peers(cluster_nodes[i], v, 8), 2, "node %zu has a member too many", i);
                cr_assert_str_eq(cluster_peer_state(cluster_nodes[i], bad_id, NULL), "");
                harness_assert_running(cluster_nodes[i]);
        }
        PeerView v[8];
        cr_assert_eq(cluster_read_peers(bad, v, 8), 1, "the refused node learned the cluster's members");
        cr_assert(strstr(harness_nodemgr_log(cluster_nodes[0]), "authentication failed"), "%s", harness_nodemgr_log(cluster_nodes[0]));
        cluster_wait_formed(2);
}

static int connect_raw(const char *address) {
        char host[32];
        snprintf(host, sizeof(host), "%s", address);
        *strrchr(host, ':') = 0;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(CLUSTER_PEER_PORT) };
        cr_assert(inet_pton(AF_INET, host, &sa.sin_addr) == 1);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0);
        cr_assert(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0, "connect %s: %m", address);
        return fd;
}

/* True when the node closes the connection within timeout_ms (whatever it sent before, e.g. HELLO). */
static bool wait_closed(int fd, unsigned timeout_ms) {
        uint64_t end = cluster_now_ms() + timeout_ms;
        char buf[4096];
        for (;;) {
                uint64_t now = cluster_now_ms();
                if (now >= end)
                        return false;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, (int) (end - now)) <= 0)
                        return false;
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        return true;
                if (n < 0)
                        return false;
        }
}

static void send_all(int fd, const void *p, size_t n) {
        cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t) n);
}

Test(cluster, garbage_and_oversized_frames_drop_only_their_connection) {
        cluster_start(2, NULL);
        const char *target = cluster_node_address(0);

        /* Garbage: not a msgpack header. */
        int fd = connect_raw(target);
        send_all(fd, "\x08\x00\x00\x00garbage!", 12);
        cr_assert(wait_closed(fd, CLUSTER_WAIT_MS), "garbage did not close the connection");
        close(fd);

        /* A length far beyond the cap. */
        fd = connect_raw(target);
        send_all(fd, "\xff\xff\xff\x7f", 4);
        cr_assert(wait_closed(fd, CLUSTER_WAIT_MS), "an oversized length did not close the connection");
        close(fd);

        /* A frame over the pre-authentication cap, with its bytes. */
        fd = connect_raw(target);
        size_t big = 64 * 1024;
        char *buf = calloc(1, big + 4);
        cr_assert_not_null(buf);
        buf[0] = (char) (big & 0xff);
        buf[1] = (char) ((big >> 8) & 0xff);
        buf[2] = (char) ((big >> 16) & 0xff);
        (void) send(fd, buf, big + 4, MSG_NOSIGNAL);
        free(buf);
        cr_assert(wait_closed(fd, CLUSTER_WAIT_MS), "an oversized frame did not close the connection");
        close(fd);

        /* A membership message before authentication: [PING, 1, "x", []]. */
        fd = connect_raw(target);
        send_all(fd, "\x07\x00\x00\x00\x94\xcc\x82\x01\xa1x\x90", 11);
        cr_assert(wait_closed(fd, CLUSTER_WAIT_MS), "an unauthenticated PING did not close the connection");
        close(fd);

        /* Silence: dropped at the authentication deadline. */
        fd = connect_raw(target);
        cr_assert(wait_closed(fd, CLUSTER_WAIT_MS), "a silent connection was never dropped");
        close(fd);

        for (size_t i = 0; i < 2; i++)
                harness_assert_running(cluster_nodes[i]);
        cluster_wait_formed(2);
        PeerView v[8];
        cr_assert_eq(cluster_read_peers(cluster_nodes[0], v, 8), 2);
}

/* --- remote actors, replication, rebuilding -------------------------------------------------------- */

Test(cluster, actor_on_another_node_is_called_through_this_one) {
        cluster_start(3, NULL);
        kactor_client *c = harness_client(cluster_nodes[0]);
        kactor_actor a = cluster_create_counter_on(cluster_nodes[0], c, cluster_nodes[1], 10);

        for (int i = 1; i <= 5; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), 10 + i);
        /* It runs on node 1: node 1 lists it, node 0 does not host it. */
        cr_assert(harness_wait_actor_state(cluster_nodes[1], harness_actor_path(cluster_nodes[1], a), "alive", CLUSTER_WAIT_MS));
        cr_assert_eq(harness_property_uint(cluster_nodes[0], HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Actors"), 0);
        cr_assert_eq(harness_property_uint(cluster_nodes[1], HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Actors"), 1);

        /* The same handle works from a client of the third node. */
        kactor_client *c2 = harness_client(cluster_nodes[2]);
        cr_assert_eq(cluster_call_int(c2, a, "increment"), 16);
        cr_assert_eq(cluster_call_int(c, a, "get"), 16);
}

Test(cluster, actor_lost_with_its_node_is_rebuilt_with_its_state) {
        cluster_start(3, NULL);
        kactor_client *c = harness_client(cluster_nodes[0]);
        kactor_actor a = cluster_create_counter_on(cluster_nodes[0], c, cluster_nodes[1], 0);
        for (int i = 1; i <= 20; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i);

        cluster_crash_node(1);
        /* The same handle, through the same node: the actor comes back elsewhere, state intact. */
        cr_assert_eq(cluster_call_int(c, a, "increment"), 21);
        cr_assert_eq(cluster_call_int(c, a, "get"), 21);
        cluster_nodes[1] = harness_stop(cluster_nodes[1]);
}

Test(cluster, frozen_node_is_declared_dead_and_does_not_run_its_actor_twice) {
        cluster_start(3, NULL);
        kactor_client *c = harness_client(cluster_nodes[0]);
        kactor_actor a = cluster_create_counter_on(cluster_nodes[0], c, cluster_nodes[1], 0);
        for (int i = 1; i <= 10; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i);
        const char *path = harness_actor_path(cluster_nodes[1], a);
        uint64_t completed = harness_property_uint(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "CallsCompleted");
        cr_assert_eq(completed, 10);

        /* Frozen longer than the suspicion timeout: calls made meanwhile are answered by the
         * actor rebuilt on another node. */
        cr_assert_eq(kill(cluster_nodes[1]->nodemgr_pid, SIGSTOP), 0);
        kactor_ref refs[5];
        for (int i = 0; i < 5; i++)
                cr_assert_eq(kactor_call(c, a, "increment", NULL, &refs[i]), 0);
        for (int i = 0; i < 5; i++) {
                kactor_value *v = harness_get(c, refs[i]);
                int64_t n = -1;
                cr_assert(kactor_value_as_int(v, &n) == 0 && n == 11 + i, "call %d returned %s", i,
                          harness_value_str(cluster_nodes[0], v));
                kactor_value_free(v);
        }

        /* It wakes: it hears it was declared dead, stops its copy, and has not run the calls that
         * reached it while it was frozen. */
        cr_assert_eq(kill(cluster_nodes[1]->nodemgr_pid, SIGCONT), 0);
        cr_assert(harness_wait_actor_state(cluster_nodes[1], path, "dead", CLUSTER_WAIT_MS),
                  "the woken node kept its copy of the actor; its log:\n%s\nnode 0:\n%s\nnode 2:\n%s", harness_nodemgr_log(cluster_nodes[1]), harness_nodemgr_log(cluster_nodes[0]), harness_nodemgr_log(cluster_nodes[2]));
        const char *cause = harness_property_string(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "DeathCause");
        cr_assert(strstr(cause, "declared dead"), "%s", cause);
        cr_assert_eq(harness_property_uint(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "CallsCompleted"), completed,
                     "the woken node ran calls that the rebuilt actor answered");
        cr_assert_eq(cluster_call_int(c, a, "get"), 15);

        /* It is a member again, and takes new actors. */
        cr_assert(cluster_wait_peer_state(cluster_nodes[0], cluster_node_id(cluster_nodes[1]), "alive", 0, CLUSTER_WAIT_MS));
        kactor_actor b = cluster_create_counter_on(cluster_nodes[0], c, cluster_nodes[1], 100);
        cr_assert_eq(cluster_call_int(c, b, "increment"), 101);
        cr_assert_eq(cluster_call_int(c, a, "increment"), 16);
}

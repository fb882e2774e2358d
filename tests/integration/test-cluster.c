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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "macro.h"
#include "users.h"

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
                        cr_assert(v[j].memory > 0 && v[j].memory_free > 0 && v[j].memory_free <= v[j].memory,
                                  "memory travels with membership");
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

/* A node whose node manager restarts (an upgrade) within the suspicion timeout is not declared dead
 * and keeps its actors where they run; their replicas get what the restarted node logs after it, so
 * that if it dies later, its actors are rebuilt with every call (docs/restart.md). */
static void restart_within_suspicion(int sig) {
        cluster_start(3, "8000");
        const char *victim = cluster_node_id(cluster_nodes[1]);
        kactor_client *c = harness_client(cluster_nodes[0]);
        kactor_actor a = cluster_create_counter_on(cluster_nodes[0], c, cluster_nodes[1], 0);
        for (int i = 1; i <= 10; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i);
        pid_t pid = harness_actor_pid(cluster_nodes[1], a);

        harness_restart_nodemgr(cluster_nodes[1], sig);
        cr_assert_str_eq(cluster_node_id(cluster_nodes[1]), victim, "the node id changed");
        for (int i = 11; i <= 20; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i, "%s", cluster_logs());
        cr_assert_eq(harness_actor_pid(cluster_nodes[1], a), pid, "the actor was moved or restarted");
        for (size_t i = 0; i < 3; i += 2)
                cr_assert_str_neq(cluster_peer_state(cluster_nodes[i], victim, NULL), "dead",
                                  "a restart was taken for a death");
        cr_assert_eq(harness_property_uint(cluster_nodes[0], HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Actors"), 0,
                     "the actor was rebuilt elsewhere");
        cluster_wait_formed(3);

        /* Now the node is lost: its actor comes back elsewhere with all 20 calls. */
        cluster_crash_node(1);
        cr_assert_eq(cluster_call_int(c, a, "increment"), 21, "%s", cluster_logs());
        cluster_nodes[1] = harness_stop(cluster_nodes[1]);
}

Test(cluster, node_manager_restarted_within_the_suspicion_timeout_keeps_its_actors) {
        restart_within_suspicion(SIGTERM);
}

Test(cluster, node_manager_killed_and_restarted_within_the_suspicion_timeout_keeps_its_actors) {
        restart_within_suspicion(SIGKILL);
}

/* A node manager down longer than the suspicion timeout: its node is declared dead and its actor
 * rebuilt on another node; when it comes back on the same journal, it hears so and stops its own copy
 * (the worker that waited for it), which never runs a call twice. */
Test(cluster, node_manager_down_past_the_suspicion_timeout_stops_its_copy_when_back) {
        cluster_start(3, NULL);
        kactor_client *c = harness_client(cluster_nodes[0]);
        kactor_actor a = cluster_create_counter_on(cluster_nodes[0], c, cluster_nodes[1], 0);
        for (int i = 1; i <= 10; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i);
        const char *victim = harness_keep(cluster_nodes[0], strdup(cluster_node_id(cluster_nodes[1])));
        pid_t pid = harness_actor_pid(cluster_nodes[1], a);

        cr_assert_eq(kill(cluster_nodes[1]->nodemgr_pid, SIGKILL), 0);
        cr_assert(cluster_wait_peer_state(cluster_nodes[0], victim, "dead", 0, CLUSTER_WAIT_MS), "%s", cluster_logs());
        for (int i = 11; i <= 15; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i, "%s", cluster_logs());
        cr_assert(harness_pid_alive(pid), "the worker should wait for its node manager");

        harness_restart_nodemgr(cluster_nodes[1], 0);
        const char *path = harness_actor_path(cluster_nodes[1], a);
        cr_assert(harness_wait_actor_state(cluster_nodes[1], path, "dead", CLUSTER_WAIT_MS),
                  "the node that came back kept its copy of the actor\n%s", cluster_logs());
        cr_assert(harness_wait_pid_exit(pid, CLUSTER_WAIT_MS), "its worker %d still runs", (int) pid);
        cr_assert_eq(cluster_call_int(c, a, "increment"), 16, "%s", cluster_logs());
        cr_assert_eq(cluster_call_int(c, a, "get"), 16);
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

static void send_all(int fd, const void *p, size_t n) {
        cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t) n);
}

Test(cluster, garbage_and_oversized_frames_drop_only_their_connection) {
        cluster_start(2, NULL);

        /* Garbage: not a msgpack header. */
        int fd = cluster_connect_raw(0);
        send_all(fd, "\x08\x00\x00\x00garbage!", 12);
        cr_assert(cluster_wait_closed(fd, CLUSTER_WAIT_MS), "garbage did not close the connection");
        close(fd);

        /* A length far beyond the cap. */
        fd = cluster_connect_raw(0);
        send_all(fd, "\xff\xff\xff\x7f", 4);
        cr_assert(cluster_wait_closed(fd, CLUSTER_WAIT_MS), "an oversized length did not close the connection");
        close(fd);

        /* A frame over the pre-authentication cap, with its bytes. */
        fd = cluster_connect_raw(0);
        size_t big = 64 * 1024;
        char *buf = calloc(1, big + 4);
        cr_assert_not_null(buf);
        buf[0] = (char) (big & 0xff);
        buf[1] = (char) ((big >> 8) & 0xff);
        buf[2] = (char) ((big >> 16) & 0xff);
        (void) send(fd, buf, big + 4, MSG_NOSIGNAL);
        free(buf);
        cr_assert(cluster_wait_closed(fd, CLUSTER_WAIT_MS), "an oversized frame did not close the connection");
        close(fd);

        /* A membership message before authentication: [PING, 1, "x", []]. */
        fd = cluster_connect_raw(0);
        send_all(fd, "\x07\x00\x00\x00\x94\xcc\x82\x01\xa1x\x90", 11);
        cr_assert(cluster_wait_closed(fd, CLUSTER_WAIT_MS), "an unauthenticated PING did not close the connection");
        close(fd);

        /* Silence: dropped at the authentication deadline. */
        fd = cluster_connect_raw(0);
        cr_assert(cluster_wait_closed(fd, CLUSTER_WAIT_MS), "a silent connection was never dropped");
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

/* --- stress: many actors, several callers, a node killed mid-stream -------------------------------- */

#define STRESS_NODES 4
#define STRESS_ACTORS 10
#define STRESS_CALLERS 3
#define STRESS_CALLS_PER_CALLER 3340 /* 334 to each actor: 1,002 calls per actor */
#define STRESS_WINDOW 32

typedef struct StressStream {
        pthread_mutex_t lock;
        pthread_cond_t progressed;
        size_t results;
        size_t done;
} StressStream;

typedef struct StressCaller {
        StressStream *stream;
        kactor_client *client;
        const kactor_actor *actors;
        int64_t id;
        int64_t position[STRESS_CALLS_PER_CALLER]; /* what add returned: the entry's position in its actor */
        char error[512];
} StressCaller;

/* In its own thread with its own client: nothing here may assert. */
static int stress_collect(StressCaller *c, kactor_ref *refs, int64_t seq) {
        kactor_value *v = NULL;
        int r = kactor_get1(c->client, refs[seq % STRESS_WINDOW], 3 * HARNESS_TIMEOUT_USEC, &v);
        (void) kactor_ref_release(c->client, &refs[seq % STRESS_WINDOW], 1);
        if (r < 0 || kactor_value_type(v) != KACTOR_TYPE_INT) {
                _cleanup_free_ char *str = v ? kactor_value_to_json(v) : NULL;
                snprintf(c->error, sizeof(c->error), "caller %" PRIi64 ": seq %" PRIi64 ": %s %s", c->id, seq,
                         r < 0 ? strerror(-r) : "returned", str ?: kactor_client_error_message(c->client));
                kactor_value_free(v);
                return r < 0 ? r : -EBADMSG;
        }
        c->position[seq] = kactor_value_get_int(v);
        kactor_value_free(v);
        pthread_mutex_lock(&c->stream->lock);
        c->stream->results++;
        pthread_cond_broadcast(&c->stream->progressed);
        pthread_mutex_unlock(&c->stream->lock);
        return 0;
}

static void *stress_caller_run(void *userdata) {
        StressCaller *c = userdata;
        kactor_ref refs[STRESS_WINDOW];
        int64_t seq, sent = 0;
        for (seq = 0; seq < STRESS_CALLS_PER_CALLER; seq++) {
                if (seq >= STRESS_WINDOW && stress_collect(c, refs, seq - STRESS_WINDOW) < 0)
                        goto done;
                kactor_value *args = kactor_value_new_int_list((int64_t[]) { c->id, seq }, 2);
                int r = args ? kactor_call(c->client, c->actors[seq % STRESS_ACTORS], "add", args,
                                           &refs[seq % STRESS_WINDOW])
                             : -ENOMEM;
                kactor_value_free(args);
                if (r < 0) {
                        snprintf(c->error, sizeof(c->error), "caller %" PRIi64 ": call %" PRIi64 ": %s", c->id, seq,
                                 strerror(-r));
                        goto done;
                }
                sent = seq + 1;
        }
        for (seq = MAX((int64_t) 0, sent - STRESS_WINDOW); seq < sent; seq++)
                if (stress_collect(c, refs, seq) < 0)
                        break;
done:
        pthread_mutex_lock(&c->stream->lock);
        c->stream->done++;
        pthread_cond_broadcast(&c->stream->progressed);
        pthread_mutex_unlock(&c->stream->lock);
        return NULL;
}

Test(cluster, stress_ten_actors_three_callers_a_node_killed_mid_stream) {
        static StressCaller callers[STRESS_CALLERS];
        StressStream stream = { .lock = PTHREAD_MUTEX_INITIALIZER, .progressed = PTHREAD_COND_INITIALIZER };
        pthread_t threads[STRESS_CALLERS];
        kactor_actor actors[STRESS_ACTORS];
        size_t total = STRESS_CALLERS * STRESS_CALLS_PER_CALLER;
        const char *seed_env = getenv("KACTOR_TEST_SEED");
        uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (cluster_now_ms() ^ (uint64_t) getpid() << 32) | 1;

        cluster_start(STRESS_NODES, NULL);
        kactor_client *owner = harness_client(cluster_nodes[0]);
        /* The actors live on nodes 1..3; the callers are clients of node 0. */
        for (size_t i = 0; i < STRESS_ACTORS; i++) {
                struct kactor_actor_opts o = { .sz = sizeof(o), .node = cluster_node_id(cluster_nodes[1 + i % 3]) };
                actors[i] = harness_create(cluster_nodes[0], owner, harness_module(cluster_nodes[0], "lineagemod"),
                                           "Journal", NULL, &o);
        }
        size_t victim = 1 + seed % 3, kill_at = total / 5 + (seed >> 8) % (total / 2);
        cr_log_info("seed %" PRIu64 " (KACTOR_TEST_SEED to repeat): node %zu is killed after %zu results", seed,
                    victim, kill_at);

        for (size_t i = 0; i < STRESS_CALLERS; i++) {
                callers[i] = (StressCaller) { .stream = &stream, .client = harness_client(cluster_nodes[0]),
                                              .actors = actors, .id = (int64_t) i };
                cr_assert_eq(pthread_create(&threads[i], NULL, stress_caller_run, &callers[i]), 0);
        }
        pthread_mutex_lock(&stream.lock);
        while (stream.results < kill_at && stream.done < STRESS_CALLERS)
                pthread_cond_wait(&stream.progressed, &stream.lock);
        size_t done = stream.done;
        pthread_mutex_unlock(&stream.lock);
        cr_assert_eq(done, 0, "a caller stopped before the kill: %s%s%s", callers[0].error, callers[1].error,
                     callers[2].error);
        const char *victim_id = cluster_node_id(cluster_nodes[victim]);
        cluster_crash_node(victim);
        for (size_t i = 0; i < STRESS_CALLERS; i++)
                cr_assert_eq(pthread_join(threads[i], NULL), 0);
        for (size_t i = 0; i < STRESS_CALLERS; i++)
                cr_assert_str_empty(callers[i].error, "%s; node 0's log:\n%s", callers[i].error,
                                    harness_nodemgr_log(cluster_nodes[0]));

        /* Every actor holds each of its acknowledged calls exactly once, each caller's in its order,
         * and each call's result is the position its entry has. */
        for (size_t a = 0; a < STRESS_ACTORS; a++) {
                kactor_value *v = harness_call(owner, actors[a], "entries", NULL);
                int64_t next[STRESS_CALLERS];
                for (size_t k = 0; k < STRESS_CALLERS; k++)
                        next[k] = (int64_t) a;
                size_t n = kactor_value_list_size(v);
                cr_assert_eq(n, (size_t) STRESS_CALLERS * (STRESS_CALLS_PER_CALLER / STRESS_ACTORS),
                             "actor %zu holds %zu entries: %s", a, n, harness_value_str(cluster_nodes[0], v));
                for (size_t i = 0; i < n; i++) {
                        const kactor_value *e = kactor_value_list_get(v, i);
                        int64_t caller = kactor_value_get_int(kactor_value_list_get(e, 0));
                        int64_t seq = kactor_value_get_int(kactor_value_list_get(e, 1));
                        cr_assert(caller >= 0 && caller < STRESS_CALLERS, "actor %zu entry %zu is %s", a, i,
                                  harness_value_str(cluster_nodes[0], e));
                        cr_assert_eq(seq, next[caller], "actor %zu entry %zu is %s: caller %" PRIi64 " expected seq %" PRIi64,
                                     a, i, harness_value_str(cluster_nodes[0], e), caller, next[caller]);
                        next[caller] += STRESS_ACTORS;
                        cr_assert_eq(callers[caller].position[seq], (int64_t) i + 1,
                                     "caller %" PRIi64 " seq %" PRIi64 " got position %" PRIi64 ", its entry is at %zu",
                                     caller, seq, callers[caller].position[seq], i + 1);
                }
                kactor_value_free(v);
        }
        /* The victim's actors were rebuilt: node 0 saw the death and the actors live elsewhere. */
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[0], victim_id, NULL), "dead");
        size_t rebuilt = 0;
        for (size_t i = 0; i < STRESS_NODES; i++)
                for (const char *l = i == victim ? "" : harness_nodemgr_log(cluster_nodes[i]);
                     (l = strstr(l, "rebuilt here")); l++)
                        rebuilt++;
        cr_assert_eq(rebuilt, victim == 1 ? 4u : 3u, "%zu of the victim's actors were rebuilt", rebuilt);
        cluster_nodes[victim] = harness_stop(cluster_nodes[victim]);
}

/* --- D-Bus: paths are the same on every node ------------------------------------------------------- */

Test(cluster, actor_and_object_paths_from_one_node_work_on_any) {
        cluster_start(3, NULL);
        Harness *a = cluster_nodes[0], *b = cluster_nodes[1], *c = cluster_nodes[2];
        const char *module = harness_module(a, "counter");

        /* Created through node 0 on node 1, over D-Bus. */
        const char *actor = harness_busctl_path(
                a, harness_busctl_call_ok(a, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "CreateActor", "ssava{sv}",
                                          module, "Counter", "1", "x", "5", "1", "Node", "s", cluster_node_id(b),
                                          NULL));
        cr_assert(harness_wait_actor_state(b, actor, "alive", CLUSTER_WAIT_MS), "node 1 does not host %s", actor);
        cr_assert_str_eq(harness_property_string(a, actor, HARNESS_IFACE_ACTOR, "Node"), cluster_node_id(b));

        /* Called through node 2 with the path from node 0; its result read on node 0 with the object
         * path from node 2. */
        const char *object = harness_busctl_path(
                c, harness_busctl_call_ok(c, actor, HARNESS_IFACE_ACTOR, "Call", "sav", "increment", "0", NULL));
        const char *out = harness_busctl_call_ok(a, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1",
                                                 object, "10000000", NULL);
        cr_assert(strstr(out, "x 6"), "Get on node 0 of %s (made on node 2) returned %s", object, out);
        out = harness_busctl_call_ok(b, actor, HARNESS_IFACE_ACTOR, "Call", "sav", "get", "0", NULL);
        out = harness_busctl_call_ok(b, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1",
                                     harness_busctl_path(b, out), "10000000", NULL);
        cr_assert(strstr(out, "x 6"), "%s", out);

        /* Kill through node 2: the actor on node 1 dies. */
        harness_busctl_call_ok(c, actor, HARNESS_IFACE_ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(b, actor, "dead", CLUSTER_WAIT_MS));
}

Test(cluster, actor_that_does_not_fit_here_goes_to_a_peer_with_the_resources) {
        cluster_start(3, NULL);
        kactor_client *c = harness_client(cluster_nodes[0]);
        struct kactor_actor_opts o = { .sz = sizeof(o), .num_gpus = 1 };
        kactor_actor actors[3];

        /* One GPU per node: the first actor stays here, the next two go to the peers. */
        for (size_t i = 0; i < 3; i++) {
                actors[i] = harness_create(cluster_nodes[0], c, harness_module(cluster_nodes[0], "counter"), "Counter",
                                           "[0]", &o);
                cr_assert_eq(cluster_call_int(c, actors[i], "increment"), 1);
        }
        for (size_t i = 0; i < 3; i++)
                cr_assert_eq(harness_property_uint(cluster_nodes[i], HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Actors"),
                             1, "node %zu hosts %" PRIu64 " actors", i,
                             harness_property_uint(cluster_nodes[i], HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Actors"));
        cr_assert_str_eq(harness_property_string(cluster_nodes[0], harness_actor_path(cluster_nodes[0], actors[0]),
                                                 HARNESS_IFACE_ACTOR, "Node"),
                         cluster_node_id(cluster_nodes[0]));

        /* No node has a GPU left, and node 0 has heard so from each (resources travel with the
         * members' next messages): the request fails here, saying what is missing. */
        for (uint64_t end = cluster_now_ms() + CLUSTER_WAIT_MS;; usleep(20 * 1000)) {
                PeerView v[3];
                size_t n = cluster_read_peers(cluster_nodes[0], v, 3), busy = 0;
                for (size_t i = 0; i < n && i < 3; i++)
                        busy += v[i].gpus_free == 0;
                if (busy == 3)
                        break;
                cr_assert(cluster_now_ms() < end, "node 0 does not see every GPU taken");
        }
        kactor_actor x;
        int r = kactor_create_actor(c, harness_module(cluster_nodes[0], "counter"), "Counter", NULL, &o, &x);
        cr_assert_eq(r, -EREMOTEIO);
        cr_assert_eq(kactor_client_error(c), KACTOR_ERROR_INSUFFICIENT_RESOURCES, "%s",
                     kactor_client_error_message(c));

        /* A node that is not in the cluster is refused at once. */
        struct kactor_actor_opts bad = { .sz = sizeof(bad), .node = "0123456789abcdef" };
        r = kactor_create_actor(c, harness_module(cluster_nodes[0], "counter"), "Counter", NULL, &bad, &x);
        cr_assert_eq(r, -EREMOTEIO);
        cr_assert(strstr(kactor_client_error_message(c), "no live node"), "%s", kactor_client_error_message(c));
}

Test(cluster, actor_with_checkpoints_is_rebuilt_from_its_checkpoint_and_the_calls_after) {
        const char *const extra[] = { "--checkpoint-interval=5", NULL };
        cluster_start_with(3, NULL, extra);
        kactor_client *c = harness_client(cluster_nodes[0]);
        struct kactor_actor_opts o = { .sz = sizeof(o), .node = cluster_node_id(cluster_nodes[1]) };
        kactor_actor a = harness_create(cluster_nodes[0], c, harness_module(cluster_nodes[0], "lineagemod"), "Saver",
                                        NULL, &o);
        int64_t sum = 0;
        for (int64_t i = 1; i <= 23; i++) {
                _cleanup_free_ char *args = NULL;
                cr_assert(asprintf(&args, "[%" PRId64 "]", i) >= 0);
                kactor_value *v = cluster_call(c, a, "add", args);
                sum += i;
                harness_assert_value(v, harness_printf(cluster_nodes[0], "%" PRId64, sum));
                kactor_value_free(v);
        }
        const char *path = harness_actor_path(cluster_nodes[1], a);
        cr_assert_geq(harness_property_uint(cluster_nodes[1], path, HARNESS_IFACE_ACTOR, "CheckpointIndex"), 20);

        cluster_crash_node(1);
        /* Rebuilt on its replica from the checkpoint (after call 20 or later) and the calls after it. */
        kactor_value *v = cluster_call(c, a, "get", NULL);
        harness_assert_value(v, harness_printf(cluster_nodes[0], "[%" PRId64 ", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, "
                                                                 "13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]]",
                                               sum));
        kactor_value_free(v);
        size_t host = 0;
        for (size_t i = 0; i < 3; i += 2)
                if (strstr(harness_nodemgr_log(cluster_nodes[i]), "after a checkpoint"))
                        host = i + 1;
        cr_assert(host > 0, "no node rebuilt the actor from its checkpoint; node 0's log:\n%s",
                  harness_nodemgr_log(cluster_nodes[0]));
        cluster_nodes[1] = harness_stop(cluster_nodes[1]);
}

/* The first node of an actor's Replicas, as its host says ("" when none). */
static const char *first_replica(Harness *host, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *id = NULL;
        int r = harness_bus_call(host, &e, &reply, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                                 HARNESS_IFACE_ACTOR, "Replicas");
        cr_assert(r >= 0, "Get Replicas: %s", e.message ?: strerror(-r));
        cr_assert(sd_bus_message_enter_container(reply, 'v', "as") > 0);
        cr_assert(sd_bus_message_enter_container(reply, 'a', "s") >= 0);
        r = sd_bus_message_read(reply, "s", &id);
        cr_assert(r >= 0);
        const char *ret = harness_printf(host, "%s", r > 0 ? id : "");
        sd_bus_message_unref(reply);
        return ret;
}

static size_t node_index(const char *id) {
        for (size_t i = 0; i < CLUSTER_NODES_MAX; i++)
                if (cluster_nodes[i] && cluster_nodes[i]->nodemgr_pid > 0 && streq(cluster_node_id(cluster_nodes[i]), id))
                        return i;
        cr_assert_fail("no live node %s", id);
        return 0;
}

Test(cluster, replica_lost_is_replaced_then_host_lost_keeps_every_call) {
        cluster_start(5, NULL);
        kactor_client *c0 = harness_client(cluster_nodes[0]);
        /* Detached: its maker's node may be the one that dies, and a node that dies stops holding. */
        struct kactor_actor_opts o = { .sz = sizeof(o), .node = cluster_node_id(cluster_nodes[1]), .detached = true };
        kactor_actor a = harness_create(cluster_nodes[0], c0, harness_module(cluster_nodes[0], "counter"), "Counter",
                                        "[0]", &o);
        cr_assert_eq(cluster_call_int(c0, a, "increment"), 1);
        const char *path = harness_actor_path(cluster_nodes[1], a);
        const char *replica_id = first_replica(cluster_nodes[1], path);
        size_t replica = node_index(replica_id);
        cr_assert_neq(replica, 1);
        /* The calls go through a node that is neither the host nor its replica. */
        size_t via = 0;
        while (via == 1 || via == replica)
                via++;
        kactor_client *c = harness_client(cluster_nodes[via]);
        for (int i = 2; i <= 20; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i);

        /* The replica dies: the host picks another and sends it everything. */
        cluster_crash_node(replica);
        const char *now = "";
        for (uint64_t end = cluster_now_ms() + CLUSTER_WAIT_MS; cluster_now_ms() < end; usleep(50 * 1000)) {
                now = first_replica(cluster_nodes[1], path);
                if (*now && !streq(now, replica_id))
                        break;
        }
        cr_assert(*now && !streq(now, replica_id), "the host has no new replica after its replica died; its log:\n%s",
                  harness_nodemgr_log(cluster_nodes[1]));
        for (int i = 21; i <= 30; i++)
                cr_assert_eq(cluster_call_int(c, a, "increment"), i);

        /* Then the host dies: the new replica has every acknowledged call. */
        cluster_crash_node(1);
        cr_assert_eq(cluster_call_int(c, a, "increment"), 31);
        cr_assert_eq(cluster_call_int(c, a, "get"), 31);
        cluster_nodes[1] = harness_stop(cluster_nodes[1]);
        cluster_nodes[replica] = harness_stop(cluster_nodes[replica]);
}

/* --- owners across nodes (docs/isolation.md, "Owners") -------------------------------------------- */

/* A member of the access group calls through node 0 root's actors living on node 1: node 1 decides by
 * the caller's user, which travels with the call; a value node 1 made is fetched with its owner. */
static TestGroup owners_group;
static TestUser owners_user;

/* The nodes first (they use the group), then the user and group. */
static void owners_fini(void) {
        cluster_teardown();
        users_remove(&owners_user);
        users_group_remove(&owners_group);
}

Test(cluster, a_peer_judges_calls_kills_and_fetches_by_the_callers_user, .fini = owners_fini) {
        users_group_make(&owners_group, "kcl", "", USERS_GID_DEFAULT);
        users_make(&owners_user, "kcl", "", &owners_group, NULL);
        const char *const extra[] = { "--access-group", owners_group.name, NULL };
        cluster_start_with(2, NULL, extra);
        Harness *a = cluster_nodes[0], *b = cluster_nodes[1];
        cr_assert_eq(chmod(a->dir, 0755), 0);
        kactor_client *c = harness_client(a);
        kactor_actor mine = cluster_create_counter_on(a, c, b, 0);
        struct kactor_actor_opts o = { .sz = sizeof(o), .node = cluster_node_id(b),
                                       .allow_users = &owners_user.uid, .n_allow_users = 1 };
        kactor_actor shared = harness_create(a, c, harness_module(a, "counter"), "Counter", NULL, &o);
        const char *mine_path = harness_actor_path(a, mine), *shared_path = harness_actor_path(a, shared);
        cr_assert(harness_wait_actor_state(b, mine_path, "alive", CLUSTER_WAIT_MS));
        cr_assert(harness_wait_actor_state(b, shared_path, "alive", CLUSTER_WAIT_MS));
        const char *out;

        /* Root's: the call goes to node 1, which refuses it; the result says so. */
        cr_assert_eq(users_busctl(a, &owners_user, &out,
                                  "call io.kactor.NodeManager1 %s io.kactor.Actor1 Call sav increment 0",
                                  mine_path),
                     0, "%s", out);
        const char *object = harness_busctl_path(a, out);
        cr_assert_neq(users_busctl_get(a, &owners_user, &out, object), 0);
        cr_assert(strstr(out, "may not call"), "the member's call on root's actor on a peer: %s\n%s", out, cluster_logs());
        /* A kill is refused there too (and logged), and the actor goes on. */
        (void) users_busctl(a, &owners_user, &out,
                            "call io.kactor.NodeManager1 %s io.kactor.Actor1 Kill b true", mine_path);
        for (unsigned i = 0; i < 100 && !strstr(harness_nodemgr_log(b), "Refused a kill from node"); i++)
                usleep(20000);
        cr_assert(strstr(harness_nodemgr_log(b), "Refused a kill from node"), "%s", cluster_logs());
        cr_assert_eq(cluster_call_int(c, mine, "increment"), 1, "root's counter was touched");

        /* Shared with the member: called through node 0, the result is the member's. */
        cr_assert_eq(users_busctl(a, &owners_user, &out,
                                  "call io.kactor.NodeManager1 %s io.kactor.Actor1 Call sav increment 0",
                                  shared_path),
                     0, "%s", out);
        object = harness_busctl_path(a, out);
        cr_assert_eq(users_busctl_get(a, &owners_user, &out, object), 0, "%s\n%s", out, cluster_logs());
        cr_assert_str_eq(out, "av 1 x 1");

        /* A value root put on node 1, fetched through node 0: root's, so the member's Get is refused
         * and root's is not. */
        kactor_client *cb = harness_client(b);
        kactor_value *v = kactor_value_new_string("the value root put on node 1");
        kactor_ref put;
        cr_assert_eq(kactor_put(cb, v, &put), 0);
        kactor_value_free(v);
        kactor_value_free(harness_get(cb, put)); /* it is there */
        const char *put_path = harness_object_path(b, put);
        cr_assert_neq(users_busctl_get(a, &owners_user, &out, put_path), 0);
        cr_assert(strstr(out, "belongs to another user"), "the member's Get of root's value from a peer: %s", out);
        cr_assert_str_eq(harness_busctl_call_ok(a, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", put_path,
                                                "10000000", NULL),
                         "av 1 s \"the value root put on node 1\"");
}

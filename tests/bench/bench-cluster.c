/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Cluster benchmarks (docs/benchmarks.md, "Cluster"; docs/cluster.md), against node managers that
 * run.sh starts for them: each with its own dbus-daemon, runtime directory and cgroup name,
 * listening on a loopback address 127.X.Y.N and joined through the first one. A node is given as
 * LABEL:PID:DIR (DIR/bus is its bus, DIR/run/nodemgr.sock its native socket, PID its node manager).
 * Each group runs on a cluster of its own:
 *
 *   bench-cluster calls A B           two nodes, defaults (--replicas 1)
 *     remote_1_1_actor_calls_sync     one client on A calling a Counter on A (local) and one on B
 *     remote_1_1_actor_calls_async    (remote) in paired rounds (bench-compare.h): remote ÷ local
 *   bench-cluster replication R0 R1 R2   three nodes, --replicas 0, 1 and 2 (a host's own setting
 *                                     says how many peers keep its actors' lineage)
 *     replication_r1_calls_async      1_1_actor_calls_async on a Counter local to the R1 node, and to
 *     replication_r2_calls_async      the R2 node, each paired with one local to the R0 node: ÷ R=0
 *   bench-cluster tls P1 P2 T1 T2     two clusters of two nodes, defaults: P1 and P2 without TLS
 *                                     (KACTOR_PEER_PLAINTEXT=1), T1 and T2 with it
 *     tls_remote_calls_sync           one client on P1 calling a Counter on P2, one on T1 calling a
 *     tls_remote_calls_async          Counter on T2, in paired rounds: TLS ÷ plaintext
 *     tls_replication_r1_calls_async  a Counter local to P1 (its lineage kept by P2) and one local to
 *                                     T1 (kept by T2): TLS ÷ plaintext
 *   bench-cluster failure X Y Z       three nodes, defaults
 *     soak_idle_3_nodes               KACTOR_BENCH_SOAK (60) s of the idle cluster, every change of
 *                                     Peers that any node announces (PropertiesChanged) watched: a
 *                                     member seen suspect or dead, or with a new incarnation, is a
 *                                     false suspicion, and each one is printed
 *     failure_detection               SIGSTOP of Z's node manager at a random point of the probe
 *                                     cycle, timed until X and Y both say it is dead; SIGCONT, and
 *                                     back to alive everywhere before the next of
 *                                     KACTOR_BENCH_DETECT_ROUNDS (5) rounds; the median
 *     rebuild_10000_calls             10,000 increments on a Counter on Y through X, kill -9 of Y's
 *                                     node manager, timed until an increment sent through X right
 *                                     after the kill answers 10,001; split where X's Peers said Y
 *                                     dead. Beside it, in the same run, a local restart of the same
 *                                     log on X (its worker killed, MaxRestarts -1), and the kill's
 *                                     own detection time (failure_detection_kill9)
 *
 * Node states are taken from the PropertiesChanged signals of Peers (sent with the value, when a
 * member is added or changes state or incarnation), timestamped as they arrive: no polling.
 *
 * Usage: bench-cluster GROUP NODE... [-- NAME...] (NAME: a figure, its group, or "cluster")
 */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bench-compare.h"
#include "bench-util.h"
#include "peer-proto.h"

#define BUS_NAME "io.kactor.NodeManager1"
#define BUS_PATH "/io/kactor/NodeManager1"
#define BUS_IFACE "io.kactor.NodeManager1"
#define BUS_IFACE_ACTOR "io.kactor.Actor1"

#define NODES_MAX 4
#define MEMBERS_MAX 16
#define WAIT_FORMED_MS 20000u
#define REBUILD_CALLS 10000
#define DETECT_TARGET_MS 1000.0
#define REBUILD_TARGET_MS 1000.0

typedef struct Member {
        char id[64];
        char state[16];
        uint32_t incarnation;
} Member;

typedef struct Node {
        const char *label;
        pid_t pid;
        const char *dir;
        char socket[PATH_MAX];
        char bus_address[PATH_MAX];
        char id[64];
        sd_bus *bus;
        Member members[MEMBERS_MAX];
        size_t n_members;
        bool killed; /* by us, on purpose */
        unsigned cluster; /* the tls group runs two clusters side by side */
        /* When this node first said the watched member was suspect / dead (0: not yet). */
        uint64_t target_suspect_ns, target_dead_ns;
} Node;

static Node nodes[NODES_MAX];
static size_t n_nodes;
static char **names;
static int n_names;
static const char *group;

/* The member whose fall is timed (its id), and the soak's tally of what it saw. */
static const char *target_id;
static bool soaking;
static unsigned soak_events;
static uint64_t soak_start_ns;
/* A node we stopped (SIGSTOP), woken again whatever happens. */
static pid_t stopped_pid;

static bool wanted(const char *name) {
        if (n_names == 0)
                return true;
        for (int i = 0; i < n_names; i++)
                if (strcmp(names[i], name) == 0 || strcmp(names[i], group) == 0 ||
                    strcmp(names[i], "cluster") == 0)
                        return true;
        return false;
}

static double ms_since(uint64_t t0, uint64_t t) {
        return (double) (t - t0) / 1e6;
}

static void wake_stopped(void) {
        if (stopped_pid > 0)
                (void) kill(stopped_pid, SIGCONT);
        stopped_pid = 0;
}

static void on_signal(int sig) {
        if (stopped_pid > 0)
                (void) kill(stopped_pid, SIGCONT);
        _exit(128 + sig);
}

/* Whether a node manager still runs: not gone, not a zombie (run.sh, its parent, reaps it later). */
static bool pid_running(pid_t pid) {
        char path[64], buf[512], *p;
        FILE *f;
        bool running = false;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ')
                running = p[2] != 'Z' && p[2] != 'X';
        fclose(f);
        return running;
}

static void print_log_tail(const Node *n) {
        char path[PATH_MAX + 16], line[512];
        char *lines[20] = {};
        unsigned k = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/nodemgr.log", n->dir);
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                free(lines[k % 20]);
                lines[k % 20] = strdup(line);
                k++;
        }
        fclose(f);
        for (unsigned i = k > 20 ? k - 20 : 0; i < k; i++) {
                fprintf(stderr, "node %s: %s", n->label, lines[i % 20] ?: "");
                free(lines[i % 20]);
        }
}

/* --- watching Peers ------------------------------------------------------------------------------ */

static const char *member_state(const Node *n, const char *id, uint32_t *ret_inc) {
        for (size_t i = 0; i < n->n_members; i++)
                if (strcmp(n->members[i].id, id) == 0) {
                        if (ret_inc)
                                *ret_inc = n->members[i].incarnation;
                        return n->members[i].state;
                }
        return "";
}

/* A member's label, or its id when it is none of the nodes given. */
static const char *member_label(const char *id) {
        for (size_t i = 0; i < n_nodes; i++)
                if (strcmp(nodes[i].id, id) == 0)
                        return nodes[i].label;
        return id;
}

/* What changed in a node's view of the cluster: the soak reports it, the detection times it. */
static void node_view_changed(Node *n, const Member *old, size_t n_old, uint64_t now) {
        for (size_t i = 0; i < n->n_members; i++) {
                const Member *m = &n->members[i], *was = NULL;

                for (size_t j = 0; j < n_old; j++)
                        if (strcmp(old[j].id, m->id) == 0)
                                was = &old[j];
                if (target_id && strcmp(m->id, target_id) == 0) {
                        if (strcmp(m->state, "suspect") == 0 && n->target_suspect_ns == 0)
                                n->target_suspect_ns = now;
                        if (strcmp(m->state, "dead") == 0 && n->target_dead_ns == 0)
                                n->target_dead_ns = now;
                }
                if (!soaking || !was)
                        continue;
                if (strcmp(m->state, was->state) != 0 || m->incarnation != was->incarnation) {
                        soak_events++;
                        printf("%-30s %15s  at %.1f s node %s saw %s %s -> %s, incarnation %u -> %u\n",
                               "  soak:", "", ms_since(soak_start_ns, now) / 1e3, n->label,
                               member_label(m->id), was->state, m->state, was->incarnation, m->incarnation);
                }
        }
}

/* Reads an a(sssudduutt) Peers value into the node's view. */
static int peers_read(Node *n, sd_bus_message *m) {
        Member old[MEMBERS_MAX];
        size_t n_old = n->n_members, k = 0;
        int r;

        memcpy(old, n->members, sizeof(old));
        r = sd_bus_message_enter_container(m, 'a', "(sssudduutt)");
        if (r < 0)
                return r;
        for (;;) {
                const char *id, *address, *state;
                uint32_t inc, gpus, free_gpus;
                double cpus, free_cpus;
                uint64_t memory, free_memory;

                r = sd_bus_message_read(m, "(sssudduutt)", &id, &address, &state, &inc, &cpus, &free_cpus,
                                        &gpus, &free_gpus, &memory, &free_memory);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (k < MEMBERS_MAX) {
                        snprintf(n->members[k].id, sizeof(n->members[k].id), "%s", id);
                        snprintf(n->members[k].state, sizeof(n->members[k].state), "%s", state);
                        n->members[k].incarnation = inc;
                        k++;
                }
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        n->n_members = k;
        node_view_changed(n, old, n_old, bench_now_ns());
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Node *n = userdata;
        const char *iface, *property;
        int r;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || strcmp(iface, BUS_IFACE) != 0)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &property);
                if (r >= 0 && strcmp(property, "Peers") == 0) {
                        r = sd_bus_message_enter_container(m, 'v', "a(sssudduutt)");
                        if (r >= 0)
                                r = peers_read(n, m);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                } else if (r >= 0)
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r < 0)
                fprintf(stderr, "node %s: could not parse a Peers signal: %s\n", n->label, strerror(-r));
        return 0;
}

static int bus_get_string(Node *n, const char *path, const char *iface, const char *property, char *buf,
                          size_t size) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;
        int r;

        r = sd_bus_get_property_string(n->bus, BUS_NAME, path, iface, property, &e, &s);
        sd_bus_error_free(&e);
        if (r < 0)
                return r;
        snprintf(buf, size, "%s", s);
        free(s);
        return 0;
}

static int bus_get_u32(Node *n, const char *path, const char *iface, const char *property, uint32_t *ret) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_trivial(n->bus, BUS_NAME, path, iface, property, &e, 'u', ret);
        sd_bus_error_free(&e);
        return r;
}

static int bus_get_u64(Node *n, const char *path, const char *iface, const char *property, uint64_t *ret) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_trivial(n->bus, BUS_NAME, path, iface, property, &e, 't', ret);
        sd_bus_error_free(&e);
        return r;
}

static void actor_path(kactor_actor a, char *buf, size_t size) {
        char id[KACTOR_ID_STRING_MAX];

        kactor_id_to_string(a.id, id);
        snprintf(buf, size, BUS_PATH "/actor/%s", id);
}

/* Connects to a node's bus, subscribes to its Peers changes, reads its id and its view. */
static void node_open(Node *n) {
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_new(&n->bus);
        if (r >= 0)
                r = sd_bus_set_address(n->bus, n->bus_address);
        if (r >= 0)
                r = sd_bus_set_bus_client(n->bus, true);
        if (r >= 0)
                r = sd_bus_start(n->bus);
        if (r < 0)
                bench_fail(group, NULL, r, "connecting to node %s's bus %s", n->label, n->bus_address);
        r = sd_bus_match_signal(n->bus, NULL, NULL, BUS_PATH, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_properties_changed, n);
        if (r < 0)
                bench_fail(group, NULL, r, "subscribing to node %s's PropertiesChanged", n->label);
        r = bus_get_string(n, BUS_PATH, BUS_IFACE, "NodeId", n->id, sizeof(n->id));
        if (r < 0)
                bench_fail(group, NULL, r, "reading node %s's NodeId", n->label);
        r = sd_bus_get_property(n->bus, BUS_NAME, BUS_PATH, BUS_IFACE, "Peers", &e, &reply, "a(sssudduutt)");
        if (r >= 0)
                r = peers_read(n, reply);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
        if (r < 0)
                bench_fail(group, NULL, r, "reading node %s's Peers", n->label);
}

/*
 * Dispatches what the nodes' buses bring until done() says so or the deadline passes; true when
 * done. Waits in poll() on all the buses at once.
 */
static bool watch(bool (*done)(void *userdata), void *userdata, uint64_t deadline_ns) {
        for (;;) {
                struct pollfd p[NODES_MAX];
                size_t k = 0;
                uint64_t now;
                int r;

                for (size_t i = 0; i < n_nodes; i++) {
                        if (!nodes[i].bus)
                                continue;
                        while ((r = sd_bus_process(nodes[i].bus, NULL)) > 0)
                                ;
                        if (r < 0)
                                bench_fail(group, NULL, r, "node %s's bus", nodes[i].label);
                }
                if (done && done(userdata))
                        return true;
                now = bench_now_ns();
                if (now >= deadline_ns)
                        return false;
                for (size_t i = 0; i < n_nodes; i++) {
                        if (!nodes[i].bus)
                                continue;
                        p[k].fd = sd_bus_get_fd(nodes[i].bus);
                        r = sd_bus_get_events(nodes[i].bus);
                        p[k].events = (short) (r > 0 ? r : POLLIN);
                        p[k].revents = 0;
                        k++;
                }
                uint64_t left_ms = (deadline_ns - now) / 1000000 + 1;
                (void) poll(p, k, (int) (left_ms < 100 ? left_ms : 100));
        }
}

/* Every running node sees every running node of its cluster alive (and the others not alive). */
static bool all_alive(void *userdata) {
        for (size_t i = 0; i < n_nodes; i++) {
                if (nodes[i].killed)
                        continue;
                for (size_t j = 0; j < n_nodes; j++)
                        if (!nodes[j].killed && nodes[j].cluster == nodes[i].cluster &&
                            strcmp(member_state(&nodes[i], nodes[j].id, NULL), "alive") != 0)
                                return false;
        }
        return true;
}

static void wait_formed(const char *name) {
        if (watch(all_alive, NULL, bench_now_ns() + WAIT_FORMED_MS * 1000000ULL))
                return;
        for (size_t i = 0; i < n_nodes; i++)
                for (size_t j = 0; j < n_nodes; j++) {
                        const char *state = member_state(&nodes[i], nodes[j].id, NULL);

                        if (!nodes[i].killed && !nodes[j].killed && nodes[i].cluster == nodes[j].cluster)
                                fprintf(stderr, "node %s sees %s: %s\n", nodes[i].label, nodes[j].label,
                                        state[0] ? state : "(unknown)");
                }
        bench_fail(name, NULL, -ETIMEDOUT, "every node did not see every node alive within %u s",
                   WAIT_FORMED_MS / 1000);
}

/* Every running node other than the target says the target is dead. */
static bool target_dead_everywhere(void *userdata) {
        const Node *target = userdata;

        for (size_t i = 0; i < n_nodes; i++)
                if (&nodes[i] != target && !nodes[i].killed && nodes[i].target_dead_ns == 0)
                        return false;
        return true;
}

static void target_set(Node *target) {
        target_id = target ? target->id : NULL;
        for (size_t i = 0; i < n_nodes; i++)
                nodes[i].target_suspect_ns = nodes[i].target_dead_ns = 0;
}

static double median(double *v, unsigned n) {
        return compare_median(v, n);
}

/* --- calls: local vs remote, and replication -------------------------------------------------------- */

/* B's rate, and B ÷ A (the median of the rounds' ratios) beside A's rate. */
static void run_paired(const char *name, CompareKind kind, const CompareVariant v[2], const char *what_a) {
        char figure[64], ratio[200], a[32], b[32];
        CompareResult res;
        int r;

        r = compare_calls(name, kind, v, 1, compare_rounds(), compare_slice_s(), &res);
        if (r < 0)
                bench_fail(name, NULL, r, "running the paired call benchmark");
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(res.median[1], b, sizeof(b)));
        if (kind == COMPARE_SYNC)
                snprintf(ratio, sizeof(ratio), "%.3fx %s: %.1f vs %.1f µs/op; range %.3f-%.3f, %u rounds",
                         res.ratio, what_a, 1e6 / res.median[1], 1e6 / res.median[0], res.ratio_min,
                         res.ratio_max, res.rounds);
        else
                snprintf(ratio, sizeof(ratio), "%.3fx %s %s/s; range %.3f-%.3f, %u rounds", res.ratio,
                         what_a, bench_format_count(res.median[0], a, sizeof(a)), res.ratio_min,
                         res.ratio_max, res.rounds);
        bench_line(name, figure, ratio, BENCH_INFO, "");
}

static void run_calls(void) {
        const CompareVariant v[2] = {
                { .label = "local", .socket = nodes[0].socket, .method = "increment" },
                { .label = "remote", .socket = nodes[0].socket, .method = "increment", .node = nodes[1].id },
        };

        if (wanted("remote_1_1_actor_calls_sync"))
                run_paired("remote_1_1_actor_calls_sync", COMPARE_SYNC, v, "local");
        if (wanted("remote_1_1_actor_calls_async"))
                run_paired("remote_1_1_actor_calls_async", COMPARE_ASYNC, v, "local");
}

static void run_replication(void) {
        for (unsigned k = 1; k <= 2; k++) {
                const CompareVariant v[2] = {
                        { .label = "R=0", .socket = nodes[0].socket, .method = "increment" },
                        { .label = k == 1 ? "R=1" : "R=2",
                          .socket = nodes[k].socket,
                          .method = "increment" },
                };
                char name[64];

                snprintf(name, sizeof(name), "replication_r%u_calls_async", k);
                if (wanted(name))
                        run_paired(name, COMPARE_ASYNC, v, "R=0");
        }
}

/* What TLS costs (docs/cluster.md, "Transport security"): the same calls over a cluster whose peers
 * speak in clear and over one whose peers speak TLS, in paired rounds. */
static void run_tls(void) {
        const CompareVariant remote[2] = {
                { .label = "plaintext", .socket = nodes[0].socket, .method = "increment", .node = nodes[1].id },
                { .label = "TLS", .socket = nodes[2].socket, .method = "increment", .node = nodes[3].id },
        };
        const CompareVariant replicated[2] = {
                { .label = "plaintext", .socket = nodes[0].socket, .method = "increment" },
                { .label = "TLS", .socket = nodes[2].socket, .method = "increment" },
        };

        if (wanted("tls_remote_calls_sync"))
                run_paired("tls_remote_calls_sync", COMPARE_SYNC, remote, "plaintext");
        if (wanted("tls_remote_calls_async"))
                run_paired("tls_remote_calls_async", COMPARE_ASYNC, remote, "plaintext");
        if (wanted("tls_replication_r1_calls_async"))
                run_paired("tls_replication_r1_calls_async", COMPARE_ASYNC, replicated, "plaintext");
}

/* --- failure: the soak, detection, rebuilding ------------------------------------------------------ */

static void run_soak(void) {
        const char *name = "soak_idle_3_nodes";
        double seconds = bench_env_double("KACTOR_BENCH_SOAK", 60);
        char figure[64], ratio[160];
        unsigned unannounced = 0;

        wait_formed(name);
        soaking = true;
        soak_events = 0;
        soak_start_ns = bench_now_ns();
        (void) watch(NULL, NULL, soak_start_ns + (uint64_t) (seconds * 1e9));
        soaking = false;
        /* What each node says at the end, read afresh: should a change have gone unannounced, a member
         * not alive or with a new incarnation (a suspicion it refuted) still shows. */
        for (size_t i = 0; i < n_nodes; i++) {
                sd_bus_message *reply = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;
                int r;

                r = sd_bus_get_property(nodes[i].bus, BUS_NAME, BUS_PATH, BUS_IFACE, "Peers", &e, &reply,
                                        "a(sssudduutt)");
                if (r >= 0)
                        r = peers_read(&nodes[i], reply);
                sd_bus_message_unref(reply);
                sd_bus_error_free(&e);
                if (r < 0)
                        bench_fail(name, NULL, r, "reading node %s's Peers", nodes[i].label);
                for (size_t j = 0; j < n_nodes; j++) {
                        uint32_t inc = 0;
                        const char *state = member_state(&nodes[i], nodes[j].id, &inc);

                        if (strcmp(state, "alive") != 0 || inc != 0) {
                                unannounced += soak_events == 0;
                                printf("%-30s %15s  at the end node %s says %s is %s, incarnation %u\n",
                                       "  soak:", "", nodes[i].label, nodes[j].label, state, inc);
                        }
                }
        }
        snprintf(figure, sizeof(figure), "%u", soak_events + unannounced);
        snprintf(ratio, sizeof(ratio),
                 "changes of state or incarnation seen in %.0f s of %zu idle nodes' Peers", seconds,
                 n_nodes);
        bench_line(name, figure, ratio, soak_events == 0 ? BENCH_PASS : BENCH_MISS, "target: none");
}

static void detection_report(const char *name, double dead_ms, double suspect_ms, const char *detail) {
        char figure[64], ratio[200], target[64];

        snprintf(figure, sizeof(figure), "%.0f ms", dead_ms);
        const double probe_ms = MEMBERSHIP_PROBE_INTERVAL_DEFAULT / 1000.0,
                     suspicion_ms = MEMBERSHIP_SUSPECT_TIMEOUT_DEFAULT / 1000.0;
        snprintf(ratio, sizeof(ratio), "%.2fx probe %.0f + suspicion %.0f ms (defaults); suspected at %.0f ms%s%s",
                 dead_ms / (probe_ms + suspicion_ms), probe_ms, suspicion_ms, suspect_ms, detail ? "; " : "",
                 detail ?: "");
        snprintf(target, sizeof(target), "target <= %.0f ms", DETECT_TARGET_MS);
        bench_line(name, figure, ratio, dead_ms <= DETECT_TARGET_MS ? BENCH_PASS : BENCH_MISS, target);
}

/* When the target was first suspected (by any other node), and when the last of the other nodes
 * said it was dead. */
static void detection_times(const Node *target, uint64_t t0, double *ret_suspect_ms, double *ret_dead_ms) {
        uint64_t suspect = 0, dead = 0;

        for (size_t i = 0; i < n_nodes; i++) {
                if (&nodes[i] == target || nodes[i].killed)
                        continue;
                if (nodes[i].target_suspect_ns > 0 && (suspect == 0 || nodes[i].target_suspect_ns < suspect))
                        suspect = nodes[i].target_suspect_ns;
                if (nodes[i].target_dead_ns > dead)
                        dead = nodes[i].target_dead_ns;
        }
        *ret_suspect_ms = suspect > t0 ? ms_since(t0, suspect) : 0;
        *ret_dead_ms = dead > t0 ? ms_since(t0, dead) : 0;
}

static void run_detection(void) {
        const char *name = "failure_detection";
        unsigned rounds = bench_env_unsigned("KACTOR_BENCH_DETECT_ROUNDS", 5);
        double dead[COMPARE_MAX_ROUNDS], suspect[COMPARE_MAX_ROUNDS], lo = 1e300, hi = 0;
        Node *target = &nodes[2];
        char detail[160];

        if (rounds > COMPARE_MAX_ROUNDS)
                rounds = COMPARE_MAX_ROUNDS;
        srand((unsigned) bench_now_ns());
        for (unsigned round = 0; round < rounds; round++) {
                uint64_t t0;

                wait_formed(name);
                /* A quiet moment after the cluster settled (refutations and DEAD_NOTICEs done), and a
                 * random part of two probe periods more: stops land anywhere in the probe cycle. */
                (void) watch(NULL, NULL, bench_now_ns() + (500 + (uint64_t) (rand() % 400)) * 1000000ULL);
                target_set(target);
                stopped_pid = target->pid;
                t0 = bench_now_ns();
                if (kill(target->pid, SIGSTOP) < 0)
                        bench_fail(name, NULL, -errno, "SIGSTOP of node %s (PID %d)", target->label,
                                   (int) target->pid);
                if (!watch(target_dead_everywhere, target, t0 + 30 * 1000000000ULL)) {
                        wake_stopped();
                        bench_fail(name, NULL, -ETIMEDOUT,
                                   "node %s stopped for 30 s and not declared dead everywhere",
                                   target->label);
                }
                detection_times(target, t0, &suspect[round], &dead[round]);
                target_set(NULL);
                wake_stopped();
                if (dead[round] < lo)
                        lo = dead[round];
                if (dead[round] > hi)
                        hi = dead[round];
        }
        /* Back: the woken node refuted its death with a new incarnation, everyone sees it alive. */
        wait_formed(name);
        snprintf(detail, sizeof(detail), "SIGSTOP, median of %u, range %d-%d ms", rounds, (int) lo,
                 (int) hi);
        detection_report(name, median(dead, rounds), median(suspect, rounds), detail);
}


/* One increment, checked: 0, or the message of what came back instead. */
static int increment_check(kactor_client *c, kactor_actor actor, int64_t want, uint64_t timeout_usec,
                           char *msg, size_t msg_size) {
        kactor_value *v = NULL;
        kactor_ref ref;
        int r;

        r = kactor_call(c, actor, "increment", NULL, &ref);
        if (r >= 0)
                r = kactor_get1(c, ref, timeout_usec, &v);
        if (r < 0) {
                snprintf(msg, msg_size, "%s%s%s", strerror(-r), r == -EREMOTEIO ? ": " : "",
                         r == -EREMOTEIO ? kactor_client_error_message(c) : "");
                return r;
        }
        if (kactor_value_type(v) != KACTOR_TYPE_INT || kactor_value_get_int(v) != want) {
                if (kactor_value_is_error(v))
                        snprintf(msg, msg_size, "an error, %s: %s",
                                 kactor_error_name(kactor_value_error_code(v)) ?: "?",
                                 kactor_value_error_message(v));
                else
                        snprintf(msg, msg_size, "%s %lld, expected %lld",
                                 kactor_type_to_string(kactor_value_type(v)),
                                 kactor_value_type(v) == KACTOR_TYPE_INT
                                         ? (long long) kactor_value_get_int(v)
                                         : 0LL,
                                 (long long) want);
                r = -EBADMSG;
        }
        kactor_value_free(v);
        (void) kactor_ref_release(c, &ref, 1);
        return r;
}

/* The baseline: a Counter on X with the same log, its worker killed (MaxRestarts -1), timed from
 * the kill to the answer of an increment sent right after it; the median of KACTOR_BENCH_RESTARTS. */
static double local_restart_ms(const char *name, kactor_client *c) {
        struct kactor_actor_opts opts = { .sz = sizeof(opts), .max_restarts = -1 };
        unsigned rounds = bench_env_unsigned("KACTOR_BENCH_RESTARTS", 11);
        double t[COMPARE_MAX_ROUNDS];
        kactor_actor a;
        char path[128], msg[256];
        int64_t want = REBUILD_CALLS;
        int r;

        if (rounds > COMPARE_MAX_ROUNDS)
                rounds = COMPARE_MAX_ROUNDS;
        r = kactor_create_actor(c, bench_counter_module(), "Counter", NULL, &opts, &a);
        if (r < 0)
                bench_fail(name, c, r, "creating a Counter on node %s", nodes[0].label);
        bench_fill_counter(name, c, a, REBUILD_CALLS);
        actor_path(a, path, sizeof(path));
        for (unsigned round = 0; round <= rounds; round++) { /* round 0: unmeasured */
                uint32_t pid = 0;
                uint64_t t0;

                r = bus_get_u32(&nodes[0], path, BUS_IFACE_ACTOR, "Pid", &pid);
                if (r < 0 || pid == 0)
                        bench_fail(name, c, r, "reading the worker's Pid on node %s", nodes[0].label);
                t0 = bench_now_ns();
                if (kill((pid_t) pid, SIGKILL) < 0)
                        bench_fail(name, c, -errno, "kill -9 %u", pid);
                r = increment_check(c, a, ++want, BENCH_GET_TIMEOUT_USEC, msg, sizeof(msg));
                if (r < 0)
                        bench_fail(name, c, 0, "after its worker was killed, Counter.increment answered %s",
                                   msg);
                if (round > 0)
                        t[round - 1] = ms_since(t0, bench_now_ns());
        }
        (void) kactor_kill(c, a, true);
        (void) kactor_actor_release(c, a);
        (void) kactor_flush(c);
        return median(t, rounds);
}

typedef struct Follow {
        kactor_client *c;
        kactor_actor actor;
        int64_t want;
        int r;
        char msg[256];
        uint64_t done_ns;
        bool done; /* atomic */
} Follow;

static void *follow_run(void *userdata) {
        Follow *f = userdata;

        f->r = increment_check(f->c, f->actor, f->want, 60 * 1000000ULL, f->msg, sizeof(f->msg));
        f->done_ns = bench_now_ns();
        __atomic_store_n(&f->done, true, __ATOMIC_RELEASE);
        return NULL;
}

typedef struct RebuildWait {
        Node *target;
        Follow *follow;
} RebuildWait;

static bool rebuild_done(void *userdata) {
        RebuildWait *w = userdata;

        return __atomic_load_n(&w->follow->done, __ATOMIC_ACQUIRE) && target_dead_everywhere(w->target);
}

static void run_rebuild(void) {
        const char *name = "rebuild_10000_calls";
        struct kactor_connect_opts copts = { .sz = sizeof(copts), .socket_path = nodes[0].socket };
        Node *x = &nodes[0], *y = &nodes[1];
        struct kactor_actor_opts opts = { .sz = sizeof(opts), .node = y->id };
        char figure[64], ratio[200], target[64], path[128], where[96] = "", msg[256];
        double restart_ms, total_ms, dead_x_ms, suspect_ms, dead_ms;
        Follow follow = {};
        RebuildWait w = { .target = y, .follow = &follow };
        kactor_client *c = NULL;
        kactor_actor a;
        uint64_t lineage = 0, t0;
        pthread_t thread;
        int r;

        wait_formed(name);
        r = kactor_connect(&copts, &c);
        if (r < 0)
                bench_fail(name, NULL, r, "connecting to node %s", x->label);
        restart_ms = local_restart_ms(name, c);

        r = kactor_create_actor(c, bench_counter_module(), "Counter", NULL, &opts, &a);
        if (r < 0)
                bench_fail(name, c, r, "creating a Counter on node %s through node %s", y->label, x->label);
        bench_fill_counter(name, c, a, REBUILD_CALLS);
        actor_path(a, path, sizeof(path));
        r = bus_get_u64(y, path, BUS_IFACE_ACTOR, "LineageLength", &lineage);
        if (r < 0 || lineage != REBUILD_CALLS)
                bench_fail(name, c, r, "the Counter on node %s has LineageLength %llu, not %u", y->label,
                           (unsigned long long) lineage, REBUILD_CALLS);
        /* Let the cluster settle after the burst of calls and their replication. */
        (void) watch(NULL, NULL, bench_now_ns() + 500 * 1000000ULL);

        target_set(y);
        follow = (Follow){ .c = c, .actor = a, .want = REBUILD_CALLS + 1 };
        t0 = bench_now_ns();
        if (kill(y->pid, SIGKILL) < 0)
                bench_fail(name, c, -errno, "kill -9 of node %s (PID %d)", y->label, (int) y->pid);
        y->killed = true;
        r = -pthread_create(&thread, NULL, follow_run, &follow);
        if (r < 0)
                bench_fail(name, c, r, "starting a thread");
        if (!watch(rebuild_done, &w, t0 + 90 * 1000000000ULL)) {
                /* The call waits at most 60 s: by now it answered or gave up; what did the nodes say? */
                for (size_t i = 0; i < n_nodes; i++)
                        if (!nodes[i].killed)
                                fprintf(stderr, "node %s says %s is %s\n", nodes[i].label, y->label,
                                        member_state(&nodes[i], y->id, NULL));
        }
        (void) pthread_join(thread, NULL);
        if (follow.r < 0)
                bench_fail(name, c, 0,
                           "after node %s was killed, Counter.increment through node %s answered %s "
                           "(%.0f ms after the kill)",
                           y->label, x->label, follow.msg, ms_since(t0, follow.done_ns));
        if (!target_dead_everywhere(y))
                bench_fail(name, c, -ETIMEDOUT,
                           "node %s was killed and not declared dead everywhere within 90 s", y->label);
        total_ms = ms_since(t0, follow.done_ns);
        dead_x_ms = ms_since(t0, x->target_dead_ns);
        detection_times(y, t0, &suspect_ms, &dead_ms);

        /* Where it lives now (x's view of it says), and that node has the whole log. */
        {
                char node_id[64] = "";

                (void) bus_get_string(x, path, BUS_IFACE_ACTOR, "Node", node_id, sizeof(node_id));
                for (size_t i = 0; i < n_nodes; i++)
                        if (!nodes[i].killed && strcmp(nodes[i].id, node_id) == 0) {
                                lineage = 0;
                                (void) bus_get_u64(&nodes[i], path, BUS_IFACE_ACTOR, "LineageLength",
                                                   &lineage);
                                snprintf(where, sizeof(where), "; rebuilt on %s%s, LineageLength %llu",
                                         nodes[i].label, &nodes[i] == x ? " (the caller's)" : "",
                                         (unsigned long long) lineage);
                        }
                if (!where[0])
                        snprintf(where, sizeof(where), "; node %s says it lives on %s", x->label,
                                 node_id[0] ? node_id : "(unknown)");
        }
        snprintf(figure, sizeof(figure), "%.0f ms", total_ms);
        snprintf(ratio, sizeof(ratio),
                 "%.0f ms to dead on %s + %.0f ms rebuild = %.1fx local restart %.1f ms%s", dead_x_ms,
                 x->label, total_ms - dead_x_ms, (total_ms - dead_x_ms) / restart_ms, restart_ms, where);
        snprintf(target, sizeof(target), "target <= %.0f ms", REBUILD_TARGET_MS);
        bench_line(name, figure, ratio, total_ms <= REBUILD_TARGET_MS ? BENCH_PASS : BENCH_MISS, target);

        /* The state is whole: a second call gives the next value. */
        r = increment_check(c, a, REBUILD_CALLS + 2, BENCH_GET_TIMEOUT_USEC, msg, sizeof(msg));
        if (r < 0)
                bench_fail(name, c, 0, "the rebuilt Counter's next increment answered %s", msg);

        if (wanted("failure_detection_kill9")) {
                char detail[160];

                snprintf(detail, sizeof(detail), "kill -9 of the node manager, one sample");
                detection_report("failure_detection_kill9", dead_ms, suspect_ms, detail);
        }
        (void) kactor_actor_release(c, a);
        kactor_client_free(c);
}

/* --- main ------------------------------------------------------------------------------------------ */

static void node_parse(const char *arg, Node *n) {
        char *s = strdup(arg), *label, *pid, *dir, *end;

        if (!s)
                bench_fail("cluster", NULL, -ENOMEM, "allocating");
        label = strtok(s, ":");
        pid = strtok(NULL, ":");
        dir = strtok(NULL, "");
        if (!label || !pid || !dir)
                bench_fail("cluster", NULL, -EINVAL, "a node is LABEL:PID:DIR, not %s", arg);
        n->label = label;
        n->pid = (pid_t) strtol(pid, &end, 10);
        if (*end || n->pid <= 0)
                bench_fail("cluster", NULL, -EINVAL, "bad PID in %s", arg);
        n->dir = dir;
        snprintf(n->socket, sizeof(n->socket), "%s/run/nodemgr.sock", dir);
        snprintf(n->bus_address, sizeof(n->bus_address), "unix:path=%s/bus", dir);
}

int main(int argc, char *argv[]) {
        size_t need;
        int i;

        if (argc < 2) {
                fprintf(stderr, "usage: %s calls|replication|tls|failure LABEL:PID:DIR... [-- NAME...]\n",
                        argv[0]);
                return BENCH_EXIT_ERROR;
        }
        group = argv[1];
        for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
                if (n_nodes >= NODES_MAX)
                        bench_fail(group, NULL, -E2BIG, "at most %d nodes", NODES_MAX);
                node_parse(argv[i], &nodes[n_nodes++]);
        }
        if (i < argc) {
                names = argv + i + 1;
                n_names = argc - i - 1;
        }
        need = strcmp(group, "calls") == 0                                           ? 2
                : strcmp(group, "replication") == 0 || strcmp(group, "failure") == 0 ? 3
                : strcmp(group, "tls") == 0                                          ? 4
                                                                                     : 0;
        if (need == 0 || n_nodes != need) {
                fprintf(stderr, "%s: group %s takes %zu nodes, not %zu\n", argv[0], group, need, n_nodes);
                return BENCH_EXIT_ERROR;
        }
        signal(SIGPIPE, SIG_IGN);
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        atexit(wake_stopped); /* bench_fail() exits too */

        for (size_t k = 0; k < n_nodes; k++) {
                nodes[k].cluster = strcmp(group, "tls") == 0 ? (unsigned) k / 2 : 0;
                node_open(&nodes[k]);
        }
        wait_formed(group);
        {
                char list[256] = "";
                size_t o = 0;

                for (size_t k = 0; k < n_nodes && o < sizeof(list); k++)
                        o += (size_t) snprintf(list + o, sizeof(list) - o, "%s%s %s (PID %d)", k ? ", " : "",
                                               nodes[k].label, nodes[k].id, (int) nodes[k].pid);
                printf("%-30s %15s  (%s)\n", "  cluster", "", list);
                fflush(stdout);
        }

        if (strcmp(group, "calls") == 0)
                run_calls();
        else if (strcmp(group, "replication") == 0)
                run_replication();
        else if (strcmp(group, "tls") == 0)
                run_tls();
        else {
                if (wanted("soak_idle_3_nodes"))
                        run_soak();
                if (wanted("failure_detection"))
                        run_detection();
                if (wanted("rebuild_10000_calls") || wanted("failure_detection_kill9"))
                        run_rebuild();
        }

        for (size_t k = 0; k < n_nodes; k++)
                if (!nodes[k].killed && !pid_running(nodes[k].pid)) {
                        printf("%-30s ERROR: node %s's node manager (PID %d) died; the end of its log is on stderr\n",
                               group, nodes[k].label, (int) nodes[k].pid);
                        print_log_tail(&nodes[k]);
                        return 1;
                }
        for (size_t k = 0; k < n_nodes; k++)
                nodes[k].bus = sd_bus_flush_close_unref(nodes[k].bus);
        return 0;
}

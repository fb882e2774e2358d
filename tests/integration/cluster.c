/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Clusters of node managers for the integration tests: see cluster.h. */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "macro.h"

Harness *cluster_nodes[CLUSTER_NODES_MAX];
char cluster_secret_path[64], cluster_bad_secret_path[64];

static void write_secret(char *path, size_t sz, const char *name, const char *content) {
        snprintf(path, sz, "/tmp/kactor-cluster-%d-%s", (int) getpid(), name);
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(content, f);
        fclose(f);
}

void cluster_setup(void) {
        write_secret(cluster_secret_path, sizeof(cluster_secret_path), "secret", "the-cluster-secret-for-these-tests\n");
        write_secret(cluster_bad_secret_path, sizeof(cluster_bad_secret_path), "bad", "a-different-secret-entirely-xyz\n");
}

void cluster_teardown(void) {
        for (size_t i = 0; i < CLUSTER_NODES_MAX; i++)
                if (cluster_nodes[i]) {
                        (void) kill(cluster_nodes[i]->nodemgr_pid, SIGCONT);
                        cluster_nodes[i] = harness_stop(cluster_nodes[i]);
                }
        unlink(cluster_secret_path);
        unlink(cluster_bad_secret_path);
}


/* 127.X.Y.N, X.Y from our PID. */
const char *cluster_node_address(unsigned n) {
        static char buf[CLUSTER_NODES_MAX + 1][32];
        pid_t pid = getpid();
        snprintf(buf[n], sizeof(buf[n]), "127.%u.%u.%u:%u", (unsigned) (pid >> 8) & 0xff, (unsigned) pid & 0xff,
                 n + 1, CLUSTER_PEER_PORT);
        return buf[n];
}

struct sockaddr_in cluster_node_sockaddr(unsigned n) {
        char host[32];
        snprintf(host, sizeof(host), "%s", cluster_node_address(n));
        *strrchr(host, ':') = 0;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(CLUSTER_PEER_PORT) };
        cr_assert(inet_pton(AF_INET, host, &sa.sin_addr) == 1);
        return sa;
}

int cluster_connect_raw(unsigned n) {
        struct sockaddr_in sa = cluster_node_sockaddr(n);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0);
        cr_assert(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0, "connect %s: %m", cluster_node_address(n));
        return fd;
}

bool cluster_wait_closed(int fd, unsigned timeout_ms) {
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
                if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
                        return true;
                if (n < 0)
                        return false;
        }
}

static char *arg(const char *name, const char *value) {
        char *s;
        cr_assert(asprintf(&s, "--%s=%s", name, value) >= 0);
        return s;
}

/* Starts node i listening on its address, joining through node 0 unless it is node 0. */
static const char *cgroup_name(unsigned i) {
        static char buf[CLUSTER_NODES_MAX][48];
        snprintf(buf[i], sizeof(buf[i]), "kactor-cluster-%d-%u", (int) getpid(), i);
        return buf[i];
}

Harness *cluster_start_node(unsigned i, const char *secret, const char *suspect_ms, const char *const *extra) {
        const char *args[16] = {};
        size_t k = 0;
        args[k++] = arg("listen", cluster_node_address(i));
        /* A cgroup subtree named after the node: one started again in its place reaps what the
         * last left, and a crashed one's is removed (cluster_crash_node()). */
        args[k++] = arg("cgroup-name", cgroup_name(i));
        args[k++] = arg("cluster-secret-file", secret);
        if (i > 0)
                args[k++] = arg("join", cluster_node_address(0));
        if (suspect_ms)
                args[k++] = arg("suspect-timeout-ms", suspect_ms);
        size_t allocated = k;
        for (const char *const *e = extra; e && *e && k < ELEMENTSOF(args) - 1; e++)
                args[k++] = *e;
        HarnessOptions o = { .gpus = 1, .num_cpus = 4, .extra_args = args };
        cluster_nodes[i] = harness_start(&o);
        for (size_t j = 0; j < allocated; j++)
                free((char *) args[j]);
        return cluster_nodes[i];
}


/* Reads Peers; returns the number of members (at most max). */
size_t cluster_read_peers(Harness *h, PeerView *ret, size_t max) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = harness_bus_call(h, &e, &reply, HARNESS_BUS_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                                 HARNESS_IFACE_MANAGER, "Peers");
        cr_assert(r >= 0, "Get Peers: %s", e.message ?: strerror(-r));
        cr_assert(sd_bus_message_enter_container(reply, 'v', "a(sssudduutt)") > 0);
        cr_assert(sd_bus_message_enter_container(reply, 'a', "(sssudduutt)") >= 0);
        size_t n = 0;
        for (;;) {
                const char *id, *addr, *state;
                uint32_t inc, gt, gf;
                double ct, cf;
                uint64_t mt, mf;
                r = sd_bus_message_read(reply, "(sssudduutt)", &id, &addr, &state, &inc, &ct, &cf, &gt, &gf, &mt, &mf);
                cr_assert(r >= 0);
                if (r == 0)
                        break;
                if (n < max) {
                        snprintf(ret[n].id, sizeof(ret[n].id), "%s", id);
                        snprintf(ret[n].state, sizeof(ret[n].state), "%s", state);
                        ret[n].incarnation = inc;
                        ret[n].cpus = ct;
                        ret[n].gpus = gt;
                        ret[n].gpus_free = gf;
                        ret[n].memory = mt;
                        ret[n].memory_free = mf;
                }
                n++;
        }
        sd_bus_message_unref(reply);
        return n;
}

const char *cluster_node_id(Harness *h) {
        return harness_property_string(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "NodeId");
}

/* The state `h` has for member `id` ("" when unknown), and its incarnation. */
const char *cluster_peer_state(Harness *h, const char *id, uint32_t *ret_inc) {
        static char state[16];
        PeerView v[CLUSTER_NODES_MAX * 4];
        size_t n = cluster_read_peers(h, v, ELEMENTSOF(v));
        state[0] = 0;
        for (size_t i = 0; i < n && i < ELEMENTSOF(v); i++)
                if (streq(v[i].id, id)) {
                        snprintf(state, sizeof(state), "%s", v[i].state);
                        if (ret_inc)
                                *ret_inc = v[i].incarnation;
                }
        return state;
}

uint64_t cluster_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Waits (bounded, polling every 50 ms) until `h` has `id` in `state` with an incarnation >= min_inc. */
bool cluster_wait_peer_state(Harness *h, const char *id, const char *state, uint32_t min_inc, unsigned timeout_ms) {
        uint64_t end = cluster_now_ms() + timeout_ms;
        do {
                uint32_t inc = 0;
                if (streq(cluster_peer_state(h, id, &inc), state) && inc >= min_inc)
                        return true;
                usleep(50 * 1000);
        } while (cluster_now_ms() < end);
        return false;
}

/* Waits until every one of the n nodes sees all n alive. */
void cluster_wait_formed(size_t n) {
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++)
                        cr_assert(cluster_wait_peer_state(cluster_nodes[i], cluster_node_id(cluster_nodes[j]), "alive", 0, CLUSTER_WAIT_MS),
                                  "node %zu does not see node %zu alive; its log:\n%s", i, j,
                                  harness_nodemgr_log(cluster_nodes[i]));
}

void cluster_start(size_t n, const char *suspect_ms) {
        cluster_start_with(n, suspect_ms, NULL);
}

void cluster_start_with(size_t n, const char *suspect_ms, const char *const *extra) {
        for (size_t i = 0; i < n; i++)
                cluster_start_node(i, cluster_secret_path, suspect_ms, extra);
        cluster_wait_formed(n);
}

/* Creates a Counter on node `on` through node `via`'s client c, with the Node option. */
kactor_actor cluster_create_counter_on(Harness *via, kactor_client *c, Harness *on, int64_t start) {
        _cleanup_free_ char *args = NULL;
        cr_assert(asprintf(&args, "[%" PRId64 "]", start) >= 0);
        struct kactor_actor_opts o = { .sz = sizeof(o), .node = cluster_node_id(on) };
        return harness_create(via, c, harness_module(via, "counter"), "Counter", args, &o);
}

const char *cluster_logs(void) {
        Harness *keeper = NULL;
        char *all = strdup("");
        cr_assert_not_null(all);
        for (size_t i = 0; i < CLUSTER_NODES_MAX; i++) {
                if (!cluster_nodes[i])
                        continue;
                keeper = keeper ?: cluster_nodes[i];
                char *next;
                cr_assert(asprintf(&next, "%s--- node %zu:\n%s\n", all, i, harness_nodemgr_log(cluster_nodes[i])) >= 0);
                free(all);
                all = next;
        }
        return keeper ? harness_keep(keeper, all) : all;
}

kactor_value *cluster_call(kactor_client *c, kactor_actor a, const char *method, const char *args_json) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL, *v = NULL;
        kactor_ref ref;
        int r = kactor_call(c, a, method, args, &ref);
        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_call(%s): %s", method, strerror(-r));
        r = kactor_get1(c, ref, HARNESS_TIMEOUT_USEC, &v);
        cr_assert_eq(r, 0, "%s through node %s: %s: %s\n%s", method, kactor_client_node_id(c), strerror(-r),
                     kactor_client_error_message(c), cluster_logs());
        (void) kactor_ref_release(c, &ref, 1);
        return v;
}

int64_t cluster_call_int(kactor_client *c, kactor_actor a, const char *method) {
        kactor_value *v = cluster_call(c, a, method, NULL);
        int64_t n = 0;
        bool is_int = kactor_value_as_int(v, &n) == 0;
        const char *s = harness_value_str(cluster_nodes[0], v);
        kactor_value_free(v);
        cr_assert(is_int, "%s returned %s\n%s", method, s, cluster_logs());
        return n;
}

static int rmdir_cgroup(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        if (type == FTW_DP)
                (void) rmdir(path);
        return 0;
}

/* A machine that crashed takes its workers with it; a node manager killed alone leaves them (they
 * wait to re-attach to the next one): they are killed here as the machine's crash would, then the
 * subtree is removed, leaves first. */
static void remove_cgroup_subtree(const char *name) {
        const char *v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0 ? "/sys/fs/cgroup"
                                                                                : "/sys/fs/cgroup/unified";
        _cleanup_free_ char *root = NULL, *events = NULL;
        cr_assert(asprintf(&root, "%s/kactor/%s", v2, name) >= 0 && asprintf(&events, "%s/cgroup.events", root) >= 0);
        if (access(root, F_OK) < 0)
                return;
        _cleanup_free_ char *kill_file = NULL;
        cr_assert(asprintf(&kill_file, "%s/cgroup.kill", root) >= 0);
        FILE *k = fopen(kill_file, "we");
        if (k) {
                (void) fputs("1", k);
                (void) fclose(k);
        }
        for (uint64_t end = cluster_now_ms() + CLUSTER_WAIT_MS; cluster_now_ms() < end; usleep(20 * 1000)) {
                char buf[256] = {};
                FILE *f = fopen(events, "re");
                size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
                if (f)
                        fclose(f);
                buf[n] = 0;
                if (!f || strstr(buf, "populated 0"))
                        break;
        }
        (void) nftw(root, rmdir_cgroup, 16, FTW_DEPTH | FTW_PHYS);
        cr_assert(access(root, F_OK) < 0, "%s is left behind", root);
}

void cluster_crash_node(size_t i) {
        pid_t pid = cluster_nodes[i]->nodemgr_pid;
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(waitpid(pid, NULL, 0), pid);
        cluster_nodes[i]->nodemgr_pid = 0; /* gone on purpose */
        if (geteuid() == 0)
                remove_cgroup_subtree(cgroup_name(i));
}


/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Peer connections are TLS 1.3 (docs/cluster.md, "Transport security"): what crosses between two
 * nodes shows no method, class, module, argument or node id (a relay between them records the
 * bytes; the same relay sees them all with KACTOR_PEER_PLAINTEXT=1); a wrong secret, a peer without
 * TLS, a node without TLS and certificates of another CA are refused before any message; the
 * certificates of the cluster's CA join, and are re-read on SIGHUP; the keyring is rotated on SIGHUP
 * while calls stream through the cluster, losing none; a secret file that is not valid at a reload
 * is refused and the keyring kept.
 *
 * Nodes listen on 127.X.Y.N (cluster.h). The keyrings, certificates and the relay's capture live in
 * a temp dir of the test, removed with its nodes at the end.
 */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "macro.h"

#define RELAY_HOST 60 /* the relay listens on 127.X.Y.60, next to the nodes */
#define RELAY_CONNS_MAX 8
#define ARGUMENT "secret-argument-7f3a"
#define SECRET_OLD "the-old-cluster-secret-being-rotated-away"
#define SECRET_NEW "the-new-cluster-secret-being-rotated-in"
#define REFUSED_WAIT_MS 2000u /* a refused node has redialled 4 times by then */
#define LOG_RELOADED "Reloaded the cluster's credentials"
#define LOG_RELOAD_FAILED "Failed to reload the cluster's credentials"
#define LOG_PLAINTEXT "peer traffic is not encrypted (KACTOR_PEER_PLAINTEXT): for measurement only"
#define LOG_NOT_TLS "it does not speak TLS 1.3"
#define STREAM_MIN_STEP 20 /* results the stream delivers between two steps of a rotation */
#define STREAM_MAX 100000

static char dir[64];

static void tls_setup(void) {
        cluster_setup();
        snprintf(dir, sizeof(dir), "/tmp/kactor-cluster-tls-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void relay_stop(void);

static void tls_teardown(void) {
        relay_stop();
        cluster_teardown();
        if (dir[0])
                (void) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(cluster_tls, .init = tls_setup, .fini = tls_teardown, .timeout = 90);

/* --- helpers --------------------------------------------------------------------------------------- */

static const char *path_in_dir(const char *name) {
        static char buf[8][128];
        static unsigned next;
        char *p = buf[next++ % ELEMENTSOF(buf)];
        snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
        return p;
}

static void write_file(const char *path, const char *content) {
        _cleanup_free_ char *tmp = NULL;
        cr_assert(asprintf(&tmp, "%s.new", path) >= 0);
        FILE *f = fopen(tmp, "we");
        cr_assert_not_null(f, "%s: %m", tmp);
        cr_assert(fputs(content, f) >= 0);
        cr_assert_eq(fclose(f), 0);
        /* Whole or not at all: a reload never reads half a file. */
        cr_assert_eq(rename(tmp, path), 0, "%s: %m", path);
}

/* How often needle is in the node's log (the whole file: harness_nodemgr_log() is its tail). */
static unsigned log_count(Harness *h, const char *needle) {
        FILE *f = fopen(h->nodemgr_log, "re");
        char line[4096];
        unsigned n = 0;
        while (f && fgets(line, sizeof(line), f))
                n += strstr(line, needle) != NULL;
        if (f)
                fclose(f);
        return n;
}

/* The last line of the node's log with needle in it (harness-owned; "" when none). */
static const char *last_line_with(Harness *h, const char *needle) {
        FILE *f = fopen(h->nodemgr_log, "re");
        char line[4096], last[4096] = "";
        while (f && fgets(line, sizeof(line), f))
                if (strstr(line, needle))
                        memcpy(last, line, sizeof(last));
        if (f)
                fclose(f);
        return harness_printf(h, "%s", last);
}

static bool wait_log(Harness *h, const char *needle, unsigned count, unsigned timeout_ms) {
        for (uint64_t end = cluster_now_ms() + timeout_ms; cluster_now_ms() < end; usleep(20 * 1000))
                if (log_count(h, needle) >= count)
                        return true;
        return log_count(h, needle) >= count;
}

static const char *cgroup_name(unsigned i) {
        static char buf[CLUSTER_NODES_MAX][48];
        snprintf(buf[i], sizeof(buf[i]), "kactor-cluster-tls-%d-%u", (int) getpid(), i);
        return buf[i];
}

/* Node i, listening on its address, joining through seed (NULL: none), with the arguments that say
 * how it authenticates (NULL-terminated), and one more NAME=VALUE in its environment (or NULL). */
static Harness *start_node(unsigned i, const char *seed, const char *const *auth, const char *env) {
        const char *args[16] = {};
        size_t k = 0, owned;
        cr_assert(asprintf((char **) &args[k++], "--listen=%s", cluster_node_address(i)) >= 0);
        cr_assert(asprintf((char **) &args[k++], "--cgroup-name=%s", cgroup_name(i)) >= 0);
        if (seed)
                cr_assert(asprintf((char **) &args[k++], "--join=%s", seed) >= 0);
        owned = k;
        for (const char *const *a = auth; a && *a && k < ELEMENTSOF(args) - 1; a++)
                args[k++] = *a;
        HarnessOptions o = { .gpus = 1, .num_cpus = 4, .extra_args = args, .extra_env = env };
        cluster_nodes[i] = harness_start(&o);
        for (size_t j = 0; j < owned; j++)
                free((char *) args[j]);
        return cluster_nodes[i];
}

static Harness *start_node_with_secret(unsigned i, const char *seed, const char *secret_file,
                                       const char *env) {
        _cleanup_free_ char *arg = NULL;
        cr_assert(asprintf(&arg, "--cluster-secret-file=%s", secret_file) >= 0);
        return start_node(i, seed, (const char *const[]){ arg, NULL }, env);
}

static size_t n_members(Harness *h) {
        PeerView v[CLUSTER_NODES_MAX * 2];
        return cluster_read_peers(h, v, ELEMENTSOF(v));
}

/* The node never became a member: after REFUSED_WAIT_MS of its tries, node 0 still has `members`
 * and the refused node itself only itself. */
static void assert_refused(Harness *refused, size_t members) {
        const char *id = cluster_node_id(refused);
        usleep(REFUSED_WAIT_MS * 1000);
        cr_assert_eq(n_members(cluster_nodes[0]), members, "%s", cluster_logs());
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[0], id, NULL), "");
        cr_assert_eq(n_members(refused), 1, "the refused node learned the cluster's members:\n%s",
                     cluster_logs());
        harness_assert_running(refused);
        harness_assert_running(cluster_nodes[0]);
}

/* The first of an actor's Replicas, as its host says ("" when none). */
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

/* The key id a secret goes by (the PSK identity, peer-tls.h): HMAC-SHA256(secret, "kactor key id"). */
static const char *key_id(const char *secret) {
        static char hex[17];
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        cr_assert_not_null(HMAC(EVP_sha256(), secret, (int) strlen(secret),
                                (const uint8_t *) "kactor key id", 13, mac, &len));
        for (size_t i = 0; i < 8; i++)
                snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        return hex;
}

/* --- a relay between two nodes, recording every byte -------------------------------------------------- */

typedef struct Relay {
        int listen_fd, stop_fd;
        struct sockaddr_in target;
        pthread_t thread;
        bool running;
        uint8_t *capture;
        size_t capture_len, capture_cap;
        unsigned connections;
} Relay;

static Relay relay = { .listen_fd = -1, .stop_fd = -1 };

static void relay_record(const void *p, size_t n) {
        if (relay.capture_len + n > relay.capture_cap) {
                size_t cap = MAX(relay.capture_cap * 2, relay.capture_len + n + 65536);
                uint8_t *c = realloc(relay.capture, cap);
                if (!c)
                        abort();
                relay.capture = c;
                relay.capture_cap = cap;
        }
        memcpy(relay.capture + relay.capture_len, p, n);
        relay.capture_len += n;
}

static bool relay_send_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* The relay's thread: no asserts here (Criterion's belong to the test's thread). Its sockets block:
 * the nodes' own never do, so a node always reads what the relay writes. */
static void *relay_run(void *userdata) {
        int pairs[RELAY_CONNS_MAX][2];
        size_t n_pairs = 0;
        uint8_t buf[65536];

        for (;;) {
                struct pollfd p[2 + 2 * RELAY_CONNS_MAX] = {
                        { .fd = relay.stop_fd, .events = POLLIN },
                        { .fd = relay.listen_fd, .events = POLLIN },
                };
                for (size_t i = 0; i < n_pairs; i++)
                        for (size_t j = 0; j < 2; j++)
                                p[2 + 2 * i + j] = (struct pollfd){ .fd = pairs[i][j], .events = POLLIN };
                if (poll(p, 2 + 2 * n_pairs, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents)
                        break;
                if (p[1].revents & POLLIN) {
                        int in = accept4(relay.listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        int out = in >= 0 ? socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
                        if (n_pairs < RELAY_CONNS_MAX && out >= 0 &&
                            connect(out, (struct sockaddr *) &relay.target, sizeof(relay.target)) == 0) {
                                (void) setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
                                (void) setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
                                pairs[n_pairs][0] = in;
                                pairs[n_pairs][1] = out;
                                n_pairs++;
                                relay.connections++;
                        } else {
                                safe_close(in);
                                safe_close(out);
                        }
                        continue; /* the pollfds changed */
                }
                for (size_t i = 0; i < n_pairs; i++)
                        for (size_t j = 0; j < 2; j++) {
                                if (!p[2 + 2 * i + j].revents)
                                        continue;
                                ssize_t n = recv(pairs[i][j], buf, sizeof(buf), MSG_DONTWAIT);
                                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                                        continue;
                                if (n > 0) {
                                        relay_record(buf, (size_t) n);
                                        if (relay_send_all(pairs[i][!j], buf, (size_t) n))
                                                continue;
                                }
                                /* One side is gone: so is the other. */
                                safe_close(pairs[i][0]);
                                pairs[i][1] = safe_close(pairs[i][1]);
                                pairs[i][0] = -1;
                        }
                size_t k = 0;
                for (size_t i = 0; i < n_pairs; i++)
                        if (pairs[i][0] >= 0) {
                                pairs[k][0] = pairs[i][0];
                                pairs[k][1] = pairs[i][1];
                                k++;
                        }
                n_pairs = k;
        }
        for (size_t i = 0; i < n_pairs; i++) {
                safe_close(pairs[i][0]);
                safe_close(pairs[i][1]);
        }
        return NULL;
}

/* A relay on 127.X.Y.RELAY_HOST to node `to`; returns its address to join through. */
static const char *relay_start(unsigned to) {
        static char address[32];
        relay.target = cluster_node_sockaddr(to);
        struct sockaddr_in sa = relay.target;
        sa.sin_addr.s_addr = htonl((ntohl(sa.sin_addr.s_addr) & ~0xffu) | RELAY_HOST);
        relay.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(relay.listen_fd >= 0);
        (void) setsockopt(relay.listen_fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
        cr_assert_eq(bind(relay.listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0, "bind: %m");
        cr_assert_eq(listen(relay.listen_fd, 16), 0);
        relay.stop_fd = eventfd(0, EFD_CLOEXEC);
        cr_assert(relay.stop_fd >= 0);
        cr_assert_eq(pthread_create(&relay.thread, NULL, relay_run, NULL), 0);
        relay.running = true;
        char host[INET_ADDRSTRLEN];
        cr_assert_not_null(inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host)));
        snprintf(address, sizeof(address), "%s:%u", host, CLUSTER_PEER_PORT);
        return address;
}

static void relay_stop(void) {
        if (relay.running) {
                (void) eventfd_write(relay.stop_fd, 1);
                (void) pthread_join(relay.thread, NULL);
                relay.running = false;
        }
        relay.listen_fd = safe_close(relay.listen_fd);
        relay.stop_fd = safe_close(relay.stop_fd);
}

static bool captured(const char *s) {
        return memmem(relay.capture, relay.capture_len, s, strlen(s)) != NULL;
}

/*
 * Node 1 joins node 0 through the relay, so that their one connection goes through it; a Recorder
 * of testmod is made on node 1 through node 0 (CREATE), called with ARGUMENT (CALL, and REPL_RECORD
 * to its replica, node 0), and read back (RESULT). Returns what must not be seen on the wire.
 */
static void relayed_calls(const char *env, const char *names[static 7]) {
        start_node_with_secret(0, NULL, cluster_secret_path, env);
        const char *seed = relay_start(0);
        start_node_with_secret(1, seed, cluster_secret_path, env);
        cluster_wait_formed(2);

        kactor_client *c = harness_client(cluster_nodes[0]);
        struct kactor_actor_opts o = { .sz = sizeof(o), .node = cluster_node_id(cluster_nodes[1]) };
        kactor_actor a = harness_create(cluster_nodes[0], c, harness_module(cluster_nodes[0], "testmod"),
                                        "Recorder", NULL, &o);
        for (unsigned i = 1; i <= 3; i++) {
                kactor_value *v = harness_call(c, a, "record", "[\"" ARGUMENT "\"]");
                harness_assert_value(v, harness_printf(cluster_nodes[0], "%u", i));
                kactor_value_free(v);
        }
        kactor_value *v = harness_call(c, a, "records", NULL);
        harness_assert_value(v, "[[\"" ARGUMENT "\"], [\"" ARGUMENT "\"], [\"" ARGUMENT "\"]]");
        kactor_value_free(v);
        /* The lineage went across too: node 0 keeps the replica. */
        const char *path = harness_actor_path(cluster_nodes[1], a);
        cr_assert_str_eq(first_replica(cluster_nodes[1], path), cluster_node_id(cluster_nodes[0]));
        cr_assert_geq(relay.connections, 1);
        relay_stop();

        names[0] = ARGUMENT;
        names[1] = "Recorder";
        names[2] = "testmod";
        names[3] = "record";
        names[4] = cluster_node_id(cluster_nodes[0]);
        names[5] = cluster_node_id(cluster_nodes[1]);
        names[6] = NULL;
}

/* Certificates for the tests, made with the openssl command: ca1 signs node0 and node1, ca2 signs
 * other, and stranger signs itself. */
static void make_certificates(void) {
        _cleanup_free_ char *cmd = NULL;
        cr_assert(
                asprintf(
                        &cmd,
                        "set -e; cd %s; exec >openssl.log 2>&1\n"
                        "key() { k=$1; shift; openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                        "-keyout $k.key \"$@\"; }\n"
                        "key ca1 -x509 -out ca1.pem -subj /CN=kactor-test-ca-1 -days 2\n"
                        "key ca2 -x509 -out ca2.pem -subj /CN=kactor-test-ca-2 -days 2\n"
                        "key stranger -x509 -out stranger.pem -subj /CN=stranger -days 2\n"
                        "for n in node0:ca1 node1:ca1 other:ca2; do\n"
                        "  key ${n%%:*} -out ${n%%:*}.csr -subj /CN=${n%%:*}\n"
                        "  openssl x509 -req -in ${n%%:*}.csr -CA ${n#*:}.pem -CAkey ${n#*:}.key -CAcreateserial "
                        "-out ${n%%:*}.pem -days 2\n"
                        "done\n",
                        dir) >= 0);
        int status = system(cmd);
        cr_assert(status == 0, "openssl failed (%d), see %s/openssl.log", status, dir);
}

static const char *const *cert_args(const char *cert, const char *key, const char *ca) {
        static char buf[3][160];
        static const char *args[4];
        snprintf(buf[0], sizeof(buf[0]), "--cluster-cert=%s", cert);
        snprintf(buf[1], sizeof(buf[1]), "--cluster-key=%s", key);
        snprintf(buf[2], sizeof(buf[2]), "--cluster-ca=%s", ca);
        for (size_t i = 0; i < 3; i++)
                args[i] = buf[i];
        args[3] = NULL;
        return args;
}

static char *read_all(const char *path) {
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s: %m", path);
        char *s = NULL;
        size_t n = 0;
        cr_assert(getdelim(&s, &n, '\0', f) >= 0);
        fclose(f);
        return s;
}

static void copy_file(const char *from, const char *to) {
        _cleanup_free_ char *s = read_all(path_in_dir(from));
        write_file(path_in_dir(to), s);
}

/* A HELLO as a peer sends it without TLS: [128, 0, 2, node id, "", nonce (bin 32)]. */
static size_t hello_frame(uint8_t buf[static 64]) {
        static const char id[] = "plaintext";
        size_t n = 4;
        buf[n++] = 0x96;
        buf[n++] = 0xcc;
        buf[n++] = 0x80;
        buf[n++] = 0x00;
        buf[n++] = 0x02;
        buf[n++] = (uint8_t) (0xa0 | (sizeof(id) - 1));
        memcpy(buf + n, id, sizeof(id) - 1);
        n += sizeof(id) - 1;
        buf[n++] = 0xa0;
        buf[n++] = 0xc4;
        buf[n++] = 32;
        memset(buf + n, 0x5a, 32);
        n += 32;
        uint32_t len = (uint32_t) (n - 4);
        buf[0] = (uint8_t) len;
        buf[1] = (uint8_t) (len >> 8);
        buf[2] = buf[3] = 0;
        return n;
}

/* --- tests ------------------------------------------------------------------------------------------ */

Test(cluster_tls, bytes_between_nodes_show_no_name_argument_or_node_id) {
        const char *names[7];
        relayed_calls(NULL, names);
        cr_assert_gt(relay.capture_len, 1024, "the relay saw %zu bytes", relay.capture_len);
        /* A TLS record: handshake (22), version 3.x. */
        cr_assert(relay.capture[0] == 0x16 && relay.capture[1] == 0x03,
                  "the first bytes are not a TLS record");
        for (size_t i = 0; names[i]; i++)
                cr_assert(!captured(names[i]), "\"%s\" crossed in clear (%zu bytes captured)", names[i],
                          relay.capture_len);
        cr_assert_eq(log_count(cluster_nodes[0], LOG_PLAINTEXT), 0);
}

/* The control: the same calls without TLS show every one of them (so the test above can fail). */
Test(cluster_tls, bytes_between_nodes_without_tls_show_them) {
        const char *names[7];
        relayed_calls("KACTOR_PEER_PLAINTEXT=1", names);
        for (size_t i = 0; names[i]; i++)
                cr_assert(captured(names[i]),
                          "\"%s\" was not seen in clear without TLS (%zu bytes captured)", names[i],
                          relay.capture_len);
        for (size_t i = 0; i < 2; i++)
                cr_assert_eq(log_count(cluster_nodes[i], LOG_PLAINTEXT), 1, "%s",
                             harness_nodemgr_log(cluster_nodes[i]));
}

Test(cluster_tls, peer_without_tls_is_refused_and_so_is_a_node_without_it) {
        start_node_with_secret(0, NULL, cluster_secret_path, NULL);

        /* A raw connection that sends a HELLO in clear is closed at once (not at the 2 s deadline),
         * its HELLO never parsed. */
        int fd = cluster_connect_raw(0);
        uint8_t hello[64];
        size_t len = hello_frame(hello);
        uint64_t t0 = cluster_now_ms();
        cr_assert_eq(send(fd, hello, len, MSG_NOSIGNAL), (ssize_t) len);
        cr_assert(cluster_wait_closed(fd, CLUSTER_WAIT_MS), "a HELLO in clear did not close the connection");
        uint64_t took = cluster_now_ms() - t0;
        safe_close(fd);
        cr_assert_lt(took, 1000, "a HELLO in clear was closed only after %" PRIu64 " ms", took);
        cr_assert(wait_log(cluster_nodes[0], LOG_NOT_TLS, 1, CLUSTER_WAIT_MS), "%s",
                  harness_nodemgr_log(cluster_nodes[0]));

        /* A node without TLS (with the right secret) joining a node with it, and a node with TLS
         * joining one without. */
        Harness *plain = start_node_with_secret(1, cluster_node_address(0), cluster_secret_path,
                                                "KACTOR_PEER_PLAINTEXT=1");
        Harness *tls = start_node_with_secret(2, cluster_node_address(1), cluster_secret_path, NULL);
        assert_refused(plain, 1);
        cr_assert_eq(n_members(tls), 1, "%s", cluster_logs());
        cr_assert_eq(n_members(plain), 1, "%s", cluster_logs());
        cr_assert(log_count(tls, LOG_NOT_TLS) > 0, "%s", harness_nodemgr_log(tls));
        for (size_t i = 0; i < 3; i++)
                cr_assert_eq(log_count(cluster_nodes[i], " authenticated ("), 0, "%s", cluster_logs());
}

Test(cluster_tls, node_with_another_secret_is_refused) {
        start_node_with_secret(0, NULL, cluster_secret_path, NULL);
        Harness *bad = start_node_with_secret(1, cluster_node_address(0), cluster_bad_secret_path, NULL);
        assert_refused(bad, 1);
        _cleanup_free_ char *why = NULL;
        cr_assert(
                asprintf(&why,
                         "authentication failed: TLS handshake: its key id %s is not in this node's keyring",
                         key_id("a-different-secret-entirely-xyz")) >= 0);
        cr_assert(strstr(harness_nodemgr_log(cluster_nodes[0]), why), "%s",
                  harness_nodemgr_log(cluster_nodes[0]));
        cr_assert_eq(log_count(cluster_nodes[0], " authenticated ("), 0, "%s", cluster_logs());
}

Test(cluster_tls, certificates_of_the_ca_join_others_are_refused_and_reloaded_on_sighup) {
        make_certificates();
        static const char *const files[] = { "node0.pem", "node0.key", "ca1.pem" };
        static const char *const live[] = { "live.pem", "live.key", "live-ca.pem" };
        for (size_t i = 0; i < 3; i++)
                copy_file(files[i], live[i]);
        start_node(0, NULL,
                   cert_args(path_in_dir("live.pem"), path_in_dir("live.key"), path_in_dir("live-ca.pem")),
                   NULL);
        start_node(1, cluster_node_address(0),
                   cert_args(path_in_dir("node1.pem"), path_in_dir("node1.key"), path_in_dir("ca1.pem")),
                   NULL);
        cluster_wait_formed(2);
        cr_assert(strstr(harness_nodemgr_log(cluster_nodes[0]), "TLS, certificate /CN=node1"), "%s",
                  harness_nodemgr_log(cluster_nodes[0]));
        kactor_client *c = harness_client(cluster_nodes[0]);
        kactor_actor a = cluster_create_counter_on(cluster_nodes[0], c, cluster_nodes[1], 41);
        cr_assert_eq(cluster_call_int(c, a, "increment"), 42);

        /* A certificate of another CA (which trusts only its own), and one that signs itself. */
        Harness *other = start_node(
                2, cluster_node_address(0),
                cert_args(path_in_dir("other.pem"), path_in_dir("other.key"), path_in_dir("ca2.pem")), NULL);
        Harness *stranger = start_node(3, cluster_node_address(0),
                                       cert_args(path_in_dir("stranger.pem"), path_in_dir("stranger.key"),
                                                 path_in_dir("stranger.pem")),
                                       NULL);
        assert_refused(other, 2);
        cr_assert_eq(n_members(stranger), 1, "%s", cluster_logs());
        cr_assert_str_eq(cluster_peer_state(cluster_nodes[0], cluster_node_id(stranger), NULL), "");
        cluster_nodes[2] = harness_stop(cluster_nodes[2]);
        cluster_nodes[3] = harness_stop(cluster_nodes[3]);

        /* A key that is not the certificate's, at a reload: refused, the certificate kept. */
        copy_file("node1.key", "live.key");
        cr_assert_eq(kill(cluster_nodes[0]->nodemgr_pid, SIGHUP), 0);
        cr_assert(wait_log(cluster_nodes[0], LOG_RELOAD_FAILED, 1, CLUSTER_WAIT_MS), "%s",
                  harness_nodemgr_log(cluster_nodes[0]));
        cr_assert_eq(cluster_call_int(c, a, "increment"), 43);

        /* Node 0 moves to the other CA: node 1's certificate no longer verifies, its connection
         * is closed, and it cannot come back... */
        copy_file("other.pem", "live.pem");
        copy_file("other.key", "live.key");
        copy_file("ca2.pem", "live-ca.pem");
        cr_assert_eq(kill(cluster_nodes[0]->nodemgr_pid, SIGHUP), 0);
        cr_assert(wait_log(cluster_nodes[0], LOG_RELOADED, 1, CLUSTER_WAIT_MS), "%s",
                  harness_nodemgr_log(cluster_nodes[0]));
        cr_assert(wait_log(cluster_nodes[0], "whose certificate no longer verifies", 1, CLUSTER_WAIT_MS),
                  "%s", harness_nodemgr_log(cluster_nodes[0]));
        const char *id1 = cluster_node_id(cluster_nodes[1]);
        cr_assert(cluster_wait_peer_state(cluster_nodes[0], id1, "dead", 0, CLUSTER_WAIT_MS), "%s",
                  cluster_logs());

        /* ... until node 0 takes its CA again. */
        for (size_t i = 0; i < 3; i++)
                copy_file(files[i], live[i]);
        cr_assert_eq(kill(cluster_nodes[0]->nodemgr_pid, SIGHUP), 0);
        cr_assert(wait_log(cluster_nodes[0], LOG_RELOADED, 2, CLUSTER_WAIT_MS), "%s",
                  harness_nodemgr_log(cluster_nodes[0]));
        cluster_wait_formed(2);
}

/* The stream of calls during a rotation: in a thread of its own, with its own client, no asserts. */
typedef struct Stream {
        kactor_client *client;
        kactor_actor actor;
        pthread_t thread;
        atomic_bool stop;
        atomic_size_t n;
        int64_t results[STREAM_MAX];
        int error;
        char error_message[256];
} Stream;

static void *stream_run(void *userdata) {
        Stream *s = userdata;
        while (!atomic_load(&s->stop) && atomic_load(&s->n) < STREAM_MAX) {
                kactor_ref ref;
                kactor_value *v = NULL;
                int64_t value = 0;
                int r = kactor_call(s->client, s->actor, "increment", NULL, &ref);
                if (r >= 0) {
                        r = kactor_get1(s->client, ref, HARNESS_TIMEOUT_USEC, &v);
                        (void) kactor_ref_release(s->client, &ref, 1);
                }
                if (r >= 0 && kactor_value_as_int(v, &value) < 0)
                        r = -EBADMSG;
                kactor_value_free(v);
                if (r < 0) {
                        s->error = r;
                        snprintf(s->error_message, sizeof(s->error_message), "call %zu: %s: %s",
                                 atomic_load(&s->n) + 1, strerror(-r),
                                 kactor_client_error_message(s->client) ?: "");
                        break;
                }
                s->results[atomic_load(&s->n)] = value;
                atomic_fetch_add(&s->n, 1);
        }
        return NULL;
}

/* Waits until the stream has delivered `more` results more (it goes on meanwhile). */
static void stream_wait(Stream *s, size_t more) {
        size_t target = atomic_load(&s->n) + more;
        for (uint64_t end = cluster_now_ms() + CLUSTER_WAIT_MS; cluster_now_ms() < end && !s->error;
             usleep(5 * 1000))
                if (atomic_load(&s->n) >= target)
                        return;
        cr_assert_fail("the calls stalled at %zu (%s):\n%s", atomic_load(&s->n), s->error_message,
                       cluster_logs());
}

/* Every node's keyring file becomes content, and every node reloads it; waits until each did. */
static void rotate_step(size_t n, const char *content, unsigned step, Stream *s) {
        for (size_t i = 0; i < n; i++) {
                char name[32];
                snprintf(name, sizeof(name), "keyring-%zu", i);
                write_file(path_in_dir(name), content);
                cr_assert_eq(kill(cluster_nodes[i]->nodemgr_pid, SIGHUP), 0);
                cr_assert(wait_log(cluster_nodes[i], LOG_RELOADED, step, CLUSTER_WAIT_MS), "%s",
                          harness_nodemgr_log(cluster_nodes[i]));
                stream_wait(s, STREAM_MIN_STEP / 2);
        }
        stream_wait(s, STREAM_MIN_STEP);
}

Test(cluster_tls, secret_rotated_under_load_loses_no_call) {
        for (size_t i = 0; i < 3; i++) {
                char name[32];
                snprintf(name, sizeof(name), "keyring-%zu", i);
                write_file(path_in_dir(name), SECRET_OLD "\n");
                start_node_with_secret(i, i > 0 ? cluster_node_address(0) : NULL, path_in_dir(name), NULL);
        }
        cluster_wait_formed(3);

        /* A Counter on node 2, called through node 0; its replica is node 0 or 1. */
        Stream *s = calloc(1, sizeof(Stream));
        cr_assert_not_null(s);
        s->client = harness_client(cluster_nodes[0]);
        s->actor = cluster_create_counter_on(cluster_nodes[0], s->client, cluster_nodes[2], 0);
        cr_assert_eq(pthread_create(&s->thread, NULL, stream_run, s), 0);
        stream_wait(s, STREAM_MIN_STEP);

        /* docs/cluster.md's procedure: the new secret added second, then first, then the old one gone. */
        rotate_step(3, SECRET_OLD "\n" SECRET_NEW "\n", 1, s);
        rotate_step(3, SECRET_NEW "\n\n" SECRET_OLD "\n", 2, s);
        rotate_step(3, SECRET_NEW "\n", 3, s);
        cluster_wait_formed(3);
        stream_wait(s, STREAM_MIN_STEP);
        atomic_store(&s->stop, true);
        cr_assert_eq(pthread_join(s->thread, NULL), 0);

        /* Connections made with the old secret were closed at the last step, and made again. */
        unsigned closed = 0;
        for (size_t i = 0; i < 3; i++) {
                closed += log_count(cluster_nodes[i], "whose key left the keyring");
                cr_assert(strstr(harness_nodemgr_log(cluster_nodes[i]), "1 secret, primary key "), "%s",
                          harness_nodemgr_log(cluster_nodes[i]));
        }
        cr_assert_gt(closed, 0, "%s", cluster_logs());

        /* Every increment came back once, in order: 1..n. */
        size_t n = atomic_load(&s->n);
        cr_assert_eq(s->error, 0, "%s\n%s", s->error_message, cluster_logs());
        cr_assert_geq(n, 5 * STREAM_MIN_STEP);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(s->results[i], (int64_t) i + 1, "result %zu is %" PRId64, i + 1, s->results[i]);
        cr_assert_eq(cluster_call_int(s->client, s->actor, "get"), (int64_t) n);
        fprintf(stderr,
                "cluster-tls: %zu calls through the rotation, %u connections closed and made again\n", n,
                closed);
        free(s);

        /* A node with only the old secret is refused. */
        write_file(path_in_dir("keyring-3"), SECRET_OLD "\n");
        Harness *old = start_node_with_secret(3, cluster_node_address(0), path_in_dir("keyring-3"), NULL);
        assert_refused(old, 3);
        _cleanup_free_ char *why = NULL;
        cr_assert(asprintf(&why, "its key id %s is not in this node's keyring", key_id(SECRET_OLD)) >= 0);
        cr_assert(strstr(harness_nodemgr_log(cluster_nodes[0]), why), "%s",
                  harness_nodemgr_log(cluster_nodes[0]));
}

Test(cluster_tls, invalid_secret_file_at_reload_is_refused_and_the_keyring_kept) {
        write_file(path_in_dir("keyring-0"), SECRET_OLD "\n");
        start_node_with_secret(0, NULL, path_in_dir("keyring-0"), NULL);

        static const struct {
                const char *content; /* NULL: no file */
                const char *why;
        } bad[] = {
                { "short\n", "line 1 of" }, { SECRET_NEW "\nshort\n", "line 2 of" },
                { "", "holds no secret" },  { "\n\n", "holds no secret" },
                { NULL, "cannot read" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (bad[i].content)
                        write_file(path_in_dir("keyring-0"), bad[i].content);
                else
                        cr_assert_eq(unlink(path_in_dir("keyring-0")), 0);
                cr_assert_eq(kill(cluster_nodes[0]->nodemgr_pid, SIGHUP), 0);
                cr_assert(wait_log(cluster_nodes[0], LOG_RELOAD_FAILED, i + 1, CLUSTER_WAIT_MS), "%s",
                          harness_nodemgr_log(cluster_nodes[0]));
                const char *line = last_line_with(cluster_nodes[0], LOG_RELOAD_FAILED);
                cr_assert(strstr(line, bad[i].why), "reload %zu: %s", i, line);
        }
        cr_assert_eq(log_count(cluster_nodes[0], LOG_RELOADED), 0);

        /* The old keyring is what it takes still. */
        write_file(path_in_dir("keyring-2"), SECRET_OLD "\n");
        start_node_with_secret(2, cluster_node_address(0), path_in_dir("keyring-2"), NULL);
        cluster_wait_formed(1);
        cr_assert(cluster_wait_peer_state(cluster_nodes[0], cluster_node_id(cluster_nodes[2]), "alive", 0,
                                          CLUSTER_WAIT_MS),
                  "%s", cluster_logs());
}

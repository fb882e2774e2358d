/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Strangers on the peer port (docs/cluster.md, "Strangers"): connections that have not proved the
 * cluster secret have a small pool of their own with a short handshake deadline, so a flood of them
 * cannot keep a node with the right secret out, and cannot make the node spin or flood its log.
 *
 * The attacker is a child of the test process: it holds FLOOD_CONNS raw TCP connections to the
 * node's peer port from a few source addresses of the test's own 127.X.Y.0/24, some silent, some
 * sending garbage, some a byte at a time, some a well-formed HELLO that never follows with AUTH,
 * and opens a new one whenever the node closes one. It is bounded in connections and in time
 * (FLOOD_SECONDS), dies with the test process, and each test stops it.
 *
 * Peer connections are TLS: the node says nothing before a stranger's ClientHello, and refuses
 * what is not TLS (garbage, a HELLO in clear, the slow HELLO's first bytes) at once. A stranger
 * counts as taken from the time it is connected.
 */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "macro.h"

#define FLOOD_CONNS 160         /* held at once: more than PEER_MAX (64) and the strangers' pool */
#define FLOOD_SOURCES 4         /* source addresses 127.X.Y.100 and on */
#define FLOOD_SECONDS 60        /* the attacker's lifetime, whatever happens to the test */
#define FLOOD_SLOW_INTERVAL_MS 200
#define JOIN_MAX_MS 1000u       /* issue 10: a node with the right secret joins within 1 s */
#define JOIN_WAIT_MS 30000u     /* how long a join is waited for, to tell how long it took */
#define HANDSHAKE_MAX_MS 4000u  /* a silent stranger is gone by then (the deadline is 2 s) */
#define PEER_MAX_DOCUMENTED 64  /* PEER_MAX, as docs/cluster.md states it */
#define STRANGERS_MAX 32        /* PEER_STRANGERS_MAX, likewise */
#define HELLO_MAX 64
#define SPIN_SAMPLES 20
#define LOG_REFUSAL "unauthenticated peer connections"
#define LOG_ACCEPT_FAILED "Failed to accept a peer connection"

typedef enum StrangerKind {
        STRANGER_SILENT,
        STRANGER_GARBAGE,
        STRANGER_SLOW,  /* a HELLO, one byte every FLOOD_SLOW_INTERVAL_MS */
        STRANGER_HELLO, /* a whole HELLO at once, then nothing: the node waits for an AUTH */
        _STRANGER_KIND_MAX,
} StrangerKind;

typedef struct Stranger {
        int fd;
        StrangerKind kind;
        bool connected;
        size_t sent;
        uint64_t next_ms;
        uint64_t accepted_ms; /* when it connected, or the node's first bytes came */
} Stranger;

typedef struct Flood {
        pid_t pid;
        int ready_fd; /* readable once the flood fills the node's caps (flood_run()) */
        int stats_fd; /* "connects closed" when the attacker stops */
} Flood;

static Flood flood = { .pid = -1, .ready_fd = -1, .stats_fd = -1 };
static volatile sig_atomic_t flood_stopping;

/* A HELLO as a peer sends it ([128, 0, version 2, node id, listen address, nonce]): the node answers
 * it with its AUTH and then waits for ours. */
static size_t hello_frame(uint8_t buf[static HELLO_MAX]) {
        static const char id[] = "stranger";
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
        for (size_t i = 0; i < 32; i++)
                buf[n++] = (uint8_t) (rand() & 0xff);
        uint32_t len = (uint32_t) (n - 4);
        buf[0] = (uint8_t) len;
        buf[1] = (uint8_t) (len >> 8);
        buf[2] = 0;
        buf[3] = 0;
        return n;
}

/* 127.X.Y.(100 + i), from a node's address: an address of the test's own that no node listens on
 * (computed in the test process: the attacker's own PID would give other X.Y). */
static struct sockaddr_in source_sockaddr(const struct sockaddr_in *node, unsigned i) {
        struct sockaddr_in sa = *node;
        sa.sin_addr.s_addr = htonl((ntohl(node->sin_addr.s_addr) & ~0xffu) | (100 + i));
        sa.sin_port = 0;
        return sa;
}

/* --- the attacker (a child process: no Criterion asserts in it) -------------------------------------- */

static void stranger_open(Stranger *s, const struct sockaddr_in *target, unsigned source, unsigned long *connects) {
        *s = (Stranger) { .fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), .kind = s->kind };
        if (s->fd < 0)
                return;
        struct sockaddr_in src = source_sockaddr(target, source % FLOOD_SOURCES);
        (void) bind(s->fd, (struct sockaddr *) &src, sizeof(src));
        if (connect(s->fd, (const struct sockaddr *) target, sizeof(*target)) < 0 && errno != EINPROGRESS) {
                s->fd = safe_close(s->fd);
                return;
        }
        (*connects)++;
}

static void stranger_send_once(Stranger *s, const void *p, size_t len) {
        if (s->sent == 0 && send(s->fd, p, len, MSG_NOSIGNAL) > 0)
                s->sent = len;
}

static void stranger_write(Stranger *s, uint64_t now) {
        uint8_t hello[HELLO_MAX];
        size_t len = hello_frame(hello);
        switch (s->kind) {
        case STRANGER_GARBAGE:
                stranger_send_once(s, "\x08\x00\x00\x00garbage!", 12);
                break;
        case STRANGER_HELLO:
                stranger_send_once(s, hello, len);
                break;
        case STRANGER_SLOW:
                if (s->sent < len && now >= s->next_ms && send(s->fd, hello + s->sent, 1, MSG_NOSIGNAL) == 1) {
                        s->sent++;
                        s->next_ms = now + FLOOD_SLOW_INTERVAL_MS;
                }
                break;
        default:
                break;
        }
}

static void on_flood_sigterm(int sig) {
        flood_stopping = 1;
}

static bool stranger_holds(const Stranger *s) {
        return s->kind != STRANGER_GARBAGE;
}

/*
 * The flood is ready when it fills the node's caps for whoever comes next: either the node holds
 * PEER_MAX of its connections that will not go by themselves (all the places of peers and
 * strangers when they are one pool), or it closes such connections well before any handshake
 * deadline, FLOOD_CONNS times (making room for newcomers in a pool that is full).
 */
static _Noreturn void flood_run(struct sockaddr_in target, int ready_fd, int stats_fd) {
        Stranger *s = calloc(FLOOD_CONNS, sizeof(Stranger));
        struct pollfd *pfd = calloc(FLOOD_CONNS, sizeof(struct pollfd));
        unsigned long connects = 0, closed = 0, holding = 0, evicted = 0;
        bool ready = false;
        if (!s || !pfd)
                _exit(1);
        for (unsigned i = 0; i < FLOOD_CONNS; i++) {
                s[i].kind = (StrangerKind) (i % _STRANGER_KIND_MAX);
                stranger_open(&s[i], &target, i, &connects);
        }
        for (uint64_t end = cluster_now_ms() + FLOOD_SECONDS * 1000; cluster_now_ms() < end && !flood_stopping;) {
                for (unsigned i = 0; i < FLOOD_CONNS; i++)
                        pfd[i] = (struct pollfd) { .fd = s[i].fd, .events = POLLIN | (s[i].connected ? 0 : POLLOUT) };
                if (poll(pfd, FLOOD_CONNS, FLOOD_SLOW_INTERVAL_MS / 4) < 0 && errno != EINTR)
                        _exit(1);
                uint64_t now = cluster_now_ms();
                for (unsigned i = 0; i < FLOOD_CONNS; i++) {
                        Stranger *t = &s[i];
                        if (t->fd < 0) {
                                stranger_open(t, &target, i, &connects);
                                continue;
                        }
                        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                                char buf[4096];
                                ssize_t n = recv(t->fd, buf, sizeof(buf), MSG_DONTWAIT);
                                if (n > 0 && t->accepted_ms == 0) {
                                        t->accepted_ms = now;
                                        holding += stranger_holds(t);
                                }
                                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                                        /* Closed by the node: at once a new one in its place. */
                                        if (t->accepted_ms > 0 && stranger_holds(t)) {
                                                holding--;
                                                evicted += now - t->accepted_ms < 1000;
                                        }
                                        safe_close(t->fd);
                                        closed++;
                                        stranger_open(t, &target, i, &connects);
                                        continue;
                                }
                        }
                        if (!t->connected && (pfd[i].revents & POLLOUT)) {
                                t->connected = true;
                                /* Over TLS the node speaks only after the stranger: it took it. */
                                if (t->accepted_ms == 0) {
                                        t->accepted_ms = now;
                                        holding += stranger_holds(t);
                                }
                        }
                        if (t->connected)
                                stranger_write(t, now);
                }
                if (!ready && (holding >= PEER_MAX_DOCUMENTED || evicted >= FLOOD_CONNS))
                        ready = write(ready_fd, "x", 1) == 1;
        }
        dprintf(stats_fd, "%lu %lu\n", connects, closed);
        _exit(0);
}

static void flood_start(unsigned node) {
        int ready[2], stats[2];
        cr_assert(pipe2(ready, O_CLOEXEC) == 0 && pipe2(stats, O_CLOEXEC) == 0);
        struct sockaddr_in target = cluster_node_sockaddr(node);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                (void) sigaction(SIGTERM, &(struct sigaction) { .sa_handler = on_flood_sigterm }, NULL);
                close(ready[0]);
                close(stats[0]);
                /* Room for the connections, whatever the soft limit. */
                struct rlimit rl;
                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < FLOOD_CONNS + 64) {
                        rl.rlim_cur = MIN(rl.rlim_max, (rlim_t) FLOOD_CONNS + 64);
                        (void) setrlimit(RLIMIT_NOFILE, &rl);
                }
                srand((unsigned) getpid());
                flood_run(target, ready[1], stats[1]);
        }
        close(ready[1]);
        close(stats[1]);
        flood = (Flood) { .pid = pid, .ready_fd = ready[0], .stats_fd = stats[0] };
}

/* Waits until the flood fills the node's caps (flood_run()). */
static bool flood_wait_ready(unsigned timeout_ms) {
        struct pollfd p = { .fd = flood.ready_fd, .events = POLLIN };
        return poll(&p, 1, (int) timeout_ms) == 1 && (p.revents & POLLIN);
}

/* Stops the attacker; returns the connections it opened (0 when it did not report). */
static unsigned long flood_stop(unsigned long *ret_closed) {
        unsigned long connects = 0, closed = 0;
        if (flood.pid <= 0)
                return 0;
        (void) kill(flood.pid, SIGTERM);
        (void) waitpid(flood.pid, NULL, 0);
        char buf[64] = {};
        if (read(flood.stats_fd, buf, sizeof(buf) - 1) > 0)
                (void) sscanf(buf, "%lu %lu", &connects, &closed);
        safe_close(flood.ready_fd);
        safe_close(flood.stats_fd);
        flood = (Flood) { .pid = -1, .ready_fd = -1, .stats_fd = -1 };
        if (ret_closed)
                *ret_closed = closed;
        return connects;
}

static void flood_teardown(void) {
        (void) flood_stop(NULL);
        cluster_teardown();
}

TestSuite(peer_flood, .init = cluster_setup, .fini = flood_teardown, .timeout = 180);

/* --- helpers ------------------------------------------------------------------------------------------ */

static unsigned process_fds(pid_t pid) {
        _cleanup_free_ char *path = NULL;
        cr_assert(asprintf(&path, "/proc/%d/fd", (int) pid) >= 0);
        DIR *d = opendir(path);
        cr_assert_not_null(d);
        unsigned n = 0;
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

static char process_state(pid_t pid) {
        _cleanup_free_ char *path = NULL;
        char buf[1024] = {};
        cr_assert(asprintf(&path, "/proc/%d/stat", (int) pid) >= 0);
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        cr_assert(p && p[1] == ' ');
        return p[2];
}

/* utime + stime of a process, in seconds. */
static double process_cpu_seconds(pid_t pid) {
        _cleanup_free_ char *path = NULL;
        char buf[1024] = {};
        cr_assert(asprintf(&path, "/proc/%d/stat", (int) pid) >= 0);
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        unsigned long long utime = 0, stime = 0;
        cr_assert(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) == 2);
        return (double) (utime + stime) / (double) sysconf(_SC_CLK_TCK);
}

static unsigned count_lines_with(const char *log, const char *needle) {
        unsigned n = 0;
        for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* --- tests -------------------------------------------------------------------------------------------- */

Test(peer_flood, node_with_the_secret_joins_within_a_second_during_a_flood) {
        cluster_start(1, NULL);
        unsigned fds_before = process_fds(cluster_nodes[0]->nodemgr_pid);
        flood_start(0);
        cr_assert(flood_wait_ready(CLUSTER_WAIT_MS), "the flood never filled the node's caps:\n%s", cluster_logs());

        /* The new node's join attempt starts when it is ready: it sends READY=1 before its event
         * loop runs, and dials its seed in the loop's first iteration. */
        uint64_t t0 = cluster_now_ms();
        Harness *b = cluster_start_node(1, cluster_secret_path, NULL, NULL);
        uint64_t ready = cluster_now_ms();
        const char *b_id = cluster_node_id(b);
        bool joined = cluster_wait_peer_state(cluster_nodes[0], b_id, "alive", 0, JOIN_WAIT_MS);
        uint64_t now = cluster_now_ms(), took = now - ready;
        fprintf(stderr, "peer-flood: joined=%d in %" PRIu64 " ms from its ready (%" PRIu64 " ms from its start)\n",
                joined, took, now - t0);
        cr_assert(joined, "a node with the right secret never joined during the flood:\n%s", cluster_logs());
        cr_assert(took <= JOIN_MAX_MS, "joining during the flood took %" PRIu64 " ms (at most %u):\n%s", took,
                  JOIN_MAX_MS, cluster_logs());
        cluster_wait_formed(2);
        /* The strangers hold their pool, no more: the new member's connection, and 32. */
        unsigned fds = process_fds(cluster_nodes[0]->nodemgr_pid);
        cr_assert(fds <= fds_before + STRANGERS_MAX + 2, "%u descriptors open during the flood, %u before", fds,
                  fds_before);

        /* The node serves while the flood goes on: an actor on the new member, called through it. */
        kactor_client *c = harness_client(cluster_nodes[0]);
        kactor_actor a = cluster_create_counter_on(cluster_nodes[0], c, b, 41);
        cr_assert_eq(cluster_call_int(c, a, "increment"), 42);

        unsigned long closed = 0, connects = flood_stop(&closed);
        fprintf(stderr, "peer-flood: the attacker opened %lu connections, the node closed %lu\n", connects, closed);
        cr_assert_gt(closed, FLOOD_CONNS);

        /* And after it. */
        cr_assert_eq(cluster_call_int(c, a, "get"), 42);
        for (size_t i = 0; i < 2; i++)
                harness_assert_running(cluster_nodes[i]);
        cluster_wait_formed(2);

        /* Refusals are logged, once per interval: a few lines, not one per connection. */
        unsigned lines = count_lines_with(harness_nodemgr_log(cluster_nodes[0]), LOG_REFUSAL);
        cr_assert(lines >= 1 && lines <= 5, "%u lines about refused strangers:\n%s", lines,
                  harness_nodemgr_log(cluster_nodes[0]));
}

Test(peer_flood, silent_stranger_is_closed_at_the_handshake_deadline) {
        cluster_start(1, NULL);
        uint64_t t0 = cluster_now_ms();
        int fd = cluster_connect_raw(0);
        bool closed = cluster_wait_closed(fd, CLUSTER_WAIT_MS);
        uint64_t took = cluster_now_ms() - t0;
        safe_close(fd);
        fprintf(stderr, "peer-flood: a silent stranger was closed after %" PRIu64 " ms\n", took);
        cr_assert(closed, "a silent stranger was never closed");
        cr_assert(took <= HANDSHAKE_MAX_MS, "a silent stranger was closed only after %" PRIu64 " ms", took);
        harness_assert_running(cluster_nodes[0]);
}

Test(peer_flood, stranger_sending_more_than_the_cap_is_closed) {
        cluster_start(1, NULL);
        /* The header of a TLS handshake record of 16 KiB (as large as a record may be, so TLS
         * waits for all of it), then its body a slice at a time: the node stops reading at the cap
         * of what a stranger may send (4 KiB) and closes. */
        int fd = cluster_connect_raw(0);
        static const uint8_t header[5] = { 0x16, 0x03, 0x01, 0x40, 0x00 };
        cr_assert_eq(send(fd, header, sizeof(header), MSG_NOSIGNAL), (ssize_t) sizeof(header));
        uint8_t filler[1024];
        memset(filler, 0x90, sizeof(filler));
        uint64_t t0 = cluster_now_ms();
        bool closed = false;
        for (unsigned i = 0; i < 64 && !closed; i++) {
                if (send(fd, filler, sizeof(filler), MSG_NOSIGNAL) < 0) {
                        closed = true;
                        break;
                }
                struct pollfd p = { .fd = fd, .events = POLLIN };
                while (!closed && poll(&p, 1, 20) == 1) {
                        char buf[512];
                        ssize_t n = recv(fd, buf, sizeof(buf), 0);
                        closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
                        if (n <= 0)
                                break;
                }
        }
        if (!closed)
                closed = cluster_wait_closed(fd, HANDSHAKE_MAX_MS);
        uint64_t took = cluster_now_ms() - t0;
        safe_close(fd);
        fprintf(stderr, "peer-flood: a stranger sending too much was closed after %" PRIu64 " ms\n", took);
        cr_assert(closed, "a stranger sending past the cap was never closed");
        harness_assert_running(cluster_nodes[0]);
        cluster_start_node(1, cluster_secret_path, NULL, NULL);
        cluster_wait_formed(2);
}

/* Out of file descriptors, the listener waits instead of spinning: the node's CPU time over a
 * second of refused accepts stays small, and once descriptors are free again a member joins. */
Test(peer_flood, listener_does_not_spin_when_out_of_file_descriptors) {
        cluster_start(1, NULL);
        pid_t pid = cluster_nodes[0]->nodemgr_pid;

        /* Its soft limit: what it has open now, and a few more. */
        unsigned open_fds = process_fds(pid);
        struct rlimit old, low;
        cr_assert(prlimit(pid, RLIMIT_NOFILE, NULL, &old) == 0);
        low = (struct rlimit) { .rlim_cur = open_fds + 4, .rlim_max = old.rlim_max };
        cr_assert(prlimit(pid, RLIMIT_NOFILE, &low, NULL) == 0);

        /* A second of the flood from its start (the node runs out at its first few connections),
         * looking at the node every 50 ms: a loop that spins is always running or runnable
         * (whatever else the machine runs), one that waits is asleep. */
        flood_start(0);
        double cpu0 = process_cpu_seconds(pid);
        uint64_t t0 = cluster_now_ms();
        unsigned samples = 0, running = 0;
        for (; samples < SPIN_SAMPLES; samples++) {
                usleep(1000 * 1000 / SPIN_SAMPLES);
                running += process_state(pid) == 'R';
        }
        double cpu = process_cpu_seconds(pid) - cpu0;
        double wall = (double) (cluster_now_ms() - t0) / 1000.0;
        fprintf(stderr, "peer-flood: out of descriptors, the node was running at %u of %u looks and used %.0f%% of a CPU\n",
                running, samples, 100.0 * cpu / wall);

        cr_assert(prlimit(pid, RLIMIT_NOFILE, &old, NULL) == 0);
        cr_assert(running <= samples / 2, "the node spun while out of descriptors: running at %u of %u looks, %.0f%% of a CPU",
                  running, samples, 100.0 * cpu / wall);

        (void) flood_stop(NULL);
        harness_assert_running(cluster_nodes[0]);
        cluster_start_node(1, cluster_secret_path, NULL, NULL);
        cluster_wait_formed(2);
        unsigned lines = count_lines_with(harness_nodemgr_log(cluster_nodes[0]), LOG_ACCEPT_FAILED);
        cr_assert(lines >= 1 && lines <= 2, "%u lines about failed accepts:\n%s", lines,
                  harness_nodemgr_log(cluster_nodes[0]));
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attacks on a node manager that restarts (test-restart.c shows what a restart keeps): after a
 * restart, actors' workers re-attach with ATTACH (the very process the journal names, in the
 * actor's user, with the connection prefix the journal names) and clients take their sessions back
 * with HELLO and their old id prefix. Here an outsider, a member of the access group, another user
 * and root from another process try to pass for a worker or for someone else's client, flood the
 * socket with ATTACH frames before HELLO, look at the journal, and a user's own actor tries to
 * forge results into root's session while it re-attaches. Each test asserts what a user sees: the
 * refusal, and that the real worker and client get their actor, session and values back.
 *
 * Users and a group are made per test (useradd -M -N, removed at the end); clients of other users
 * run in forked children (setresuid), which report on a pipe and never assert.
 *
 * Not tested: that what a client held is released when it does not come back
 * within the 60 s grace (CONN_GHOST_GRACE_USEC has no override, and a test may not wait that long).
 */

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../skip.h"
#include "codec.h"
#include "harness.h"
#include "macro.h"
#include "manager.h"
#include "proto.h"
#include "users.h"
#include "worker-spawn.h"

#define NOBODY 65534
#define MIB (1024u * 1024u)
/* Prefixes an attacker tries: connections are numbered from 1, so the live ones are small. */
#define GUESSED_PREFIXES 12u
/* kactor-nodemgr's WORKER_ATTACH_TIMEOUT_USEC (nodemgr/core/worker-spawn.h), in ms. */
#define WORKER_ATTACH_TIMEOUT_MS ((unsigned) (WORKER_ATTACH_TIMEOUT_USEC / 1000u))

static Harness *h;

/* Workers must wait for the next node manager (the default is minutes). */
#define REATTACH_ENV "KACTOR_WORKER_REATTACH_SEC=30"

/* --- users -------------------------------------------------------------------------------------------- */

static TestGroup group;
static TestUser member, victim, outsider; /* member and victim are in `group`, outsider is not */

/* Processes to stop at teardown should a test fail: children, and workers it stopped. */
static pid_t children[16];
static size_t n_children;
static pid_t stopped[4];
static size_t n_stopped;
static char moddir[] = "/tmp/kactor-atkmod-XXXXXX";
static bool moddir_made;

static void sleep_ms(unsigned ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

static void make_users(void) {
        users_group_make(&group, "katk", "", USERS_GID_DEFAULT);
        users_make(&member, "katk", "m", &group, NULL);
        users_make(&victim, "katk", "v", &group, NULL);
        users_make(&outsider, "katk", "o", NULL, NULL);
}

static void setup(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (users, other users' processes)");
}

static void teardown(void) {
        char cmd[256];

        for (size_t i = 0; i < n_stopped; i++)
                (void) kill(stopped[i], SIGCONT);
        n_stopped = 0;
        for (size_t i = 0; i < n_children; i++) {
                (void) kill(children[i], SIGKILL);
                (void) waitpid(children[i], NULL, 0);
        }
        n_children = 0;
        if (moddir_made) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", moddir);
                (void) system(cmd);
                moddir_made = false;
                memcpy(moddir + strlen(moddir) - 6, "XXXXXX", 6);
        }
        /* Before harness_stop(), which exits the test process when the node manager misbehaved; -f:
         * workers may still run as them. */
        TestUser *users[] = { &member, &victim, &outsider };
        for (size_t i = 0; i < ELEMENTSOF(users); i++)
                users_remove(users[i]);
        users_group_remove(&group);
        h = harness_stop(h);
}

TestSuite(restart_attacks, .init = setup, .fini = teardown, .timeout = 60);

/* A node manager whose access group is the test's (when made), reachable by other users. */
static void start(void) {
        /* The harness keeps the pointer for restarts. */
        static const char *args[] = { "--access-group", group.name, NULL };
        HarnessOptions o = { .extra_env = REATTACH_ENV, .extra_args = group.made ? args : NULL };
        h = harness_start(&o);
        /* The bus and the socket lie in the harness's private directory. */
        cr_assert_eq(chmod(h->dir, 0755), 0);
}

static void track_child(pid_t pid) {
        cr_assert_lt(n_children, ELEMENTSOF(children));
        children[n_children++] = pid;
}

static void untrack_child(pid_t pid) {
        for (size_t i = 0; i < n_children; i++)
                if (children[i] == pid) {
                        children[i] = children[--n_children];
                        return;
                }
}

static void stop_process(pid_t pid) {
        cr_assert_lt(n_stopped, ELEMENTSOF(stopped));
        cr_assert_eq(kill(pid, SIGSTOP), 0);
        stopped[n_stopped++] = pid;
}

/* It is no longer stopped (continued, or killed): teardown leaves it alone. */
static void untrack_stopped(pid_t pid) {
        for (size_t i = 0; i < n_stopped; i++)
                if (stopped[i] == pid) {
                        stopped[i] = stopped[--n_stopped];
                        return;
                }
}

static void continue_process(pid_t pid) {
        cr_assert_eq(kill(pid, SIGCONT), 0);
        untrack_stopped(pid);
}

/* The whole log of the node manager (and its workers) so far; harness-owned. */
static const char *nodemgr_log_all(void) {
        return harness_read_file(h, h->nodemgr_log, NULL);
}

static size_t count_in_log(const char *needle) {
        size_t n = 0;
        for (const char *p = nodemgr_log_all(); (p = strstr(p, needle)); p++)
                n++;
        return n;
}

/* Waits (bounded) until the log has `needle` at least n times. */
static bool wait_log(const char *needle, size_t n, unsigned timeout_ms) {
        int64_t deadline = harness_now_ms() + timeout_ms;
        for (;;) {
                if (count_in_log(needle) >= n)
                        return true;
                if (harness_now_ms() > deadline)
                        return false;
                sleep_ms(20);
        }
}

static int64_t call_int(kactor_client *c, kactor_actor a, const char *method, const char *args) {
        kactor_value *v = harness_call(c, a, method, args);
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "%s returned %s\n%s", method,
                     harness_value_str(h, v), harness_nodemgr_log(h));
        int64_t n = kactor_value_get_int(v);
        kactor_value_free(v);
        return n;
}

static uint64_t prefix_of(kactor_id id) {
        return id.lo & ~ID_SEQ_MASK;
}

/* A line of /proc/PID/status as a number ("Uid" gives the real uid, "Threads" the count); -1 if none. */
static long proc_status_long(pid_t pid, const char *field) {
        char path[64], line[256];
        size_t n = strlen(field);
        long v = -1;
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, n) == 0 && line[n] == ':') {
                        v = strtol(line + n + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

/* The system call a process sits in (/proc/PID/syscall), or -1. */
static long proc_syscall(pid_t pid) {
        char path[64], buf[64] = {};
        snprintf(path, sizeof(path), "/proc/%d/syscall", (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        return n > 0 && buf[0] >= '0' && buf[0] <= '9' ? strtol(buf, NULL, 10) : -1;
}

static bool in_sleep_syscall(pid_t pid) {
        long s = proc_syscall(pid);
#ifdef SYS_nanosleep
        if (s == SYS_nanosleep)
                return true;
#endif
        return s == SYS_clock_nanosleep;
}

/* Waits (bounded) until the worker is, or is no longer, in the sleep of a Sleeper's method. */
static void wait_sleeping(pid_t pid, bool sleeping) {
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        while (in_sleep_syscall(pid) != sleeping) {
                cr_assert_lt(harness_now_ms(), deadline, "worker %d did not %s its sleep", (int) pid,
                             sleeping ? "start" : "end");
                sleep_ms(5);
        }
}

/* --- raw protocol, usable in children (no assertions) ------------------------------------------------- */

static int raw_send_buffer(int fd, Buffer *b) {
        int r = harness_raw_send(fd, b->data + b->start, buffer_size(b));
        buffer_free(b);
        return r;
}

static int raw_read_exact(int fd, void *buf, size_t n, int64_t deadline) {
        char *b = buf;
        while (n > 0) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int64_t left = deadline - harness_now_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                int k = poll(&p, 1, (int) left);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k == 0)
                        return -ETIMEDOUT;
                ssize_t m = read(fd, b, n);
                if (m < 0 && errno == EINTR)
                        continue;
                if (m < 0 && errno == ECONNRESET)
                        return 0;
                if (m < 0)
                        return -errno;
                if (m == 0)
                        return 0;
                b += m;
                n -= (size_t) m;
        }
        return 1;
}

typedef struct Reply {
        uint32_t type;
        uint64_t code;   /* REPLY: the error code */
        uint64_t prefix; /* WELCOME: the id prefix */
        char message[256];
} Reply;

/* Reads one frame from the node manager: 1, 0 when the connection closed, or a negative errno. */
static int raw_read_reply(int fd, Reply *ret, int64_t deadline) {
        uint8_t hdr[4];
        int r = raw_read_exact(fd, hdr, sizeof(hdr), deadline);
        if (r <= 0)
                return r;
        uint32_t len = hdr[0] | (uint32_t) hdr[1] << 8 | (uint32_t) hdr[2] << 16 | (uint32_t) hdr[3] << 24;
        if (len > PROTO_FRAME_MAX)
                return -EMSGSIZE;
        _cleanup_free_ char *payload = malloc(len ?: 1);
        if (!payload)
                return -ENOMEM;
        r = raw_read_exact(fd, payload, len, deadline);
        if (r <= 0)
                return r;
        Frame f;
        frame_init(&f);
        r = frame_parse(&f, payload, len);
        if (r >= 0) {
                const char *msg = NULL;
                size_t msg_len = 0;
                *ret = (Reply){ .type = f.type };
                if (f.type == MSG_REPLY) {
                        (void) frame_field_u64(&f, 0, &ret->code);
                        if (frame_field_str(&f, 1, &msg, &msg_len) >= 0)
                                snprintf(ret->message, sizeof(ret->message), "%.*s",
                                         (int) MIN(msg_len, (size_t) 255), msg);
                } else if (f.type == MSG_WELCOME)
                        (void) frame_field_u64(&f, 3, &ret->prefix);
                r = 1;
        }
        frame_done(&f);
        return r;
}

/* Reads until the node manager closes the connection: 0 when it did, -ETIMEDOUT if it kept it. */
static int raw_wait_closed(int fd, int64_t deadline) {
        for (;;) {
                Reply rep;
                int r = raw_read_reply(fd, &rep, deadline);
                if (r <= 0)
                        return r;
        }
}

static int pack_hello(Buffer *b, uint64_t resume) {
        msgpack_packer pk;
        size_t off;
        msgpack_packer_init(&pk, b, buffer_msgpack_write);
        int r = frame_begin_request(b, &pk, MSG_HELLO, 0, resume ? 3 : 2, &off);
        if (r < 0)
                return r;
        if (msgpack_pack_uint32(&pk, PROTO_VERSION) < 0 || msgpack_pack_int64(&pk, getpid()) < 0 ||
            (resume && msgpack_pack_uint64(&pk, resume) < 0))
                return -ENOMEM;
        return frame_end(b, off);
}

/* ATTACH [version, actor id, prefix, last seq, flags, list] with `junk` redelivery entries whose
 * fields are of the right types but whose "RESULT payload" is not a frame. */
static int pack_attach(Buffer *b, kactor_id actor, uint64_t prefix, uint32_t junk) {
        msgpack_packer pk;
        size_t off;
        msgpack_packer_init(&pk, b, buffer_msgpack_write);
        int r = frame_begin_request(b, &pk, MSG_ATTACH, 0, 6, &off);
        if (r < 0)
                return r;
        if (msgpack_pack_uint32(&pk, PROTO_VERSION) < 0 || codec_pack_id(&pk, CODEC_EXT_ACTOR, actor) < 0 ||
            msgpack_pack_uint64(&pk, prefix) < 0 || msgpack_pack_uint64(&pk, 1000) < 0 ||
            msgpack_pack_uint32(&pk, ATTACH_READY) < 0 || msgpack_pack_array(&pk, junk) < 0)
                return -ENOMEM;
        for (uint32_t i = 0; i < junk; i++) {
                static const char not_a_frame[] = "\xff\xfe\xfd";
                if (msgpack_pack_array(&pk, 5) < 0 || msgpack_pack_uint64(&pk, 5000 + i) < 0 ||
                    codec_pack_id(&pk, CODEC_EXT_OBJECT,
                                  (kactor_id){ actor.hi, (1ull << ID_SEQ_BITS) | (i + 1) }) < 0 ||
                    pack_cstr(&pk, "m") < 0 || msgpack_pack_bin(&pk, 1) < 0 ||
                    msgpack_pack_bin_body(&pk, "\x90", 1) < 0 || msgpack_pack_bin(&pk, 3) < 0 ||
                    msgpack_pack_bin_body(&pk, not_a_frame, 3) < 0)
                        return -ENOMEM;
        }
        return frame_end(b, off);
}

/* One connection that sends ATTACH for `actor` with `prefix`: the REPLY's error code when the node
 * manager answered and then closed the connection, -EISCONN when it kept it open, another negative
 * errno when it did not answer. */
static int try_attach(kactor_id actor, uint64_t prefix, uint32_t junk) {
        Buffer b = {};
        Reply rep = {};
        int r = pack_attach(&b, actor, prefix, junk);
        if (r < 0) {
                buffer_free(&b);
                return r;
        }
        _cleanup_close_ int fd = harness_raw_connect(h->socket_path);
        if (fd < 0) {
                buffer_free(&b);
                return fd;
        }
        r = raw_send_buffer(fd, &b);
        if (r < 0 && r != -EPIPE)
                return r;
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        r = raw_read_reply(fd, &rep, deadline);
        if (r <= 0)
                return r == 0 ? -ECONNRESET : r;
        if (rep.type != MSG_REPLY)
                return -EPROTO;
        if (raw_wait_closed(fd, deadline) < 0)
                return -EISCONN;
        return (int) rep.code;
}

typedef struct AttachPlan {
        kactor_id actor;
        unsigned rounds; /* 0: one */
} AttachPlan;

/* ATTACH for the actor with every guessed prefix, `rounds` times, each on a connection of its own:
 * "PREFIX RESULT" lines (try_attach()'s result). */
static int attach_every_prefix(FILE *out, int in, void *userdata) {
        const AttachPlan *p = userdata;
        for (unsigned i = 0; i < (p->rounds ?: 1); i++)
                for (uint64_t k = 1; k <= GUESSED_PREFIXES; k++)
                        fprintf(out, "%llu %d\n", (unsigned long long) k,
                                try_attach(p->actor, k << ID_SEQ_BITS, 0));
        return 0;
}

/* --- children of other users -------------------------------------------------------------------------- */

typedef int (*child_fn)(FILE *out, int in, void *userdata);

typedef struct Child {
        pid_t pid;
        int out; /* what it reports */
        int in;  /* written (or closed) to tell it to go on */
        char buf[4096];
        size_t len;
} Child;

/* Runs fn(out, in, userdata) in a child as uid/gid (gid its only group). */
static Child *child_start(uid_t uid, gid_t gid, child_fn fn, void *userdata) {
        int rep[2], go[2];
        cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(rep[0]);
                close(go[1]);
                (void) signal(SIGPIPE, SIG_IGN);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(2);
                FILE *f = fdopen(rep[1], "w");
                if (!f)
                        _exit(3);
                setvbuf(f, NULL, _IOLBF, 0);
                int r = fn(f, go[0], userdata);
                fclose(f);
                _exit(r);
        }
        close(rep[1]);
        close(go[0]);
        track_child(pid);
        Child *c = calloc(1, sizeof(Child));
        cr_assert_not_null(c);
        *c = (Child){ .pid = pid, .out = rep[0], .in = go[1] };
        return c;
}

/* The child's next line of report, by the deadline; harness-owned, NULL at its end. */
static const char *child_line(Child *c, unsigned timeout_ms) {
        int64_t deadline = harness_now_ms() + timeout_ms;
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (nl) {
                        const char *line = harness_printf(h, "%.*s", (int) (nl - c->buf), c->buf);
                        c->len -= (size_t) (nl + 1 - c->buf);
                        memmove(c->buf, nl + 1, c->len);
                        return line;
                }
                cr_assert_lt(c->len, sizeof(c->buf), "a report line too long from child %d", (int) c->pid);
                struct pollfd p = { .fd = c->out, .events = POLLIN };
                int64_t left = deadline - harness_now_ms();
                cr_assert(left > 0 && poll(&p, 1, (int) left) > 0, "no report from child %d within %u ms",
                          (int) c->pid, timeout_ms);
                ssize_t n = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return NULL;
                c->len += (size_t) n;
        }
}

static void child_go(Child *c) {
        cr_assert_eq(write(c->in, "g", 1), 1);
}

/* Waits for the child to end (bounded) and frees c: its exit status. */
static int child_finish(Child *c) {
        int status;
        if (c->in >= 0)
                close(c->in);
        if (!harness_wait_pid_exit(c->pid, HARNESS_TIMEOUT_MS))
                (void) kill(c->pid, SIGKILL);
        cr_assert_eq(waitpid(c->pid, &status, 0), c->pid);
        untrack_child(c->pid);
        close(c->out);
        free(c);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs fn as uid/gid to its end: all it reported (harness-owned), asserting exit status 0. */
static const char *run_as(uid_t uid, gid_t gid, child_fn fn, void *userdata) {
        Child *c = child_start(uid, gid, fn, userdata);
        char *all = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&all, &size);
        cr_assert_not_null(mem);
        const char *line;
        while ((line = child_line(c, HARNESS_TIMEOUT_MS)))
                fprintf(mem, "%s\n", line);
        fclose(mem);
        harness_keep(h, all);
        int status = child_finish(c);
        cr_assert_eq(status, 0, "the child (uid %u) failed with %d: %s", (unsigned) uid, status, all);
        return all;
}

static bool child_wait_go(int in) {
        struct pollfd p = { .fd = in, .events = POLLIN };
        char ch;
        return poll(&p, 1, 30000) > 0 && read(in, &ch, 1) == 1;
}

static kactor_client *child_connect(void) {
        kactor_client *c = NULL;
        struct kactor_connect_opts o = { .sz = sizeof(o), .socket_path = h->socket_path };
        return kactor_connect(&o, &c) < 0 ? NULL : c;
}

/* Asserts that every line of attach_every_prefix()'s report is a refusal (AccessDenied, closed). */
static void assert_all_refused(const char *report, const char *who) {
        size_t n = 0;
        for (const char *p = report; *p; n++) {
                unsigned long long k;
                int result;
                cr_assert_eq(sscanf(p, "%llu %d", &k, &result), 2, "%s: bad report line: %s", who, p);
                cr_assert_eq(
                        result, KACTOR_ERROR_ACCESS_DENIED,
                        "%s: ATTACH with prefix %llu<<40 was not refused with AccessDenied and closed (%d)\n%s",
                        who, k, result, harness_nodemgr_log(h));
                p = strchrnul(p, '\n');
                if (*p)
                        p++;
        }
        cr_assert_eq(n, GUESSED_PREFIXES, "%s: %zu attempts reported: %s", who, n, report);
}

/* --- ATTACH from anyone but the worker ---------------------------------------------------------------- */

/* An outsider, a member of the access group and root (another process) each send ATTACH for root's
 * actor, with every small prefix, while its real worker is stopped (so they come first): each is
 * refused with AccessDenied and closed, and logged (rate-limited); then the real worker re-attaches and the actor
 * goes on with its state. */
Test(restart_attacks, attach_from_anyone_but_the_journaled_worker_is_refused) {
        make_users();
        start();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        pid_t pid = harness_actor_pid(h, a);

        stop_process(pid);
        harness_restart_nodemgr(h, SIGKILL);

        AttachPlan plan = { .actor = a.id };
        assert_all_refused(run_as(outsider.uid, outsider.gid, attach_every_prefix, &plan), "an outsider");
        assert_all_refused(run_as(member.uid, member.gid, attach_every_prefix, &plan), "a member");
        /* Root, from another process (a forked child keeps root). */
        assert_all_refused(run_as(0, 0, attach_every_prefix, &plan), "root's other process");
        /* Logged, once per 10 s (the first one's UID): the refusals do not flood the log. */
        cr_assert(strstr(nodemgr_log_all(), "): it is not the worker this node manager waits for"),
                  "no refusal logged:\n%s", harness_nodemgr_log(h));

        continue_process(pid);
        cr_assert_eq(call_int(c, a, "increment", NULL), 2, "%s", harness_nodemgr_log(h));
        cr_assert_eq(harness_actor_pid(h, a), pid, "the actor has another worker\n%s",
                     harness_nodemgr_log(h));
        cr_assert(wait_log(harness_printf(h, "The worker %d of actor", (int) pid), 1, 1000));
}

/* A member creates a detached actor (its worker runs as the member) and goes away. */
static int member_creates_actor(FILE *out, int in, void *userdata) {
        kactor_client *c = child_connect();
        if (!c)
                return 10;
        struct kactor_actor_opts o = { .sz = sizeof(o), .detached = true };
        kactor_actor a;
        kactor_ref r;
        kactor_value *v = NULL;
        if (kactor_create_actor(c, "counter", "Counter", NULL, &o, &a) < 0 ||
            kactor_call(c, a, "increment", NULL, &r) < 0 ||
            kactor_get1(c, r, HARNESS_TIMEOUT_USEC, &v) < 0 || kactor_value_type(v) != KACTOR_TYPE_INT) {
                fprintf(out, "FAILED %s\n", kactor_client_error_message(c));
                return 11;
        }
        kactor_value_free(v);
        fprintf(out, "%016llx %016llx\n", (unsigned long long) a.id.hi, (unsigned long long) a.id.lo);
        kactor_client_free(c);
        return 0;
}

/* The same user as the worker, from another process, racing ahead of it: refused for its PID. */
Test(restart_attacks, attach_of_the_workers_own_user_from_another_process_is_refused) {
        make_users();
        start();
        const char *line = run_as(member.uid, member.gid, member_creates_actor, NULL);
        unsigned long long hi, lo;
        cr_assert_eq(sscanf(line, "%llx %llx", &hi, &lo), 2, "%s", line);
        kactor_actor a = { .id = { hi, lo } };
        kactor_client *c = harness_client(h);
        cr_assert_eq(call_int(c, a, "increment", NULL), 2);
        pid_t pid = harness_actor_pid(h, a);
        cr_assert_eq(proc_status_long(pid, "Uid"), (long) member.uid,
                     "the worker does not run as the member");

        stop_process(pid);
        harness_restart_nodemgr(h, SIGTERM);

        AttachPlan plan = { .actor = a.id };
        assert_all_refused(run_as(member.uid, member.gid, attach_every_prefix, &plan), "the worker's user");
        assert_all_refused(run_as(0, 0, attach_every_prefix, &plan), "root's other process");

        continue_process(pid);
        cr_assert_eq(call_int(c, a, "increment", NULL), 3, "%s", harness_nodemgr_log(h));
        cr_assert_eq(harness_actor_pid(h, a), pid, "the actor has another worker\n%s",
                     harness_nodemgr_log(h));
}

/* The actors of users other than root come back after every restart without systemd's fd store
 * (any start without systemd, as here): the socket is made 0666 at its bind() (not chmod()ed after,
 * when a waiting worker of another user may already have found it and been refused), and workers
 * and clients retry EACCES until their deadline. */
Test(restart_attacks, a_non_root_users_actor_keeps_its_worker_across_restarts) {
        make_users();
        start();
        const char *line = run_as(member.uid, member.gid, member_creates_actor, NULL);
        unsigned long long hi, lo;
        cr_assert_eq(sscanf(line, "%llx %llx", &hi, &lo), 2, "%s", line);
        kactor_actor a = { .id = { hi, lo } };
        kactor_client *c = harness_client(h);
        cr_assert_eq(call_int(c, a, "increment", NULL), 2);
        pid_t pid = harness_actor_pid(h, a);

        for (int i = 0; i < 3; i++) {
                harness_restart_nodemgr(h, i == 1 ? SIGKILL : SIGTERM);
                kactor_value *v = harness_call(c, a, "increment", NULL);
                cr_assert(kactor_value_type(v) == KACTOR_TYPE_INT && kactor_value_get_int(v) == 3 + i,
                          "after restart %d the member's actor answered %s (expected %d): its worker "
                          "could not connect to the new socket before its chmod\n%s",
                          i + 1, harness_value_str(h, v), 3 + i, harness_nodemgr_log(h));
                kactor_value_free(v);
                cr_assert_eq(harness_actor_pid(h, a), pid);
        }
}

/* A stranger's refused ATTACHes are logged at most once per 10 s, as refused connections over the
 * caps are (docs/protocol.md "Limits"): any local user can reach the socket. */
Test(restart_attacks, refused_attaches_from_strangers_do_not_flood_the_log) {
        start();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        harness_restart_nodemgr(h, SIGTERM);
        cr_assert_eq(call_int(c, a, "increment", NULL), 2);

        size_t before = count_in_log("Refused ATTACH");
        AttachPlan plan = { .actor = a.id, .rounds = 20 };
        const char *out = run_as(NOBODY, NOBODY, attach_every_prefix, &plan);
        size_t refused = 0, n = 0;
        for (const char *p = out; *p; n++) {
                unsigned long long k;
                int result;
                cr_assert_eq(sscanf(p, "%llu %d", &k, &result), 2, "%s", p);
                refused += result == KACTOR_ERROR_ACCESS_DENIED;
                p = strchrnul(p, '\n');
                if (*p)
                        p++;
        }
        cr_assert_eq(refused, n, "%zu of %zu ATTACHes refused", refused, n);
        size_t logged = count_in_log("Refused ATTACH") - before;
        cr_log_info("%zu refused ATTACHes from uid nobody wrote %zu warnings", n, logged);
        cr_expect_leq(
                logged, 5,
                "%zu refused ATTACHes from a stranger wrote %zu warnings to the log (handle_attach() "
                "logs each one, unlike conn_refuse_fd()'s once per 10 s)",
                n, logged);
        harness_assert_running(h);
        cr_assert_eq(call_int(c, a, "increment", NULL), 3);
}

/* --- HELLO asking for someone else's session ---------------------------------------------------------- */

/* The victim: a put, and a handle on root's (not detached) actor named `userdata`, which root lets
 * go of: only the victim's session keeps it alive. After the restart and "go", gets them back. */
static int victim_session(FILE *out, int in, void *userdata) {
        const char *name = userdata;
        kactor_client *c = child_connect();
        if (!c)
                return 10;
        kactor_value *secret = kactor_value_new_string("the victim's value");
        kactor_actor a;
        kactor_ref put, r, again;
        kactor_value *v = NULL;
        if (kactor_put(c, secret, &put) < 0 || kactor_get_actor(c, name, &a) < 0 ||
            kactor_call(c, a, "increment", NULL, &r) < 0 ||
            kactor_get1(c, r, HARNESS_TIMEOUT_USEC, &v) < 0) {
                fprintf(out, "FAILED %s\n", kactor_client_error_message(c));
                return 11;
        }
        kactor_value_free(v);
        fprintf(out, "%llu %016llx %016llx %016llx\n", (unsigned long long) prefix_of(put.id),
                (unsigned long long) put.id.lo, (unsigned long long) a.id.hi, (unsigned long long) a.id.lo);
        if (!child_wait_go(in))
                return 12;
        /* The node manager restarted meanwhile: this reconnects and asks for the session back. */
        if (kactor_get1(c, put, HARNESS_TIMEOUT_USEC, &v) < 0) {
                fprintf(out, "GET FAILED %s\n", kactor_client_error_message(c));
                return 13;
        }
        const char *s = kactor_value_type(v) == KACTOR_TYPE_STRING ? kactor_value_get_string(v, NULL)
                                                                   : "(not a string)";
        fprintf(out, "value=%s\n", s);
        kactor_value_free(v);
        v = NULL;
        if (kactor_call(c, a, "increment", NULL, &r) < 0 ||
            kactor_get1(c, r, HARNESS_TIMEOUT_USEC, &v) < 0) {
                fprintf(out, "CALL FAILED %s\n", kactor_client_error_message(c));
                return 14;
        }
        fprintf(out, "count=%lld\n",
                kactor_value_type(v) == KACTOR_TYPE_INT ? (long long) kactor_value_get_int(v) : -1LL);
        kactor_value_free(v);
        if (kactor_put(c, secret, &again) < 0)
                return 15;
        fprintf(out, "same_session=%d\n", prefix_of(again.id) == prefix_of(put.id));
        kactor_value_free(secret);
        kactor_client_free(c);
        return 0;
}

typedef struct ResumePlan {
        uint64_t guesses[GUESSED_PREFIXES + 2];
        size_t n_guesses;
        kactor_id objects[2]; /* to release */
        kactor_id actor;
} ResumePlan;

/* HELLO with each guessed prefix: "GUESS TYPE CODE PREFIX" per try; on each session it is given,
 * releases the victims' objects and actor and waits for an answer that shows they were handled. */
static int hello_with_guessed_prefixes(FILE *out, int in, void *userdata) {
        const ResumePlan *p = userdata;
        for (size_t i = 0; i < p->n_guesses; i++) {
                Buffer b = {};
                Reply rep = {};
                int fd = harness_raw_connect(h->socket_path);
                if (fd < 0 || pack_hello(&b, p->guesses[i]) < 0 || raw_send_buffer(fd, &b) < 0 ||
                    raw_read_reply(fd, &rep, harness_now_ms() + HARNESS_TIMEOUT_MS) <= 0)
                        return 20;
                fprintf(out, "%llu %u %llu %llu\n", (unsigned long long) p->guesses[i], rep.type,
                        (unsigned long long) rep.code, (unsigned long long) rep.prefix);
                if (rep.type == MSG_WELCOME) {
                        msgpack_packer pk;
                        size_t off;
                        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
                        if (frame_begin_request(&b, &pk, MSG_RELEASE, 0, 2, &off) < 0 ||
                            msgpack_pack_array(&pk, 2) < 0 ||
                            codec_pack_id(&pk, CODEC_EXT_OBJECT, p->objects[0]) < 0 ||
                            codec_pack_id(&pk, CODEC_EXT_OBJECT, p->objects[1]) < 0 ||
                            msgpack_pack_array(&pk, 1) < 0 ||
                            codec_pack_id(&pk, CODEC_EXT_ACTOR, p->actor) < 0 || frame_end(&b, off) < 0)
                                return 21;
                        /* A request with an answer after it: the release was handled before that. */
                        if (frame_begin_request(&b, &pk, MSG_GET_ACTOR, 7, 1, &off) < 0 ||
                            pack_cstr(&pk, "no-such-actor") < 0 || frame_end(&b, off) < 0)
                                return 22;
                        if (raw_send_buffer(fd, &b) < 0 ||
                            raw_read_reply(fd, &rep, harness_now_ms() + HARNESS_TIMEOUT_MS) <= 0)
                                return 23;
                }
                close(fd);
        }
        return 0;
}

/* Another user asks for root's session, the victim's and every small prefix after a restart: each
 * time a new session, never the other's; what it releases there is not the victim's; an outsider
 * is refused. Root and the victim then get their sessions back, with their values and actors. */
Test(restart_attacks, hello_resuming_another_users_session_gets_a_new_one) {
        make_users();
        start();
        kactor_client *c = harness_client(h);
        kactor_value *v = kactor_value_new_string("root's value");
        kactor_ref root_put;
        cr_assert_eq(kactor_put(c, v, &root_put), 0);
        kactor_value_free(v);
        kactor_actor root_actor = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, root_actor, "increment", NULL), 1);
        uint64_t root_prefix = prefix_of(root_put.id);

        /* The victim's actor runs as root, shared with the victim: what is tested is who holds it. */
        uid_t victim_uid = victim.uid;
        struct kactor_actor_opts o = { .sz = sizeof(o), .name = "the-victims", .allow_users = &victim_uid,
                                       .n_allow_users = 1 };
        kactor_actor shared = harness_create(h, c, "counter", "Counter", NULL, &o);
        Child *vc = child_start(victim.uid, victim.gid, victim_session, (void *) o.name);
        const char *line = child_line(vc, HARNESS_TIMEOUT_MS);
        cr_assert_not_null(line);
        unsigned long long vprefix, vput_lo, va_hi, va_lo;
        cr_assert_eq(sscanf(line, "%llu %llx %llx %llx", &vprefix, &vput_lo, &va_hi, &va_lo), 4, "%s", line);
        kactor_id victim_put = { root_put.id.hi, vput_lo }, victim_actor = { va_hi, va_lo };
        cr_assert(kactor_id_equal(victim_actor, shared.id));
        cr_assert_eq(kactor_actor_release(c, shared), 0);
        v = harness_get(c, root_put); /* the release was handled before this */
        kactor_value_free(v);

        harness_restart_nodemgr(h, SIGKILL);

        ResumePlan plan = { .objects = { victim_put, root_put.id }, .actor = victim_actor };
        plan.guesses[plan.n_guesses++] = vprefix;
        plan.guesses[plan.n_guesses++] = root_prefix;
        for (uint64_t k = 1; k <= GUESSED_PREFIXES; k++)
                plan.guesses[plan.n_guesses++] = k << ID_SEQ_BITS;
        const char *report = run_as(member.uid, member.gid, hello_with_guessed_prefixes, &plan);
        size_t n = 0;
        for (const char *p = report; *p; n++) {
                unsigned long long guess, code, got;
                unsigned type;
                cr_assert_eq(sscanf(p, "%llu %u %llu %llu", &guess, &type, &code, &got), 4, "%s", p);
                cr_assert_eq(type, MSG_WELCOME, "HELLO with prefix %llu answered with type %u", guess, type);
                cr_assert_neq(
                        got, guess,
                        "a member got the session with prefix %llu<<40 (root's is %llu<<40, the victim's %llu<<40)",
                        guess >> ID_SEQ_BITS, (unsigned long long) (root_prefix >> ID_SEQ_BITS),
                        vprefix >> ID_SEQ_BITS);
                cr_assert(got != root_prefix && got != vprefix,
                          "a member got root's or the victim's prefix");
                p = strchrnul(p, '\n');
                if (*p)
                        p++;
        }
        cr_assert_eq(n, plan.n_guesses);

        /* An outsider asking for root's session is not even welcomed. */
        ResumePlan one = { .guesses = { root_prefix }, .n_guesses = 1 };
        report = run_as(outsider.uid, outsider.gid, hello_with_guessed_prefixes, &one);
        unsigned long long guess, code, got;
        unsigned type;
        cr_assert_eq(sscanf(report, "%llu %u %llu %llu", &guess, &type, &code, &got), 4, "%s", report);
        cr_assert(type == MSG_REPLY && code == KACTOR_ERROR_ACCESS_DENIED, "an outsider's HELLO: %s",
                  report);

        /* Root's client takes its own session back: its value, its actor, its ids. */
        v = harness_get(c, root_put);
        harness_assert_value(v, "\"root's value\"");
        kactor_value_free(v);
        cr_assert_eq(call_int(c, root_actor, "increment", NULL), 2);
        kactor_ref again;
        v = kactor_value_new_int(1);
        cr_assert_eq(kactor_put(c, v, &again), 0);
        kactor_value_free(v);
        cr_assert_eq(prefix_of(again.id), root_prefix, "root's client lost its session");

        child_go(vc);
        cr_assert_str_eq(child_line(vc, HARNESS_TIMEOUT_MS), "value=the victim's value", "%s",
                         harness_nodemgr_log(h));
        cr_assert_str_eq(
                child_line(vc, HARNESS_TIMEOUT_MS), "count=2",
                "the actor only the victim held lost its state or died (released by another user?)\n%s",
                harness_nodemgr_log(h));
        cr_assert_str_eq(child_line(vc, HARNESS_TIMEOUT_MS), "same_session=1",
                         "the victim lost its session");
        cr_assert_eq(child_finish(vc), 0);
}

/* --- garbage ATTACH before HELLO ---------------------------------------------------------------------- */

typedef struct FloodPlan {
        kactor_id actor; /* a real one */
} FloodPlan;

static bool message_has(const Reply *rep, const char *needle) {
        return rep->type == MSG_REPLY && strstr(rep->message, needle);
}

/* Sends `n` bytes (a frame header and what follows) on a fresh connection for as long as the node
 * manager reads them; its first answer in *ret (type 0: none) and whether it then closed the
 * connection. */
static void flood_one(const void *data, size_t n, bool *ret_closed, Reply *ret) {
        *ret = (Reply){};
        *ret_closed = false;
        int fd = harness_raw_connect(h->socket_path);
        if (fd < 0)
                return;
        size_t sent = 0;
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        while (sent < n && harness_now_ms() < deadline) {
                ssize_t k = send(fd, (const char *) data + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k > 0) {
                        sent += (size_t) k;
                        continue;
                }
                if (k < 0 && errno == EAGAIN) {
                        /* The node manager stopped reading (it refused): see what it said. */
                        struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
                        (void) poll(&p, 1, 100);
                        if (p.revents & (POLLIN | POLLHUP))
                                break;
                        continue;
                }
                break; /* EPIPE, ECONNRESET: it closed */
        }
        int r = raw_read_reply(fd, ret, deadline);
        *ret_closed = r == 0 || (r > 0 && raw_wait_closed(fd, deadline) == 0);
        close(fd);
}

/* Floods of ATTACH-shaped garbage before HELLO, as an outsider; one "KIND OK/N" line per kind. */
static int flood_attach_garbage(FILE *out, int in, void *userdata) {
        const FloodPlan *p = userdata;
        enum { ROUNDS = 40 };
        Reply rep;
        bool closed;

        /* A frame that says 1 MiB, an ATTACH's start and 256 KiB of junk. */
        size_t big_len = 256 * 1024;
        _cleanup_free_ uint8_t *big = malloc(big_len);
        if (!big)
                return 30;
        memset(big, 0xc1, big_len);
        uint32_t claim = 1024 * 1024;
        memcpy(big,
               (uint8_t[]){ claim, claim >> 8, claim >> 16, claim >> 24, 0x98, MSG_ATTACH, 0,
                            PROTO_VERSION },
               8);
        unsigned ok = 0;
        for (unsigned i = 0; i < ROUNDS; i++) {
                flood_one(big, big_len, &closed, &rep);
                ok += closed && message_has(&rep, "4 KiB");
        }
        fprintf(out, "big %u/%u\n", ok, ROUNDS);

        /* Many small ATTACHes of the wrong types back to back: [99, 0, "1", 7, {}, nil, -1, {}]. */
        static const uint8_t bad[] = { 0x98, MSG_ATTACH, 0, 0xa1, '1', 7, 0x80, 0xc0, 0xff, 0x80 };
        uint8_t many[100 * (4 + sizeof(bad))];
        for (size_t i = 0; i < 100; i++) {
                uint8_t *q = many + i * (4 + sizeof(bad));
                memcpy(q, (uint8_t[]){ sizeof(bad), 0, 0, 0 }, 4);
                memcpy(q + 4, bad, sizeof(bad));
        }
        ok = 0;
        for (unsigned i = 0; i < ROUNDS; i++) {
                flood_one(many, sizeof(many), &closed, &rep);
                ok += closed && rep.type == MSG_REPLY && rep.code == KACTOR_ERROR_PROTOCOL;
        }
        fprintf(out, "wrong-types %u/%u\n", ok, ROUNDS);

        /* A well-formed ATTACH naming a real actor, with 2 KiB of junk in its redelivery list. */
        ok = 0;
        for (unsigned i = 0; i < ROUNDS; i++)
                ok += try_attach(p->actor, (uint64_t) (i % GUESSED_PREFIXES + 1) << ID_SEQ_BITS, 60) ==
                        KACTOR_ERROR_ACCESS_DENIED;
        fprintf(out, "junk-list %u/%u\n", ok, ROUNDS);

        /* A 4 GiB length. */
        static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 0x98, MSG_ATTACH };
        ok = 0;
        for (unsigned i = 0; i < ROUNDS; i++) {
                flood_one(huge, sizeof(huge), &closed, &rep);
                ok += closed && rep.type == MSG_REPLY && rep.code == KACTOR_ERROR_PROTOCOL;
        }
        fprintf(out, "huge %u/%u\n", ok, ROUNDS);

        /* Held open at once: each with a partial ATTACH of just under 4 KiB, until told to go. */
        enum { HELD = 200 };
        int fds[HELD];
        size_t n_held = 0;
        uint8_t partial[4000];
        memset(partial, 0xc1, sizeof(partial));
        memcpy(partial, (uint8_t[]){ 0x00, 0x00, 0x01, 0x00, 0x98, MSG_ATTACH }, 6);
        for (; n_held < HELD; n_held++) {
                fds[n_held] = harness_raw_connect(h->socket_path);
                if (fds[n_held] < 0 || harness_raw_send(fds[n_held], partial, sizeof(partial)) < 0)
                        break;
        }
        fprintf(out, "held %zu/%u\n", n_held, (unsigned) HELD);
        (void) child_wait_go(in);
        for (size_t i = 0; i < n_held; i++)
                close(fds[i]);
        fprintf(out, "done\n");
        return 0;
}

/* What the flood may add to the node manager's memory: a few MiB (8 MiB under the sanitizers, whose
 * quarantine keeps freed memory), where reading what strangers send would be hundreds. */
#define RSS_GROWTH_MAX_KIB (8 * 1024)

static long nodemgr_rss_kib(void) {
        return proc_status_long(h->nodemgr_pid, "VmRSS");
}

static unsigned nodemgr_fds(void) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/fd", (int) h->nodemgr_pid);
        unsigned n = 0;
        DIR *d = opendir(path);
        cr_assert_not_null(d);
        struct dirent *de;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* An outsider sends ATTACH-shaped garbage before HELLO after a restart: each connection is answered
 * with a Protocol error and closed within the pre-HELLO limit (4 KiB, a 4 GiB length at once), the
 * node manager's memory and fds stay flat, and root's actor answers at once. */
Test(restart_attacks, garbage_attach_before_hello_is_closed_within_4_kib) {
        start();
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        harness_restart_nodemgr(h, SIGKILL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 2);

        long rss = nodemgr_rss_kib();
        unsigned fds = nodemgr_fds();
        FloodPlan plan = { .actor = a.id };
        Child *ch = child_start(NOBODY, NOBODY, flood_attach_garbage, &plan);
        static const char *const kinds[] = { "big", "wrong-types", "junk-list", "huge" };
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                const char *line = child_line(ch, 30000);
                cr_assert_not_null(line);
                cr_assert_str_eq(line, harness_printf(h, "%s 40/40", kinds[i]), "%s\n%s", line,
                                 harness_nodemgr_log(h));
        }
        cr_assert_str_eq(child_line(ch, 30000), "held 200/200");
        long held_rss = nodemgr_rss_kib();
        int64_t t0 = harness_now_ms();
        cr_assert_eq(call_int(c, a, "increment", NULL), 3);
        int64_t took = harness_now_ms() - t0;
        child_go(ch);
        cr_assert_str_eq(child_line(ch, HARNESS_TIMEOUT_MS), "done");
        cr_assert_eq(child_finish(ch), 0);

        cr_log_info(
                "node manager RSS %ld KiB before, %ld KiB with 200 connections holding 4000 bytes each; fds %u",
                rss, held_rss, fds);
        /* 200 × 4 KiB of input buffers is 800 KiB. */
        cr_assert_lt(held_rss, rss + RSS_GROWTH_MAX_KIB, "the node manager grew from %ld to %ld KiB", rss, held_rss);
        cr_assert_lt(took, 1000, "root's call took %lld ms during the flood", (long long) took);
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        while (nodemgr_fds() > fds && harness_now_ms() < deadline)
                sleep_ms(20);
        cr_assert_leq(nodemgr_fds(), fds, "the node manager kept fds of closed connections");
        cr_assert_lt(nodemgr_rss_kib(), rss + RSS_GROWTH_MAX_KIB, "the node manager grew from %ld to %ld KiB", rss,
                     nodemgr_rss_kib());
        cr_assert_eq(call_int(c, a, "increment", NULL), 4);
}

/* --- the journal -------------------------------------------------------------------------------------- */

static void assert_root_only(const char *path) {
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "%s: %m", path);
        cr_assert_eq(st.st_uid, 0, "%s is owned by %u", path, (unsigned) st.st_uid);
        cr_assert_eq(st.st_mode & 0077, 0, "%s has mode %04o: others may read or write it", path,
                     (unsigned) (st.st_mode & 07777));
}

/* As an unprivileged user: "open-state open-lock create unlink" errnos (0 when it worked). */
static int touch_the_journal(FILE *out, int in, void *userdata) {
        const char *dir = userdata;
        char path[PATH_MAX];
        int e[4];
        snprintf(path, sizeof(path), "%s/state", dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        e[0] = fd < 0 ? errno : 0;
        snprintf(path, sizeof(path), "%s/state.lock", dir);
        int fd2 = open(path, O_RDONLY | O_CLOEXEC);
        e[1] = fd2 < 0 ? errno : 0;
        snprintf(path, sizeof(path), "%s/state.new", dir);
        int fd3 = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e[2] = fd3 < 0 ? errno : 0;
        snprintf(path, sizeof(path), "%s/state", dir);
        e[3] = unlink(path) < 0 ? errno : 0;
        fprintf(out, "%d %d %d %d\n", e[0], e[1], e[2], e[3]);
        return 0;
}

static void assert_journal_private(void) {
        struct stat st;
        cr_assert_eq(stat(h->runtime_dir, &st), 0);
        cr_assert_eq(st.st_uid, 0);
        cr_assert_eq(st.st_mode & 0022, 0,
                     "the runtime directory has mode %04o: others may make files in it",
                     (unsigned) (st.st_mode & 07777));
        assert_root_only(harness_printf(h, "%s/state", h->runtime_dir));
        assert_root_only(harness_printf(h, "%s/state.lock", h->runtime_dir));
        cr_assert_neq(access(harness_printf(h, "%s/state.new", h->runtime_dir), F_OK), 0,
                      "state.new was left");
        /* The lineage file holds every logged call's arguments. */
        glob_t g = {};
        cr_assert_eq(glob(harness_printf(h, "%s/lineage.*", h->runtime_dir), 0, NULL, &g), 0, "no lineage file");
        for (size_t i = 0; i < g.gl_pathc; i++)
                assert_root_only(harness_printf(h, "%s", g.gl_pathv[i]));
        globfree(&g);
        const char *out = run_as(NOBODY, NOBODY, touch_the_journal, h->runtime_dir);
        cr_assert_str_eq(out, harness_printf(h, "%d %d %d %d\n", EACCES, EACCES, EACCES, EACCES),
                         "an unprivileged user could touch the journal (errnos: %s)", out);
}

/* The journal holds every value: root's alone, at start, after a compaction and after a restart. */
Test(restart_attacks, the_journal_and_its_lock_are_roots_alone) {
        start();
        kactor_client *c = harness_client(h);
        kactor_value *v = kactor_value_new_string("a secret");
        kactor_ref secret, r;
        cr_assert_eq(kactor_put(c, v, &secret), 0);
        kactor_value_free(v);
        v = harness_get(c, secret);
        kactor_value_free(v);
        assert_journal_private();

        /* Values worth 2 × the last snapshot + 16 MiB make the journal compact itself (a new file). */
        const char *state = harness_printf(h, "%s/state", h->runtime_dir);
        struct stat before, after;
        cr_assert_eq(stat(state, &before), 0);
        _cleanup_free_ char *big = malloc(6 * MIB + 1);
        cr_assert_not_null(big);
        memset(big, 'x', 6 * MIB);
        big[6 * MIB] = 0;
        for (unsigned i = 0; i < 8; i++) {
                v = kactor_value_new_string(big);
                cr_assert_eq(kactor_put(c, v, &r), 0);
                kactor_value_free(v);
                v = harness_get(c, r); /* answered after the journal has it */
                kactor_value_free(v);
                cr_assert_eq(kactor_ref_release(c, &r, 1), 0);
                cr_assert_eq(stat(state, &after), 0);
                if (after.st_ino != before.st_ino)
                        break;
        }
        cr_assert_neq(after.st_ino, before.st_ino, "the journal was not compacted (%lld bytes)",
                      (long long) after.st_size);
        assert_journal_private();

        harness_restart_nodemgr(h, SIGTERM);
        assert_journal_private();
        v = harness_get(c, secret);
        harness_assert_value(v, "\"a secret\"");
        kactor_value_free(v);
}

/* --- two restarts in a row ---------------------------------------------------------------------------- */

static void call_add(kactor_client *c, kactor_actor a, int i, kactor_ref *ret) {
        kactor_value *args = kactor_value_new_list();
        kactor_value_list_append(args, kactor_value_new_int(1));
        kactor_value_list_append(args, kactor_value_new_int(i));
        cr_assert_eq(kactor_call(c, a, "add", args, ret), 0, "%s", kactor_client_error_message(c));
        kactor_value_free(args);
}

/* kill -9, and SIGTERM of the next node manager right after it is READY, while the client re-sends
 * its calls to it: every call runs once, in order. */
Test(restart_attacks, two_restarts_in_a_row_with_calls_in_flight_run_each_call_once) {
        h = harness_start(&(HarnessOptions){ .extra_env = REATTACH_ENV });
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "lineagemod", "Journal", NULL, NULL);
        enum { N = 300 };
        kactor_ref refs[N];
        for (int i = 0; i < 100; i++) {
                call_add(c, a, i, &refs[i]);
                if (i == 20)
                        kactor_value_free(harness_get(c, refs[10])); /* the worker is running calls now */
        }
        cr_assert_eq(kactor_flush(c), 0);
        harness_restart_nodemgr(h, SIGKILL);
        int64_t ready = harness_now_ms();
        for (int i = 100; i < 200; i++)
                call_add(c, a, i, &refs[i]);
        cr_assert_eq(kactor_flush(c), 0, "%s", kactor_client_error_message(c)); /* reconnects, sends again */
        int64_t gap = harness_now_ms() - ready;
        harness_restart_nodemgr(h, SIGTERM);
        /* Timing is not asserted (the machine is shared); it is well under 100 ms here. */
        cr_log_info("the second restart came %lld ms after the first node manager was ready",
                    (long long) gap);
        for (int i = 200; i < N; i++)
                call_add(c, a, i, &refs[i]);
        for (int i = 0; i < N; i++) {
                kactor_value *v = harness_get(c, refs[i]);
                cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "call %d: %s\n%s", i,
                             harness_value_str(h, v), harness_nodemgr_log(h));
                cr_assert_eq(kactor_value_get_int(v), i + 1, "call %d returned %s (run twice, or lost?)", i,
                             harness_value_str(h, v));
                kactor_value_free(v);
        }
        cr_assert_eq(call_int(c, a, "count", NULL), N);
}

/* --- what a worker re-attaching sends, and when ------------------------------------------------------- */

/* A worker whose node manager went away before acknowledging its last results sends them again in
 * ATTACH, before any HELLO: a worker the node manager waits for (SO_PEERCRED) may send one of a
 * frame's size, not only the 4 KiB a stranger may send before HELLO. One call with 6 KiB of
 * arguments is enough to need it. */
Test(restart_attacks, a_worker_with_more_than_4_kib_of_unacknowledged_results_reattaches) {
        h = harness_start(&(HarnessOptions){ .extra_env = REATTACH_ENV });
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        pid_t pid = harness_actor_pid(h, a);
        char big[6001];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        kactor_value *args = kactor_value_new_list();
        kactor_value_list_append(args, kactor_value_new_int(300));
        kactor_value_list_append(args, kactor_value_new_string(big));
        kactor_ref r;
        cr_assert_eq(kactor_call(c, a, "sleep_then", args, &r), 0);
        kactor_value_free(args);
        cr_assert_eq(kactor_flush(c), 0);

        /* The result is sent while the node manager cannot read it, and is never acknowledged. */
        wait_sleeping(pid, true);
        stop_process(h->nodemgr_pid);
        wait_sleeping(pid, false);
        sleep_ms(50);
        untrack_stopped(h->nodemgr_pid); /* killed now */
        harness_restart_nodemgr(h, SIGKILL);

        kactor_value *v = harness_get(c, r);
        cr_expect(strstr(nodemgr_log_all(), "refused to take this actor back") == NULL,
                  "the worker's ATTACH (over 4 KiB with its unacknowledged result) was refused");
        cr_assert_eq(
                kactor_value_type(v), KACTOR_TYPE_STRING,
                "a call that ran before the restart failed after it: %s (the worker was refused)\n%s",
                harness_value_str(h, v), harness_nodemgr_log(h));
        cr_assert_str_eq(kactor_value_get_string(v, NULL), big);
        kactor_value_free(v);
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "alive", HARNESS_TIMEOUT_MS));
        cr_assert_eq(harness_actor_pid(h, a), pid,
                     "the actor lost its worker %d at the restart (its ATTACH was over 4 KiB)\n%s",
                     (int) pid, harness_nodemgr_log(h));
}

/* An actor busy in a call longer than WORKER_ATTACH_TIMEOUT_USEC (10 s) when the node manager
 * restarts keeps its worker: the runtime re-attaches once its call returns, and the new node manager
 * waits for it (it only says so after 10 s), its calls queued meanwhile. */
Test(restart_attacks, an_actor_busy_in_a_long_call_keeps_its_worker_across_a_restart) {
        h = harness_start(&(HarnessOptions){ .extra_env = REATTACH_ENV });
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "testmod", "Sleeper", NULL, NULL);
        pid_t pid = harness_actor_pid(h, a);
        unsigned ms = WORKER_ATTACH_TIMEOUT_MS + 1500;
        kactor_value *args = kactor_value_new_list();
        kactor_value_list_append(args, kactor_value_new_int(ms));
        kactor_ref r;
        cr_assert_eq(kactor_call(c, a, "sleep", args, &r), 0);
        kactor_value_free(args);
        cr_assert_eq(kactor_flush(c), 0);
        wait_sleeping(pid, true);
        harness_restart_nodemgr(h, SIGTERM);

        kactor_value *v = NULL;
        cr_assert_eq(kactor_get1(c, r, (uint64_t) (ms + HARNESS_TIMEOUT_MS) * 1000u, &v), 0, "%s",
                     kactor_client_error_message(c));
        cr_expect_eq(
                kactor_value_type(v), KACTOR_TYPE_LIST,
                "a call of %u ms across a restart failed: %s (the worker was killed for not re-attaching "
                "within %u ms)",
                ms, harness_value_str(h, v), WORKER_ATTACH_TIMEOUT_MS);
        kactor_value_free(v);
        cr_assert(harness_pid_alive(pid), "the worker %d was killed while it ran a call\n%s", (int) pid,
                  harness_nodemgr_log(h));
}

/* --- a user's actor forging results on ATTACH --------------------------------------------------------- */

/*
 * A module of the member's own (any user may run actors from modules they own): its method "arm"
 * starts a thread and blocks the worker's main thread until that thread has sent ATTACH for the
 * actor to the next node manager, from the worker's own process (the PID the journal names), ahead
 * of the runtime. Its redelivery list claims results for `count` ids of another connection (root's
 * client): [seq, {node, victim | i}, "m", args, RESULT "forged"].
 *
 * Built at test time with the numbers of lib/proto.h, lib/codec.h and nodemgr/core/manager.h
 * passed as -D.
 */
static const char hostile_module[] =
        "#include <pthread.h>\n"
        "#include <stdio.h>\n"
        "#include <string.h>\n"
        "#include <sys/socket.h>\n"
        "#include <sys/stat.h>\n"
        "#include <sys/un.h>\n"
        "#include <time.h>\n"
        "#include <unistd.h>\n"
        "#include <kactor/module.h>\n"
        "static struct sockaddr_un sa;\n"
        "static struct stat old;\n"
        "static kactor_id self;\n"
        "static uint64_t hi, own_prefix, victim, count;\n"
        "static volatile int code = -1;\n"
        "static uint8_t *be(uint8_t *p, uint64_t v) {\n"
        "        for (int i = 0; i < 8; i++) *p++ = (uint8_t) (v >> (56 - 8 * i));\n"
        "        return p;\n"
        "}\n"
        "static uint8_t *u64(uint8_t *p, uint64_t v) { *p++ = 0xcf; return be(p, v); }\n"
        "static uint8_t *id(uint8_t *p, int t, uint64_t h, uint64_t l) {\n"
        "        *p++ = 0xd8; *p++ = (uint8_t) t;\n"
        "        return be(be(p, h), l);\n"
        "}\n"
        "static size_t attach_frame(uint8_t *buf) {\n"
        "        uint8_t *p = buf + 4;\n"
        "        *p++ = 0x98; *p++ = T_ATTACH; *p++ = 0; *p++ = T_VERSION;\n"
        "        p = id(p, EXT_ACTOR, self.hi, self.lo);\n"
        "        p = u64(p, own_prefix); p = u64(p, 1u << 20); *p++ = F_READY;\n"
        "        *p++ = 0xdc; *p++ = (uint8_t) (count >> 8); *p++ = (uint8_t) count;\n"
        "        for (uint64_t i = 1; i <= count; i++) {\n"
        "                uint8_t r[64], *q = r;\n"
        "                *q++ = 0x95; *q++ = T_RESULT; q = u64(q, (1u << 20) + i);\n"
        "                *q++ = 0; *q++ = 0xc0; *q++ = F_READ_ONLY;\n"
        "                *q++ = 0xa6; memcpy(q, \"forged\", 6); q += 6;\n"
        "                *p++ = 0x95; p = u64(p, (1u << 20) + i); p = id(p, EXT_OBJECT, hi, victim | i);\n"
        "                *p++ = 0xa1; *p++ = 'm'; *p++ = 0xc4; *p++ = 1; *p++ = 0x90;\n"
        "                *p++ = 0xc4; *p++ = (uint8_t) (q - r); memcpy(p, r, (size_t) (q - r)); p += q - r;\n"
        "        }\n"
        "        uint32_t n = (uint32_t) (p - buf - 4);\n"
        "        for (int i = 0; i < 4; i++) buf[i] = (uint8_t) (n >> (8 * i));\n"
        "        return (size_t) (p - buf);\n"
        "}\n"
        "static void *hijack(void *arg) {\n"
        "        static uint8_t buf[8192];\n"
        "        for (int i = 0; i < 5000; i++) {\n"
        "                struct stat st;\n"
        "                /* The next node manager's socket: another file (inode, or time of its bind). */\n"
        "                if (stat(sa.sun_path, &st) == 0 &&\n"
        "                    (st.st_ino != old.st_ino || st.st_ctim.tv_nsec != old.st_ctim.tv_nsec ||\n"
        "                     st.st_ctim.tv_sec != old.st_ctim.tv_sec)) {\n"
        "                        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);\n"
        "                        if (fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) {\n"
        "                                size_t n = attach_frame(buf);\n"
        "                                uint8_t r[64];\n"
        "                                if (write(fd, buf, n) == (ssize_t) n && read(fd, r, sizeof(r)) >= 8) {\n"
        "                                        code = r[7]; /* [33, 0, code, ...] */\n"
        "                                        return NULL; /* the connection stays: the worker's now */\n"
        "                                }\n"
        "                        }\n"
        "                        if (fd >= 0) close(fd);\n"
        "                }\n"
        "                struct timespec ts = { 0, 2000000 };\n"
        "                nanosleep(&ts, NULL);\n"
        "        }\n"
        "        code = 254;\n"
        "        return NULL;\n"
        "}\n"
        "static int evil_init(kactor_ctx *ctx, const kactor_value *args, void **ret) {\n"
        "        *ret = NULL;\n"
        "        return 0;\n"
        "}\n"
        "/* arm(socket path, victim prefix, count) */\n"
        "static int evil_arm(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {\n"
        "        const char *path; int64_t v, n; kactor_ref r; pthread_t t;\n"
        "        if (kactor_arg_string(ctx, args, 0, &path) < 0 || kactor_arg_int(ctx, args, 1, &v) < 0 ||\n"
        "            kactor_arg_int(ctx, args, 2, &n) < 0) return -22;\n"
        "        kactor_value *x = kactor_value_new_int(0);\n"
        "        if (kactor_put(kactor_ctx_client(ctx), x, &r) < 0) return kactor_fail(ctx, \"put\");\n"
        "        kactor_value_free(x);\n"
        "        hi = r.id.hi; own_prefix = r.id.lo & ~((UINT64_C(1) << SEQ_BITS) - 1);\n"
        "        self = kactor_ctx_self(ctx).id; victim = (uint64_t) v; count = (uint64_t) n;\n"
        "        sa.sun_family = AF_UNIX; snprintf(sa.sun_path, sizeof(sa.sun_path), \"%s\", path);\n"
        "        if (stat(path, &old) < 0) return kactor_fail(ctx, \"stat\");\n"
        "        if (pthread_create(&t, NULL, hijack, NULL) != 0) return kactor_fail(ctx, \"thread\");\n"
        "        pthread_join(t, NULL);\n"
        "        *ret = kactor_value_new_int(code);\n"
        "        return 0;\n"
        "}\n"
        "static const kactor_method evil_methods[] = { { .name = \"arm\", .fn = evil_arm }, {} };\n"
        "static const kactor_class evil_class = {\n"
        "        .name = \"Evil\", .init = evil_init, .methods = evil_methods,\n"
        "};\n"
        "KACTOR_MODULE(.name = \"evil\", .classes = (const kactor_class *const[]) { &evil_class, NULL });\n";

/* Compiles the hostile module into a root-owned directory others can read; harness-owned path. */
static const char *build_hostile_module(void) {
        _cleanup_free_ char *src_dir = strdup(h->build);
        cr_assert_not_null(src_dir);
        char *slash = strrchr(src_dir, '/');
        cr_assert_not_null(slash);
        *slash = 0; /* the build directory sits in the source tree */
        const char *include = harness_printf(h, "%s/include/kactor/module.h", src_dir);
        if (access(include, R_OK) < 0 || system("command -v cc >/dev/null 2>&1") != 0)
                kactor_skip_test(
                        "needs a C compiler and the source tree's include/ beside the build directory");
        cr_assert_not_null(mkdtemp(moddir));
        moddir_made = true;
        cr_assert_eq(chmod(moddir, 0755), 0);
        const char *src = harness_printf(h, "%s/evil.c", moddir),
                   *so = harness_printf(h, "%s/evil.so", moddir);
        FILE *f = fopen(src, "we");
        cr_assert_not_null(f);
        cr_assert_eq(fputs(hostile_module, f) >= 0, true);
        cr_assert_eq(fclose(f), 0);
        const char *cmd = harness_printf(
                h,
                "cc -shared -fPIC -O1 -pthread -I'%s/include' -DT_ATTACH=%u -DT_RESULT=%u -DT_VERSION=%u "
                "-DEXT_OBJECT=%d -DEXT_ACTOR=%d -DSEQ_BITS=%d -DF_READY=%d -DF_READ_ONLY=%d -o '%s' '%s' "
                "-L'%s' -lkactor -Wl,-rpath,'%s' 2>&1",
                src_dir, (unsigned) MSG_ATTACH, (unsigned) MSG_RESULT, (unsigned) PROTO_VERSION,
                CODEC_EXT_OBJECT, CODEC_EXT_ACTOR, ID_SEQ_BITS, ATTACH_READY, RESULT_READ_ONLY, so, src,
                h->build, h->build);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        cr_assert_eq(chmod(so, 0755), 0);
        return so;
}

typedef struct HijackPlan {
        const char *module;
        uint64_t victim_prefix;
} HijackPlan;

/* The member: a detached actor of the hostile module, armed; waits for "go". */
static int member_arms_hostile_actor(FILE *out, int in, void *userdata) {
        const HijackPlan *p = userdata;
        kactor_client *c = child_connect();
        if (!c)
                return 10;
        struct kactor_actor_opts o = { .sz = sizeof(o), .detached = true };
        kactor_actor a;
        kactor_ref r;
        if (kactor_create_actor(c, p->module, "Evil", NULL, &o, &a) < 0) {
                fprintf(out, "FAILED %s\n", kactor_client_error_message(c));
                return 11;
        }
        kactor_value *args = kactor_value_new_list();
        kactor_value_list_append(args, kactor_value_new_string(h->socket_path));
        kactor_value_list_append(args, kactor_value_new_int((int64_t) p->victim_prefix));
        kactor_value_list_append(args, kactor_value_new_int(40));
        if (kactor_call(c, a, "arm", args, &r) < 0 || kactor_flush(c) < 0)
                return 12;
        kactor_value_free(args);
        fprintf(out, "%016llx %016llx\n", (unsigned long long) a.id.hi, (unsigned long long) a.id.lo);
        (void) child_wait_go(in);
        return 0;
}

/* A worker's ATTACH names the result ids of the calls it sends again: the node manager never makes
 * an object on its word. A result is taken when its call is pending in that actor's queue, or held
 * until its caller sends that call again to that actor (and dropped after 60 s). A member's own
 * actor — its code runs in the worker — cannot plant values under the ids root's client will use. */
Test(restart_attacks, a_users_actor_cannot_plant_results_in_roots_session_when_it_reattaches) {
        make_users();
        start();
        const char *module = build_hostile_module();
        kactor_client *c = harness_client(h);
        kactor_actor counter = harness_create(h, c, "counter", "Counter", NULL, NULL);
        for (int i = 1; i <= 3; i++)
                cr_assert_eq(call_int(c, counter, "increment", NULL), i);
        kactor_value *v = kactor_value_new_int(0);
        kactor_ref probe;
        cr_assert_eq(kactor_put(c, v, &probe), 0);
        kactor_value_free(v);

        HijackPlan plan = { .module = module, .victim_prefix = prefix_of(probe.id) };
        Child *mc = child_start(member.uid, member.gid, member_arms_hostile_actor, &plan);
        const char *line = child_line(mc, HARNESS_TIMEOUT_MS);
        unsigned long long hi, lo;
        cr_assert(line && sscanf(line, "%llx %llx", &hi, &lo) == 2, "%s\n%s", line ?: "(none)",
                  harness_nodemgr_log(h));
        kactor_actor evil = { .id = { hi, lo } };
        pid_t evil_pid = harness_actor_pid(h, evil);
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        while (proc_status_long(evil_pid, "Threads") < 2) {
                cr_assert_lt(harness_now_ms(), deadline, "the hostile actor did not arm\n%s",
                             harness_nodemgr_log(h));
                sleep_ms(10);
        }

        harness_restart_nodemgr(h, SIGKILL);
        /* The hostile thread re-attached the worker (or was refused: then there is nothing to see). */
        cr_assert(
                wait_log(harness_printf(h, "The worker %d of actor", (int) evil_pid), 1, HARNESS_TIMEOUT_MS),
                "the hostile worker did not re-attach\n%s", harness_nodemgr_log(h));

        /* Root's client resumes its session and calls its own actor. */
        for (int i = 4; i <= 6; i++) {
                v = harness_call(c, counter, "increment", NULL);
                cr_assert(
                        kactor_value_type(v) == KACTOR_TYPE_INT && kactor_value_get_int(v) == i,
                        "root's call to its own actor returned %s, a value planted by another user's actor "
                        "in its ATTACH (expected %d)",
                        harness_value_str(h, v), i);
                kactor_value_free(v);
        }
        child_go(mc);
        cr_assert_eq(child_finish(mc), 0);
}

/* --- a dead worker's PID, reused ---------------------------------------------------------------------- */

/* Forks a child (uid nobody, pausing) that gets PID `want`, through ns_last_pid; -1 if it could not.
 * Another process may fork in between, and a PID stays taken while a process group or session still
 * has it as its id (the dead worker's, for a moment): tries for up to 2 s. */
static pid_t fork_with_pid(pid_t want) {
        for (unsigned i = 0; i < 400; i++) {
                if (i > 0)
                        sleep_ms(5);
                int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
                if (fd < 0)
                        return -1;
                char s[16];
                int n = snprintf(s, sizeof(s), "%d", (int) want - 1);
                bool ok = write(fd, s, (size_t) n) == n;
                close(fd);
                if (!ok)
                        return -1;
                pid_t p = fork();
                cr_assert_geq(p, 0);
                if (p == 0) {
                        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                        if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
                            setresuid(NOBODY, NOBODY, NOBODY) < 0)
                                _exit(2);
                        for (;;)
                                pause();
                }
                if (p == want) {
                        track_child(p);
                        return p;
                }
                (void) kill(p, SIGKILL);
                (void) waitpid(p, NULL, 0);
        }
        return -1;
}

/* The journal names a worker by its PID and its start time: a worker that died while no node manager
 * ran, whose PID another process took meanwhile, is not adopted (its actor says the worker exited
 * while the node manager was down), and that process is never signalled. */
Test(restart_attacks, a_reused_pid_of_a_dead_worker_is_neither_adopted_nor_killed) {
        h = harness_start(&(HarnessOptions){ .extra_env = REATTACH_ENV });
        kactor_client *c = harness_client(h);
        kactor_actor a = harness_create(h, c, "counter", "Counter", NULL, NULL);
        cr_assert_eq(call_int(c, a, "increment", NULL), 1);
        pid_t pid = harness_actor_pid(h, a);
        const char *path = harness_actor_path(h, a);

        cr_assert_eq(kill(h->nodemgr_pid, SIGKILL), 0);
        cr_assert(harness_wait_pid_exit(h->nodemgr_pid, HARNESS_TIMEOUT_MS));
        /* Ours now that its node manager is gone (the harness is a subreaper): reaped, its PID is free. */
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(waitpid(pid, NULL, 0), pid, "the worker %d is not the test's to reap: %m", (int) pid);
        pid_t innocent = fork_with_pid(pid);
        if (innocent < 0)
                kactor_skip_test("could not get a process with the dead worker's PID (ns_last_pid)");
        harness_restart_nodemgr(h, 0);

        cr_expect(
                harness_wait_actor_state(h, path, "dead", 3000),
                "the actor is %s after its worker died while no node manager ran: the new one adopted "
                "PID %d, now another process (uid nobody)\n%s",
                harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"), (int) pid,
                harness_nodemgr_log(h));
        /* Past the time an adopted worker has to re-attach. */
        sleep_ms(WORKER_ATTACH_TIMEOUT_MS + 1000);
        cr_assert(harness_pid_alive(innocent),
                  "the node manager killed process %d (uid nobody, not a worker) because a dead worker "
                  "once had its PID\n%s",
                  (int) innocent, harness_nodemgr_log(h));
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Direct calls (docs/protocol.md, "Direct calls"): a libkactor client calls an actor of its own node
 * straight at the actor's worker, over a socket the node manager handed out, and the node manager
 * stays the authority. As a user sees it: the same values in the same order as on the relayed path,
 * whoever else calls the actor and by whichever path; results that are objects like any other's; a
 * worker killed mid-stream applies every call once (or, without restarts, fails the rest with
 * ActorDied); a caller that vanishes mid-stream costs nothing; and a direct socket is no way in for
 * anyone the node manager would refuse, nor a way to disturb anyone else.
 *
 * The hostile tests speak the raw protocol themselves, with lib/proto.h's framing: a 32-bit
 * little-endian length, then a MessagePack header [type, id, fields...] and an optional value. A
 * direct socket is had only as a client has it: OPEN_DIRECT on a connection to the node manager,
 * the descriptor coming with the first byte of the REPLY.
 */

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../skip.h"
#include "bus-value.h"
#include "codec.h"
#include "harness.h"
#include "macro.h"
#include "proto.h"
#include "users.h"

#define OBJECT_IFACE "io.kactor.Object1"

static Harness *h;

/* What a test starts besides the harness's own: stopped at teardown, before the harness. */
static kactor_client *clients[16];
static size_t n_clients;
static pid_t children[8];
static size_t n_children;
static TestGroup group;
static TestUser member, sharer;

static void teardown(void) {
        for (size_t i = 0; i < n_children; i++) {
                (void) kill(children[i], SIGKILL);
                (void) waitpid(children[i], NULL, 0);
        }
        n_children = 0;
        for (size_t i = 0; i < n_clients; i++)
                kactor_client_free(clients[i]);
        n_clients = 0;
        /* Before harness_stop(), which exits the test process when the node manager misbehaved. */
        users_remove(&member);
        users_remove(&sharer);
        users_group_remove(&group);
        h = harness_stop(h);
}

TestSuite(direct, .fini = teardown, .timeout = 60);

/* --- clients, calls, values ------------------------------------------------------------------- */

/* A client of the harness's node manager; direct_calls as in struct kactor_connect_opts. */
static kactor_client *client_new(int direct_calls) {
        struct kactor_connect_opts o = {
                .sz = sizeof(o),
                .socket_path = h->socket_path,
                .direct_calls = direct_calls,
        };
        kactor_client *c = NULL;
        int r;

        cr_assert_lt(n_clients, ELEMENTSOF(clients));
        r = kactor_connect(&o, &c);
        cr_assert_eq(r, 0, "kactor_connect(%s): %s", h->socket_path, strerror(-r));
        clients[n_clients++] = c;
        return c;
}

/* A list of the given values (taking them). */
static kactor_value *list_of(size_t n, ...) {
        kactor_value *l = kactor_value_new_list();
        va_list ap;

        cr_assert_not_null(l);
        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(kactor_value_list_append(l, va_arg(ap, kactor_value *)), 0);
        va_end(ap);
        return l;
}

/* Calls `method` with `args` (taken; NULL for none): the result's reference. */
static kactor_ref call_args(kactor_client *c, kactor_actor a, const char *method, kactor_value *args) {
        kactor_ref ref = {};
        int r;

        r = kactor_call(c, a, method, args, &ref);
        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_call(%s): %s: %s\n%s", method, strerror(-r),
                     kactor_client_error_message(c), harness_nodemgr_log(h));
        return ref;
}

static kactor_ref call_ref(kactor_client *c, kactor_actor a, const char *method) {
        return call_args(c, a, method, NULL);
}

/* Gets n results, waiting a bounded time: the caller frees them with kactor_values_free(). */
static kactor_value **get_all(kactor_client *c, const kactor_ref *refs, size_t n) {
        kactor_value **values = NULL;
        int r;

        r = kactor_get(c, refs, n, 3 * HARNESS_TIMEOUT_USEC, &values);
        cr_assert_eq(r, 0, "kactor_get of %zu results: %s: %s\n%s", n, strerror(-r),
                     kactor_client_error_message(c), harness_nodemgr_log(h));
        return values;
}

/* v is an INT: its value. */
static int64_t int_of(const kactor_value *v, const char *what, size_t i) {
        int64_t x = 0;

        cr_assert_eq(kactor_value_as_int(v, &x), 0, "%s %zu is %s, not a number\n%s", what, i,
                     harness_value_str(h, v), harness_nodemgr_log(h));
        return x;
}

/* Calls and gets one number. */
static int64_t call_int(kactor_client *c, kactor_actor a, const char *method) {
        kactor_value *v = harness_call(c, a, method, NULL);
        int64_t x = int_of(v, method, 0);

        kactor_value_free(v);
        return x;
}

/* Creates an actor and waits until it is alive: only then does the node manager hand out direct
 * sockets to it (before, a client calls it the relayed way, and asks again a little later). */
static kactor_actor create_alive(kactor_client *c, const char *module, const char *class_name,
                                 const struct kactor_actor_opts *opts) {
        kactor_actor a = harness_create(h, c, module, class_name, NULL, opts);

        (void) harness_actor_pid(h, a);
        return a;
}

/* --- properties ------------------------------------------------------------------------------- */

static uint64_t actor_uint(kactor_actor a, const char *name) {
        return harness_property_uint(h, harness_actor_path(h, a), HARNESS_IFACE_ACTOR, name);
}

/* Waits until a property has the value `want`; returns the last value read. The counters read here
 * (CallsSubmitted, CallsCompleted, CallsDirect, Objects) send no PropertiesChanged, and a direct
 * call's record and result reach the node manager after its caller had the value: so this polls,
 * every 10 ms, for at most timeout_ms. */
static uint64_t wait_uint(const char *path, const char *iface, const char *name, uint64_t want,
                          unsigned timeout_ms) {
        int64_t deadline = harness_now_ms() + timeout_ms;

        for (;;) {
                uint64_t v = harness_property_uint(h, path, iface, name);

                if (v == want || harness_now_ms() >= deadline)
                        return v;
                (void) usleep(10 * 1000);
        }
}

#define assert_actor_uint(a, name, want)                                                                    \
        do {                                                                                                \
                uint64_t _want = (want);                                                                    \
                uint64_t _v = wait_uint(harness_actor_path(h, (a)), HARNESS_IFACE_ACTOR, (name), _want,     \
                                        HARNESS_TIMEOUT_MS);                                                \
                cr_assert_eq(_v, _want, "%s is %llu, expected %llu\n%s", (name), (unsigned long long) _v,   \
                             (unsigned long long) _want, harness_nodemgr_log(h));                           \
        } while (0)

/* Waits until CallsSubmitted == CallsCompleted, stable over two reads: their value. */
static uint64_t wait_calls_settled(kactor_actor a) {
        const char *path = harness_actor_path(h, a);
        int64_t deadline = harness_now_ms() + 2 * HARNESS_TIMEOUT_MS;
        uint64_t submitted = 0, completed = 0, last = UINT64_MAX;

        for (;;) {
                submitted = harness_property_uint(h, path, HARNESS_IFACE_ACTOR, "CallsSubmitted");
                completed = harness_property_uint(h, path, HARNESS_IFACE_ACTOR, "CallsCompleted");
                if (submitted == completed && completed == last)
                        return completed;
                last = submitted == completed ? completed : UINT64_MAX;
                cr_assert_lt(harness_now_ms(), deadline,
                             "CallsSubmitted %llu and CallsCompleted %llu did not meet within %u ms\n%s",
                             (unsigned long long) submitted, (unsigned long long) completed,
                             2 * HARNESS_TIMEOUT_MS, harness_nodemgr_log(h));
                (void) usleep(20 * 1000);
        }
}

/* Descriptors a process holds. */
static unsigned process_fds(pid_t pid) {
        _cleanup_free_ char *path = NULL;
        struct dirent *de;
        unsigned n = 0;
        DIR *d;

        cr_assert_geq(asprintf(&path, "/proc/%d/fd", (int) pid), 0);
        d = opendir(path);
        cr_assert_not_null(d, "%s: %m", path);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* Waits (bounded) until a process holds at most `want` descriptors: how many it holds. Its
 * descriptors close as it handles the ends of streams, which it tells nobody about. */
static unsigned wait_fds_at_most(pid_t pid, unsigned want) {
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        unsigned n;

        while ((n = process_fds(pid)) > want && harness_now_ms() < deadline)
                (void) usleep(20 * 1000);
        return n;
}

/* --- children: a client in another process ---------------------------------------------------- */

/* Runs in a forked child: what it writes to `report` is what the parent asserts on, its return value
 * the child's exit status. It must not use the parent's clients, bus connection or Criterion. */
typedef int (*ChildFn)(int report, void *userdata);

static pid_t child_start(ChildFn fn, void *userdata, int *ret_report) {
        int p[2];
        pid_t pid;

        cr_assert_lt(n_children, ELEMENTSOF(children));
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0, "pipe2: %m");
        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0, "fork: %m");
        if (pid == 0) {
                (void) close(p[0]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                _exit(fn(p[1], userdata));
        }
        (void) close(p[1]);
        children[n_children++] = pid;
        *ret_report = p[0];
        return pid;
}

static void child_forget(pid_t pid) {
        for (size_t i = 0; i < n_children; i++)
                if (children[i] == pid) {
                        children[i] = children[--n_children];
                        return;
                }
}

/* Reads a line of the child's report (bounded): false at its end. */
static bool child_read_line(int report, char *buf, size_t size) {
        int64_t deadline = harness_now_ms() + 2 * HARNESS_TIMEOUT_MS;
        size_t len = 0;

        while (len + 1 < size) {
                struct pollfd p = { .fd = report, .events = POLLIN };
                int64_t left = deadline - harness_now_ms();
                ssize_t k;

                cr_assert(left > 0 && poll(&p, 1, (int) left) > 0, "the child said nothing for %u ms",
                          2 * HARNESS_TIMEOUT_MS);
                k = read(report, buf + len, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                cr_assert_geq(k, 0, "read: %m");
                if (k == 0)
                        break;
                if (buf[len] == '\n')
                        break;
                len++;
        }
        buf[len] = 0;
        return len > 0;
}

/* Reads the rest of the child's report and reaps it (both bounded): the report, harness-owned;
 * asserts that the child exited 0. */
static const char *child_finish(pid_t pid, int report) {
        int64_t deadline = harness_now_ms() + 3 * HARNESS_TIMEOUT_MS;
        char *out = NULL, buf[4096];
        size_t size = 0;
        FILE *mem = open_memstream(&out, &size);
        int status = 0;

        cr_assert_not_null(mem);
        for (;;) {
                struct pollfd p = { .fd = report, .events = POLLIN };
                int64_t left = deadline - harness_now_ms();
                ssize_t k;

                if (left <= 0 || poll(&p, 1, (int) left) <= 0)
                        break;
                k = read(report, buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                fwrite(buf, 1, (size_t) k, mem);
        }
        cr_assert_eq(fclose(mem), 0);
        (void) close(report);
        harness_keep(h, out);
        if (!harness_wait_pid_exit(pid, (unsigned) MAX(deadline - harness_now_ms(), 1)))
                (void) kill(pid, SIGKILL);
        cr_assert_eq(waitpid(pid, &status, 0), pid, "waitpid: %m");
        child_forget(pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child %s %d: %s\n%s",
                  WIFEXITED(status) ? "exited with status" : "died of signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out, harness_nodemgr_log(h));
        return out;
}

static void child_kill(pid_t pid, int report) {
        (void) close(report);
        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, NULL, 0);
        child_forget(pid);
}

/* The child's side: a line for the parent. */
static void child_say(int report, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_say(int report, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vdprintf(report, fmt, ap);
        va_end(ap);
        (void) dprintf(report, "\n");
}

static int child_connect(int report, const char *socket_path, int direct_calls, kactor_client **ret) {
        struct kactor_connect_opts o = { .sz = sizeof(o),
                                         .socket_path = socket_path,
                                         .direct_calls = direct_calls };
        int r = kactor_connect(&o, ret);

        if (r < 0)
                child_say(report, "kactor_connect: %s", strerror(-r));
        return r;
}

/* --- the raw protocol ------------------------------------------------------------------------- */

/* These return negative errnos rather than assert: children use them too. */

static int raw_length(int fd, uint32_t len) {
        uint8_t hdr[4] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, (len >> 24) & 0xff };

        return harness_raw_send(fd, hdr, sizeof(hdr));
}

/* Sends what sb holds as one frame and empties it. */
static int raw_send_sbuf(int fd, msgpack_sbuffer *sb) {
        int r = raw_length(fd, (uint32_t) sb->size);

        if (r >= 0)
                r = harness_raw_send(fd, sb->data, sb->size);
        msgpack_sbuffer_clear(sb);
        return r;
}

/* Reads exactly n bytes by the deadline, keeping a descriptor that comes along (SCM_RIGHTS) in
 * *passed when it is -1 (and closing any other). 1: done; 0: the peer closed; -ETIMEDOUT. */
static int raw_read(int fd, void *buf, size_t n, int *passed, int64_t deadline) {
        char *b = buf;

        while (n > 0) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int) * 8)];
                } control;
                struct iovec iov = { .iov_base = b, .iov_len = n };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int64_t left = deadline - harness_now_ms();
                ssize_t k;

                if (left <= 0)
                        return -ETIMEDOUT;
                k = poll(&p, 1, (int) left);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ETIMEDOUT;
                k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == ECONNRESET)
                        return 0;
                if (k < 0)
                        return -errno;
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                                continue;
                        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int got;

                                memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                if (passed && *passed < 0)
                                        *passed = got;
                                else
                                        (void) close(got);
                        }
                }
                if (k == 0)
                        return 0;
                b += k;
                n -= (size_t) k;
        }
        return 1;
}

/* A frame read from a raw socket; frame_parse()d, its payload kept for it. */
typedef struct RawFrame {
        char *payload;
        Frame f;
} RawFrame;

static void raw_frame_done(RawFrame *rf) {
        frame_done(&rf->f);
        rf->payload = mfree(rf->payload);
}

/* Reads one frame: 1, 0 when the peer closed, -ETIMEDOUT, -EBADMSG (not a frame). */
static int raw_read_frame(int fd, RawFrame *ret, int *passed, int64_t deadline) {
        uint8_t hdr[4];
        uint32_t len;
        int r;

        *ret = (RawFrame){};
        frame_init(&ret->f);
        r = raw_read(fd, hdr, sizeof(hdr), passed, deadline);
        if (r <= 0)
                return r;
        len = (uint32_t) hdr[0] | (uint32_t) hdr[1] << 8 | (uint32_t) hdr[2] << 16 | (uint32_t) hdr[3] << 24;
        if (len == 0 || len > PROTO_FRAME_MAX)
                return -EBADMSG;
        ret->payload = malloc(len);
        if (!ret->payload)
                return -ENOMEM;
        r = raw_read(fd, ret->payload, len, passed, deadline);
        if (r <= 0)
                return r;
        return frame_parse(&ret->f, ret->payload, len) < 0 ? -EBADMSG : 1;
}

/* A raw client connection after HELLO and WELCOME: the ids it may make are {hi, prefix | n}. */
typedef struct RawConn {
        int fd;
        uint64_t hi, prefix;
        uint64_t next_reqid;
} RawConn;

static int raw_conn_open(const char *socket_path, RawConn *ret) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        RawFrame rf = {};
        int fd, r;

        fd = harness_raw_connect(socket_path);
        if (fd < 0)
                return fd;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, MSG_HELLO);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_uint32(&pk, PROTO_VERSION);
        msgpack_pack_int64(&pk, getpid());
        r = raw_send_sbuf(fd, &sb);
        msgpack_sbuffer_destroy(&sb);
        if (r >= 0)
                r = raw_read_frame(fd, &rf, NULL, harness_now_ms() + HARNESS_TIMEOUT_MS);
        if (r == 0)
                r = -ECONNRESET;
        if (r > 0 && rf.f.type != MSG_WELCOME)
                r = -EPROTO;
        /* [32, 0, version, node id, id high half, id prefix] */
        if (r > 0)
                r = frame_field_u64(&rf.f, 2, &ret->hi);
        if (r >= 0)
                r = frame_field_u64(&rf.f, 3, &ret->prefix);
        raw_frame_done(&rf);
        if (r < 0) {
                (void) close(fd);
                return r;
        }
        ret->fd = fd;
        ret->next_reqid = 1;
        return 0;
}

/*
 * OPEN_DIRECT for an actor: [11, reqid, actor id]. Returns the direct socket (>= 0) when the REPLY
 * says yes; else a negative errno, with *ret_code and ret_message (optional) saying what the REPLY
 * said (-EREMOTEIO: it refused). A REPLY that says no must carry no descriptor: -EPROTO if it does.
 */
static int raw_open_direct(RawConn *c, kactor_id actor, uint64_t *ret_code, char *ret_message, size_t size) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        RawFrame rf = {};
        uint64_t reqid = c->next_reqid++, code = UINT64_MAX;
        int passed = -1, r;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, MSG_OPEN_DIRECT);
        msgpack_pack_uint64(&pk, reqid);
        r = codec_pack_id(&pk, CODEC_EXT_ACTOR, actor);
        if (r >= 0)
                r = raw_send_sbuf(c->fd, &sb);
        msgpack_sbuffer_destroy(&sb);
        if (r < 0)
                return r;

        for (;;) {
                r = raw_read_frame(c->fd, &rf, &passed, harness_now_ms() + HARNESS_TIMEOUT_MS);
                if (r <= 0) {
                        raw_frame_done(&rf);
                        safe_close(passed);
                        return r == 0 ? -ECONNRESET : r;
                }
                if (rf.f.type == MSG_REPLY && rf.f.id == reqid)
                        break;
                raw_frame_done(&rf);
        }
        (void) frame_field_u64(&rf.f, 0, &code);
        if (ret_message && size > 0) {
                const char *m = "";
                size_t len = 0;

                (void) frame_field_str(&rf.f, 1, &m, &len);
                snprintf(ret_message, size, "%.*s", (int) MIN(len, size - 1), m);
        }
        raw_frame_done(&rf);
        if (ret_code)
                *ret_code = code;
        if (code != 0) {
                if (passed >= 0) {
                        (void) close(passed);
                        return -EPROTO;
                }
                return -EREMOTEIO;
        }
        return passed >= 0 ? passed : -ENOMSG;
}

/* DCALL on a direct socket: [12, object id low half, method] + args (NULL: an empty list). */
static int raw_dcall(int ds, uint64_t lo, const char *method, const kactor_value *args) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, MSG_DCALL);
        msgpack_pack_uint64(&pk, lo);
        msgpack_pack_str_with_body(&pk, method, strlen(method));
        r = args ? codec_pack_value(&pk, args) : (msgpack_pack_array(&pk, 0) < 0 ? -ENOMEM : 0);
        if (r >= 0)
                r = raw_send_sbuf(ds, &sb);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* A DRESULT: [34, object id low half, error code, message, flags] + value when the code is 0. */
typedef struct DResult {
        uint64_t lo, code, flags;
        kactor_value *value;
} DResult;

/* Reads the next DRESULT: 1, 0 when the worker closed the socket, -ETIMEDOUT, -EBADMSG (another
 * frame, or a malformed one). */
static int raw_read_dresult(int ds, DResult *ret, int64_t deadline) {
        RawFrame rf = {};
        int r;

        *ret = (DResult){};
        r = raw_read_frame(ds, &rf, NULL, deadline);
        if (r <= 0) {
                raw_frame_done(&rf);
                return r;
        }
        if (rf.f.type != MSG_DRESULT || frame_field_u64(&rf.f, 0, &ret->code) < 0 ||
            frame_field_u64(&rf.f, 2, &ret->flags) < 0)
                r = -EBADMSG;
        ret->lo = rf.f.id;
        if (r > 0 && ret->code == 0 &&
            (!rf.f.has_body || codec_value_from_object(&rf.f.body.data, &ret->value) < 0))
                r = -EBADMSG;
        raw_frame_done(&rf);
        return r;
}

/* --- the direct path is taken, and gives what the relayed one gives --------------------------- */

enum { N_STREAM = 1000 };

/* Increments a fresh Counter N_STREAM times without waiting, then gets every result: 1..N_STREAM,
 * in order. */
static void increment_stream_in_order(kactor_client *c, kactor_actor a) {
        kactor_ref *refs = calloc(N_STREAM, sizeof(kactor_ref));
        kactor_value **values;

        cr_assert_not_null(refs);
        for (size_t i = 0; i < N_STREAM; i++)
                refs[i] = call_ref(c, a, "increment");
        values = get_all(c, refs, N_STREAM);
        for (size_t i = 0; i < N_STREAM; i++)
                cr_assert_eq(int_of(values[i], "result", i), (int64_t) i + 1,
                             "result %zu is %s, expected %zu", i, harness_value_str(h, values[i]), i + 1);
        kactor_values_free(values, N_STREAM);
        cr_assert_eq(kactor_ref_release(c, refs, N_STREAM), 0);
        free(refs);
}

/* The child of direct_calls_can_be_turned_off: KACTOR_DIRECT_CALLS=0 and default options. */
typedef struct EnvOffArgs {
        const char *socket_path;
        kactor_actor counter;
} EnvOffArgs;

static int child_env_off(int report, void *userdata) {
        const EnvOffArgs *args = userdata;
        kactor_ref *refs = calloc(N_STREAM, sizeof(kactor_ref));
        kactor_value **values = NULL;
        kactor_client *c = NULL;
        int r;

        if (!refs || setenv("KACTOR_DIRECT_CALLS", "0", 1) < 0)
                return 3;
        if (child_connect(report, args->socket_path, 0, &c) < 0)
                return 1;
        for (size_t i = 0; i < N_STREAM; i++) {
                r = kactor_call(c, args->counter, "increment", NULL, &refs[i]);
                if (r < 0) {
                        child_say(report, "kactor_call %zu: %s", i, strerror(-r));
                        return 1;
                }
        }
        r = kactor_get(c, refs, N_STREAM, 3 * HARNESS_TIMEOUT_USEC, &values);
        if (r < 0) {
                child_say(report, "kactor_get: %s: %s", strerror(-r), kactor_client_error_message(c));
                return 1;
        }
        for (size_t i = 0; i < N_STREAM; i++) {
                int64_t x = -1;

                if (kactor_value_as_int(values[i], &x) < 0 || x != (int64_t) i + 1) {
                        _cleanup_free_ char *json = kactor_value_to_json(values[i]);
                        child_say(report, "result %zu is %s, expected %zu", i, json ?: "?", i + 1);
                        return 1;
                }
        }
        kactor_values_free(values, N_STREAM);
        kactor_client_free(c);
        return 0;
}

Test(direct, calls_take_the_direct_path_and_keep_their_order) {
        h = harness_start(NULL);
        kactor_client *c = client_new(0);
        kactor_actor a = create_alive(c, "counter", "Counter", NULL);

        increment_stream_in_order(c, a);
        /* Every one of them went straight to the worker; the node manager counted each once. */
        assert_actor_uint(a, "CallsSubmitted", N_STREAM);
        assert_actor_uint(a, "CallsCompleted", N_STREAM);
        assert_actor_uint(a, "CallsDirect", N_STREAM);
        cr_assert_eq(call_int(c, a, "get"), N_STREAM);

        /* On asked for (positive), the same. */
        kactor_client *on = client_new(1);
        kactor_actor b = create_alive(on, "counter", "Counter", NULL);
        increment_stream_in_order(on, b);
        assert_actor_uint(b, "CallsSubmitted", N_STREAM);
        assert_actor_uint(b, "CallsCompleted", N_STREAM);
        assert_actor_uint(b, "CallsDirect", N_STREAM);
}

Test(direct, direct_calls_can_be_turned_off) {
        h = harness_start(NULL);

        /* direct_calls = -1: every call relayed, the same results. */
        kactor_client *off = client_new(-1);
        kactor_actor a = harness_create(h, off, "counter", "Counter", NULL, NULL);
        increment_stream_in_order(off, a);
        assert_actor_uint(a, "CallsSubmitted", N_STREAM);
        assert_actor_uint(a, "CallsCompleted", N_STREAM);
        cr_assert_eq(actor_uint(a, "CallsDirect"), 0);
        cr_assert_eq(call_int(off, a, "get"), N_STREAM);
        cr_assert_eq(actor_uint(a, "CallsDirect"), 0);

        /* KACTOR_DIRECT_CALLS=0 in the environment, default options: the same (in a child, whose
         * environment it is). */
        kactor_client *owner = client_new(-1);
        EnvOffArgs args = {
                .socket_path = h->socket_path,
                .counter = harness_create(h, owner, "counter", "Counter", NULL, NULL),
        };
        int report;
        pid_t pid = child_start(child_env_off, &args, &report);
        child_finish(pid, report);
        assert_actor_uint(args.counter, "CallsSubmitted", N_STREAM);
        assert_actor_uint(args.counter, "CallsCompleted", N_STREAM);
        cr_assert_eq(actor_uint(args.counter, "CallsDirect"), 0);
        cr_assert_eq(call_int(owner, args.counter, "get"), N_STREAM);
}

/* --- callers on several paths share one order ------------------------------------------------- */

/* Actor1.Call over D-Bus: the result's object path (harness-owned). */
static const char *dbus_call(sd_bus *bus, kactor_actor a, const char *method) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path = NULL;
        int r;

        r = sd_bus_call_method(bus, HARNESS_BUS_NAME, harness_actor_path(h, a), HARNESS_IFACE_ACTOR, "Call",
                               &e, &reply, "sav", method, 0);
        cr_assert_geq(r, 0, "Call(%s) over D-Bus: %s", method, e.message ?: strerror(-r));
        cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
        return harness_printf(h, "%s", path);
}

/* NodeManager1.Get of objects over D-Bus, waiting up to 10 s: their values, as a list. */
static kactor_value *dbus_get(sd_bus *bus, const char *const *paths, size_t n) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        kactor_value *values = NULL;
        int r;

        cr_assert_geq(sd_bus_message_new_method_call(bus, &m, HARNESS_BUS_NAME, HARNESS_BUS_PATH,
                                                     HARNESS_IFACE_MANAGER, "Get"),
                      0);
        cr_assert_geq(sd_bus_message_open_container(m, 'a', "o"), 0);
        for (size_t i = 0; i < n; i++)
                cr_assert_geq(sd_bus_message_append_basic(m, 'o', paths[i]), 0);
        cr_assert_geq(sd_bus_message_close_container(m), 0);
        cr_assert_geq(sd_bus_message_append(m, "t", HARNESS_TIMEOUT_USEC), 0);
        r = sd_bus_call(bus, m, 3 * HARNESS_TIMEOUT_USEC, &e, &reply);
        cr_assert_geq(r, 0, "Get over D-Bus: %s\n%s", e.message ?: strerror(-r), harness_nodemgr_log(h));
        cr_assert_geq(bus_message_read_value_list(reply, NULL, NULL, &values), 0);
        cr_assert_eq(kactor_value_list_size(values), n);
        return values;
}

Test(direct, direct_relayed_and_dbus_callers_share_one_order) {
        enum { PER = 200, TOTAL = 3 * PER };
        h = harness_start(NULL);
        kactor_client *direct = client_new(1), *relayed = client_new(-1);
        kactor_actor a = create_alive(direct, "counter", "Counter", NULL);
        sd_bus *bus = harness_bus_new(h);
        kactor_ref refs[2][PER];
        const char *paths[PER];
        kactor_value **values[2], *dbus_values;
        bool seen[TOTAL + 1] = {};

        /* Interleaved: each D-Bus Call is answered (and so queued) before the next call is made;
         * the native ones go out every few rounds. */
        for (size_t i = 0; i < PER; i++) {
                refs[0][i] = call_ref(direct, a, "increment");
                refs[1][i] = call_ref(relayed, a, "increment");
                paths[i] = dbus_call(bus, a, "increment");
                if (i % 5 == 4) {
                        cr_assert_eq(kactor_flush(direct), 0);
                        cr_assert_eq(kactor_flush(relayed), 0);
                }
        }
        values[0] = get_all(direct, refs[0], PER);
        values[1] = get_all(relayed, refs[1], PER);
        dbus_values = dbus_get(bus, paths, PER);

        /* Every value 1..TOTAL went to exactly one call, and each caller's calls ran in its order. */
        for (size_t who = 0; who < 3; who++) {
                static const char *const names[] = { "direct", "relayed", "D-Bus" };
                int64_t last = 0;

                for (size_t i = 0; i < PER; i++) {
                        const kactor_value *v =
                                who < 2 ? values[who][i] : kactor_value_list_get(dbus_values, i);
                        int64_t x = int_of(v, names[who], i);

                        cr_assert(x > last && x <= TOTAL, "the %s caller's call %zu got %lld after %lld",
                                  names[who], i, (long long) x, (long long) last);
                        cr_assert(!seen[x], "value %lld went to two calls (the %s caller's %zu too)",
                                  (long long) x, names[who], i);
                        seen[x] = true;
                        last = x;
                }
        }
        for (size_t x = 1; x <= TOTAL; x++)
                cr_assert(seen[x], "no call got %zu", x);
        kactor_values_free(values[0], PER);
        kactor_values_free(values[1], PER);
        kactor_value_free(dbus_values);
        sd_bus_flush_close_unref(bus);

        cr_assert_eq(call_int(relayed, a, "get"), TOTAL);
        /* Only the direct client's calls took the direct path. */
        assert_actor_uint(a, "CallsDirect", PER);
}

Test(direct, one_callers_direct_and_relayed_calls_keep_its_order) {
        enum { N = 240 };
        h = harness_start(NULL);
        kactor_client *c = client_new(1);
        kactor_actor rec = create_alive(c, "testmod", "Recorder", NULL);
        kactor_actor other = harness_create(h, c, "counter", "Counter", NULL, NULL);
        kactor_ref refs[N];
        kactor_value **values, *records;
        size_t n_plain = 0, n_surely_direct = 0;
        bool relayed_done = true;

        /* Plain arguments go direct; an object reference or an actor handle in them sends the call
         * the relayed way: all on one actor, in a mix that switches paths often. */
        for (size_t i = 0; i < N; i++) {
                bool relayed = true;
                kactor_value *args;

                if (i % 3 == 2) {
                        kactor_value *v = kactor_value_new_int((int64_t) i);
                        kactor_ref put;

                        cr_assert_eq(kactor_put(c, v, &put), 0);
                        kactor_value_free(v);
                        args = list_of(1, kactor_value_new_ref(put));
                } else if (i % 7 == 3)
                        args = list_of(2, kactor_value_new_int((int64_t) i),
                                       kactor_value_new_actor_handle(other));
                else {
                        args = list_of(1, kactor_value_new_int((int64_t) i));
                        relayed = false;
                        n_plain++;
                        /* Its relayed calls known done, a client calls directly again. */
                        n_surely_direct += relayed_done;
                }
                refs[i] = call_args(c, rec, "record", args);
                /* Some results are waited for at once (every other relayed one), so that both
                 * paths are idle at times and busy at others. */
                if (relayed && i % 2 == 0)
                        kactor_value_free(harness_get(c, refs[i]));
                if (relayed)
                        relayed_done = i % 2 == 0;
        }
        values = get_all(c, refs, N);
        for (size_t i = 0; i < N; i++) {
                const char *path = i % 3 == 2 ? "relayed (a reference)"
                        : i % 7 == 3          ? "relayed (a handle)"
                                              : "direct";

                cr_assert_eq(int_of(values[i], "record", i), (int64_t) i + 1,
                             "call %zu (%s) ran as number %s", i, path, harness_value_str(h, values[i]));
        }
        kactor_values_free(values, N);
        assert_actor_uint(rec, "CallsSubmitted", N);
        assert_actor_uint(rec, "CallsCompleted", N);
        uint64_t n_direct = actor_uint(rec, "CallsDirect");
        cr_assert(n_direct >= n_surely_direct && n_direct <= n_plain,
                  "CallsDirect is %llu: of %zu plain calls, %zu came once the relayed ones before were done",
                  (unsigned long long) n_direct, n_plain, n_surely_direct);

        /* The actor saw each call's arguments in the caller's order, references replaced by values. */
        records = harness_call(c, rec, "records", NULL);
        cr_assert_eq(kactor_value_list_size(records), N, "%s", harness_value_str(h, records));
        for (size_t i = 0; i < N; i++) {
                const kactor_value *r = kactor_value_list_get(records, i);

                cr_assert_eq(int_of(kactor_value_list_get(r, 0), "record", i), (int64_t) i,
                             "record %zu is %s", i, harness_value_str(h, r));
                if (i % 3 != 2 && i % 7 == 3) {
                        const kactor_value *handle = kactor_value_list_get(r, 1);
                        cr_assert(kactor_value_type(handle) == KACTOR_TYPE_ACTOR &&
                                          kactor_id_equal(kactor_value_get_id(handle), other.id),
                                  "record %zu is %s", i, harness_value_str(h, r));
                }
        }
        kactor_value_free(records);
}

/* --- the worker killed mid-stream ------------------------------------------------------------- */

enum {
        KILL_CLIENTS = 3,
        KILL_PER = 300,
        KILL_CHUNK = 20,
        KILL_TOTAL = KILL_CLIENTS * KILL_PER,
        KILL_AT = KILL_PER / KILL_CHUNK / 2,   /* killed after this chunk went out */
        KILL_GOT = (KILL_AT - 1) * KILL_CHUNK, /* client 0's result that came before */
};

/* Three direct clients stream increments to one Counter in interleaved chunks; its worker is killed
 * (-9) once some results are in and more are on their way. Returns every client's results, after
 * checking that the one client 0 had before the kill is still what it was. */
static void stream_and_kill(kactor_actor a, kactor_client *cl[KILL_CLIENTS], pid_t *ret_pid,
                            kactor_value **ret_values[KILL_CLIENTS]) {
        static kactor_ref refs[KILL_CLIENTS][KILL_PER];
        pid_t pid = harness_actor_pid(h, a);
        kactor_value *before_kill = NULL;

        for (size_t k = 0; k < KILL_PER / KILL_CHUNK; k++) {
                for (size_t c = 0; c < KILL_CLIENTS; c++) {
                        for (size_t i = k * KILL_CHUNK; i < (k + 1) * KILL_CHUNK; i++)
                                refs[c][i] = call_ref(cl[c], a, "increment");
                        cr_assert_eq(kactor_flush(cl[c]), 0, "kactor_flush: %s",
                                     kactor_client_error_message(cl[c]));
                }
                if (k == KILL_AT - 1)
                        /* Results are coming: the worker is in the middle of the stream. */
                        before_kill = harness_get(cl[0], refs[0][KILL_GOT]);
                if (k == KILL_AT)
                        cr_assert_eq(kill(pid, SIGKILL), 0, "kill %d: %m", (int) pid);
        }
        for (size_t c = 0; c < KILL_CLIENTS; c++)
                ret_values[c] = get_all(cl[c], refs[c], KILL_PER);
        cr_assert(kactor_value_equal(ret_values[0][KILL_GOT], before_kill),
                  "client 0's result %d was %s before the kill, and is %s after it\n%s", KILL_GOT,
                  harness_value_str(h, before_kill), harness_value_str(h, ret_values[0][KILL_GOT]),
                  harness_nodemgr_log(h));
        kactor_value_free(before_kill);
        *ret_pid = pid;
}

Test(direct, a_worker_killed_mid_stream_applies_every_direct_call_once) {
        h = harness_start(NULL);
        kactor_client *cl[KILL_CLIENTS];
        kactor_value **values[KILL_CLIENTS];
        static bool seen[KILL_TOTAL + 1];
        pid_t pid;

        for (size_t c = 0; c < KILL_CLIENTS; c++)
                cl[c] = client_new(1);
        kactor_actor a = harness_create(
                h, cl[0], "counter", "Counter", NULL,
                &(struct kactor_actor_opts){ .sz = sizeof(struct kactor_actor_opts), .max_restarts = -1 });
        stream_and_kill(a, cl, &pid, values);

        /* Every call got a value, none twice, none skipped; each client's in its order. */
        for (size_t c = 0; c < KILL_CLIENTS; c++) {
                int64_t last = 0;

                for (size_t i = 0; i < KILL_PER; i++) {
                        int64_t x = int_of(values[c][i], "result", i);

                        cr_assert(x > last && x <= KILL_TOTAL,
                                  "client %zu's call %zu got %lld after %lld\n%s", c, i, (long long) x,
                                  (long long) last, harness_nodemgr_log(h));
                        cr_assert(!seen[x], "value %lld went to two calls (client %zu's %zu too)\n%s",
                                  (long long) x, c, i, harness_nodemgr_log(h));
                        seen[x] = true;
                        last = x;
                }
                kactor_values_free(values[c], KILL_PER);
        }
        for (size_t x = 1; x <= KILL_TOTAL; x++)
                cr_assert(seen[x], "no call got %zu\n%s", x, harness_nodemgr_log(h));

        /* Exactly once: the state holds every increment, in a new worker. */
        cr_assert_eq(call_int(cl[1], a, "get"), KILL_TOTAL);
        cr_assert_neq(harness_actor_pid(h, a), pid, "the worker was not replaced");
        cr_assert_eq(actor_uint(a, "Restarts"), 1);
        cr_assert_eq(call_int(cl[2], a, "increment"), KILL_TOTAL + 1);
}

Test(direct, a_worker_killed_mid_stream_without_restarts_fails_the_rest_with_actor_died) {
        h = harness_start(NULL);
        kactor_client *cl[KILL_CLIENTS];
        kactor_value **values[KILL_CLIENTS];
        static bool seen[KILL_TOTAL + 1];
        size_t n_values = 0;
        int64_t top = 0;
        pid_t pid;

        for (size_t c = 0; c < KILL_CLIENTS; c++)
                cl[c] = client_new(1);
        kactor_actor a = harness_create(h, cl[0], "counter", "Counter", NULL, NULL);
        stream_and_kill(a, cl, &pid, values);

        /* Each client got values for its first calls, in its order, then ActorDied for the rest. */
        for (size_t c = 0; c < KILL_CLIENTS; c++) {
                int64_t last = 0;
                size_t i = 0;

                for (; i < KILL_PER && !kactor_value_is_error(values[c][i]); i++) {
                        int64_t x = int_of(values[c][i], "result", i);

                        cr_assert(x > last && x <= KILL_TOTAL, "client %zu's call %zu got %lld after %lld",
                                  c, i, (long long) x, (long long) last);
                        cr_assert(!seen[x], "value %lld went to two calls (client %zu's %zu too)",
                                  (long long) x, c, i);
                        seen[x] = true;
                        last = x;
                        top = MAX(top, x);
                        n_values++;
                }
                if (c == 0)
                        cr_assert_gt(i, (size_t) KILL_GOT,
                                     "client 0 had its result %d before the kill, but only %zu values",
                                     KILL_GOT, i);
                cr_assert_lt(i, KILL_PER, "client %zu's calls all succeeded after the worker was killed", c);
                for (; i < KILL_PER; i++)
                        harness_assert_error(values[c][i], KACTOR_ERROR_ACTOR_DIED, NULL);
                kactor_values_free(values[c], KILL_PER);
        }
        /* Nothing handed out was skipped: the values are 1..n. */
        cr_assert_eq((size_t) top, n_values, "%zu values handed out, the highest %lld", n_values,
                     (long long) top);

        /* The actor is dead: so are new calls, on either path. */
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS));
        for (size_t c = 0; c < 2; c++) {
                kactor_value *v = harness_call(cl[c], a, "increment", NULL);
                harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, NULL);
                kactor_value_free(v);
        }
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS));
}

/* --- a direct call's result is an object like any other --------------------------------------- */

Test(direct, a_direct_results_reference_works_everywhere) {
        h = harness_start(NULL);
        kactor_client *c = client_new(1);
        kactor_actor counter = create_alive(c, "counter", "Counter", NULL);
        kactor_actor rec = harness_create(h, c, "testmod", "Recorder", NULL, NULL);
        kactor_value *v;
        kactor_ref r1, r2, t;

        /* Passed on before its caller asked for it, and after. */
        r1 = call_ref(c, counter, "increment");
        cr_assert_eq(kactor_flush(c), 0);
        r2 = call_ref(c, counter, "increment");
        v = harness_get(c, r2);
        harness_assert_value(v, "2");
        kactor_value_free(v);

        /* To another actor's call. */
        v = harness_get(
                c,
                call_args(c, rec, "record", list_of(2, kactor_value_new_ref(r1), kactor_value_new_ref(r2))));
        harness_assert_value(v, "1");
        kactor_value_free(v);
        v = harness_call(c, rec, "records", NULL);
        harness_assert_value(v, "[[1, 2]]");
        kactor_value_free(v);

        /* To a task. */
        kactor_value *targs = list_of(2, kactor_value_new_ref(r2), kactor_value_new_ref(r1));
        int tr = kactor_submit(c, "testmod", "echo", targs, NULL, &t);
        kactor_value_free(targs);
        cr_assert_eq(tr, 0, "kactor_submit: %s", kactor_client_error_message(c));
        v = harness_get(c, t);
        harness_assert_value(v, "[2, 1]");
        kactor_value_free(v);

        /* Over D-Bus, as its own object, and the caller's. */
        for (size_t i = 0; i < 2; i++) {
                const char *path = harness_object_path(h, i == 0 ? r1 : r2);

                cr_assert_str_eq(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get",
                                                        "aot", "1", path, "10000000", NULL),
                                 i == 0 ? "av 1 x 1" : "av 1 x 2");
                cr_assert_str_eq(harness_property_string(h, path, OBJECT_IFACE, "State"), "ready");
                cr_assert_eq(harness_property_uint(h, path, OBJECT_IFACE, "Owner"), getuid());
        }

        /* And by the caller itself, as often as it likes. */
        v = harness_get(c, r1);
        harness_assert_value(v, "1");
        kactor_value_free(v);
        v = harness_get(c, r2);
        harness_assert_value(v, "2");
        kactor_value_free(v);
        assert_actor_uint(counter, "CallsDirect", 2);
}

static uint64_t manager_uint(const char *name) {
        return harness_property_uint(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, name);
}

/* Small direct results are kept for their callers without an object each (direct-results.h): the
 * node manager still counts them as objects and their bytes, turns one into an object when
 * something else names it, and lets them all go with their release. */
Test(direct, small_direct_results_are_counted_named_and_released_like_objects) {
        enum { N = 300 };
        h = harness_start(NULL);
        kactor_client *c = client_new(1);
        kactor_actor counter = create_alive(c, "counter", "Counter", NULL);
        kactor_ref refs[N];
        uint64_t objects = manager_uint("Objects"), bytes = manager_uint("ObjectStoreBytes");

        for (size_t i = 0; i < N; i++)
                refs[i] = call_ref(c, counter, "increment");
        kactor_value **values = get_all(c, refs, N);
        for (size_t i = 0; i < N; i++)
                cr_assert_eq(int_of(values[i], "increment", i), (int64_t) i + 1);
        kactor_values_free(values, N);
        assert_actor_uint(counter, "CallsCompleted", N);
        cr_assert_eq(manager_uint("Objects"), objects + N);
        /* Each value's packed bytes: 1..127 take one, 128..255 two, 256..N three. */
        uint64_t packed = 0;
        for (size_t i = 1; i <= N; i++)
                packed += i < 128 ? 1 : i < 256 ? 2 : 3;
        cr_assert_eq(manager_uint("ObjectStoreBytes"), bytes + packed, "each result's bytes count");

        /* Named by someone else: over D-Bus, and by the caller's own Get after it had the value. */
        const char *path = harness_object_path(h, refs[7]);
        cr_assert_str_eq(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", path,
                                                "10000000", NULL),
                         "av 1 x 8");
        cr_assert_eq(harness_property_uint(h, path, OBJECT_IFACE, "Owner"), getuid());
        kactor_value *v = harness_get(c, refs[N - 1]);
        harness_assert_value(v, "300");
        kactor_value_free(v);
        cr_assert_eq(manager_uint("Objects"), objects + N);

        /* Released: every one goes, the two that became objects too. */
        cr_assert_eq(kactor_ref_release(c, refs, N), 0);
        cr_assert_eq(kactor_flush(c), 0);
        cr_assert_eq(wait_uint(HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Objects", objects, HARNESS_TIMEOUT_MS),
                     objects);
        cr_assert_eq(manager_uint("ObjectStoreBytes"), bytes);
        _cleanup_free_ char *out = NULL;
        cr_assert_neq(harness_busctl_call(h, &out, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", path,
                                          "10000000", NULL),
                      0);
        cr_assert(out && strstr(out, "released"), "a Get after the release: %s", out ?: "");
}

/* A client that goes without releasing its direct results leaves none behind: the node manager
 * drops them with its connection (and the actor's other caller keeps its own). */
Test(direct, direct_results_go_with_the_connection_of_their_caller) {
        enum { N = 200 };
        h = harness_start(NULL);
        kactor_client *owner = client_new(1);
        kactor_actor counter = create_alive(owner, "counter", "Counter", NULL);
        kactor_client *c = client_new(1);
        kactor_ref refs[N], kept = call_ref(owner, counter, "increment");
        uint64_t objects, bytes;

        kactor_value *v = harness_get(owner, kept);
        harness_assert_value(v, "1");
        kactor_value_free(v);
        /* Its caller had it from the worker: the node manager counts it once it read the result. */
        assert_actor_uint(counter, "CallsCompleted", 1);
        objects = manager_uint("Objects");
        bytes = manager_uint("ObjectStoreBytes");
        for (size_t i = 0; i < N; i++)
                refs[i] = call_ref(c, counter, "increment");
        kactor_value **values = get_all(c, refs, N);
        kactor_values_free(values, N);
        assert_actor_uint(counter, "CallsCompleted", N + 1);
        cr_assert_eq(manager_uint("Objects"), objects + N);

        /* Gone, its results unreleased. */
        cr_assert_eq(clients[n_clients - 1], c);
        kactor_client_free(c);
        n_clients--;
        cr_assert_eq(wait_uint(HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Objects", objects, HARNESS_TIMEOUT_MS),
                     objects, "%s", harness_nodemgr_log(h));
        cr_assert_eq(manager_uint("ObjectStoreBytes"), bytes);
        const char *path = harness_object_path(h, kept);
        cr_assert_str_eq(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", path,
                                                "10000000", NULL),
                         "av 1 x 1");
        cr_assert_eq(call_int(owner, counter, "increment"), N + 2);
}

/* A result its caller keeps, not even asked for, while it makes thousands more (whose slots, in the
 * client and in the node manager, wrap around onto it) stays what it was, for the caller and for
 * anyone it is passed to; the later ones are right too. */
Test(direct, a_held_direct_result_outlives_the_thousands_after_it) {
        enum { ROUNDS = 40, BATCH = 100 };
        h = harness_start(NULL);
        kactor_client *c = client_new(1);
        kactor_actor counter = create_alive(c, "counter", "Counter", NULL);
        kactor_ref first = call_ref(c, counter, "increment"), refs[BATCH];
        kactor_value *v;
        int64_t n = 1;

        for (int round = 0; round < ROUNDS; round++) {
                for (size_t i = 0; i < BATCH; i++)
                        refs[i] = call_ref(c, counter, "increment");
                kactor_value **values = get_all(c, refs, BATCH);
                for (size_t i = 0; i < BATCH; i++)
                        cr_assert_eq(int_of(values[i], "increment", i), ++n);
                kactor_values_free(values, BATCH);
                cr_assert_eq(kactor_ref_release(c, refs, BATCH), 0);
        }
        cr_assert_eq(kactor_flush(c), 0);
        v = harness_get(c, first);
        harness_assert_value(v, "1");
        kactor_value_free(v);

        const char *path = harness_object_path(h, first);
        cr_assert_str_eq(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", path,
                                                "10000000", NULL),
                         "av 1 x 1");
        kactor_client *other = client_new(1);
        kactor_actor rec = harness_create(h, other, "testmod", "Recorder", NULL, NULL);
        v = harness_get(c, call_args(c, rec, "record", list_of(1, kactor_value_new_ref(first))));
        harness_assert_value(v, "1");
        kactor_value_free(v);
        v = harness_call(c, rec, "records", NULL);
        harness_assert_value(v, "[[1]]");
        kactor_value_free(v);
        cr_assert_eq(call_int(c, counter, "increment"), n + 1);
}

Test(direct, a_direct_result_that_names_an_actor_gives_a_usable_handle) {
        h = harness_start(NULL);
        kactor_client *c = client_new(1);
        kactor_actor counter = harness_create(h, c, "counter", "Counter", NULL, NULL);
        kactor_actor holder;
        kactor_value *args = list_of(1, kactor_value_new_actor_handle(counter)), *v;

        cr_assert_eq(kactor_create_actor(c, "testmod", "Holder", args, NULL, &holder), 0, "%s",
                     kactor_client_error_message(c));
        kactor_value_free(args);

        v = harness_call(c, holder, "handle", NULL);
        cr_assert(kactor_value_type(v) == KACTOR_TYPE_ACTOR &&
                          kactor_id_equal(kactor_value_get_id(v), counter.id),
                  "handle() returned %s", harness_value_str(h, v));
        cr_assert_eq(call_int(c, kactor_value_get_actor(v), "increment"), 1);
        kactor_value_free(v);
        v = harness_call(c, holder, "self", NULL);
        cr_assert(kactor_value_type(v) == KACTOR_TYPE_ACTOR &&
                          kactor_id_equal(kactor_value_get_id(v), holder.id),
                  "self() returned %s", harness_value_str(h, v));
        kactor_value_free(v);
        /* The handles went through the node manager (the client holds them), and the actors live on. */
        cr_assert_eq(call_int(c, counter, "increment"), 2);
        v = harness_call(c, holder, "call", "[\"increment\"]");
        harness_assert_value(v, "3");
        kactor_value_free(v);
}

/* --- a caller that dies mid-stream costs nothing ---------------------------------------------- */

typedef struct FloodArgs {
        const char *socket_path;
        kactor_actor counter;
        size_t n;       /* calls to make */
        size_t tell_at; /* says "sending" on the report after this many */
} FloodArgs;

/* Sends increments without ever asking for a result, then _exit()s: the worker still has most of
 * them to run. */
static int child_flood(int report, void *userdata) {
        const FloodArgs *args = userdata;
        kactor_client *c = NULL;
        int r;

        if (child_connect(report, args->socket_path, 1, &c) < 0)
                return 1;
        for (size_t i = 0; i < args->n; i++) {
                kactor_ref ref;

                r = kactor_call(c, args->counter, "increment", NULL, &ref);
                if (r < 0) {
                        child_say(report, "kactor_call %zu: %s", i, strerror(-r));
                        return 1;
                }
                if (i % 500 == 499 && (r = kactor_flush(c)) < 0) {
                        child_say(report, "kactor_flush after %zu: %s", i, strerror(-r));
                        return 1;
                }
                if (i + 1 == args->tell_at)
                        child_say(report, "sending");
        }
        r = kactor_flush(c);
        if (r < 0) {
                child_say(report, "kactor_flush: %s", strerror(-r));
                return 1;
        }
        return 0; /* no kactor_client_free(): gone as a crash would be */
}

Test(direct, a_caller_that_dies_mid_stream_costs_nothing) {
        h = harness_start(NULL);
        kactor_client *c = client_new(1);
        kactor_actor a = create_alive(c, "counter", "Counter", NULL);
        int64_t last = call_int(c, a, "increment");
        pid_t worker = harness_actor_pid(h, a);
        char line[256];
        int report;

        /* The baseline: this client's connection and direct socket are open, the harness's bus
         * connection too, and nothing is held but the actor. */
        cr_assert_eq(kactor_flush(c), 0);
        assert_actor_uint(a, "CallsDirect", 1);
        uint64_t objects = harness_property_uint(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Objects");
        unsigned nodemgr_fds = process_fds(h->nodemgr_pid), worker_fds = process_fds(worker);

        for (int round = 0; round < 2; round++) {
                /* Round 0: the child _exit()s after it sent everything; round 1: it is killed (-9)
                 * while it sends. */
                FloodArgs args = {
                        .socket_path = h->socket_path,
                        .counter = a,
                        .n = round == 0 ? 10000 : 1000000,
                        .tell_at = 3000,
                };
                pid_t pid = child_start(child_flood, &args, &report);

                cr_assert(child_read_line(report, line, sizeof(line)) && streq(line, "sending"),
                          "the child said: %s", line);
                /* The actor serves this caller meanwhile, in its order. */
                for (int i = 0; i < 20; i++) {
                        int64_t x = call_int(c, a, "increment");

                        cr_assert_gt(x, last, "increment gave %lld after %lld", (long long) x,
                                     (long long) last);
                        last = x;
                }
                if (round == 0)
                        child_finish(pid, report);
                else
                        child_kill(pid, report);
        }
        for (int i = 0; i < 20; i++) {
                int64_t x = call_int(c, a, "increment");

                cr_assert_gt(x, last, "increment gave %lld after %lld", (long long) x, (long long) last);
                last = x;
        }

        /* Every call the node manager was told of completed, and exactly those ran. */
        uint64_t completed = wait_calls_settled(a);
        cr_assert_eq(call_int(c, a, "get"), (int64_t) completed,
                     "the counter is not the number of increments run");
        cr_assert_eq(harness_actor_pid(h, a), worker);

        /* Nothing of the dead callers is left: connections, direct sockets, result objects. */
        cr_assert_eq(kactor_flush(c), 0);
        unsigned n = wait_fds_at_most(h->nodemgr_pid, nodemgr_fds);
        cr_assert_leq(n, nodemgr_fds, "the node manager holds %u descriptors, %u before", n, nodemgr_fds);
        n = wait_fds_at_most(worker, worker_fds);
        cr_assert_leq(n, worker_fds, "the worker holds %u descriptors, %u before", n, worker_fds);
        uint64_t now = objects;
        for (int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS; harness_now_ms() < deadline; (void) usleep(20 * 1000))
                if ((now = harness_property_uint(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Objects")) <=
                    objects)
                        break;
        cr_assert_leq(now, objects, "the node manager holds %llu objects, %llu before",
                      (unsigned long long) now, (unsigned long long) objects);
        harness_assert_running(h);
}

/* --- a hostile direct socket ------------------------------------------------------------------ */

/* The good client's counter goes on where it was, in the same worker, and the node manager runs. */
static void assert_undisturbed(kactor_client *good, kactor_actor a, pid_t worker, int64_t *count,
                               const char *after) {
        harness_assert_running(h);
        cr_assert_str_eq(harness_property_string(h, harness_actor_path(h, a), HARNESS_IFACE_ACTOR, "State"),
                         "alive", "after %s\n%s", after, harness_nodemgr_log(h));
        cr_assert_eq((pid_t) actor_uint(a, "Pid"), worker, "after %s, the actor has another worker", after);
        cr_assert_eq(call_int(good, a, "increment"), ++*count, "after %s", after);
}

/* The worker closes the direct socket without running anything: no DRESULT of a value comes. */
static void assert_direct_closed(int ds, const char *what) {
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;

        for (;;) {
                DResult d;
                int r = raw_read_dresult(ds, &d, deadline);

                cr_assert_neq(r, -ETIMEDOUT, "%s: the direct socket is still open after %u ms", what,
                              HARNESS_TIMEOUT_MS);
                if (r == 0)
                        break;
                /* Another frame than a DRESULT (the worker saying why, say): read on to the end. */
                if (r == -EBADMSG)
                        continue;
                cr_assert_eq(r, 1, "%s: reading the direct socket: %s", what, strerror(-r));
                cr_assert_neq(d.code, 0, "%s: answered with a value: %s", what,
                              harness_value_str(h, d.value));
                kactor_value_free(d.value);
        }
        (void) close(ds);
}

/* A fresh direct socket of raw's for actor a. */
static int open_direct_ok(RawConn *raw, kactor_actor a) {
        char message[256] = "";
        uint64_t code = UINT64_MAX;
        int ds = raw_open_direct(raw, a.id, &code, message, sizeof(message));

        cr_assert_geq(ds, 0, "OPEN_DIRECT: %s (code %llu: %s)\n%s", strerror(-ds), (unsigned long long) code,
                      message, harness_nodemgr_log(h));
        return ds;
}

/* A DCALL of increment that must be answered with `want`. */
static void dcall_expect(int ds, uint64_t lo, int64_t want) {
        DResult d;
        int r;

        cr_assert_eq(raw_dcall(ds, lo, "increment", NULL), 0);
        r = raw_read_dresult(ds, &d, harness_now_ms() + HARNESS_TIMEOUT_MS);
        cr_assert_eq(r, 1, "no DRESULT for a good DCALL: %s\n%s", r == 0 ? "closed" : strerror(-r),
                     harness_nodemgr_log(h));
        cr_assert_eq(d.lo, lo, "DRESULT for %llx, the DCALL was %llx", (unsigned long long) d.lo,
                     (unsigned long long) lo);
        cr_assert_eq(d.code, 0, "DRESULT code %llu", (unsigned long long) d.code);
        cr_assert_eq(int_of(d.value, "DRESULT", 0), want);
        kactor_value_free(d.value);
}

/* The fixture of the hostile tests: a good client with a Counter it incremented once, and a raw
 * connection after HELLO. */
typedef struct Hostile {
        kactor_client *good;
        kactor_actor a;
        pid_t worker;
        int64_t count; /* the counter's value */
        RawConn raw;
} Hostile;

static void hostile_start(Hostile *x) {
        int r;

        h = harness_start(NULL);
        x->good = client_new(1);
        x->a = create_alive(x->good, "counter", "Counter", NULL);
        x->worker = harness_actor_pid(h, x->a);
        x->count = 0;
        cr_assert_eq(call_int(x->good, x->a, "increment"), ++x->count);
        r = raw_conn_open(h->socket_path, &x->raw);
        cr_assert_eq(r, 0, "HELLO: %s", strerror(-r));
}

Test(direct, a_dcall_with_an_id_not_its_own_or_not_new_is_refused) {
        Hostile x;
        int ds;

        hostile_start(&x);
        kactor_client *good = x.good;
        kactor_actor a = x.a;
        pid_t worker = x.worker;
        RawConn raw = x.raw;
        int64_t count = x.count;

        /* The protocol as documented: a DCALL is answered with its DRESULT, and runs once. */
        ds = open_direct_ok(&raw, a);
        dcall_expect(ds, raw.prefix | 1, ++count);
        cr_assert_eq(call_int(good, a, "get"), count);

        /* The same id again on that socket: closed, not run. */
        cr_assert_eq(raw_dcall(ds, raw.prefix | 1, "increment", NULL), 0);
        assert_direct_closed(ds, "a DCALL reusing its id");
        assert_undisturbed(good, a, worker, &count, "a DCALL reusing its id");

        /* An id below the last one. */
        ds = open_direct_ok(&raw, a);
        dcall_expect(ds, raw.prefix | 5, ++count);
        cr_assert_eq(raw_dcall(ds, raw.prefix | 4, "increment", NULL), 0);
        assert_direct_closed(ds, "a DCALL with an id below the last");
        assert_undisturbed(good, a, worker, &count, "a DCALL with an id below the last");

        /* The good client's next id: outside this connection's range, and a call the good client
         * is about to make. It runs as the good client's, with the right value. */
        {
                kactor_ref mine = call_ref(good, a, "increment");
                kactor_value *v = harness_get(good, mine);

                cr_assert_eq(int_of(v, "increment", 0), ++count);
                kactor_value_free(v);
                ds = open_direct_ok(&raw, a);
                cr_assert_eq(raw_dcall(ds, mine.id.lo + 1, "increment", NULL), 0);
                assert_direct_closed(ds, "a DCALL with another client's next id");
                assert_undisturbed(good, a, worker, &count, "a DCALL with another client's next id");
                /* Far outside any range. */
                ds = open_direct_ok(&raw, a);
                cr_assert_eq(raw_dcall(ds, raw.prefix + (UINT64_C(1) << 40) + 1, "increment", NULL), 0);
                assert_direct_closed(ds, "a DCALL with the next connection's id");
                ds = open_direct_ok(&raw, a);
                cr_assert_eq(raw_dcall(ds, 1, "increment", NULL), 0);
                assert_direct_closed(ds, "a DCALL with id 1");
                ds = open_direct_ok(&raw, a);
                cr_assert_eq(raw_dcall(ds, raw.prefix, "increment", NULL), 0);
                assert_direct_closed(ds, "a DCALL with sequence number 0");
                assert_undisturbed(good, a, worker, &count, "DCALLs with ids outside the range");
        }

        /* An id used on an earlier direct socket of this connection: it names an object that
         * exists, whose value stays the one it was given, and it does not run again. */
        ds = open_direct_ok(&raw, a);
        cr_assert_eq(raw_dcall(ds, raw.prefix | 1, "increment", NULL), 0);
        assert_direct_closed(ds, "a DCALL reusing an id of an earlier direct socket");
        assert_undisturbed(good, a, worker, &count, "a DCALL reusing an id of an earlier direct socket");
        cr_assert_str_eq(
                harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1",
                                       harness_object_path(h, (kactor_ref){ { raw.hi, raw.prefix | 1 } }),
                                       "10000000", NULL),
                "av 1 x 2");

        /* A new id on a new socket is served. */
        ds = open_direct_ok(&raw, a);
        dcall_expect(ds, raw.prefix | 6, ++count);
        (void) close(ds);
        (void) close(raw.fd);
        assert_undisturbed(good, a, worker, &count, "the raw connection's end");
        /* Every call that ran was recorded and completed: the increments and one get. */
        cr_assert_eq((int64_t) wait_calls_settled(a), count + 1);
}

/* CALL as a client whose direct socket broke sends one again: [4, lo, actor, method, true] + args. */
static int raw_resend_call(RawConn *c, uint64_t lo, kactor_actor a, const char *method, const kactor_value *args) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint32(&pk, MSG_CALL);
        msgpack_pack_uint64(&pk, lo);
        r = codec_pack_id(&pk, CODEC_EXT_ACTOR, a.id);
        if (r >= 0) {
                msgpack_pack_str_with_body(&pk, method, strlen(method));
                msgpack_pack_true(&pk);
                r = codec_pack_value(&pk, args);
        }
        if (r >= 0)
                r = raw_send_sbuf(c->fd, &sb);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* A direct call whose record the node manager has, and whose result it does not yet (the method
 * still runs), sent again relayed by its caller (as after a broken socket): it is the same call,
 * run once, and its one result is what everyone gets. */
Test(direct, a_call_sent_again_while_its_direct_twin_runs_is_run_once) {
        h = harness_start(NULL);
        kactor_client *c = client_new(1);
        kactor_actor s = create_alive(c, "testmod", "Sleeper", NULL);
        RawConn raw;
        cr_assert_eq(raw_conn_open(h->socket_path, &raw), 0);
        int ds = open_direct_ok(&raw, s);
        uint64_t lo = raw.prefix | 1;
        kactor_value *args = list_of(2, kactor_value_new_int(1000), kactor_value_new_int(7));

        cr_assert_eq(raw_dcall(ds, lo, "sleep_then", args), 0);
        /* Its record is in: the call counts as submitted while it sleeps. */
        assert_actor_uint(s, "CallsSubmitted", 1);
        cr_assert_eq(actor_uint(s, "CallsCompleted"), 0, "the sleep ended before the test could resend it");
        cr_assert_eq(raw_resend_call(&raw, lo, s, "sleep_then", args), 0);
        kactor_value_free(args);

        DResult d;
        cr_assert_eq(raw_read_dresult(ds, &d, harness_now_ms() + HARNESS_TIMEOUT_MS), 1);
        cr_assert_eq(d.code, 0);
        harness_assert_value(d.value, "7");
        kactor_value_free(d.value);
        assert_actor_uint(s, "CallsCompleted", 1);
        const char *path = harness_object_path(h, (kactor_ref){ { raw.hi, lo } });
        cr_assert_str_eq(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot", "1", path,
                                                "10000000", NULL),
                         "av 1 x 7");
        /* Not made a second time: nothing more was submitted; the actor serves the next call. */
        cr_assert_eq(actor_uint(s, "CallsSubmitted"), 1);
        kactor_value *v = harness_call(c, s, "ping", NULL);
        harness_assert_value(v, "\"pong\"");
        kactor_value_free(v);
        assert_actor_uint(s, "CallsCompleted", 2);
        cr_assert_eq(actor_uint(s, "CallsSubmitted"), 2);
        (void) close(ds);
        (void) close(raw.fd);
}

Test(direct, a_hostile_direct_socket_disturbs_no_one) {
        Hostile x;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int ds, r;

        hostile_start(&x);
        kactor_client *good = x.good;
        kactor_actor a = x.a;
        pid_t worker = x.worker;
        RawConn raw = x.raw;
        int64_t count = x.count;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

        /* Garbage. */
        ds = open_direct_ok(&raw, a);
        static const char http[] = "GET / HTTP/1.1\r\nHost: kactor\r\n\r\n";
        (void) harness_raw_send(ds, http, sizeof(http) - 1);
        assert_direct_closed(ds, "an HTTP request");
        ds = open_direct_ok(&raw, a);
        static const uint8_t never_used[16] = { 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1,
                                                0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1 };
        (void) raw_length(ds, sizeof(never_used));
        (void) harness_raw_send(ds, never_used, sizeof(never_used));
        assert_direct_closed(ds, "a frame that is not MessagePack");
        ds = open_direct_ok(&raw, a);
        (void) raw_length(ds, 0);
        assert_direct_closed(ds, "an empty frame");
        assert_undisturbed(good, a, worker, &count, "garbage");

        /* A truncated frame, then the end. */
        ds = open_direct_ok(&raw, a);
        (void) raw_length(ds, 100);
        (void) harness_raw_send(ds, "\x93\x0c", 2);
        (void) close(ds);
        assert_undisturbed(good, a, worker, &count, "a truncated frame");

        /* Oversized lengths: the header alone must be enough. */
        ds = open_direct_ok(&raw, a);
        (void) raw_length(ds, PROTO_FRAME_MAX + 1);
        assert_direct_closed(ds, "a 64 MiB + 1 frame");
        ds = open_direct_ok(&raw, a);
        (void) raw_length(ds, UINT32_MAX);
        (void) harness_raw_send(ds, "\x93\x0c\x01", 3);
        assert_direct_closed(ds, "a 4 GiB frame");
        assert_undisturbed(good, a, worker, &count, "oversized frames");

        /* Malformed DCALLs: no method; a method that is a number; arguments that are not a list. */
        ds = open_direct_ok(&raw, a);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, MSG_DCALL);
        msgpack_pack_uint64(&pk, raw.prefix | 10);
        (void) raw_send_sbuf(ds, &sb);
        assert_direct_closed(ds, "a DCALL without a method");
        ds = open_direct_ok(&raw, a);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, MSG_DCALL);
        msgpack_pack_uint64(&pk, raw.prefix | 11);
        msgpack_pack_uint32(&pk, 7);
        msgpack_pack_array(&pk, 0);
        (void) raw_send_sbuf(ds, &sb);
        assert_direct_closed(ds, "a DCALL whose method is a number");
        ds = open_direct_ok(&raw, a);
        {
                kactor_value *not_a_list = kactor_value_new_map();

                cr_assert_eq(raw_dcall(ds, raw.prefix | 12, "increment", not_a_list), 0);
                kactor_value_free(not_a_list);
        }
        assert_direct_closed(ds, "a DCALL whose arguments are a map");
        /* Arguments that name an object (the good client's): such a call is the node manager's to
         * resolve, never the worker's. */
        ds = open_direct_ok(&raw, a);
        {
                kactor_value *one = kactor_value_new_int(1), *named;
                kactor_ref put;

                cr_assert_eq(kactor_put(good, one, &put), 0);
                kactor_value_free(one);
                named = list_of(1, kactor_value_new_ref(put));
                cr_assert_eq(raw_dcall(ds, raw.prefix | 15, "increment", named), 0);
                kactor_value_free(named);
        }
        assert_direct_closed(ds, "a DCALL whose arguments name an object");
        assert_undisturbed(good, a, worker, &count, "malformed DCALLs");

        /* What only the node manager may send a worker: EXEC (run a method, unrecorded) and STOP. */
        ds = open_direct_ok(&raw, a);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint32(&pk, MSG_EXEC);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_str_with_body(&pk, "increment", 9);
        cr_assert_eq(codec_pack_id(&pk, CODEC_EXT_OBJECT, (kactor_id){ raw.hi, raw.prefix | 13 }), 0);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_array(&pk, 0);
        (void) raw_send_sbuf(ds, &sb);
        assert_direct_closed(ds, "an EXEC on a direct socket");
        ds = open_direct_ok(&raw, a);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, MSG_STOP);
        msgpack_pack_uint64(&pk, 0);
        (void) raw_send_sbuf(ds, &sb);
        assert_direct_closed(ds, "a STOP on a direct socket");
        ds = open_direct_ok(&raw, a);
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint32(&pk, MSG_DRESULT);
        msgpack_pack_uint64(&pk, raw.prefix | 14);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_str_with_body(&pk, "", 0);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_int64(&pk, 1);
        (void) raw_send_sbuf(ds, &sb);
        assert_direct_closed(ds, "a DRESULT sent to the worker");
        assert_undisturbed(good, a, worker, &count, "frames only the node manager sends");

        /* After all that, this connection's next good DCALL is still served (the id above its last). */
        ds = open_direct_ok(&raw, a);
        dcall_expect(ds, raw.prefix | 20, ++count);
        (void) close(ds);
        assert_undisturbed(good, a, worker, &count, "a good DCALL");

        /* OPEN_DIRECT for an actor that does not exist: refused, no descriptor. */
        {
                uint64_t code = UINT64_MAX;
                char message[256] = "";

                r = raw_open_direct(&raw, (kactor_id){ raw.hi, 0x1234 }, &code, message, sizeof(message));
                cr_assert_eq(r, -EREMOTEIO, "OPEN_DIRECT of no actor: %s (%s)", strerror(-r), message);
                cr_assert_eq(code, KACTOR_ERROR_NO_SUCH_ACTOR, "OPEN_DIRECT of no actor: code %llu: %s",
                             (unsigned long long) code, message);
        }

        msgpack_sbuffer_destroy(&sb);
        (void) close(raw.fd);
        assert_undisturbed(good, a, worker, &count, "the raw connection's end");
        /* What the good client and the raw connection ran: every one recorded and completed. */
        cr_assert_eq((int64_t) wait_calls_settled(a), count);
}

/* A direct caller that asks for large answers and never reads them holds up no one else's calls, nor
 * takes the actor down. */
Test(direct, a_direct_caller_that_reads_nothing_holds_up_no_one) {
        enum { N = 400, ARG = 64 * 1024 }; /* 25 MiB of answers: more than a socket holds */
        h = harness_start(NULL);
        kactor_client *good = client_new(1);
        kactor_actor a = create_alive(good, "testmod", "Echo", NULL);
        kactor_value *v, *args;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        RawConn raw;
        int ds, r;

        v = harness_call(good, a, "echo", "[\"before\"]");
        harness_assert_value(v, "[\"before\"]");
        kactor_value_free(v);
        pid_t worker = harness_actor_pid(h, a);
        r = raw_conn_open(h->socket_path, &raw);
        cr_assert_eq(r, 0, "HELLO: %s", strerror(-r));
        ds = open_direct_ok(&raw, a);
        cr_assert_eq(fcntl(ds, F_SETFL, O_NONBLOCK), 0);

        /* DCALLs of echo with a 64 KiB argument, written for as long as the worker reads them. */
        char *big = malloc(ARG + 1);
        cr_assert_not_null(big);
        memset(big, 'x', ARG);
        big[ARG] = 0;
        args = list_of(1, kactor_value_new_string(big));
        free(big);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        size_t sent = 0, frames = 0;
        for (int64_t deadline = harness_now_ms() + 3000; frames < N && harness_now_ms() < deadline;) {
                if (sent == sb.size) {
                        size_t off;
                        uint32_t len;

                        msgpack_sbuffer_clear(&sb);
                        sent = 0;
                        msgpack_sbuffer_write(&sb, "\0\0\0\0", 4);
                        off = sb.size;
                        msgpack_pack_array(&pk, 3);
                        msgpack_pack_uint32(&pk, MSG_DCALL);
                        msgpack_pack_uint64(&pk, raw.prefix | ++frames);
                        msgpack_pack_str_with_body(&pk, "echo", 4);
                        cr_assert_eq(codec_pack_value(&pk, args), 0);
                        len = (uint32_t) (sb.size - off);
                        sb.data[0] = (char) (len & 0xff);
                        sb.data[1] = (char) ((len >> 8) & 0xff);
                        sb.data[2] = (char) ((len >> 16) & 0xff);
                        sb.data[3] = (char) ((len >> 24) & 0xff);
                }
                ssize_t k = send(ds, sb.data + sent, sb.size - sent, MSG_NOSIGNAL);
                if (k > 0)
                        sent += (size_t) k;
                else if (k < 0 && errno != EAGAIN && errno != EINTR)
                        break;
                else
                        (void) usleep(5000);
        }
        msgpack_sbuffer_destroy(&sb);
        kactor_value_free(args);

        /* The good client is answered meanwhile, and quickly. */
        for (int i = 0; i < 5; i++) {
                int64_t t0 = harness_now_ms();

                v = harness_call(good, a, "echo", harness_printf(h, "[%d]", i));
                harness_assert_value(v, harness_printf(h, "[%d]", i));
                kactor_value_free(v);
                cr_assert_lt(harness_now_ms() - t0, 2000, "an echo took %lld ms", (long long) (harness_now_ms() - t0));
        }
        harness_assert_running(h);
        cr_assert_eq((pid_t) actor_uint(a, "Pid"), worker);
        (void) close(ds);
        (void) close(raw.fd);
        v = harness_call(good, a, "echo", "[\"after\"]");
        harness_assert_value(v, "[\"after\"]");
        kactor_value_free(v);
}

/* --- the node manager killed mid-stream ------------------------------------------------------- */

/* The worker re-attaches to the next node manager and closes its direct sockets; its callers send
 * again what was not answered, and every call is applied once. */
Test(direct, a_node_manager_killed_mid_stream_loses_no_direct_call) {
        enum { N = 600 };
        h = harness_start(&(HarnessOptions){ .extra_env = "KACTOR_WORKER_REATTACH_SEC=30" });
        kactor_client *c = client_new(1);
        kactor_actor a = create_alive(c, "counter", "Counter", NULL);
        pid_t worker = harness_actor_pid(h, a);
        static kactor_ref refs[N];
        kactor_value **values;

        for (size_t i = 0; i < N; i++) {
                refs[i] = call_ref(c, a, "increment");
                if (i == 100)
                        /* The worker is running them. */
                        kactor_value_free(harness_get(c, refs[50]));
                if (i == N / 2) {
                        cr_assert_eq(kactor_flush(c), 0);
                        harness_restart_nodemgr(h, SIGKILL);
                }
        }
        values = get_all(c, refs, N);
        for (size_t i = 0; i < N; i++)
                cr_assert_eq(int_of(values[i], "result", i), (int64_t) i + 1, "result %zu is %s\n%s", i,
                             harness_value_str(h, values[i]), harness_nodemgr_log(h));
        kactor_values_free(values, N);
        cr_assert_eq(call_int(c, a, "get"), N);
        cr_assert_eq(harness_actor_pid(h, a), worker, "the actor has another worker\n%s",
                     harness_nodemgr_log(h));
        /* And the direct path is taken again (a client asks for a new socket a little after the
         * node manager last said no). */
        uint64_t before = actor_uint(a, "CallsDirect");
        int64_t n = N;
        for (int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
             actor_uint(a, "CallsDirect") == before && harness_now_ms() < deadline;)
                for (int i = 0; i < 10; i++)
                        cr_assert_eq(call_int(c, a, "increment"), ++n);
        cr_assert_gt(actor_uint(a, "CallsDirect"), before, "no call took the direct path again in %u ms",
                     HARNESS_TIMEOUT_MS);
}

/* --- another user ----------------------------------------------------------------------------- */

typedef struct OtherArgs {
        const char *socket_path;
        const TestUser *user;
        kactor_actor actor;
} OtherArgs;

/* As args->user: OPEN_DIRECT and a libkactor call of args->actor. Reports one line each:
 * "open CODE MESSAGE" (CODE 0: a socket came) and "call VALUE-AS-JSON". */
static int child_other_user(int report, void *userdata) {
        const OtherArgs *args = userdata;
        gid_t groups[64];
        int n_groups = ELEMENTSOF(groups);
        char message[256] = "";
        uint64_t code = UINT64_MAX;
        kactor_client *c = NULL;
        kactor_value *v = NULL;
        kactor_ref ref;
        RawConn raw;
        int r, ds;

        if (getgrouplist(args->user->name, args->user->gid, groups, &n_groups) < 0 ||
            setgroups((size_t) n_groups, groups) < 0 ||
            setresgid(args->user->gid, args->user->gid, args->user->gid) < 0 ||
            setresuid(args->user->uid, args->user->uid, args->user->uid) < 0) {
                child_say(report, "becoming %s: %m", args->user->name);
                return 2;
        }

        r = raw_conn_open(args->socket_path, &raw);
        if (r < 0) {
                child_say(report, "HELLO: %s", strerror(-r));
                return 1;
        }
        ds = raw_open_direct(&raw, args->actor.id, &code, message, sizeof(message));
        if (ds >= 0) {
                /* A socket came: the call on it must work as for anyone allowed. */
                DResult d;

                r = raw_dcall(ds, raw.prefix | 1, "increment", NULL);
                if (r >= 0)
                        r = raw_read_dresult(ds, &d, harness_now_ms() + HARNESS_TIMEOUT_MS);
                _cleanup_free_ char *json = r > 0 && d.value ? kactor_value_to_json(d.value) : NULL;
                child_say(report, "open 0 dcall %d %llu %s", r, r > 0 ? (unsigned long long) d.code : 0ULL,
                          json ?: "-");
                if (r > 0)
                        kactor_value_free(d.value);
                (void) close(ds);
        } else
                child_say(report, "open %llu %s", (unsigned long long) code, message);
        (void) close(raw.fd);

        if (child_connect(report, args->socket_path, 1, &c) < 0)
                return 1;
        r = kactor_call(c, args->actor, "increment", NULL, &ref);
        if (r >= 0)
                r = kactor_get1(c, ref, HARNESS_TIMEOUT_USEC, &v);
        if (r < 0) {
                child_say(report, "call failed: %s: %s", strerror(-r), kactor_client_error_message(c));
                return 1;
        }
        _cleanup_free_ char *json = kactor_value_to_json(v);
        child_say(report, "call %s", json ?: "?");
        kactor_value_free(v);
        kactor_client_free(c);
        return 0;
}

/* Runs child_other_user() as u on actor a: its two lines (harness-owned). */
static void run_as(const TestUser *u, kactor_actor a, const char **ret_open, const char **ret_call) {
        OtherArgs args = { .socket_path = h->socket_path, .user = u, .actor = a };
        int report;
        pid_t pid = child_start(child_other_user, &args, &report);
        const char *out = child_finish(pid, report);
        const char *nl = strchr(out, '\n');

        cr_assert_not_null(nl, "the child said: %s", out);
        *ret_open = harness_printf(h, "%.*s", (int) (nl - out), out);
        *ret_call = harness_printf(h, "%s", nl + 1);
        if (strlen(*ret_call) > 0 && (*ret_call)[strlen(*ret_call) - 1] == '\n')
                *ret_call = harness_printf(h, "%.*s", (int) strlen(*ret_call) - 1, *ret_call);
}

Test(direct, another_user_gets_a_direct_socket_only_where_it_may_call) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (users, processes of other users)");
        users_group_make(&group, "kdir", "", USERS_GID_ABOVE_UIDS);
        users_make(&member, "kdir", "m", &group, NULL);
        users_make(&sharer, "kdir", "s", &group, NULL);
        static const char *args[] = { "--access-group", NULL, NULL };
        args[1] = group.name;
        h = harness_start(&(HarnessOptions){ .extra_args = args });
        /* The bus and the socket lie in the harness's private directory. */
        cr_assert_eq(chmod(h->dir, 0755), 0);

        kactor_client *root = client_new(1);
        kactor_actor mine = create_alive(root, "counter", "Counter", NULL);
        const uid_t allow[] = { sharer.uid };
        kactor_actor shared = create_alive(
                root, "counter", "Counter",
                &(struct kactor_actor_opts){
                        .sz = sizeof(struct kactor_actor_opts), .allow_users = allow, .n_allow_users = 1 });
        const char *opened, *called;
        unsigned long long code = 0;

        cr_assert_eq(call_int(root, mine, "increment"), 1);

        /* A member who is not the owner: no socket, and the call, which falls back to the relayed
         * path, is refused there too. */
        run_as(&member, mine, &opened, &called);
        cr_assert(sscanf(opened, "open %llu", &code) == 1 && code == KACTOR_ERROR_ACCESS_DENIED,
                  "OPEN_DIRECT by another member: %s", opened);
        cr_assert(strstr(called, "io.kactor.Error.AccessDenied"), "its call gave: %s", called);
        cr_assert_eq(call_int(root, mine, "increment"), 2, "the refused calls ran");
        assert_actor_uint(mine, "CallsDirect", 2);

        /* The user it is shared with: a socket, and calls on it that run, as that user's. */
        run_as(&sharer, shared, &opened, &called);
        cr_assert_str_eq(opened, "open 0 dcall 1 0 1", "OPEN_DIRECT by a user it is shared with");
        cr_assert_str_eq(called, "call 2");
        cr_assert_eq(call_int(root, shared, "increment"), 3);
        assert_actor_uint(shared, "CallsDirect", 3);
}

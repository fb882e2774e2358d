/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libkactor's client across a node manager restart, against a fake node manager: a thread that
 * serves a unix socket in a temporary folder and speaks just enough of the native protocol.
 * Each test's server runs a script; what it saw that it did not expect is reported by the test.
 */

#include <criterion/criterion.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "codec.h"
#include "kactor/client.h"
#include "macro.h"
#include "proto.h"
#include "time-util.h"

#define NODE "fake-node"
#define ID_HI UINT64_C(0x42)
#define PREFIX_A (UINT64_C(1) << 40)
#define PREFIX_B (UINT64_C(2) << 40)
#define SEQ_MASK ((UINT64_C(1) << 40) - 1)
/* How long the server waits for the client before it gives up on it (a failure). */
#define SERVER_WAIT_MS 5000
#define MAX_KEPT 16
#define MANY_CALLS 3000

typedef struct FakeServer FakeServer;
typedef int (*ServerScript)(FakeServer *s);

struct FakeServer {
        char dir[64];
        char path[128];
        int listen_fd;
        int fd; /* the connection being served */
        Buffer in;
        Frame frame;   /* the frame last read */
        char *payload; /* its bytes */
        size_t len;
        char *kept[MAX_KEPT]; /* frames the script keeps, to compare with what comes again */
        size_t kept_len[MAX_KEPT];
        size_t n_kept;
        char *calls[MANY_CALLS + 1]; /* the CALL frames of the first connection, by sequence number */
        size_t calls_len[MANY_CALLS + 1];
        uint64_t again[MANY_CALLS]; /* the sequence numbers of the calls that came again, in order */
        size_t n_again;
        ServerScript script;
        pthread_t thread;
        char failure[512];
};

/* In a script: records why it fails and returns. */
#define SCHECK(s, cond, ...)                                                                                \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        server_fail((s), __LINE__, __VA_ARGS__);                                            \
                        return -1;                                                                          \
                }                                                                                           \
        } while (0)
#define STRY(s, expr)                                                                                       \
        do {                                                                                                \
                int _r = (expr);                                                                            \
                SCHECK(s, _r >= 0, "%s: %s", #expr, strerror(-_r));                                         \
        } while (0)

__attribute__((format(printf, 3, 4))) static void server_fail(FakeServer *s, int line, const char *fmt,
                                                              ...) {
        va_list ap;
        int k;

        if (s->failure[0])
                return;
        k = snprintf(s->failure, sizeof(s->failure), "server script line %d: ", line);
        va_start(ap, fmt);
        vsnprintf(s->failure + k, sizeof(s->failure) - (size_t) k, fmt, ap);
        va_end(ap);
}

static void server_close_conn(FakeServer *s) {
        s->fd = safe_close(s->fd);
        buffer_free(&s->in);
}

/* Waits for fd to be readable: 0, or -ETIMEDOUT. */
static int wait_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r;

        do
                r = poll(&p, 1, SERVER_WAIT_MS);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        return r == 0 ? -ETIMEDOUT : 0;
}

static int server_accept(FakeServer *s) {
        int r = wait_readable(s->listen_fd);
        if (r < 0)
                return r;
        s->fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        return s->fd < 0 ? -errno : 0;
}

/* Reads the next frame: 1, 0 at end of stream, or a negative errno. */
static int server_read(FakeServer *s) {
        for (;;) {
                const char *payload;
                size_t len;
                int r = frame_peek(&s->in, &payload, &len);
                if (r < 0)
                        return r;
                if (r > 0) {
                        free(s->payload);
                        s->payload = malloc(len);
                        if (!s->payload)
                                return -ENOMEM;
                        memcpy(s->payload, payload, len);
                        s->len = len;
                        buffer_consume(&s->in, PROTO_HEADER_SIZE + len);
                        r = frame_parse(&s->frame, s->payload, s->len);
                        return r < 0 ? r : 1;
                }
                r = wait_readable(s->fd);
                if (r < 0)
                        return r;
                r = buffer_reserve_read(&s->in, 65536);
                if (r < 0)
                        return r;
                ssize_t n = recv(s->fd, s->in.data + s->in.end, s->in.cap - s->in.end, 0);
                if (n < 0)
                        return errno == ECONNRESET ? 0 : -errno;
                if (n == 0)
                        return 0;
                s->in.end += (size_t) n;
        }
}

static int server_send(FakeServer *s, Buffer *b) {
        size_t at = b->start;
        while (at < b->end) {
                ssize_t n = send(s->fd, b->data + at, b->end - at, MSG_NOSIGNAL);
                if (n < 0)
                        return -errno;
                at += (size_t) n;
        }
        buffer_free(b);
        return 0;
}

static int server_send_welcome(FakeServer *s, uint64_t prefix) {
        Buffer b = {};
        msgpack_packer pk;
        size_t off;

        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
        int r = frame_begin_request(&b, &pk, MSG_WELCOME, 0, 4, &off);
        if (r < 0)
                return r;
        if (msgpack_pack_uint32(&pk, PROTO_VERSION) < 0 || pack_cstr(&pk, NODE) < 0 ||
            msgpack_pack_uint64(&pk, ID_HI) < 0 || msgpack_pack_uint64(&pk, prefix) < 0)
                return -ENOMEM;
        r = frame_end(&b, off);
        if (r < 0)
                return r;
        return server_send(s, &b);
}

/* Accepts a connection and reads its HELLO: a first one when resume is 0, else one that asks for the
 * session of that prefix back. Answers with `prefix`. */
static int server_hello(FakeServer *s, uint64_t resume, uint64_t prefix) {
        uint64_t version, asked;

        STRY(s, server_accept(s));
        SCHECK(s, server_read(s) == 1, "no HELLO");
        SCHECK(s, s->frame.type == MSG_HELLO, "frame %u instead of HELLO", s->frame.type);
        SCHECK(s, frame_field_u64(&s->frame, 0, &version) >= 0 && version == PROTO_VERSION, "bad version");
        if (resume == 0)
                SCHECK(s, s->frame.n_fields == 2, "a first HELLO has %u fields", s->frame.n_fields);
        else {
                SCHECK(s, s->frame.n_fields == 3, "a HELLO again has %u fields", s->frame.n_fields);
                SCHECK(s, frame_field_u64(&s->frame, 2, &asked) >= 0, "no prefix in HELLO");
                SCHECK(s, asked == resume, "HELLO asks for prefix %#" PRIx64 ", not %#" PRIx64, asked,
                       resume);
        }
        STRY(s, server_send_welcome(s, prefix));
        return 0;
}

/* Reads a frame of this type. */
static int server_expect(FakeServer *s, uint32_t type) {
        int r = server_read(s);
        SCHECK(s, r == 1, "no frame %u: %d", type, r);
        SCHECK(s, s->frame.type == type, "frame %u instead of %u", s->frame.type, type);
        return 0;
}

/* Reads a frame that must be the kept frame i, byte for byte. */
static int server_expect_kept(FakeServer *s, size_t i) {
        int r = server_read(s);
        SCHECK(s, r == 1, "no frame again (kept %zu): %d", i, r);
        SCHECK(s, s->len == s->kept_len[i] && memcmp(s->payload, s->kept[i], s->len) == 0,
               "frame %u (id %#" PRIx64 ") is not kept frame %zu again", s->frame.type, s->frame.id, i);
        return 0;
}

/* Reads a frame of this type and keeps its bytes. */
static int server_expect_keep(FakeServer *s, uint32_t type) {
        if (server_expect(s, type) < 0)
                return -1;
        SCHECK(s, s->n_kept < MAX_KEPT, "too many frames kept");
        s->kept[s->n_kept] = malloc(s->len);
        SCHECK(s, s->kept[s->n_kept], "out of memory");
        memcpy(s->kept[s->n_kept], s->payload, s->len);
        s->kept_len[s->n_kept++] = s->len;
        return 0;
}

/* The object ids of the GET or WAIT just read (its last field). */
static int server_request_ids(FakeServer *s, kactor_id *ids, size_t max, size_t *ret_n) {
        const msgpack_object *o = frame_field(&s->frame, s->frame.n_fields - 1);
        SCHECK(s, o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size <= max, "bad id list");
        for (size_t i = 0; i < o->via.array.size; i++)
                SCHECK(s, codec_object_to_id(&o->via.array.ptr[i], CODEC_EXT_OBJECT, &ids[i]) >= 0,
                       "bad id");
        *ret_n = o->via.array.size;
        return 0;
}

/* The value the fake gives an object: its sequence number times 100. */
static int64_t fake_value(kactor_id id) {
        return (int64_t) (id.lo & SEQ_MASK) * 100;
}

/* Reads a GET of exactly these objects (n of them; ids NULL: any) and answers it with their fake
 * values. */
static int server_answer_get(FakeServer *s, const kactor_id *want, size_t n_want) {
        kactor_id ids[16];
        size_t n;
        Buffer b = {};
        msgpack_packer pk;
        size_t off;

        if (server_expect(s, MSG_GET) < 0 || server_request_ids(s, ids, ELEMENTSOF(ids), &n) < 0)
                return -1;
        if (want) {
                SCHECK(s, n == n_want, "GET of %zu objects, not %zu", n, n_want);
                for (size_t i = 0; i < n; i++)
                        SCHECK(s, kactor_id_equal(ids[i], want[i]), "GET object %zu: %#" PRIx64, i,
                               ids[i].lo);
        }

        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
        STRY(s, frame_begin_request(&b, &pk, MSG_REPLY, s->frame.id, 2, &off));
        SCHECK(s,
               msgpack_pack_uint32(&pk, KACTOR_OK) >= 0 && pack_cstr(&pk, "") >= 0 &&
                       msgpack_pack_array(&pk, n) >= 0,
               "out of memory");
        for (size_t i = 0; i < n; i++)
                SCHECK(s, msgpack_pack_int64(&pk, fake_value(ids[i])) >= 0, "out of memory");
        STRY(s, frame_end(&b, off));
        STRY(s, server_send(s, &b));
        return 0;
}

/* Reads the end of the stream: the client closed, with nothing more to say. */
static int server_expect_eof(FakeServer *s) {
        int r = server_read(s);
        SCHECK(s, r == 0, "frame %u where the client should have closed (%d)", r == 1 ? s->frame.type : 0,
               r);
        server_close_conn(s);
        return 0;
}

static void *server_main(void *userdata) {
        FakeServer *s = userdata;
        int r = s->script(s);
        if (r < 0 && !s->failure[0])
                snprintf(s->failure, sizeof(s->failure), "server script failed: %d", r);
        server_close_conn(s);
        return NULL;
}

static FakeServer *server_start(ServerScript script) {
        FakeServer *s = calloc(1, sizeof(*s));
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        cr_assert_not_null(s);
        s->fd = -1;
        s->script = script;
        frame_init(&s->frame);
        snprintf(s->dir, sizeof(s->dir), "/tmp/kactor-reconnect-XXXXXX");
        cr_assert_not_null(mkdtemp(s->dir));
        snprintf(s->path, sizeof(s->path), "%s/nodemgr.sock", s->dir);
        strcpy(sa.sun_path, s->path);
        s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(s->listen_fd, 0);
        cr_assert_eq(bind(s->listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0, "bind: %m");
        cr_assert_eq(listen(s->listen_fd, 16), 0);
        cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
        return s;
}

/* Stops listening: a client that connects now finds nobody. */
static void server_stop_listening(FakeServer *s) {
        s->listen_fd = safe_close(s->listen_fd);
        (void) unlink(s->path);
}

/* Waits for the script to end; the test fails with what the server did not like. */
static void server_join(FakeServer *s) {
        cr_assert_eq(pthread_join(s->thread, NULL), 0);
        s->thread = 0;
        cr_expect(s->failure[0] == 0, "%s", s->failure);
}

static void server_free(FakeServer *s) {
        if (s->thread)
                server_join(s);
        server_stop_listening(s);
        (void) rmdir(s->dir);
        frame_done(&s->frame);
        free(s->payload);
        for (size_t i = 0; i < s->n_kept; i++)
                free(s->kept[i]);
        for (size_t i = 0; i < ELEMENTSOF(s->calls); i++)
                free(s->calls[i]);
        buffer_free(&s->in);
        free(s);
}

static kactor_client *client_connect(FakeServer *s, int reconnect_timeout_ms) {
        kactor_client *c = NULL;
        int r = kactor_connect(&(struct kactor_connect_opts){ .sz = sizeof(struct kactor_connect_opts),
                                                              .socket_path = s->path,
                                                              .reconnect_timeout_ms = reconnect_timeout_ms },
                               &c);
        cr_assert_eq(r, 0, "kactor_connect: %s", strerror(-r));
        return c;
}

static const kactor_actor some_actor = { { ID_HI, 7 } };

/* Calls "add" with argument i, n times. */
static void client_calls(kactor_client *c, kactor_ref *refs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_(kactor_value_freep) kactor_value *args = kactor_value_new_list();
                cr_assert_eq(kactor_value_list_append(args, kactor_value_new_int((int64_t) i)), 0);
                cr_assert_eq(kactor_call(c, some_actor, "add", args, &refs[i]), 0);
        }
}

static void expect_fake_values(kactor_value **values, const kactor_ref *refs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                cr_assert_not_null(values[i]);
                cr_expect_eq(kactor_value_type(values[i]), KACTOR_TYPE_INT, "value %zu is not an int", i);
                cr_expect_eq(kactor_value_get_int(values[i]), fake_value(refs[i].id), "value %zu", i);
        }
}

static uint64_t now_msec(void) {
        return now_usec(CLOCK_MONOTONIC) / 1000u;
}

/* (a) The calls the node manager had before it went away come again, byte for byte and in order,
 * before the GET that was waiting. */
static int script_calls_sent_again(FakeServer *s) {
        STRY(s, server_hello(s, 0, PREFIX_A));
        for (int i = 0; i < 3; i++)
                if (server_expect_keep(s, MSG_CALL) < 0)
                        return -1;
        server_close_conn(s); /* the node manager restarts */

        STRY(s, server_hello(s, PREFIX_A, PREFIX_A));
        for (size_t i = 0; i < 3; i++)
                if (server_expect_kept(s, i) < 0)
                        return -1;
        return server_answer_get(s, NULL, 0) < 0 ? -1 : server_expect_eof(s);
}

Test(client_reconnect, sends_calls_again_in_order_after_a_restart, .timeout = 20) {
        FakeServer *s = server_start(script_calls_sent_again);
        kactor_client *c = client_connect(s, 2000);
        kactor_ref refs[3];
        kactor_value **values;

        client_calls(c, refs, 3);
        cr_assert_eq(kactor_flush(c), 0);
        int r = kactor_get(c, refs, 3, 0, &values);
        cr_assert_eq(r, 0, "kactor_get: %s (%s)", strerror(-r), kactor_client_error_message(c));
        expect_fake_values(values, refs, 3);
        kactor_values_free(values, 3);
        cr_expect_str_eq(kactor_client_node_id(c), NODE);

        kactor_client_free(c);
        server_free(s);
}

/* (b) A result a GET delivered is final: its call is not sent again. */
static int script_fetched_not_sent_again(FakeServer *s) {
        STRY(s, server_hello(s, 0, PREFIX_A));
        for (int i = 0; i < 3; i++)
                if (server_expect_keep(s, MSG_CALL) < 0)
                        return -1;
        if (server_answer_get(s, NULL, 0) < 0)
                return -1;
        server_close_conn(s);

        STRY(s, server_hello(s, PREFIX_A, PREFIX_A));
        if (server_expect_kept(s, 1) < 0 || server_expect_kept(s, 2) < 0)
                return -1;
        return server_answer_get(s, NULL, 0) < 0 ? -1 : server_expect_eof(s);
}

Test(client_reconnect, does_not_send_again_a_call_whose_result_was_fetched, .timeout = 20) {
        FakeServer *s = server_start(script_fetched_not_sent_again);
        kactor_client *c = client_connect(s, 2000);
        kactor_ref refs[3];
        kactor_value *v, **values;

        client_calls(c, refs, 3);
        cr_assert_eq(kactor_get1(c, refs[0], 0, &v), 0);
        cr_expect_eq(kactor_value_get_int(v), fake_value(refs[0].id));
        kactor_value_free(v);

        int r = kactor_get(c, refs + 1, 2, 0, &values);
        cr_assert_eq(r, 0, "kactor_get: %s (%s)", strerror(-r), kactor_client_error_message(c));
        expect_fake_values(values, refs + 1, 2);
        kactor_values_free(values, 2);

        kactor_client_free(c);
        server_free(s);
}

/* (c) A call released after the node manager had it is not sent again; its RELEASE, which the node
 * manager may not have had, is (releasing twice is harmless). */
static int script_released_not_sent_again(FakeServer *s) {
        STRY(s, server_hello(s, 0, PREFIX_A));
        for (int i = 0; i < 3; i++)
                if (server_expect_keep(s, MSG_CALL) < 0)
                        return -1;
        if (server_answer_get(s, NULL, 0) < 0 || server_expect_keep(s, MSG_RELEASE) < 0)
                return -1;
        server_close_conn(s);

        STRY(s, server_hello(s, PREFIX_A, PREFIX_A));
        if (server_expect_kept(s, 2) < 0 || server_expect_kept(s, 3) < 0)
                return -1;
        return server_answer_get(s, NULL, 0) < 0 ? -1 : server_expect_eof(s);
}

Test(client_reconnect, does_not_send_again_a_released_call, .timeout = 20) {
        FakeServer *s = server_start(script_released_not_sent_again);
        kactor_client *c = client_connect(s, 2000);
        kactor_ref refs[3];
        kactor_value *v;

        client_calls(c, refs, 3);
        cr_assert_eq(kactor_get1(c, refs[0], 0, &v), 0);
        kactor_value_free(v);
        cr_assert_eq(kactor_ref_release(c, &refs[1], 1), 0);
        cr_assert_eq(kactor_flush(c), 0);

        int r = kactor_get1(c, refs[2], 0, &v);
        cr_assert_eq(r, 0, "kactor_get1: %s (%s)", strerror(-r), kactor_client_error_message(c));
        cr_expect_eq(kactor_value_get_int(v), fake_value(refs[2].id));
        kactor_value_free(v);

        kactor_client_free(c);
        server_free(s);
}

/* A call released before the node manager answered anything may never have reached it: it still
 * goes again, before its RELEASE, so that it runs (a call made for its effect) and a later call
 * that takes its result finds it. */
static int script_released_early_sent_again(FakeServer *s) {
        STRY(s, server_hello(s, 0, PREFIX_A));
        if (server_expect_keep(s, MSG_CALL) < 0 || server_expect_keep(s, MSG_CALL) < 0 ||
            server_expect_keep(s, MSG_RELEASE) < 0)
                return -1;
        server_close_conn(s);

        STRY(s, server_hello(s, PREFIX_A, PREFIX_A));
        for (size_t i = 0; i < 3; i++)
                if (server_expect_kept(s, i) < 0)
                        return -1;
        return server_answer_get(s, NULL, 0) < 0 ? -1 : server_expect_eof(s);
}

Test(client_reconnect, sends_again_a_call_released_before_the_node_manager_answered, .timeout = 20) {
        FakeServer *s = server_start(script_released_early_sent_again);
        kactor_client *c = client_connect(s, 2000);
        kactor_ref first, second;
        kactor_value *v;

        cr_assert_eq(kactor_call(c, some_actor, "make", NULL, &first), 0);
        _cleanup_(kactor_value_freep) kactor_value *args = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_ref(first)), 0);
        cr_assert_eq(kactor_call(c, some_actor, "use", args, &second), 0);
        cr_assert_eq(kactor_ref_release(c, &first, 1), 0);
        cr_assert_eq(kactor_flush(c), 0);

        int r = kactor_get1(c, second, 0, &v);
        cr_assert_eq(r, 0, "kactor_get1: %s (%s)", strerror(-r), kactor_client_error_message(c));
        cr_expect_eq(kactor_value_get_int(v), fake_value(second.id));
        kactor_value_free(v);

        kactor_client_free(c);
        server_free(s);
}

/* (d) The node manager gives another prefix: the session is lost. */
static int script_session_lost(FakeServer *s) {
        kactor_id ids[1];
        size_t n;

        STRY(s, server_hello(s, 0, PREFIX_A));
        for (int i = 0; i < 3; i++)
                if (server_expect(s, MSG_CALL) < 0)
                        return -1;
        server_close_conn(s);

        STRY(s, server_hello(s, PREFIX_A, PREFIX_B));
        /* Nothing of the lost session comes again: the next frame is a new call, with a new id. */
        if (server_expect(s, MSG_CALL) < 0)
                return -1;
        SCHECK(s, (s->frame.id & ~SEQ_MASK) == PREFIX_B, "new call %#" PRIx64 " not in the new range",
               s->frame.id);
        ids[0] = (kactor_id){ ID_HI, s->frame.id };
        n = 1;
        return server_answer_get(s, ids, n) < 0 ? -1 : server_expect_eof(s);
}

Test(client_reconnect, fails_the_calls_of_a_lost_session_and_goes_on_with_the_new_one, .timeout = 20) {
        FakeServer *s = server_start(script_session_lost);
        kactor_client *c = client_connect(s, 2000);
        kactor_ref refs[3], next;
        kactor_value **values, *v;
        bool ready[3];

        client_calls(c, refs, 3);
        cr_assert_eq(kactor_flush(c), 0);
        int r = kactor_get(c, refs, 3, 0, &values);
        cr_assert_eq(r, 0, "kactor_get: %s (%s)", strerror(-r), kactor_client_error_message(c));
        for (size_t i = 0; i < 3; i++) {
                cr_assert(kactor_value_is_error(values[i]), "value %zu is no error", i);
                cr_expect_eq(kactor_value_error_code(values[i]), KACTOR_ERROR_NO_SUCH_OBJECT);
                cr_expect(strstr(kactor_value_error_message(values[i]), "lost this client's session"), "%s",
                          kactor_value_error_message(values[i]));
        }
        kactor_values_free(values, 3);
        cr_expect_eq(kactor_client_error(c), KACTOR_ERROR_NO_SUCH_OBJECT);
        cr_expect(strstr(kactor_client_error_message(c), "restarted and lost this client's session"), "%s",
                  kactor_client_error_message(c));

        /* They are final: a WAIT finds them ready without asking. */
        cr_expect_eq(kactor_wait(c, refs, 3, 3, 0, ready), 3);
        cr_expect(ready[0] && ready[1] && ready[2]);

        cr_assert_eq(kactor_call(c, some_actor, "add", NULL, &next), 0);
        cr_expect_eq(next.id.lo & ~SEQ_MASK, PREFIX_B);
        r = kactor_get1(c, next, 0, &v);
        cr_assert_eq(r, 0, "kactor_get1: %s (%s)", strerror(-r), kactor_client_error_message(c));
        cr_expect_eq(kactor_value_get_int(v), fake_value(next.id));
        kactor_value_free(v);

        kactor_client_free(c);
        server_free(s);
}

/* (e) and (f): the node manager takes three calls and goes away. */
static int script_gone(FakeServer *s) {
        STRY(s, server_hello(s, 0, PREFIX_A));
        for (int i = 0; i < 3; i++)
                if (server_expect(s, MSG_CALL) < 0)
                        return -1;
        server_close_conn(s);
        return 0;
}

static int script_gone_for_good(FakeServer *s) {
        int r = script_gone(s);
        server_stop_listening(s);
        return r;
}

Test(client_reconnect, gives_up_after_the_reconnect_timeout, .timeout = 20) {
        FakeServer *s = server_start(script_gone_for_good);
        kactor_client *c = client_connect(s, 300);
        kactor_ref refs[3];
        kactor_value *v;

        client_calls(c, refs, 3);
        cr_assert_eq(kactor_flush(c), 0);
        server_join(s);

        uint64_t start = now_msec();
        int r = kactor_get1(c, refs[0], 0, &v);
        uint64_t took = now_msec() - start;
        cr_expect(r == -ECONNRESET || r == -ENOTCONN, "kactor_get1: %s", strerror(-r));
        cr_expect_geq(took, 290, "gave up after %" PRIu64 " ms", took);
        cr_expect_lt(took, 1500, "gave up after %" PRIu64 " ms", took);
        cr_expect(strstr(kactor_client_error_message(c), "did not come back within 300 ms"), "%s",
                  kactor_client_error_message(c));

        kactor_client_free(c);
        server_free(s);
}

static void expect_fails_at_once(FakeServer *s, kactor_client *c) {
        kactor_ref refs[3];
        kactor_value *v;

        client_calls(c, refs, 3);
        cr_assert_eq(kactor_flush(c), 0);
        server_join(s);

        uint64_t start = now_msec();
        int r = kactor_get1(c, refs[0], 0, &v);
        cr_expect(r == -ECONNRESET || r == -EPIPE, "kactor_get1: %s", strerror(-r));
        cr_expect_lt(now_msec() - start, 100);

        /* Nobody tried to connect again. */
        struct pollfd p = { .fd = s->listen_fd, .events = POLLIN };
        cr_expect_eq(poll(&p, 1, 0), 0, "the client connected again");
}

Test(client_reconnect, fails_at_once_with_a_negative_timeout, .timeout = 20) {
        FakeServer *s = server_start(script_gone);
        kactor_client *c = client_connect(s, -1);

        expect_fails_at_once(s, c);
        kactor_client_free(c);
        server_free(s);
}

Test(client_reconnect, takes_the_timeout_from_the_environment_when_opts_do_not_set_it, .timeout = 20) {
        FakeServer *s = server_start(script_gone);
        kactor_client *c = NULL;

        cr_assert_eq(setenv("KACTOR_RECONNECT_TIMEOUT_MS", "-1", 1), 0);
        /* A caller built against the struct before reconnect_timeout_ms: what lies past its sz is not
         * read. */
        struct kactor_connect_opts opts = { .sz = offsetof(struct kactor_connect_opts, reconnect_timeout_ms),
                                            .socket_path = s->path,
                                            .reconnect_timeout_ms = 60000 };
        cr_assert_eq(kactor_connect(&opts, &c), 0);
        expect_fails_at_once(s, c);
        kactor_client_free(c);
        server_free(s);
        unsetenv("KACTOR_RECONNECT_TIMEOUT_MS");
}

/* (g) A CREATE_ACTOR the node manager took and did not answer: it may have created the actor, so
 * it is not sent again; the next request connects again. */
static int script_create_unanswered(FakeServer *s) {
        Buffer b = {};
        msgpack_packer pk;
        size_t off;

        STRY(s, server_hello(s, 0, PREFIX_A));
        if (server_expect(s, MSG_CREATE_ACTOR) < 0)
                return -1;
        server_close_conn(s);

        STRY(s, server_hello(s, PREFIX_A, PREFIX_A));
        if (server_expect(s, MSG_GET_ACTOR) < 0)
                return -1;
        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
        STRY(s, frame_begin_request(&b, &pk, MSG_REPLY, s->frame.id, 3, &off));
        SCHECK(s, msgpack_pack_uint32(&pk, KACTOR_OK) >= 0 && pack_cstr(&pk, "") >= 0, "out of memory");
        STRY(s, codec_pack_id(&pk, CODEC_EXT_ACTOR, some_actor.id));
        STRY(s, frame_end(&b, off));
        STRY(s, server_send(s, &b));
        return server_expect_eof(s);
}

Test(client_reconnect, fails_a_create_actor_the_node_manager_did_not_answer, .timeout = 20) {
        FakeServer *s = server_start(script_create_unanswered);
        kactor_client *c = client_connect(s, 2000);
        kactor_actor a;

        int r = kactor_create_actor(c, "counter", "Counter", NULL, NULL, &a);
        cr_expect_eq(r, -ECONNRESET, "kactor_create_actor: %s", strerror(-r));
        cr_expect(strstr(kactor_client_error_message(c), "restarted before answering"), "%s",
                  kactor_client_error_message(c));

        r = kactor_get_actor(c, "counter", &a);
        cr_assert_eq(r, 0, "kactor_get_actor: %s (%s)", strerror(-r), kactor_client_error_message(c));
        cr_expect(kactor_id_equal(a.id, some_actor.id));

        kactor_client_free(c);
        server_free(s);
}

static int server_reply_ok(FakeServer *s) {
        Buffer b = {};
        msgpack_packer pk;
        size_t off;

        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
        STRY(s, frame_begin_request(&b, &pk, MSG_REPLY, s->frame.id, 2, &off));
        SCHECK(s, msgpack_pack_uint32(&pk, KACTOR_OK) >= 0 && pack_cstr(&pk, "") >= 0, "out of memory");
        STRY(s, frame_end(&b, off));
        return server_send(s, &b);
}

/* Many calls, most fetched, some released: only the others come again, each as it was, in order.
 * The first connection ends at a KILL, which comes again too, and is answered then. */
static int script_many_calls(FakeServer *s) {
        STRY(s, server_hello(s, 0, PREFIX_A));
        for (;;) {
                SCHECK(s, server_read(s) == 1, "the first connection ended early");
                if (s->frame.type == MSG_CALL) {
                        uint64_t seq = s->frame.id & SEQ_MASK;
                        SCHECK(s, seq <= MANY_CALLS && !s->calls[seq], "call %" PRIu64 " unexpected", seq);
                        s->calls[seq] = malloc(s->len);
                        SCHECK(s, s->calls[seq], "out of memory");
                        memcpy(s->calls[seq], s->payload, s->len);
                        s->calls_len[seq] = s->len;
                } else if (s->frame.type == MSG_GET) {
                        /* server_answer_get() reads the GET itself: answer this one the same way. */
                        kactor_id ids[16];
                        size_t n;
                        Buffer b = {};
                        msgpack_packer pk;
                        size_t off;

                        if (server_request_ids(s, ids, ELEMENTSOF(ids), &n) < 0)
                                return -1;
                        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
                        STRY(s, frame_begin_request(&b, &pk, MSG_REPLY, s->frame.id, 2, &off));
                        SCHECK(s,
                               msgpack_pack_uint32(&pk, KACTOR_OK) >= 0 && pack_cstr(&pk, "") >= 0 &&
                                       msgpack_pack_array(&pk, n) >= 0,
                               "out of memory");
                        for (size_t i = 0; i < n; i++)
                                SCHECK(s, msgpack_pack_int64(&pk, fake_value(ids[i])) >= 0, "out of memory");
                        STRY(s, frame_end(&b, off));
                        STRY(s, server_send(s, &b));
                } else if (s->frame.type == MSG_KILL)
                        break;
                else
                        SCHECK(s, s->frame.type == MSG_RELEASE, "frame %u unexpected", s->frame.type);
        }
        server_close_conn(s);

        STRY(s, server_hello(s, PREFIX_A, PREFIX_A));
        for (;;) {
                SCHECK(s, server_read(s) == 1, "the second connection ended early");
                if (s->frame.type == MSG_KILL)
                        break;
                if (s->frame.type == MSG_RELEASE)
                        continue;
                SCHECK(s, s->frame.type == MSG_CALL, "frame %u unexpected", s->frame.type);
                uint64_t seq = s->frame.id & SEQ_MASK;
                SCHECK(s, seq <= MANY_CALLS && s->calls[seq], "call %" PRIu64 " never came before", seq);
                SCHECK(s, s->len == s->calls_len[seq] && memcmp(s->payload, s->calls[seq], s->len) == 0,
                       "call %" PRIu64 " came again changed", seq);
                SCHECK(s, s->n_again < MANY_CALLS, "too many calls again");
                s->again[s->n_again++] = seq;
        }
        STRY(s, server_reply_ok(s));
        return server_answer_get(s, NULL, 0) < 0 ? -1 : server_expect_eof(s);
}

Test(client_reconnect, sends_again_exactly_the_calls_not_fetched_or_released, .timeout = 60) {
        FakeServer *s = server_start(script_many_calls);
        kactor_client *c = client_connect(s, 2000);
        static kactor_ref refs[MANY_CALLS];
        static bool done[MANY_CALLS]; /* fetched, or released after the node manager had it */
        char big[1024];
        kactor_value *v;
        int r;

        /* Big enough that the kept frames' storage is compacted on the way. */
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        for (size_t i = 0; i < MANY_CALLS; i++) {
                _cleanup_(kactor_value_freep) kactor_value *args = kactor_value_new_list();
                cr_assert_eq(kactor_value_list_append(args, kactor_value_new_string(big)), 0);
                cr_assert_eq(kactor_call(c, some_actor, "add", args, &refs[i]), 0);
                if (i % 4 != 3)
                        continue;

                kactor_ref get[2] = { refs[i - 3], refs[i - 2] };
                size_t n = i % 16 == 15 ? 1 : 2;
                kactor_value **values;
                r = kactor_get(c, get, n, 0, &values);
                cr_assert_eq(r, 0, "kactor_get: %s", strerror(-r));
                kactor_values_free(values, n);
                done[i - 3] = true;
                done[i - 2] = n == 2;
                if (i % 8 == 3) {
                        cr_assert_eq(kactor_ref_release(c, &refs[i - 1], 1), 0);
                        done[i - 1] = true;
                }
        }
        /* The node manager goes away while this waits; it is asked again. */
        r = kactor_kill(c, some_actor, true);
        cr_assert_eq(r, 0, "kactor_kill: %s (%s)", strerror(-r), kactor_client_error_message(c));

        size_t n_left = 0;
        for (size_t i = 0; i < MANY_CALLS; i++)
                n_left += !done[i];
        r = kactor_get1(c, refs[MANY_CALLS - 1], 0, &v);
        cr_assert_eq(r, 0, "kactor_get1: %s", strerror(-r));
        kactor_value_free(v);
        kactor_client_free(c);
        server_join(s);

        cr_assert_eq(s->n_again, n_left, "%zu calls came again, not %zu", s->n_again, n_left);
        for (size_t i = 0, k = 0; i < MANY_CALLS; i++)
                if (!done[i])
                        cr_assert_eq(s->again[k++], refs[i].id.lo & SEQ_MASK, "call %zu", i);
        server_free(s);
}

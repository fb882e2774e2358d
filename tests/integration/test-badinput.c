/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bad input never costs anyone else anything: broken native frames close only their connection,
 * clients that vanish mid-call, unknown modules, classes and methods, modules that do not load and
 * constructors that fail are errors for their sender, and after each, another client's actors keep
 * their state and answer.
 *
 * The native framing (lib/proto.h): a 32-bit little-endian payload length, then a MessagePack
 * array [type, id, fields...] (+ one value); the first frame must be HELLO.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "harness.h"
#include "macro.h"
#include "proto.h"

static Harness *h;

/* A client with state that every test checks is intact after the bad input. */
static kactor_client *good;
static kactor_actor good_counter;
static int64_t good_count;

static void setup(void) {
        h = harness_start(NULL);
        good = harness_client(h);
        good_counter = harness_create(h, good, "counter", "Counter", NULL, NULL);
        good_count = 0;
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(badinput, .init = setup, .fini = teardown, .timeout = 60);

/* The daemon runs, the good client's counter goes on from where it was, and a new client works. */
static void assert_others_unaffected(void) {
        kactor_client *fresh;
        kactor_actor c;
        kactor_value *v;

        harness_assert_running(h);
        v = harness_call(good, good_counter, "increment", NULL);
        harness_assert_value(v, harness_printf(h, "%lld", (long long)++good_count));
        kactor_value_free(v);

        fresh = harness_client(h);
        c = harness_create(h, fresh, "counter", "Counter", NULL, NULL);
        v = harness_call(fresh, c, "increment", NULL);
        harness_assert_value(v, "1");
        kactor_value_free(v);
        harness_client_close(h, fresh);
}

/* --- raw connections ------------------------------------------------------------------------- */

static int raw_connect(void) {
        int fd = harness_raw_connect(h->socket_path);
        cr_assert_geq(fd, 0, "connect %s: %s", h->socket_path, strerror(-fd));
        return fd;
}

/* Writes everything; a daemon that already closed the connection is fine (EPIPE/ECONNRESET). */
static void raw_write(int fd, const void *p, size_t n) {
        int r = harness_raw_send(fd, p, n);
        cr_assert(r == 0 || r == -EPIPE, "send: %s", strerror(-r));
}

static void raw_header(int fd, uint32_t len) {
        uint8_t hdr[4] = {len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, (len >> 24) & 0xff};

        raw_write(fd, hdr, sizeof(hdr));
}

static void raw_frame(int fd, const void *payload, size_t n) {
        raw_header(fd, (uint32_t)n);
        raw_write(fd, payload, n);
}

static void raw_frame_sbuf(int fd, msgpack_sbuffer *sb) {
        raw_frame(fd, sb->data, sb->size);
        msgpack_sbuffer_clear(sb);
}

static void pack_hello(msgpack_packer *pk, uint32_t version) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_HELLO);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, version);
        msgpack_pack_int64(pk, getpid());
}

/* Reads exactly n bytes by the deadline: 1 done, 0 the connection closed, -ETIMEDOUT. */
static int raw_read(int fd, void *buf, size_t n, int64_t deadline) {
        char *b = buf;

        while (n > 0) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int64_t left = deadline - harness_now_ms();
                ssize_t k;

                if (left <= 0)
                        return -ETIMEDOUT;
                if (poll(&p, 1, (int)left) == 0)
                        return -ETIMEDOUT;
                k = read(fd, b, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == ECONNRESET)
                        return 0;
                cr_assert_geq(k, 0, "read: %m");
                if (k == 0)
                        return 0;
                b += k;
                n -= (size_t)k;
        }
        return 1;
}

typedef struct RawFrame {
        uint64_t type, id, code; /* code: the error code of a REPLY */
        char message[512];       /* a REPLY's message (cut short) */
} RawFrame;

/* Reads one frame: 1 and its type/id, 0 when the connection closed, -ETIMEDOUT. */
static int raw_read_frame(int fd, RawFrame *ret, int64_t deadline) {
        uint8_t hdr[4];
        msgpack_unpacked u;
        uint32_t len;
        char *payload;
        int r;

        r = raw_read(fd, hdr, 4, deadline);
        if (r <= 0)
                return r;
        len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
        cr_assert_leq(len, PROTO_FRAME_MAX, "the daemon sent a frame of %u bytes", len);
        payload = malloc(len ? len : 1);
        cr_assert_not_null(payload);
        r = raw_read(fd, payload, len, deadline);
        if (r <= 0) {
                free(payload);
                return r;
        }
        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, payload, len, NULL), MSGPACK_UNPACK_SUCCESS,
                     "the daemon sent a frame that is not MessagePack");
        cr_assert(u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size >= 2,
                  "bad frame from the daemon");
        *ret = (RawFrame){.type = u.data.via.array.ptr[0].via.u64, .id = u.data.via.array.ptr[1].via.u64};
        if (ret->type == MSG_REPLY && u.data.via.array.size >= 3 &&
            u.data.via.array.ptr[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                ret->code = u.data.via.array.ptr[2].via.u64;
        if (ret->type == MSG_REPLY && u.data.via.array.size >= 4 &&
            u.data.via.array.ptr[3].type == MSGPACK_OBJECT_STR)
                snprintf(ret->message, sizeof(ret->message), "%.*s",
                         (int)MIN(u.data.via.array.ptr[3].via.str.size, sizeof(ret->message) - 1),
                         u.data.via.array.ptr[3].via.str.ptr);
        msgpack_unpacked_destroy(&u);
        free(payload);
        return 1;
}

/* A connection after HELLO and WELCOME. */
static int raw_connect_welcomed(void) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        RawFrame f = {};
        int fd = raw_connect();

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_hello(&pk, PROTO_VERSION);
        raw_frame_sbuf(fd, &sb);
        msgpack_sbuffer_destroy(&sb);
        cr_assert_eq(raw_read_frame(fd, &f, harness_now_ms() + HARNESS_TIMEOUT_MS), 1, "no answer to HELLO");
        cr_assert_eq(f.type, MSG_WELCOME, "HELLO answered with frame type %llu", (unsigned long long)f.type);
        return fd;
}

/* Asserts that the daemon closes the connection (after any frames it sends to say why), and that
 * it accepted nothing: no WELCOME, no successful REPLY. */
static void assert_closed(int fd, const char *what) {
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;

        for (;;) {
                RawFrame f = {};
                int r = raw_read_frame(fd, &f, deadline);

                cr_assert_neq(r, -ETIMEDOUT, "%s: the connection is still open after %u ms", what,
                              HARNESS_TIMEOUT_MS);
                if (r == 0)
                        break;
                cr_assert_neq(f.type, MSG_WELCOME, "%s: the daemon welcomed it", what);
                cr_assert(f.type != MSG_REPLY || f.code != 0, "%s: the daemon replied success", what);
        }
        close(fd);
}

/* Asserts that request `id` is refused: an error REPLY for it, or the connection closed. Returns
 * true when the connection is still open (the caller closes it). */
static bool assert_refused(int fd, uint64_t id, const char *what) {
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;

        for (;;) {
                RawFrame f = {};
                int r = raw_read_frame(fd, &f, deadline);

                cr_assert_neq(r, -ETIMEDOUT, "%s: no answer and the connection is still open", what);
                if (r == 0)
                        return false;
                if (f.type == MSG_REPLY && f.id == id) {
                        cr_assert_neq(f.code, 0, "%s: the daemon replied success", what);
                        return true;
                }
        }
}

/* --- framing --------------------------------------------------------------------------------- */

Test(badinput, oversized_frame_closes_only_that_connection) {
        int fd;

        /* Before HELLO: the header alone must be enough to refuse it. */
        fd = raw_connect();
        raw_header(fd, PROTO_FRAME_MAX + 1);
        assert_closed(fd, "a 64 MiB + 1 frame before HELLO");
        assert_others_unaffected();

        /* After HELLO. */
        fd = raw_connect_welcomed();
        raw_header(fd, UINT32_MAX);
        raw_write(fd, "\x93\x07\x01", 3);
        assert_closed(fd, "a 4 GiB frame after HELLO");
        assert_others_unaffected();
}

Test(badinput, garbage_closes_the_connection) {
        static const char http[] = "GET / HTTP/1.1\r\nHost: kactor\r\n\r\n";
        static const uint8_t never_used[16] = {0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1,
                                               0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1};
        int fd;

        fd = raw_connect();
        raw_write(fd, http, sizeof(http) - 1);
        assert_closed(fd, "an HTTP request");
        assert_others_unaffected();

        fd = raw_connect();
        raw_frame(fd, never_used, sizeof(never_used));
        assert_closed(fd, "a frame of bytes that are not MessagePack");

        fd = raw_connect_welcomed();
        raw_frame(fd, never_used, sizeof(never_used));
        assert_closed(fd, "a frame of bytes that are not MessagePack after HELLO");

        fd = raw_connect_welcomed();
        raw_frame(fd, "", 0);
        assert_closed(fd, "an empty frame");
        assert_others_unaffected();
}

Test(badinput, truncated_messagepack_closes_the_connection) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int fd;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

        /* An array of 4 with 2 elements in the frame. */
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, MSG_GET);
        msgpack_pack_uint64(&pk, 1);
        raw_frame_sbuf(fd, &sb);
        assert_closed(fd, "a truncated array");

        /* A string that claims more bytes than the frame has. */
        fd = raw_connect_welcomed();
        raw_frame(fd,
                  "\x94\x02\x01\xd9\xff"
                  "abc",
                  8);
        assert_closed(fd, "a truncated string");

        /* A header that is not an array. */
        fd = raw_connect_welcomed();
        msgpack_pack_int64(&pk, 5);
        raw_frame_sbuf(fd, &sb);
        assert_closed(fd, "a frame that is a bare integer");

        /* A frame cut short by the client going away. */
        fd = raw_connect_welcomed();
        raw_header(fd, 100);
        raw_write(fd, "\x94\x02", 2);
        close(fd);

        msgpack_sbuffer_destroy(&sb);
        assert_others_unaffected();
}

Test(badinput, first_frame_must_be_a_hello_of_this_version) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int fd;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

        fd = raw_connect();
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, MSG_GET);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_array(&pk, 0);
        raw_frame_sbuf(fd, &sb);
        assert_closed(fd, "GET before HELLO");

        fd = raw_connect();
        pack_hello(&pk, PROTO_VERSION + 100);
        raw_frame_sbuf(fd, &sb);
        assert_closed(fd, "HELLO of an unknown version");

        fd = raw_connect();
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, MSG_HELLO);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_str_with_body(&pk, "one", 3);
        msgpack_pack_int64(&pk, getpid());
        raw_frame_sbuf(fd, &sb);
        assert_closed(fd, "HELLO with a string for the version");

        /* The daemon's own message types from a client. */
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, MSG_RESULT);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint32(&pk, 0);
        msgpack_pack_str_with_body(&pk, "", 0);
        msgpack_pack_int64(&pk, 1);
        raw_frame_sbuf(fd, &sb);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, 250);
        msgpack_pack_uint64(&pk, 2);
        raw_frame_sbuf(fd, &sb);
        if (assert_refused(fd, 2, "an unknown message type"))
                close(fd);

        msgpack_sbuffer_destroy(&sb);
        assert_others_unaffected();
}

Test(badinput, fields_of_the_wrong_type_are_refused) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int fd;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

        /* CREATE_ACTOR with a number for the module, a bool for the class, a string for options. */
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint32(&pk, MSG_CREATE_ACTOR);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_int64(&pk, 123);
        msgpack_pack_true(&pk);
        msgpack_pack_str_with_body(&pk, "options", 7);
        msgpack_pack_array(&pk, 0);
        raw_frame_sbuf(fd, &sb);
        if (assert_refused(fd, 1, "CREATE_ACTOR with fields of the wrong types"))
                close(fd);

        /* CREATE_ACTOR with options of the wrong types. */
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint32(&pk, MSG_CREATE_ACTOR);
        msgpack_pack_uint64(&pk, 2);
        msgpack_pack_str_with_body(&pk, "counter", 7);
        msgpack_pack_str_with_body(&pk, "Counter", 7);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "NumGpus", 7);
        msgpack_pack_str_with_body(&pk, "all", 3);
        msgpack_pack_str_with_body(&pk, "Name", 4);
        msgpack_pack_int64(&pk, -1);
        msgpack_pack_array(&pk, 0);
        raw_frame_sbuf(fd, &sb);
        if (assert_refused(fd, 2, "CREATE_ACTOR with options of the wrong types"))
                close(fd);

        /* GET with a string timeout and ids that are not ids. */
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, MSG_GET);
        msgpack_pack_uint64(&pk, 3);
        msgpack_pack_str_with_body(&pk, "soon", 4);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int64(&pk, 1);
        msgpack_pack_nil(&pk);
        raw_frame_sbuf(fd, &sb);
        if (assert_refused(fd, 3, "GET with fields of the wrong types"))
                close(fd);

        /* GET_ACTOR with no name at all. */
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, MSG_GET_ACTOR);
        msgpack_pack_uint64(&pk, 4);
        raw_frame_sbuf(fd, &sb);
        if (assert_refused(fd, 4, "GET_ACTOR without a name"))
                close(fd);

        /* A PUT whose value is invalid: an object reference ext of 3 bytes instead of 16. */
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, MSG_PUT);
        msgpack_pack_uint64(&pk, 5);
        msgpack_pack_ext(&pk, 3, CODEC_EXT_OBJECT);
        msgpack_pack_ext_body(&pk, "abc", 3);
        raw_frame_sbuf(fd, &sb);
        assert_closed(fd, "a PUT of an invalid value");

        msgpack_sbuffer_destroy(&sb);
        assert_others_unaffected();
}

Test(badinput, many_bad_connections_in_a_row) {
        for (int i = 0; i < 50; i++) {
                int fd = raw_connect();

                if (i % 2)
                        raw_header(fd, PROTO_FRAME_MAX + (uint32_t)i);
                else
                        raw_write(fd, "\x01\x00\x00\x00\xc1", 5);
                close(fd);
        }
        assert_others_unaffected();
}

Test(badinput, oversized_value_is_refused_by_the_client_which_goes_on) {
        size_t n = PROTO_FRAME_MAX + 1024;
        char *big = calloc(1, n);
        kactor_value *v, *small;
        kactor_ref ref;
        int r;

        cr_assert_not_null(big);
        v = kactor_value_new_bytes(big, n);
        free(big);
        cr_assert_not_null(v);
        r = kactor_put(good, v, &ref);
        kactor_value_free(v);
        cr_assert_lt(r, 0, "a put of more than 64 MiB was accepted");

        small = harness_value("[1, 2]");
        cr_assert_eq(kactor_put(good, small, &ref), 0);
        kactor_value_free(small);
        v = harness_get(good, ref);
        harness_assert_value(v, "[1, 2]");
        kactor_value_free(v);
        assert_others_unaffected();
}

/* --- clients that vanish --------------------------------------------------------------------- */

Test(badinput, client_vanishing_mid_call_harms_no_one) {
        struct kactor_actor_opts named = {.sz = sizeof(named), .name = "napper"};
        kactor_actor napper = harness_create(h, good, "testmod", "Sleeper", NULL, &named);
        kactor_actor theirs, mine;
        kactor_client *x;
        kactor_value *v;
        kactor_ref ref;
        pid_t mine_pid;

        /* A client calls a shared actor and goes away before the result. */
        x = harness_client(h);
        cr_assert_eq(kactor_get_actor(x, "napper", &theirs), 0);
        v = harness_value("[300, \"for nobody\"]");
        cr_assert_eq(kactor_call(x, theirs, "sleep_then", v, &ref), 0);
        kactor_value_free(v);
        cr_assert_eq(kactor_flush(x), 0);

        /* And one that owns an actor busy with its call. */
        mine = harness_create(h, x, "testmod", "Sleeper", NULL, NULL);
        mine_pid = harness_actor_pid(h, mine);
        v = harness_value("[300]");
        cr_assert_eq(kactor_call(x, mine, "sleep", v, &ref), 0);
        kactor_value_free(v);
        cr_assert_eq(kactor_flush(x), 0);
        harness_client_close(h, x);

        /* The shared actor still answers the others, after the orphaned call. */
        v = harness_call(good, napper, "ping", NULL);
        harness_assert_value(v, "\"pong\"");
        kactor_value_free(v);
        /* The vanished client's own actor ends. */
        cr_assert(harness_wait_pid_exit(mine_pid, HARNESS_TIMEOUT_MS),
                  "the actor of a vanished client still runs");
        assert_others_unaffected();
}

Test(badinput, raw_client_vanishing_while_waiting_in_get) {
        struct kactor_actor_opts named = {.sz = sizeof(named), .name = "napper"};
        kactor_actor napper = harness_create(h, good, "testmod", "Sleeper", NULL, &named);
        kactor_value *v = harness_value("[300, \"done\"]");
        kactor_ref pending;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int fd;

        /* The good client's pending call; another connection waits on ids and vanishes. */
        cr_assert_eq(kactor_call(good, napper, "sleep_then", v, &pending), 0);
        kactor_value_free(v);
        cr_assert_eq(kactor_flush(good), 0);

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        fd = raw_connect_welcomed();
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, MSG_GET);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_array(&pk, 1);
        codec_pack_id(&pk, CODEC_EXT_OBJECT, pending.id);
        raw_frame_sbuf(fd, &sb);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint32(&pk, MSG_WAIT);
        msgpack_pack_uint64(&pk, 2);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_array(&pk, 1);
        codec_pack_id(&pk, CODEC_EXT_OBJECT, pending.id);
        raw_frame_sbuf(fd, &sb);
        close(fd);
        msgpack_sbuffer_destroy(&sb);

        v = harness_get(good, pending);
        harness_assert_value(v, "\"done\"");
        kactor_value_free(v);
        assert_others_unaffected();
}

/* --- modules, classes, methods --------------------------------------------------------------- */

/*
 * Creating `class_name` from `module` must fail with a message containing `needle`: either at
 * once (kactor_create_actor refuses) or, when the failure shows only in the worker, by the actor
 * dying: then its calls give ActorDied with the reason.
 */
static void assert_creation_fails(const char *module, const char *class_name, const char *args_json,
                                  const char *needle) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL, *v;
        kactor_actor a;
        int r;

        r = kactor_create_actor(good, module, class_name, args, NULL, &a);
        kactor_value_free(args);
        if (r < 0) {
                cr_assert_eq(r, -EREMOTEIO, "creating %s from %s: %s", class_name, module, strerror(-r));
                cr_assert(strstr(kactor_client_error_message(good), needle),
                          "creating %s from %s: %s: \"%s\" "
                          "does not mention \"%s\"",
                          class_name, module, kactor_error_name(kactor_client_error(good)),
                          kactor_client_error_message(good), needle);
                return;
        }
        v = harness_call(good, a, "ping", NULL);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, needle);
        kactor_value_free(v);
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS),
                  "State %s",
                  harness_property_string(h, harness_actor_path(h, a), HARNESS_IFACE_ACTOR, "State"));
}

Test(badinput, unknown_module_class_and_method) {
        kactor_actor a;
        kactor_value *v;
        int r;

        r = kactor_create_actor(good, "no-such-module", "Counter", NULL, NULL, &a);
        cr_assert_eq(r, -EREMOTEIO, "creating from a missing module: %d", r);
        cr_assert_eq(kactor_client_error(good), KACTOR_ERROR_MODULE_NOT_FOUND, "%s",
                     kactor_error_name(kactor_client_error(good)));
        cr_assert(strstr(kactor_client_error_message(good), "no-such-module"), "%s",
                  kactor_client_error_message(good));
        assert_others_unaffected();

        assert_creation_fails("testmod", "NoSuchClass", NULL, "NoSuchClass");
        assert_others_unaffected();

        v = harness_call(good, good_counter, "no_such_method", NULL);
        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_METHOD, "no_such_method");
        kactor_value_free(v);
        {
                kactor_ref ref;
                kactor_value *args = kactor_value_new_list();

                r = kactor_submit(good, "testmod", "no_such_function", args, NULL, &ref);
                kactor_value_free(args);
                if (r == 0) {
                        v = harness_get(good, ref);
                        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_METHOD, "no_such_function");
                        kactor_value_free(v);
                } else {
                        cr_assert_eq(kactor_client_error(good), KACTOR_ERROR_NO_SUCH_METHOD);
                }
        }
        assert_others_unaffected();
}

Test(badinput, modules_that_do_not_load) {
        const char *notelf = harness_printf(h, "%s/notelf.so", h->dir);
        FILE *f = fopen(notelf, "we");

        cr_assert_not_null(f);
        fputs("this is not an ELF file\n", f);
        fclose(f);

        assert_creation_fails("badmod", "Bad", NULL, "kactor_no_such_symbol");
        assert_others_unaffected();
        assert_creation_fails(notelf, "Counter", NULL, "notelf.so");
        assert_others_unaffected();
        assert_creation_fails("noinfo", "Counter", NULL, "noinfo");
        assert_others_unaffected();
        assert_creation_fails("badabi", "Future", NULL, "badabi");
        assert_others_unaffected();
}

Test(badinput, failing_constructor_kills_only_its_actor) {
        const char *path;
        kactor_actor a;
        kactor_value *args = harness_value("[\"fail\", \"bad config: port 0\"]"), *v;

        cr_assert_eq(kactor_create_actor(good, "testmod", "Failer", args, NULL, &a), 0);
        kactor_value_free(args);
        v = harness_call(good, a, "ok", NULL);
        harness_assert_error(v, KACTOR_ERROR_ACTOR_DIED, "bad config: port 0");
        kactor_value_free(v);
        path = harness_actor_path(h, a);
        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS));
        cr_assert(strstr(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "DeathCause"),
                         "bad config: port 0"),
                  "DeathCause: %s", harness_property_string(h, path, HARNESS_IFACE_ACTOR, "DeathCause"));
        /* Constructor arguments of the wrong type fail the same way. */
        assert_creation_fails("counter", "Counter", "[\"not a number\"]", "");
        assert_others_unaffected();
}

/* --- values out of range and overlong strings ---------------------------------------------------- */

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER
#define INVALID_ARGS "org.freedesktop.DBus.Error.InvalidArgs"

/* The limits docs/dbus-api.md states. */
#define NAME_LIMIT 255u   /* actor names, classes, methods, task functions */
#define MODULE_LIMIT 4095u
#define HUGE_LEN (20u * 1024u * 1024u)

/* A string of n 'a's (harness-owned). */
static const char *long_string(size_t n) {
        char *s = malloc(n + 1);

        cr_assert_not_null(s);
        memset(s, 'a', n);
        s[n] = 0;
        return harness_keep(h, s);
}

/* A refusal is InvalidArgs whose message names the option (needle) and its limit (limit), and does not
 * echo an overlong value back. */
static void assert_message(const char *what, const char *message, const char *needle, const char *limit) {
        cr_assert(message && strstr(message, needle), "%s: \"%s\" does not name %s", what, message, needle);
        cr_assert(!limit || strstr(message, limit), "%s: \"%s\" does not state the limit %s", what, message,
                  limit);
        cr_assert_lt(strlen(message), 1024u, "%s: a message of %zu bytes", what, strlen(message));
}

static void assert_bus_invalid_args(int r, sd_bus_error *e, const char *what, const char *needle,
                                    const char *limit) {
        cr_assert_lt(r, 0, "%s was accepted", what);
        cr_assert(sd_bus_error_has_name(e, INVALID_ARGS), "%s: error %s (\"%s\"), expected %s", what, e->name,
                  e->message, INVALID_ARGS);
        assert_message(what, e->message, needle, limit);
        sd_bus_error_free(e);
}

static void assert_error_value_invalid_args(const kactor_value *v, const char *what, const char *needle,
                                            const char *limit) {
        cr_assert(kactor_value_is_error(v), "%s: gave %s, not an error", what, harness_value_str(h, v));
        cr_assert_eq(kactor_value_error_code(v), KACTOR_ERROR_INVALID_ARGS, "%s: %s", what,
                     harness_value_str(h, v));
        assert_message(what, kactor_value_error_message(v), needle, limit);
}

static void assert_client_invalid_args(kactor_client *c, int r, const char *what, const char *needle,
                                       const char *limit) {
        cr_assert_eq(r, -EREMOTEIO, "%s: %s", what, r == 0 ? "accepted" : strerror(-r));
        cr_assert_eq(kactor_client_error(c), KACTOR_ERROR_INVALID_ARGS, "%s: %s \"%s\"", what,
                     kactor_error_name(kactor_client_error(c)), kactor_client_error_message(c));
        assert_message(what, kactor_client_error_message(c), needle, limit);
}

/* One option of a raw CREATE_ACTOR: type 'd' double, 'i' int64, 'u' uint64, 's' string (len bytes),
 * 'b' bool. */
typedef struct RawOption {
        const char *key;
        char type;
        double d;
        int64_t i;
        uint64_t u;
        const char *s;
        size_t len;
} RawOption;

/* Sends CREATE_ACTOR on a fresh connection and returns its REPLY (asserting there is one: a bad
 * value is an error for its request, not a broken stream). */
static RawFrame raw_create(const char *module, size_t module_len, const char *class_name, size_t class_len,
                           const RawOption *opt) {
        int64_t deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int fd = raw_connect_welcomed();

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint32(&pk, MSG_CREATE_ACTOR);
        msgpack_pack_uint64(&pk, 7);
        msgpack_pack_str_with_body(&pk, module, module_len);
        msgpack_pack_str_with_body(&pk, class_name, class_len);
        msgpack_pack_map(&pk, opt ? 1 : 0);
        if (opt) {
                msgpack_pack_str_with_body(&pk, opt->key, strlen(opt->key));
                switch (opt->type) {
                case 'd':
                        msgpack_pack_double(&pk, opt->d);
                        break;
                case 'i':
                        msgpack_pack_int64(&pk, opt->i);
                        break;
                case 'u':
                        msgpack_pack_uint64(&pk, opt->u);
                        break;
                case 's':
                        msgpack_pack_str_with_body(&pk, opt->s, opt->len);
                        break;
                case 'b':
                        msgpack_pack_true(&pk);
                        break;
                }
        }
        msgpack_pack_array(&pk, 0);
        raw_frame_sbuf(fd, &sb);
        msgpack_sbuffer_destroy(&sb);

        for (;;) {
                RawFrame f = {};
                int r = raw_read_frame(fd, &f, deadline);

                cr_assert_eq(r, 1, "CREATE_ACTOR of %.*s: %s", (int)MIN(class_len, (size_t)32), class_name,
                             r == 0 ? "the connection was closed" : "no answer");
                if (f.type == MSG_REPLY && f.id == 7) {
                        close(fd);
                        return f;
                }
        }
}

static void assert_raw_invalid_args(const RawFrame *f, const char *what, const char *needle, const char *limit) {
        cr_assert_eq(f->code, KACTOR_ERROR_INVALID_ARGS, "%s: code %llu \"%s\"", what,
                     (unsigned long long)f->code, f->message);
        assert_message(what, f->message, needle, limit);
}

/* What both transports must refuse, with the option's name and its limit in the message. */
static const struct {
        const char *what, *key;
        char bus_type; /* d u i t */
        double d;
        int64_t i;
        uint64_t u;
        const char *limit;
} bad_numbers[] = {
        { "NumCpus NaN", "NumCpus", 'd', .d = NAN, .limit = "1000000" },
        { "NumCpus -5", "NumCpus", 'd', .d = -5, .limit = "1000000" },
        { "NumCpus 1e300", "NumCpus", 'd', .d = 1e300, .limit = "1000000" },
        { "NumCpus inf", "NumCpus", 'd', .d = INFINITY, .limit = "1000000" },
        { "NumCpus -inf", "NumCpus", 'd', .d = -INFINITY, .limit = "1000000" },
        { "NumGpus 1025", "NumGpus", 'u', .u = 1025, .limit = "1024" },
        { "NumGpus 4e9", "NumGpus", 'u', .u = 4000000000u, .limit = "1024" },
        { "MaxRestarts -2", "MaxRestarts", 'i', .i = -2, .limit = "-1" },
        { "MaxRestarts INT32_MIN", "MaxRestarts", 'i', .i = INT32_MIN, .limit = "-1" },
        { "MemoryMax 1", "MemoryMax", 't', .u = 1, .limit = "1048576" },
        { "MemoryMax 2^64-1", "MemoryMax", 't', .u = UINT64_MAX, .limit = "1048576" },
        { "TasksMax 2^40", "TasksMax", 't', .u = UINT64_C(1) << 40, .limit = "4194304" },
        { "CheckpointInterval 2^32-1", "CheckpointInterval", 'u', .u = UINT32_MAX, .limit = "4294967294" },
};

Test(badinput, actor_numbers_out_of_range_are_invalid_args_over_dbus) {
        for (size_t k = 0; k < ELEMENTSOF(bad_numbers); k++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                const char *key = bad_numbers[k].key;
                int r;

                switch (bad_numbers[k].bus_type) {
                case 'd':
                        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter",
                                             0, 1, key, "d", bad_numbers[k].d);
                        break;
                case 'u':
                        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter",
                                             0, 1, key, "u", (uint32_t)bad_numbers[k].u);
                        break;
                case 'i':
                        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter",
                                             0, 1, key, "i", (int32_t)bad_numbers[k].i);
                        break;
                default:
                        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter",
                                             0, 1, key, "t", bad_numbers[k].u);
                        break;
                }
                assert_bus_invalid_args(r, &e, bad_numbers[k].what, key, bad_numbers[k].limit);
        }
        /* Nothing was made: only the good client's counter is there. */
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "Actors"), 1);
        assert_others_unaffected();
}

Test(badinput, actor_numbers_out_of_range_are_invalid_args_over_native) {
        for (size_t k = 0; k < ELEMENTSOF(bad_numbers); k++) {
                RawOption o = { .key = bad_numbers[k].key };
                RawFrame f;

                switch (bad_numbers[k].bus_type) {
                case 'd':
                        o.type = 'd';
                        o.d = bad_numbers[k].d;
                        break;
                case 'i':
                        o.type = 'i';
                        o.i = bad_numbers[k].i;
                        break;
                default:
                        o.type = 'u';
                        o.u = bad_numbers[k].u;
                        break;
                }
                f = raw_create("counter", 7, "Counter", 7, &o);
                assert_raw_invalid_args(&f, bad_numbers[k].what, bad_numbers[k].key, bad_numbers[k].limit);
        }
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "Actors"), 1);
        assert_others_unaffected();
}

Test(badinput, task_num_cpus_out_of_range_are_invalid_args) {
        static const double bad[] = { NAN, -5, 1e300, INFINITY };

        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                const char *what = harness_printf(h, "a task with NumCpus %g", bad[k]);
                struct kactor_task_opts opts = { .sz = sizeof(opts), .num_cpus = bad[k] };
                sd_bus_error e = SD_BUS_ERROR_NULL;
                kactor_value *args = harness_value("[1, 2]"), *v;
                kactor_ref ref;
                int r;

                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "SubmitTask", "ssava{sv}", "testmod", "add", 2, "x",
                                     (int64_t)1, "x", (int64_t)2, 1, "NumCpus", "d", bad[k]);
                assert_bus_invalid_args(r, &e, what, "NumCpus", "1000000");

                /* Natively a task is not answered: its result says why. */
                cr_assert_eq(kactor_submit(good, "testmod", "add", args, &opts, &ref), 0);
                kactor_value_free(args);
                v = harness_get(good, ref);
                assert_error_value_invalid_args(v, what, "NumCpus", "1000000");
                kactor_value_free(v);
        }
        assert_others_unaffected();
}

Test(badinput, overlong_strings_are_invalid_args_over_dbus) {
        const char *counter = harness_actor_path(h, good_counter);
        const size_t name_lens[] = { NAME_LIMIT + 1, HUGE_LEN }, module_lens[] = { MODULE_LIMIT + 1, HUGE_LEN };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        for (size_t k = 0; k < 2; k++) {
                const char *s = long_string(name_lens[k]), *mod = long_string(module_lens[k]);

                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", s, 0, 0);
                assert_bus_invalid_args(r, &e, "an overlong class", "Class", "255");
                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", mod, "Counter", 0, 0);
                assert_bus_invalid_args(r, &e, "an overlong module", "Module", "4095");
                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", 0, 1,
                                     "Name", "s", s);
                assert_bus_invalid_args(r, &e, "an overlong Name", "Name", "255");
                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "GetActor", "s", s);
                assert_bus_invalid_args(r, &e, "GetActor of an overlong name", "Name", "255");
                r = harness_bus_call(h, &e, NULL, counter, HARNESS_IFACE_ACTOR, "Call", "sav", s, 0);
                assert_bus_invalid_args(r, &e, "a call of an overlong method", "Method", "255");
                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "SubmitTask", "ssava{sv}", "testmod", s, 0, 0);
                assert_bus_invalid_args(r, &e, "a task of an overlong function", "Function", "255");
                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "SubmitTask", "ssava{sv}", mod, "add", 0, 0);
                assert_bus_invalid_args(r, &e, "a task of an overlong module", "Module", "4095");
        }
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "Actors"), 1);

        /* The limits are inclusive. */
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", 0, 1,
                             "Name", "s", long_string(NAME_LIMIT));
        cr_assert_geq(r, 0, "a Name of %u bytes: %s: %s", NAME_LIMIT, e.name, e.message);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "GetActor", "s", long_string(NAME_LIMIT));
        cr_assert_geq(r, 0, "GetActor of a name of %u bytes: %s: %s", NAME_LIMIT, e.name, e.message);
        assert_others_unaffected();
}

Test(badinput, overlong_strings_are_invalid_args_over_native) {
        const size_t name_lens[] = { NAME_LIMIT + 1, HUGE_LEN }, module_lens[] = { MODULE_LIMIT + 1, HUGE_LEN };

        for (size_t k = 0; k < 2; k++) {
                const char *s = long_string(name_lens[k]), *mod = long_string(module_lens[k]);
                RawOption name = { .key = "Name", .type = 's', .s = s, .len = name_lens[k] };
                kactor_value *v, *args;
                kactor_actor a;
                kactor_ref ref;
                RawFrame f;

                f = raw_create("counter", 7, s, name_lens[k], NULL);
                assert_raw_invalid_args(&f, "an overlong class", "Class", "255");
                f = raw_create(mod, module_lens[k], "Counter", 7, NULL);
                assert_raw_invalid_args(&f, "an overlong module", "Module", "4095");
                f = raw_create("counter", 7, "Counter", 7, &name);
                assert_raw_invalid_args(&f, "an overlong Name", "Name", "255");
                assert_client_invalid_args(good, kactor_get_actor(good, s, &a), "GetActor of an overlong name",
                                           "Name", "255");

                /* Calls and tasks are not answered: their results say why. */
                cr_assert_eq(kactor_call(good, good_counter, s, NULL, &ref), 0);
                v = harness_get(good, ref);
                assert_error_value_invalid_args(v, "a call of an overlong method", "Method", "255");
                kactor_value_free(v);
                args = harness_value("[1, 2]");
                cr_assert_eq(kactor_submit(good, "testmod", s, args, NULL, &ref), 0);
                v = harness_get(good, ref);
                assert_error_value_invalid_args(v, "a task of an overlong function", "Function", "255");
                kactor_value_free(v);
                cr_assert_eq(kactor_submit(good, mod, "add", args, NULL, &ref), 0);
                kactor_value_free(args);
                v = harness_get(good, ref);
                assert_error_value_invalid_args(v, "a task of an overlong module", "Module", "4095");
                kactor_value_free(v);
        }
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "Actors"), 1);
        assert_others_unaffected();
}

/* Names, classes and modules show on D-Bus, which takes only UTF-8: one that is not would break
 * GetManagedObjects for everyone. */
Test(badinput, strings_that_are_not_utf8_are_invalid_args_over_native) {
        RawOption name = { .key = "Name", .type = 's', .s = "bad\xff\xfe", .len = 5 };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        RawFrame f;
        int r;

        f = raw_create("counter", 7, "Counter", 7, &name);
        assert_raw_invalid_args(&f, "a Name that is not UTF-8", "Name", "UTF-8");
        f = raw_create("counter", 7, "Count\xc0\x80", 7, NULL);
        assert_raw_invalid_args(&f, "a class that is not UTF-8", "Class", "UTF-8");
        r = harness_bus_call(h, &e, NULL, MGR, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "");
        cr_assert_geq(r, 0, "GetManagedObjects: %s: %s", e.name, e.message);
        assert_others_unaffected();
}

/* One parser for both transports: the native socket takes TasksMax and User as D-Bus does. */
Test(badinput, both_transports_take_the_same_actor_options) {
        RawOption tasks_max = { .key = "TasksMax", .type = 'u', .u = 100 };
        RawOption user = { .key = "User", .type = 's', .s = "root", .len = 4 };
        RawOption node = { .key = "Node", .type = 's', .s = "", .len = 0 };
        RawFrame f;

        f = raw_create("counter", 7, "Counter", 7, &tasks_max);
        cr_assert_eq(f.code, 0, "TasksMax over the native socket: %s", f.message);
        f = raw_create("counter", 7, "Counter", 7, &user);
        cr_assert_eq(f.code, 0, "User over the native socket: %s", f.message);
        /* An empty Node is no Node, as over D-Bus. */
        f = raw_create("counter", 7, "Counter", 7, &node);
        cr_assert_eq(f.code, 0, "an empty Node over the native socket: %s", f.message);
        assert_others_unaffected();
}

/* A timeout too large to add to the clock waits forever: for a ready object, that is no wait. */
Test(badinput, endless_timeout_on_a_ready_object_answers_at_once) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        kactor_value *v = harness_value("42"), *got = NULL;
        const char *o;
        kactor_ref ref;
        bool ready = false;
        int64_t x = 0;
        int r;

        r = harness_bus_call(h, &e, &reply, MGR, IFACE, "Put", "v", "x", (int64_t)42);
        cr_assert_geq(r, 0, "Put: %s: %s", e.name, e.message);
        cr_assert_geq(sd_bus_message_read(reply, "o", &o), 0);
        o = harness_keep(h, strdup(o));
        reply = sd_bus_message_unref(reply);

        r = harness_bus_call(h, &e, &reply, MGR, IFACE, "Get", "aot", 1, o, UINT64_MAX);
        cr_assert_geq(r, 0, "Get with a timeout of 2^64-1: %s: %s", e.name, e.message);
        cr_assert_geq(sd_bus_message_read(reply, "av", 1, "x", &x), 0);
        cr_assert_eq(x, 42);
        reply = sd_bus_message_unref(reply);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Wait", "aout", 1, o, 1, UINT64_MAX);
        cr_assert_geq(r, 0, "Wait with a timeout of 2^64-1: %s: %s", e.name, e.message);

        cr_assert_eq(kactor_put(good, v, &ref), 0);
        kactor_value_free(v);
        r = kactor_get1(good, ref, UINT64_MAX, &got);
        cr_assert_eq(r, 0, "GET with a timeout of 2^64-1: %s: %s", strerror(-r), kactor_client_error_message(good));
        harness_assert_value(got, "42");
        kactor_value_free(got);
        r = kactor_wait(good, &ref, 1, 1, UINT64_MAX, &ready);
        cr_assert_eq(r, 1, "WAIT with a timeout of 2^64-1: %s: %s", strerror(-r), kactor_client_error_message(good));
        cr_assert(ready);
        assert_others_unaffected();
}

/* Constructor arguments must be ready objects; one that is not is refused, and the message that
 * says so is built from the one that said why (this path once freed it before formatting it). */
Test(badinput, constructor_argument_that_names_no_ready_object_is_refused) {
        struct kactor_actor_opts named = { .sz = sizeof(named), .name = "napper" };
        kactor_actor napper = harness_create(h, good, "testmod", "Sleeper", NULL, &named);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        kactor_value *args, *v;
        const char *pending;
        kactor_actor a;
        kactor_ref ref;
        int r;

        /* Natively: an object that was never made, and one that was released. */
        args = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_object((kactor_id){ 1, 12345 })), 0);
        r = kactor_create_actor(good, "counter", "Counter", args, NULL, &a);
        kactor_value_free(args);
        assert_client_invalid_args(good, r, "an unknown object as a constructor argument", "must be ready",
                                   "argument 0");

        v = harness_value("[1]");
        cr_assert_eq(kactor_put(good, v, &ref), 0);
        kactor_value_free(v);
        cr_assert_eq(kactor_ref_release(good, &ref, 1), 0);
        args = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_object(ref.id)), 0);
        r = kactor_create_actor(good, "counter", "Counter", args, NULL, &a);
        kactor_value_free(args);
        assert_client_invalid_args(good, r, "a released object as a constructor argument", "must be ready",
                                   "argument 0");

        /* Over D-Bus: an object still pending (a call that sleeps). */
        r = harness_bus_call(h, &e, &reply, harness_actor_path(h, napper), HARNESS_IFACE_ACTOR, "Call", "sav",
                             "sleep", 1, "x", (int64_t)30000);
        cr_assert_geq(r, 0, "Call: %s: %s", e.name, e.message);
        cr_assert_geq(sd_bus_message_read(reply, "o", &pending), 0);
        pending = harness_keep(h, strdup(pending));
        reply = sd_bus_message_unref(reply);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", 1, "o",
                             pending, 0);
        assert_bus_invalid_args(r, &e, "a pending object as a constructor argument", "must be ready",
                                "argument 0");
        cr_assert_eq(harness_property_uint(h, MGR, IFACE, "Actors"), 2);
        assert_others_unaffected();
}

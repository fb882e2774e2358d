/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <criterion/criterion.h>
#include <math.h>
#include <sys/socket.h>

#include "bus-value.h"
#include "macro.h"

/*
 * Messages are built on a bus that was started on one end of a socketpair: sd-bus creates messages only
 * for a bus that is open, and no bus daemon is needed for that. A message is sealed and rewound to be
 * read back, as if it had been received.
 */
static sd_bus *bus;
static int peer = -1;
static uint64_t cookie;

static void setup(void) {
        int sv[2];

        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_geq(sd_bus_new(&bus), 0);
        cr_assert_geq(sd_bus_set_fd(bus, sv[0], sv[0]), 0);
        cr_assert_geq(sd_bus_start(bus), 0);
        peer = sv[1];
}

static void teardown(void) {
        bus = sd_bus_close_unref(bus);
        peer = safe_close(peer);
}

TestSuite(bus_value, .init = setup, .fini = teardown);

static void value_freep(kactor_value **v) {
        kactor_value_free(*v);
}
#define _cleanup_value_ _cleanup_(value_freep)

static sd_bus_message *new_message(void) {
        sd_bus_message *m = NULL;

        cr_assert_geq(sd_bus_message_new_method_call(bus, &m, "io.kactor.Test", "/io/kactor/Test",
                                                     "io.kactor.Test", "Method"),
                      0);
        return m;
}

static void seal(sd_bus_message *m) {
        cr_assert_geq(sd_bus_message_seal(m, ++cookie, 0), 0);
        cr_assert_geq(sd_bus_message_rewind(m, true), 0);
}

/* Appends v (taking it), reads it back, and checks that it is the same and that it filled the message. */
static void expect_round_trip(kactor_value *v) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();
        _cleanup_value_ kactor_value *owned = v, *back = NULL;
        _cleanup_free_ char *json = NULL;

        cr_assert_not_null(owned);
        cr_assert_geq(bus_message_append_value(m, owned), 0);
        cr_expect_str_eq(sd_bus_message_get_signature(m, true), "v");
        seal(m);
        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &back), 0);
        json = kactor_value_to_json(owned);
        cr_expect(kactor_value_equal(owned, back), "%s survives D-Bus", json);
        cr_expect_gt(sd_bus_message_at_end(m, true), 0);
}

/* Reads the next value of m, which must be an int of value x. */
static void expect_int(sd_bus_message *m, int64_t x) {
        _cleanup_value_ kactor_value *v = NULL;

        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &v), 0);
        cr_expect_eq(kactor_value_type(v), KACTOR_TYPE_INT);
        cr_expect_eq(kactor_value_get_int(v), x);
}

/* Reads the next value of m and checks its JSON rendering. */
static void expect_json(sd_bus_message *m, const char *json) {
        _cleanup_value_ kactor_value *v = NULL;
        _cleanup_free_ char *s = NULL;

        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &v), 0);
        s = kactor_value_to_json(v);
        cr_expect_str_eq(s, json);
}

static void expect_read_error(sd_bus_message *m, int error) {
        kactor_value *v = NULL;

        cr_expect_eq(bus_message_read_value(m, NULL, NULL, &v), error);
        cr_expect_null(v);
}

/* Reads the value after the arguments of signature `skip` (from the start), which must fail with error. A
 * failed read leaves the message somewhere inside that value, hence the rewind. */
static void expect_read_error_after(sd_bus_message *m, const char *skip, int error) {
        cr_assert_geq(sd_bus_message_rewind(m, true), 0);
        if (skip)
                cr_assert_geq(sd_bus_message_skip(m, skip), 0);
        expect_read_error(m, error);
}

static kactor_value *make_nested_lists(unsigned levels, kactor_value *innermost) {
        kactor_value *v = kactor_value_new_list();

        cr_assert_not_null(v);
        if (innermost)
                cr_assert_eq(kactor_value_list_append(v, innermost), 0);
        for (unsigned i = 1; i < levels; i++) {
                kactor_value *outer = kactor_value_new_list();

                cr_assert_not_null(outer);
                cr_assert_eq(kactor_value_list_append(outer, v), 0);
                v = outer;
        }
        return v;
}

Test(bus_value, round_trips_every_type) {
        kactor_value *l = kactor_value_new_list(), *m = kactor_value_new_map(),
                     *inner = kactor_value_new_map();

        expect_round_trip(kactor_value_new_nil());
        expect_round_trip(kactor_value_new_bool(true));
        expect_round_trip(kactor_value_new_bool(false));
        expect_round_trip(kactor_value_new_int(0));
        expect_round_trip(kactor_value_new_int(INT64_MIN));
        expect_round_trip(kactor_value_new_int(INT64_MAX));
        expect_round_trip(kactor_value_new_double(-1.25));
        expect_round_trip(kactor_value_new_double(INFINITY));
        expect_round_trip(kactor_value_new_string(""));
        expect_round_trip(kactor_value_new_string("caf\xc3\xa9"));
        expect_round_trip(kactor_value_new_bytes("", 0));
        expect_round_trip(kactor_value_new_bytes("\0\1\0\xff", 4));
        expect_round_trip(kactor_value_new_list());
        expect_round_trip(kactor_value_new_map());
        expect_round_trip(kactor_value_new_object((kactor_id){1, 2}));
        expect_round_trip(kactor_value_new_actor((kactor_id){UINT64_MAX, 0xabc}));

        cr_assert(l && m && inner);
        cr_assert_eq(kactor_value_map_set(inner, "bytes", kactor_value_new_bytes("\0", 1)), 0);
        cr_assert_eq(kactor_value_map_set(m, "n", kactor_value_new_int(1)), 0);
        cr_assert_eq(kactor_value_map_set(m, "inner", inner), 0);
        cr_assert_eq(kactor_value_map_set(m, "actor", kactor_value_new_actor((kactor_id){5, 6})), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_nil()), 0);
        cr_assert_eq(kactor_value_list_append(l, m), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_list()), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_string("s")), 0);
        expect_round_trip(l);
}

Test(bus_value, appends_with_the_documented_signatures) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();
        _cleanup_value_ kactor_value *l = kactor_value_new_list(), *map = kactor_value_new_map(),
                                     *a = kactor_value_new_actor((kactor_id){0, 0x10}),
                                     *o = kactor_value_new_object((kactor_id){0, 0x20}),
                                     *n = kactor_value_new_nil(), *b = kactor_value_new_bytes("x", 1);
        const char *contents, *path, *sig;
        char type;

        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_int(1)), 0);
        cr_assert_eq(kactor_value_map_set(map, "k", kactor_value_new_bool(true)), 0);
        cr_assert_geq(bus_message_append_value(m, l), 0);
        cr_assert_geq(bus_message_append_value(m, map), 0);
        cr_assert_geq(bus_message_append_value(m, a), 0);
        cr_assert_geq(bus_message_append_value(m, o), 0);
        cr_assert_geq(bus_message_append_value(m, n), 0);
        cr_assert_geq(bus_message_append_value(m, b), 0);
        seal(m);

        cr_assert_gt(sd_bus_message_peek_type(m, &type, &contents), 0);
        cr_expect(type == 'v' && streq(contents, "av"));
        cr_assert_geq(sd_bus_message_skip(m, "v"), 0);
        cr_assert_gt(sd_bus_message_peek_type(m, &type, &contents), 0);
        cr_expect(type == 'v' && streq(contents, "a{sv}"));
        cr_assert_geq(sd_bus_message_skip(m, "v"), 0);
        cr_assert_geq(sd_bus_message_read(m, "v", "o", &path), 0);
        cr_expect_str_eq(path, "/io/kactor/NodeManager1/actor/00000000000000000000000000000010");
        cr_assert_geq(sd_bus_message_read(m, "v", "o", &path), 0);
        cr_expect_str_eq(path, "/io/kactor/NodeManager1/object/00000000000000000000000000000020");
        cr_assert_geq(sd_bus_message_read(m, "v", "g", &sig), 0);
        cr_expect_str_eq(sig, "");
        cr_assert_gt(sd_bus_message_peek_type(m, &type, &contents), 0);
        cr_expect(type == 'v' && streq(contents, "ay"));
}

Test(bus_value, reads_every_basic_type) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();
        _cleanup_value_ kactor_value *b = NULL, *d = NULL, *s = NULL;

        cr_assert_geq(sd_bus_message_append(m, "ynqiuxtbds", (uint8_t)200, (int16_t)-300, (uint16_t)60000,
                                            (int32_t)-70000, (uint32_t)4000000000u, (int64_t)INT64_MIN,
                                            (uint64_t)INT64_MAX, 1, 2.5, "str"),
                      0);
        seal(m);

        expect_int(m, 200);
        expect_int(m, -300);
        expect_int(m, 60000);
        expect_int(m, -70000);
        expect_int(m, 4000000000);
        expect_int(m, INT64_MIN);
        expect_int(m, INT64_MAX);
        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &b), 0);
        cr_expect(kactor_value_type(b) == KACTOR_TYPE_BOOL && kactor_value_get_bool(b));
        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &d), 0);
        cr_expect(kactor_value_type(d) == KACTOR_TYPE_DOUBLE && kactor_value_get_double(d) == 2.5);
        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &s), 0);
        cr_expect_str_eq(kactor_value_get_string(s, NULL), "str");
        expect_read_error(m, -ENXIO); /* nothing left */
}

Test(bus_value, reads_arrays_dicts_structs_and_variants) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();

        cr_assert_geq(sd_bus_message_append(m, "ai", 3, 1, 2, 3), 0);
        cr_assert_geq(sd_bus_message_append(m, "as", 2, "a", "b"), 0);
        cr_assert_geq(sd_bus_message_append(m, "aai", 2, 1, 7, 0), 0);
        cr_assert_geq(sd_bus_message_append(m, "a{si}", 2, "x", 1, "y", 2), 0);
        cr_assert_geq(sd_bus_message_append(m, "a{sv}", 0), 0);
        cr_assert_geq(sd_bus_message_append(m, "a{sas}", 1, "k", 1, "v"), 0);
        cr_assert_geq(sd_bus_message_append(m, "(isb)", 4, "four", 0), 0);
        cr_assert_geq(sd_bus_message_append(m, "v", "v", "u", 9), 0);
        cr_assert_geq(sd_bus_message_append(m, "ay", 0), 0);
        cr_assert_geq(sd_bus_message_append(m, "ai", 0), 0);
        cr_assert_geq(sd_bus_message_append(m, "g", ""), 0);
        seal(m);

        expect_json(m, "[1, 2, 3]");
        expect_json(m, "[\"a\", \"b\"]");
        expect_json(m, "[[7], []]");
        expect_json(m, "{\"x\": 1, \"y\": 2}");
        expect_json(m, "{}");
        expect_json(m, "{\"k\": [\"v\"]}");
        expect_json(m, "[4, \"four\", false]");
        expect_json(m, "9");
        expect_json(m, "{\"bytes\": \"\"}");
        expect_json(m, "[]");
        expect_json(m, "null");
}

Test(bus_value, rejects_uint64_above_int64_max) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();

        cr_assert_geq(sd_bus_message_append(m, "tv", (uint64_t)INT64_MAX + 1, "t", UINT64_MAX), 0);
        seal(m);
        expect_read_error_after(m, NULL, -ERANGE);
        expect_read_error_after(m, "t", -ERANGE);
}

Test(bus_value, rejects_file_descriptors_and_signatures) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();

        cr_assert_geq(sd_bus_message_append(m, "hgv", peer, "i", "h", peer), 0);
        seal(m);
        expect_read_error_after(m, NULL, -EINVAL);
        expect_read_error_after(m, "h", -EINVAL);  /* a signature other than "" is not nil */
        expect_read_error_after(m, "hg", -EINVAL); /* fds also inside a variant */
}

Test(bus_value, rejects_dicts_without_string_keys) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();

        cr_assert_geq(sd_bus_message_append(m, "a{iv}", 1, 1, "s", "x"), 0);
        cr_assert_geq(sd_bus_message_append(m, "a{os}", 1, "/a", "x"), 0);
        seal(m);
        expect_read_error_after(m, NULL, -EINVAL);
        expect_read_error_after(m, "a{iv}", -EINVAL);
}

Test(bus_value, rejects_duplicate_dict_keys) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();

        cr_assert_geq(sd_bus_message_append(m, "a{si}", 2, "a", 1, "a", 2), 0);
        /* A large dict, checked by sorting. */
        cr_assert_geq(sd_bus_message_open_container(m, 'a', "{si}"), 0);
        for (int i = 0; i < 30; i++) {
                char key[16];

                snprintf(key, sizeof(key), "key%d", i == 29 ? 7 : i);
                cr_assert_geq(sd_bus_message_append(m, "{si}", key, i), 0);
        }
        cr_assert_geq(sd_bus_message_close_container(m), 0);
        seal(m);
        expect_read_error_after(m, NULL, -EINVAL);
        expect_read_error_after(m, "a{si}", -EINVAL);
}

static int resolve_test(const char *path, kactor_type *ret_type, kactor_id *ret_id, void *userdata) {
        int *calls = userdata;

        (*calls)++;
        if (streq(path, "/custom/actor")) {
                *ret_type = KACTOR_TYPE_ACTOR;
                *ret_id = (kactor_id){0, 77};
                return 0;
        }
        if (streq(path, "/custom/bogus")) {
                *ret_type = KACTOR_TYPE_INT;
                *ret_id = (kactor_id){};
                return 0;
        }
        return -ESRCH;
}

Test(bus_value, object_paths_become_handles) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();
        _cleanup_value_ kactor_value *a = NULL, *o = NULL;

        cr_assert_geq(sd_bus_message_append(
                              m, "ooo", "/io/kactor/NodeManager1/actor/000000000000000a000000000000000B",
                              "/io/kactor/NodeManager1/object/00000000000000000000000000000001",
                              "/io/kactor/NodeManager1/somethingelse"),
                      0);
        seal(m);
        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &a), 0);
        cr_expect_eq(kactor_value_type(a), KACTOR_TYPE_ACTOR);
        cr_expect(kactor_id_equal(kactor_value_get_id(a), (kactor_id){10, 11}));
        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &o), 0);
        cr_expect_eq(kactor_value_type(o), KACTOR_TYPE_OBJECT);
        cr_expect(kactor_id_equal(kactor_value_get_id(o), (kactor_id){0, 1}));
        expect_read_error(m, -ENOENT); /* without a resolver, a path of neither form names nothing */
}

Test(bus_value, resolver_decides_what_a_path_names) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();
        _cleanup_value_ kactor_value *a = NULL;
        kactor_value *v = NULL;
        int calls = 0;

        cr_assert_geq(sd_bus_message_append(m, "ooo", "/custom/actor", "/custom/unknown", "/custom/bogus"),
                      0);
        seal(m);
        cr_assert_eq(bus_message_read_value(m, resolve_test, &calls, &a), 0);
        cr_expect_eq(kactor_value_type(a), KACTOR_TYPE_ACTOR);
        cr_expect_eq(kactor_value_get_id(a).lo, 77);
        cr_expect_eq(bus_message_read_value(m, resolve_test, &calls, &v), -ESRCH,
                     "the resolver's error passes");
        cr_expect_eq(bus_message_read_value(m, resolve_test, &calls, &v), -EINVAL,
                     "only actors and objects");
        cr_expect_null(v);
        cr_expect_eq(calls, 3);
}

Test(bus_value, read_value_list_wants_av) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();
        _cleanup_value_ kactor_value *l = NULL;
        _cleanup_free_ char *json = NULL;
        kactor_value *v = NULL;

        cr_assert_geq(sd_bus_message_append(m, "avas", 3, "i", 1, "s", "two", "o",
                                            "/io/kactor/NodeManager1/actor/00000000000000000000000000000003",
                                            1, "x"),
                      0);
        seal(m);
        cr_assert_eq(bus_message_read_value_list(m, NULL, NULL, &l), 0);
        json = kactor_value_to_json(l);
        cr_expect_str_eq(json, "[1, \"two\", {\"actor\": \"00000000000000000000000000000003\"}]");
        cr_expect_eq(bus_message_read_value_list(m, NULL, NULL, &v), -EINVAL);
        cr_assert_geq(sd_bus_message_skip(m, "as"), 0);
        cr_expect_eq(bus_message_read_value_list(m, NULL, NULL, &v), -ENXIO);
        cr_expect_null(v);
}

Test(bus_value, refuses_errors_and_strings_dbus_cannot_carry) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();
        _cleanup_value_ kactor_value *e = kactor_value_new_error(KACTOR_ERROR_TASK_FAILED, "x"),
                                     *l = kactor_value_new_list(),
                                     *nul = kactor_value_new_stringn("a\0b", 3),
                                     *ok = kactor_value_new_int(5), *back = NULL;

        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_error(KACTOR_ERROR_TIMEOUT, "nested")), 0);
        cr_expect_eq(bus_message_append_value(m, e), -EINVAL);
        cr_expect_eq(bus_message_append_value(m, l), -EINVAL);
        cr_expect_eq(bus_message_append_value(m, nul), -EINVAL);

        /* What was refused left nothing behind: the message is still good. */
        cr_assert_geq(bus_message_append_value(m, ok), 0);
        cr_expect_str_eq(sd_bus_message_get_signature(m, true), "v");
        seal(m);
        cr_assert_eq(bus_message_read_value(m, NULL, NULL, &back), 0);
        cr_expect(kactor_value_equal(back, ok));
}

Test(bus_value, nesting_is_limited_to_64_containers) {
        _cleanup_value_ kactor_value *deep_int = make_nested_lists(32, kactor_value_new_int(1)),
                                     *too_deep = make_nested_lists(33, NULL);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();

        /* Each list takes two levels ("v" and "a"): 32 empty nested lists take 64. */
        expect_round_trip(make_nested_lists(32, NULL));
        expect_round_trip(make_nested_lists(31, kactor_value_new_int(1)));
        cr_expect_eq(bus_message_append_value(m, deep_int), -EINVAL);
        cr_expect_eq(bus_message_append_value(m, too_deep), -EINVAL);
}

Test(bus_value, rejects_messages_nested_too_deeply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = new_message();

        /* Built by hand, past what bus_message_append_value() would make: 33 levels of "v" + "av". */
        for (int i = 0; i < 33; i++) {
                cr_assert_geq(sd_bus_message_open_container(m, 'v', "av"), 0);
                cr_assert_geq(sd_bus_message_open_container(m, 'a', "v"), 0);
        }
        for (int i = 0; i < 66; i++)
                cr_assert_geq(sd_bus_message_close_container(m), 0);
        seal(m);
        expect_read_error(m, -EINVAL);
}

Test(bus_value, paths_for_ids_parse_back) {
        kactor_id id = {0x0123456789abcdefULL, 0xfedcba9876543210ULL}, back;
        _cleanup_free_ char *a = bus_actor_path(id), *o = bus_object_path(id);
        kactor_type t;

        cr_assert(a && o);
        cr_expect_str_eq(a, "/io/kactor/NodeManager1/actor/0123456789abcdeffedcba9876543210");
        cr_expect_str_eq(o, "/io/kactor/NodeManager1/object/0123456789abcdeffedcba9876543210");
        cr_assert_eq(bus_path_parse(a, &t, &back), 0);
        cr_expect(t == KACTOR_TYPE_ACTOR && kactor_id_equal(id, back));
        cr_assert_eq(bus_path_parse(o, &t, &back), 0);
        cr_expect(t == KACTOR_TYPE_OBJECT && kactor_id_equal(id, back));
}

Test(bus_value, path_parse_rejects_other_paths) {
        static const char *const bad[] = {
                "/",
                "/io/kactor/NodeManager1",
                "/io/kactor/NodeManager1/actor",
                "/io/kactor/NodeManager1/actor/",
                "/io/kactor/NodeManager1/actor/0123",
                "/io/kactor/NodeManager1/actor/0123456789abcdeffedcba9876543210/x",
                "/io/kactor/NodeManager1/actor/0123456789abcdeffedcba987654321g",
                "/io/kactor/NodeManager1/actors/0123456789abcdeffedcba9876543210",
                "/io/kactor/NodeManager1/task/0123456789abcdeffedcba9876543210",
                "/other/actor/0123456789abcdeffedcba9876543210",
        };
        kactor_type t = KACTOR_TYPE_NIL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_expect_eq(bus_path_parse(bad[i], &t, NULL), -EINVAL, "%s is refused", bad[i]);
        cr_expect_eq(bus_path_parse(NULL, &t, NULL), -EINVAL);
        cr_expect_eq(t, KACTOR_TYPE_NIL);
}

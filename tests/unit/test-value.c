/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "kactor/value.h"
#include "macro.h"

static void value_freep(kactor_value **v) {
        kactor_value_free(*v);
}
#define _cleanup_value_ _cleanup_(value_freep)

static void expect_json(const kactor_value *v, const char *expected) {
        _cleanup_free_ char *s = kactor_value_to_json(v);

        cr_assert_not_null(s);
        cr_expect_str_eq(s, expected);
}

static void expect_json_of(kactor_value *v, const char *expected) {
        _cleanup_value_ kactor_value *owned = v;

        cr_assert_not_null(owned);
        expect_json(owned, expected);
}

Test(value, scalars_keep_type_and_contents) {
        _cleanup_value_ kactor_value *n = kactor_value_new_nil(), *b = kactor_value_new_bool(true),
                                     *i = kactor_value_new_int(INT64_MIN), *d = kactor_value_new_double(2.5);

        cr_assert(n && b && i && d);
        cr_expect_eq(kactor_value_type(n), KACTOR_TYPE_NIL);
        cr_expect_eq(kactor_value_type(b), KACTOR_TYPE_BOOL);
        cr_expect(kactor_value_get_bool(b));
        cr_expect_eq(kactor_value_type(i), KACTOR_TYPE_INT);
        cr_expect_eq(kactor_value_get_int(i), INT64_MIN);
        cr_expect_eq(kactor_value_type(d), KACTOR_TYPE_DOUBLE);
        cr_expect_eq(kactor_value_get_double(d), 2.5);
}

Test(value, strings_and_bytes_keep_embedded_nuls) {
        _cleanup_value_ kactor_value *s = kactor_value_new_stringn("a\0b", 3),
                                     *b = kactor_value_new_bytes("\0\1\0", 3),
                                     *e = kactor_value_new_bytes(NULL, 0),
                                     *c = kactor_value_new_string("hello");
        const char *p;
        size_t n = 0;

        cr_assert(s && b && e && c);
        p = kactor_value_get_string(s, &n);
        cr_expect_eq(n, 3);
        cr_expect(memcmp(p, "a\0b", 4) == 0, "string is stored NUL-terminated with its length");
        p = kactor_value_get_bytes(b, &n);
        cr_expect_eq(n, 3);
        cr_expect(memcmp(p, "\0\1\0", 3) == 0);
        cr_expect_not_null(kactor_value_get_bytes(e, &n), "empty bytes still give a pointer");
        cr_expect_eq(n, 0);
        cr_expect_str_eq(kactor_value_get_string(c, NULL), "hello");
}

Test(value, getters_of_another_type_return_zero_and_leave_ret_len) {
        _cleanup_value_ kactor_value *i = kactor_value_new_int(7), *s = kactor_value_new_string("x");
        size_t n = 42;
        int64_t x = 5;
        double d = 5;

        cr_assert(i && s);
        cr_expect_null(kactor_value_get_string(i, &n));
        cr_expect_null(kactor_value_get_bytes(s, &n));
        cr_expect_eq(n, 42);
        cr_expect_not(kactor_value_get_bool(i));
        cr_expect_eq(kactor_value_get_int(s), 0);
        cr_expect_eq(kactor_value_get_double(i), 0.0);
        cr_expect(kactor_id_is_null(kactor_value_get_id(i)));
        cr_expect_eq(kactor_value_list_size(i), 0);
        cr_expect_eq(kactor_value_map_size(i), 0);
        cr_expect_null(kactor_value_list_get(i, 0));
        cr_expect_null(kactor_value_map_get(i, "a"));
        cr_expect_not(kactor_value_is_error(i));
        cr_expect_eq(kactor_value_error_code(i), KACTOR_OK);
        cr_expect_null(kactor_value_error_message(i));
        cr_expect_eq(kactor_value_as_int(s, &x), -EINVAL);
        cr_expect_eq(x, 5);
        cr_expect_eq(kactor_value_as_double(s, &d), -EINVAL);
        cr_expect_eq(d, 5);
        cr_expect_eq(kactor_value_type(NULL), _KACTOR_TYPE_MAX);
}

Test(value, as_number_converts_ints_to_doubles_only) {
        _cleanup_value_ kactor_value *i = kactor_value_new_int(-3), *d = kactor_value_new_double(0.25);
        int64_t x;
        double y;

        cr_assert(i && d);
        cr_expect_eq(kactor_value_as_int(i, &x), 0);
        cr_expect_eq(x, -3);
        cr_expect_eq(kactor_value_as_double(i, &y), 0);
        cr_expect_eq(y, -3.0);
        cr_expect_eq(kactor_value_as_double(d, &y), 0);
        cr_expect_eq(y, 0.25);
        cr_expect_eq(kactor_value_as_int(d, &x), -EINVAL);
}

Test(value, list_appends_in_order) {
        _cleanup_value_ kactor_value *l = kactor_value_new_list();

        cr_assert_not_null(l);
        for (int64_t i = 0; i < 100; i++)
                cr_assert_eq(kactor_value_list_append(l, kactor_value_new_int(i)), 0);
        cr_expect_eq(kactor_value_list_size(l), 100);
        for (size_t i = 0; i < 100; i++)
                cr_expect_eq(kactor_value_get_int(kactor_value_list_get(l, i)), (int64_t)i);
        cr_expect_null(kactor_value_list_get(l, 100));
}

Test(value, append_takes_ownership_also_on_failure) {
        _cleanup_value_ kactor_value *notlist = kactor_value_new_int(1), *notmap = kactor_value_new_int(1);

        cr_assert(notlist && notmap);
        /* The item is freed on failure: the leak checker of the sanitized build would see it otherwise. */
        cr_expect_eq(kactor_value_list_append(notlist, kactor_value_new_string("lost")), -EINVAL);
        cr_expect_eq(kactor_value_map_set(notmap, "k", kactor_value_new_string("lost")), -EINVAL);
        cr_expect_eq(kactor_value_list_append(notlist, NULL), -ENOMEM,
                     "a failed constructor is out of memory");
}

Test(value, refuses_to_contain_itself) {
        _cleanup_value_ kactor_value *l = kactor_value_new_list(), *m = kactor_value_new_map();

        cr_assert(l && m);
        cr_expect_eq(kactor_value_list_append(l, l), -EINVAL);
        cr_expect_eq(kactor_value_map_set(m, "self", m), -EINVAL);
        /* ...and both are still there to be used and freed. */
        cr_expect_eq(kactor_value_list_append(l, kactor_value_new_int(1)), 0);
        cr_expect_eq(kactor_value_map_set(m, "k", kactor_value_new_int(1)), 0);
}

Test(value, map_keeps_insertion_order_and_set_replaces) {
        _cleanup_value_ kactor_value *m = kactor_value_new_map();

        cr_assert_not_null(m);
        cr_assert_eq(kactor_value_map_set(m, "zeta", kactor_value_new_int(1)), 0);
        cr_assert_eq(kactor_value_map_set(m, "alpha", kactor_value_new_int(2)), 0);
        cr_assert_eq(kactor_value_map_set(m, "mid", kactor_value_new_int(3)), 0);
        cr_assert_eq(kactor_value_map_set(m, "alpha", kactor_value_new_string("replaced")), 0);

        cr_expect_eq(kactor_value_map_size(m), 3);
        cr_expect_str_eq(kactor_value_map_key(m, 0), "zeta");
        cr_expect_str_eq(kactor_value_map_key(m, 1), "alpha");
        cr_expect_str_eq(kactor_value_map_key(m, 2), "mid");
        cr_expect_str_eq(kactor_value_get_string(kactor_value_map_value(m, 1), NULL), "replaced");
        cr_expect_str_eq(kactor_value_get_string(kactor_value_map_get(m, "alpha"), NULL), "replaced");
        cr_expect_eq(kactor_value_get_int(kactor_value_map_get(m, "mid")), 3);
        cr_expect_null(kactor_value_map_get(m, "missing"));
        cr_expect_null(kactor_value_map_key(m, 3));
}

Test(value, ids_and_errors) {
        kactor_id id = {.hi = 0x0123456789abcdefULL, .lo = 42};
        _cleanup_value_ kactor_value *o = kactor_value_new_object(id), *a = kactor_value_new_actor(id),
                                     *e = kactor_value_new_error(KACTOR_ERROR_TIMEOUT, "too slow"),
                                     *e0 = kactor_value_new_error(KACTOR_ERROR_TASK_FAILED, NULL);

        cr_assert(o && a && e && e0);
        cr_expect_eq(kactor_value_type(o), KACTOR_TYPE_OBJECT);
        cr_expect_eq(kactor_value_type(a), KACTOR_TYPE_ACTOR);
        cr_expect(kactor_id_equal(kactor_value_get_id(o), id));
        cr_expect(kactor_id_equal(kactor_value_get_id(a), id));
        cr_expect(kactor_value_is_error(e));
        cr_expect_eq(kactor_value_error_code(e), KACTOR_ERROR_TIMEOUT);
        cr_expect_str_eq(kactor_value_error_message(e), "too slow");
        cr_expect_str_eq(kactor_value_error_message(e0), "");
}

Test(value, equal_compares_type_and_contents) {
        kactor_id id = {1, 2}, id2 = {1, 3};
        _cleanup_value_ kactor_value *i1 = kactor_value_new_int(1), *i1b = kactor_value_new_int(1),
                                     *d1 = kactor_value_new_double(1.0),
                                     *nan1 = kactor_value_new_double(NAN),
                                     *nan2 = kactor_value_new_double(NAN),
                                     *s1 = kactor_value_new_stringn("a\0b", 3),
                                     *s2 = kactor_value_new_stringn("a\0c", 3),
                                     *b1 = kactor_value_new_bytes("a\0b", 3),
                                     *o1 = kactor_value_new_object(id), *a1 = kactor_value_new_actor(id),
                                     *o2 = kactor_value_new_object(id2), *l0 = kactor_value_new_list(),
                                     *n0 = kactor_value_new_nil(), *m0 = kactor_value_new_map();

        cr_expect(kactor_value_equal(i1, i1b));
        cr_expect_not(kactor_value_equal(i1, d1), "int 1 and double 1.0 differ in type");
        cr_expect(kactor_value_equal(nan1, nan2), "NaN equals NaN, so that a value equals its copy");
        cr_expect_not(kactor_value_equal(s1, s2), "bytes after an embedded NUL count");
        cr_expect_not(kactor_value_equal(s1, b1));
        cr_expect_not(kactor_value_equal(o1, a1));
        cr_expect_not(kactor_value_equal(o1, o2));
        cr_expect_not(kactor_value_equal(l0, n0), "an empty list is not nil");
        cr_expect_not(kactor_value_equal(l0, m0));
        cr_expect_not(kactor_value_equal(i1, NULL));
        cr_expect(kactor_value_equal(NULL, NULL));
}

Test(value, maps_are_equal_regardless_of_insertion_order) {
        _cleanup_value_ kactor_value *a = kactor_value_new_map(), *b = kactor_value_new_map();

        cr_assert(a && b);
        cr_assert_eq(kactor_value_map_set(a, "x", kactor_value_new_int(1)), 0);
        cr_assert_eq(kactor_value_map_set(a, "y", kactor_value_new_int(2)), 0);
        cr_assert_eq(kactor_value_map_set(b, "y", kactor_value_new_int(2)), 0);
        cr_assert_eq(kactor_value_map_set(b, "x", kactor_value_new_int(1)), 0);
        cr_expect(kactor_value_equal(a, b));
        cr_assert_eq(kactor_value_map_set(b, "x", kactor_value_new_int(3)), 0);
        cr_expect_not(kactor_value_equal(a, b));
}

static kactor_value *make_tree(void) {
        kactor_value *root = kactor_value_new_list(), *m = kactor_value_new_map(),
                     *inner = kactor_value_new_list();

        cr_assert(root && m && inner);
        cr_assert_eq(kactor_value_list_append(inner, kactor_value_new_bytes("\0\xff", 2)), 0);
        cr_assert_eq(kactor_value_list_append(inner, kactor_value_new_double(-0.5)), 0);
        cr_assert_eq(kactor_value_map_set(m, "inner", inner), 0);
        cr_assert_eq(kactor_value_map_set(m, "actor", kactor_value_new_actor((kactor_id){7, 8})), 0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_int(1)), 0);
        cr_assert_eq(kactor_value_list_append(root, m), 0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_error(KACTOR_ERROR_ACTOR_DIED, "gone")),
                     0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_nil()), 0);
        return root;
}

Test(value, copy_is_deep_and_equal) {
        _cleanup_value_ kactor_value *t = make_tree(), *c = NULL;
        kactor_value *m;

        c = kactor_value_copy(t);
        cr_assert_not_null(c);
        cr_expect(kactor_value_equal(t, c));
        cr_expect_neq(kactor_value_list_get(c, 1), kactor_value_list_get(t, 1), "nested values are copies");

        /* Changing the copy leaves the original alone. */
        m = (kactor_value *)kactor_value_list_get(c, 1);
        cr_assert_eq(kactor_value_map_set(m, "inner", kactor_value_new_nil()), 0);
        cr_expect_not(kactor_value_equal(t, c));
        cr_expect_eq(kactor_value_type(kactor_value_map_get(kactor_value_list_get(t, 1), "inner")),
                     KACTOR_TYPE_LIST);
        cr_expect_null(kactor_value_copy(NULL));
}

Test(value, type_names) {
        cr_expect_str_eq(kactor_type_to_string(KACTOR_TYPE_NIL), "nil");
        cr_expect_str_eq(kactor_type_to_string(KACTOR_TYPE_INT), "int");
        cr_expect_str_eq(kactor_type_to_string(KACTOR_TYPE_MAP), "map");
        cr_expect_str_eq(kactor_type_to_string(KACTOR_TYPE_ACTOR), "actor");
        cr_expect_str_eq(kactor_type_to_string(KACTOR_TYPE_ERROR), "error");
        for (int t = 0; t < _KACTOR_TYPE_MAX; t++)
                cr_expect_not_null(kactor_type_to_string(t));
        cr_expect_null(kactor_type_to_string(_KACTOR_TYPE_MAX));
}

Test(value, error_names_round_trip) {
        cr_expect_str_eq(kactor_error_name(KACTOR_ERROR_TASK_FAILED), "io.kactor.Error.TaskFailed");
        cr_expect_str_eq(kactor_error_name(KACTOR_ERROR_INSUFFICIENT_RESOURCES),
                         "io.kactor.Error.InsufficientResources");
        cr_expect_str_eq(kactor_error_name(KACTOR_ERROR_INVALID_ARGS),
                         "org.freedesktop.DBus.Error.InvalidArgs");
        cr_expect_str_eq(kactor_error_name(KACTOR_ERROR_NOT_SUPPORTED), "io.kactor.Error.NotSupported");
        cr_expect_str_eq(kactor_error_name(KACTOR_ERROR_PROTOCOL), "io.kactor.Error.Protocol");
        cr_expect_null(kactor_error_name(KACTOR_OK));
        cr_expect_null(kactor_error_name(_KACTOR_ERROR_MAX));

        for (int c = KACTOR_OK + 1; c < _KACTOR_ERROR_MAX; c++) {
                const char *name = kactor_error_name(c);

                cr_assert_not_null(name, "code %d has a name", c);
                cr_expect_eq(kactor_error_from_name(name), (kactor_error)c);
        }
        cr_expect_eq(kactor_error_from_name("io.kactor.Error.Bogus"), _KACTOR_ERROR_MAX);
        cr_expect_eq(kactor_error_from_name(NULL), _KACTOR_ERROR_MAX);
}

Test(value, id_string_round_trips) {
        kactor_id id = {.hi = 0xdeadbeef00000001ULL, .lo = 0x0123456789abcdefULL}, back;
        char s[KACTOR_ID_STRING_MAX];

        kactor_id_to_string(id, s);
        cr_expect_str_eq(s, "deadbeef000000010123456789abcdef");
        cr_assert_eq(kactor_id_from_string(s, &back), 0);
        cr_expect(kactor_id_equal(id, back));

        kactor_id_to_string((kactor_id){}, s);
        cr_expect_str_eq(s, "00000000000000000000000000000000");

        cr_assert_eq(kactor_id_from_string("DEADBEEF000000010123456789ABCDEF", &back), 0,
                     "either case parses");
        cr_expect(kactor_id_equal(id, back));
}

Test(value, id_parse_rejects_bad_strings) {
        static const char *const bad[] = {
                "",
                "deadbeef",
                "deadbeef000000010123456789abcde",   /* 31 digits */
                "deadbeef000000010123456789abcdef0", /* 33 digits */
                "deadbeef000000010123456789abcdeg",
                " deadbeef000000010123456789abcde",
                "deadbeef000000010123456789abcdef ",
                "0xadbeef000000010123456789abcdef",
                "-eadbeef000000010123456789abcdef",
        };
        kactor_id id = {5, 6};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_expect_eq(kactor_id_from_string(bad[i], &id), -EINVAL, "\"%s\" is refused", bad[i]);
        cr_expect_eq(kactor_id_from_string(NULL, &id), -EINVAL);
        cr_expect(id.hi == 5 && id.lo == 6, "ret is untouched on failure");
}

Test(value, json_renders_scalars) {
        expect_json_of(kactor_value_new_nil(), "null");
        expect_json_of(kactor_value_new_bool(true), "true");
        expect_json_of(kactor_value_new_bool(false), "false");
        expect_json_of(kactor_value_new_int(-42), "-42");
        expect_json_of(kactor_value_new_int(INT64_MIN), "-9223372036854775808");
        expect_json_of(kactor_value_new_int(INT64_MAX), "9223372036854775807");
}

Test(value, json_renders_doubles_that_read_back_as_doubles) {
        expect_json_of(kactor_value_new_double(1.0), "1.0");
        expect_json_of(kactor_value_new_double(-3.0), "-3.0");
        expect_json_of(kactor_value_new_double(0.5), "0.5");
        expect_json_of(kactor_value_new_double(0.1), "0.1");
        expect_json_of(kactor_value_new_double(1e300), "1e+300");
        expect_json_of(kactor_value_new_double(NAN), "null");
        expect_json_of(kactor_value_new_double(INFINITY), "null");
        expect_json_of(kactor_value_new_double(-INFINITY), "null");

        /* Enough digits that every double survives the trip. */
        double samples[] = {1.0 / 3.0, M_PI, 5e-324, 1.7976931348623157e308, 123456789.123456789};
        for (size_t i = 0; i < ELEMENTSOF(samples); i++) {
                _cleanup_value_ kactor_value *v = kactor_value_new_double(samples[i]);
                _cleanup_free_ char *s = kactor_value_to_json(v);

                cr_assert_not_null(s);
                cr_expect_eq(strtod(s, NULL), samples[i], "%s reads back", s);
        }
}

Test(value, json_escapes_strings) {
        expect_json_of(kactor_value_new_string(""), "\"\"");
        expect_json_of(kactor_value_new_string("plain"), "\"plain\"");
        expect_json_of(kactor_value_new_string("q\"b\\s/\n\r\t\b\f"), "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\"");
        expect_json_of(kactor_value_new_stringn("a\0\x01\x1f", 4), "\"a\\u0000\\u0001\\u001f\"");
        expect_json_of(kactor_value_new_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                       "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
        /* Bytes that are not UTF-8 would make the JSON invalid: they become U+FFFD. */
        expect_json_of(kactor_value_new_string("bad\xff\xc3(\xed\xa0\x80"),
                       "\"bad\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd\"");
}

Test(value, json_renders_containers_and_handles) {
        kactor_id id = {.hi = 1, .lo = 0xabcdef};
        _cleanup_value_ kactor_value *l = kactor_value_new_list(), *m = kactor_value_new_map();

        expect_json_of(kactor_value_new_list(), "[]");
        expect_json_of(kactor_value_new_map(), "{}");
        expect_json_of(kactor_value_new_bytes("\x00\x7f\xff", 3), "{\"bytes\": \"007fff\"}");
        expect_json_of(kactor_value_new_bytes("", 0), "{\"bytes\": \"\"}");
        expect_json_of(kactor_value_new_object(id), "{\"object\": \"00000000000000010000000000abcdef\"}");
        expect_json_of(kactor_value_new_actor(id), "{\"actor\": \"00000000000000010000000000abcdef\"}");
        expect_json_of(kactor_value_new_error(KACTOR_ERROR_TASK_FAILED, "it \"broke\""),
                       "{\"error\": \"io.kactor.Error.TaskFailed\", \"message\": \"it \\\"broke\\\"\"}");

        cr_assert(l && m);
        cr_assert_eq(kactor_value_map_set(m, "b", kactor_value_new_bool(true)), 0);
        cr_assert_eq(kactor_value_map_set(m, "a\"", kactor_value_new_list()), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_int(1)), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_string("two")), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_copy(m)), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_nil()), 0);
        expect_json(m, "{\"b\": true, \"a\\\"\": []}");
        expect_json(l, "[1, \"two\", {\"b\": true, \"a\\\"\": []}, null]");
}

Test(value, int_list_builds_a_list) {
        int64_t items[] = {1, 1, 2, 3, 5};
        _cleanup_value_ kactor_value *l = kactor_value_new_int_list(items, ELEMENTSOF(items)),
                                     *e = kactor_value_new_int_list(NULL, 0);

        cr_assert(l && e);
        expect_json(l, "[1, 1, 2, 3, 5]");
        cr_expect_eq(kactor_value_type(e), KACTOR_TYPE_LIST);
        cr_expect_eq(kactor_value_list_size(e), 0);
}

Test(value, free_accepts_null) {
        cr_expect_null(kactor_value_free(NULL));
        cr_expect_null(kactor_value_free(kactor_value_new_int(1)));
}

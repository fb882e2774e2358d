/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kactorctl's value arguments (kactorctl/kactorctl-value.c): what each input becomes, how deep it may
 * nest, and the inputs json-c would take that the syntax of docs/kactorctl.md refuses. */

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "kactorctl-value.h"
#include "macro.h"

#define INT64_RANGE "integer out of range for int64 (write it as a decimal)"
#define DOUBLE_RANGE "number out of range for a double"

/* value_parse_json() of text, which must parse. */
static kactor_value *json_ok(const char *text) {
        ValueParseError e = {};
        kactor_value *v = NULL;
        int r = value_parse_json(text, &v, &e);

        cr_assert_eq(r, 0, "'%s' did not parse: %s at offset %zu", text, r < 0 ? e.message : "", e.offset);
        cr_assert_not_null(v);
        return v;
}

/* value_parse_json() of text, which must fail with r, message and offset. */
static void json_refused(const char *text, int r, const char *message, size_t offset) {
        ValueParseError e = {};
        kactor_value *v = NULL;
        int k = value_parse_json(text, &v, &e);

        cr_expect_eq(k, r, "'%s': returned %d, not %d", text, k, r);
        cr_expect_null(v, "'%s' gave a value", text);
        if (k < 0) {
                cr_expect_str_eq(e.message, message, "'%s'", text);
                cr_expect_eq(e.offset, offset, "'%s': offset %zu, not %zu", text, e.offset, offset);
        }
        kactor_value_free(v);
}

static kactor_value *number_ok(const char *text) {
        ValueParseError e = {};
        kactor_value *v = NULL;

        cr_assert_eq(value_parse_number(text, &v, &e), 0, "'%s' is a number", text);
        return v;
}

Test(kactorctl_value, scalars_inside_json_map_to_their_types) {
        _cleanup_(kactor_value_freep) kactor_value *v =
                json_ok("[1, -7, 007, 1.5, -2e3, 1E-9, true, false, null, \"s\", \"42\"]");

        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_LIST);
        cr_assert_eq(kactor_value_list_size(v), 11);
        static const kactor_type types[] = {
                KACTOR_TYPE_INT,    KACTOR_TYPE_INT,    KACTOR_TYPE_INT,    KACTOR_TYPE_DOUBLE,
                KACTOR_TYPE_DOUBLE, KACTOR_TYPE_DOUBLE, KACTOR_TYPE_BOOL,   KACTOR_TYPE_BOOL,
                KACTOR_TYPE_NIL,    KACTOR_TYPE_STRING, KACTOR_TYPE_STRING,
        };
        for (size_t i = 0; i < 11; i++)
                cr_expect_eq(kactor_value_type(kactor_value_list_get(v, i)), types[i], "item %zu is %s", i,
                             kactor_type_to_string(kactor_value_type(kactor_value_list_get(v, i))));
        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 0)), 1);
        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 1)), -7);
        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 2)), 7);
        cr_expect_eq(kactor_value_get_double(kactor_value_list_get(v, 3)), 1.5);
        cr_expect_eq(kactor_value_get_double(kactor_value_list_get(v, 4)), -2000.0);
        cr_expect(kactor_value_get_bool(kactor_value_list_get(v, 6)));
        cr_expect_not(kactor_value_get_bool(kactor_value_list_get(v, 7)));
        cr_expect_str_eq(kactor_value_get_string(kactor_value_list_get(v, 10), NULL), "42");
}

Test(kactorctl_value, maps_have_string_keys_and_keep_the_last_of_a_repeated_key) {
        _cleanup_(kactor_value_freep) kactor_value *v =
                json_ok("{\"k\": 1, \"m\": {\"n\": null}, \"k\": 2}");

        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_MAP);
        cr_expect_eq(kactor_value_map_size(v), 2);
        cr_expect_eq(kactor_value_get_int(kactor_value_map_get(v, "k")), 2);
        const kactor_value *m = kactor_value_map_get(v, "m");
        cr_assert_eq(kactor_value_type(m), KACTOR_TYPE_MAP);
        cr_expect_eq(kactor_value_type(kactor_value_map_get(m, "n")), KACTOR_TYPE_NIL);
}

Test(kactorctl_value, strings_take_the_json_escapes) {
        _cleanup_(kactor_value_freep) kactor_value *v = json_ok("\"a\\n\\u00e9\\ud83d\\ude00\\\"\"");
        size_t len;

        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_STRING);
        cr_expect_str_eq(kactor_value_get_string(v, &len), "a\n\xc3\xa9\xf0\x9f\x98\x80\"");
        cr_expect_eq(len, 9);
}

Test(kactorctl_value, extreme_integers_stay_integers) {
        _cleanup_(kactor_value_freep) kactor_value *v =
                json_ok("[9223372036854775807, -9223372036854775808]");

        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 0)), INT64_MAX);
        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 1)), INT64_MIN);
}

Test(kactorctl_value, nesting_stops_at_the_codec_depth) {
        char ok[2 * CODEC_MAX_DEPTH + 1], deep[2 * (CODEC_MAX_DEPTH + 1) + 1];

        memset(ok, '[', CODEC_MAX_DEPTH);
        memset(ok + CODEC_MAX_DEPTH, ']', CODEC_MAX_DEPTH);
        ok[2 * CODEC_MAX_DEPTH] = 0;
        kactor_value *v = json_ok(ok);
        kactor_value_free(v);

        memset(deep, '[', CODEC_MAX_DEPTH + 1);
        memset(deep + CODEC_MAX_DEPTH + 1, ']', CODEC_MAX_DEPTH + 1);
        deep[2 * (CODEC_MAX_DEPTH + 1)] = 0;
        json_refused(deep, -EINVAL, "nested too deeply", CODEC_MAX_DEPTH);
}

Test(kactorctl_value, what_json_c_would_take_is_refused) {
        json_refused("[1 /* c */]", -EINVAL, "unexpected character", 3);
        json_refused("[1] // c", -EINVAL, "trailing characters", 4);
        json_refused("['a']", -EINVAL, "unexpected character", 1);
        json_refused("{'a': 1}", -EINVAL, "unexpected character", 1);
        json_refused("[1, 2,]", -EINVAL, "unexpected character", 6);
        json_refused("{\"a\": 1, }", -EINVAL, "expected a string key", 9);
        json_refused("[NaN]", -EINVAL, "unexpected character", 1);
        json_refused("[Infinity]", -EINVAL, "unexpected character", 1);
        json_refused("[-Infinity]", -EINVAL, "unexpected character", 1);
        json_refused("[+1]", -EINVAL, "unexpected character", 1);
        json_refused("[1.]", -EINVAL, "unexpected character", 1);
        json_refused("[TRUE]", -EINVAL, "unexpected character", 1);
        json_refused("[9223372036854775808]", -ERANGE, INT64_RANGE, 1);
        json_refused("[-9223372036854775809]", -ERANGE, INT64_RANGE, 1);
        json_refused("[1e999]", -ERANGE, DOUBLE_RANGE, 1);
        json_refused("[\"\\ud800\"]", -EINVAL, "unpaired UTF-16 surrogate", 8);
        json_refused("[\"\\udc00\"]", -EINVAL, "unpaired UTF-16 surrogate", 8);
}

Test(kactorctl_value, broken_json_says_where) {
        json_refused("{\"a\" 1}", -EINVAL, "expected ':'", 5); /* as docs/kactorctl.md shows */
        json_refused("[1 2]", -EINVAL, "expected ',' or ']'", 3);
        json_refused("[1", -EINVAL, "unexpected end", 2);
        json_refused("\"abc", -EINVAL, "unterminated string", 4);
        json_refused("\"\\x\"", -EINVAL, "unknown escape sequence", 2);
        json_refused("\"\\u12\"", -EINVAL, "\\u needs four hex digits", 3);
        json_refused("\"\\u0000\"", -EINVAL, "D-Bus strings cannot hold NUL characters", 7);
        json_refused("[1] x", -EINVAL, "trailing characters", 4);
}

Test(kactorctl_value, bare_numbers_are_int64_or_double) {
        _cleanup_(kactor_value_freep) kactor_value *i = number_ok("-7"), *z = number_ok("007"),
                                                   *d = number_ok("1e20"), *f = number_ok("1.5");

        cr_expect_eq(kactor_value_type(i), KACTOR_TYPE_INT);
        cr_expect_eq(kactor_value_get_int(i), -7);
        cr_expect_eq(kactor_value_get_int(z), 7);
        cr_expect_eq(kactor_value_type(d), KACTOR_TYPE_DOUBLE);
        cr_expect_eq(kactor_value_get_double(d), 1e20);
        cr_expect_eq(kactor_value_get_double(f), 1.5);
}

Test(kactorctl_value, what_is_not_a_number_is_left_to_be_a_string) {
        static const char *const texts[] = {
                "hello", "1.", "inf", "NaN", "+1", " 1", "1 ", "0x10", "1e", ""
        };

        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                ValueParseError e = { .message = "untouched" };
                kactor_value *v = NULL;

                cr_expect_eq(value_parse_number(texts[i], &v, &e), -EINVAL, "'%s'", texts[i]);
                cr_expect_null(v);
                cr_expect_str_eq(e.message, "untouched", "'%s' set an error", texts[i]);
        }
}

Test(kactorctl_value, bare_numbers_out_of_range_are_errors) {
        ValueParseError e = {};
        kactor_value *v = NULL;

        cr_expect_eq(value_parse_number("9223372036854775808", &v, &e), -ERANGE);
        cr_expect_str_eq(e.message, INT64_RANGE);
        cr_expect_eq(value_parse_number("-1e400", &v, &e), -ERANGE);
        cr_expect_str_eq(e.message, DOUBLE_RANGE);
        cr_expect_null(v);
}

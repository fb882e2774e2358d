/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kactorctl's output formats (kactorctl/kactorctl-output.c): --json=short and --json=pretty re-space
 * JSON without touching what is inside strings, and the formats' names. */

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "kactorctl-output.h"
#include "macro.h"

/* json_format_write() of text in format, as a string. */
static char *formatted(const char *text, JsonFormat format) {
        char *s = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&s, &size);

        cr_assert_not_null(f);
        json_format_write(f, text, format);
        cr_assert_eq(fclose(f), 0);
        return s;
}

static void expect_format(const char *text, JsonFormat format, const char *want) {
        _cleanup_free_ char *got = formatted(text, format);
        cr_expect_str_eq(got, want, "%s\ngave\n%s\nnot\n%s", text, got, want);
}

Test(kactorctl_output, short_is_one_line_spaced_as_libkactor_writes_values) {
        expect_format("{\"a\":1,\"b\":[2,3],\"c\":{}}", JSON_SHORT, "{\"a\": 1, \"b\": [2, 3], \"c\": {}}\n");
        expect_format("{\n  \"a\" : [ ]\n}", JSON_SHORT, "{\"a\": []}\n");
        /* libkactor's own spacing stays as it is. */
        expect_format("{\"x\": [1, 2.5, null, true]}", JSON_SHORT, "{\"x\": [1, 2.5, null, true]}\n");
        expect_format("{\"x\": [1]}", JSON_OFF, "{\"x\": [1]}\n");
}

Test(kactorctl_output, pretty_indents_one_member_a_line) {
        expect_format("{\"a\": [1, {}], \"b\": {\"c\": \"d\"}}", JSON_PRETTY,
                      "{\n"
                      "        \"a\": [\n"
                      "                1,\n"
                      "                {}\n"
                      "        ],\n"
                      "        \"b\": {\n"
                      "                \"c\": \"d\"\n"
                      "        }\n"
                      "}\n");
        expect_format("[]", JSON_PRETTY, "[]\n");
        expect_format("42", JSON_PRETTY, "42\n");
}

Test(kactorctl_output, strings_are_copied_whole) {
        /* Brackets, commas, colons, spaces and escaped quotes inside strings are no structure. */
        const char *text = "{\"k\\\"{, :\": \"a  b\\\\\", \"e\": \"\\u00e9\\n\"}";
        expect_format(text, JSON_SHORT, "{\"k\\\"{, :\": \"a  b\\\\\", \"e\": \"\\u00e9\\n\"}\n");
        expect_format(text, JSON_PRETTY,
                      "{\n"
                      "        \"k\\\"{, :\": \"a  b\\\\\",\n"
                      "        \"e\": \"\\u00e9\\n\"\n"
                      "}\n");
}

Test(kactorctl_output, pretty_then_short_is_short) {
        const char *text = "[{\"a\": [[], [1, [2]], {\"b\": {}}]}, \"s,]\"]";
        _cleanup_free_ char *pretty = formatted(text, JSON_PRETTY);
        _cleanup_free_ char *again = formatted(pretty, JSON_SHORT);
        _cleanup_free_ char *once = formatted(text, JSON_SHORT);
        cr_expect_str_eq(again, once);
}

Test(kactorctl_output, format_names) {
        JsonFormat f;

        cr_expect_eq(json_format_from_string("short", &f), 0);
        cr_expect_eq(f, JSON_SHORT);
        cr_expect_eq(json_format_from_string("pretty", &f), 0);
        cr_expect_eq(f, JSON_PRETTY);
        cr_expect_eq(json_format_from_string("off", &f), 0);
        cr_expect_eq(f, JSON_OFF);
        cr_expect_eq(json_format_from_string("yaml", &f), -EINVAL);
        cr_expect_eq(json_format_from_string("", &f), -EINVAL);
}

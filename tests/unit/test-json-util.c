/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/basic/json-util.c: JSON string literals for values and traces. */

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"

static void put_file(const char *s, size_t n, void *userdata) {
        fwrite(s, 1, n, userdata);
}

/* What json_string_write() makes of the n bytes at s; malloc'd. */
static char *escaped(const char *s, size_t n) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        cr_assert_not_null(f);
        json_string_write(s, n, put_file, f);
        cr_assert_eq(fclose(f), 0);
        return buf;
}

Test(json_util, escapes_quotes_backslashes_and_control_characters) {
        _cleanup_free_ char *s = escaped("a\"b\\c\n\t\x01\0", 9);

        cr_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\t\\u0001\\u0000\"");
}

Test(json_util, keeps_utf8_and_replaces_what_is_not) {
        /* é and € pass; a lone continuation byte, an overlong '/' and a truncated sequence do not. */
        _cleanup_free_ char *s = escaped("\xc3\xa9\xe2\x82\xac|\x80|\xc0\xaf|\xe2\x82", 13);

        cr_assert_str_eq(s, "\"\xc3\xa9\xe2\x82\xac|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\"");
}

Test(json_util, fputs_writes_null_as_the_empty_string) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        cr_assert_not_null(f);
        json_string_fputs(NULL, f);
        json_string_fputs("x\"", f);
        cr_assert_eq(fclose(f), 0);
        cr_assert_str_eq(buf, "\"\"\"x\\\"\"");
        free(buf);
}

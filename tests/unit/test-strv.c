/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/basic/strv.c: the lists of module directories and GPU device nodes. */

#include <criterion/criterion.h>

#include "strv.h"

Test(strv, split_skips_empty_entries) {
        _cleanup_strv_free_ char **l = NULL;

        cr_assert_eq(strv_split("::/a::/b/c:", ":", &l), 0);
        cr_assert_eq(strv_length(l), 2);
        cr_assert_str_eq(l[0], "/a");
        cr_assert_str_eq(l[1], "/b/c");
        cr_assert_null(l[2]);
}

Test(strv, split_of_nothing_is_an_empty_list_not_null) {
        _cleanup_strv_free_ char **l = NULL;

        cr_assert_eq(strv_split(",,", ",", &l), 0);
        cr_assert_not_null(l);
        cr_assert(strv_isempty(l));
}

Test(strv, extend_consume_appends_and_takes_the_strings) {
        _cleanup_strv_free_ char **a = NULL;
        char **b = NULL;

        cr_assert_eq(strv_extend_strv_consume(&a, NULL), 0);
        cr_assert(strv_isempty(a));
        cr_assert_eq(strv_split("x:y", ":", &b), 0);
        cr_assert_eq(strv_extend_strv_consume(&a, b), 0);
        cr_assert_eq(strv_split("z", ":", &b), 0);
        cr_assert_eq(strv_extend_strv_consume(&a, b), 0);
        cr_assert_eq(strv_length(a), 3);
        cr_assert_str_eq(a[0], "x");
        cr_assert_str_eq(a[2], "z");
        cr_assert_null(a[3]);
}

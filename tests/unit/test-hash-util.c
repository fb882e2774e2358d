/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/basic/hash-util.h: the values must never change (cgroup names on disk, replica placement
 * across node managers of different builds, tracing keys), so they are pinned here. */

#include <criterion/criterion.h>
#include <string.h>

#include "hash-util.h"

Test(hash_util, fnv1a_matches_the_published_vectors) {
        cr_assert_eq(hash_fnv1a64("", 0), UINT64_C(0xcbf29ce484222325));
        cr_assert_eq(hash_fnv1a64("a", 1), UINT64_C(0xaf63dc4c8601ec8c));
        cr_assert_eq(hash_fnv1a64("foobar", 6), UINT64_C(0x85944171f73967e8));
        cr_assert_eq(hash_fnv1a32("", 0), UINT32_C(0x811c9dc5));
        cr_assert_eq(hash_fnv1a32("a", 1), UINT32_C(0xe40c292c));
        cr_assert_eq(hash_fnv1a32("foobar", 6), UINT32_C(0xbf9cf968));
}

Test(hash_util, mix64_is_splitmix64) {
        /* splitmix64's first output for seed 0 is mix64(0). */
        cr_assert_eq(hash_mix64(0), UINT64_C(0xe220a8397b1dcdaf));
}

Test(hash_util, fold128_is_pinned) {
        cr_assert_eq(hash_fold128(0, 0), 0);
        cr_assert_eq(hash_fold128(1, 0), 1);
        cr_assert_eq(hash_fold128(0, 1), UINT64_C(0x9e3779b97f4a7c15) ^ (UINT64_C(0x9e3779b97f4a7c15) >> 31));
}

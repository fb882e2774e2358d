/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Skips a test that needs what this machine lacks (root, BPF, nspawn, cgroup v2). CI has all of it
 * (TESTING.md), so there ($CI set, as .ci/run is run) a skip would hide a failure: it fails instead.
 */

#include <criterion/criterion.h>
#include <stdlib.h>

#define kactor_skip_test(reason)                                                                 \
        do {                                                                                     \
                if (getenv("CI"))                                                                \
                        cr_assert_fail("this test would be skipped, which CI does not allow: %s", \
                                       reason);                                                  \
                cr_skip_test("%s", reason);                                                      \
        } while (0)

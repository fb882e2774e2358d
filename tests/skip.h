/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Skips a test that needs what this machine lacks (root, BPF, nspawn, cgroup v2). CI has all of it
 * (TESTING.md), so there ($CI set: .ci/run sets it) a skip would hide a failure: it fails instead.
 * Criterion does not list skipped tests (its "Tested:" count leaves them out), so each skip prints a
 * "[SKIP]" line of its own, which `make check` counts.
 */

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#define kactor_skip_test(reason)                                                                 \
        do {                                                                                     \
                if (getenv("CI"))                                                                \
                        cr_assert_fail("this test would be skipped, which CI does not allow: %s", \
                                       reason);                                                  \
                fprintf(stderr, "[SKIP] %s:%d: %s\n", __FILE__, __LINE__, reason);              \
                cr_skip_test("%s", reason);                                                      \
        } while (0)

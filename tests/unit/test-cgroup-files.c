/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cgroup file readers the backends share (cgroups/cgroup-manager.c): cg_read_keyed() finds a key
 * of a flat keyed file (memory.events on v2, memory.oom_control on v1) by its whole name, so that the
 * OOM-kill counter an actor's death cause depends on is never another key that starts the same.
 * Plain files in a temp dir stand in for the cgroup's.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cgroup-manager.h"
#include "macro.h"

static char dir[] = "/tmp/kactor-cgfiles-XXXXXX";

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
        _cleanup_free_ char *cmd = NULL;
        cr_assert_geq(asprintf(&cmd, "rm -rf '%s'", dir), 0);
        (void) system(cmd);
}

TestSuite(cgroup_files, .init = setup, .fini = teardown);

static void put(const char *file, const char *text) {
        _cleanup_free_ char *p = NULL;
        cr_assert_geq(asprintf(&p, "%s/%s", dir, file), 0);
        FILE *f = fopen(p, "we");
        cr_assert_not_null(f);
        fputs(text, f);
        cr_assert_eq(fclose(f), 0);
}

Test(cgroup_files, keyed_reads_the_v2_oom_kill_counter) {
        uint64_t v = 0;
        put("memory.events", "low 0\nhigh 0\nmax 17\noom 2\noom_kill 3\noom_group_kill 0\n");
        cr_assert_eq(cg_read_keyed(dir, "memory.events", "oom_kill", &v), 0);
        cr_assert_eq(v, 3);
        cr_assert_eq(cg_read_keyed(dir, "memory.events", "oom", &v), 0);
        cr_assert_eq(v, 2);
}

Test(cgroup_files, keyed_matches_whole_keys_only) {
        uint64_t v = 0;
        /* v1: oom_kill_disable comes first and must not be taken for oom_kill. */
        put("memory.oom_control", "oom_kill_disable 1\nunder_oom 0\noom_kill 5\n");
        cr_assert_eq(cg_read_keyed(dir, "memory.oom_control", "oom_kill", &v), 0);
        cr_assert_eq(v, 5);
        /* A last line without a newline counts too. */
        put("last", "a 1\noom_kill 7");
        cr_assert_eq(cg_read_keyed(dir, "last", "oom_kill", &v), 0);
        cr_assert_eq(v, 7);
}

Test(cgroup_files, keyed_says_what_is_missing_or_malformed) {
        uint64_t v = 42;
        /* Kernels before 4.13 have no oom_kill line in memory.oom_control. */
        put("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
        cr_assert_eq(cg_read_keyed(dir, "memory.oom_control", "oom_kill", &v), -ENODATA);
        cr_assert_eq(cg_read_keyed(dir, "no-such-file", "oom_kill", &v), -ENOENT);
        put("bad", "oom_kill x\n");
        cr_assert_eq(cg_read_keyed(dir, "bad", "oom_kill", &v), -EBADMSG);
        put("bad2", "oom_kill 12junk\n");
        cr_assert_eq(cg_read_keyed(dir, "bad2", "oom_kill", &v), -EBADMSG);
        cr_assert_eq(v, 42, "written on failure");
}

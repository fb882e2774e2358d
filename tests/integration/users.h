/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Users and groups made for an integration test, and busctl run as one of them, as an operator would.
 *
 *   static TestGroup group;
 *   static TestUser member;
 *   users_group_make(&group, "kxyz", "", USERS_GID_DEFAULT);     -> group kxyz1234
 *   users_make(&member, "kxyz", "m", &group, NULL);              -> user kxyz1234m in it
 *   users_busctl(h, &member, &out, "call io.kactor.NodeManager1 %s io.kactor.Actor1 Kill b true", path);
 *   ...at teardown: users_remove(&member); users_group_remove(&group);
 *
 * Names are PREFIX, the test process's PID and SUFFIX, so tests running in parallel never share one
 * and a user left behind says which test made it. useradd and friends lock /etc/passwd and
 * /etc/group, which another test may hold for a moment: every tool run here is retried for a few
 * seconds. The makers assert with Criterion; the removers, run at teardown, never do, accept what
 * was never made and may be called again.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "harness.h"

typedef struct TestGroup {
        char name[32];
        gid_t gid;
        bool made;
} TestGroup;

typedef struct TestUser {
        char name[32];
        uid_t uid;
        gid_t gid; /* its primary group */
        bool made;
} TestUser;

/* Where a new group's id comes from. */
typedef enum UsersGid {
        USERS_GID_DEFAULT,    /* groupadd's choice (GID_MIN.. in /etc/login.defs) */
        USERS_GID_ABOVE_UIDS, /* 43000 to 49999, above the users' ids: a uid that equals a gid would
                               * hide a check of the one against the other */
} UsersGid;

/* Makes group PREFIX<pid>SUFFIX and reads its id into g. Asserts. */
void users_group_make(TestGroup *g, const char *prefix, const char *suffix, UsersGid gid);
/* groupdel, when g was made; after the users whose primary group it is are removed. */
void users_group_remove(TestGroup *g);

/* Makes user PREFIX<pid>SUFFIX (no home directory, no login shell) whose primary group is `primary`
 * (NULL: useradd's default group) and, when `supplementary` is set, a member of that group too; reads
 * its uid and gid into u. Asserts. */
void users_make(TestUser *u, const char *prefix, const char *suffix, const TestGroup *primary,
                const TestGroup *supplementary);
/* userdel -f, when u was made: -f because its workers may still run as it. */
void users_remove(TestUser *u);

/* Runs `busctl --address=BUS --timeout=10 --no-pager ARGS` as u (setpriv: its uid, its primary group
 * and its groups) on h's bus; ARGS is formatted from fmt and split by the shell, so quote what has
 * spaces or shell characters in it. Returns busctl's exit status (-1: it did not exit) and its stdout
 * and stderr together, without the trailing newline, in *ret_out (harness-owned). Asserts that it
 * could run busctl. */
int users_busctl(Harness *h, const TestUser *u, const char **ret_out, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* users_busctl() of the node manager's Get of one object (waiting up to 10 s): its value, e.g.
 * `av 1 x 1`, or the error. Same return. */
int users_busctl_get(Harness *h, const TestUser *u, const char **ret_out, const char *object_path);

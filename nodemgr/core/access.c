/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Who may use the node manager: root, the node manager's own user, and members of the access group
 * (--access-group, default "kactor"). The D-Bus policy says the same for the system bus; this check
 * holds on any bus and on the native socket, which anyone can connect to. Memberships come from the
 * user database and are remembered for a while (lookups go through NSS).
 */

#include <grp.h>
#include <pwd.h>
#include <stdio.h>

#include "access.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "req-error.h"
#include "time-util.h"

#define ACCESS_CACHE_USEC (10 * 1000000ULL)

typedef struct AccessEntry {
        uid_t uid;
        bool allowed;
        uint64_t until;
        UT_hash_handle hh;
} AccessEntry;

int access_setup(Manager *m, const char *group) {
        m->access_group = strdup(group ?: "kactor");
        if (!m->access_group)
                return -ENOMEM;
        m->access_gid = (gid_t) -1;
        struct group *g = getgrnam(m->access_group);
        if (g)
                m->access_gid = g->gr_gid;
        else
                log_info("Group %s does not exist: only root and %s may use this node manager.",
                         m->access_group, geteuid() == 0 ? "root" : "its own user");
        return 0;
}

void access_done(Manager *m) {
        AccessEntry *e, *tmp;
        HASH_ITER(hh, m->access_cache, e, tmp) {
                HASH_DEL(m->access_cache, e);
                free(e);
        }
        free(m->access_group);
        m->access_group = NULL;
}

static bool access_in_group(gid_t gid, uid_t uid) {
        struct passwd *pw = getpwuid(uid);
        if (!pw)
                return false;
        if (pw->pw_gid == gid)
                return true;
        int n = 64;
        for (int attempt = 0; attempt < 4; attempt++) {
                _cleanup_free_ gid_t *groups = calloc((size_t) n, sizeof(gid_t));
                if (!groups)
                        return false;
                int k = n;
                if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &k) >= 0) {
                        for (int i = 0; i < k; i++)
                                if (groups[i] == gid)
                                        return true;
                        return false;
                }
                n = k > n ? k : n * 2;
        }
        return false;
}

int access_check(Manager *m, uid_t uid, ReqError *e) {
        if (uid == 0 || uid == geteuid())
                return 0;

        uint64_t now = now_usec(CLOCK_MONOTONIC);
        AccessEntry *a;
        HASH_FIND(hh, m->access_cache, &uid, sizeof(uid), a);
        if (!a || a->until <= now) {
                if (!a) {
                        a = calloc(1, sizeof(*a));
                        if (!a)
                                return -ENOMEM;
                        a->uid = uid;
                        HASH_ADD(hh, m->access_cache, uid, sizeof(a->uid), a);
                }
                a->allowed = m->access_gid != (gid_t) -1 && access_in_group(m->access_gid, uid);
                a->until = now + ACCESS_CACHE_USEC;
        }
        if (a->allowed)
                return 0;
        return req_error(e, KACTOR_ERROR_ACCESS_DENIED,
                         "user %u may not use this node manager (not root, not in group %s)", (unsigned) uid,
                         m->access_group ?: "kactor");
}

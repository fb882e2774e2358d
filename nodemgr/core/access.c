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
#include "objstore.h"
#include "parse-util.h"
#include "manager.h"
#include "req-error.h"
#include "time-util.h"

#define ACCESS_CACHE_USEC (10 * 1000000ULL)

/* A user's groups, as the user database said a moment ago. */
typedef struct AccessEntry {
        uid_t uid;
        bool known;      /* the user exists */
        gid_t *groups;
        int n_groups;
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
        else if (geteuid() == 0)
                log_info("Group %s does not exist: only root may use this node manager.", m->access_group);
        else
                log_info("Group %s does not exist: only root and the node manager's own user (UID %u) may use "
                         "this node manager.",
                         m->access_group, (unsigned) geteuid());
        return 0;
}

void access_done(Manager *m) {
        AccessEntry *e, *tmp;
        HASH_ITER(hh, m->access_cache, e, tmp) {
                HASH_DEL(m->access_cache, e);
                free(e->groups);
                free(e);
        }
        free(m->access_group);
        m->access_group = NULL;
}

static int access_load_groups(AccessEntry *a) {
        a->groups = mfree(a->groups);
        a->n_groups = 0;
        a->known = false;
        struct passwd *pw = getpwuid(a->uid);
        if (!pw)
                return 0;
        a->known = true;
        int n = 64;
        for (int attempt = 0; attempt < 4; attempt++) {
                gid_t *groups = calloc((size_t) n, sizeof(gid_t));
                if (!groups)
                        return -ENOMEM;
                int k = n;
                if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &k) >= 0) {
                        a->groups = groups;
                        a->n_groups = k;
                        return 0;
                }
                free(groups);
                n = k > n ? k : n * 2;
        }
        return 0;
}

/* The user's entry, looked up again when it is older than ACCESS_CACHE_USEC. */
static AccessEntry *access_entry(Manager *m, uid_t uid) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        AccessEntry *a;
        HASH_FIND(hh, m->access_cache, &uid, sizeof(uid), a);
        if (a && a->until > now)
                return a;
        if (!a) {
                a = calloc(1, sizeof(*a));
                if (!a)
                        return NULL;
                a->uid = uid;
                HASH_ADD(hh, m->access_cache, uid, sizeof(a->uid), a);
        }
        if (access_load_groups(a) < 0)
                return NULL;
        a->until = now + ACCESS_CACHE_USEC;
        return a;
}

static bool access_in_group(Manager *m, uid_t uid, gid_t gid) {
        AccessEntry *a = access_entry(m, uid);
        if (!a)
                return false;
        for (int i = 0; i < a->n_groups; i++)
                if (a->groups[i] == gid)
                        return true;
        return false;
}

bool access_is_admin(uid_t uid) {
        return uid == 0 || uid == geteuid();
}

int access_check(Manager *m, uid_t uid, ReqError *e) {
        if (access_is_admin(uid))
                return 0;
        if (m->access_gid != (gid_t) -1 && access_in_group(m, uid, m->access_gid))
                return 0;
        return req_error(e, KACTOR_ERROR_ACCESS_DENIED,
                         "user %u may not use this node manager (not root, not in group %s)", (unsigned) uid,
                         m->access_group ?: "kactor");
}

int access_check_actor(Manager *m, const Actor *a, uid_t uid, AccessRight right, ReqError *e) {
        if (uid == a->uid || access_is_admin(uid))
                return 0;
        if (right == ACCESS_CALL) {
                for (size_t i = 0; i < a->n_allow_users; i++)
                        if (a->allow_users[i] == uid)
                                return 0;
                for (size_t i = 0; i < a->n_allow_groups; i++)
                        if (access_in_group(m, uid, a->allow_groups[i]))
                                return 0;
        }
        return req_error(e, KACTOR_ERROR_ACCESS_DENIED, "actor %s belongs to user %u: user %u may not %s it",
                         a->id_string, (unsigned) a->uid, (unsigned) uid,
                         right == ACCESS_CALL ? "call or look up" : "kill");
}

bool access_object_allowed(const Object *o, uid_t uid) {
        if (uid == o->uid || access_is_admin(uid))
                return true;
        /* A copy being fetched from the peer that made it: its owner comes with its value (one that
         * failed there, with no owner told, says only why). */
        return o->uid == OBJECT_UID_UNKNOWN && o->state != OBJECT_READY;
}

int access_check_object(Manager *m, const Object *o, uid_t uid, ReqError *e) {
        if (access_object_allowed(o, uid))
                return 0;
        char s[KACTOR_ID_STRING_MAX];
        kactor_id_to_string(o->id, s);
        return req_error(e, KACTOR_ERROR_ACCESS_DENIED, "object %s belongs to another user: user %u may not use it",
                         s, (unsigned) uid);
}

int access_parse_user(const char *s, uid_t *ret) {
        struct passwd *pw = getpwnam(s);
        if (pw) {
                *ret = pw->pw_uid;
                return 0;
        }
        uint32_t u;
        if (parse_uint32(s, &u) < 0 || u == (uint32_t) -1)
                return -ESRCH;
        *ret = (uid_t) u;
        return 0;
}

int access_parse_group(const char *s, gid_t *ret) {
        struct group *g = getgrnam(s);
        if (g) {
                *ret = g->gr_gid;
                return 0;
        }
        uint32_t u;
        if (parse_uint32(s, &u) < 0 || u == (uint32_t) -1)
                return -ESRCH;
        *ret = (gid_t) u;
        return 0;
}

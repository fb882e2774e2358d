/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The worker's side of least privilege: before it reads anything from the node manager, a worker
 * becomes its caller's user (KACTOR_WORKER_UID/GID, set by the launcher), clears every capability
 * (effective, permitted, inheritable, ambient, bounding), leaves the node manager's session keyring
 * for an empty one of its own (else actors of different users would share its keys) and sets
 * no_new_privs.
 */

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cap-util.h"
#include "macro.h"
#include "worker-privileges.h"

static int caps_clear_all(void) {
        _cleanup_(cap_freep) cap_t caps = cap_init(); /* empty */
        if (!caps)
                return -ENOMEM;
        (void) cap_reset_ambient();
        if (cap_set_proc(caps) < 0)
                return negative_errno();
        return 0;
}

static int bounding_clear(void) {
        for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
                if (CAP_IS_SUPPORTED(c) && cap_drop_bound(c) < 0 && errno != EINVAL && errno != EPERM)
                        return negative_errno();
        return 0;
}

int privileges_drop_to(uid_t uid, gid_t gid) {
        int r;

        /* The bounding set first, while CAP_SETPCAP is still effective. */
        r = bounding_clear();
        if (r < 0)
                return r;
        if (getuid() != uid || geteuid() != uid || getgid() != gid) {
                struct passwd pw, *res = NULL;
                char buf[4096];
                (void) getpwuid_r(uid, &pw, buf, sizeof(buf), &res);
                if (res ? initgroups(res->pw_name, gid) < 0 : setgroups(1, &gid) < 0)
                        return negative_errno();
                if (setresgid(gid, gid, gid) < 0)
                        return negative_errno();
                if (setresuid(uid, uid, uid) < 0)
                        return negative_errno();
        }
        r = caps_clear_all();
        if (r < 0)
                return r;
        /* A new anonymous session keyring, the user's own. A kernel without keys has none to share, and
         * where a seccomp filter refuses keyctl (containers: keys are not namespaced) the actor, under
         * the same filter, cannot reach the keyring either. */
        if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS && errno != EPERM)
                return negative_errno();
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        return 0;
}

int privileges_drop_worker_from_env(void) {
        const char *u = getenv("KACTOR_WORKER_UID"), *g = getenv("KACTOR_WORKER_GID");
        int r;

        if (!u || !g) {
                r = bounding_clear();
                if (r >= 0)
                        r = caps_clear_all();
                if (r >= 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                        r = negative_errno();
                return r;
        }
        char *e1, *e2;
        unsigned long uid = strtoul(u, &e1, 10), gid = strtoul(g, &e2, 10);
        if (!*u || *e1 || !*g || *e2)
                return -EINVAL;
        (void) unsetenv("KACTOR_WORKER_UID");
        (void) unsetenv("KACTOR_WORKER_GID");
        return privileges_drop_to((uid_t) uid, (gid_t) gid);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "macro.h"
#include "privileges.h"

/*
 * What the node manager keeps, and why:
 *   CAP_SETUID, CAP_SETGID  workers switch to the caller's user (they inherit these through exec);
 *   CAP_SETPCAP             workers empty their bounding set;
 *   CAP_KILL                signal workers that run as other users;
 *   CAP_SYS_ADMIN           cgroup management (cgroup.procs of other users' processes, cgroup.kill),
 *                           BPF on kernels without CAP_BPF;
 *   CAP_BPF, CAP_NET_ADMIN  load the device-cgroup program and attach it to cgroups;
 *   CAP_PERFMON             the tracing programs (bpf/);
 *   CAP_SYS_RESOURCE        raise RLIMIT_MEMLOCK for BPF maps on kernels that charge it;
 *   CAP_DAC_OVERRIDE        create cgroups: the roots of the v1 hierarchies are mode 0555;
 *   CAP_DAC_READ_SEARCH     check modules that lie in users' private directories.
 */
static const cap_value_t manager_caps[] = {
        CAP_SETUID, CAP_SETGID, CAP_SETPCAP, CAP_KILL, CAP_SYS_ADMIN, CAP_BPF,
        CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_RESOURCE, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
};

static bool cap_kept(cap_value_t c) {
        for (size_t i = 0; i < ELEMENTSOF(manager_caps); i++)
                if (manager_caps[i] == c)
                        return true;
        return false;
}

static void cap_freep_(cap_t *c) {
        if (*c)
                cap_free(*c);
}

int privileges_limit_manager(void) {
        _cleanup_(cap_freep_) cap_t caps = NULL;
        cap_value_t kept[ELEMENTSOF(manager_caps)];
        size_t n = 0;

        if (geteuid() != 0)
                return 0; /* an unprivileged node manager has nothing to drop */

        for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
                if (!cap_kept(c) && CAP_IS_SUPPORTED(c) && cap_drop_bound(c) < 0 && errno != EINVAL)
                        return negative_errno();
        /* Keep what we need of what we have: a container may not have given us all of them. */
        _cleanup_(cap_freep_) cap_t current = cap_get_proc();
        if (!current)
                return negative_errno();
        for (size_t i = 0; i < ELEMENTSOF(manager_caps); i++) {
                cap_flag_value_t v = CAP_CLEAR;
                if (CAP_IS_SUPPORTED(manager_caps[i]) &&
                    cap_get_flag(current, manager_caps[i], CAP_PERMITTED, &v) >= 0 && v == CAP_SET)
                        kept[n++] = manager_caps[i];
        }
        caps = cap_init();
        if (!caps)
                return -ENOMEM;
        if (cap_set_flag(caps, CAP_EFFECTIVE, (int) n, kept, CAP_SET) < 0 ||
            cap_set_flag(caps, CAP_PERMITTED, (int) n, kept, CAP_SET) < 0)
                return negative_errno();
        if (cap_set_proc(caps) < 0)
                return negative_errno();
        return 0;
}

static int caps_clear_all(void) {
        _cleanup_(cap_freep_) cap_t caps = cap_init(); /* empty */
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

/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <linux/capability.h>
#include <sys/capability.h>
#include <unistd.h>

#include "cap-util.h"
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

int privileges_limit_manager(void) {
        _cleanup_(cap_freep) cap_t caps = NULL;
        cap_value_t kept[ELEMENTSOF(manager_caps)];
        size_t n = 0;

        if (geteuid() != 0)
                return 0; /* an unprivileged node manager has nothing to drop */

        for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
                if (!cap_kept(c) && CAP_IS_SUPPORTED(c) && cap_drop_bound(c) < 0 && errno != EINVAL)
                        return negative_errno();
        /* Keep what we need of what we have: a container may not have given us all of them. */
        _cleanup_(cap_freep) cap_t current = cap_get_proc();
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

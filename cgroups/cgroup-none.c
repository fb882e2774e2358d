/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The "none" backend: no cgroups at all (--cgroup-manager=none, or no cgroup v2 on the host). Workers
 * stay in the node manager's cgroup and are placed at once. Every limit needs a cgroup: an actor's
 * MemoryMax, TasksMax and NumCpus (a CPU quota as well as a reservation) are refused, so that an actor
 * never runs believing it is bounded. (A task's NumCpus is a reservation only, on every backend.)
 */

#include <errno.h>

#include "cgroup-manager.h"

static int none_init(CgroupManager *m) {
        return 0;
}

static int none_check_limits(CgroupManager *m, const CgroupLimits *l, const char **ret_missing) {
        if (l->memory_max > 0)
                *ret_missing = "MemoryMax (no cgroup manager: nothing would hold the worker to it)";
        else if (l->tasks_max > 0)
                *ret_missing = "TasksMax (no cgroup manager: nothing would hold the worker to it)";
        else if (l->cpus > 0)
                *ret_missing = "NumCpus (no cgroup manager: nothing would hold the worker to its CPU quota)";
        else
                *ret_missing = NULL;
        return 0;
}

static int none_reap_orphans(CgroupManager *m, actor_cgroup_keep_t keep, void *userdata) {
        return 0; /* none made, none left */
}

const CgroupBackendOps cgroup_backend_none = {
        .name = "none",
        .init = none_init,
        .check_limits = none_check_limits,
        .reap_orphans = none_reap_orphans,
        /* No place: a worker gets no cgroup, actor_cgroup_new() says "placed" and returns none. */
};

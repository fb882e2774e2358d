/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* placeholder, replaced below */
#include <errno.h>
#include "cgroup-manager.h"
static int sd_init(CgroupManager *m) { return -EOPNOTSUPP; }
const CgroupBackendOps cgroup_backend_systemd = { .name = "systemd", .init = sd_init };

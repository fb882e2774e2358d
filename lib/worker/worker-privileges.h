/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/* Switches to uid/gid (with the user's supplementary groups) and drops every capability. */
int privileges_drop_to(uid_t uid, gid_t gid);
/* The worker's entry: privileges_drop_to() the ids in the environment (removed from it), or, without
 * them, drops the capabilities and keeps the user. */
int privileges_drop_worker_from_env(void);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Least privilege. kactor-nodemgr keeps only the capabilities it needs (privileges_limit_manager(),
 * see docs/isolation.md for which and why) and removes the others from its bounding set too, so no
 * process it starts can regain them. kactor-worker, before it reads anything from the node manager,
 * becomes the actor's user (KACTOR_WORKER_UID/GID from the launcher), clears every capability
 * (effective, permitted, inheritable, ambient, bounding) and sets no_new_privs.
 */

#include <sys/types.h>

int privileges_limit_manager(void);
/* Switches to uid/gid (with the user's supplementary groups) and drops every capability. */
int privileges_drop_to(uid_t uid, gid_t gid);
/* The worker's entry: privileges_drop_to() the ids in the environment (removed from it), or, without
 * them, drops the capabilities and keeps the user. */
int privileges_drop_worker_from_env(void);

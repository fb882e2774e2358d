/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Least privilege. kactor-nodemgr keeps only the capabilities it needs (privileges_limit_manager(),
 * see docs/isolation.md for which and why) and removes the others from its bounding set too, so no
 * process it starts can regain them. The worker's side (becoming the caller's user, without
 * capabilities) is lib/worker/worker-privileges.c.
 */

#include <sys/types.h>

int privileges_limit_manager(void);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* zygote.c: the fork server. */

#include <sys/types.h>

#include "core-forward.h"

int zygote_start(Manager *m);
void zygote_stop(Manager *m);
/* Forks a worker with this environment and fd as its fd 3; -ENOTCONN without a fork server. */
int zygote_spawn(Manager *m, char *const *env, int fd, pid_t *ret_pid);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* access.c: who may use the node manager. */

#include <sys/types.h>

#include "core-forward.h"

int access_setup(Manager *m, const char *group);
void access_done(Manager *m);
/* 0 when uid may use the node manager; -EREMOTEIO with AccessDenied in e otherwise. */
int access_check(Manager *m, uid_t uid, ReqError *e);

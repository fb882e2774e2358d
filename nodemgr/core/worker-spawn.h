/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* worker-spawn.c: starting worker processes (directly or through the fork server), talking to them,
 * stopping them. Not "spawn.h", which would hide the C library's <spawn.h> from every file built
 * with -Inodemgr/core. WorkerKind and Worker are in manager.h. */

#include <stdbool.h>
#include <sys/types.h>

#include "manager.h"

/* Spawns kactor-worker (or the fork server) with fd as its fd 3 and default signal handling. */
int worker_spawn_process(const char *path, char *const *env, int fd, pid_t *ret_pid);

/* An actor's worker runs as the actor's run_uid/run_gid, a task worker as uid/gid; both without
 * capabilities. */
int worker_spawn(Manager *m, WorkerKind kind, Actor *actor, Worker **ret);
int worker_spawn_task(Manager *m, uid_t uid, gid_t gid, Worker **ret);
int worker_send_init(Worker *w);
int worker_send_call(Worker *w, Call *c);
int worker_send_save(Worker *w, Call *c);
int worker_send_recall(Worker *w);
void worker_stop(Worker *w);
Worker *worker_free(Worker *w);
/* "exited with status 3", "killed by signal 9", ...; malloc'd. */
char *worker_exit_description(const Worker *w);

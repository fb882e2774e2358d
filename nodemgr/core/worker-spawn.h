/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* worker-spawn.c: starting worker processes (directly or through the fork server), talking to them,
 * stopping them. Not "spawn.h", which would hide the C library's <spawn.h> from every file built
 * with -Inodemgr/core. WorkerKind and Worker are in manager.h. */

#include <stdbool.h>
#include <sys/types.h>

#include "manager.h"
#include "time-util.h"

/* Spawns kactor-worker (or the fork server) with fd as its fd 3 and default signal handling. */
int worker_spawn_process(const char *path, char *const *env, int fd, pid_t *ret_pid);

/* An actor's worker runs as the actor's run_uid/run_gid, a task worker as uid/gid; both without
 * capabilities. */
int worker_spawn(Manager *m, WorkerKind kind, Actor *actor, Worker **ret);
int worker_spawn_task(Manager *m, uid_t uid, gid_t gid, Worker **ret);
/* A worker a previous node manager started, still running (persist.c): watched through a pidfd
 * until it re-attaches on the socket (worker_attach()) within WORKER_ATTACH_TIMEOUT_USEC, or is
 * killed. -ESRCH when it is gone already. */
#define WORKER_ATTACH_TIMEOUT_USEC (10 * USEC_PER_SEC)
int worker_adopt(Manager *m, Actor *actor, pid_t pid, uint64_t starttime, uint64_t prefix, Worker **ret);
/* The start time of a process (/proc/PID/stat, clock ticks since boot): with its PID, what names it
 * across PID reuse. 0 when it cannot be read, or the process has exited (a zombie). */
uint64_t pid_starttime(pid_t pid);
/* Whether pid is an adopted worker that has not re-attached yet. */
bool worker_awaiting_attach(Manager *m, pid_t pid);
/* The adopted worker re-attached on connection c (checked by the caller). */
void worker_attach(Worker *w, Conn *c, uint64_t last_seq, bool ready);
int worker_send_init(Worker *w);
int worker_send_call(Worker *w, Call *c);
int worker_send_save(Worker *w, Call *c);
int worker_send_recall(Worker *w);
/* Tells an actor's worker that its results up to w->durable_seq are durable (persist.c). */
int worker_send_ack(Worker *w);
/* Tells an actor's worker to close its direct sockets (their callers go relayed). */
int worker_send_direct_close(Worker *w);
/* The result of the worker's call seq was handled: it becomes durable at the next journal write
 * (worker_results_durable()); the worker hears so with its next EXEC, or an ACK a little later. */
void worker_note_result(Worker *w, uint64_t seq);
void worker_results_durable(Manager *m);
void worker_stop(Worker *w);
Worker *worker_free(Worker *w);
/* "exited with status 3", "killed by signal 9", ...; malloc'd. */
char *worker_exit_description(const Worker *w);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* tasks.c: the task pool, its queue and its workers. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core-forward.h"
#include "kactor/value.h"

void tasks_dispatch(Manager *m);
/* A task's arguments are ready: it joins the queue. */
void tasks_call_ready(Call *c);
/* A task worker finished its task. */
void tasks_task_done(Worker *w);
void tasks_worker_ready(Worker *w);
void tasks_worker_gone(Worker *w, const char *cause);
void tasks_worker_blocked(Worker *w, bool blocked);
/* The worker gave back tasks it had not started (RECALLED). */
void tasks_recalled(Worker *w, const uint64_t *seqs, size_t n);
/* The task a worker finished (RESULT seq): NULL when it is not the one it runs. */
Call *tasks_finish(Worker *w, uint64_t seq);
/* The task runs as uid, the caller (its primary group), in a task worker of that user. */
int tasks_submit(Manager *m, kactor_id object, const char *module, const char *function, double num_cpus,
                 const char *args, size_t args_len, uid_t uid, Conn *owner, Object **ret, ReqError *e);

/* Frees what the task pool keeps about its callers (at the manager's end). */
void tasks_free_caches(Manager *m);

/* Once per loop iteration (the manager's flush): arms the idle timers of workers that ran out of
 * tasks, disarms those of workers that got one. */
void tasks_flush(Manager *m);

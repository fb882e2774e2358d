/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* actor-isolation.c: cgroups, device access and users, for actors and task workers. */

#include <sys/types.h>

#include "cgroup-manager.h"
#include "manager.h"

int actor_isolation_setup(Manager *m, const ManagerConfig *config);
int actor_isolation_check_limits(Manager *m, const ActorSpec *spec, ReqError *e);
int actor_isolation_check_module(const char *path, uid_t uid, ReqError *e);
int actor_isolation_resolve_user(const ActorSpec *spec, uid_t *ret_uid, gid_t *ret_gid, ReqError *e);
/* Places the new worker in the actor's cgroup; INIT is sent once it is placed. */
/* A restored actor's cgroup, as a previous node manager made it (persist.c). */
void actor_isolation_adopt(Actor *a, const ActorCgroupAdopt *spec);
int actor_isolation_start(Actor *a, Worker *w, ReqError *e);
void actor_isolation_kill(Actor *a);
void actor_isolation_worker_gone(Actor *a);
/* Why the actor's worker w died, where its cgroup knows better than its exit status `cause`: killed by
 * the kernel's OOM killer ("out of memory: ... at MemoryMax=N bytes (cause)"). Returns that cause
 * (malloc'd), or NULL when there is nothing to add. Call it before the cgroup is killed or freed. */
char *actor_isolation_death_cause(Actor *a, const Worker *w, const char *cause);
void actor_isolation_free(Actor *a);
/* Kills what is left in the actor's cgroup and removes it (before a restart makes a new one). */
void actor_isolation_free_cgroup(Actor *a);
/* Places a new task worker in a cgroup of its own; INIT is sent once it is placed (at once without
 * cgroups). When it cannot be placed, now (< 0) or later (the worker is killed), w->start_error says why. */
int task_isolation_start(Worker *w);
/* The task worker is gone: what it left in its cgroup is killed, and the cgroup removed once empty. */
void task_isolation_worker_gone(Worker *w);

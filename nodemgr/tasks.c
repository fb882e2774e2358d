/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The task pool: remote functions run in a pool of task workers, as many running at once as the
 * node has CPUs. A worker that waits in a Get of its own does not count, so tasks that wait for
 * other tasks cannot starve the pool.
 */

#include <math.h>
#include <stdio.h>

#include "log.h"
#include "macro.h"
#include "manager.h"

static unsigned tasks_pool_size(Manager *m) {
        double n = floor(m->resources.cpus_total);
        return n < 1 ? 1 : (unsigned) n;
}

/* Workers that run a task and are not blocked. */
static unsigned tasks_running(Manager *m) {
        unsigned n = 0;
        Worker *w;
        LIST_FOREACH(w, &m->task_workers, task_link)
                if (w->task && !w->blocked)
                        n++;
        return n;
}

void tasks_dispatch(Manager *m) {
        Call *c;

        if (m->stopping)
                return;
        while ((c = callqueue_peek_ready(&m->tasks))) {
                Worker *idle = NULL, *w;
                LIST_FOREACH(w, &m->task_workers, task_link)
                        if (w->ready && !w->task && w->conn) {
                                idle = w;
                                break;
                        }

                unsigned running = tasks_running(m);
                if (running >= tasks_pool_size(m))
                        return;
                if (!idle) {
                        if (running + m->n_task_workers_starting >= tasks_pool_size(m))
                                return;
                        int r = worker_spawn(m, WORKER_TASK, NULL, &w);
                        if (r >= 0)
                                r = worker_send_init(w);
                        if (r < 0) {
                                log_error_errno(r, "Failed to start a task worker: %m");
                                /* Without workers the tasks cannot run: fail them rather than hang. */
                                TAILQ_REMOVE(&m->tasks.queued, c, link);
                                m->tasks.n_queued--;
                                call_fail(m, c, KACTOR_ERROR_TASK_FAILED, "no task worker could be started");
                                continue;
                        }
                        m->n_task_workers_starting++;
                        return; /* dispatch resumes once it is ready */
                }

                ReqError e = {};
                TAILQ_REMOVE(&m->tasks.queued, c, link);
                m->tasks.n_queued--;
                int r = call_prepare_args(m, c, &e);
                if (r == -EAGAIN)
                        continue; /* an argument is being rebuilt: the task comes back when it is */
                if (r < 0) {
                        call_fail(m, c, r == -EREMOTEIO ? e.code : KACTOR_ERROR_TASK_FAILED,
                                  e.message ?: "the arguments could not be prepared");
                        req_error_done(&e);
                        continue;
                }
                /* What it takes to run it again, should its result be evicted. */
                if (!c->result->origin)
                        eviction_note_task(m, c->result, c);
                c->seq = ++idle->next_seq;
                idle->task = c;
                r = worker_send_call(idle, c);
                if (r < 0) {
                        idle->task = NULL;
                        call_fail(m, c, KACTOR_ERROR_TASK_FAILED, "the task could not be sent to a worker");
                }
        }
}

void tasks_call_ready(Call *c) {
        Manager *m = c->manager;
        callqueue_push(&m->tasks, c);
        tasks_dispatch(m);
}

void tasks_worker_ready(Worker *w) {
        Manager *m = w->manager;
        if (m->n_task_workers_starting > 0)
                m->n_task_workers_starting--;
        tasks_dispatch(m);
}

void tasks_task_done(Worker *w) {
        /* What the task held through its connection was for the task alone. */
        if (w->conn)
                conn_release_all(w->conn);
        tasks_dispatch(w->manager);
}

void tasks_worker_gone(Worker *w, const char *cause) {
        Manager *m = w->manager;
        if (!w->ready && m->n_task_workers_starting > 0)
                m->n_task_workers_starting--;
        if (w->task) {
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "the task's %s", cause) < 0)
                        msg = NULL;
                call_fail(m, w->task, KACTOR_ERROR_TASK_FAILED, msg ?: cause);
                w->task = NULL;
        }
        tasks_dispatch(m);
}

void tasks_worker_blocked(Worker *w, bool blocked) {
        if (!w || w->kind != WORKER_TASK)
                return;
        if (blocked)
                w->blocked++;
        else if (w->blocked > 0)
                w->blocked--;
        tasks_dispatch(w->manager);
}

int manager_submit_task(Manager *m, kactor_id object, const char *module, const char *function, double num_cpus,
                        const char *args, size_t args_len, Conn *owner, Object **ret, ReqError *e) {
        _cleanup_free_ char *path = NULL;
        ReqError ce = {};
        Object *o;
        Call *c;
        int r;

        r = objstore_add(&m->store, object, &o);
        if (r < 0)
                return r;
        *ret = o;

        r = manager_resolve_module(m, module, &path, &ce);
        if (r >= 0)
                r = call_new(m, o, args, args_len, &c, &ce);
        if (r >= 0) {
                c->module = TAKE_PTR(path);
                c->method = strdup(function);
                c->num_cpus = num_cpus;
                if (!c->method) {
                        call_free(m, c);
                        r = -ENOMEM;
                }
        }
        if (r < 0) {
                (void) objstore_set_failed(&m->store, o, r == -EREMOTEIO ? ce.code : KACTOR_ERROR_TASK_FAILED,
                                           ce.message ?: strerror(-r));
                req_error_done(&ce);
                return 0;
        }

        r = call_watch_deps(m, c);
        if (r < 0) {
                call_fail(m, c, KACTOR_ERROR_TASK_FAILED, strerror(-r));
                return 0;
        }
        if (c->deps.remaining == 0)
                tasks_call_ready(c);
        return 0;
}

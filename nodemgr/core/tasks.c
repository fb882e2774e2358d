/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The task pool: remote functions run in a pool of task workers, as many running at once as the
 * node has CPUs. A worker that waits in a Get of its own does not count, so tasks that wait for
 * other tasks cannot starve the pool.
 *
 * A task runs as its caller, as an actor does: the pool is one pool per user, each worker runs as
 * one user (without capabilities, in a cgroup of its own) and takes only that user's tasks. Workers
 * start on demand and stop after a while without tasks. The CPUs are counted across all users.
 */

#include <math.h>
#include <signal.h>
#include <stdio.h>

#include "actor-isolation.h"
#include "actor.h"
#include "call.h"
#include "eviction.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "req-error.h"
#include "transport.h"
#include "spec-check.h"
#include "tasks.h"
#include "time-util.h"
#include "worker-spawn.h"

/* Tasks sent ahead to a worker whose tasks are quick, so that it reads and answers many per syscall;
 * a worker whose tasks take longer gets one at a time. */
#define TASK_WINDOW 64
#define TASK_QUICK_USEC 200

/* Task workers at most, whatever the tasks' NumCpus (a task may ask for 0). */
#define TASK_WORKERS_MAX 64

/* A task worker without a task for this long stops: a user's pool does not outlive its use. */
#define TASK_WORKER_IDLE_USEC (60 * 1000000ULL)

/* CPUs tasks may use: the node's, less what actors reserved. */
static double tasks_cpus_total(Manager *m) {
        return MAX(m->resources.cpus_total - m->resources.cpus_used, 0.0);
}

/* CPUs the running tasks hold (the first task of each worker that is not blocked in a Get), and how
 * many run. */
static double tasks_cpus_running(Manager *m, unsigned *ret_n) {
        double cpus = 0;
        unsigned n = 0;
        Worker *w;
        LIST_FOREACH(w, &m->task_workers, task_link)
                if (w->tasks.n_inflight > 0 && !w->blocked) {
                        cpus += TAILQ_FIRST(&w->tasks.inflight)->num_cpus;
                        n++;
                }
        *ret_n = n;
        return cpus;
}

/* Whether w takes c: a worker of c's user that is up (not exited, not being stopped). */
static bool worker_takes_task(const Worker *w, const Call *c) {
        return w->ready && w->conn && !w->exited && !w->blocked && !w->recalling && w->uid == c->uid &&
                w->gid == c->gid;
}

static bool worker_is_idle(const Worker *w) {
        return w->ready && w->conn && !w->exited && w->tasks.n_inflight == 0;
}

/* Workers not yet reaped: one that has exited is still listed while tasks_worker_gone() runs. */
static unsigned tasks_workers_live(Manager *m) {
        unsigned n = 0;
        Worker *w;
        LIST_FOREACH(w, &m->task_workers, task_link)
                n += !w->exited;
        return n;
}

/* The pool is full and c's user has no worker to spare: one idle worker of another user stops, and
 * c's user gets one once it has gone (tasks_worker_gone() dispatches again). */
static void tasks_retire_idle_worker(Manager *m, const Call *c) {
        Worker *w, *victim = NULL;
        LIST_FOREACH(w, &m->task_workers, task_link) {
                if (!w->conn && !w->exited)
                        return; /* one is stopping already */
                if (!victim && worker_is_idle(w) && (w->uid != c->uid || w->gid != c->gid))
                        victim = w;
        }
        if (victim)
                worker_stop(victim);
}

/*
 * Where task c goes, among its user's workers: an idle worker when its NumCpus fit beside the running
 * tasks' (one task always runs, whatever it asks for); else, when they do not, the least loaded
 * worker whose tasks are quick, if its window has room. NULL: none, or (*ret_spawn) a new worker
 * should be started.
 */
static Worker *tasks_pick_worker(Manager *m, const Call *c, bool *ret_spawn) {
        Worker *w, *best = NULL;
        unsigned n_running;
        double running = tasks_cpus_running(m, &n_running);
        /* Workers being started will run tasks like this one. */
        double starting = m->n_task_workers_starting * c->num_cpus;
        bool fits = n_running == 0 || running + starting + c->num_cpus <= tasks_cpus_total(m) + 1e-9;

        *ret_spawn = false;
        if (fits) {
                LIST_FOREACH(w, &m->task_workers, task_link)
                        if (worker_takes_task(w, c) && w->tasks.n_inflight == 0)
                                return w;
                if (tasks_workers_live(m) < TASK_WORKERS_MAX) {
                        *ret_spawn = true;
                        return NULL;
                }
                tasks_retire_idle_worker(m, c);
        }
        LIST_FOREACH(w, &m->task_workers, task_link) {
                if (!worker_takes_task(w, c) || w->tasks.n_inflight == 0 ||
                    w->tasks.n_inflight >= TASK_WINDOW || w->task_avg_usec == 0 ||
                    w->task_avg_usec > TASK_QUICK_USEC)
                        continue;
                if (!best || w->tasks.n_inflight < best->tasks.n_inflight)
                        best = w;
        }
        return best;
}

static int on_task_worker_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;
        w->idle = false;
        /* Closing its connection ends it; its cgroup goes with it. It comes back on demand. */
        if (worker_is_idle(w))
                worker_stop(w);
        return 0;
}

/* Arms the idle timer of workers that have just run out of tasks, disarms it on those that got one. */
static void tasks_update_idle(Manager *m) {
        Worker *w;
        LIST_FOREACH(w, &m->task_workers, task_link) {
                bool idle = worker_is_idle(w);
                if (idle == w->idle)
                        continue;
                int r;
                if (!idle)
                        r = sd_event_source_set_enabled(w->idle_timer, SD_EVENT_OFF);
                else if (!w->idle_timer) {
                        r = sd_event_add_time_relative(m->event, &w->idle_timer, CLOCK_MONOTONIC,
                                                       TASK_WORKER_IDLE_USEC, 1000000ULL, on_task_worker_idle, w);
                        if (r >= 0)
                                (void) sd_event_source_set_description(w->idle_timer, "task-worker-idle");
                } else {
                        r = sd_event_source_set_time_relative(w->idle_timer, TASK_WORKER_IDLE_USEC);
                        if (r >= 0)
                                r = sd_event_source_set_enabled(w->idle_timer, SD_EVENT_ONESHOT);
                }
                if (r >= 0)
                        w->idle = idle; /* else: tried again on the next dispatch */
        }
}

/* Starts a worker for c's user. It is counted as starting until it is ready or gone. */
static int tasks_start_worker(Manager *m, const Call *c) {
        Worker *w;
        int r = worker_spawn_task(m, c->uid, c->gid, &w);
        if (r < 0)
                return r;
        m->n_task_workers_starting++;
        r = task_isolation_start(w);
        if (r < 0)
                /* Reaped by the launcher: tasks_worker_gone() fails c with w->start_error. */
                (void) kill(w->pid, SIGKILL);
        return 0;
}

static void tasks_dispatch_queue(Manager *m) {
        Call *c;

        while ((c = callqueue_peek_ready(&m->tasks))) {
                bool spawn;
                Worker *w = tasks_pick_worker(m, c, &spawn);
                if (!w) {
                        if (!spawn)
                                return;
                        int r = tasks_start_worker(m, c);
                        if (r < 0) {
                                log_error_errno(r, "Failed to start a task worker for user %u: %m", (unsigned) c->uid);
                                /* Without workers the tasks cannot run: fail them rather than hang. */
                                TAILQ_REMOVE(&m->tasks.queued, c, link);
                                m->tasks.n_queued--;
                                call_fail(m, c, KACTOR_ERROR_TASK_FAILED, "no task worker could be started");
                                continue;
                        }
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
                c->sent_usec = now_usec(CLOCK_MONOTONIC);
                callqueue_start_direct(&w->tasks, c, ++w->next_seq);
                r = worker_send_call(w, c);
                if (r < 0) {
                        TAILQ_REMOVE(&w->tasks.inflight, c, link);
                        w->tasks.n_inflight--;
                        call_fail(m, c, KACTOR_ERROR_TASK_FAILED, "the task could not be sent to a worker");
                }
        }
}

void tasks_dispatch(Manager *m) {
        if (m->stopping)
                return;
        tasks_dispatch_queue(m);
        /* Idle timers are looked at once per loop iteration (tasks_flush()), not once per task. */
        m->tasks_idle_dirty = true;
}

void tasks_flush(Manager *m) {
        if (!m->tasks_idle_dirty)
                return;
        m->tasks_idle_dirty = false;
        if (!m->stopping)
                tasks_update_idle(m);
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

Call *tasks_finish(Worker *w, uint64_t seq) {
        Call *c = callqueue_finish(&w->tasks, seq);
        if (!c)
                return NULL;
        /* Service time: from when it could start (sent, or the one before it done) to its end. */
        uint64_t now = now_usec(CLOCK_MONOTONIC), from = MAX(c->sent_usec, w->last_done_usec);
        uint64_t dt = now > from ? now - from : 1;
        w->task_avg_usec = w->task_avg_usec == 0 ? dt : (w->task_avg_usec * 7 + dt) / 8;
        w->last_done_usec = now;
        return c;
}

void tasks_task_done(Worker *w) {
        /* What the task held through its connection was for the task alone. */
        if (w->conn)
                transport_release_all(w->manager, w->conn);
        tasks_dispatch(w->manager);
}

/* Puts tasks back at the head of the queue, in their order. */
static void tasks_requeue(Manager *m, Call *c) {
        Call *first = TAILQ_FIRST(&m->tasks.queued);
        if (first)
                TAILQ_INSERT_BEFORE(first, c, link);
        else
                TAILQ_INSERT_TAIL(&m->tasks.queued, c, link);
        m->tasks.n_queued++;
}

void tasks_worker_gone(Worker *w, const char *cause) {
        Manager *m = w->manager;
        Call *c;

        if (!w->ready && m->n_task_workers_starting > 0)
                m->n_task_workers_starting--;
        if (!w->ready && !m->stopping) {
                /* It never became ready (it could not be placed, or become its user): fail a task of its
                 * user instead of starting workers like it for ever. */
                TAILQ_FOREACH(c, &m->tasks.queued, link)
                        if (c->uid == w->uid && c->gid == w->gid)
                                break;
                if (c) {
                        _cleanup_free_ char *msg = NULL;
                        if (asprintf(&msg, "no task worker could be started for user %u: %s", (unsigned) w->uid,
                                     w->start_error ?: cause) < 0)
                                msg = NULL;
                        log_warning("Task worker %d: %s", (int) w->pid, msg ?: cause);
                        TAILQ_REMOVE(&m->tasks.queued, c, link);
                        m->tasks.n_queued--;
                        call_fail(m, c, KACTOR_ERROR_TASK_FAILED, msg ?: "no task worker could be started");
                }
        }
        /* The first task was running: it failed. The others never started: they run elsewhere. */
        c = TAILQ_FIRST(&w->tasks.inflight);
        if (c) {
                TAILQ_REMOVE(&w->tasks.inflight, c, link);
                w->tasks.n_inflight--;
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "the task's %s", cause) < 0)
                        msg = NULL;
                call_fail(m, c, KACTOR_ERROR_TASK_FAILED, msg ?: cause);
        }
        while ((c = TAILQ_LAST(&w->tasks.inflight, CallList))) {
                TAILQ_REMOVE(&w->tasks.inflight, c, link);
                w->tasks.n_inflight--;
                tasks_requeue(m, c);
        }
        tasks_dispatch(m);
}

void tasks_recalled(Worker *w, const uint64_t *seqs, size_t n) {
        Manager *m = w->manager;

        w->recalling = false;
        /* Last first, each to the head: the order is kept. */
        for (size_t i = n; i > 0; i--) {
                Call *c;
                TAILQ_FOREACH(c, &w->tasks.inflight, link)
                        if (c->seq == seqs[i - 1])
                                break;
                if (!c)
                        continue;
                TAILQ_REMOVE(&w->tasks.inflight, c, link);
                w->tasks.n_inflight--;
                tasks_requeue(m, c);
        }
        tasks_dispatch(m);
}

void tasks_worker_blocked(Worker *w, bool blocked) {
        if (!w || w->kind != WORKER_TASK)
                return;
        if (blocked) {
                w->blocked++;
                /* Tasks waiting behind one that waits could be what it waits for: take them back. */
                if (w->tasks.n_inflight > 1 && !w->recalling && worker_send_recall(w) >= 0)
                        w->recalling = true;
        } else if (w->blocked > 0)
                w->blocked--;
        tasks_dispatch(w->manager);
}

/*
 * Who a task runs as and whether its module may be loaded, as for actors (actor-isolation.c), for a
 * while: looking the user up and checking every directory of the module's path cost several
 * syscalls and a read of the user database, and a stream of tasks asks the same question over and
 * over. An answer is kept as long as the module cache keeps a module's path (manager.c), so a
 * module made writable by others is refused within that time, as a module replaced is seen.
 */
#define TASK_ORIGIN_USEC (2 * 1000000ULL)
#define TASK_ORIGINS_MAX 256

typedef struct TaskOrigin {
        char *key; /* "uid:path" */
        uid_t run_uid;
        gid_t run_gid;
        uint64_t until;
        UT_hash_handle hh;
} TaskOrigin;

static void task_origin_free(Manager *m, TaskOrigin *o) {
        HASH_DEL(m->task_origins, o);
        free(o->key);
        free(o);
}

void tasks_free_caches(Manager *m) {
        TaskOrigin *o, *tmp;
        HASH_ITER(hh, m->task_origins, o, tmp)
                task_origin_free(m, o);
}

static int tasks_resolve_origin(Manager *m, const char *path, uid_t uid, uid_t *ret_uid, gid_t *ret_gid,
                                ReqError *e) {
        _cleanup_free_ char *key = NULL;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        TaskOrigin *o, *tmp;
        uid_t run_uid;
        gid_t run_gid;
        int r;

        if (asprintf(&key, "%u:%s", (unsigned) uid, path) < 0)
                return -ENOMEM;
        HASH_FIND_STR(m->task_origins, key, o);
        if (o && o->until > now) {
                *ret_uid = o->run_uid;
                *ret_gid = o->run_gid;
                return 0;
        }
        if (o)
                task_origin_free(m, o);

        r = actor_isolation_resolve_user(&(ActorSpec) { .uid = uid }, &run_uid, &run_gid, e);
        if (r >= 0)
                r = actor_isolation_check_module(path, run_uid, e);
        if (r < 0)
                return r;

        if (HASH_COUNT(m->task_origins) >= TASK_ORIGINS_MAX)
                HASH_ITER(hh, m->task_origins, o, tmp)
                        if (o->until <= now)
                                task_origin_free(m, o);
        if (HASH_COUNT(m->task_origins) < TASK_ORIGINS_MAX) {
                o = calloc(1, sizeof(*o));
                if (o) {
                        o->key = TAKE_PTR(key);
                        o->run_uid = run_uid;
                        o->run_gid = run_gid;
                        o->until = now + TASK_ORIGIN_USEC;
                        HASH_ADD_KEYPTR(hh, m->task_origins, o->key, strlen(o->key), o);
                }
        }
        *ret_uid = run_uid;
        *ret_gid = run_gid;
        return 0;
}

int tasks_submit(Manager *m, kactor_id object, const char *module, const char *function, double num_cpus,
                 const char *args, size_t args_len, uid_t uid, Conn *owner, Object **ret, ReqError *e) {
        _cleanup_free_ char *path = NULL;
        ReqError ce = {};
        uid_t run_uid;
        gid_t run_gid;
        Object *o;
        Call *c;
        int r;

        r = task_spec_check(module, function, num_cpus, e); /* spec-check.c: refused before an object is made */
        if (r < 0)
                return r;
        r = objstore_add(&m->store, object, &o);
        if (r < 0)
                return r;
        o->uid = uid; /* the result is the caller's */
        *ret = o;

        /* The caller's user, and a module only root or the caller could have written, as for actors. */
        r = manager_resolve_module(m, module, &path, &ce);
        if (r >= 0)
                r = tasks_resolve_origin(m, path, uid, &run_uid, &run_gid, &ce);
        if (r >= 0)
                r = call_new(m, o, args, args_len, &c, &ce);
        if (r >= 0) {
                c->module = TAKE_PTR(path);
                c->method = strdup(function);
                c->num_cpus = num_cpus;
                c->uid = run_uid;
                c->gid = run_gid;
                if (!c->method) {
                        call_free(m, c);
                        r = -ENOMEM;
                }
        }
        if (r < 0) {
                call_result_fail_new(m, o, r, &ce);
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

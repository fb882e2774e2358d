/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Actors: creation, the call path, lifetime by handles, and death. */

#include <signal.h>
#include <stdio.h>

#include "access.h"
#include "actor-isolation.h"
#include "actor.h"
#include "call.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "eviction.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "manager-trace.h"
#include "req-error.h"
#include "spec-check.h"
#include "strv.h"
#include "tasks.h"
#include "transport.h"
#include "worker-spawn.h"

/* Calls sent to a worker ahead of their turn, so that it reads many per syscall. */
#define ACTOR_WINDOW 4096
/* Dead actors kept for status and for clear errors; older ones are forgotten. */
#define DEAD_ACTORS_MAX 1024

const char *actor_state_to_string(ActorState s) {
        static const char *const table[_ACTOR_STATE_MAX] = {
                [ACTOR_PENDING] = "pending",
                [ACTOR_ALIVE] = "alive",
                [ACTOR_RESTARTING] = "restarting",
                [ACTOR_DEAD] = "dead",
        };
        return s < _ACTOR_STATE_MAX ? table[s] : "unknown";
}

void actor_queue_change(Actor *a, ActorChange change) {
        if (a->bus_changes == 0)
                TAILQ_INSERT_TAIL(&a->manager->bus_queue, a, bus_link);
        a->bus_changes |= change;
}

/* The actor goes: it leaves the queue, and the bus hears of it if it heard of it at all (what it had
 * yet to say about the actor goes with it: InterfacesRemoved ends the story). */
static void actor_queue_removed(Actor *a) {
        Manager *m = a->manager;

        if (a->bus_changes != 0) {
                TAILQ_REMOVE(&m->bus_queue, a, bus_link);
                a->bus_changes = 0;
        }
        /* Detaching, it is not gone: the next node manager serves it at the same path. */
        if (!a->bus_announced || !a->path || m->detaching)
                return;
        size_t n = strv_length(m->bus_removed);
        char **l = realloc(m->bus_removed, (n + 2) * sizeof(char *));
        if (!l) {
                log_warning("Out of memory: D-Bus clients do not learn that actor %s went.", a->id_string);
                return;
        }
        l[n] = TAKE_PTR(a->path);
        l[n + 1] = NULL;
        m->bus_removed = l;
}

void actor_set_state(Actor *a, ActorState state) {
        if (a->state == state)
                return;
        a->state = state;
        actor_queue_change(a, ACTOR_CHANGE_STATE);
}

/* Keeps the node's lineage total in step with one actor's log. */
static size_t actor_lineage_bytes(const Actor *a) {
        return a->lineage.bytes + a->lineage.checkpoint_len;
}

static void actor_maybe_checkpoint(Actor *a);

static void actor_lineage_account(Actor *a, size_t before) {
        Manager *m = a->manager;
        bool was_over = m->lineage_max > 0 && m->lineage_bytes >= m->lineage_max;

        m->lineage_bytes = m->lineage_bytes + actor_lineage_bytes(a) - before;
        if (was_over || m->lineage_max == 0 || m->lineage_bytes < m->lineage_max)
                return;

        /* Just over the limit: every actor that can checkpoint does, busy or idle. */
        Actor *x, *tmp;
        HASH_ITER(hh, m->actors, x, tmp)
                if (x->state == ACTOR_ALIVE && x->can_save && lineage_size(&x->lineage) > 0) {
                        x->force_checkpoint = true;
                        actor_maybe_checkpoint(x);
                }
}

static Actor *actor_oldest_dead(Manager *m) {
        /* The list is newest first: the tail. */
        Actor *a = m->dead_actors.lh_first, *last = NULL;
        for (; a; a = a->dead_link.le_next)
                last = a;
        return last;
}

static int on_forget_dead(sd_event_source *s, uint64_t usec, void *userdata);

/* Arms the timer for the oldest dead actor's end of grace (off when none is dead). */
static void actor_forget_dead_arm(Manager *m) {
        Actor *a = actor_oldest_dead(m);
        int r;

        if (!a) {
                (void) sd_event_source_set_enabled(m->forget_timer, SD_EVENT_OFF);
                return;
        }
        uint64_t when = a->dead_usec + m->dead_grace_usec;
        r = m->forget_timer ? sd_event_source_set_time(m->forget_timer, when)
                            : sd_event_add_time(m->event, &m->forget_timer, CLOCK_MONOTONIC, when, USEC_PER_SEC / 10,
                                                on_forget_dead, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->forget_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the timer that forgets dead actors: %m");
}

/* Forgets the dead actors past their grace period (InterfacesRemoved goes out as each is freed). */
static int on_forget_dead(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        Actor *a;

        while ((a = actor_oldest_dead(m)) && a->dead_usec + m->dead_grace_usec <= now)
                actor_free(a);
        actor_forget_dead_arm(m);
        return 0;
}

/* At most DEAD_ACTORS_MAX are kept however young: the oldest go at once (never the newest). */
static void actor_forget_dead(Manager *m) {
        Actor *a;
        while (m->n_dead_actors > DEAD_ACTORS_MAX && (a = actor_oldest_dead(m)) && a != m->dead_actors.lh_first)
                actor_free(a);
        actor_forget_dead_arm(m);
}

/* The method the worker was running when it went (its oldest call), for the journal (KACTOR_METHOD=). */
static const char *actor_running_method(const Actor *a) {
        const Call *c = TAILQ_FIRST(&a->queue.inflight);
        return c ? c->method : NULL;
}

/* The actor is dead: every queued and running call fails with ActorDied. */
static void actor_die_full(Actor *a, const char *cause, bool expected) {
        Manager *m = a->manager;
        Call *c;

        if (a->state == ACTOR_DEAD)
                return;
        manager_trace_actor_died(m, a, expected);
        free(a->death_cause);
        a->death_cause = strdup(cause ?: "unknown cause");
        if (expected)
                log_actor(LOG_DEBUG, a->id_string, NULL, "Actor %s (%s) stopped: %s", a->id_string,
                          a->class_name, a->death_cause);
        else {
                const char *method = actor_running_method(a);
                log_actor(LOG_WARNING, a->id_string, method, "Actor %s (%s) died%s%s: %s", a->id_string,
                          a->class_name, method ? " in method " : "", method ?: "", a->death_cause);
        }

        _cleanup_free_ char *msg = NULL;
        if (asprintf(&msg, "actor %s died: %s", a->id_string, a->death_cause ?: "unknown cause") < 0)
                msg = NULL;
        while ((c = callqueue_pop_any(&a->queue))) {
                call_fail(m, c, KACTOR_ERROR_ACTOR_DIED, msg ?: "actor died");
                a->calls_completed++;
        }

        if (a->name)
                HASH_DELETE(hh_name, m->actors_by_name, a);
        a->stopping = false;
        m->n_actors_live--;
        /* Its lineage can serve nobody now: a dead actor is not rebuilt. */
        m->lineage_bytes -= actor_lineage_bytes(a);
        lineage_done(&a->lineage);

        /* State and DeathCause in one signal. */
        a->state = ACTOR_DEAD;
        actor_queue_change(a, ACTOR_CHANGE_STATE | ACTOR_CHANGE_DEATH_CAUSE);
        manager_queue_resources_changed(m);

        cluster_hooks_actor_died(a);
        persist_actor_end(a);
        LIST_INSERT_HEAD(&m->dead_actors, a, dead_link);
        m->n_dead_actors++;
        a->dead_usec = now_usec(CLOCK_MONOTONIC);
        actor_forget_dead(m);
}

static void actor_die(Actor *a, const char *cause) {
        actor_die_full(a, cause, false);
}

void actor_release_resources(Actor *a) {
        if (!a->holds_resources)
                return;
        resources_release(&a->manager->resources, a->gpus, a->n_gpus, a->num_cpus);
        a->holds_resources = false;
        manager_queue_resources_changed(a->manager);
}

/* A result a re-attached worker sent again, waiting for its caller to send the call again (it is
 * never put in the caller's name by the worker's word: the caller's own CALL to this actor, with the
 * same object id, takes it). */
typedef struct HeldResult {
        kactor_id result;
        kactor_error code;
        char *message;
        char *data;
        size_t len;
        UT_hash_handle hh;
} HeldResult;

/* How long held results wait for their callers: as long as what clients held waits for them. */
#define ACTOR_HELD_RESULTS_USEC (60 * USEC_PER_SEC)

static void actor_held_results_free(Actor *a) {
        HeldResult *h, *tmp;
        HASH_ITER(hh, a->held_results, h, tmp) {
                HASH_DEL(a->held_results, h);
                free(h->message);
                free(h->data);
                free(h);
        }
        a->held_timer = sd_event_source_disable_unref(a->held_timer);
}

static int on_held_results_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Actor *a = userdata;
        log_actor(LOG_INFO, a->id_string, NULL,
                  "%u result%s of actor %s that ran while the node manager restarted found no caller to take them.",
                  HASH_COUNT(a->held_results), HASH_COUNT(a->held_results) == 1 ? "" : "s", a->id_string);
        actor_held_results_free(a);
        return 0;
}

/* The call for object o to actor a was sent again by its caller: a held result answers it. */
static bool actor_take_held_result(Actor *a, Object *o) {
        HeldResult *h;
        if (!a->held_results)
                return false;
        HASH_FIND(hh, a->held_results, &o->id, sizeof(o->id), h);
        if (!h)
                return false;
        HASH_DEL(a->held_results, h);
        Manager *m = a->manager;
        if (h->code == KACTOR_OK) {
                _cleanup_free_ kactor_id *ids = NULL;
                _cleanup_free_ uint8_t *is_actor = NULL;
                size_t n = 0;
                if (codec_scan_ids(h->data, h->len, &ids, &is_actor, &n, NULL) < 0 ||
                    objstore_set_ready(&m->store, o, h->data, h->len, ids, is_actor, n) < 0)
                        (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_TASK_FAILED, "malformed result");
        } else
                (void) objstore_set_failed(&m->store, o, h->code, h->message ?: "failed");
        a->calls_submitted++;
        a->calls_completed++;
        free(h->message);
        free(h->data);
        free(h);
        return true;
}

/* Frees an actor that is listed nowhere (any more): what it holds, then its memory. actor_free()
 * unlists it first; actor_create() calls this alone for an actor it never listed. */
static void actor_free_unlisted(Actor *a) {
        Manager *m = a->manager;

        actor_isolation_free(a);
        actor_release_resources(a);
        for (size_t i = 0; i < a->n_arg_ids; i++) {
                if (a->arg_id_actor[i])
                        actor_unref_id(m, a->arg_ids[i]);
                else
                        objstore_unref(&m->store, objstore_find(&m->store, a->arg_ids[i]));
        }
        sd_event_source_disable_unref(a->restart_timer);
        actor_held_results_free(a);
        if (!a->shadow && a->state != ACTOR_DEAD) /* shadows' and the dead's logs are not counted */
                m->lineage_bytes -= actor_lineage_bytes(a);
        lineage_done(&a->lineage);
        free(a->arg_ids);
        free(a->arg_id_actor);
        /* Last, once nothing can queue a change of it any more; a shadow too (queued, never announced). */
        actor_queue_removed(a);
        free(a->path);
        free(a->name);
        free(a->module);
        free(a->module_arg);
        free(a->class_name);
        free(a->args);
        free(a->gpus);
        free(a->allow_users);
        free(a->allow_groups);
        free(a->death_cause);
        free(a->bus_owner);
        free(a);
}

void actor_free(Actor *a) {
        Manager *m;
        if (!a)
                return;
        m = a->manager;
        manager_trace_actor_freed(m, a);
        cluster_hooks_actor_freed(a);
        Call *c;
        while ((c = callqueue_pop_any(&a->queue)))
                call_fail(m, c, KACTOR_ERROR_ACTOR_DIED, "the node manager stopped");
        if (a->worker) {
                a->worker->actor = NULL;
                a->worker = NULL;
        }
        if (a->shadow)
                objstore_unref(&m->store, a->rebuild_target);
        else if (a->state != ACTOR_DEAD) {
                if (a->name)
                        HASH_DELETE(hh_name, m->actors_by_name, a);
                m->n_actors_live--;
        } else {
                LIST_REMOVE(a, dead_link);
                m->n_dead_actors--;
        }
        if (!a->shadow)
                HASH_DELETE(hh, m->actors, a);
        actor_free_unlisted(a);
}

/* Stops an actor nobody holds any more, once its calls are done. */
static void actor_maybe_stop(Actor *a) {
        /* Detaching, the handles go with our connections but stay in the journal: the actor runs on. */
        if (!a->stopping || !callqueue_is_empty(&a->queue) || a->state == ACTOR_DEAD || a->manager->detaching)
                return;
        log_actor(LOG_DEBUG, a->id_string, NULL, "No handles to actor %s left, stopping it.", a->id_string);
        if (a->worker)
                worker_stop(a->worker);
        actor_die_full(a, "no handles left", true);
}

void actor_ref(Actor *a) {
        a->refs++;
        a->stopping = false;
}

void actor_unref(Actor *a) {
        if (a->refs > 0)
                a->refs--;
        if (a->refs == 0 && !a->detached && a->state != ACTOR_DEAD) {
                a->stopping = true;
                actor_maybe_stop(a);
        }
}

bool actor_ref_id(Manager *m, kactor_id id) {
        Actor *a = manager_find_actor(m, id);
        if (a)
                actor_ref(a);
        else
                return cluster_hooks_actor_ref(m, id);
        return a;
}

void actor_unref_id(Manager *m, kactor_id id) {
        Actor *a = manager_find_actor(m, id);
        if (a)
                actor_unref(a);
        else
                cluster_hooks_actor_unref(m, id);
}

void actor_adopt_call(Actor *a, Call *c) {
        c->owner = a;
        c->remote = NULL;
        callqueue_push(&a->queue, c);
        a->calls_submitted++;
        a->stopping = false;
}

/* Replaces ready top-level references in constructor arguments; pending ones are refused. */
static int actor_prepare_args(Manager *m, Actor *a, const char *args, size_t len, ReqError *e) {
        Call tmp = { .args = (char *) args, .args_len = len };
        char *resolved = NULL;
        size_t resolved_len = 0;
        int r;

        r = codec_scan_ids(args, len, &tmp.ids, &tmp.id_actor, &tmp.n_ids, &tmp.top_refs);
        if (r < 0)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "malformed constructor arguments");
        /* Only what its owner may read: a reference gives no right by itself. */
        r = call_check_ids(m, tmp.ids, tmp.id_actor, tmp.n_ids, a->uid, e);
        if (r < 0) {
                free(tmp.ids);
                free(tmp.id_actor);
                return r;
        }
        if (tmp.top_refs) {
                r = call_resolve_args(m, &tmp, &resolved, &resolved_len, e);
                free(tmp.ids);
                free(tmp.id_actor);
                tmp.ids = NULL;
                tmp.id_actor = NULL;
                if (r < 0) {
                        if (r == -EREMOTEIO && e->code == KACTOR_ERROR_NO_SUCH_OBJECT)
                                return req_error_wrap(e, KACTOR_ERROR_INVALID_ARGS,
                                                      "constructor arguments must be ready objects");
                        return r;
                }
                args = resolved;
                len = resolved_len;
                r = codec_scan_ids(args, len, &tmp.ids, &tmp.id_actor, &tmp.n_ids, NULL);
                if (r < 0) {
                        free(resolved);
                        return r;
                }
        }
        /* Hold what the (resolved) arguments name for the actor's life. */
        tmp.args = NULL;
        r = call_hold_ids(m, &tmp, e);
        if (r < 0) {
                free(resolved);
                free(tmp.ids);
                free(tmp.id_actor);
                return r;
        }
        if (resolved)
                a->args = resolved;
        else {
                a->args = malloc(len);
                if (!a->args) {
                        free(tmp.ids);
                        free(tmp.id_actor);
                        return -ENOMEM;
                }
                memcpy(a->args, args, len);
        }
        a->args_len = len;
        a->arg_ids = tmp.ids;
        a->arg_id_actor = tmp.id_actor;
        a->n_arg_ids = tmp.n_ids;
        return 0;
}

/* Checks a spec against this node: the module it names, the user its worker runs as, the limits, the
 * name. Returns the module's path and that user. */
static int actor_validate(Manager *m, const ActorSpec *spec, char **ret_module, uid_t *ret_uid, gid_t *ret_gid,
                          ReqError *e) {
        _cleanup_free_ char *module = NULL;
        uid_t run_uid;
        gid_t run_gid;
        int r;

        if (m->stopping)
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "the node manager is stopping");
        /* Here too, not only at the front ends: peers and rebuilds make actors from their specs. */
        r = actor_spec_check(spec, e);
        if (r < 0)
                return r;
        if (!spec->class_name || !*spec->class_name)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "no class given");
        r = manager_resolve_module(m, spec->module, &module, e);
        if (r < 0)
                return r;
        r = actor_isolation_resolve_user(spec, &run_uid, &run_gid, e);
        if (r < 0)
                return r;
        r = actor_isolation_check_module(module, run_uid, e);
        if (r < 0)
                return r;
        r = actor_isolation_check_limits(m, spec, e);
        if (r < 0)
                return r;
        if (spec->name) {
                Actor *other = manager_find_actor_by_name(m, spec->name);
                if (other)
                        return req_error(e, KACTOR_ERROR_NAME_TAKEN, "the name '%s' is taken by actor %s",
                                         spec->name, other->id_string);
        }

        *ret_module = TAKE_PTR(module);
        *ret_uid = run_uid;
        *ret_gid = run_gid;
        return 0;
}

/* A pending actor made from a validated spec, listed nowhere and holding nothing yet. Takes *module
 * (the resolved path) and, for a rebuild, the spec's lineage. */
static int actor_new(Manager *m, const ActorSpec *spec, char **module, uid_t run_uid, gid_t run_gid, Actor **ret) {
        Actor *a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->manager = m;
        a->id = kactor_id_is_null(spec->id) ? manager_new_local_id(m) : spec->id;
        kactor_id_to_string(a->id, a->id_string);
        callqueue_init(&a->queue);
        lineage_init(&a->lineage);
        a->checkpoint_interval = spec->checkpoint_interval ?: m->checkpoint_interval;
        a->state = ACTOR_PENDING;
        a->max_restarts = spec->max_restarts;
        a->detached = spec->detached;
        a->uid = spec->uid;
        a->run_uid = run_uid;
        a->run_gid = run_gid;
        a->tasks_max = spec->tasks_max;
        a->memory_max = spec->memory_max;
        if (spec->n_allow_users > 0)
                a->allow_users = memdup(spec->allow_users, spec->n_allow_users * sizeof(uid_t));
        a->n_allow_users = a->allow_users ? spec->n_allow_users : 0;
        if (spec->n_allow_groups > 0)
                a->allow_groups = memdup(spec->allow_groups, spec->n_allow_groups * sizeof(gid_t));
        a->n_allow_groups = a->allow_groups ? spec->n_allow_groups : 0;
        a->module = TAKE_PTR(*module);
        a->module_arg = strdup(spec->module);
        a->class_name = strdup(spec->class_name);
        a->name = spec->name ? strdup(spec->name) : NULL;
        if (asprintf(&a->path, "%s/%s", "/io/kactor/NodeManager1/actor", a->id_string) < 0)
                a->path = NULL;
        if (spec->num_gpus > 0)
                a->gpus = calloc(spec->num_gpus, sizeof(uint32_t));
        if (!a->module_arg || !a->class_name || (spec->name && !a->name) || !a->path ||
            (spec->num_gpus > 0 && !a->gpus) || a->n_allow_users != spec->n_allow_users ||
            a->n_allow_groups != spec->n_allow_groups) {
                actor_free_unlisted(a);
                return -ENOMEM;
        }
        if (spec->lineage) {
                /* Rebuilt from a replica: the constructor (or the checkpoint) and then the log. */
                a->lineage = *spec->lineage;
                lineage_init(spec->lineage);
                m->lineage_bytes += actor_lineage_bytes(a);
        }

        *ret = a;
        return 0;
}

/* Reserves what the actor needs before it is listed: its GPUs and CPUs, and whatever its constructor's
 * arguments name. */
static int actor_reserve(Actor *a, const ActorSpec *spec, ReqError *e) {
        Manager *m = a->manager;
        _cleanup_free_ char *why = NULL;
        int r;

        r = resources_acquire(&m->resources, spec->num_gpus, spec->num_cpus, a->gpus, &why);
        if (r < 0)
                return req_error(e, KACTOR_ERROR_INSUFFICIENT_RESOURCES, "not enough %s: %s",
                                 spec->num_gpus > resources_free_gpus(&m->resources) ? "GPUs" : "CPUs", why ?: "");
        a->n_gpus = spec->num_gpus;
        a->num_cpus = spec->num_cpus;
        a->holds_resources = true;
        if (a->n_gpus > 0 || a->num_cpus > 0)
                manager_queue_resources_changed(m);

        return actor_prepare_args(m, a, spec->args, spec->args_len, e);
}

/* Lists the actor and starts its worker. On failure the actor is freed (unlisted again). */
static int actor_register(Actor *a, ReqError *e) {
        Manager *m = a->manager;
        Worker *w;
        int r;

        HASH_ADD(hh, m->actors, id, sizeof(a->id), a);
        if (a->name)
                HASH_ADD_KEYPTR(hh_name, m->actors_by_name, a->name, strlen(a->name), a);
        m->n_actors_live++;

        r = worker_spawn(m, WORKER_ACTOR, a, &w);
        if (r >= 0)
                r = actor_isolation_start(a, w, e);
        if (r < 0 && a->worker)
                (void) kill(a->worker->pid, SIGKILL); /* reaped by the launcher */
        if (r == -EREMOTEIO) {
                log_actor(LOG_WARNING, a->id_string, NULL, "Actor %s: %s", a->id_string, e->message ?: "");
                actor_free(a);
                return r;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to start a worker for actor %s: %m", a->id_string);
                actor_free(a);
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "failed to start the actor's worker: %s",
                                 strerror(-r));
        }

        actor_queue_change(a, ACTOR_CHANGE_ADDED);
        manager_queue_resources_changed(m);
        cluster_hooks_actor_started(a);
        persist_actor(a);
        return 0;
}

int actor_create(Manager *m, const ActorSpec *spec, Actor **ret, ReqError *e) {
        _cleanup_free_ char *module = NULL;
        uid_t run_uid = (uid_t) -1;
        gid_t run_gid = (gid_t) -1;
        Actor *a;
        int r;

        r = actor_validate(m, spec, &module, &run_uid, &run_gid, e);
        if (r < 0)
                return r;
        r = actor_new(m, spec, &module, run_uid, run_gid, &a);
        if (r < 0)
                return r;
        r = actor_reserve(a, spec, e);
        if (r < 0) {
                if (spec->lineage) { /* given back, for a rebuild elsewhere */
                        m->lineage_bytes -= actor_lineage_bytes(a);
                        *spec->lineage = a->lineage;
                        lineage_init(&a->lineage);
                }
                actor_free_unlisted(a);
                return r;
        }
        r = actor_register(a, e);
        if (r < 0)
                return r;

        log_actor(LOG_INFO, a->id_string, NULL, "Created actor %s (%s, module %s) for user %u%s%s.", a->id_string,
                  a->class_name, a->module, (unsigned) a->uid, a->name ? ", named " : "", a->name ?: "");
        *ret = a;
        return 0;
}

int actor_create_anywhere(Manager *m, const ActorSpec *spec, Actor **ret_local, kactor_id *ret_id,
                          ReqError *e) {
        _cleanup_free_ char *node = NULL;
        /* Before placing it: a peer would refuse it alike, later and less clearly. */
        int r = actor_spec_check(spec, e);
        if (r < 0)
                return r;
        r = cluster_hooks_place_actor(m, spec, &node, e);
        if (r < 0)
                return r;
        if (r > 0) {
                *ret_local = NULL;
                return cluster_hooks_create_actor(m, spec, node, ret_id, e);
        }
        if (spec->node && *spec->node && !streq(spec->node, m->node_id))
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "node %s is not this node, and there is no cluster",
                                 spec->node);
        Actor *a;
        r = actor_create(m, spec, &a, e);
        if (r < 0)
                return r;
        *ret_local = a;
        *ret_id = a->id;
        return 0;
}

/*
 * A shadow ends: it rebuilt its object (or could not), and its worker and it go. The live actor is
 * never touched.
 */
static int actor_start_worker(Actor *a);

static void shadow_finish(Actor *a, kactor_error code, const char *message, const char *data, size_t len) {
        Manager *m = a->manager;
        Object *o = a->rebuild_target;

        if (o && o->state == OBJECT_PENDING) {
                if (code == KACTOR_OK) {
                        _cleanup_free_ kactor_id *ids = NULL;
                        _cleanup_free_ uint8_t *is_actor = NULL;
                        size_t n = 0;
                        if (codec_scan_ids(data, len, &ids, &is_actor, &n, NULL) >= 0)
                                (void) objstore_set_ready(&m->store, o, data, len, ids, is_actor, n);
                }
                if (o->state == OBJECT_PENDING) {
                        _cleanup_free_ char *msg = NULL;
                        if (asprintf(
                                    &msg,
                                    "rebuilding the evicted result by replaying the actor's lineage failed: %s",
                                    message ?: "unknown error") < 0)
                                msg = NULL;
                        (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_OBJECT,
                                                   msg ?: "rebuilding failed");
                }
        }
        if (a->worker) {
                Worker *w = a->worker;
                worker_stop(w);
                w->actor = NULL;
                a->worker = NULL;
        }
        a->state = ACTOR_DEAD;
        actor_free(a);
}

int actor_rebuild_object(Actor *a, Object *o, uint64_t index, char **ret_why) {
        Manager *m = a->manager;
        int r;

        if (!lineage_get(&a->lineage, index)) {
                if (index <= a->lineage.checkpoint_index)
                        r = asprintf(ret_why,
                                     "the lineage of actor %s before call %" PRIu64
                                     " was replaced by a checkpoint",
                                     a->id_string, a->lineage.checkpoint_index + 1);
                else
                        r = asprintf(ret_why, "the lineage of actor %s does not hold call %" PRIu64,
                                     a->id_string, index);
                if (r < 0)
                        *ret_why = NULL;
                return -ENOENT;
        }

        Actor *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->shadow = true;
        /* Its own id (and so its own cgroup); it runs as the actor's user. */
        s->id = manager_new_local_id(m);
        kactor_id_to_string(s->id, s->id_string);
        s->state = ACTOR_PENDING;
        s->uid = a->uid;
        s->run_uid = a->run_uid;
        s->run_gid = a->run_gid;
        s->memory_max = a->memory_max;
        s->tasks_max = a->tasks_max;
        callqueue_init(&s->queue);
        lineage_init(&s->lineage);
        s->module = strdup(a->module);
        s->class_name = strdup(a->class_name);
        s->args = malloc(a->args_len ?: 1);
        if (!s->module || !s->class_name || !s->args) {
                r = -ENOMEM;
                goto fail;
        }
        memcpy(s->args, a->args, a->args_len);
        s->args_len = a->args_len;

        /* The same history up to the call: the checkpoint, then the records after it. */
        if (a->lineage.checkpoint) {
                s->lineage.checkpoint = malloc(a->lineage.checkpoint_len ?: 1);
                if (!s->lineage.checkpoint) {
                        r = -ENOMEM;
                        goto fail;
                }
                memcpy(s->lineage.checkpoint, a->lineage.checkpoint, a->lineage.checkpoint_len);
                s->lineage.checkpoint_len = a->lineage.checkpoint_len;
                s->lineage.checkpoint_index = a->lineage.checkpoint_index;
        }
        s->lineage.next_index = a->lineage.base_index;
        for (size_t i = 0; i < lineage_size(&a->lineage); i++) {
                const LineageRecord *rec = lineage_at(&a->lineage, i);
                if (rec->index > index)
                        break;
                if (lineage_append(&s->lineage, rec->result, rec->method, rec->args, rec->args_len,
                                   rec->code) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        objstore_ref(o);
        s->rebuild_target = o;
        s->rebuild_index = index;

        r = actor_start_worker(s);
        if (r < 0)
                goto fail;
        objstore_set_rebuilding(&m->store, o);
        log_actor(LOG_DEBUG, a->id_string, NULL,
                  "Rebuilding an evicted result of actor %s: replaying %zu calls in a "
                  "temporary worker.",
                  a->id_string, lineage_size(&s->lineage));
        return 0;

fail:
        if (r == -ENOMEM)
                *ret_why = NULL;
        else if (asprintf(ret_why, "no temporary worker could be started: %s", strerror(-r)) < 0)
                *ret_why = NULL;
        s->state = ACTOR_DEAD;
        if (s->worker) {
                s->worker->actor = NULL;
                worker_stop(s->worker);
                s->worker = NULL;
        }
        actor_free(s);
        return r;
}

static bool actor_can_restart(const Actor *a) {
        return !a->no_restart && !a->manager->stopping &&
                (a->max_restarts < 0 || a->restarts < (uint32_t) a->max_restarts);
}

/* Starts a worker for the actor: its constructor (or the restore hook) runs there. */
static int actor_start_worker(Actor *a) {
        Worker *w;
        /* The last worker's cgroup goes first (whatever it left is killed): the new one takes its name. */
        actor_isolation_free_cgroup(a);
        int r = worker_spawn(a->manager, WORKER_ACTOR, a, &w);
        if (r >= 0)
                r = actor_isolation_start(a, w, NULL);
        if (r < 0 && a->worker)
                (void) kill(a->worker->pid, SIGKILL);
        return r;
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Actor *a = userdata;
        a->restart_timer = sd_event_source_disable_unref(a->restart_timer);
        if (a->state != ACTOR_RESTARTING)
                return 0;
        int r = actor_start_worker(a);
        if (r < 0) {
                log_error_errno(r, "Failed to start a worker to restart actor %s: %m", a->id_string);
                actor_die(a, "its worker could not be restarted");
                actor_release_resources(a);
        }
        return 0;
}

/*
 * The worker died and the actor may restart: calls it was running go back to the head of the queue
 * (they run once more), a new worker runs the constructor (or restores the checkpoint), the log is
 * replayed, and only then are new calls admitted. Restarts that fail again before the actor is back
 * wait a little longer each time (10 ms, doubling, at most 1 s).
 */
static void actor_restart(Actor *a, const char *cause) {
        Manager *m = a->manager;
        Call *c, *next;
        _cleanup_free_ char *method = actor_running_method(a) ? strdup(actor_running_method(a)) : NULL;

        for (c = TAILQ_FIRST(&a->queue.inflight); c; c = next) {
                next = TAILQ_NEXT(c, link);
                if (c->kind == CALL_NORMAL)
                        continue;
                TAILQ_REMOVE(&a->queue.inflight, c, link);
                a->queue.n_inflight--;
                call_free(m, c);
        }
        a->replaying = 0;
        a->save_inflight = false;
        callqueue_requeue_inflight(&a->queue);

        a->restarts++;
        if (a->max_restarts < 0)
                log_actor(LOG_WARNING, a->id_string, method,
                          "Actor %s (%s): %s%s%s; restarting it (restart %u), replaying %zu calls.",
                          a->id_string, a->class_name, cause, method ? " in method " : "", method ?: "",
                          a->restarts, lineage_size(&a->lineage));
        else
                log_actor(LOG_WARNING, a->id_string, method,
                          "Actor %s (%s): %s%s%s; restarting it (restart %u of %d), replaying %zu calls.",
                          a->id_string, a->class_name, cause, method ? " in method " : "", method ?: "",
                          a->restarts, a->max_restarts, lineage_size(&a->lineage));
        actor_set_state(a, ACTOR_RESTARTING);
        actor_queue_change(a, ACTOR_CHANGE_RESTARTS);

        uint64_t delay = a->failures == 0
                ? 0
                : MIN((uint64_t) 10000 << MIN(a->failures - 1, 16u), (uint64_t) 1000000);
        a->failures++;
        int r = sd_event_add_time_relative(m->event, &a->restart_timer, CLOCK_MONOTONIC, delay, 0,
                                           on_restart_timer, a);
        if (r < 0) {
                actor_die(a, "its worker could not be restarted");
                actor_release_resources(a);
        }
}

static void actor_replay_done(Actor *a) {
        /* failures is reset only once a call completes: a call that crashes the worker each time
         * keeps the restarts paced. */
        actor_set_state(a, ACTOR_ALIVE);
        actor_dispatch(a);
}

/* Sends every logged call to the new worker; their results are dropped. */
static int actor_replay(Actor *a) {
        Manager *m = a->manager;
        Worker *w = a->worker;

        for (size_t i = 0; i < lineage_size(&a->lineage); i++) {
                const LineageRecord *rec = lineage_at(&a->lineage, i);
                Call *c = calloc(1, sizeof(*c));
                if (!c)
                        return -ENOMEM;
                c->kind = CALL_REPLAY;
                c->lineage_index = rec->index;
                c->manager = m;
                c->owner = a;
                c->method = strdup(rec->method);
                c->args = malloc(rec->args_len ?: 1);
                if (!c->method || !c->args) {
                        call_free(m, c);
                        return -ENOMEM;
                }
                memcpy(c->args, rec->args, rec->args_len);
                c->args_len = rec->args_len;
                callqueue_start_direct(&a->queue, c, ++w->next_seq);
                a->replaying++;
                int r = worker_send_call(w, c);
                if (r < 0)
                        return r;
        }
        return 0;
}

void actor_worker_ready(Actor *a, kactor_error code, const char *message, uint32_t flags) {
        if (!a || a->state == ACTOR_DEAD)
                return;
        if (a->shadow && code != KACTOR_OK) {
                shadow_finish(a, code, message, NULL, 0);
                return;
        }
        if (code != KACTOR_OK) {
                /* The constructor failed: it would again. The worker ends by itself after saying so. */
                a->no_restart = true;
                actor_die(a, message ?: "the constructor failed");
                return;
        }
        manager_trace_actor_ready(a->manager, a);
        a->can_save = flags & INIT_CAN_SAVE;
        a->restored_unready = false;
        persist_actor_ready(a);
        if (lineage_size(&a->lineage) == 0) {
                actor_replay_done(a);
                actor_maybe_stop(a);
                return;
        }
        int r = actor_replay(a);
        if (r < 0) {
                log_error_errno(r, "Failed to replay the lineage of actor %s: %m", a->id_string);
                (void) actor_kill(a, true, "its lineage could not be replayed");
        }
}

static void actor_worker_gone_now(Actor *a, const char *cause) {
        /* Its cgroup may know better than its exit status: the kernel's OOM killer. */
        _cleanup_free_ char *oom_cause = actor_isolation_death_cause(a, a->worker, cause);
        if (oom_cause)
                cause = oom_cause;
        a->worker = NULL;
        if (a->shadow) {
                shadow_finish(a, KACTOR_ERROR_ACTOR_DIED, cause, NULL, 0);
                return;
        }
        if (a->restored_unready && a->state != ACTOR_DEAD) {
                /* A worker a previous node manager started went before its constructor was known to be
                 * done (before INIT reached it, most likely): no call ran; it starts as it would have. */
                a->restored_unready = false;
                log_actor(LOG_INFO, a->id_string, NULL,
                          "The worker of actor %s went before its constructor was done (%s): starting it again.",
                          a->id_string, cause);
                if (actor_start_worker(a) >= 0)
                        return;
        }
        if (a->state != ACTOR_DEAD && actor_can_restart(a)) {
                actor_restart(a, cause);
                return;
        }
        actor_die(a, cause);
        /* GPUs return once everything in the actor's cgroup is gone. */
        actor_isolation_worker_gone(a);
}

void actor_worker_gone(Actor *a, const char *cause) {
        /* Its direct sockets went with it, and their holds on the actor: after the restart or the
         * death is decided, so that an actor held only by them stops rather than restarts. */
        unsigned holds = 0;
        Worker *w = a->worker;
        for (size_t i = 0; w && i < w->n_direct_callers; i++) {
                holds += w->direct_callers[i].n_open;
                w->direct_callers[i].n_open = 0;
        }
        actor_worker_gone_now(a, cause);
        while (holds-- > 0)
                actor_unref(a);
}

int actor_kill(Actor *a, bool no_restart, const char *why) {
        if (a->state == ACTOR_DEAD)
                return 0;
        if (!no_restart && actor_can_restart(a)) {
                /* It comes back: the restart begins when the worker is gone. */
                actor_isolation_kill(a);
                return 0;
        }
        a->no_restart = true;
        actor_isolation_kill(a); /* the whole cgroup: no child of the worker survives */
        /* GPUs come back when the worker is gone (actor_worker_gone). */
        actor_die_full(a, why, true);
        if (!a->worker)
                actor_isolation_worker_gone(a);
        return 0;
}

int actor_kill_by_request(Actor *a, bool no_restart, uid_t uid) {
        if (a->state == ACTOR_DEAD)
                return 0;
        bool restarts = !no_restart && actor_can_restart(a);
        log_actor(LOG_INFO, a->id_string, NULL, "Killed actor %s (%s) by request of user %u%s.", a->id_string,
                  a->class_name, (unsigned) uid, restarts ? "; it restarts" : "");
        return actor_kill(a, no_restart, "killed by request");
}

/* Asks the worker for a checkpoint when enough calls were logged since the last one. */
static void actor_maybe_checkpoint(Actor *a) {
        Manager *m = a->manager;
        Worker *w = a->worker;

        if (!a->can_save || a->save_inflight || lineage_size(&a->lineage) == 0)
                return;
        if (!a->force_checkpoint &&
            (a->checkpoint_interval == 0 || a->calls_since_checkpoint < a->checkpoint_interval))
                return;
        Call *c = calloc(1, sizeof(*c));
        if (!c)
                return;
        c->kind = CALL_SAVE;
        c->manager = m;
        c->owner = a;
        callqueue_start_direct(&a->queue, c, ++w->next_seq);
        a->save_inflight = true;
        a->force_checkpoint = false;
        a->calls_since_checkpoint = 0;
        if (worker_send_save(w, c) < 0)
                (void) actor_kill(a, true,
                                  "the node manager could not send a checkpoint request to the worker");
}

void actor_dispatch(Actor *a) {
        Manager *m = a->manager;
        Worker *w = a->worker;
        Call *c;

        if (a->state != ACTOR_ALIVE || !w || !w->ready || !w->conn)
                return;
        while (a->queue.n_inflight < ACTOR_WINDOW && (c = callqueue_peek_ready(&a->queue))) {
                ReqError e = {};
                int r = call_prepare_args(m, c, &e);
                if (r == -EAGAIN)
                        break; /* an argument is being rebuilt: the call (and the queue) waits */
                if (r < 0) {
                        /* An argument failed: so does the call; the queue goes on. */
                        TAILQ_REMOVE(&a->queue.queued, c, link);
                        a->queue.n_queued--;
                        a->calls_completed++;
                        call_fail(m, c, r == -EREMOTEIO ? e.code : KACTOR_ERROR_TASK_FAILED,
                                  e.message ?: "the arguments could not be prepared");
                        req_error_done(&e);
                        continue;
                }
                callqueue_start(&a->queue, c, ++w->next_seq);
                if (c->trace_queued_ns)
                        c->trace_dispatched_ns = manager_trace_now(m);
                KACTOR_PROBE(call_dispatched, kactor_trace_id_hash(a->id.hi, a->id.lo), c->seq,
                             kactor_trace_id_hash(call_result_id(c).hi, call_result_id(c).lo),
                             kactor_trace_method_id(c->method, strlen(c->method)));
                r = worker_send_call(w, c);
                if (r < 0) {
                        (void) actor_kill(a, true, "the node manager could not send a call to the worker");
                        return;
                }
        }
        actor_maybe_checkpoint(a);
        actor_maybe_stop(a);
}

/* Fails o, a call's result, with ActorDied and the dead actor a's cause. */
static void actor_fail_object_dead(Actor *a, Object *o) {
        _cleanup_free_ char *msg = NULL;
        if (asprintf(&msg, "actor %s died: %s", a->id_string, a->death_cause ?: "unknown cause") < 0)
                msg = NULL;
        (void) objstore_set_failed(&a->manager->store, o, KACTOR_ERROR_ACTOR_DIED, msg ?: "actor died");
}

int actor_submit_call(Manager *m, kactor_id actor, kactor_id object, const char *method, size_t method_len,
                      const char *args, size_t args_len, uid_t uid, Object **ret, ReqError *e) {
        Object *o;
        Call *c;
        int r;

        r = call_method_check(method, method_len, e);
        if (r < 0)
                return r;
        KACTOR_PROBE(call_submitted, kactor_trace_id_hash(actor.hi, actor.lo),
                     kactor_trace_id_hash(object.hi, object.lo), kactor_trace_method_id(method, method_len));
        r = objstore_add(&m->store, object, &o);
        if (r < 0)
                return r;
        o->uid = uid; /* the result is the caller's */

        Actor *a = manager_find_actor(m, actor);
        if ((!a || (a->state == ACTOR_DEAD && a->fenced)) && cluster_hooks_actor_routable(m, actor)) {
                r = cluster_hooks_submit_call(m, actor, o, method, method_len, args, args_len, e);
                *ret = o;
                return r < 0 ? r : 0;
        }
        ReqError ae = {};
        if (a && access_check_actor(m, a, uid, ACCESS_CALL, &ae) < 0) {
                (void) objstore_set_failed(&m->store, o, ae.code, ae.message ?: "access denied");
                req_error_done(&ae);
                *ret = o;
                return 0;
        }
        if (!a || a->state == ACTOR_DEAD) {
                if (!a)
                        (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_NO_SUCH_ACTOR,
                                                   "no such actor");
                else
                        actor_fail_object_dead(a, o);
                *ret = o;
                return 0;
        }

        if (m->lineage_max > 0 && m->lineage_bytes >= m->lineage_max) {
                if (a->can_save)
                        a->force_checkpoint = true;
                else if (lineage_size(&a->lineage) > 0) {
                        _cleanup_free_ char *msg = NULL;
                        if (asprintf(
                                    &msg,
                                    "the node's lineage memory limit (%" PRIu64
                                    " bytes) is reached, and actor %s "
                                    "(class %s) keeps %zu bytes of lineage but cannot checkpoint (no save hook)",
                                    m->lineage_max, a->id_string, a->class_name, actor_lineage_bytes(a)) < 0)
                                msg = NULL;
                        (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_INSUFFICIENT_RESOURCES,
                                                   msg ?: "lineage memory limit reached");
                        *ret = o;
                        return 0;
                }
        }

        /* Sent again after a restart, and it had run: its worker's result answers it. */
        if (actor_take_held_result(a, o)) {
                *ret = o;
                return 0;
        }

        ReqError ce = {};
        r = call_new(m, o, args, args_len, &c, &ce);
        if (r >= 0) {
                c->method = strndup(method, method_len);
                if (!c->method) {
                        call_free(m, c);
                        r = -ENOMEM;
                }
        }
        if (r < 0) {
                call_result_fail_new(m, o, r, &ce);
                *ret = o;
                return 0;
        }
        c->owner = a;
        callqueue_push(&a->queue, c);
        KACTOR_PROBE(call_queued, kactor_trace_id_hash(a->id.hi, a->id.lo),
                     kactor_trace_id_hash(object.hi, object.lo), kactor_trace_method_id(method, method_len));
        if (m->trace_calls || KACTOR_PROBE_ENABLED(call_stored))
                manager_trace_call_queued(m, a, c);
        a->calls_submitted++;
        a->stopping = false;
        r = call_watch_deps(m, c);
        if (r < 0)
                return r;
        actor_dispatch(a);
        *ret = o;
        return 0;
}

/* The node's lineage memory is at its limit, and a has some of it (what refuses its calls). */
static bool actor_lineage_full(const Actor *a) {
        const Manager *m = a->manager;
        return m->lineage_max > 0 && m->lineage_bytes >= m->lineage_max && lineage_size(&a->lineage) > 0;
}

int actor_direct_check(Manager *m, Actor *a, kactor_id id, uid_t uid, ReqError *e) {
        char s[KACTOR_ID_STRING_MAX];

        kactor_id_to_string(id, s);
        if (!a || a->shadow) {
                if (cluster_hooks_actor_routable(m, id))
                        return req_error(e, KACTOR_ERROR_NOT_SUPPORTED, "actor %s is not on this node", s);
                return req_error(e, KACTOR_ERROR_NO_SUCH_ACTOR, "no actor %s", s);
        }
        int r = access_check_actor(m, a, uid, ACCESS_CALL, e);
        if (r < 0)
                return r;
        if (a->state == ACTOR_DEAD)
                return req_error(e, KACTOR_ERROR_ACTOR_DIED, "actor %s died: %s", s, a->death_cause ?: "unknown cause");
        if (actor_lineage_full(a) && !a->can_save)
                return req_error(e, KACTOR_ERROR_TIMEOUT,
                                 "the node's lineage memory limit is reached and actor %s cannot checkpoint", s);
        if (cluster_hooks_enabled(m))
                return req_error(e, KACTOR_ERROR_NOT_SUPPORTED,
                                 "actor %s is in a cluster: its calls go through the node manager, which has "
                                 "their records on its replicas before they are answered", s);
        if (a->state != ACTOR_ALIVE || !a->worker || !a->worker->ready || !a->worker->conn)
                return req_error(e, KACTOR_ERROR_TIMEOUT, "actor %s is %s: ask again later", s,
                                 actor_state_to_string(a->state));
        return 0;
}

int actor_direct_call(Actor *a, kactor_id object, const char *method, size_t method_len, const char *args,
                      size_t args_len, uid_t uid, uint64_t read_ns, bool maybe_resent, Object **ret_new) {
        Manager *m = a->manager;
        Call *c = NULL;
        bool inflight = false;
        int r;

        *ret_new = NULL;
        /* Its caller may have sent it again relayed (its direct socket broke) before this record
         * came: then that call is this one. Otherwise the id is new, and nothing is made for it
         * until its result comes (direct-results.h). */
        Object *o = maybe_resent ? objstore_find(&m->store, object) : NULL;
        if (a->state == ACTOR_DEAD) {
                /* Killed before this record was read: the call dies with it, as queued ones do. */
                if (o)
                        return 0;
                r = objstore_add(&m->store, object, &o);
                if (r < 0)
                        return r;
                o->uid = uid; /* the result is the caller's */
                actor_fail_object_dead(a, o);
                a->calls_submitted++;
                a->calls_completed++;
                a->calls_direct++;
                *ret_new = o;
                return 0;
        }
        if (o) {
                TAILQ_FOREACH(c, &a->queue.queued, link)
                        if (c->result == o)
                                break;
                if (!c) {
                        TAILQ_FOREACH(c, &a->queue.inflight, link)
                                if (c->result == o && c->kind == CALL_NORMAL && !c->direct)
                                        break;
                        inflight = c != NULL;
                }
                if (c)
                        callqueue_remove(&a->queue, c, inflight);
        }
        if (!c) {
                ReqError e = {};
                /* Arguments of a direct call name nothing (the worker checked): nothing to hold. */
                r = o ? call_new(m, o, args, args_len, &c, &e) : call_new_direct(m, object, uid, args, args_len, &c, &e);
                req_error_done(&e);
                if (r >= 0) {
                        c->method = strndup(method, method_len);
                        if (!c->method) {
                                call_free(m, c);
                                r = -ENOMEM;
                        }
                }
                if (r < 0)
                        return r;
                c->owner = a;
                a->calls_submitted++;
        }
        c->direct = true;
        callqueue_start_first(&a->queue, c);
        a->calls_direct++;
        a->stopping = false;
        KACTOR_PROBE(call_queued, kactor_trace_id_hash(a->id.hi, a->id.lo),
                     kactor_trace_id_hash(object.hi, object.lo), kactor_trace_method_id(method, method_len));
        if (m->trace_calls || KACTOR_PROBE_ENABLED(call_stored)) {
                manager_trace_call_queued(m, a, c);
                /* Its queue was the worker's: the phases start when the worker read it. */
                c->trace_queued_ns = c->trace_dispatched_ns = read_ns ?: c->trace_queued_ns;
        }
        if (actor_lineage_full(a)) {
                /* The limit is enforced on the relayed path, which refuses such calls: the direct
                 * sockets close, and what their callers send next goes there. */
                if (a->can_save)
                        a->force_checkpoint = true;
                else if (a->worker)
                        (void) worker_send_direct_close(a->worker);
        }
        return 0;
}

/* A checkpoint came back: the log before it can go. */
static void actor_save_finished(Actor *a, kactor_error code, const char *message, const char *data,
                                size_t len) {
        a->save_inflight = false;
        if (code != KACTOR_OK) {
                log_actor(LOG_WARNING, a->id_string, NULL,
                          "Checkpoint of actor %s failed, checkpoints are off for it: %s", a->id_string,
                          message ?: "unknown error");
                a->can_save = false;
                return;
        }
        size_t before = actor_lineage_bytes(a);
        int r = lineage_checkpoint(&a->lineage, lineage_last_index(&a->lineage), data, len);
        if (r < 0)
                log_actor(LOG_WARNING, a->id_string, NULL, "Failed to keep a checkpoint of actor %s: %s",
                          a->id_string, strerror(-r));
        else {
                persist_checkpoint(a);
                if (a->repl)
                        cluster_hooks_checkpointed(a);
        }
        actor_lineage_account(a, before);
}

void actor_call_finished(Actor *a, Call *c, kactor_error code, const char *message, const char *data, size_t len,
                         uint32_t flags) {
        Manager *m = a->manager;

        if (a->state == ACTOR_DEAD) {
                /* It died while its result was being stored (its last handle went with a waiter). */
                call_free(m, c);
                return;
        }

        switch (c->kind) {
        case CALL_REPLAY:
                if (a->shadow && c->lineage_index == a->rebuild_index) {
                        shadow_finish(a, code, message, data, len);
                        call_free(m, c);
                        return;
                }
                cluster_hooks_replayed(a, c->lineage_index, code, message, data, len);
                call_free(m, c);
                if (--a->replaying == 0)
                        actor_replay_done(a);
                return;
        case CALL_SAVE:
                persist_seq(a, c->seq);
                call_free(m, c);
                actor_save_finished(a, code, message, data, len);
                actor_dispatch(a);
                return;
        case CALL_NORMAL:
                break;
        }
        KACTOR_PROBE(call_stored, kactor_trace_id_hash(a->id.hi, a->id.lo), c->seq,
                     kactor_trace_id_hash(call_result_id(c).hi, call_result_id(c).lo), c->trace_method,
                     c->trace_queued_ns, c->trace_dispatched_ns);
        if (m->trace_calls)
                manager_trace_call_stored(m, a, c, code, message);

        if (!(flags & RESULT_READ_ONLY)) {
                /* Kept even when it failed: it may have changed the state before it did. */
                size_t before = actor_lineage_bytes(a);
                int64_t index =
                        lineage_append(&a->lineage, call_result_id(c), c->method, c->args, c->args_len, code);
                if (index > 0)
                        persist_lineage(a, lineage_get(&a->lineage, (uint64_t) index), c->seq);
                if (index < 0)
                        log_actor(LOG_WARNING, a->id_string, c->method,
                                  "Out of memory for the lineage of actor %s.", a->id_string);
                else if (code == KACTOR_OK && c->result)
                        eviction_note_actor_call(m, c->result, a->id, (uint64_t) index);
                if (index > 0 && a->repl)
                        cluster_hooks_record_logged(a, (uint64_t) index);
                actor_lineage_account(a, before);
                a->calls_since_checkpoint++;
        } else
                persist_seq(a, c->seq);
        a->calls_completed++;
        a->failures = 0;
        call_free(m, c);
        actor_dispatch(a);
}

/* --- restored by a new node manager (persist.c) ------------------------------------------------ */

int actor_restore(Manager *m, const ActorRestore *r) {
        _cleanup_free_ char *module = strdup(r->module_path ?: "");
        Actor *a;
        int k;

        if (!module)
                return -ENOMEM;
        if (manager_find_actor(m, r->spec.id))
                return -EEXIST;
        k = actor_new(m, &r->spec, &module, r->run_uid, r->run_gid, &a);
        if (k < 0)
                return k;
        a->args = malloc(r->spec.args_len ?: 1);
        if (!a->args) {
                actor_free_unlisted(a);
                return -ENOMEM;
        }
        if (r->spec.args_len > 0)
                memcpy(a->args, r->spec.args, r->spec.args_len);
        a->args_len = r->spec.args_len;
        a->n_gpus = r->spec.num_gpus;
        if (a->n_gpus > 0)
                memcpy(a->gpus, r->gpus, a->n_gpus * sizeof(uint32_t));
        a->num_cpus = r->spec.num_cpus;
        k = resources_take(&m->resources, a->gpus, a->n_gpus, a->num_cpus);
        if (k < 0)
                log_actor(LOG_WARNING, a->id_string, NULL,
                          "Actor %s had GPUs this node manager does not have free (%s); it keeps them, but they may be given twice.",
                          a->id_string, k == -ENOENT ? "not configured now" : "taken");
        else
                a->holds_resources = true;
        a->restarts = r->restarts;
        a->journaled_seq = r->journaled_seq;
        a->restoring = true;
        a->restored_unready = !r->ready;
        if (r->bus_owner && !a->detached) {
                /* Held for its D-Bus owner until the service finds whether that one is still there. */
                a->bus_owner = strdup(r->bus_owner);
                if (a->bus_owner) {
                        a->bus_owner_restored = true;
                        actor_ref(a);
                }
        }
        a->state = r->ready ? ACTOR_ALIVE : ACTOR_PENDING;

        HASH_ADD(hh, m->actors, id, sizeof(a->id), a);
        if (a->name)
                HASH_ADD_KEYPTR(hh_name, m->actors_by_name, a->name, strlen(a->name), a);
        m->n_actors_live++;

        if (r->cgroup.v2_dir)
                actor_isolation_adopt(a, &r->cgroup);
        if (r->pid > 0) {
                Worker *w;
                k = worker_adopt(m, a, r->pid, r->starttime, r->prefix, &w);
                if (k < 0 && k != -ESRCH)
                        log_actor(LOG_WARNING, a->id_string, NULL, "Cannot watch the worker %d of actor %s: %s",
                                  (int) r->pid, a->id_string, strerror(-k));
        }
        actor_queue_change(a, ACTOR_CHANGE_ADDED);
        manager_queue_resources_changed(m);
        return 0;
}

void actor_restore_args_all(Manager *m) {
        Actor *a, *tmp;
        HASH_ITER(hh, m->actors, a, tmp) {
                if (!a->restoring)
                        continue;
                Call c = { .args = a->args, .args_len = a->args_len };
                ReqError e = {};
                if (codec_scan_ids(a->args, a->args_len, &c.ids, &c.id_actor, &c.n_ids, NULL) < 0 ||
                    call_hold_ids(m, &c, &e) < 0) {
                        /* What they named is gone: the actor runs, and holds nothing through them. */
                        free(c.ids);
                        free(c.id_actor);
                        req_error_done(&e);
                        continue;
                }
                a->arg_ids = c.ids;
                a->arg_id_actor = c.id_actor;
                a->n_arg_ids = c.n_ids;
        }
}

void actor_restore_finish_all(Manager *m) {
        Actor *a, *tmp;
        HASH_ITER(hh, m->actors, a, tmp) {
                if (!a->restoring)
                        continue;
                a->restoring = false;
                persist_actor(a);
                if (!a->worker) {
                        /* Its worker died while no node manager watched: rebuilt from its lineage
                         * when it may restart, else this is how it died. */
                        log_actor(LOG_WARNING, a->id_string, NULL,
                                  "The worker of actor %s exited while the node manager was down.", a->id_string);
                        actor_worker_gone(a, "the worker exited while the node manager was down");
                } else {
                        persist_actor_worker(a);
                        /* In a cluster its replicas are chosen again and sent everything: what peers
                         * held for it may be older than the journal. */
                        cluster_hooks_actor_started(a);
                }
        }
}

/* Whether one of the last `recent` records of a's lineage is the call of result: a result a worker
 * sends again that the journal has is among the last ones it logged (at most as many as it sends). */
static bool actor_lineage_has(const Actor *a, kactor_id result, size_t recent) {
        size_t n = lineage_size(&a->lineage);
        for (size_t i = n; i > 0 && n - i < recent; i--)
                if (kactor_id_equal(lineage_at(&a->lineage, i - 1)->result, result))
                        return true;
        return false;
}

/* A result the worker sent again that the journal lacked: logged and stored as if it had come. */
static void actor_redelivered(Actor *a, uint64_t seq, kactor_id result, const char *method, const char *args,
                              size_t args_len, const Frame *rf) {
        Manager *m = a->manager;
        uint64_t code, flags = 0;
        const char *msg = NULL;
        size_t msg_len = 0;

        if (frame_field_u64(rf, 0, &code) < 0)
                return;
        (void) frame_field_str(rf, 1, &msg, &msg_len);
        (void) frame_field_u64(rf, 2, &flags);
        kactor_error err = code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_TASK_FAILED;

        if (!(flags & RESULT_READ_ONLY)) {
                size_t before = actor_lineage_bytes(a);
                int64_t index = lineage_append(&a->lineage, result, method, args, args_len, err);
                if (index > 0)
                        persist_lineage(a, lineage_get(&a->lineage, (uint64_t) index), seq);
                actor_lineage_account(a, before);
                a->calls_since_checkpoint++;
        } else
                persist_seq(a, seq);

        Object *o = objstore_find(&m->store, result);
        Call *c = NULL;
        Conn *caller = NULL;
        if (!o && (flags & RESULT_DIRECT) && m->transport &&
            (caller = m->transport->find(m, result.lo & ~ID_SEQ_MASK)) &&
            objstore_add(&m->store, result, &o) >= 0) {
                /* A direct call: its caller had the answer and will not send it again. Its object is
                 * made for it, as the record would have, held by its connection (or its placeholder). */
                o->uid = caller->uid;
                m->transport->own(caller, o);
                a->calls_submitted++;
                a->calls_direct++;
        } else if (o && o->state == OBJECT_PENDING && o->awaited) {
                /* Its caller asked for it before this worker re-attached (manager_await_result()). */
                o->awaited = false;
                a->calls_submitted++;
                a->calls_direct += (flags & RESULT_DIRECT) != 0;
        } else if (o && o->state == OBJECT_PENDING) {
                /* Its caller sent it again already: that call is answered by this result. */
                TAILQ_FOREACH(c, &a->queue.queued, link)
                        if (c->result == o)
                                break;
                if (!c)
                        return;
                TAILQ_REMOVE(&a->queue.queued, c, link);
                a->queue.n_queued--;
        } else if (o)
                return;
        else {
                /* Its caller has not sent it again yet: held for it (see HeldResult). */
                HeldResult *h = calloc(1, sizeof(*h));
                if (!h)
                        return;
                h->result = result;
                h->code = err == KACTOR_OK && !rf->has_body ? KACTOR_ERROR_TASK_FAILED : err;
                if (h->code != KACTOR_OK)
                        h->message = msg ? strndup(msg, MIN(msg_len, (size_t) 4096)) : NULL;
                else {
                        h->data = malloc(rf->body_len ?: 1);
                        if (h->data)
                                memcpy(h->data, rf->body_raw, rf->body_len);
                        h->len = rf->body_len;
                }
                if (h->code == KACTOR_OK && !h->data) {
                        free(h);
                        return;
                }
                HeldResult *old;
                HASH_FIND(hh, a->held_results, &result, sizeof(result), old);
                if (old) {
                        free(h->message);
                        free(h->data);
                        free(h);
                        return;
                }
                HASH_ADD(hh, a->held_results, result, sizeof(h->result), h);
                if (!a->held_timer)
                        (void) sd_event_add_time_relative(m->event, &a->held_timer, CLOCK_MONOTONIC,
                                                          ACTOR_HELD_RESULTS_USEC, USEC_PER_SEC,
                                                          on_held_results_timeout, a);
                a->calls_completed++;
                return;
        }
        if (err == KACTOR_OK && rf->has_body) {
                _cleanup_free_ kactor_id *ids = NULL;
                _cleanup_free_ uint8_t *is_actor = NULL;
                size_t n = 0;
                if (codec_scan_ids(rf->body_raw, rf->body_len, &ids, &is_actor, &n, NULL) < 0 ||
                    objstore_set_ready(&m->store, o, rf->body_raw, rf->body_len, ids, is_actor, n) < 0)
                        (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_TASK_FAILED, "malformed result");
        } else
                (void) objstore_set_failed(&m->store, o, err == KACTOR_OK ? KACTOR_ERROR_TASK_FAILED : err,
                                           msg ? strndupa(msg, MIN(msg_len, (size_t) 4096)) : "failed");
        a->calls_completed++;
        if (c)
                call_free(m, c);
}

int actor_attach_worker(Actor *a, Conn *c, uint64_t last_seq, uint32_t flags, const msgpack_object *redelivered) {
        Worker *w = a->worker;
        Frame rf;

        worker_attach(w, c, last_seq, flags & ATTACH_READY);
        a->can_save = flags & ATTACH_CAN_SAVE;
        frame_init(&rf);
        size_t n_new = 0, n_sent = redelivered ? redelivered->via.array.size : 0;
        for (uint32_t i = 0; redelivered && i < redelivered->via.array.size; i++) {
                const msgpack_object *e = &redelivered->via.array.ptr[i];
                kactor_id result;
                if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 5 ||
                    e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                    codec_object_to_id(&e->via.array.ptr[1], CODEC_EXT_OBJECT, &result) < 0 ||
                    e->via.array.ptr[2].type != MSGPACK_OBJECT_STR || e->via.array.ptr[3].type != MSGPACK_OBJECT_BIN ||
                    e->via.array.ptr[4].type != MSGPACK_OBJECT_BIN)
                        continue;
                uint64_t seq = e->via.array.ptr[0].via.u64;
                /* Known already: journaled before the old node manager went, or a replayed call. */
                if (seq <= a->journaled_seq || actor_lineage_has(a, result, redelivered->via.array.size))
                        continue;
                if (frame_parse(&rf, e->via.array.ptr[4].via.bin.ptr, e->via.array.ptr[4].via.bin.size) < 0)
                        continue;
                _cleanup_free_ char *method =
                        strndup(e->via.array.ptr[2].via.str.ptr, e->via.array.ptr[2].via.str.size);
                if (!method)
                        break;
                actor_redelivered(a, seq, result, method, e->via.array.ptr[3].via.bin.ptr,
                                  e->via.array.ptr[3].via.bin.size, &rf);
                n_new++;
        }
        frame_done(&rf);
        manager_worker_attach_settled(a->manager, w);
        a->journaled_seq = 0;
        persist_seq(a, last_seq);
        /* What it sent again is what the journal had not acknowledged to it: a handful at most. */
        log_actor(LOG_INFO, a->id_string, NULL,
                  "The worker %d of actor %s re-attached (%zu results sent again, %zu of them not in the journal).",
                  (int) w->pid, a->id_string, n_sent, n_new);
        if (w->ready) {
                a->restored_unready = false;
                persist_actor_ready(a);
                actor_set_state(a, ACTOR_ALIVE);
                actor_dispatch(a);
        } else
                actor_set_state(a, ACTOR_PENDING);
        return 0;
}

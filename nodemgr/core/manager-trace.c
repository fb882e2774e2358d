/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Tracing in the node manager: the glue between the actors and bpf/trace.c. */

#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "manager-trace.h"
#include "time-util.h"
#include "trace-format.h"
#include "trace-loader.h"

/* Events one timeline keeps at most (80 bytes each); more count as dropped. */
#define TIMELINE_MAX_EVENTS (256 * 1024)
/* How often the ring buffer is read while a timeline is collected (it wakes us only when full). */
#define TIMELINE_POLL_USEC (100 * 1000)

typedef struct TraceMethod {
        uint32_t id;
        char *name;
        UT_hash_handle hh;
} TraceMethod;

/* A failed call's error in the timeline, by its event's index. */
typedef struct TraceError {
        size_t index;
        char *text; /* "Name: message" */
} TraceError;

struct ManagerTrace {
        Trace *trace;
        char *reason;
        TraceMethod *methods; /* the names in the `methods` map: methods some worker ran, and "(unknown)" */
        TraceActor *actors;

        uint64_t now_iteration, now_ns; /* manager_trace_now()'s clock, read once per iteration */

        sd_event_source *rb_io, *rb_timer;
        bool collecting;
        uint64_t t_begin; /* when the timeline began (CLOCK_MONOTONIC ns): its time origin */
        struct kt_event *events;
        size_t n_events, n_allocated;
        uint64_t overflow, dropped_start;
        TraceError *errors; /* of failed calls' events, in the order of their indexes */
        size_t n_errors, n_errors_allocated;
        /* Names of calls in the timeline that no worker has run (yet): for the timeline only, never
         * in `methods` (a call in flight at the end, or failed before its worker had it). */
        TraceMethod *timeline_methods;
};

static ManagerTrace *mt_get(Manager *m) {
        return m->trace;
}

static void trace_actor_free(TraceActor *ta) {
        if (!ta)
                return;
        free(ta->class_name);
        free(ta->name);
        free(ta->label);
        free(ta->methods);
        free(ta);
}

static void trace_methods_free(TraceMethod **methods) {
        TraceMethod *tm, *tmp;
        HASH_ITER(hh, *methods, tm, tmp) {
                HASH_DEL(*methods, tm);
                free(tm->name);
                free(tm);
        }
}

static TraceMethod *trace_method_find(TraceMethod *methods, uint32_t id) {
        TraceMethod *tm;
        HASH_FIND(hh, methods, &id, sizeof(id), tm);
        return tm;
}

static TraceMethod *trace_method_new(TraceMethod **methods, uint32_t id, const char *name) {
        TraceMethod *tm = calloc(1, sizeof(*tm));
        if (!tm || !(tm->name = strdup(name ?: ""))) {
                free(tm);
                return NULL;
        }
        tm->id = id;
        HASH_ADD(hh, *methods, id, sizeof(tm->id), tm);
        return tm;
}

/* Lets go of a timeline's events, errors and names. */
static void timeline_clear(ManagerTrace *mt) {
        mt->n_events = 0;
        for (size_t i = 0; i < mt->n_errors; i++)
                free(mt->errors[i].text);
        mt->n_errors = 0;
        trace_methods_free(&mt->timeline_methods);
}

/* Adds an event to the timeline: its index, or -ENOSPC when it counts as dropped. */
static ssize_t timeline_add(ManagerTrace *mt, const struct kt_event *e) {
        if (mt->n_events >= TIMELINE_MAX_EVENTS) {
                mt->overflow++;
                return -ENOSPC;
        }
        if (mt->n_events == mt->n_allocated) {
                size_t n = MAX(mt->n_allocated * 2, (size_t) 4096);
                struct kt_event *ev = realloc(mt->events, n * sizeof(*ev));
                if (!ev) {
                        mt->overflow++;
                        return -ENOSPC;
                }
                mt->events = ev;
                mt->n_allocated = n;
        }
        mt->events[mt->n_events] = *e;
        return (ssize_t) mt->n_events++;
}

/* The error of the failed call at index, for its args in the timeline. */
static void timeline_add_error(ManagerTrace *mt, ssize_t index, kactor_error code, const char *message) {
        if (index < 0)
                return;
        if (mt->n_errors == mt->n_errors_allocated) {
                size_t n = MAX(mt->n_errors_allocated * 2, (size_t) 64);
                TraceError *v = realloc(mt->errors, n * sizeof(*v));
                if (!v)
                        return; /* the timeline says the error's name only */
                mt->errors = v;
                mt->n_errors_allocated = n;
        }
        char *text;
        if (asprintf(&text, "%s: %s", kactor_error_name(code) ?: "failed", message ?: "failed") < 0)
                return;
        mt->errors[mt->n_errors++] = (TraceError) { .index = (size_t) index, .text = text };
}

/* A call's method for the timeline: its id, with its name kept for this timeline when no worker ran it. */
static uint32_t timeline_method(ManagerTrace *mt, const Call *c) {
        if (!trace_method_find(mt->methods, c->trace_method) &&
            !trace_method_find(mt->timeline_methods, c->trace_method))
                (void) trace_method_new(&mt->timeline_methods, c->trace_method, c->method);
        return c->trace_method;
}

static void on_trace_event(const struct kt_event *e, void *userdata) {
        ManagerTrace *mt = userdata;
        if (mt->collecting)
                (void) timeline_add(mt, e);
}

void manager_trace_start(Manager *m) {
        ManagerTrace *mt;
        const char *e = getenv("KACTOR_TRACE");

        if (m->trace)
                return;
        mt = calloc(1, sizeof(*mt));
        if (!mt) {
                log_error("Out of memory: tracing is off.");
                return;
        }
        m->trace = mt;

        if (e && (streq(e, "off") || streq(e, "0") || streq(e, "no"))) {
                mt->reason = strdup("turned off (KACTOR_TRACE=off)");
                log_info("Tracing is off: %s.", mt->reason ?: "turned off");
                return;
        }

        TraceOptions opts = {
                .sz = sizeof(opts),
                .node_id = m->node_id,
                .sched_events = true,
                .event_fn = on_trace_event,
                .event_userdata = mt,
        };
        char *reason = NULL;
        int r = trace_new(&opts, &mt->trace, &reason);
        if (r < 0) {
                mt->reason = reason ?: strdup(strerror(-r));
                /* Said once, here; `kactorctl status` shows it too. */
                log_warning("Tracing is off: %s.", mt->reason ?: "unknown error");
                return;
        }
        m->trace_calls = true;
        log_info("Tracing is on: histograms in %s.", trace_pin_dir(mt->trace) ?: "(not pinned)");
}

void manager_trace_stop(Manager *m) {
        ManagerTrace *mt = mt_get(m);
        if (!mt)
                return;
        mt->rb_io = sd_event_source_disable_unref(mt->rb_io);
        mt->rb_timer = sd_event_source_disable_unref(mt->rb_timer);
        m->trace_calls = false;
        mt->trace = trace_free(mt->trace);
        TraceActor *ta, *tmp;
        HASH_ITER(hh, mt->actors, ta, tmp) {
                if (ta->actor)
                        ta->actor->trace = NULL;
                HASH_DEL(mt->actors, ta);
                trace_actor_free(ta);
        }
        trace_methods_free(&mt->methods);
        timeline_clear(mt);
        free(mt->errors);
        free(mt->events);
        free(mt->reason);
        free(mt);
        m->trace = NULL;
}

bool manager_trace_enabled(Manager *m) {
        ManagerTrace *mt = mt_get(m);
        return mt && mt->trace && trace_is_enabled(mt->trace);
}

int manager_trace_set_enabled(Manager *m, bool enabled) {
        ManagerTrace *mt = mt_get(m);
        if (!mt || !mt->trace)
                return -EOPNOTSUPP;
        int r = trace_set_enabled(mt->trace, enabled);
        if (r < 0)
                return r;
        m->trace_calls = enabled;
        return 0;
}

const char *manager_trace_reason(Manager *m) {
        ManagerTrace *mt = mt_get(m);
        if (!mt)
                return "not started";
        if (mt->trace)
                return trace_is_enabled(mt->trace) ? "" : "turned off (SetEnabled)";
        return mt->reason ?: "unknown";
}

Trace *manager_trace_loader(Manager *m) {
        ManagerTrace *mt = mt_get(m);
        return mt ? mt->trace : NULL;
}

static uint64_t actor_key(const Actor *a) {
        return kactor_trace_id_hash(a->id.hi, a->id.lo);
}

static TraceActor *trace_actor_find(ManagerTrace *mt, uint64_t key) {
        TraceActor *ta;
        HASH_FIND(hh, mt->actors, &key, sizeof(key), ta);
        return ta;
}

/* The actor's record, made on first use. */
static TraceActor *trace_actor_get(ManagerTrace *mt, Actor *a) {
        uint64_t key = actor_key(a);
        TraceActor *ta = trace_actor_find(mt, key);
        if (ta)
                return ta;
        ta = calloc(1, sizeof(*ta));
        if (!ta)
                return NULL;
        ta->key = key;
        ta->actor = a;
        ta->uid = a->uid;
        memcpy(ta->id_string, a->id_string, sizeof(ta->id_string));
        ta->class_name = strdup(a->class_name ?: "");
        ta->name = a->name ? strdup(a->name) : NULL;
        if (asprintf(&ta->label, "actor %s (%s%s%s)", a->id_string, a->class_name ?: "?", a->name ? ", " : "",
                     a->name ?: "") < 0)
                ta->label = NULL;
        HASH_ADD(hh, mt->actors, key, sizeof(ta->key), ta);
        a->trace = ta;
        if (trace_actor_add(mt->trace, key, a->id.hi, a->id.lo, 0) < 0)
                log_debug("Failed to register actor %s for tracing.", a->id_string);
        return ta;
}

void manager_trace_actor_ready(Manager *m, Actor *a) {
        ManagerTrace *mt = mt_get(m);
        pid_t pid = a->worker ? a->worker->pid : 0;
        uint64_t key = actor_key(a);

        if (a->restarts > 0)
                KACTOR_PROBE(actor_restarted, key, (uint64_t) pid, (uint64_t) a->restarts);
        else
                KACTOR_PROBE(actor_started, key, (uint64_t) pid);
        if (!mt || !mt->trace)
                return;

        TraceActor *ta = trace_actor_get(mt, a);
        if (!ta)
                return;
        ta->pid = pid; /* the previous worker's went with manager_trace_actor_died() */
        /* Its threads are followed by its cgroup, when isolation gave it one (manager_trace_actor_cgroup()),
         * else by this process. */
        int r = trace_actor_add(mt->trace, key, a->id.hi, a->id.lo, pid);
        if (r < 0)
                log_debug("Failed to register actor %s for tracing: %s", a->id_string, strerror(-r));
}

/* The worker's PID for the actor's calls in the timeline: the one running now, else the last one. */
static uint32_t trace_actor_tid(const Actor *a, const TraceActor *ta) {
        return (uint32_t) (a->worker ? a->worker->pid : ta ? ta->pid : 0);
}

/* A call of the actor that ends (failed) or is still open (at the end of a timeline) without a result
 * stored: into the timeline, on the actor's track. */
static void timeline_add_open_call(ManagerTrace *mt, Actor *a, const Call *c, uint64_t now, kactor_error code,
                                   const char *message) {
        if (c->kind != CALL_NORMAL || !c->trace_queued_ns)
                return;
        struct kt_event e = {
                .type = TRACE_EVENT_CALL,
                .kind = code != KACTOR_OK ? (uint32_t) code : TRACE_EVENT_UNFINISHED,
                .actor = actor_key(a),
                .method = timeline_method(mt, c),
                .tid = trace_actor_tid(a, a->trace),
                .seq = c->seq,
                .obj = c->result || call_result_unmade(c) ? kactor_trace_id_hash(call_result_id(c).hi, call_result_id(c).lo) : 0,
                .t = { c->trace_queued_ns, c->trace_dispatched_ns, 0, 0, MAX(now, c->trace_dispatched_ns) },
        };
        ssize_t i = timeline_add(mt, &e);
        if (code != KACTOR_OK)
                timeline_add_error(mt, i, code, message);
}

void manager_trace_actor_died(Manager *m, Actor *a, bool expected) {
        ManagerTrace *mt = mt_get(m);
        uint64_t key = actor_key(a);

        KACTOR_PROBE(actor_died, key, (uint64_t) expected);
        if (!mt || !mt->trace)
                return;
        /* Its calls fail now, without results from the worker: the timeline shows them so. */
        if (mt->collecting) {
                uint64_t now = manager_trace_now(m);
                Call *c;
                TAILQ_FOREACH(c, &a->queue.inflight, link)
                        timeline_add_open_call(mt, a, c, now, KACTOR_ERROR_ACTOR_DIED,
                                               "the actor died while the call was with its worker");
                TAILQ_FOREACH(c, &a->queue.queued, link)
                        timeline_add_open_call(mt, a, c, now, KACTOR_ERROR_ACTOR_DIED,
                                               "the actor died while the call was queued");
        }
        (void) trace_actor_gone(mt->trace, key);
}

void manager_trace_actor_freed(Manager *m, Actor *a) {
        ManagerTrace *mt = mt_get(m);
        TraceActor *ta = a->trace;
        a->trace = NULL;
        if (!mt || !ta)
                return;
        if (mt->trace) {
                for (size_t i = 0; i < ta->n_methods; i++)
                        trace_call_slot_free(mt->trace, ta->methods[i].slot);
                (void) trace_actor_forget(mt->trace, ta->key);
        }
        HASH_DEL(mt->actors, ta);
        trace_actor_free(ta);
}

void manager_trace_actor_cgroup(Manager *m, Actor *a, uint64_t cgroup_id) {
        ManagerTrace *mt = mt_get(m);
        if (!mt || !mt->trace)
                return;
        TraceActor *ta = trace_actor_get(mt, a);
        if (ta)
                (void) trace_actor_set_cgroup(mt->trace, ta->key, cgroup_id);
}

uint64_t manager_trace_now(Manager *m) {
        ManagerTrace *mt = mt_get(m);
        uint64_t iteration;

        if (!mt || sd_event_get_iteration(m->event, &iteration) < 0)
                return now_nsec(CLOCK_MONOTONIC);
        if (iteration != mt->now_iteration || mt->now_ns == 0) {
                mt->now_iteration = iteration;
                mt->now_ns = now_nsec(CLOCK_MONOTONIC);
        }
        return mt->now_ns;
}

void manager_trace_call_queued(Manager *m, Actor *a, Call *c) {
        c->trace_queued_ns = manager_trace_now(m);
        c->trace_method = kactor_trace_method_id(c->method, strlen(c->method ?: ""));
}

/*
 * The slot of the actor's method, made on its first call (with a name for the method id). Only a
 * method the actor's worker ran (ran: it sent when) is learned, so that the names in `methods` and
 * the slots of `hists` are those of the class's methods, whatever names callers send: the calls of
 * any other name (the worker answered NoSuchMethod) count under TRACE_METHOD_UNKNOWN, as do those of
 * methods past TRACE_METHODS_PER_ACTOR_MAX. *ret_method: the id they count under.
 */
static int trace_method_slot(ManagerTrace *mt, TraceActor *ta, uint32_t method, const char *name, bool ran,
                             uint32_t *ret_method) {
        for (size_t i = 0; i < ta->n_methods; i++)
                if (ta->methods[i].method == method) {
                        *ret_method = method;
                        return ta->methods[i].slot;
                }
        if (!ran || ta->n_methods >= TRACE_METHODS_PER_ACTOR_MAX) {
                method = TRACE_METHOD_UNKNOWN;
                name = TRACE_METHOD_UNKNOWN_NAME;
                for (size_t i = 0; i < ta->n_methods; i++)
                        if (ta->methods[i].method == method) {
                                *ret_method = method;
                                return ta->methods[i].slot;
                        }
        }
        *ret_method = method;

        if (!trace_method_find(mt->methods, method)) {
                TraceMethod *tm = trace_method_new(&mt->methods, method, name);
                if (!tm)
                        return -ENOMEM;
                (void) trace_method_add(mt->trace, tm->id, tm->name);
        }
        void *v = realloc(ta->methods, (ta->n_methods + 1) * sizeof(ta->methods[0]));
        if (!v)
                return -ENOMEM;
        ta->methods = v;
        int slot = trace_call_slot_new(mt->trace, ta->key, method);
        if (slot == -ENOSPC)
                log_debug("No free slot in the call histograms for %s.%s: its calls are not counted.", ta->id_string,
                          name ?: "?");
        else if (slot < 0)
                return slot; /* tried again on the next call */
        ta->methods[ta->n_methods].method = method;
        ta->methods[ta->n_methods++].slot = slot;
        return slot;
}

void manager_trace_call_stored(Manager *m, Actor *a, Call *c, kactor_error code, const char *message) {
        ManagerTrace *mt = mt_get(m);
        Worker *w = a->worker;
        uint64_t t_start = w ? w->exec_start_ns : 0, t_end = w ? w->exec_end_ns : 0;

        /* Queued before tracing began (or while it was off): its phases are unknown. */
        if (!mt || !mt->trace || !c->trace_queued_ns || !c->trace_dispatched_ns)
                return;
        TraceActor *ta = a->trace ?: trace_actor_get(mt, a);
        if (!ta)
                return;
        /* The loop's clock is read once an iteration; a result read in it later than that (a worker's
         * records are read before a request that may name them) ended after it, and after its call
         * was read (a direct call's worker says when). */
        uint64_t now = MAX(MAX(manager_trace_now(m), t_end), c->trace_dispatched_ns);
        uint32_t method;
        int slot = trace_method_slot(mt, ta, c->trace_method, c->method, t_start && t_end, &method);
        if (slot >= 0)
                trace_call_account(trace_call_stats(mt->trace, slot), c->trace_queued_ns, c->trace_dispatched_ns,
                                   t_start, t_end, now);
        if (!mt->collecting)
                return;
        /* Failed, it says why. */
        bool failed = code != KACTOR_OK;
        struct kt_event e = {
                .type = TRACE_EVENT_CALL,
                .kind = failed ? (uint32_t) code : 0,
                .actor = ta->key,
                .method = method,
                .tid = trace_actor_tid(a, ta), /* on its actor's track, whether the worker ran it or not */
                .seq = c->seq,
                .obj = kactor_trace_id_hash(call_result_id(c).hi, call_result_id(c).lo),
                .t = { c->trace_queued_ns, c->trace_dispatched_ns, t_start, t_end, now },
        };
        /* Straight into the timeline: passing it through the kernel (a user ring buffer drained into the
         * ring buffer) cost ~0.8 us a call, the node manager's own copy a few ns (docs/tracing.md). */
        ssize_t i = timeline_add(mt, &e);
        if (failed)
                timeline_add_error(mt, i, code, message ?: "failed");
}

const TraceActor *manager_trace_actor_by_key(Manager *m, uint64_t key) {
        ManagerTrace *mt = mt_get(m);
        return mt ? trace_actor_find(mt, key) : NULL;
}

const char *manager_trace_method_name(Manager *m, uint32_t id) {
        ManagerTrace *mt = mt_get(m);
        TraceMethod *tm = mt ? trace_method_find(mt->methods, id) : NULL;
        return tm ? tm->name : NULL;
}

bool manager_trace_actor_matches(const TraceActor *a, const char *filter) {
        if (!filter || !*filter)
                return true;
        if (a->name && streq(a->name, filter))
                return true;
        const char *p = strrchr(filter, '/'); /* an object path works too */
        p = p ? p + 1 : filter;
        return *p && strncmp(a->id_string, p, strlen(p)) == 0;
}

/* --- Prometheus --- */

typedef struct PromState {
        Manager *m;
        FILE *f;
        uid_t only_uid;
} PromState;

static void prom_labels(FILE *f, const TraceActor *ta, uint64_t key) {
        char idbuf[32];
        fputs("actor=\"", f);
        if (ta)
                trace_prom_escape(f, ta->id_string);
        else {
                snprintf(idbuf, sizeof(idbuf), "%016" PRIx64, key);
                fputs(idbuf, f);
        }
        fputs("\",class=\"", f);
        trace_prom_escape(f, ta ? ta->class_name : "");
        fputs("\"", f);
}

static void prom_call(const struct kt_call_key *key, const struct kt_call_stats *st, void *userdata) {
        PromState *s = userdata;
        const TraceActor *ta = manager_trace_actor_by_key(s->m, key->actor);
        if (s->only_uid != (uid_t) -1 && (!ta || ta->uid != s->only_uid))
                return;
        const char *method = manager_trace_method_name(s->m, key->method);
        for (unsigned p = 0; p < TRACE_PHASE_MAX; p++) {
                _cleanup_free_ char *labels = NULL;
                size_t len = 0;
                FILE *lf = open_memstream(&labels, &len);
                if (!lf)
                        return;
                prom_labels(lf, ta, key->actor);
                fputs(",method=\"", lf);
                trace_prom_escape(lf, method ?: "?");
                fprintf(lf, "\",phase=\"%s\"", trace_phase_to_string(p));
                fclose(lf);
                trace_prom_histogram(s->f, "kactor_call_phase_seconds", labels, st->phase[p].slots, TRACE_HIST_SLOTS,
                                     st->phase[p].count, st->phase[p].sum_ns);
        }
}

static void prom_sched(uint64_t actor, const struct kt_sched_stats *st, void *userdata) {
        PromState *s = userdata;
        const TraceActor *ta = manager_trace_actor_by_key(s->m, actor);
        if (s->only_uid != (uid_t) -1 && (!ta || ta->uid != s->only_uid))
                return;
        for (unsigned k = 0; k < TRACE_SCHED_MAX; k++) {
                _cleanup_free_ char *labels = NULL;
                size_t len = 0;
                FILE *lf = open_memstream(&labels, &len);
                if (!lf)
                        return;
                prom_labels(lf, ta, actor);
                fprintf(lf, ",kind=\"%s\"", trace_sched_kind_to_string(k));
                fclose(lf);
                trace_prom_histogram(s->f, "kactor_sched_seconds", labels, st->hist[k].slots, TRACE_HIST_SLOTS,
                                     st->hist[k].count, st->hist[k].sum_ns);
        }
}

int manager_trace_prometheus(Manager *m, uid_t only_uid, char **ret) {
        Trace *t = manager_trace_loader(m);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "# HELP kactor_trace_enabled Whether the node manager's tracing programs are attached.\n"
                   "# TYPE kactor_trace_enabled gauge\nkactor_trace_enabled %d\n",
                manager_trace_enabled(m));
        if (t) {
                PromState s = { .m = m, .f = f, .only_uid = only_uid };
                fputs("# HELP kactor_call_phase_seconds Time actor calls spend in each phase (queue: waiting in the "
                      "node manager; dispatch: sent until the worker starts it; exec: running; deliver: until the "
                      "result is stored; total).\n# TYPE kactor_call_phase_seconds histogram\n", f);
                (void) trace_foreach_call(t, prom_call, &s);
                fputs("# HELP kactor_sched_seconds Scheduler time of the actors' threads (runq: waiting for a CPU; "
                      "offcpu: asleep; oncpu: running slices).\n# TYPE kactor_sched_seconds histogram\n", f);
                (void) trace_foreach_sched(t, prom_sched, &s);
                fprintf(f, "# HELP kactor_trace_dropped_events_total Timeline events the ring buffer had no room for.\n"
                           "# TYPE kactor_trace_dropped_events_total counter\nkactor_trace_dropped_events_total %" PRIu64 "\n",
                        trace_dropped(t));
        }
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        return 0;
}

/* --- timeline --- */

static int on_rb_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ManagerTrace *mt = userdata;
        if (mt->trace)
                (void) trace_ringbuf_consume(mt->trace);
        return 0;
}

static int on_rb_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ManagerTrace *mt = userdata;
        if (mt->trace)
                (void) trace_ringbuf_consume(mt->trace);
        (void) sd_event_source_set_time_relative(s, TIMELINE_POLL_USEC);
        return 0;
}

bool manager_trace_timeline_active(Manager *m) {
        ManagerTrace *mt = mt_get(m);
        return mt && mt->collecting;
}

int manager_trace_timeline_begin(Manager *m) {
        ManagerTrace *mt = mt_get(m);
        int r;

        if (!mt || !mt->trace || !trace_is_enabled(mt->trace))
                return -EOPNOTSUPP;
        if (mt->collecting)
                return -EBUSY;
        (void) trace_ringbuf_consume(mt->trace); /* leftovers of an earlier timeline */
        timeline_clear(mt);
        mt->overflow = 0;
        mt->dropped_start = trace_dropped(mt->trace);
        if (!mt->rb_io) {
                r = sd_event_add_io(m->event, &mt->rb_io, trace_ringbuf_fd(mt->trace), EPOLLIN, on_rb_io, mt);
                if (r < 0)
                        return r;
        }
        if (!mt->rb_timer) {
                r = sd_event_add_time_relative(m->event, &mt->rb_timer, CLOCK_MONOTONIC, TIMELINE_POLL_USEC, 0,
                                               on_rb_timer, mt);
                if (r < 0)
                        return r;
        }
        (void) sd_event_source_set_enabled(mt->rb_io, SD_EVENT_ON);
        (void) sd_event_source_set_enabled(mt->rb_timer, SD_EVENT_ON);
        mt->collecting = true;
        /* The time origin: spans that began before are clipped to it when written. */
        mt->t_begin = now_nsec(CLOCK_MONOTONIC);
        trace_set_timeline(mt->trace, true);
        return 0;
}

static const char *timeline_actor_label(uint64_t key, void *userdata) {
        const TraceActor *ta = manager_trace_actor_by_key(userdata, key);
        return ta ? ta->label : NULL;
}

static const char *timeline_method_name(uint32_t id, void *userdata) {
        ManagerTrace *mt = mt_get(userdata);
        TraceMethod *tm = trace_method_find(mt->methods, id) ?: trace_method_find(mt->timeline_methods, id);
        return tm ? tm->name : NULL;
}

static int cmp_error_index(const void *key, const void *elem) {
        size_t i = *(const size_t *) key, j = ((const TraceError *) elem)->index;
        return i < j ? -1 : i > j;
}

static const char *timeline_call_error(size_t index, void *userdata) {
        ManagerTrace *mt = mt_get(userdata);
        const TraceError *e = bsearch(&index, mt->errors, mt->n_errors, sizeof(TraceError), cmp_error_index);
        return e ? e->text : NULL;
}

typedef struct OpenSpans {
        ManagerTrace *mt;
        uint64_t end;
} OpenSpans;

/* A thread still waiting for a CPU or asleep when the recording ends: its span, unfinished. */
static void timeline_add_open_span(uint32_t tid, const struct kt_thread *th, void *userdata) {
        OpenSpans *o = userdata;
        const TraceActor *ta = trace_actor_find(o->mt, th->actor);
        /* Only live actors' threads: a dead one's may linger (they exited while tracing was detached). */
        if (!ta || !ta->actor || ta->actor->state == ACTOR_DEAD || (!th->t_ready && !th->t_sleep))
                return;
        struct kt_event e = {
                .type = TRACE_EVENT_SCHED,
                .kind = (th->t_ready ? TRACE_SCHED_RUNQ : TRACE_SCHED_OFFCPU) | TRACE_EVENT_UNFINISHED,
                .actor = th->actor,
                .tid = tid,
                .t = { th->t_ready ?: th->t_sleep, o->end },
        };
        (void) timeline_add(o->mt, &e);
}

/* What is still open when the recording ends goes in unfinished: calls queued or with their workers,
 * threads waiting for a CPU or asleep. */
static void timeline_add_open(Manager *m, ManagerTrace *mt, uint64_t end) {
        Actor *a, *tmp;
        HASH_ITER(hh, m->actors, a, tmp) {
                Call *c;
                TAILQ_FOREACH(c, &a->queue.inflight, link)
                        timeline_add_open_call(mt, a, c, end, KACTOR_OK, NULL);
                TAILQ_FOREACH(c, &a->queue.queued, link)
                        timeline_add_open_call(mt, a, c, end, KACTOR_OK, NULL);
        }
        if (mt->trace && trace_is_enabled(mt->trace)) {
                OpenSpans o = { .mt = mt, .end = end };
                (void) trace_foreach_thread(mt->trace, timeline_add_open_span, &o);
        }
}

int manager_trace_timeline_end(Manager *m, int fd, uint64_t *ret_events, uint64_t *ret_dropped) {
        ManagerTrace *mt = mt_get(m);
        if (!mt || !mt->collecting)
                return -ESRCH;
        if (mt->trace) {
                trace_set_timeline(mt->trace, false);
                (void) trace_ringbuf_consume(mt->trace);
        }
        uint64_t t_end = now_nsec(CLOCK_MONOTONIC);
        timeline_add_open(m, mt, t_end);
        mt->collecting = false;
        (void) sd_event_source_set_enabled(mt->rb_io, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(mt->rb_timer, SD_EVENT_OFF);

        uint64_t dropped = mt->overflow + (mt->trace ? trace_dropped(mt->trace) - mt->dropped_start : 0);
        size_t n_events = mt->n_events;
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        /* Blocking writes: the reader is the caller's file, or a pipe it drains. */
        int flags = fcntl(copy, F_GETFL);
        if (flags >= 0)
                (void) fcntl(copy, F_SETFL, flags & ~O_NONBLOCK);
        FILE *f = fdopen(copy, "w");
        if (!f) {
                close(copy);
                return -ENOMEM;
        }
        TraceTimelineNames names = {
                .actor_label = timeline_actor_label,
                .method_name = timeline_method_name,
                .call_error = timeline_call_error,
                .userdata = m,
        };
        int r = trace_timeline_write(f, mt->events, mt->n_events, mt->t_begin, t_end, dropped, &names);
        if (fclose(f) != 0 && r >= 0)
                r = -errno;
        timeline_clear(mt);
        if (r < 0)
                return r;
        *ret_events = n_events;
        *ret_dropped = dropped;
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* io.kactor.Trace1 on /io/kactor/NodeManager1: what the tracing programs gathered. Thin handlers
 * over manager-trace.c. */

#include <fcntl.h>
#include <unistd.h>

#include "access.h"
#include "bus-polkit.h"
#include "bus-value.h"
#include "log.h"
#include "macro.h"
#include "manager-bus.h"
#include "manager-trace.h"
#include "req-error.h"
#include "trace-format.h"
#include "trace-bus.h"
#include "trace-loader.h"

#define KACTOR_BUS_TRACE_INTERFACE "io.kactor.Trace1"
#define TRACE_TIMELINE_MAX_USEC (600 * UINT64_C(1000000))

static int trace_check_on(Manager *m, sd_bus_error *error) {
        if (!manager_trace_loader(m))
                return sd_bus_error_setf(error, "io.kactor.Error.NotSupported", "Tracing is off: %s.",
                                         manager_trace_reason(m));
        return 0;
}

/* Changing how the node traces, and timelines (every actor's calls): root and the node manager's
 * user, or a member of the access group whom polkit authorizes for io.kactor.trace. */
static int trace_run_privileged(sd_bus_message *msg, Manager *m, const char *what, BusPolkitAction act,
                                sd_bus_error *error) {
        uid_t uid;
        int r = manager_bus_check_access(msg, m, &uid, error);
        if (r < 0)
                return r;
        return bus_polkit_run(manager_bus_polkit(m), m, msg, BUS_POLKIT_TRACE, what, act, error);
}

/* Who may read the histograms: root and the node manager's user see every actor; another user (a
 * member of the access group) sees the actors it created. *ret_uid is that user, (uid_t) -1 for all. */
static int trace_reader(sd_bus_message *msg, Manager *m, uid_t *ret_uid, sd_bus_error *error) {
        uid_t uid;
        int r = manager_bus_check_access(msg, m, &uid, error);
        if (r < 0)
                return r;
        *ret_uid = access_is_admin(uid) ? (uid_t) -1 : uid;
        return 0;
}

static int append_hist(sd_bus_message *reply, const char *actor, const char *class_name, const char *what,
                       const char *kind, const struct kt_hist *h) {
        int r = sd_bus_message_open_container(reply, 'r', "sssstt" "at");
        if (r >= 0)
                r = sd_bus_message_append(reply, "sssstt", actor, class_name, what, kind, h->count, h->sum_ns);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 't', h->slots, sizeof(h->slots));
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

typedef struct CallStatsState {
        Manager *m;
        sd_bus_message *reply;
        const char *actor, *method;
        uid_t only_uid;
        int r;
} CallStatsState;

static void call_stats_one(const struct kt_call_key *key, const struct kt_call_stats *st, void *userdata) {
        CallStatsState *s = userdata;
        const TraceActor *ta = manager_trace_actor_by_key(s->m, key->actor);
        const char *method = manager_trace_method_name(s->m, key->method) ?: "?";
        if (s->r < 0 || !ta || !manager_trace_actor_matches(ta, s->actor) || (s->method && *s->method && !streq(method, s->method)) ||
            (s->only_uid != (uid_t) -1 && ta->uid != s->only_uid))
                return;
        for (unsigned p = 0; p < TRACE_PHASE_MAX && s->r >= 0; p++)
                s->r = append_hist(s->reply, ta->id_string, ta->class_name, method, trace_phase_to_string(p),
                                   &st->phase[p]);
}

static int method_get_call_stats(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *actor, *method;
        int r;

        uid_t only_uid;
        r = sd_bus_message_read(msg, "ss", &actor, &method);
        if (r < 0)
                return r;
        r = trace_reader(msg, m, &only_uid, error);
        if (r < 0)
                return r;
        r = trace_check_on(m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssssttat)");
        if (r < 0)
                return r;
        CallStatsState s = { .m = m, .reply = reply, .actor = actor, .method = method, .only_uid = only_uid };
        r = trace_foreach_call(manager_trace_loader(m), call_stats_one, &s);
        if (r < 0 || s.r < 0)
                return r < 0 ? r : s.r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void sched_stats_one(uint64_t actor, const struct kt_sched_stats *st, void *userdata) {
        CallStatsState *s = userdata;
        const TraceActor *ta = manager_trace_actor_by_key(s->m, actor);
        if (s->r < 0 || !ta || !manager_trace_actor_matches(ta, s->actor) ||
            (s->only_uid != (uid_t) -1 && ta->uid != s->only_uid))
                return;
        for (unsigned k = 0; k < TRACE_SCHED_MAX && s->r >= 0; k++)
                s->r = append_hist(s->reply, ta->id_string, ta->class_name, "", trace_sched_kind_to_string(k),
                                   &st->hist[k]);
}

static int method_get_sched_stats(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *actor;
        int r;

        uid_t only_uid;
        r = sd_bus_message_read(msg, "s", &actor);
        if (r < 0)
                return r;
        r = trace_reader(msg, m, &only_uid, error);
        if (r < 0)
                return r;
        r = trace_check_on(m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssssttat)");
        if (r < 0)
                return r;
        CallStatsState s = { .m = m, .reply = reply, .actor = actor, .only_uid = only_uid };
        r = trace_foreach_sched(manager_trace_loader(m), sched_stats_one, &s);
        if (r < 0 || s.r < 0)
                return r < 0 ? r : s.r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_prometheus(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *text = NULL;
        uid_t only_uid;
        int r = trace_reader(msg, userdata, &only_uid, error);
        if (r < 0)
                return r;
        r = manager_trace_prometheus(userdata, only_uid, &text);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "s", text);
}

static int trace_do_reset(sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        int r = trace_check_on(m, error);
        if (r < 0)
                return r;
        trace_reset(manager_trace_loader(m));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_reset(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return trace_run_privileged(msg, userdata, "reset the histograms", trace_do_reset, error);
}

static int trace_do_set_enabled(sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        int enabled, r;

        r = sd_bus_message_read(msg, "b", &enabled);
        if (r < 0)
                return r;
        r = trace_check_on(m, error);
        if (r < 0)
                return r;
        if (!enabled && manager_trace_timeline_active(m))
                return sd_bus_error_set(error, "io.kactor.Error.Busy", "A timeline is being recorded.");
        r = manager_trace_set_enabled(m, enabled);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to %s tracing: %m", enabled ? "attach" : "detach");
        (void) sd_bus_emit_properties_changed(sd_bus_message_get_bus(msg), KACTOR_BUS_PATH, KACTOR_BUS_TRACE_INTERFACE,
                                              "Enabled", "Reason", NULL);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_set_enabled(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return trace_run_privileged(msg, userdata, "attach or detach tracing", trace_do_set_enabled, error);
}

typedef struct TimelineRequest {
        Manager *m;
        sd_bus_message *msg;
        sd_event_source *timer;
        int fd; /* where the JSON goes */
} TimelineRequest;

static TimelineRequest *timeline_request_free(TimelineRequest *t) {
        if (!t)
                return NULL;
        sd_event_source_disable_unref(t->timer);
        sd_bus_message_unref(t->msg);
        safe_close(t->fd);
        free(t);
        return NULL;
}

static int on_timeline_done(sd_event_source *s, uint64_t usec, void *userdata) {
        TimelineRequest *t = userdata;
        uint64_t n = 0, dropped = 0;

        /* The caller's file may be a pipe it reads only after the reply: it must not block us. */
        int r = manager_trace_timeline_end(t->m, t->fd, &n, &dropped);
        if (r < 0)
                (void) sd_bus_reply_method_errnof(t->msg, r, "Failed to write the timeline: %m");
        else
                (void) sd_bus_reply_method_return(t->msg, "tt", n, dropped);
        timeline_request_free(t);
        return 0;
}

static int trace_do_timeline(sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        uint64_t duration;
        int fd, r;

        r = sd_bus_message_read(msg, "ht", &fd, &duration);
        if (r < 0)
                return r;
        if (duration == 0 || duration > TRACE_TIMELINE_MAX_USEC)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "The duration must be more than 0 and at most 10 minutes.");
        r = trace_check_on(m, error);
        if (r < 0)
                return r;
        TimelineRequest *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->m = m;
        t->msg = sd_bus_message_ref(msg);
        t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (t->fd < 0) {
                timeline_request_free(t);
                return -errno;
        }
        r = sd_event_add_time_relative(m->event, &t->timer, CLOCK_MONOTONIC, duration, 0, on_timeline_done, t);
        if (r >= 0)
                r = manager_trace_timeline_begin(m);
        if (r < 0) {
                timeline_request_free(t);
                if (r == -EBUSY)
                        return sd_bus_error_set(error, "io.kactor.Error.Busy", "Another timeline is being recorded.");
                if (r == -EOPNOTSUPP)
                        return sd_bus_error_set(error, "io.kactor.Error.NotSupported", "Tracing is detached.");
                return r;
        }
        return 1;
}

static int method_timeline(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return trace_run_privileged(msg, userdata, "record a timeline of every actor's calls", trace_do_timeline,
                                    error);
}

static int property_enabled(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) manager_trace_enabled(userdata));
}

static int property_reason(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", manager_trace_reason(userdata));
}

static int property_pin_path(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Trace *t = manager_trace_loader(userdata);
        return sd_bus_message_append(reply, "s", t ? trace_pin_dir(t) ?: "" : "");
}

static int property_dropped(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Trace *t = manager_trace_loader(userdata);
        return sd_bus_message_append(reply, "t", t ? trace_dropped(t) : UINT64_C(0));
}

static int property_timeline(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) manager_trace_timeline_active(userdata));
}

static const sd_bus_vtable trace_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Enabled", "b", property_enabled, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Reason", "s", property_reason, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PinPath", "s", property_pin_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("TimelineActive", "b", property_timeline, 0, 0),
        SD_BUS_PROPERTY("DroppedEvents", "t", property_dropped, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("GetCallStats", SD_BUS_ARGS("s", actor, "s", method),
                                SD_BUS_RESULT("a(ssssttat)", stats), method_get_call_stats, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetSchedStats", SD_BUS_ARGS("s", actor), SD_BUS_RESULT("a(ssssttat)", stats),
                                method_get_sched_stats, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Prometheus", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", text), method_prometheus,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Timeline", SD_BUS_ARGS("h", output, "t", duration_usec),
                                SD_BUS_RESULT("t", events, "t", dropped), method_timeline, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reset", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetEnabled", SD_BUS_ARGS("b", enabled), SD_BUS_NO_RESULT, method_set_enabled,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int trace_bus_setup(Manager *m) {
        /* Put back on every new connection, after a D-Bus restart too. */
        int r = manager_bus_add_vtable(m, KACTOR_BUS_TRACE_INTERFACE, trace_vtable);
        if (r < 0)
                return log_error_errno(r, "Failed to add the %s interface: %m", KACTOR_BUS_TRACE_INTERFACE);
        return 0;
}

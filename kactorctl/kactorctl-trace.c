/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * kactorctl trace, top and timeline: what the node's tracing programs gathered (io.kactor.Trace1),
 * as histograms with percentiles, a live table of actors, a Chrome trace / Perfetto file, or
 * Prometheus text.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus-value.h"
#include "json-util.h"
#include <systemd/sd-event.h>

#include "kactorctl-trace.h"
#include "kactorctl.h"
#include "kactorctl-output.h"
#include "kactorctl-properties.h"
#include "kactorctl-util.h"
#include "macro.h"
#include "parse-util.h"
#include "trace-format.h"

#define TRACE_INTERFACE "io.kactor.Trace1"

typedef struct Stat {
        char *actor, *class_name, *what, *kind;
        uint64_t count, sum_ns;
        uint64_t slots[TRACE_HIST_SLOTS];
} Stat;

typedef struct StatList {
        Stat *v;
        size_t n;
} StatList;

static void stat_list_done(StatList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].actor);
                free(l->v[i].class_name);
                free(l->v[i].what);
                free(l->v[i].kind);
        }
        free(l->v);
        *l = (StatList) {};
}

/* Calls GetCallStats or GetSchedStats; fills l. Returns 0, or a negative errno with *error set when
 * the node manager said why (tracing off, say). */
static int stats_get(sd_bus *bus, bool sched, const char *actor, const char *method, StatList *l,
                     sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (sched)
                r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "GetSchedStats", error,
                                       &reply, "s", actor ?: "");
        else
                r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "GetCallStats", error,
                                       &reply, "ss", actor ?: "", method ?: "");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssssttat)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'r', "ssssttat")) > 0) {
                const char *a, *c, *w, *k;
                const void *slots;
                size_t size;
                Stat s = {};
                r = sd_bus_message_read(reply, "sssstt", &a, &c, &w, &k, &s.count, &s.sum_ns);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_array(reply, 't', &slots, &size);
                if (r < 0)
                        return r;
                memcpy(s.slots, slots, MIN(size, sizeof(s.slots)));
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
                Stat *v = realloc(l->v, (l->n + 1) * sizeof(Stat));
                if (!v)
                        return -ENOMEM;
                l->v = v;
                s.actor = strdup(a);
                s.class_name = strdup(c);
                s.what = strdup(w);
                s.kind = strdup(k);
                l->v[l->n++] = s;
                if (!s.actor || !s.class_name || !s.what || !s.kind)
                        return -ENOMEM;
        }
        return r;
}

static const Stat *stat_find(const StatList *l, const Stat *s) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->v[i].actor, s->actor) && streq(l->v[i].what, s->what) && streq(l->v[i].kind, s->kind))
                        return &l->v[i];
        return NULL;
}

/* s minus what prev had of it: the figures of an interval. */
static void stat_subtract(Stat *s, const StatList *prev) {
        const Stat *p = prev ? stat_find(prev, s) : NULL;
        if (!p)
                return;
        s->count -= MIN(p->count, s->count);
        s->sum_ns -= MIN(p->sum_ns, s->sum_ns);
        for (size_t i = 0; i < TRACE_HIST_SLOTS; i++)
                s->slots[i] -= MIN(p->slots[i], s->slots[i]);
}

static void format_ns(char *buf, size_t size, double ns) {
        if (ns < 1e3)
                snprintf(buf, size, "%.0fns", ns);
        else if (ns < 1e6)
                snprintf(buf, size, "%.1fus", ns / 1e3);
        else if (ns < 1e9)
                snprintf(buf, size, "%.1fms", ns / 1e6);
        else
                snprintf(buf, size, "%.2fs", ns / 1e9);
}

static void print_hist(const Stat *s) {
        size_t lo = TRACE_HIST_SLOTS, hi = 0;
        uint64_t max = 0;
        for (size_t i = 0; i < TRACE_HIST_SLOTS; i++)
                if (s->slots[i]) {
                        lo = MIN(lo, i);
                        hi = i;
                        max = MAX(max, s->slots[i]);
                }
        for (size_t i = lo; i <= hi && lo < TRACE_HIST_SLOTS; i++) {
                char a[16], b[16];
                format_ns(a, sizeof(a), i == 0 ? 0 : (double) trace_hist_bucket_upper(i - 1));
                format_ns(b, sizeof(b), (double) trace_hist_bucket_upper(i));
                int bar = (int) (s->slots[i] * 40 / (max ?: 1));
                printf("        [%7s, %7s) %10" PRIu64 " |%-40.*s|\n", a, b, s->slots[i], bar,
                       "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
        }
}

static void print_stats_json(FILE *f, const StatList *l) {
        for (size_t i = 0; i < l->n; i++) {
                const Stat *s = &l->v[i];
                fprintf(f, "%s{\"actor\":", i == 0 ? "" : ",");
                json_string_fputs(s->actor, f);
                fprintf(f, ",\"class\":");
                json_string_fputs(s->class_name, f);
                if (*s->what) {
                        fprintf(f, ",\"method\":");
                        json_string_fputs(s->what, f);
                        fprintf(f, ",\"phase\":");
                } else
                        fprintf(f, ",\"kind\":");
                json_string_fputs(s->kind, f);
                fprintf(f, ",\"count\":%" PRIu64 ",\"sum_ns\":%" PRIu64 ",\"p50_ns\":%.0f,\"p99_ns\":%.0f,\"buckets\":[",
                        s->count, s->sum_ns, trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.5),
                        trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.99));
                for (size_t j = 0; j < TRACE_HIST_SLOTS; j++)
                        fprintf(f, "%s%" PRIu64, j ? "," : "", s->slots[j]);
                fprintf(f, "]}");
        }
}

static void print_stats_text(const StatList *calls, const StatList *sched) {
        const char *last_actor = "", *last_method = NULL;
        for (size_t i = 0; i < calls->n; i++) {
                const Stat *s = &calls->v[i];
                char p50[16], p99[16], mean[16];
                if (!streq(s->actor, last_actor) || !last_method || !streq(s->what, last_method)) {
                        printf("%sactor %s (%s), method %s\n", i ? "\n" : "", s->actor, s->class_name, s->what);
                        last_actor = s->actor;
                        last_method = s->what;
                }
                format_ns(p50, sizeof(p50), trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.5));
                format_ns(p99, sizeof(p99), trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.99));
                format_ns(mean, sizeof(mean), s->count ? (double) s->sum_ns / (double) s->count : 0);
                printf("  %-8s count %-8" PRIu64 " p50 %-8s p99 %-8s mean %s\n", s->kind, s->count, p50, p99, mean);
                if (s->count > 0)
                        print_hist(s);
        }
        if (calls->n == 0)
                printf("No calls traced.\n");
        last_actor = "";
        for (size_t i = 0; i < sched->n; i++) {
                const Stat *s = &sched->v[i];
                char p50[16], p99[16], total[16];
                if (!streq(s->actor, last_actor)) {
                        printf("\nactor %s (%s), scheduler\n", s->actor, s->class_name);
                        last_actor = s->actor;
                }
                format_ns(p50, sizeof(p50), trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.5));
                format_ns(p99, sizeof(p99), trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.99));
                format_ns(total, sizeof(total), (double) s->sum_ns);
                printf("  %-8s count %-8" PRIu64 " p50 %-8s p99 %-8s total %s\n", s->kind, s->count, p50, p99, total);
        }
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
        interrupted = 1;
}

/* The longest --interval, and --duration of a timeline. */
#define TRACE_INTERVAL_MAX_USEC (86400 * UINT64_C(1000000))
#define TIMELINE_DURATION_MAX_USEC (600 * UINT64_C(1000000))

/* --interval or --duration of verb: more than 0 seconds and at most max_usec. Returns 0, or
 * EXIT_USAGE after saying why. */
static int trace_parse_seconds(const char *verb, const char *option, const char *arg, uint64_t max_usec,
                               double *ret) {
        uint64_t usec;

        if (parse_timeout_bounded(arg, max_usec, &usec) < 0)
                return ctl_usage_error(verb, "%s needs seconds (more than 0, at most %" PRIu64 "), not '%s'.",
                                       option, max_usec / UINT64_C(1000000), arg);
        *ret = (double) usec / 1e6;
        return 0;
}

/* --count of verb: a positive number of rounds. Returns 0, or EXIT_USAGE after saying why. */
static int trace_parse_count(const char *verb, const char *arg, long *ret) {
        uint32_t n;

        if (parse_uint32(arg, &n) < 0 || n == 0)
                return ctl_usage_error(verb, "--count needs a positive number, not '%s'.", arg);
        *ret = (long) n;
        return 0;
}

static void sleep_seconds(double s) {
        struct timespec ts = { .tv_sec = (time_t) s, .tv_nsec = (long) ((s - floor(s)) * 1e9) };
        while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* What `trace` was asked for. */
typedef struct TraceOptions {
        const char *actor;
        const char *method;
        double interval; /* 0: once, the totals */
        long count;      /* with interval: rounds, 0 for no limit */
        bool prometheus;
} TraceOptions;

enum {
        ARG_ACTOR = VERB_OPTION_FIRST,
        ARG_METHOD,
        ARG_INTERVAL,
        ARG_COUNT,
        ARG_PROMETHEUS,
        ARG_DURATION,
};

static const struct option trace_options[] = {
        { "actor", required_argument, NULL, ARG_ACTOR },
        { "method", required_argument, NULL, ARG_METHOD },
        { "interval", required_argument, NULL, ARG_INTERVAL },
        { "count", required_argument, NULL, ARG_COUNT },
        { "prometheus", no_argument, NULL, ARG_PROMETHEUS },
        {}
};

static void trace_help(void) {
        printf("kactorctl trace [--actor ACTOR] [--method METHOD] [--interval SEC [--count N]]\n"
               "                [--json[=FORMAT] | --prometheus]\n\n"
               "Show where the node's actor calls spend their time: per actor and method, log2\n"
               "histograms with p50/p99 of the phases queue (waiting in the node manager), dispatch\n"
               "(until the worker starts it), exec (running), deliver (until the result is stored)\n"
               "and total; per actor, the scheduler's run-queue delay, off-CPU and on-CPU time.\n"
               "With --interval, every SEC seconds what happened in them (until Ctrl-C or N times).\n"
               "ACTOR is an id (or a prefix of one) or a name. --json (-j) prints\n"
               "{\"calls\": [...], \"sched\": [...]}, one document a round.\n");
}

static int trace_parse_option(int c, const char *arg, void *userdata) {
        TraceOptions *o = userdata;

        switch (c) {
        case ARG_ACTOR:
                o->actor = arg;
                return 0;
        case ARG_METHOD:
                o->method = arg;
                return 0;
        case ARG_INTERVAL:
                return trace_parse_seconds("trace", "--interval", arg, TRACE_INTERVAL_MAX_USEC, &o->interval);
        case ARG_COUNT:
                return trace_parse_count("trace", arg, &o->count);
        case 'j':
                if (arg_json == JSON_OFF)
                        arg_json = JSON_SHORT;
                return 0;
        case ARG_PROMETHEUS:
                o->prometheus = true;
                return 0;
        }
        return -EINVAL;
}

/* --prometheus: the node manager formats the metrics itself. */
static int trace_print_prometheus(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *text;
        int r;

        r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "Prometheus", &error,
                               &reply, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to read the metrics");
        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return ctl_error_errno(r, "Failed to read the reply of Prometheus");
        (void) pager_open(arg_pager);
        fputs(text, stdout);
        return 0;
}

/* --json: one document a round, in the format --json asked for. */
static int trace_print_json(const StatList *calls, const StatList *sched) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        if (!f)
                return ctl_oom();
        fprintf(f, "{\"calls\":[");
        print_stats_json(f, calls);
        fprintf(f, "],\"sched\":[");
        print_stats_json(f, sched);
        fprintf(f, "]}");
        if (fclose(f) != 0)
                return ctl_oom();
        json_format_write(stdout, text, arg_json);
        return 0;
}

static void trace_print_text(const StatList *calls, const StatList *sched, double interval) {
        if (interval > 0)
                printf("--- the last %g s ---\n", interval);
        print_stats_text(calls, sched);
}

/* Both kinds of statistics, as the options filter them. Returns 0, or a negative errno with *error
 * set where the node manager said why. */
static int trace_stats_get(sd_bus *bus, const TraceOptions *o, StatList *calls, StatList *sched,
                           sd_bus_error *error) {
        int r;

        r = stats_get(bus, false, o->actor, o->method, calls, error);
        if (r < 0)
                return r;
        return stats_get(bus, true, o->actor, NULL, sched, error);
}

/* Prints the totals once, or with an interval what happened in each interval. */
static int trace_watch(sd_bus *bus, const TraceOptions *o) {
        _cleanup_(stat_list_done) StatList prev_calls = {}, prev_sched = {};
        int r;

        signal(SIGINT, on_sigint);
        if (o->interval == 0)
                (void) pager_open(arg_pager);
        for (long round = 0;; round++) {
                _cleanup_(stat_list_done) StatList calls = {}, sched = {};
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                r = trace_stats_get(bus, o, &calls, &sched, &error);
                if (r < 0)
                        return ctl_bus_error(&error, r, "Failed to read the trace histograms");
                if (o->interval > 0) {
                        for (size_t i = 0; i < calls.n; i++)
                                stat_subtract(&calls.v[i], round > 0 ? &prev_calls : NULL);
                        for (size_t i = 0; i < sched.n; i++)
                                stat_subtract(&sched.v[i], round > 0 ? &prev_sched : NULL);
                }
                if (o->interval == 0 || round > 0) {
                        if (arg_json != JSON_OFF) {
                                r = trace_print_json(&calls, &sched);
                                if (r < 0)
                                        return r;
                        } else
                                trace_print_text(&calls, &sched, o->interval);
                        fflush(stdout);
                }
                if (o->interval == 0 || interrupted || (o->count > 0 && round >= o->count))
                        break;
                /* The next round's deltas are against the totals now. */
                stat_list_done(&prev_calls);
                stat_list_done(&prev_sched);
                r = trace_stats_get(bus, o, &prev_calls, &prev_sched, &error);
                if (r < 0)
                        return ctl_bus_error(&error, r, "Failed to read the trace histograms");
                sleep_seconds(o->interval);
                if (interrupted)
                        break;
        }
        return 0;
}

static int trace_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char **args = NULL;
        TraceOptions o = {};
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, trace_parse_option, &o, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args > 0)
                return ctl_usage_error(verb->name, "Unexpected argument '%s'.", args[0]);

        r = kactorctl_bus_connect(&bus);
        if (r < 0)
                return r;
        if (o.prometheus)
                return trace_print_prometheus(bus);
        return trace_watch(bus, &o);
}

const Verb verb_trace = {
        .name = "trace",
        .options = trace_options,
        .short_options = "j",
        .help = trace_help,
        .run = trace_run,
};

/* --- top ----------------------------------------------------------------------------------------- */

/* What `top` was asked for. */
typedef struct TopOptions {
        double interval;
        long count; /* rounds, 0 for no limit */
        bool all;
} TopOptions;

/* One actor's line: its properties as of the round, and its figures over the round. */
typedef struct TopRow {
        const ActorInfo *actor;
        uint64_t calls, sum_ns;
        uint64_t slots[TRACE_HIST_SLOTS];
        uint64_t runq_count, runq_ns, oncpu_ns;
} TopRow;

typedef struct Top {
        sd_bus *bus;
        TopOptions o;
        bool tty;
        long round;
        /* The totals at the last round, and when they were read. */
        StatList prev_calls, prev_sched;
        uint64_t prev_usec;
        bool have_prev;
        /* The last round, kept to be drawn again when the terminal changes size. */
        ActorList actors;
        TopRow *rows;
        size_t n_rows;
        double elapsed; /* seconds the rows' figures cover */
        char *trace_off; /* why there are no figures, NULL when there are */
} Top;

static void top_done(Top *t) {
        stat_list_done(&t->prev_calls);
        stat_list_done(&t->prev_sched);
        actor_list_done(&t->actors);
        t->rows = mfree(t->rows);
        t->trace_off = mfree(t->trace_off);
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}

static int top_row_compare_id(const void *key, const void *row) {
        return strcmp(key, ((const TopRow *) row)->actor->id ?: "");
}

/* The row of an actor, while the rows are in the order of their ids (the actors' list's). */
static TopRow *top_row_find(Top *t, const char *actor_id) {
        return bsearch(actor_id, t->rows, t->n_rows, sizeof(TopRow), top_row_compare_id);
}

static double top_row_cpu(const Top *t, const TopRow *row) {
        return t->elapsed > 0 ? 100.0 * (double) row->oncpu_ns / (t->elapsed * 1e9) : 0;
}

/* The busiest first (they stay in sight when the terminal is too small), then in creation order. */
static int top_row_compare(const void *a, const void *b) {
        const TopRow *x = a, *y = b;

        if (x->calls != y->calls)
                return x->calls > y->calls ? -1 : 1;
        if (x->oncpu_ns != y->oncpu_ns)
                return x->oncpu_ns > y->oncpu_ns ? -1 : 1;
        return strcmp(x->actor->id ?: "", y->actor->id ?: "");
}

/* A round: the actors now, and what the tracing counted since the last round. */
static int top_refresh(Top *t) {
        _cleanup_(stat_list_done) StatList calls = {}, sched = {};
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        TraceOptions everything = {};
        uint64_t usec;
        int r;

        r = trace_stats_get(t->bus, &everything, &calls, &sched, &error);
        usec = now_usec();
        t->trace_off = mfree(t->trace_off);
        if (r < 0) {
                /* Without tracing the table still shows the actors. */
                if (!sd_bus_error_is_set(&error))
                        return ctl_error_errno(r, "Failed to read the trace histograms");
                t->trace_off = strdup(error.message ?: error.name);
                if (!t->trace_off)
                        return ctl_oom();
        }

        actor_list_done(&t->actors);
        t->rows = mfree(t->rows);
        t->n_rows = 0;
        r = bus_list_actors(t->bus, &t->actors);
        if (r < 0)
                return r;
        t->rows = calloc(MAX(t->actors.n, (size_t) 1), sizeof(TopRow));
        if (!t->rows)
                return ctl_oom();
        /* In the order of the ids, bus_list_actors()'s, for top_row_find(); sorted for showing after. */
        for (size_t i = 0; i < t->actors.n; i++)
                if (t->o.all || !actor_info_is_dead(&t->actors.items[i]))
                        t->rows[t->n_rows++] = (TopRow) { .actor = &t->actors.items[i] };

        t->elapsed = t->have_prev ? (double) (usec - t->prev_usec) / 1e6 : 0;
        for (size_t i = 0; t->have_prev && i < calls.n; i++) {
                Stat d = calls.v[i];
                TopRow *row;

                if (!streq(d.kind, "total") || !(row = top_row_find(t, d.actor)))
                        continue;
                stat_subtract(&d, &t->prev_calls);
                row->calls += d.count;
                row->sum_ns += d.sum_ns;
                for (size_t j = 0; j < TRACE_HIST_SLOTS; j++)
                        row->slots[j] += d.slots[j];
        }
        for (size_t i = 0; t->have_prev && i < sched.n; i++) {
                Stat d = sched.v[i];
                TopRow *row = top_row_find(t, d.actor);

                if (!row)
                        continue;
                stat_subtract(&d, &t->prev_sched);
                if (streq(d.kind, "runq")) {
                        row->runq_count = d.count;
                        row->runq_ns = d.sum_ns;
                } else if (streq(d.kind, "oncpu"))
                        row->oncpu_ns = d.sum_ns;
        }
        if (t->n_rows > 1)
                qsort(t->rows, t->n_rows, sizeof(TopRow), top_row_compare);

        /* These totals are the next round's start. */
        stat_list_done(&t->prev_calls);
        stat_list_done(&t->prev_sched);
        t->prev_calls = calls;
        t->prev_sched = sched;
        calls = sched = (StatList) {};
        t->prev_usec = usec;
        t->have_prev = true;
        return 0;
}

static uint64_t proc_rss_kib(uint32_t pid) {
        char path[64], line[256];
        uint64_t kib = 0;
        snprintf(path, sizeof(path), "/proc/%" PRIu32 "/status", pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %" SCNu64, &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* One line of the frame, cut at the terminal's width (0: not cut) on a character's boundary. */
static void top_line(FILE *f, const Top *t, unsigned columns, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
static void top_line(FILE *f, const Top *t, unsigned columns, const char *format, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        size_t n;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return;
        /* A terminal wraps a line as long as it is wide when the line ends: one column less. */
        if (t->tty && columns > 1)
                columns--;
        n = strlen(s);
        if (columns > 0 && n > columns) {
                n = columns;
                while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                        n--;
        }
        fwrite(s, 1, n, f);
        /* On a terminal the line clears what the last frame left to its right. */
        fputs(t->tty ? "\033[K\n" : "\n", f);
}

/* Draws the last round: as many lines as the terminal has, less one for the cursor; rows that do not
 * fit are counted in a last line. Elsewhere every row, unless $LINES says otherwise. */
static void top_draw(const Top *t) {
        _cleanup_free_ char *frame = NULL;
        unsigned lines = terminal_lines(), columns = terminal_columns();
        size_t size = 0, room, shown;
        FILE *f;

        f = open_memstream(&frame, &size);
        if (!f)
                return;
        room = lines > 1 ? lines - 1 : lines == 1 ? 1 : SIZE_MAX;
        if (t->tty)
                fputs("\033[H", f);
        if (arg_legend && room > 0) {
                top_line(f, t, columns, "%-32s %-12s %-10s %9s %9s %9s %9s %6s %9s %s", "ACTOR", "CLASS", "STATE",
                         "CALLS/S", "P50", "P99", "RUNQ AVG", "CPU%", "MEM", "GPUS");
                room--;
        }
        if (t->trace_off && !arg_quiet && room > 0) {
                top_line(f, t, columns, "(no figures: %s)", t->trace_off);
                room--;
        }
        if (t->n_rows == 0 && !arg_quiet && room > 0)
                top_line(f, t, columns, "(no %sactors)", t->o.all ? "" : "live ");
        shown = t->n_rows <= room ? t->n_rows : room > 0 ? room - 1 : 0;
        for (size_t i = 0; i < shown; i++) {
                const TopRow *row = &t->rows[i];
                const ActorInfo *a = row->actor;
                _cleanup_free_ char *gpus = uint_array_to_string(&a->gpu_ids, ",");
                char p50[16] = "-", p99[16] = "-", runq[16] = "-", rate[32] = "-", cpu[16] = "-", mem[32] = "-";
                uint64_t rss = a->pid > 0 ? proc_rss_kib(a->pid) : 0;

                if (!t->trace_off && t->elapsed > 0) {
                        format_ns(p50, sizeof(p50),
                                  trace_hist_percentile((const __u64 *) row->slots, TRACE_HIST_SLOTS, 0.5));
                        format_ns(p99, sizeof(p99),
                                  trace_hist_percentile((const __u64 *) row->slots, TRACE_HIST_SLOTS, 0.99));
                        format_ns(runq, sizeof(runq),
                                  row->runq_count ? (double) row->runq_ns / (double) row->runq_count : 0);
                        snprintf(rate, sizeof(rate), "%.0f", (double) row->calls / t->elapsed);
                        snprintf(cpu, sizeof(cpu), "%.1f", top_row_cpu(t, row));
                }
                if (rss > 0)
                        snprintf(mem, sizeof(mem), "%.1fM", (double) rss / 1024.0);
                top_line(f, t, columns, "%-32s %-12.12s %-10s %9s %9s %9s %9s %6s %9s %s", a->id ?: "?",
                         a->class_name ?: "?", a->state ?: "?", rate, p50, p99, runq, cpu, mem,
                         gpus && *gpus ? gpus : "-");
        }
        if (shown < t->n_rows && room > 0)
                top_line(f, t, columns, "... %zu more", t->n_rows - shown);
        if (t->tty)
                fputs("\033[J", f); /* and below it, the rest of the last frame */
        if (fclose(f) != 0)
                return;
        fwrite(frame, 1, size, stdout);
        fflush(stdout);
}

static void top_help(void) {
        printf("kactorctl top [--interval SEC] [-n N] [--all]\n\n"
               "A live table of the node's live actors (--all: dead ones too): calls/s, p50/p99\n"
               "of the call latency, average run-queue delay, CPU, memory, GPUs and state, every\n"
               "SEC seconds (default 1) until Ctrl-C, or N times. The busiest come first; the\n"
               "table fits the terminal, and '... N more' counts the rows that do not fit.\n"
               "Where stdout is no terminal, $LINES and $COLUMNS set its size (else no limit).\n\n"
               "  -h --help          Show this help\n"
               "     --interval SEC Time between rounds (default: 1)\n"
               "  -n --iterations N Stop after N rounds (--count N is the same)\n"
               "  -a --all          Show dead actors too\n");
}

static const struct option top_options[] = {
        { "interval", required_argument, NULL, ARG_INTERVAL },
        { "count", required_argument, NULL, ARG_COUNT },
        { "iterations", required_argument, NULL, ARG_COUNT },
        { "all", no_argument, NULL, 'a' },
        {}
};

static int top_parse_option(int c, const char *arg, void *userdata) {
        TopOptions *o = userdata;

        switch (c) {
        case ARG_INTERVAL:
                return trace_parse_seconds("top", "--interval", arg, TRACE_INTERVAL_MAX_USEC, &o->interval);
        case ARG_COUNT:
        case 'n':
                return trace_parse_count("top", arg, &o->count);
        case 'a':
                o->all = true;
                return 0;
        }
        return -EINVAL;
}

static int on_top_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Top *t = userdata;
        int r;

        r = top_refresh(t);
        if (r < 0)
                return sd_event_exit(sd_event_source_get_event(s), r);
        top_draw(t);
        if (t->o.count > 0 && ++t->round >= t->o.count)
                return sd_event_exit(sd_event_source_get_event(s), 0);
        r = sd_event_source_set_time_relative(s, (uint64_t) (t->o.interval * 1e6));
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                return sd_event_exit(sd_event_source_get_event(s), ctl_error_errno(r, "Failed to set the timer"));
        return 0;
}

static int on_top_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Top *t = userdata;

        if (si->ssi_signo == SIGWINCH) {
                /* The last round again, at the new size. */
                if (t->have_prev && t->round > 0)
                        top_draw(t);
                return 0;
        }
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int top_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(top_done) Top t = { .o.interval = 1 };
        _cleanup_free_ char **args = NULL;
        sd_event *event = NULL;
        sigset_t mask, saved;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, top_parse_option, &t.o, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args > 0)
                return ctl_usage_error(verb->name, "Unexpected argument '%s'.", args[0]);

        r = kactorctl_bus_connect(&bus);
        if (r < 0)
                return r;
        t.bus = bus;
        t.tty = isatty(STDOUT_FILENO);
        /* The first round's start; a round's figures are what happened since the one before. */
        r = top_refresh(&t);
        if (r < 0)
                return r;

        /* sd-event takes the signals through a signalfd: blocked while it watches. Nothing of the
         * terminal's settings changes, so however top ends the terminal is as it was. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGWINCH);
        if (sigprocmask(SIG_BLOCK, &mask, &saved) < 0)
                return ctl_error_errno(-errno, "Failed to block signals");
        r = sd_event_new(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_top_signal, &t);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_top_signal, &t);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGWINCH, on_top_signal, &t);
        if (r >= 0)
                r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, (uint64_t) (t.o.interval * 1e6), 0,
                                               on_top_tick, &t);
        if (r < 0)
                r = ctl_error_errno(r, "Failed to set up the event loop");
        else
                r = sd_event_loop(event);
        event = sd_event_unref(event);
        (void) sigprocmask(SIG_SETMASK, &saved, NULL);
        return r;
}

const Verb verb_top = {
        .name = "top",
        .options = top_options,
        .short_options = "n:a",
        .help = top_help,
        .run = top_run,
};

/* --- timeline ------------------------------------------------------------------------------------ */

/* What `timeline` was asked for. */
typedef struct TimelineOptions {
        const char *output; /* a file, or "-" for stdout */
        double duration;
} TimelineOptions;

static void timeline_help(void) {
        printf("kactorctl timeline -o FILE [--duration SEC]\n\n"
               "Record every call (and the scheduler's waits of the actors' threads) for SEC\n"
               "seconds (default 5) and write a Chrome trace / Perfetto JSON file: one process\n"
               "track per actor, each call with its phases nested in it. Open it in\n"
               "https://ui.perfetto.dev or chrome://tracing. Events the kernel had no room for are\n"
               "counted in otherData.dropped_events. -q leaves out the summary on stderr.\n");
}

static const struct option timeline_options[] = {
        { "output", required_argument, NULL, 'o' },
        { "duration", required_argument, NULL, ARG_DURATION },
        {}
};

static int timeline_parse_option(int c, const char *arg, void *userdata) {
        TimelineOptions *o = userdata;

        switch (c) {
        case 'o':
                o->output = arg;
                return 0;
        case ARG_DURATION:
                return trace_parse_seconds("timeline", "--duration", arg, TIMELINE_DURATION_MAX_USEC, &o->duration);
        }
        return -EINVAL;
}

/* Asks the node manager to record for the duration into fd; returns the events written and dropped. */
static int timeline_record(sd_bus *bus, int fd, double duration, uint64_t *ret_events, uint64_t *ret_dropped) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        uint64_t usec = (uint64_t) (duration * 1e6);
        int r;

        r = sd_bus_message_new_method_call(bus, &m, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "Timeline");
        if (r >= 0)
                r = sd_bus_message_append(m, "ht", fd, usec);
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        r = sd_bus_call(bus, m, usec + 60 * UINT64_C(1000000), &error, &reply);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to record the timeline");
        r = sd_bus_message_read(reply, "tt", ret_events, ret_dropped);
        if (r < 0)
                return ctl_error_errno(r, "Failed to read the reply of Timeline");
        return 0;
}

static int timeline_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char **args = NULL;
        TimelineOptions o = { .duration = 5 };
        uint64_t events, dropped;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, timeline_parse_option, &o, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args > 0)
                return ctl_usage_error(verb->name, "Unexpected argument '%s'.", args[0]);
        if (!o.output)
                return ctl_usage_error(verb->name, "-o FILE is needed.");

        /* The node manager writes the file through the descriptor we pass: no size limit. */
        int fd = streq(o.output, "-") ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)
                                      : open(o.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return ctl_error_errno(-errno, "%s", o.output);
        r = kactorctl_bus_connect(&bus);
        if (r >= 0)
                r = timeline_record(bus, fd, o.duration, &events, &dropped);
        close(fd);
        if (r < 0)
                return r;

        if (arg_quiet)
                return 0;
        fprintf(stderr, "%" PRIu64 " events written to %s", events, o.output);
        if (dropped)
                fprintf(stderr, "; %" PRIu64 " dropped (the ring buffer was full)", dropped);
        fputc('\n', stderr);
        return 0;
}

const Verb verb_timeline = {
        .name = "timeline",
        .options = timeline_options,
        .short_options = "o:",
        .help = timeline_help,
        .run = timeline_run,
};

void trace_print_status(sd_bus *bus) {
        _cleanup_free_ char *reason = NULL, *pin = NULL;
        int enabled = 0;
        if (sd_bus_get_property_trivial(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "Enabled", NULL, 'b',
                                        &enabled) < 0)
                return;
        (void) sd_bus_get_property_string(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "Reason", NULL, &reason);
        (void) sd_bus_get_property_string(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "PinPath", NULL, &pin);
        if (enabled)
                printf("Tracing: on (maps in %s)\n", pin && *pin ? pin : "-");
        else
                printf("Tracing: off (%s)\n", reason && *reason ? reason : "unknown reason");
}

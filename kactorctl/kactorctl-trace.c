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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus-value.h"
#include "json-util.h"
#include "kactorctl-trace.h"
#include "kactorctl.h"
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

/* Calls GetCallStats or GetSchedStats; fills l. */
static int stats_get(sd_bus *bus, bool sched, const char *actor, const char *method, StatList *l) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (sched)
                r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "GetSchedStats", &error,
                                       &reply, "s", actor ?: "");
        else
                r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, TRACE_INTERFACE, "GetCallStats", &error,
                                       &reply, "ss", actor ?: "", method ?: "");
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to read the trace histograms");
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

static void print_stats_json(const StatList *l, bool first_list) {
        for (size_t i = 0; i < l->n; i++) {
                const Stat *s = &l->v[i];
                printf("%s\n    {\"actor\":", i == 0 ? "" : ",");
                json_string_fputs(s->actor, stdout);
                printf(",\"class\":");
                json_string_fputs(s->class_name, stdout);
                if (*s->what) {
                        printf(",\"method\":");
                        json_string_fputs(s->what, stdout);
                        printf(",\"phase\":");
                } else
                        printf(",\"kind\":");
                json_string_fputs(s->kind, stdout);
                printf(",\"count\":%" PRIu64 ",\"sum_ns\":%" PRIu64 ",\"p50_ns\":%.0f,\"p99_ns\":%.0f,\"buckets\":[",
                       s->count, s->sum_ns, trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.5),
                       trace_hist_percentile((const __u64 *) s->slots, TRACE_HIST_SLOTS, 0.99));
                for (size_t j = 0; j < TRACE_HIST_SLOTS; j++)
                        printf("%s%" PRIu64, j ? "," : "", s->slots[j]);
                printf("]}");
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
        bool help;
        const char *actor;
        const char *method;
        double interval; /* 0: once, the totals */
        long count;      /* with interval: rounds, 0 for no limit */
        bool json;
        bool prometheus;
} TraceOptions;

static void trace_help(void) {
        printf("kactorctl trace [--actor ACTOR] [--method METHOD] [--interval SEC [--count N]]\n"
               "                [--json | --prometheus]\n\n"
               "Show where the node's actor calls spend their time: per actor and method, log2\n"
               "histograms with p50/p99 of the phases queue (waiting in the node manager), dispatch\n"
               "(until the worker starts it), exec (running), deliver (until the result is stored)\n"
               "and total; per actor, the scheduler's run-queue delay, off-CPU and on-CPU time.\n"
               "With --interval, every SEC seconds what happened in them (until Ctrl-C or N times).\n"
               "ACTOR is an id (or a prefix of one) or a name.\n");
}

/* Returns 0, or EXIT_USAGE after saying why. */
static int trace_parse_argv(int argc, char *argv[], TraceOptions *o) {
        enum { ARG_ACTOR = 0x100, ARG_METHOD, ARG_INTERVAL, ARG_COUNT, ARG_PROMETHEUS };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "actor", required_argument, NULL, ARG_ACTOR },
                { "method", required_argument, NULL, ARG_METHOD },
                { "interval", required_argument, NULL, ARG_INTERVAL },
                { "count", required_argument, NULL, ARG_COUNT },
                { "json", no_argument, NULL, 'j' },
                { "prometheus", no_argument, NULL, ARG_PROMETHEUS },
                {}
        };
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":hj", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        o->help = true;
                        return 0;
                case ARG_ACTOR:
                        o->actor = optarg;
                        break;
                case ARG_METHOD:
                        o->method = optarg;
                        break;
                case ARG_INTERVAL:
                        r = trace_parse_seconds("trace", "--interval", optarg, TRACE_INTERVAL_MAX_USEC,
                                                &o->interval);
                        if (r != 0)
                                return r;
                        break;
                case ARG_COUNT:
                        r = trace_parse_count("trace", optarg, &o->count);
                        if (r != 0)
                                return r;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case ARG_PROMETHEUS:
                        o->prometheus = true;
                        break;
                default:
                        return ctl_usage_bad_option("trace", c, argv);
                }
        if (optind < argc)
                return ctl_usage_error("trace", "Unexpected argument '%s'.", argv[optind]);
        return 0;
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
                return r;
        fputs(text, stdout);
        return 0;
}

/* --json: one document a round. */
static void trace_print_json(const StatList *calls, const StatList *sched) {
        printf("{\"calls\":[");
        print_stats_json(calls, true);
        printf("\n],\"sched\":[");
        print_stats_json(sched, false);
        printf("\n]}\n");
}

static void trace_print_text(const StatList *calls, const StatList *sched, double interval) {
        if (interval > 0)
                printf("--- the last %g s ---\n", interval);
        print_stats_text(calls, sched);
}

/* Both kinds of statistics, as the options filter them. */
static int trace_stats_get(sd_bus *bus, const TraceOptions *o, StatList *calls, StatList *sched) {
        int r;

        r = stats_get(bus, false, o->actor, o->method, calls);
        if (r < 0)
                return r;
        return stats_get(bus, true, o->actor, NULL, sched);
}

/* Prints the totals once, or with an interval what happened in each interval. */
static int trace_watch(sd_bus *bus, const TraceOptions *o) {
        _cleanup_(stat_list_done) StatList prev_calls = {}, prev_sched = {};
        int r;

        signal(SIGINT, on_sigint);
        for (long round = 0;; round++) {
                _cleanup_(stat_list_done) StatList calls = {}, sched = {};

                r = trace_stats_get(bus, o, &calls, &sched);
                if (r < 0)
                        return r;
                if (o->interval > 0) {
                        for (size_t i = 0; i < calls.n; i++)
                                stat_subtract(&calls.v[i], round > 0 ? &prev_calls : NULL);
                        for (size_t i = 0; i < sched.n; i++)
                                stat_subtract(&sched.v[i], round > 0 ? &prev_sched : NULL);
                }
                if (o->interval == 0 || round > 0) {
                        if (o->json)
                                trace_print_json(&calls, &sched);
                        else
                                trace_print_text(&calls, &sched, o->interval);
                        fflush(stdout);
                }
                if (o->interval == 0 || interrupted || (o->count > 0 && round >= o->count))
                        break;
                /* The next round's deltas are against the totals now. */
                stat_list_done(&prev_calls);
                stat_list_done(&prev_sched);
                r = trace_stats_get(bus, o, &prev_calls, &prev_sched);
                if (r < 0)
                        return r;
                sleep_seconds(o->interval);
                if (interrupted)
                        break;
        }
        return 0;
}

int verb_trace(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        TraceOptions o = {};
        int r;

        r = trace_parse_argv(argc, argv, &o);
        if (r != 0)
                return r;
        if (o.help) {
                trace_help();
                return 0;
        }

        r = kactorctl_bus_connect(&bus);
        if (r < 0)
                return r;
        if (o.prometheus)
                return trace_print_prometheus(bus);
        return trace_watch(bus, &o);
}

typedef struct TopRow {
        char *actor, *class_name;
        uint64_t calls, sum_ns;
        uint64_t slots[TRACE_HIST_SLOTS];
        uint64_t runq_count, runq_ns, oncpu_ns;
} TopRow;

static TopRow *top_row(TopRow **rows, size_t *n, const Stat *s) {
        for (size_t i = 0; i < *n; i++)
                if (streq((*rows)[i].actor, s->actor))
                        return &(*rows)[i];
        TopRow *v = realloc(*rows, (*n + 1) * sizeof(TopRow));
        if (!v)
                return NULL;
        *rows = v;
        v[*n] = (TopRow) { .actor = s->actor, .class_name = s->class_name };
        return &v[(*n)++];
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

static void top_print(sd_bus *bus, const StatList *calls, const StatList *sched, double interval) {
        TopRow *rows = NULL;
        size_t n = 0;

        for (size_t i = 0; i < calls->n; i++) {
                const Stat *s = &calls->v[i];
                if (!streq(s->kind, "total"))
                        continue;
                TopRow *t = top_row(&rows, &n, s);
                if (!t)
                        break;
                t->calls += s->count;
                t->sum_ns += s->sum_ns;
                for (size_t j = 0; j < TRACE_HIST_SLOTS; j++)
                        t->slots[j] += s->slots[j];
        }
        for (size_t i = 0; i < sched->n; i++) {
                const Stat *s = &sched->v[i];
                TopRow *t = top_row(&rows, &n, s);
                if (!t)
                        break;
                if (streq(s->kind, "runq")) {
                        t->runq_count = s->count;
                        t->runq_ns = s->sum_ns;
                } else if (streq(s->kind, "oncpu"))
                        t->oncpu_ns = s->sum_ns;
        }

        printf("%-34s %-12s %-10s %9s %9s %9s %9s %6s %9s %s\n", "ACTOR", "CLASS", "STATE", "CALLS/S", "P50", "P99",
               "RUNQ AVG", "CPU%", "MEM", "GPUS");
        for (size_t i = 0; i < n; i++) {
                TopRow *t = &rows[i];
                _cleanup_free_ char *path = NULL, *state = NULL;
                uint32_t pid = 0;
                char p50[16], p99[16], runq[16], mem[32], gpus[64] = "-";
                if (asprintf(&path, "%s/%s", KACTOR_BUS_ACTOR_PREFIX, t->actor) < 0)
                        break;
                (void) sd_bus_get_property_string(bus, KACTOR_BUS_NAME, path, KACTOR_BUS_ACTOR_INTERFACE, "State", NULL,
                                                  &state);
                (void) sd_bus_get_property_trivial(bus, KACTOR_BUS_NAME, path, KACTOR_BUS_ACTOR_INTERFACE, "Pid", NULL,
                                                   'u', &pid);
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                if (sd_bus_get_property(bus, KACTOR_BUS_NAME, path, KACTOR_BUS_ACTOR_INTERFACE, "GpuIds", NULL, &reply,
                                        "au") >= 0) {
                        const void *ids;
                        size_t size;
                        if (sd_bus_message_read_array(reply, 'u', &ids, &size) >= 0 && size > 0) {
                                size_t off = 0;
                                for (size_t j = 0; j < size / 4 && off + 12 < sizeof(gpus); j++)
                                        off += (size_t) snprintf(gpus + off, sizeof(gpus) - off, "%s%u", j ? "," : "",
                                                                 ((const uint32_t *) ids)[j]);
                        }
                }
                format_ns(p50, sizeof(p50), trace_hist_percentile((const __u64 *) t->slots, TRACE_HIST_SLOTS, 0.5));
                format_ns(p99, sizeof(p99), trace_hist_percentile((const __u64 *) t->slots, TRACE_HIST_SLOTS, 0.99));
                format_ns(runq, sizeof(runq), t->runq_count ? (double) t->runq_ns / (double) t->runq_count : 0);
                uint64_t rss = pid ? proc_rss_kib(pid) : 0;
                if (rss)
                        snprintf(mem, sizeof(mem), "%.1fM", (double) rss / 1024.0);
                else
                        snprintf(mem, sizeof(mem), "-");
                printf("%-34s %-12.12s %-10s %9.0f %9s %9s %9s %6.1f %9s %s\n", t->actor, t->class_name,
                       state ?: "?", (double) t->calls / interval, p50, p99, runq,
                       100.0 * (double) t->oncpu_ns / (interval * 1e9), mem, gpus);
        }
        if (n == 0)
                printf("(no traced actors)\n");
        free(rows);
}

/* What `top` was asked for. */
typedef struct TopOptions {
        bool help;
        double interval;
        long count; /* rounds, 0 for no limit */
} TopOptions;

static void top_help(void) {
        printf("kactorctl top [--interval SEC] [--count N]\n\n"
               "A live table of the node's actors: calls/s, p50/p99 of the call latency, average\n"
               "run-queue delay, CPU, memory, GPUs and state, every SEC seconds (default 1)\n"
               "until Ctrl-C, or N times.\n");
}

/* Returns 0, or EXIT_USAGE after saying why. */
static int top_parse_argv(int argc, char *argv[], TopOptions *o) {
        enum { ARG_INTERVAL = 0x100, ARG_COUNT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "interval", required_argument, NULL, ARG_INTERVAL },
                { "count", required_argument, NULL, ARG_COUNT },
                {}
        };
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        o->help = true;
                        return 0;
                case ARG_INTERVAL:
                        r = trace_parse_seconds("top", "--interval", optarg, TRACE_INTERVAL_MAX_USEC, &o->interval);
                        if (r != 0)
                                return r;
                        break;
                case ARG_COUNT:
                        r = trace_parse_count("top", optarg, &o->count);
                        if (r != 0)
                                return r;
                        break;
                default:
                        return ctl_usage_bad_option("top", c, argv);
                }
        return 0;
}

/* Every interval, the table of what happened in it: the totals now less those a round ago. */
static int top_watch(sd_bus *bus, const TopOptions *o) {
        _cleanup_(stat_list_done) StatList prev_calls = {}, prev_sched = {};
        TraceOptions all = {};
        bool tty = isatty(STDOUT_FILENO);
        int r;

        r = trace_stats_get(bus, &all, &prev_calls, &prev_sched);
        if (r < 0)
                return r;
        signal(SIGINT, on_sigint);
        for (long round = 1; !interrupted; round++) {
                _cleanup_(stat_list_done) StatList calls = {}, sched = {};
                StatList now_calls = {}, now_sched = {};

                sleep_seconds(o->interval);
                if (interrupted)
                        break;
                r = trace_stats_get(bus, &all, &calls, &sched);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < calls.n; i++)
                        stat_subtract(&calls.v[i], &prev_calls);
                for (size_t i = 0; i < sched.n; i++)
                        stat_subtract(&sched.v[i], &prev_sched);
                if (tty)
                        printf("\033[H\033[2J");
                top_print(bus, &calls, &sched, o->interval);
                fflush(stdout);

                /* The next round's differences are against the totals now, after the printing. */
                stat_list_done(&prev_calls);
                stat_list_done(&prev_sched);
                r = trace_stats_get(bus, &all, &now_calls, &now_sched);
                prev_calls = now_calls;
                prev_sched = now_sched;
                if (r < 0)
                        return r;
                if (o->count > 0 && round >= o->count)
                        break;
        }
        return 0;
}

int verb_top(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        TopOptions o = { .interval = 1 };
        int r;

        r = top_parse_argv(argc, argv, &o);
        if (r != 0)
                return r;
        if (o.help) {
                top_help();
                return 0;
        }

        r = kactorctl_bus_connect(&bus);
        if (r < 0)
                return r;
        return top_watch(bus, &o);
}

/* What `timeline` was asked for. */
typedef struct TimelineOptions {
        bool help;
        const char *output; /* a file, or "-" for stdout */
        double duration;
} TimelineOptions;

static void timeline_help(void) {
        printf("kactorctl timeline -o FILE [--duration SEC]\n\n"
               "Record every call (and the scheduler's waits of the actors' threads) for SEC\n"
               "seconds (default 5) and write a Chrome trace / Perfetto JSON file: one process\n"
               "track per actor, each call with its phases nested in it. Open it in\n"
               "https://ui.perfetto.dev or chrome://tracing. Events the kernel had no room for are\n"
               "counted in otherData.dropped_events.\n");
}

/* Returns 0, or EXIT_USAGE after saying why. */
static int timeline_parse_argv(int argc, char *argv[], TimelineOptions *o) {
        enum { ARG_DURATION = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "output", required_argument, NULL, 'o' },
                { "duration", required_argument, NULL, ARG_DURATION },
                {}
        };
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":ho:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        o->help = true;
                        return 0;
                case 'o':
                        o->output = optarg;
                        break;
                case ARG_DURATION:
                        r = trace_parse_seconds("timeline", "--duration", optarg, TIMELINE_DURATION_MAX_USEC,
                                                &o->duration);
                        if (r != 0)
                                return r;
                        break;
                default:
                        return ctl_usage_bad_option("timeline", c, argv);
                }
        if (!o->output)
                return ctl_usage_error("timeline", "-o FILE is needed.");
        return 0;
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

int verb_timeline(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        TimelineOptions o = { .duration = 5 };
        uint64_t events, dropped;
        int r;

        r = timeline_parse_argv(argc, argv, &o);
        if (r != 0)
                return r;
        if (o.help) {
                timeline_help();
                return 0;
        }

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

        fprintf(stderr, "%" PRIu64 " events written to %s", events, o.output);
        if (dropped)
                fprintf(stderr, "; %" PRIu64 " dropped (the ring buffer was full)", dropped);
        fputc('\n', stderr);
        return 0;
}

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

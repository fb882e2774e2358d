/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "kactor/value.h"
#include "macro.h"
#include "trace-format.h"

static const char *const phase_names[TRACE_PHASE_MAX] = {
        [TRACE_PHASE_QUEUE] = "queue",     [TRACE_PHASE_DISPATCH] = "dispatch", [TRACE_PHASE_EXEC] = "exec",
        [TRACE_PHASE_DELIVER] = "deliver", [TRACE_PHASE_TOTAL] = "total",
};

static const char *const sched_names[TRACE_SCHED_MAX] = {
        [TRACE_SCHED_RUNQ] = "runq",
        [TRACE_SCHED_OFFCPU] = "offcpu",
        [TRACE_SCHED_ONCPU] = "oncpu",
};

const char *trace_phase_to_string(unsigned phase) {
        return phase < TRACE_PHASE_MAX ? phase_names[phase] : "unknown";
}

int trace_phase_from_string(const char *s) {
        for (unsigned i = 0; i < TRACE_PHASE_MAX; i++)
                if (strcmp(s, phase_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

const char *trace_sched_kind_to_string(unsigned kind) {
        return kind < TRACE_SCHED_MAX ? sched_names[kind] : "unknown";
}

uint64_t trace_hist_bucket_upper(size_t i) {
        return i >= 63 ? UINT64_MAX : (uint64_t) 1 << i;
}

void trace_hist_add(struct kt_hist *h, uint64_t d) {
        unsigned slot = d ? 64 - (unsigned) __builtin_clzll(d) : 0; /* 2^(slot-1) <= d < 2^slot */
        if (slot > TRACE_HIST_SLOTS - 1)
                slot = TRACE_HIST_SLOTS - 1;
        h->count++;
        h->sum_ns += d;
        h->slots[slot]++;
}

static uint64_t span(uint64_t from, uint64_t to) {
        return to > from ? to - from : 0;
}

void trace_call_account(struct kt_call_stats *st, uint64_t t_queued, uint64_t t_dispatched, uint64_t t_start,
                        uint64_t t_end, uint64_t t_stored) {
        st->calls++;
        trace_hist_add(&st->phase[TRACE_PHASE_QUEUE], span(t_queued, t_dispatched));
        if (t_start && t_end) {
                trace_hist_add(&st->phase[TRACE_PHASE_DISPATCH], span(t_dispatched, t_start));
                trace_hist_add(&st->phase[TRACE_PHASE_EXEC], span(t_start, t_end));
                trace_hist_add(&st->phase[TRACE_PHASE_DELIVER], span(t_end, t_stored));
        } else
                st->no_worker++;
        trace_hist_add(&st->phase[TRACE_PHASE_TOTAL], span(t_queued, t_stored));
}

double trace_hist_percentile(const __u64 *slots, size_t n_slots, double p) {
        uint64_t total = 0, seen = 0;
        for (size_t i = 0; i < n_slots; i++)
                total += slots[i];
        if (total == 0)
                return 0;
        double want = p * (double) total;
        if (want < 1)
                want = 1;
        for (size_t i = 0; i < n_slots; i++) {
                if (slots[i] == 0)
                        continue;
                if ((double) (seen + slots[i]) >= want) {
                        /* Bucket i holds [2^(i-1), 2^i); bucket 0 holds 0. */
                        if (i == 0)
                                return 0;
                        double lo = (double) ((uint64_t) 1 << (i - 1)), hi = lo * 2;
                        return lo + (hi - lo) * ((want - (double) seen) / (double) slots[i]);
                }
                seen += slots[i];
        }
        return (double) trace_hist_bucket_upper(n_slots - 1);
}

void trace_prom_escape(FILE *f, const char *s) {
        for (; s && *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f), fputc(*s, f);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

void trace_prom_histogram(FILE *f, const char *name, const char *labels, const __u64 *slots, size_t n_slots,
                          uint64_t count, uint64_t sum_ns) {
        uint64_t cum = 0;
        const char *sep = labels && *labels ? "," : "";
        /* The last bucket is open-ended: it is +Inf. */
        for (size_t i = 0; i + 1 < n_slots; i++) {
                cum += slots[i];
                fprintf(f, "%s_bucket{%s%sle=\"%.9g\"} %" PRIu64 "\n", name, labels ?: "", sep,
                        (double) trace_hist_bucket_upper(i) / 1e9, cum);
        }
        fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels ?: "", sep, count);
        fprintf(f, "%s_sum{%s} %.9f\n", name, labels ?: "", (double) sum_ns / 1e9);
        fprintf(f, "%s_count{%s} %" PRIu64 "\n", name, labels ?: "", count);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Microseconds since t0, as Chrome traces count. */
static double us(uint64_t t, uint64_t t0) {
        return t >= t0 ? (double) (t - t0) / 1000.0 : 0;
}

static void slice(FILE *f, bool *first, const char *ph, const char *name, const char *cat, size_t pid, uint32_t tid,
                  uint64_t id, double ts, const char *args) {
        fprintf(f, "%s\n{\"ph\":\"%s\",\"cat\":\"%s\",\"name\":", *first ? "" : ",", ph, cat);
        json_string_fputs(name, f);
        fprintf(f, ",\"pid\":%zu,\"tid\":%" PRIu32 ",\"id\":\"0x%" PRIx64 "\",\"ts\":%.3f", pid, tid, id, ts);
        if (args && *args)
                fprintf(f, ",\"args\":{%s}", args);
        fputc('}', f);
        *first = false;
}

static void complete(FILE *f, bool *first, const char *name, const char *cat, size_t pid, uint32_t tid, double ts,
                     double dur, const char *args) {
        fprintf(f, "%s\n{\"ph\":\"X\",\"cat\":\"%s\",\"name\":", *first ? "" : ",", cat);
        json_string_fputs(name, f);
        fprintf(f, ",\"pid\":%zu,\"tid\":%" PRIu32 ",\"ts\":%.3f,\"dur\":%.3f", pid, tid, ts, dur);
        if (args && *args)
                fprintf(f, ",\"args\":{%s}", args);
        fputc('}', f);
        *first = false;
}

static void metadata(FILE *f, bool *first, const char *what, size_t pid, uint32_t tid, const char *name) {
        fprintf(f, "%s\n{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%zu,\"tid\":%" PRIu32 ",\"args\":{\"name\":",
                *first ? "" : ",", what, pid, tid);
        json_string_fputs(name, f);
        fputs("}}", f);
        *first = false;
}

/* The scheduler spans of a thread go on a track of their own, beside the thread's. */
#define SCHED_TRACK(tid) ((tid) | 0x40000000u)

/* The recording's window: times are clipped to it. */
typedef struct Window {
        uint64_t begin, end;
} Window;

static uint64_t clip(const Window *w, uint64_t t) {
        return t < w->begin ? w->begin : t > w->end ? w->end : t;
}

/* The args of an event that was clipped, unfinished or failed: JSON members (in args, malloc'd), or NULL. */
static char *event_args(bool clipped, bool unfinished, const char *error) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return NULL;
        const char *sep = "";
        if (clipped) {
                fputs("\"clipped\":true", f);
                sep = ",";
        }
        if (unfinished) {
                fprintf(f, "%s\"unfinished\":true", sep);
                sep = ",";
        }
        if (error) {
                fprintf(f, "%s\"error\":", sep);
                json_string_fputs(error, f);
        }
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}

static void write_sched(FILE *f, bool *first, const struct kt_event *e, size_t pid, const Window *w) {
        bool unfinished = e->kind & TRACE_EVENT_UNFINISHED;
        unsigned kind = e->kind & TRACE_EVENT_KIND_MASK;
        uint64_t from = clip(w, e->t[0]), to = clip(w, unfinished ? w->end : e->t[1]);
        _cleanup_free_ char *args = event_args(e->t[0] < w->begin, unfinished, NULL);
        complete(f, first, kind == TRACE_SCHED_RUNQ ? "run-queue wait" : "off-CPU", "sched", pid, SCHED_TRACK(e->tid),
                 us(from, w->begin), us(to, w->begin) - us(from, w->begin), args);
}

static void write_call(FILE *f, bool *first, const struct kt_event *e, size_t index, size_t pid, const Window *w,
                       const TraceTimelineNames *names) {
        bool unfinished = e->kind & TRACE_EVENT_UNFINISHED;
        unsigned code = e->kind & TRACE_EVENT_KIND_MASK;
        char buf[64];

        const char *method = names && names->method_name ? names->method_name(e->method, names->userdata) : NULL;
        if (!method) {
                snprintf(buf, sizeof(buf), "method %08" PRIx32, e->method);
                method = buf;
        }
        const char *error = NULL;
        if (code != 0) {
                error = names && names->call_error ? names->call_error(index, names->userdata) : NULL;
                error = error ?: kactor_error_name((kactor_error) code) ?: "failed";
        }
        _cleanup_free_ char *args = event_args(e->t[0] < w->begin, unfinished, error);
        _cleanup_free_ char *exec_args = error ? event_args(false, false, error) : NULL;

        /* Queued, dispatched (0: not yet), ran (0 and 0: unknown), stored (or the end of the recording). */
        uint64_t queued = clip(w, e->t[0]), end = clip(w, unfinished ? w->end : e->t[4]);
        uint64_t dispatched = e->t[1] ? clip(w, e->t[1]) : end;
        uint64_t id = e->obj ?: (e->seq | ((uint64_t) pid << 48));
        uint32_t tid = e->tid;
        double t0 = us(queued, w->begin), t1 = us(dispatched, w->begin), t4 = us(end, w->begin);

        slice(f, first, "b", method, "call", pid, tid, id, t0, args);
        slice(f, first, "b", "queue", "call", pid, tid, id, t0, NULL);
        slice(f, first, "e", "queue", "call", pid, tid, id, t1, NULL);
        if (e->t[1] && e->t[2] && e->t[3]) {
                double t2 = us(clip(w, e->t[2]), w->begin), t3 = us(clip(w, e->t[3]), w->begin);
                slice(f, first, "b", "dispatch", "call", pid, tid, id, t1, NULL);
                slice(f, first, "e", "dispatch", "call", pid, tid, id, t2, NULL);
                slice(f, first, "b", "run", "call", pid, tid, id, t2, NULL);
                slice(f, first, "e", "run", "call", pid, tid, id, t3, NULL);
                slice(f, first, "b", "deliver", "call", pid, tid, id, t3, NULL);
                slice(f, first, "e", "deliver", "call", pid, tid, id, t4, NULL);
                complete(f, first, method, "exec", pid, tid, t2, t3 - t2, exec_args);
        } else if (e->t[1] && unfinished) {
                /* With the worker, not finished when the recording ended (whether it started is not known
                 * until its result comes). */
                slice(f, first, "b", "dispatch", "call", pid, tid, id, t1, NULL);
                slice(f, first, "e", "dispatch", "call", pid, tid, id, t4, NULL);
        }
        slice(f, first, "e", method, "call", pid, tid, id, t4, NULL);
}

int trace_timeline_write(FILE *f, const struct kt_event *ev, size_t n, uint64_t t_begin, uint64_t t_end,
                         uint64_t dropped, const TraceTimelineNames *names) {
        _Static_assert(sizeof(uint64_t) == 8, "");
        uint64_t *keys = NULL;
        size_t n_keys = 0, n_written = 0;
        bool first = true;
        Window w = { .begin = t_begin, .end = t_end ?: UINT64_MAX };

        /* One process (pid 1, 2, ...) per actor, numbered in the order of their keys. */
        keys = malloc((n ?: 1) * sizeof(uint64_t));
        if (!keys)
                return -ENOMEM;
        uint64_t t_first = UINT64_MAX;
        for (size_t i = 0; i < n; i++) {
                keys[i] = ev[i].actor;
                if (ev[i].t[0] && ev[i].t[0] < t_first)
                        t_first = ev[i].t[0];
        }
        qsort(keys, n, sizeof(uint64_t), cmp_u64);
        for (size_t i = 0; i < n; i++)
                if (n_keys == 0 || keys[n_keys - 1] != keys[i])
                        keys[n_keys++] = keys[i];
        if (w.begin == 0)
                w.begin = t_first == UINT64_MAX ? 0 : t_first;

        fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", f);
        for (size_t k = 0; k < n_keys; k++) {
                const char *label = names && names->actor_label ? names->actor_label(keys[k], names->userdata) : NULL;
                char fallback[64];
                if (!label) {
                        snprintf(fallback, sizeof(fallback), "actor %016" PRIx64, keys[k]);
                        label = fallback;
                }
                metadata(f, &first, "process_name", k + 1, 0, label);
        }

        /* Thread names, once per (actor, thread). */
        uint64_t *seen = calloc(n ?: 1, sizeof(uint64_t));
        size_t n_seen = 0;
        if (!seen) {
                free(keys);
                return -ENOMEM;
        }

        for (size_t i = 0; i < n; i++) {
                const struct kt_event *e = &ev[i];
                uint64_t *kp = bsearch(&e->actor, keys, n_keys, sizeof(uint64_t), cmp_u64);
                size_t pid = kp ? (size_t) (kp - keys) + 1 : 0;
                char buf[64];

                if (e->type != TRACE_EVENT_CALL && e->type != TRACE_EVENT_SCHED)
                        continue;
                /* Over before the recording began (read from the ring buffer as it was switched on). */
                if (!(e->kind & TRACE_EVENT_UNFINISHED) && e->type == TRACE_EVENT_SCHED && e->t[1] < w.begin)
                        continue;

                if (e->tid) {
                        uint64_t tk = ((uint64_t) pid << 32) | e->tid;
                        bool known = false;
                        /* Few threads per actor: a short scan of the latest ones is enough. */
                        for (size_t j = n_seen; j > 0 && j + 64 > n_seen; j--)
                                if (seen[j - 1] == tk) {
                                        known = true;
                                        break;
                                }
                        if (!known) {
                                for (size_t j = 0; j < n_seen && !known; j++)
                                        known = seen[j] == tk;
                                if (!known) {
                                        seen[n_seen++] = tk;
                                        snprintf(buf, sizeof(buf), "worker %" PRIu32, e->tid);
                                        metadata(f, &first, "thread_name", pid, e->tid, buf);
                                        snprintf(buf, sizeof(buf), "scheduler %" PRIu32, e->tid);
                                        metadata(f, &first, "thread_name", pid, SCHED_TRACK(e->tid), buf);
                                }
                        }
                }

                if (e->type == TRACE_EVENT_SCHED)
                        write_sched(f, &first, e, pid, &w);
                else
                        write_call(f, &first, e, i, pid, &w, names);
                n_written++;
        }
        fprintf(f, "\n],\"otherData\":{\"dropped_events\":%" PRIu64 ",\"events\":%zu,\"actors\":%zu}}\n", dropped,
                n_written, n_keys);
        free(seen);
        free(keys);
        return ferror(f) ? -EIO : 0;
}

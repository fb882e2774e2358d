/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pure formatting of what the tracing programs gather (bpf/trace.h): percentiles of log2
 * histograms, Prometheus text exposition, Chrome trace / Perfetto JSON. No BPF, no I/O beyond the
 * FILE given; shared by the node manager and kactorctl, and unit-tested on their own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trace.h"

const char *trace_phase_to_string(unsigned phase);
int trace_phase_from_string(const char *s);
const char *trace_sched_kind_to_string(unsigned kind);

/* Adds duration d (ns) to a log2 histogram (one thread: plain additions). */
void trace_hist_add(struct kt_hist *h, uint64_t d);
/* Adds a call's phases to st: queued, dispatched and stored are the node manager's times, start and
 * end the worker's (0 when unknown: the call counts as no_worker, without dispatch/exec/deliver). */
void trace_call_account(struct kt_call_stats *st, uint64_t t_queued, uint64_t t_dispatched, uint64_t t_start,
                        uint64_t t_end, uint64_t t_stored);

/* The duration (ns) under which share p (0..1) of a log2 histogram's samples lie, interpolated
 * linearly inside the bucket; 0 for an empty histogram. */
double trace_hist_percentile(const __u64 *slots, size_t n_slots, double p);
/* The upper bound (ns) of bucket i. */
uint64_t trace_hist_bucket_upper(size_t i);

/* Writes s as a Prometheus label value (escapes \, " and newlines). */
void trace_prom_escape(FILE *f, const char *s);
/* One histogram series: name_bucket{labels,le=...} cumulative, name_sum (seconds), name_count.
 * labels: preformatted, e.g. actor="...",method="..." (escaped). */
void trace_prom_histogram(FILE *f, const char *name, const char *labels, const __u64 *slots, size_t n_slots,
                          uint64_t count, uint64_t sum_ns);

typedef struct TraceTimelineNames {
        /* The label of an actor's track ("actor ID (Class)"), and its name for events. */
        const char *(*actor_label)(uint64_t actor, void *userdata);
        const char *(*method_name)(uint32_t method, void *userdata);
        /* A failed call's error in words, by its event's index; NULL: only its code is known. */
        const char *(*call_error)(size_t index, void *userdata);
        void *userdata;
} TraceTimelineNames;

/*
 * Writes a Chrome trace (JSON object format, loads in Perfetto and chrome://tracing) of the events
 * recorded from t_begin to t_end (CLOCK_MONOTONIC ns; 0 and 0: from the first event on, unbounded):
 * one process per actor; on it, every call as a nestable async slice (its id: the result object)
 * holding its phases (queue, dispatch, run, deliver) as child slices; the executions on the worker
 * thread's track; in a "scheduler" thread track the run-queue waits and off-CPU spans.
 *
 * Time 0 is t_begin: what began before is clipped to it (args.clipped), what was still open at t_end
 * (TRACE_EVENT_UNFINISHED) ends there (args.unfinished), a failed call says its error (args.error).
 * The count of dropped events goes in otherData.dropped_events. Returns 0 or -errno (from the FILE).
 */
int trace_timeline_write(FILE *f, const struct kt_event *events, size_t n_events, uint64_t t_begin, uint64_t t_end,
                         uint64_t dropped, const TraceTimelineNames *names);

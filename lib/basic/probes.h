/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * USDT probes (provider "kactor") in the node manager and the worker runtime, for any USDT tool
 * (bpftrace -l 'usdt:/path/to/kactor-nodemgr:kactor:*'). kactor's own tracing attaches none of them:
 * a hit costs about a microsecond, a third of a call (docs/tracing.md).
 *
 * Each probe has a semaphore: the kernel counts attached tracers in it (uprobe ref_ctr_offset), so
 * a site costs one predictable branch while nobody traces, and its arguments are only computed
 * while somebody does. The probe instruction is a 5-byte nop, which kernels since 6.18 turn into a
 * call (about half the cost of the int3 a one-byte nop needs). Arguments are scalars only, kept in
 * registers or constants so that every USDT argument parser reads them.
 *
 * Probes (arguments in order; "actor" and "obj" are kactor_trace_id_hash() of the ids, "method" is
 * kactor_trace_method_id() of the method name, times are CLOCK_MONOTONIC nanoseconds, the clock of
 * bpf_ktime_get_ns()):
 *
 *   call_submitted  actor obj method                 node manager, a call arrived
 *   call_queued     actor obj method                 node manager, in the actor's queue
 *   call_dispatched actor seq obj method             node manager, sent to the worker as call seq
 *   call_started    actor seq                        worker, about to run the method
 *   call_finished   actor seq t_start t_end          worker, the method returned
 *   call_stored     actor seq obj method t_queued t_dispatched
 *                                                    node manager, the result is stored
 *   direct_call_sent     actor obj method            libkactor, a direct call was queued for its worker
 *   direct_call_received actor obj method            worker, a direct call read (runs next in its batch)
 *   direct_result_received obj code                  libkactor, a direct call's answer arrived
 *   get_answered    obj n_objects timed_out          node manager, a Get/Wait was answered (obj: the first)
 *   actor_started   actor pid                        node manager, the actor's worker runs
 *   actor_restarted actor pid restarts               node manager, a new worker for the actor
 *   actor_died      actor expected                   node manager, the actor is dead
 */

#include <stddef.h>
#include <stdint.h>

#include "hash-util.h"

#if defined(__x86_64__) && !defined(KACTOR_NO_PROBES)
#define _SDT_HAS_SEMAPHORES 1
/* Registers and constants only: the forms every USDT argument parser understands. */
#define STAP_SDT_ARG_CONSTRAINT nr
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>
#undef _SDT_NOP
#define _SDT_NOP .byte 0x0f; .byte 0x1f; .byte 0x44; .byte 0x00; .byte 0x00

/* One semaphore per probe, in each object that has the probe; unused ones are dropped. */
#define _KACTOR_SEMAPHORE(name) \
        static volatile unsigned short kactor_##name##_semaphore __attribute__((unused, section(".probes")))
_KACTOR_SEMAPHORE(call_submitted);
_KACTOR_SEMAPHORE(call_queued);
_KACTOR_SEMAPHORE(call_dispatched);
_KACTOR_SEMAPHORE(call_started);
_KACTOR_SEMAPHORE(call_finished);
_KACTOR_SEMAPHORE(call_stored);
_KACTOR_SEMAPHORE(direct_call_sent);
_KACTOR_SEMAPHORE(direct_call_received);
_KACTOR_SEMAPHORE(direct_result_received);
_KACTOR_SEMAPHORE(get_answered);
_KACTOR_SEMAPHORE(actor_started);
_KACTOR_SEMAPHORE(actor_restarted);
_KACTOR_SEMAPHORE(actor_died);

/* Whether a tracer is attached to the probe. */
#define KACTOR_PROBE_ENABLED(name) __builtin_expect(kactor_##name##_semaphore != 0, 0)
/* Fires the probe; the arguments are evaluated only while a tracer is attached. */
#define KACTOR_PROBE(name, ...)                                                           \
        do {                                                                              \
                if (KACTOR_PROBE_ENABLED(name))                                           \
                        STAP_PROBEV(kactor, name, __VA_ARGS__);                           \
        } while (0)
#else
#define KACTOR_PROBE_ENABLED(name) 0
#define KACTOR_PROBE(name, ...) do {} while (0)
#endif

/* A 64-bit key for a 128-bit kactor id (node half, local half): unique across the node managers of
 * a host, whose node halves are random. */
static inline uint64_t kactor_trace_id_hash(uint64_t hi, uint64_t lo) {
        return hash_fold128(hi, lo) ?: 1;
}

/* FNV-1a of a method name (n bytes): the method's id in the tracing maps. */
static inline uint32_t kactor_trace_method_id(const char *s, size_t n) {
        return hash_fnv1a32(s, s ? n : 0) ?: 1;
}

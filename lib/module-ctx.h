/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A worker's context, as the module API (module-api.c, in libkactor) and the worker runtime
 * (lib/worker/worker-runtime.c, in kactor-worker) both see it: the runtime makes and fills it, a
 * module reaches it only through the kactor_ctx_*(), kactor_arg_*() and kactor_fail() functions.
 * Both are built from the same tree, so they agree on its layout.
 */

#include <stddef.h>
#include <stdint.h>

#include "kactor/client.h"
#include "kactor/module.h"
#include "proto.h"

typedef struct MethodStats {
        uint64_t avg_nsec; /* exponential moving average; 0 = never ran */
} MethodStats;

typedef struct LoadedModule {
        struct LoadedModule *next;
        char *path;
        void *dl;
        const kactor_module *info;
        MethodStats *function_stats; /* one per function of info */
} LoadedModule;

struct kactor_ctx {
        kactor_client *client;
        kactor_actor self;
        uint32_t *gpu_ids;
        size_t n_gpu_ids;
        char *error; /* set by kactor_fail() */

        WorkerKind kind;
        LoadedModule *modules;
        const kactor_class *class;
        MethodStats *method_stats; /* one per method of class */
        size_t n_methods;
        void *state;
        unsigned batched;                    /* results buffered since the last flush */
        uint64_t exec_start_ns, exec_end_ns; /* the method whose result goes next: when it ran (tracing) */

        /* Surviving a restart of the node manager (worker-runtime.c): the results it has not yet
         * called durable, in order, to send again when this worker re-attaches. */
        struct RetainedResult *retained_head, *retained_tail;
        size_t retained_bytes;
        uint64_t n_results;       /* RESULTs sent (relayed and direct): what acks and ATTACH count */
        bool may_reattach;        /* an actor's worker that connects again when the manager goes */
        bool init_done;           /* INIT_DONE sent */
        bool can_save;
        uint64_t id_prefix;       /* the connection's id prefix, which it asks back */
        size_t last_result_len;   /* the size of the RESULT frame queued last (the tail of out) */

        /* Direct calls (worker-direct.c): the sockets of callers the node manager handed over. */
        struct WorkerDirect *direct;
        size_t n_direct;
        /* Per caller with a direct socket open (id prefix): the highest object id it had run here,
         * directly or relayed; a direct call must name a higher one (an id never runs twice, whatever
         * socket it comes on; once its sockets are closed, the node manager knows its ids). */
        struct DirectMark *direct_marks;
        size_t n_direct_marks;
        Frame direct_frame; /* parses DCALLs; kept, with its zone, from one batch to the next */
};

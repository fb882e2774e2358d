/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "module-ctx.h"

/* The worker's main loop (worker-runtime.c): kactor-worker's main (worker.c) enters it once it has
 * dropped its privileges. Returns the process's exit status. */
int kactor_worker_main(int argc, char *argv[]);

/* What running a method gave: r and code as worker_send_result() takes them, the value (owned), and
 * the RESULT flags. */
typedef struct WorkerRun {
        int r;
        kactor_error code;
        kactor_value *result;
        uint32_t flags;
} WorkerRun;

/* Runs method name of the actor's class with args (seq names it to the probes). A method that is
 * not there fails in *ret; a negative return is a failure of the worker (its connection). Leaves
 * ctx->exec_start_ns and exec_end_ns set for the RESULT that follows. */
int worker_run_method(kactor_ctx *ctx, const char *name, size_t len, const kactor_value *args, uint64_t seq,
                      WorkerRun *ret);
/* Appends a RESULT (or INIT_DONE) frame to the node manager's output: the value on success, else
 * the error code and message. Counts the RESULTs of an actor (ctx->n_results). */
int worker_send_result(kactor_ctx *ctx, uint32_t type, uint64_t seq, int r, kactor_error code, kactor_value *value,
                       uint32_t flags);
/* Keeps a call and the RESULT frame just queued for it (the tail of the output) until the node
 * manager says it is durable. */
int worker_retain(kactor_ctx *ctx, kactor_id result, const char *method, size_t method_len, const char *args,
                  size_t args_len);
/* The arguments of a frame (its body, a list; none: an empty list). */
int worker_decode_args(const Frame *f, kactor_value **ret);

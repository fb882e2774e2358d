/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* call.c: a call's life outside the queue it waits in (callqueue.h, where Call is defined): built
 * from packed arguments and holding what they name, its arguments resolved before it is sent, its
 * result stored when a worker reports it, failed or freed. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core-forward.h"
#include "kactor/value.h"

/* Builds a call from packed arguments (the result object is held by the call): scans them, holds
 * what they name, and registers for the top-level object references that are not ready yet.
 * -EREMOTEIO with e set when an argument names an object that does not exist, or the result. */
int call_new(Manager *m, Object *result, const char *args, size_t args_len, Call **ret, ReqError *e);
/* The same for a direct call, whose result (id result, made by user uid) is kept for its caller
 * when it comes (direct-results.h) and has no object until then. */
int call_new_direct(Manager *m, kactor_id result, uid_t uid, const char *args, size_t args_len, Call **ret,
                    ReqError *e);
/* Registers for the top-level references; call after the call is queued. */
int call_watch_deps(Manager *m, Call *c);
void call_free(Manager *m, Call *c);
/* A call that could not be made (r < 0, from call_new() or what followed it): its result fails with
 * e's error when r is -EREMOTEIO, else with TaskFailed and r's text. e is done after. */
void call_result_fail_new(Manager *m, Object *result, int r, ReqError *e);
/* Fails a call's result (if nobody has set it) and frees the call. */
void call_fail(Manager *m, Call *c, kactor_error code, const char *message);
/* 0 when user uid may pass every object that ids names (n of them; is_actor[i]: an actor handle,
 * which gives no right by itself and may always be passed); -EREMOTEIO with AccessDenied in e for
 * the first one another user owns. A call's arguments are checked against its result's owner. */
int call_check_ids(Manager *m, const kactor_id *ids, const uint8_t *is_actor, size_t n, uid_t uid, ReqError *e);
/* Takes a hold on everything c->ids names (an actor's constructor arguments use it too). An object
 * that does not exist is an error (-EREMOTEIO with e set), and nothing is held then. */
int call_hold_ids(Manager *m, Call *c, ReqError *e);
/* The arguments as the worker gets them: top-level object references replaced by their values.
 * Returns 0 with *ret_data (malloc'd, or NULL when the arguments go as they are), or -EREMOTEIO with
 * e set when an argument failed. */
int call_resolve_args(Manager *m, Call *c, char **ret_data, size_t *ret_len, ReqError *e);
/* Resolves a call's top-level references in place. -EAGAIN when an evicted argument is being had
 * again (the call waits for it), -EREMOTEIO with e set when one failed. */
int call_prepare_args(Manager *m, Call *c, ReqError *e);

/* A worker reported the result of call `seq` (or, with RESULT_DIRECT in flags, of the direct call it
 * recorded last; w->results counts it already): stores it (data is the packed value when code is 0)
 * and hands the call back to its actor or to the task pool. -EBADMSG when the worker has no such
 * call. */
int call_finish(Manager *m, Worker *w, uint64_t seq, kactor_error code, const char *message, const char *data,
                size_t len, uint32_t flags);

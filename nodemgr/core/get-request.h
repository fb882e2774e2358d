/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* get-request.c: Get and Wait requests; the requester answers through the request's reply(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core-forward.h"
#include "kactor/value.h"

/* A Get or Wait by user uid, who may read only the objects it owns (access.c): another's is refused
 * (-EREMOTEIO, AccessDenied), and a copy fetched from a peer whose owner turns out to be another
 * user is answered with AccessDenied (get_request_denied()). */
int get_request_new(Manager *m, const kactor_id *ids, size_t n, uid_t uid, bool wait, size_t num_returns,
                    uint64_t timeout_usec, GetRequest **ret, ReqError *e);
/* The first object of a completed request its user may not read, or NULL. */
const Object *get_request_denied(const GetRequest *g);
/* Arms the request: completes at once when it can. */
int get_request_start(GetRequest *g);
GetRequest *get_request_free(GetRequest *g);
/* Completes it: g->reply() answers it. */
void get_request_complete(GetRequest *g, bool timed_out);
/* The request stops waiting for its objects and its timeout (it holds them still): complete, its
 * answer waits for the requester. */
void get_request_stop_waiting(GetRequest *g);
/* How many of its objects are no longer pending. */
size_t get_request_n_ready(const GetRequest *g);

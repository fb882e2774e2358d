/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Administrative actions by users other than root: polkit decides (org.freedesktop.PolicyKit1
 * CheckAuthorization, asked without blocking the loop and without interaction). Where polkit is not
 * on the bus, only root and the node manager's own user may. The actions are declared in
 * units/io.kactor.policy (docs/isolation.md, "Owners").
 */

#include <sys/queue.h>
#include <systemd/sd-bus.h>

#include "manager.h"

#define BUS_POLKIT_MANAGE_ACTORS "io.kactor.manage-actors"
#define BUS_POLKIT_TRACE "io.kactor.trace"

typedef struct BusPolkitQuery BusPolkitQuery;
typedef struct BusPolkit {
        LIST_HEAD(, BusPolkitQuery) queries;
} BusPolkit;

/* What to do once allowed: reads its arguments from msg (rewound), acts and replies. It may return
 * a negative errno or set error instead: the caller is answered with that. */
typedef int (*BusPolkitAction)(sd_bus_message *msg, Manager *m, sd_bus_error *error);

/* Runs act for the sender of msg if it may do action_id: at once for root and the node manager's
 * user, else when polkit says yes; otherwise msg is answered with io.kactor.Error.AccessDenied,
 * naming `what` (e.g. "kill another user's actor"). Returns what a method handler returns (1: the
 * answer comes later). */
int bus_polkit_run(BusPolkit *p, Manager *m, sd_bus_message *msg, const char *action_id, const char *what,
                   BusPolkitAction act, sd_bus_error *error);

/* Drops the questions still open (their callers get no answer: the bus they came on is gone). */
void bus_polkit_done(BusPolkit *p);

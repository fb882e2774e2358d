/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The D-Bus service (io.kactor.NodeManager1, its actors and objects). The core does not call it: it
 * queues what changed (actor_queue_change(), manager_queue_resources_changed(),
 * manager_queue_peers_changed()) and the service sends it, coalesced, from the flush it installs on
 * the manager here.
 */

#include <systemd/sd-bus.h>

#include "manager.h"

/* The service's state: its connection, and the owners of the actors made with Detached=false (each
 * holds one reference to its actor until its connection goes). The manager holds it, opaque, in
 * m->bus_userdata, and frees it through m->bus_free. */
typedef struct ManagerBus ManagerBus;

/* Connects to the bus at address (NULL: the system bus), serves the objects and installs the flush
 * and the service's state on the manager, which frees them, even on failure. Logs; returns a
 * negative errno. The other interfaces (trace_bus_setup()) go on the connection afterwards.
 *
 * A bus that goes away later (a D-Bus restart) does not stop the manager: it connects again, with a
 * growing delay (100 ms to 5 s), serves everything at the same paths, takes its name again and
 * announces the actors. What lived on the old connection is gone with it: owners of Detached=false
 * actors let go of them as if they had disconnected, and waiting Get and Wait requests are dropped. */
int manager_bus_setup(Manager *m, const char *address);

/* Serves interface on the manager's object (with the manager as userdata) on the connection and on
 * every later one. Returns -ENOTCONN before manager_bus_setup() or while the bus is away, -E2BIG
 * past a few interfaces, or sd-bus's error. */
int manager_bus_add_vtable(Manager *m, const char *interface, const sd_bus_vtable *vtable);

/* The sender of msg may use the node manager (root, its own user, a member of the access group; the
 * D-Bus policy says so for the system bus, this holds on any bus): 0 and its uid in *ret_uid
 * (optional), or io.kactor.Error.AccessDenied set in error. */
int manager_bus_check_access(sd_bus_message *msg, Manager *m, uid_t *ret_uid, sd_bus_error *error);

/* The administrative requests waiting for polkit (bus-polkit.h); NULL before manager_bus_setup(). */
struct BusPolkit;
struct BusPolkit *manager_bus_polkit(Manager *m);

/* The service's connection; NULL before manager_bus_setup() and while the bus is away. */
sd_bus *manager_bus_get(Manager *m);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The D-Bus service (io.kactor.NodeManager1, its actors and objects). The core does not call it: it
 * queues what changed (actor_queue_change(), manager_queue_resources_changed(),
 * manager_queue_peers_changed()) and the service sends it, coalesced, from the flush it installs on
 * the manager here.
 */

#include "manager.h"

/* Connects to the bus, serves the objects and installs the flush. Logs; returns a negative errno. */
int manager_bus_setup(Manager *m);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* io.kactor.Trace1 on the manager's object: what the tracing programs (manager-trace.c) gathered. */

#include "manager.h"

/* Serves io.kactor.Trace1 on the connection of manager_bus_setup(), which must have run, and on the
 * connections after a D-Bus restart. Logs; returns a negative errno. */
int trace_bus_setup(Manager *m);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What kactorctl.c (the verbs and the global options) gives the other verbs' files. */

#include <systemd/sd-bus.h>

/* Connects to the node manager's bus as the global options (--bus, $KACTOR_BUS_ADDRESS) say. */
int kactorctl_bus_connect(sd_bus **ret);

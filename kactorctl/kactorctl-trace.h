/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* kactorctl's tracing commands (kactorctl-trace.c), over io.kactor.Trace1. */

#include <systemd/sd-bus.h>

int verb_trace(int argc, char *argv[]);
int verb_top(int argc, char *argv[]);
int verb_timeline(int argc, char *argv[]);
/* For `kactorctl status`: prints the "Tracing:" line. */
void trace_print_status(sd_bus *bus);

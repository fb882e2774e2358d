/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* kactorctl's tracing commands (kactorctl-trace.c), over io.kactor.Trace1. */

#include <systemd/sd-bus.h>

#include "kactorctl.h"

extern const Verb verb_trace;
extern const Verb verb_top;
extern const Verb verb_timeline;

/* For `kactorctl status`: prints the "Tracing:" line. */
void trace_print_status(sd_bus *bus);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the test modules report of the process they run in (isomod, taskmod). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A line of /proc/self/status ("CapEff", "Uid", ...), its value (malloc'd), or NULL. */
static inline char *status_field(const char *name) {
        char line[512];
        char *v = NULL;
        FILE *f = fopen("/proc/self/status", "re");
        if (!f)
                return NULL;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':') {
                        char *p = line + strlen(name) + 1;
                        p += strspn(p, " \t");
                        p[strcspn(p, "\n")] = 0;
                        v = strdup(p);
                        break;
                }
        fclose(f);
        return v;
}

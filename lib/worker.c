/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* kactor-worker: one process per actor (and the task pool's workers), started by kactor-nodemgr
 * with its end of a socketpair as fd 3. The runtime is in libkactor (lib/worker-runtime.c). */

#include <stdio.h>
#include <string.h>

#include "privileges.h"

int kactor_worker_main(int argc, char *argv[]);

int main(int argc, char *argv[]) {
        /* Become the actor's user, without capabilities, before anything from outside is read. */
        int r = privileges_drop_worker_from_env();
        if (r < 0) {
                fprintf(stderr, "kactor-worker: cannot drop privileges: %s\n", strerror(-r));
                return 1;
        }
        return kactor_worker_main(argc, argv);
}

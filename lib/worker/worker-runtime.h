/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The worker's main loop (worker-runtime.c): kactor-worker's main (worker.c) enters it once it has
 * dropped its privileges. Returns the process's exit status. */
int kactor_worker_main(int argc, char *argv[]);

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* kactor-worker: one process per actor (and the task pool's workers), started by kactor-nodemgr
 * with its end of a socketpair as fd 3. The runtime is in libkactor (lib/worker-runtime.c). */

int kactor_worker_main(int argc, char *argv[]);

int main(int argc, char *argv[]) {
        return kactor_worker_main(argc, argv);
}

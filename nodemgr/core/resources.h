/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Node resources and their bookkeeping: GPUs (by id) and CPUs (fractional). Pure logic, no I/O.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Gpu {
        uint32_t id;
        char *device;  /* /dev/nvidiaN, a render node, or a fake node; NULL with --gpus N */
        bool in_use;
} Gpu;

typedef struct Resources {
        Gpu *gpus;
        size_t n_gpus;
        double cpus_total;
        double cpus_used;
} Resources;

/* GPUs 0..n-1 without device nodes. */
int resources_init(Resources *r, size_t n_gpus, double cpus);
/* GPUs from device paths; ids are their positions in the list. */
int resources_init_devices(Resources *r, char *const *devices, size_t n, double cpus);
void resources_done(Resources *r);

size_t resources_free_gpus(const Resources *r);

/*
 * Reserves n GPUs and `cpus` CPUs, all or nothing. On success fills ret_ids (n entries, lowest free
 * ids first) and returns 0. Returns -ENOSPC when there are not enough; then *ret_msg (malloc'd) says
 * what was asked and what is free, e.g. "requested 2 GPUs, 1 of 1 free".
 */
int resources_acquire(Resources *r, size_t n, double cpus, uint32_t *ret_ids, char **ret_msg);
/* Takes these GPUs (and CPUs) again, for an actor a previous node manager gave them to. -ENOENT when
 * a GPU is not on this node (any more), -EBUSY when it is taken. */
int resources_take(Resources *r, const uint32_t *ids, size_t n, double cpus);
/* Returns GPUs and CPUs to the pool. */
void resources_release(Resources *r, const uint32_t *ids, size_t n, double cpus);

/* The comma-separated id list for CUDA_VISIBLE_DEVICES; malloc'd. */
char *resources_gpu_list_string(const uint32_t *ids, size_t n);

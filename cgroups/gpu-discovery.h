/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The node's GPUs as device nodes: NVIDIA GPUs from the driver (/dev/nvidia<minor>, the minor read
 * from /proc/driver/nvidia/gpus/<pci>/information, not assumed equal to the index, plus the GPU's
 * DRM render node), the shared control nodes (nvidiactl, nvidia-uvm, nvidia-uvm-tools with its
 * dynamic major from /proc/devices, nvidia-modeset), or an explicit list (--gpu-devices).
 */

#include <stddef.h>
#include <stdint.h>

#include "device-filter.h"

typedef struct GpuInfo {
        char *path;          /* the GPU's main node: /dev/nvidia<minor>, a render node, a fake node */
        DeviceRule rules[2]; /* the main node, and its render node when it has one */
        size_t n_rules;
} GpuInfo;

typedef struct GpuInventory {
        GpuInfo *gpus;       /* index = GPU id */
        size_t n_gpus;
        DeviceRule control[8]; /* shared control nodes, for actors that hold a GPU */
        size_t n_control;
} GpuInventory;

/* Discovers NVIDIA GPUs under the given roots ("/" in production; tests pass a fake tree with
 * proc/driver/nvidia/..., proc/devices, dev/ and sys/). No GPUs is not an error. */
int gpu_discover(const char *root, GpuInventory *ret);
/* An explicit list: nodes named nvidiactl, nvidia-uvm, nvidia-uvm-tools or nvidia-modeset are the
 * shared control nodes, every other entry is one GPU (ids in list order). Each must be a device. */
int gpu_inventory_from_list(char *const *paths, GpuInventory *ret);
void gpu_inventory_done(GpuInventory *inv);
/* The GPUs' main paths, NULL-terminated (the strings belong to inv); malloc'd array. */
char **gpu_inventory_paths(const GpuInventory *inv);
/* The rules for an actor holding these GPUs: their nodes plus the control nodes (none for none).
 * malloc'd; *ret_n entries. */
int gpu_inventory_rules(const GpuInventory *inv, const uint32_t *ids, size_t n_ids, DeviceRule **ret, size_t *ret_n);

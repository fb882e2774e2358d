/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The device cgroup as a BPF_PROG_TYPE_CGROUP_DEVICE program: default deny; the standard
 * pseudo-devices (null, zero, full, random, urandom, tty, ptmx, pts) and the given rules are allowed.
 * The instructions are built at run time (as crun and systemd do) and loaded with libbpf.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct DeviceRule {
        char type;         /* 'c' or 'b' */
        uint32_t major;
        uint32_t minor;
        bool any_minor;
} DeviceRule;

#define DEVICE_FILTER_MAX_RULES 256

/* A rule for a device node (stat()ed). -ENOTTY when it is not a device. */
int device_rule_from_path(const char *path, DeviceRule *ret);

/* Builds the program's instructions; *ret (malloc'd struct bpf_insn[]) and *ret_n. */
int device_filter_build(const DeviceRule *rules, size_t n, void **ret, size_t *ret_n);
/* Builds and loads the program; returns its fd (O_CLOEXEC). */
int device_filter_load(const DeviceRule *rules, size_t n);
/* Attaches a loaded program to a cgroup directory with BPF_F_ALLOW_MULTI. */
int device_filter_attach(int prog_fd, const char *cgroup_dir);

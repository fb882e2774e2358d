/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GPU discovery from the driver's view (a fake /proc, /dev tree) and the device program's rules. */

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../skip.h"
#include "gpu-discovery.h"
#include "macro.h"

static char root[] = "/tmp/kactor-gpu-disc-XXXXXX";

static void put(const char *rel, const char *content) {
        char p[512], cmd[600];
        snprintf(p, sizeof(p), "%s/%s", root, rel);
        snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", p);
        cr_assert_eq(system(cmd), 0);
        FILE *f = fopen(p, "we");
        cr_assert_not_null(f);
        fputs(content, f);
        fclose(f);
}

static void setup(void) {
        cr_assert_not_null(mkdtemp(root));
}

static void teardown(void) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        (void) system(cmd);
}

TestSuite(gpu_discovery, .init = setup, .fini = teardown);

Test(gpu_discovery, minor_comes_from_the_driver_in_pci_order) {
        put("proc/driver/nvidia/gpus/0000:02:00.0/information", "Model: X\nDevice Minor: \t 3\n");
        put("proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: X\nDevice Minor: 1\n");
        put("proc/devices", "Character devices:\n  1 mem\n195 nvidia-frontend\n511 nvidia-uvm\n\nBlock devices:\n  8 sd\n");
        GpuInventory inv = {};
        cr_assert_eq(gpu_discover(root, &inv), 0);
        cr_assert_eq(inv.n_gpus, 2);
        cr_assert(strstr(inv.gpus[0].path, "/dev/nvidia1"), "%s", inv.gpus[0].path);
        cr_assert(strstr(inv.gpus[1].path, "/dev/nvidia3"), "%s", inv.gpus[1].path);
        cr_assert_eq(inv.gpus[1].rules[0].major, 195);
        cr_assert_eq(inv.gpus[1].rules[0].minor, 3);
        bool uvm = false, uvm_tools = false, ctl = false;
        for (size_t i = 0; i < inv.n_control; i++) {
                uvm |= inv.control[i].major == 511 && inv.control[i].minor == 0;
                uvm_tools |= inv.control[i].major == 511 && inv.control[i].minor == 1;
                ctl |= inv.control[i].major == 195 && inv.control[i].minor == 255;
        }
        cr_assert(uvm && uvm_tools && ctl);

        DeviceRule *rules;
        size_t n;
        uint32_t id = 1;
        cr_assert_eq(gpu_inventory_rules(&inv, &id, 1, &rules, &n), 0);
        cr_assert_eq(n, 1 + inv.n_control);
        cr_assert_eq(rules[0].minor, 3);
        free(rules);
        cr_assert_eq(gpu_inventory_rules(&inv, NULL, 0, &rules, &n), 0);
        cr_assert_eq(n, 0, "an actor without GPUs gets no control nodes");
        free(rules);
        gpu_inventory_done(&inv);
}

Test(gpu_discovery, no_driver_means_no_gpus) {
        GpuInventory inv = {};
        cr_assert_eq(gpu_discover(root, &inv), 0);
        cr_assert_eq(inv.n_gpus, 0);
        cr_assert_eq(inv.n_control, 0);
}

Test(gpu_discovery, explicit_list_splits_gpus_and_control_nodes) {
        if (geteuid() != 0)
                kactor_skip_test("mknod needs root");
        char a[300], b[300], c[300];
        snprintf(a, sizeof(a), "%s/nvidia0", root);
        snprintf(b, sizeof(b), "%s/renderD128", root);
        snprintf(c, sizeof(c), "%s/nvidiactl", root);
        cr_assert_eq(mknod(a, S_IFCHR | 0600, makedev(195, 0)), 0);
        cr_assert_eq(mknod(b, S_IFCHR | 0600, makedev(226, 128)), 0);
        cr_assert_eq(mknod(c, S_IFCHR | 0600, makedev(195, 255)), 0);
        char *list[] = { a, b, c, NULL };
        GpuInventory inv = {};
        cr_assert_eq(gpu_inventory_from_list(list, &inv), 0);
        cr_assert_eq(inv.n_gpus, 2);
        cr_assert_eq(inv.n_control, 1);
        cr_assert_eq(inv.gpus[1].rules[0].major, 226);
        gpu_inventory_done(&inv);

        char *bad[] = { root, NULL };
        cr_assert_eq(gpu_inventory_from_list(bad, &inv), -ENOTTY, "a directory is no GPU");
}

Test(gpu_discovery, device_program_loads) {
        if (geteuid() != 0)
                kactor_skip_test("loading BPF needs root");
        DeviceRule r = { 'c', 195, 0, false };
        int fd = device_filter_load(&r, 1);
        cr_assert_geq(fd, 0, "bpf_prog_load: %s", strerror(-fd));
        close(fd);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-discovery.h"
#include "macro.h"

void gpu_inventory_done(GpuInventory *inv) {
        for (size_t i = 0; i < inv->n_gpus; i++)
                free(inv->gpus[i].path);
        free(inv->gpus);
        *inv = (GpuInventory) {};
}

static bool is_control_name(const char *path) {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        return streq(b, "nvidiactl") || streq(b, "nvidia-uvm") || streq(b, "nvidia-uvm-tools") ||
               streq(b, "nvidia-modeset");
}

static int inventory_add_gpu(GpuInventory *inv, const char *path, const DeviceRule *rule) {
        GpuInfo *n = realloc(inv->gpus, (inv->n_gpus + 1) * sizeof(GpuInfo));
        if (!n)
                return -ENOMEM;
        inv->gpus = n;
        GpuInfo *g = &inv->gpus[inv->n_gpus];
        *g = (GpuInfo) { .path = strdup(path), .rules = { *rule }, .n_rules = 1 };
        if (!g->path)
                return -ENOMEM;
        inv->n_gpus++;
        return 0;
}

int gpu_inventory_from_list(char *const *paths, GpuInventory *ret) {
        GpuInventory inv = {};
        int r;

        for (char *const *p = paths; p && *p; p++) {
                DeviceRule rule;
                r = device_rule_from_path(*p, &rule);
                if (r < 0) {
                        gpu_inventory_done(&inv);
                        return r;
                }
                if (is_control_name(*p)) {
                        if (inv.n_control < ELEMENTSOF(inv.control))
                                inv.control[inv.n_control++] = rule;
                        continue;
                }
                r = inventory_add_gpu(&inv, *p, &rule);
                if (r < 0) {
                        gpu_inventory_done(&inv);
                        return r;
                }
        }
        *ret = inv;
        return 0;
}

/* The major of a character device driver in /proc/devices, or -ENOENT. */
static int proc_devices_major(const char *root, const char *driver) {
        _cleanup_free_ char *path = NULL;
        char line[256];
        bool chars = false;
        int major = -ENOENT;

        if (asprintf(&path, "%s/proc/devices", root) < 0)
                return -ENOMEM;
        FILE *f = fopen(path, "re");
        if (!f)
                return -ENOENT;
        while (fgets(line, sizeof(line), f)) {
                char name[128];
                int m;
                if (strncmp(line, "Character devices:", 18) == 0)
                        chars = true;
                else if (strncmp(line, "Block devices:", 14) == 0)
                        chars = false;
                else if (chars && sscanf(line, "%d %127s", &m, name) == 2 && streq(name, driver)) {
                        major = m;
                        break;
                }
        }
        fclose(f);
        return major;
}

static int read_device_minor(const char *info_path) {
        char line[256];
        int minor = -ENOENT;
        FILE *f = fopen(info_path, "re");
        if (!f)
                return negative_errno();
        while (fgets(line, sizeof(line), f)) {
                int m;
                if (sscanf(line, "Device Minor: %d", &m) == 1) {
                        minor = m;
                        break;
                }
        }
        fclose(f);
        return minor;
}

static int filter_dot(const struct dirent *d) {
        return d->d_name[0] != '.';
}

int gpu_discover(const char *root, GpuInventory *ret) {
        GpuInventory inv = {};
        _cleanup_free_ char *dir = NULL;
        struct dirent **entries = NULL;
        int n, r = 0;

        if (asprintf(&dir, "%s/proc/driver/nvidia/gpus", root) < 0)
                return -ENOMEM;
        /* Sorted by PCI bus id: the order nvidia-smi shows. */
        n = scandir(dir, &entries, filter_dot, alphasort);
        for (int i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *info = NULL, *node = NULL, *render = NULL;
                DeviceRule rule;
                int minor;

                if (asprintf(&info, "%s/%s/information", dir, entries[i]->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                minor = read_device_minor(info);
                if (minor < 0)
                        continue;
                if (asprintf(&node, "%s/dev/nvidia%d", root, minor) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (device_rule_from_path(node, &rule) < 0)
                        rule = (DeviceRule) { 'c', 195, (uint32_t) minor, false };
                r = inventory_add_gpu(&inv, node, &rule);
                if (r < 0)
                        break;
                /* The same GPU's render node, when the DRM driver exposes one. */
                if (asprintf(&render, "%s/sys/bus/pci/devices/%s/drm/renderD*", root, entries[i]->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                glob_t g = {};
                if (glob(render, 0, NULL, &g) == 0 && g.gl_pathc > 0) {
                        const char *b = strrchr(g.gl_pathv[0], '/');
                        _cleanup_free_ char *rnode = NULL;
                        DeviceRule rr;
                        if (b && asprintf(&rnode, "%s/dev/dri%s", root, b) >= 0 && device_rule_from_path(rnode, &rr) >= 0)
                                inv.gpus[inv.n_gpus - 1].rules[inv.gpus[inv.n_gpus - 1].n_rules++] = rr;
                }
                globfree(&g);
        }
        for (int i = 0; i < n; i++)
                free(entries[i]);
        free(entries);
        if (r < 0) {
                gpu_inventory_done(&inv);
                return r;
        }

        if (inv.n_gpus > 0) {
                /* The shared nodes: nvidiactl and nvidia-modeset on the nvidia major (195), nvidia-uvm
                 * on a dynamic major. They are allowed even before nvidia-modprobe creates them. */
                static const struct {
                        const char *name, *driver;
                        uint32_t major, minor;
                } ctl[] = {
                        { "nvidiactl", NULL, 195, 255 },
                        { "nvidia-modeset", NULL, 195, 254 },
                        { "nvidia-uvm", "nvidia-uvm", 0, 0 },
                        { "nvidia-uvm-tools", "nvidia-uvm", 0, 1 },
                };
                for (size_t i = 0; i < ELEMENTSOF(ctl); i++) {
                        _cleanup_free_ char *node = NULL;
                        DeviceRule rule = { 'c', ctl[i].major, ctl[i].minor, false };
                        if (ctl[i].driver) {
                                int major = proc_devices_major(root, ctl[i].driver);
                                if (major < 0)
                                        continue;
                                rule.major = (uint32_t) major;
                        }
                        if (asprintf(&node, "%s/dev/%s", root, ctl[i].name) >= 0)
                                (void) device_rule_from_path(node, &rule);
                        inv.control[inv.n_control++] = rule;
                }
        }
        *ret = inv;
        return 0;
}

char **gpu_inventory_paths(const GpuInventory *inv) {
        char **v = calloc(inv->n_gpus + 1, sizeof(char *));
        for (size_t i = 0; v && i < inv->n_gpus; i++)
                v[i] = inv->gpus[i].path;
        return v;
}

int gpu_inventory_rules(const GpuInventory *inv, const uint32_t *ids, size_t n_ids, DeviceRule **ret, size_t *ret_n) {
        DeviceRule *v = calloc(n_ids * 2 + inv->n_control + 1, sizeof(DeviceRule));
        size_t k = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n_ids; i++) {
                if (ids[i] >= inv->n_gpus)
                        continue; /* --gpus N: no device nodes to allow */
                const GpuInfo *g = &inv->gpus[ids[i]];
                for (size_t j = 0; j < g->n_rules; j++)
                        v[k++] = g->rules[j];
        }
        if (n_ids > 0)
                for (size_t i = 0; i < inv->n_control; i++)
                        v[k++] = inv->control[i];
        *ret = v;
        *ret_n = k;
        return 0;
}
